"""Fixtures around a real `curate serve` (benchmarks/live_server.py) and small data sets."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from benchmarks.live_server import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    started: list[Server] = []

    def start(data_dir: Path | None = None, **env: str) -> Server:
        srv = Server(data_dir or tmp_path / f"data{len(started)}", env=env).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def digits_npz(path: Path, n: int = 300, noise: float = 0.0, seed: int = 0) -> tuple[Path, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    X, y = X[:n].astype(np.float32), y[:n].copy()
    rng = np.random.default_rng(seed)
    flipped = rng.choice(n, size=int(round(noise * n)), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    np.savez(path, X=X, y=y)
    return path, flipped


def wait_for(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s: {json.dumps(job)[:500]}")
