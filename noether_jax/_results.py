"""Result codes of every solver in the library (one tree, extending optimistix's)."""

import optimistix as optx


class RESULTS(optx.RESULTS):  # pyright: ignore[reportGeneralTypeIssues]
    """Why a solver stopped. The value of each member is its help message.

    Extends `optimistix.RESULTS` (which extends `lineax.RESULTS`), as diffrax does, so a code
    from an optimistix or lineax solve is a member too. Codes of this library's own:
    """

    invalid_input = (
        "The endpoints, times or initial path contain NaN or infinity, or `t0 == t1`."
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
    grid_too_coarse = (
        "The path converged on every grid of `nj.Refine`, but the estimated discretisation "
        "error of the action (`|S_h − S_2h|/3`, in `sol.stats['error_estimate']`) exceeds "
        "its tolerance: increase `n_nodes` (the finest grid) or `levels`, or loosen `rtol`."
    )
    not_settled = (
        "The deterministic flow did not come within the stop tolerance of a fixed point before "
        "`t_max`: increase `t_max` or loosen `tol`. Or the flow does not settle at all: it "
        "goes to a limit cycle or to infinity."
    )
