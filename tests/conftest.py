import os

# Compile fast rather than run fast: the suite's cost is mostly XLA compilation of many small
# programs, each run a few times. Set before JAX initialises its CPU backend.
os.environ["XLA_FLAGS"] = " ".join(
    [
        os.environ.get("XLA_FLAGS", ""),
        "--xla_backend_optimization_level=0",
        "--xla_cpu_use_fusion_emitters=false",
    ]
).strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import gc  # noqa: E402

import pytest  # noqa: E402

# Every compiled XLA executable holds memory mappings for its JIT-compiled code (a few per
# small program, about 2,000 for the largest of the suite). A test worker that compiles a few
# thousand programs passes the kernel's limit (`vm.max_map_count`, 65530 by default) and its
# next compilation aborts the process. Free the compiled programs between test files once a
# worker holds many: tests of one file share programs (module fixtures, the same system), so
# clearing in the middle of a file would compile them again. Within a file, clear only near
# the limit (one test adds at most ~3,000). Linux; elsewhere the check is skipped.
_MAX_MAPS_BETWEEN_FILES = 40_000
_MAX_MAPS = 58_000


def _num_maps() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _release():
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs_between_files():
    yield
    if _num_maps() > _MAX_MAPS_BETWEEN_FILES:
        _release()


@pytest.fixture(autouse=True)
def _release_compiled_programs_near_the_limit():
    yield
    if _num_maps() > _MAX_MAPS:
        _release()


# Test files from the most to the least expensive (seconds on one core, mostly compilation;
# measured on the whole suite). `pytest-xdist --dist loadfile` hands whole files to the
# workers in collection order, so the long ones go first and the short ones fill the gaps
# at the end (with `--no-loadscope-reorder`: xdist's own order is by number of tests). A
# file not listed runs after these.
_COST_ORDER = (
    "test_geometric", "test_barrier", "test_docs", "test_geometric_refine", "test_solver_core",
    "test_closed_forms", "test_refine", "test_symmetry", "test_network", "test_rates",
    "test_stiff", "test_batch_runner", "test_global_route", "test_batch_grad", "test_charges",
    "test_symmetry_scale", "test_symmetry_commutant", "test_rnn", "test_fixed_points",
    "test_distributed", "test_errors", "test_case_network", "test_om_energy", "test_case_ring",
    "test_relax_settle", "test_fixed_time_path", "test_hamilton", "test_cases_linear",
    "test_newton_cg", "test_cli", "test_linalg", "test_saddle_certificate", "test_imports",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(_COST_ORDER)}
    key = lambda item: rank.get(item.path.stem, len(rank))
    items.sort(key=key)  # stable: the tests of a file keep their order
