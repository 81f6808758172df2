"""A real `curate serve` (uvicorn) on a free loopback port, in its own process group.

Used by the API tests (tests/service/conftest.py), benchmarks/faults.py and the load benchmarks.
The server's output goes to a log file next to its data directory (a pipe nobody reads would block
it once full).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


class PortTaken(RuntimeError):
    """The port free_port() found was taken before the server could bind it."""


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

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> "Server":
        """Start it and wait for /health. free_port() only finds a port free a moment ago: another
        process (a parallel test worker, say) can take it first, so a server that exits saying its
        address is in use is started again on another port."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> "Server":
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with self.log_path.open("rb") as f:
                    f.seek(log_start)
                    said = f.read().decode(errors="replace")
                if "address already in use" in said.lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"server exited: {said[-2000:]}")
            try:
                if self._marker_is_ours() and httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    time.sleep(0.05)  # uvicorn binds right after writing the marker: still alive = bound
                    if self.proc.poll() is None:
                        return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill9()
        raise RuntimeError(f"server did not answer /health within {timeout} s: {self.log_path.read_text()[-2000:]}")

    def _marker_is_ours(self) -> bool:
        """<data_dir>/server.json names this process: the /health that answers is not another
        server's that got the port first (uvicorn writes it during start-up, just before binding)."""
        try:
            return json.loads((self.data_dir / "server.json").read_text()).get("pid") == self.proc.pid
        except (OSError, ValueError, AttributeError):
            return False

    def kill9(self) -> None:
        """SIGKILL the server and its worker processes (a crash: nothing gets to clean up)."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def wait_for(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 180.0,
             interval: float = 0.3) -> dict:
    """Poll GET /jobs/{job_id} until its status is one of `statuses` (returns the job) or `timeout`
    seconds pass (AssertionError with the job's last state)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job.get("status") in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {json.dumps(job)[:500]}")
        time.sleep(interval)
