"""Fixtures around a real `curate serve` (benchmarks/live_server.py) and the small data sets and
specs the service tests share.

Servers cost ~2-4 s each to start on a loaded 2-core box (imports, DuckDB, the fork server's
torch import), so tests that only read or are refused share one per test process (`shared_server`:
one per pytest-xdist worker); a test that needs its own settings, a kill or a clean data dir
starts its own (`start_server`).
"""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from benchmarks.live_server import Server, wait_for  # noqa: F401 (wait_for: the tests import it from here)
from models.spec import AdaBoostSpec, TrainSpec
from service.engine.engine import Engine
from service.engine.executors.local import Executor, LocalExecutor
from service.read import queries
from service.settings import Settings

# A real job in a couple of seconds (2 members x 3 epochs on a few hundred digits): enough for any
# claim about what is recorded, scored or served; tests that need more say so with an override.
SMALL_SPEC: dict[str, int] = {"n_members": 2, "n_epochs": 3, "hidden_units": 32, "batch_size": 128}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One default server for the tests of every module that leave nothing running (refusals,
    reads, uploads of their own data): each such test compares what is stored before and after
    instead of expecting an empty server, and none starts a job on it (a running job would change
    the job list another module's test compares). Session-wide: it was one per module, six starts."""
    srv = Server(tmp_path_factory.mktemp("shared") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(data_dir: Path | None = None, **env: str) -> Server:
        srv = Server(data_dir or tmp_path / f"data{len(started)}", env=env).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def digits_arrays(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The first n digits of scikit-learn's 8x8 set: X (n, 64) float32, y (n,) int."""
    X, y = load_digits(return_X_y=True)
    return X[:n].astype(np.float32), y[:n].copy()


def digits_npz(path: Path, n: int = 300, noise: float = 0.0, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Write the first n digits to `path` with a share `noise` of labels flipped to another class;
    returns the path and the flipped example ids."""
    X, y = digits_arrays(n)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(n, size=int(round(noise * n)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    np.savez(path, X=X, y=y)
    return path, flipped


class Crash(BaseException):
    """Raised by CrashAfter: a BaseException, so no `except Exception` in the engine records it."""


class CrashAfter(LocalExecutor):
    """Dies on the n-th record of the whole job (every round or pass), before committing it: the
    engine process dying between two commits."""

    def __init__(self, n_records: int) -> None:
        super().__init__()
        self.left = n_records

    def run(self, tasks, on_records, should_stop):  # type: ignore[no-untyped-def]
        def counting(task, records):  # type: ignore[no-untyped-def]
            for record in records:  # one at a time: the crash comes after exactly n commits
                if self.left == 0:
                    raise Crash()
                on_records(task, [record])
                self.left -= 1

        return super().run(tasks, counting, should_stop)


def run_to_success(settings: Settings, upload: Path, spec: TrainSpec, executor: Executor | None = None) -> str:
    """Store `upload` in a fresh engine of `settings`, run one job of `spec` (AdaBoost off) to success
    and close the engine; returns the job id."""
    engine = Engine(settings, executor=executor)
    try:
        ds = engine.add_dataset(upload)
        job = engine.run(engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False)))
        assert job.status == "succeeded", job.error
    finally:
        engine.close()
    return job.job_id


SCORE_COLUMNS = ("accessibility", "mislabel_score", "is_suspected_mislabel", "suggested_label", "split")


def assert_same_scores(data_dir: Path, job_id: str, other_dir: Path, other_job: str) -> None:
    """The two jobs' stored scores are equal, column by column (a resumed job against an uninterrupted one)."""
    rows = []
    for directory, job in ((data_dir, job_id), (other_dir, other_job)):
        engine = Engine(Settings(data_dir=directory))
        try:
            rows.append(queries.score_rows(engine.store, job))
        finally:
            engine.close()
    for col in SCORE_COLUMNS:
        assert rows[0].column(col).to_pylist() == rows[1].column(col).to_pylist(), col


def wait_until(condition: Callable[[], object], timeout: float = 60.0, interval: float = 0.05,
               what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy (returned) or `timeout` seconds pass
    (AssertionError naming `what`): a wait with a deadline instead of a fixed sleep or a spin."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout} s")
        time.sleep(interval)
