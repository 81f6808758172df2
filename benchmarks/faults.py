"""Issue 15's Measure section: fault cases against a real `curate serve` on 127.0.0.1.

Cases: kill -9 of the server during training, during an upload and during a delete; SIGTERM of
the server during training; Ctrl-C (SIGINT) of an in-process `curate score`; a decompression-bomb
zip; 20 parallel attribution requests. Per case: orphan processes left (descendants of the killed
parent still alive 10 s later), peak RSS of the process tree (sampled every 50 ms), bytes of files
written outside the data dir (new files under TMPDIR, which every process here shares), HTTP
status codes, and whether the job's scores equal an uninterrupted run's (mislabel_score and
consistency of every example, from the scores export). Every job is tiny: digits (300 examples),
2 members, AdaBoost off. The delete case uses all 1,797 digits with four jobs and kills at shares of
a timed delete and the moment its first job folder is gone (rows committed, files half removed);
the first version's single kill, 20 ms into a delete on a
warm server, landed after it had finished (the dataset was gone, 404).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/faults.py   # writes benchmarks/results/faults.{json,md}
"""

import io
import json
import os
import platform
import re
import shutil
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

if __package__ in (None, ""):  # run as a script: make `benchmarks`, `service` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.live_server import ROOT, Server, wait_for  # noqa: E402
from benchmarks.proctree import descendants, tree_rss_bytes, wait_gone  # noqa: E402
from tests.service.conftest import digits_npz  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPEC = {"n_members": 2, "n_epochs": 6, "hidden_units": 32, "batch_size": 8, "random_state": 0}
NO_ADA = {"enabled": False}
SERVER_ENV = {"CURATE_EXPLAIN_MAX_EXAMPLES": "0"}


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
        self.work.mkdir(parents=True, exist_ok=True)
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


def timed_delete(srv: Server, dataset_id: str, kill_when: Callable[[], None] | None) -> tuple[float, str]:
    """DELETE /datasets/{id}; once `kill_when()` returns, SIGKILL the server (None: no kill).
    Returns (seconds until the reply or the kill, the reply's status or "no reply")."""
    reply: list[str] = []

    def send() -> None:
        try:
            reply.append(str(httpx.delete(f"{srv.url}/datasets/{dataset_id}", timeout=60).status_code))
        except httpx.HTTPError:
            reply.append("no reply")

    sender = threading.Thread(target=send)
    started = time.monotonic()
    sender.start()
    if kill_when is not None:
        kill_when()
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(60)
    sender.join()
    return time.monotonic() - started, reply[0]


def after(seconds: float) -> Callable[[], None]:
    return lambda: time.sleep(seconds)


def once_gone(path: Path, timeout: float = 10.0) -> Callable[[], None]:
    """Returns when `path` no longer exists: the delete's rows are committed and its files are
    being removed (rows first, then files), so a kill now leaves the rest of the files behind."""
    def wait() -> None:
        deadline = time.monotonic() + timeout
        while path.exists() and time.monotonic() < deadline:
            pass  # a spin with a deadline: the window is a few milliseconds wide
    return wait


def delete_outcome(k: Case, dataset_id: str) -> dict[str, object]:
    """After a restart: is the dataset kept or gone, and do its files agree with its rows?"""
    srv = k.server()
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        listed = dataset_id in [d["dataset_id"] for d in c.get("/datasets").json()]
        code = c.get(f"/datasets/{dataset_id}").status_code
    srv.stop()
    jobs_left = [p.name for p in (k.data / "jobs").iterdir()] if (k.data / "jobs").exists() else []
    plots = k.data / "exports" / "plots"
    plots_left = [p.name for p in plots.iterdir()] if plots.exists() else []
    folder = (k.data / "datasets" / dataset_id).exists()
    return {"status": code, "kept": listed, "consistent": listed == folder == bool(jobs_left) == bool(plots_left),
            "job_folders_left": len(jobs_left), "plots_left": len(plots_left)}


