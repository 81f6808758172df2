"""Torch threads per training worker, through the engine (real DuckDB file, real workers): an MLP group
trains on one thread, a CNN group on cores / max_workers, CURATE_TORCH_THREADS overrides both
(Settings.threads_per_worker; the measurement behind it: benchmarks/results/threads.md). The suite sets
CURATE_TORCH_THREADS=1 (tests/conftest.py), so every Settings here names torch_threads."""

import os
from pathlib import Path

import numpy as np
import pytest

from models.spec import GroupTask, TrainSpec
from service.engine.executors.local import LocalExecutor
from service.settings import Settings
from tests.service.conftest import digits_arrays, run_to_success

SPEC = TrainSpec(n_members=2, n_epochs=1)


class SpyExecutor(LocalExecutor):
    """The local executor, keeping every task it was handed."""

    def __init__(self, max_workers: int = 1) -> None:
        super().__init__(max_workers=max_workers)
        self.tasks: list[GroupTask] = []

    def run(self, tasks, on_records, should_stop):  # type: ignore[no-untyped-def]
        self.tasks.extend(tasks)
        return super().run(tasks, on_records, should_stop)


def _threads_of_run(upload: Path, settings: Settings, spec: TrainSpec = SPEC) -> dict[str, int]:
    spy = SpyExecutor(settings.max_workers)
    run_to_success(settings, upload, spec, executor=spy)
    return {f"{t.model}/{t.group}": t.n_threads for t in spy.tasks}


@pytest.fixture
def table(tmp_path: Path) -> Path:
    X, y = digits_arrays(200)
    np.savez(tmp_path / "table.npz", X=X, y=y)
    return tmp_path / "table.npz"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    X, y = digits_arrays(200)
    np.savez(tmp_path / "images.npz", X=(X.reshape(-1, 8, 8) * 16).clip(0, 255).astype(np.uint8), y=y)
    return tmp_path / "images.npz"


def test_an_mlp_group_trains_on_one_thread(tmp_path: Path, table: Path) -> None:
    threads = _threads_of_run(table, Settings(data_dir=tmp_path / "data", torch_threads=0))
    assert threads == {"ensemble/0": 1}


def test_a_cnn_group_trains_on_the_cores_of_its_worker(tmp_path: Path, images: Path) -> None:
    one_worker = _threads_of_run(images, Settings(data_dir=tmp_path / "one", torch_threads=0))
    assert one_worker == {"ensemble/0": os.cpu_count()}
    two_workers = _threads_of_run(images, Settings(data_dir=tmp_path / "two", torch_threads=0, max_workers=2),
                                  TrainSpec(n_members=2, n_epochs=1, members_per_group=1))
    cores = max(1, (os.cpu_count() or 1) // 2)
    assert two_workers == {"ensemble/0": cores, "ensemble/1": cores}


def test_torch_threads_overrides_the_choice(tmp_path: Path, table: Path) -> None:
    assert _threads_of_run(table, Settings(data_dir=tmp_path / "data", torch_threads=3)) == {"ensemble/0": 3}


def test_the_choice_follows_the_model_the_spec_trains() -> None:
    auto, mlp, cnn = TrainSpec(), TrainSpec(model="mlp"), TrainSpec(model="cnn")
    assert [auto.trains_cnn(2), auto.trains_cnn(4)] == [False, True]
    assert [mlp.trains_cnn(4), cnn.trains_cnn(4)] == [False, True]  # model=mlp on pixels: one thread too
    settings = Settings(max_workers=1, torch_threads=0)
    assert settings.threads_per_worker(cnn=False) == 1
    assert settings.threads_per_worker(cnn=True) == max(1, os.cpu_count() or 1)
