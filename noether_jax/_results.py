"""Result codes of every solver in the library (one tree, extending optimistix's)."""

import warnings

import optimistix as optx

# Two inherited members get messages that say what to do about a path solve (equinox warns
# that it replaces the inherited text; that is the point).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Enumeration has duplicate incompatible values")

    class RESULTS(optx.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
        """Why a solver stopped. The value of each member is its help message.

        Extends `optimistix.RESULTS` (which extends `lineax.RESULTS`), as diffrax does, so a code
        from an optimistix or lineax solve is a member too. Codes of this library's own:
        """

        max_steps_reached = (
            "The solver ran out of steps (`max_steps`) before meeting its tolerance. "
            "Increase `max_steps`, start from a better path (`init=`, e.g. a coarser grid's "
            "solution interpolated), or check that the problem has a minimum (is `n_nodes` "
            "large enough to resolve the drift's steepest features?)."
        )
        nonfinite = (
            "The action or its derivatives became NaN or infinite. Check that the drift and "
            "the diffusion are finite along the path (a drift that overflows far from the "
            "attractors can be tamed with a better initial path) and that `D` is symmetric "
            "positive definite."
        )
        invalid_input = (
            "The endpoints, times, initial path or parameters (`args`) contain NaN or "
            "infinity, or `t0 == t1`."
        )
        invalid_diffusion = (
            "The diffusion `D` is not symmetric positive definite (or not finite) somewhere "
            "along the path."
        )
        stagnated = (
            "The solver could not decrease the action any further before meeting its tolerance "
            "(its damping grew without bound, or it stopped on a saddle point of the action "
            "after its last restart). The problem may be too stiff for this grid: increase "
            "`n_nodes`, or start from a better path."
        )
        saddle_point = (
            "The solver stopped where the gradient of the action vanishes, but the action has "
            "a direction of negative curvature there: a saddle point, not a minimum (e.g. a "
            "path held on a symmetry axis, which a gradient-based minimiser cannot leave). "
            "Use `nj.BlockNewton` (the default for d ≤ 8), which escapes saddle points, or "
            "start from a path off the axis."
        )
        grid_too_coarse = (
            "The path converged on every grid of `nj.Refine`, but the estimated discretisation "
            "error of the action (`|S_h − S_2h|/3`, in `sol.stats['error_estimate']`) exceeds "
            "its tolerance: increase `n_nodes` (the finest grid) or `levels`, or loosen `rtol`."
        )
        lower_route_unconverged = (
            "The lowest first guess that converged is not established as the global most "
            "likely path: another candidate route did not converge, and its action is already "
            "lower (a descent only lowers it further). The returned path is the converged "
            "local minimum; compare `sol.stats['candidate_actions']` and "
            "`['candidate_converged']`, and raise `max_steps` or `n_nodes`."
        )
        not_settled = (
            "The deterministic flow did not come within the stop tolerance of a fixed point before "
            "`t_max`: increase `t_max` or loosen `tol`. Or the flow does not settle at all: it "
            "goes to a limit cycle or to infinity."
        )
