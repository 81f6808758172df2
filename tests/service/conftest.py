"""A real `curate serve` (uvicorn) on a free loopback port, in its own process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Server":
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start in time")

    def kill9(self) -> None:
        """SIGKILL the server and its worker processes (a crash: nothing gets to clean up)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


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
