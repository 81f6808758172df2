"""Issue 15's Measure section: fault cases against a real `curate serve` on 127.0.0.1.

Cases: kill -9 of the server during training, during an upload and during a delete; SIGTERM of
the server during training; Ctrl-C (SIGINT) of an in-process `curate score`; a decompression-bomb
zip; 20 parallel attribution requests. Per case: orphan processes left (descendants of the killed
parent still alive 10 s later), peak RSS of the process tree (sampled every 50 ms), bytes of files
written outside the data dir (new files under TMPDIR, which every process here shares), HTTP
status codes, and whether the job's scores equal an uninterrupted run's (mislabel_score and
consistency of every example, from the scores export). Every job is tiny: digits (300 examples),
2 members, AdaBoost off.

    .venv/bin/python -m benchmarks.faults   # writes benchmarks/results/faults.{json,md}
"""

import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table

from benchmarks.live_server import ROOT, Server
from benchmarks.proctree import descendants, tree_rss_bytes, wait_gone

RESULTS = ROOT / "benchmarks" / "results"
SPEC = {"n_members": 2, "n_epochs": 6, "hidden_units": 32, "batch_size": 8, "random_state": 0}
NO_ADA = {"enabled": False}
SERVER_ENV = {"CURATE_EXPLAIN_MAX_EXAMPLES": "0"}


def digits_npz(path: Path, n: int = 300) -> Path:
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    np.savez(path, X=X[:n].astype(np.float32), y=y[:n])
    return path


class PeakRss:
    """Samples the RSS of a process tree in a thread; `peak` in bytes."""

    def __init__(self, pid_of: Callable[[], int | None]) -> None:
        self.pid_of, self.peak, self._stop = pid_of, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pid = self.pid_of()
            if pid:
                self.peak = max(self.peak, tree_rss_bytes(pid))
            time.sleep(0.05)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def files_outside(tmp: Path) -> int:
    return sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())


