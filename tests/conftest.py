"""Suite-wide: one BLAS/OpenMP thread per process.

The suite runs the test process, servers and spawned training workers side by side on a
2-core machine; with two OpenMP threads each they oversubscribe the cores, and torch's
small-matrix kernels then run 10-50x slower (measured: 1.4 s vs 31 s per epoch on digits).
Set before torch is imported; spawned workers inherit it.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("CURATE_TORCH_THREADS", "1")


# -- xdist order: the longest files first --------------------------------------------------------
# `-n 2 --dist loadfile` hands whole files to the two workers and each worker holds its next file
# before it starts it, so a long file handed out last keeps one worker busy while the other idles
# (pytest-xdist's default order, most tests first, started the 36 s Ray file near the end). With
# --no-loadscope-reorder (pyproject.toml) the workers take files in collection order, and this
# puts the longest first (longest-processing-time-first), leaving the many short files to even out
# the end. Measured from `pytest -n 2 --durations=0` (seconds, 2-core box): keep roughly current;
# a file missing from the list runs after them in its usual order.
LONGEST_FILES_FIRST = (
    "tests/service/test_features.py",  # ~55 s: a torch worker per embedding
    "tests/service/test_api.py",  # ~50 s: kill -9 and resume
    "tests/service/test_ray_executor.py",  # ~50 s: a local Ray cluster, a multi-node one
    "tests/service/test_hardening.py",
    "tests/service/test_orphans.py",
    "tests/test_python_api.py",
    "tests/test_readme_walkthrough.py",
    "tests/service/test_openapi_fuzz.py",
    "tests/test_client.py",
    "tests/service/test_web.py",
    "tests/service/test_small_fixes.py",
    "tests/service/test_web_review.py",
    "tests/models/test_ensemble.py",
    "tests/service/test_browser.py",
    "tests/service/test_curation_api.py",
    "tests/service/test_result_cache.py",
    "tests/service/test_browser_review.py",
)


def pytest_collection_modifyitems(items: list) -> None:  # type: ignore[type-arg]
    """Stable sort of the collected tests: the files of LONGEST_FILES_FIRST in its order, then the rest."""
    rank = {path: i for i, path in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def imported_by(code: str, modules: tuple[str, ...]) -> list[bool]:
    """Run `code` in a fresh interpreter at the repository root; after it, which of `modules` are
    imported (for tests that keep an expensive import off a hot path)."""
    import subprocess
    import sys
    from pathlib import Path

    probe = f"{code}\nimport sys\nprint(*(m in sys.modules for m in {modules!r}))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    return [word == "True" for word in out]