def kill9_mid_delete(k: Case, work: Path, fractions: tuple[float, ...] = (0.5, 1.0, 1.5), n_jobs: int = 4,
                     n_folder_kills: int = 3) -> None:
    """kill -9 while DELETE /datasets runs. One data dir with a bigger dataset (all 1,797 digits),
    `n_jobs` finished jobs and their plots is made once; an uninterrupted delete on a copy of it
    is timed. Each trial restores the copy, kills the server either at a share of that time or the
    moment the first job folder is gone (rows committed, files half removed: the crash that
    left job folders forever), restarts it and checks that rows and files agree."""
    npz = digits_npz(work / "digits-all.npz", n=1797)[0]
    srv = k.server()
    job_ids = []
    with httpx.Client(base_url=srv.url, timeout=120) as c:
        ds = c.post("/datasets", params={"filename": npz.name}, content=npz.read_bytes()).json()
        for seed in range(n_jobs):
            job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "adaboost": NO_ADA,
                                        "spec": {**SPEC, "batch_size": 128, "random_state": seed}}).json()
            assert wait_for(c, job["job_id"], ("succeeded", "failed"), timeout=600)["status"] == "succeeded"
            c.get(f"/ui/jobs/{job['job_id']}/dynamics.png")
            job_ids.append(job["job_id"])
    srv.stop()
    template = k.work / "template"
    shutil.copytree(k.data, template)

    def restore() -> Server:
        shutil.rmtree(k.data)
        shutil.copytree(template, k.data)
        return k.server()

    uninterrupted, code = timed_delete(restore(), ds["dataset_id"], None)
    plans = [(f"{fraction:g} x {uninterrupted * 1000:.0f} ms", after(fraction * uninterrupted)) for fraction in fractions]
    plans += [("first job folder gone", once_gone(k.data / "jobs" / job_ids[0]))] * n_folder_kills
    trials = []
    for kill_at, kill_when in plans:
        srv = restore()
        children = descendants(srv.proc.pid)
        waited, reply = timed_delete(srv, ds["dataset_id"], kill_when)
        left = wait_gone(children, timeout=10)
        k.row["orphans"] = int(k.row["orphans"]) + len(left)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        files = {"job_folders_at_kill": sum((k.data / "jobs" / j).exists() for j in job_ids)}
        trials.append({"kill_at": kill_at, "killed_after_ms": round(waited * 1000), "reply": reply, **files,
                       **delete_outcome(k, ds["dataset_id"])})
    k.row["codes"] = [code] + [t["status"] for t in trials]
    k.row["matches"] = all(t["consistent"] for t in trials)
    k.row["trials"] = trials
    mid = [t for t in trials if not t["kept"] and 0 < int(t["job_folders_at_kill"])]
    k.row["note"] = (f"uninterrupted delete {uninterrupted * 1000:.0f} ms; {len(trials)} kills, "
                     f"{sum(t['reply'] == 'no reply' for t in trials)} before the reply; kept "
                     f"{sum(bool(t['kept']) for t in trials)}, deleted {sum(not t['kept'] for t in trials)}, of "
                     f"which {len(mid)} with job folders still on disk at the kill; job folders left after "
                     f"restart where deleted: {sum(int(t['job_folders_left']) for t in trials if not t['kept'])}")


def run_cases(work: Path) -> tuple[list[dict], dict[str, list]]:
    rows: list[dict] = []
    npz = digits_npz(work / "digits.npz")[0]
    baseline: dict[str, list] = {}

    with case("uninterrupted", work, rows) as k:
        srv = k.server()
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            _, job_id = submit(c, npz)
            k.row["codes"] = [wait_for(c, job_id, ("succeeded", "failed"))["status"]]
            baseline.update(scores(c, job_id))
            k.row["matches"] = "baseline"

    for name, sig in (("kill9_server_training", signal.SIGKILL), ("sigterm_server_training", signal.SIGTERM)):
        with case(name, work, rows) as k:
            srv = k.server()
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                _, job_id = submit(c, npz)
                wait_for(c, job_id, ("running",))
                wait_workers(srv.proc.pid)
            kill_parent(k, srv, sig)
            srv = k.server()  # the restarted server resumes its own interrupted job
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                job = wait_for(c, job_id, ("succeeded", "failed", "cancelled"))
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
        kill9_mid_delete(k, work)

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
        # the first 12-hex word of stderr is the dataset's id ("dataset <id>: 300 examples"): take
        # the job's from the cancel message ("job <id> cancelled by SIGINT ...; curate retry <id>")
        named = re.search(r"curate retry ([0-9a-f]{12})\b", err) or re.search(r"\bjob ([0-9a-f]{12})\b", err)
        job_id = named.group(1) if named else None
        if job_id:
            retry = subprocess.run([*cli, "retry", job_id, "--data-dir", str(k.data)], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=600)
            k.row["codes"].append(f"retry exit {retry.returncode}")
            srv = k.server()
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                job = wait_for(c, job_id, ("succeeded", "failed", "cancelled"), timeout=30)
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
            wait_for(c, job_id, ("succeeded", "failed"))
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
    command = "OMP_NUM_THREADS=1 python benchmarks/faults.py"
    report = {"command": command, "machine": machine(), "spec": SPEC, "seconds": round(time.time() - started),
              "cases": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = ["# Fault cases (issue 15)\n", f"`{command}` on {machine()['platform']}, {os.cpu_count()} CPUs, "
             f"{report['seconds']} s; digits 300 examples, 2 members x {SPEC['n_epochs']} epochs, AdaBoost off.\n",
             "Targets: 0 orphans, 0 bytes outside the data dir, no 5xx, peak RSS under 2 GB for uploads, "
             "identical results.\n", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    trials = next((r.get("trials") for r in rows if r["case"] == "kill9_server_delete"), None)
    if trials:
        keys = ("kill_at", "killed_after_ms", "reply", "job_folders_at_kill", "kept", "status", "job_folders_left",
                "plots_left", "consistent")
        lines += ["", "kill -9 during DELETE /datasets (all 1,797 digits, four finished jobs and their plots; each "
                  "trial on a fresh copy of one data dir, killed at a share of an uninterrupted delete's time or "
                  "the moment the first job folder is gone, then restarted; job_folders_at_kill: folders still on "
                  "disk right after the kill, job_folders_left: after the restart):\n",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(t[key]) for key in keys) + " |" for t in trials]
    (RESULTS / "faults.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