def wait_status(c: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never reached {statuses}: {job['status']}")


def wait_workers(pid: int, n: int = 2, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(descendants(pid)) >= n:
            time.sleep(1.0)  # into training
            return descendants(pid)
        time.sleep(0.1)
    return descendants(pid)


def scores(c: httpx.Client, job_id: str) -> dict[str, list]:
    table = pacsv.read_csv(io.BytesIO(c.get(f"/jobs/{job_id}/export", params={"what": "scores"}).content))
    return {k: table.column(k).to_pylist() for k in ("example_id", "mislabel_score", "consistency")}


class Case:
    """One fault case's record and the servers it started (stopped at the end)."""

    def __init__(self, name: str, work: Path, tmp: Path) -> None:
        self.name, self.work, self.tmp = name, work / name, tmp
        self.data = self.work / "data"
        self.row: dict[str, object] = {"case": name, "orphans": 0, "codes": [], "matches": "n/a", "note": ""}
        self.servers: list[Server] = []
        self.current: int | None = None  # pid whose tree is sampled

    def server(self, **env: str) -> Server:
        srv = Server(self.data, env={**SERVER_ENV, "TMPDIR": str(self.tmp), **env}).start()
        self.servers.append(srv)
        self.current = srv.proc.pid
        return srv

    def stop(self) -> None:
        for srv in self.servers:
            srv.stop()


@contextmanager
def case(name: str, work: Path, rows: list[dict]) -> Iterator[Case]:
    tmp = work / f"tmp-{name}"
    tmp.mkdir(parents=True)
    found = Case(name, work, tmp)
    with PeakRss(lambda: found.current) as rss:
        try:
            yield found
        except Exception as exc:  # a case that broke is reported, the others still run
            found.row["note"] = f"case failed: {type(exc).__name__}: {exc}"[:300]
        finally:
            found.stop()
    found.row["peak_rss_mb"] = round(rss.peak / 2**20)
    found.row["bytes_outside"] = files_outside(tmp)
    rows.append(found.row)


def submit(c: httpx.Client, path: Path) -> tuple[str, str]:
    ds = c.post("/datasets", params={"filename": path.name}, content=path.read_bytes()).json()
    job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": SPEC, "adaboost": NO_ADA}).json()
    return ds["dataset_id"], job["job_id"]


def kill_parent(k: Case, srv: Server, sig: int) -> None:
    """Signal the server only (not its group); count its descendants still alive 10 s later."""
    children = descendants(srv.proc.pid)
    os.kill(srv.proc.pid, sig)
    srv.proc.wait(60)
    left = wait_gone(children, timeout=10)
    k.row["orphans"] = len(left)
    for pid in left:  # measured; now end them so the next case starts clean
        os.kill(pid, signal.SIGKILL)


def run_cases(work: Path) -> tuple[list[dict], dict[str, list]]:
    rows: list[dict] = []
    npz = digits_npz(work / "digits.npz")
    baseline: dict[str, list] = {}

    with case("uninterrupted", work, rows) as k:
        srv = k.server()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            _, job_id = submit(c, npz)
            k.row["codes"] = [wait_status(c, job_id, ("succeeded", "failed"))["status"]]
            baseline.update(scores(c, job_id))
            k.row["matches"] = "baseline"

    for name, sig in (("kill9_server_training", signal.SIGKILL), ("sigterm_server_training", signal.SIGTERM)):
        with case(name, work, rows) as k:
            srv = k.server()
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                _, job_id = submit(c, npz)
                wait_status(c, job_id, ("running",))
                wait_workers(srv.proc.pid)
            kill_parent(k, srv, sig)
            srv = k.server()  # the restarted server resumes its own interrupted job
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                job = wait_status(c, job_id, ("succeeded", "failed", "cancelled"))
                k.row["codes"] = [job["status"]]
                if job["status"] == "succeeded":
                    k.row["matches"] = scores(c, job_id) == baseline

    with case("kill9_server_upload", work, rows) as k:
        srv = k.server()
        body = npz.read_bytes() * 40  # ~1 MB+, sent slowly; the server is killed mid-body

        def slow() -> Iterator[bytes]:
            for i in range(0, len(body), 16384):
                yield body[i:i + 16384]
                time.sleep(0.01)

        def upload() -> None:
            try:
                httpx.post(f"{srv.url}/datasets", params={"filename": "big.npz"}, content=slow(), timeout=60)
            except httpx.HTTPError:
                pass

        sender = threading.Thread(target=upload)
        sender.start()
        time.sleep(1.0)
        kill_parent(k, srv, signal.SIGKILL)
        sender.join()
        srv = k.server()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            k.row["codes"] = [c.get("/datasets").status_code]
            left = [p for p in (k.data / "uploads").rglob("*") if p.is_file()] if (k.data / "uploads").exists() else []
            k.row["note"] = f"datasets after restart: {len(c.get('/datasets').json())}, upload files left: {len(left)}"

    with case("kill9_server_delete", work, rows) as k:
        srv = k.server()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            dataset_id, job_id = submit(c, npz)
            wait_status(c, job_id, ("succeeded", "failed"))
            c.get(f"/ui/jobs/{job_id}/dynamics.png")  # a plot file to leave behind
            deleter = threading.Thread(target=lambda: c.delete(f"/datasets/{dataset_id}"))
            deleter.start()
            time.sleep(0.02)
            kill_parent(k, srv, signal.SIGKILL)
            deleter.join()
        srv = k.server()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            listed = [d["dataset_id"] for d in c.get("/datasets").json()]
            k.row["codes"] = [c.get(f"/datasets/{dataset_id}").status_code]
        jobs_left = sorted(p.name for p in (k.data / "jobs").iterdir()) if (k.data / "jobs").exists() else []
        plots = k.data / "exports" / "plots"
        plots_left = sorted(p.name for p in plots.iterdir()) if plots.exists() else []
        consistent = (dataset_id in listed) == bool(jobs_left) == bool(plots_left)
        k.row["matches"] = consistent
        k.row["note"] = (f"dataset {'kept' if dataset_id in listed else 'deleted'}; job folders left "
                         f"{len(jobs_left)}, plot files left {len(plots_left)}")

    with case("sigint_cli_score", work, rows) as k:
        env = {**os.environ, **SERVER_ENV, "TMPDIR": str(k.tmp)}
        cli = [sys.executable, "-m", "service"]
        args = ["--members", "2", "--epochs", str(SPEC["n_epochs"]), "--no-adaboost", "--set", "batch_size=8",
                "--set", "hidden_units=32", "--set", "random_state=0", "--data-dir", str(k.data)]
        proc = subprocess.Popen([*cli, "score", str(npz), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        k.current = proc.pid
        children = wait_workers(proc.pid)
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        left = wait_gone(children, timeout=10)
        k.row["orphans"] = len(left)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        k.row["codes"] = [f"exit {proc.returncode} after {time.monotonic() - asked:.1f} s"]
        job_id = next((w for line in err.splitlines() for w in line.replace(":", " ").split()
                       if len(w) == 12 and all(ch in "0123456789abcdef" for ch in w)), None)
        if job_id:
            retry = subprocess.run([*cli, "retry", job_id, "--data-dir", str(k.data)], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=600)
            k.row["codes"].append(f"retry exit {retry.returncode}")
            srv = k.server()
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                job = wait_status(c, job_id, ("succeeded", "failed", "cancelled"), timeout=30)
                k.row["codes"].append(job["status"])
                if job["status"] == "succeeded":
                    k.row["matches"] = scores(c, job_id) == baseline
        k.row["note"] = err.strip().splitlines()[-1][:200] if err.strip() else ""

    with case("png_bomb_upload", work, rows) as k:
        from tests.service.test_hardening import _png
        bomb, path = _png(13000, 13000), k.work / "bomb.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for cls in ("a", "b"):
                for i in range(3):
                    zf.writestr(f"{cls}/{i}.png", bomb)
        srv = k.server()
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            r = c.post("/datasets", params={"filename": "bomb.zip"}, content=path.read_bytes())
            k.row["codes"] = [r.status_code]
            k.row["note"] = f"{path.stat().st_size:,} bytes zip; datasets stored: {len(c.get('/datasets').json())}"

    with case("parallel_attributions_20", work, rows) as k:
        srv = k.server(CURATE_EXPLAIN_MAX_EXAMPLES="0")
        with httpx.Client(base_url=srv.url, timeout=300) as c:
            _, job_id = submit(c, npz)
            wait_status(c, job_id, ("succeeded", "failed"))
            with ThreadPoolExecutor(20) as pool:
                replies = list(pool.map(lambda i: c.get(f"/jobs/{job_id}/examples/{i}/attribution"), range(20)))
            k.row["codes"] = sorted(r.status_code for r in replies)
            k.row["matches"] = scores(c, job_id) == baseline
    return rows, baseline


def machine() -> dict[str, object]:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "processor": platform.processor() or platform.machine()}


def summarise(codes: list) -> str:
    counts: dict[str, int] = {}
    for code in codes:
        counts[str(code)] = counts.get(str(code), 0) + 1
    return ", ".join(f"{k}" if v == 1 else f"{k} x{v}" for k, v in counts.items())


def main() -> None:
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="curate-faults-") as root:
        rows, _ = run_cases(Path(root))
    headers = ("case", "orphans", "peak RSS MB", "bytes outside", "statuses", "matches", "note")
    cells = [(r["case"], str(r["orphans"]), str(r["peak_rss_mb"]), str(r["bytes_outside"]), summarise(r["codes"]),
              str(r["matches"]), str(r["note"])) for r in rows]
    table = Table(*headers, title="Fault cases (issue 15)")
    for row in cells:
        table.add_row(*row)
    Console().print(table)
    command = "python -m benchmarks.faults"
    report = {"command": command, "machine": machine(), "spec": SPEC, "seconds": round(time.time() - started),
              "cases": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"# Fault cases (issue 15)\n", f"`{command}` on {machine()['platform']}, {os.cpu_count()} CPUs, "
             f"{report['seconds']} s; digits 300 examples, 2 members x {SPEC['n_epochs']} epochs, AdaBoost off.\n",
             "Targets: 0 orphans, 0 bytes outside the data dir, no 5xx, peak RSS under 2 GB for uploads, "
             "identical results.\n", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    (RESULTS / "faults.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
