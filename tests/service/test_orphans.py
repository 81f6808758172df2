"""Workers die with their parent, whatever kills it; a signalled `curate score` cancels its job.

Real processes: a real server or CLI, a real job, then kill -9 / SIGTERM / SIGINT of the parent
only (not its process group), then /proc says whether any of its children survived."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.proctree import descendants, describe, wait_gone
from tests.service.conftest import Server, digits_npz, wait_for, wait_until

ROOT = Path(__file__).resolve().parents[2]
# a worker's lifeline polls every 0.25 s; under a loaded parallel run on two cores a child once
# outlived the kill by over 10 s (cause not established: a niced worker starved of CPU is the likely
# one; the message now says who it was). A real orphan stays forever, so 30 s still tells them apart.
ORPHAN_WAIT_S = 30.0
LONG = {"n_members": 2, "n_epochs": 1000, "hidden_units": 32, "batch_size": 8}


def _wait_workers(pid: int, n: int = 2, timeout: float = 60.0) -> list[int]:
    """The descendants of `pid` once it has at least n of them (fork server + a worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = descendants(pid)
        if len(found) >= n:
            time.sleep(1.0)  # let the worker start training
            return descendants(pid)
        time.sleep(0.2)
    raise AssertionError(f"process {pid} started only {descendants(pid)}")


def _fork_servers(pid: int) -> list[int]:
    return [p for p in descendants(pid) if "forkserver" in describe([p])]


@pytest.mark.slow
def test_kill9_of_the_server_leaves_no_worker_behind(start_server, tmp_path: Path) -> None:
    srv: Server = start_server()
    path, _ = digits_npz(tmp_path / "d.npz")
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/datasets").status_code == 200
        assert _fork_servers(srv.proc.pid) == []  # an idle server holds no torch process
        ds = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes()).json()
        wait_until(lambda: _fork_servers(srv.proc.pid), timeout=30, what="the fork server after an upload")
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": LONG,
                                    "adaboost": {"enabled": False}}).json()
        wait_for(c, job["job_id"], ("running",))
        children = _wait_workers(srv.proc.pid)
    os.kill(srv.proc.pid, signal.SIGKILL)  # the server only: its children must follow by themselves
    srv.proc.wait(10)
    left = wait_gone(children, timeout=ORPHAN_WAIT_S)
    assert left == [], f"orphans left: {describe(left)} (of {children})"


def _cli(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "CURATE_EXPLAIN_MAX_EXAMPLES": "0"}
    return subprocess.Popen([sys.executable, "-m", "service", *args, "--data-dir", str(tmp_path / "data")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _score_in_process(tmp_path: Path) -> subprocess.Popen:
    path, _ = digits_npz(tmp_path / "d.npz")
    return _cli(tmp_path, "score", str(path), "--members", "2", "--epochs", "1000", "--no-adaboost",
                "--set", "batch_size=8", "--set", "hidden_units=32")


def _wait_training(proc: subprocess.Popen, data_dir: Path, timeout: float = 60.0) -> list[int]:
    """The in-process CLI's descendants once its job trains: a group has written its epoch-0
    checkpoint. (Descendants alone do not tell: `curate score` starts the fork server before it
    ingests, so a kill then would come before there is any job.)"""
    deadline = time.monotonic() + timeout
    while not any((data_dir / "jobs").glob("*/*-group-*/ckpt/epoch-*.pt")):
        assert proc.poll() is None, f"curate score exited ({proc.returncode}) before training"
        assert time.monotonic() < deadline, f"no checkpoint under {data_dir / 'jobs'} after {timeout} s"
        time.sleep(0.2)
    return _wait_workers(proc.pid)


def _jobs(tmp_path: Path) -> str:
    done = _cli(tmp_path, "jobs")
    out, _ = done.communicate(timeout=60)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_an_in_process_job_and_says_how_to_resume_it(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _score_in_process(tmp_path)
    children = _wait_training(proc, tmp_path / "data")
    time.sleep(1.0)
    asked = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - asked < 10
    assert proc.returncode != 0
    assert "cancelled" in stderr and "curate retry" in stderr, stderr
    left = wait_gone(children, timeout=ORPHAN_WAIT_S)
    assert left == [], f"orphans left: {describe(left)} (of {children})"
    listing = _jobs(tmp_path)
    assert "cancelled" in listing, listing


@pytest.mark.slow
def test_kill9_of_an_in_process_score_leaves_no_worker_and_the_job_is_cancelled(tmp_path: Path) -> None:
    proc = _score_in_process(tmp_path)
    children = _wait_training(proc, tmp_path / "data")
    proc.kill()
    proc.wait(10)
    left = wait_gone(children, timeout=ORPHAN_WAIT_S)
    assert left == [], f"orphans left: {describe(left)} (of {children})"
    # the job was the CLI's, not a server's: a server started on this data dir does not resume it
    srv = Server(tmp_path / "data").start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            (job,) = c.get("/jobs").json()
            assert job["status"] == "cancelled", job
            assert "not resumed" in srv.log_path.read_text()
            retried = c.post(f"/jobs/{job['job_id']}/retry").json()
            assert retried["status"] in ("queued", "running")
            c.delete(f"/jobs/{job['job_id']}")
    finally:
        srv.stop()


def test_cancel_command_cancels_a_queued_job(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from models.spec import AdaBoostSpec, TrainSpec
    from service.cli.backends import LocalBackend
    from service.cli.main import app
    from service.settings import Settings

    path, _ = digits_npz(tmp_path / "d.npz", n=60)
    backend = LocalBackend(Settings(data_dir=tmp_path / "data"))
    ds = backend.add_dataset(path)
    job_id = backend.submit(ds.dataset_id, TrainSpec(n_members=2, n_epochs=3), AdaBoostSpec(enabled=False))
    backend.close()
    result = CliRunner().invoke(app, ["cancel", job_id, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "cancelled" in result.output
    result = CliRunner().invoke(app, ["show", job_id, "--data-dir", str(tmp_path / "data")])
    assert "cancelled" in result.output
