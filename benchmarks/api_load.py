"""Benchmark: REST read latency under load while a job trains.

    python benchmarks/api_load.py [--clients 50] [--seconds 30] [--examples 100000]
        [--think-ms 0] [--also-think-ms MS] [--quick] [--profile | --no-profile] [--keep]
        [--out benchmarks/results]

Starts a real `python -m service serve` on a free loopback port (its own data directory), uploads
a seeded synthetic tabular NPZ (20 features, 10 classes, Gaussian class clusters, 5 % of labels
flipped), runs a small job to completion (4 members x 3 epochs, 32 hidden units, AdaBoost 5
rounds) and times it, then submits a long job on the same dataset (batches of 2048: short epochs,
each committed to DuckDB) so that training goes on during the load. `--clients` closed-loop
clients (one `httpx.AsyncClient` and connection each, no pause between requests unless
--think-ms) then call the read endpoints of the finished job for `--seconds`, choosing one of
ENDPOINTS uniformly at random each time. Errors are non-2xx answers and exceptions (10 s timeout).
Target: p99 < 50 ms over all requests and 0 errors. The load clients run on the same machine as the
server and the training; the report gives the CPU each used, and what other processes used.

`--also-think-ms MS`: right after that headline run, a second load phase on the same server and
training with each client pausing MS between requests, reported as a second table (the verdict is
the headline's).

If the target is missed (or with --profile): each endpoint single-client (no concurrency) while
training runs and again once it is cancelled, py-spy on the server during a 10 s burst of the same
load, and, after the server stops, `service/read/queries.py` timed in-process against its DuckDB file,
with variants of the examples query that drop one part each.
`--quick`: 10 clients, 5 s, 20,000 examples. Writes `<out>/api_load.json` and `.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `service` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.live_server import Server  # noqa: E402
from benchmarks.report import markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENDPOINTS = ("job", "examples", "examples_hard", "mislabeled", "dynamics", "adaboost", "health")
FINISHED_JOB = {"spec": {"n_members": 4, "n_epochs": 3, "hidden_units": 32, "device": "cpu", "random_state": 0},
                "adaboost": {"n_rounds": 5}}
TRAINING_JOB = {"spec": {"n_members": 4, "n_epochs": 1000, "hidden_units": 32, "batch_size": 2048, "device": "cpu",
                         "random_state": 1}, "adaboost": {"enabled": False}}  # short epochs: commits during the load
TARGET_P99_MS = 50.0
FRAME = re.compile(r"(.*) \((.*):\d+\)")
IDLE_LEAVES = {"Condition.wait (threading.py)", "Event.wait (threading.py)", "EpollSelector.select (selectors.py)",
               "_PollLikeSelector.select (selectors.py)",
               "Thread.join (threading.py)", "Thread._wait_for_tstate_lock (threading.py)"}
PLUMBING_FILES = {"threading.py", "_asyncio.py", "runners.py", "base_events.py", "events.py", "core.py", "main.py",
                  "cli.py", "__main__.py", "_compat.py", "server.py", "_thread.py", "queue.py", "<frozen runpy>"}
console = Console()


# --- server and data -------------------------------------------------------------------------------

def save_synthetic_npz(path: Path, n_examples: int, n_features: int = 20, n_classes: int = 10,
                       noise: float = 0.05, random_state: int = 0) -> Path:
    """Gaussian clusters around random class centres (learnable, with overlap) and flipped labels."""
    rng = np.random.default_rng(random_state)
    centres = rng.normal(0.0, 1.0, (n_classes, n_features))
    y = rng.integers(0, n_classes, n_examples)
    X = (centres[y] + rng.normal(0.0, 1.0, (n_examples, n_features))).astype(np.float32)  # (n, d)
    flipped = rng.choice(n_examples, size=int(noise * n_examples), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    np.savez(path, X=X, y=y.astype(np.int64))
    return path


def wait_for_job(client: httpx.Client, job_id: str, done: Callable[[dict], bool], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if done(job):
            return job
        time.sleep(0.5)
    raise RuntimeError(f"job {job_id} still {job['status']} after {timeout:.0f} s")


def prepare(client: httpx.Client, work: Path, n_examples: int) -> dict:
    """Upload, train the finished job (timed), start the training job; ids and timings."""
    started = time.perf_counter()
    path = save_synthetic_npz(work / "synthetic.npz", n_examples)
    ds = client.post("/datasets", params={"filename": path.name}, content=path.read_bytes(), timeout=300)
    ds.raise_for_status()
    dataset_id = ds.json()["dataset_id"]
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    job = client.post("/jobs", json={"dataset_id": dataset_id, **FINISHED_JOB}).json()
    finished = wait_for_job(client, job["job_id"], lambda j: j["status"] in ("succeeded", "failed", "cancelled"), 900)
    if finished["status"] != "succeeded":
        raise RuntimeError(f"setup job {finished['status']}: {finished['error']}")
    train_s = time.perf_counter() - started
    training = client.post("/jobs", json={"dataset_id": dataset_id, **TRAINING_JOB}).json()
    wait_for_job(client, training["job_id"], lambda j: j["status"] == "running" and j["epochs_done"] >= 1, 600)
    return {"dataset_id": dataset_id, "job_id": job["job_id"], "training_job_id": training["job_id"],
            "upload_s": upload_s, "finished_job_s": train_s, "summary": finished["summary"]}


# --- load --------------------------------------------------------------------------------------------

def endpoint_path(name: str, job_id: str, n_examples: int, rng: random.Random) -> str:
    return {"job": f"/jobs/{job_id}",
            "examples": f"/jobs/{job_id}/examples?limit=100&offset={rng.randrange(max(n_examples - 100, 1))}",
            "examples_hard": f"/jobs/{job_id}/examples?split=hard&limit=50",
            "mislabeled": f"/jobs/{job_id}/mislabeled?limit=50",
            "dynamics": f"/jobs/{job_id}/dynamics", "adaboost": f"/jobs/{job_id}/adaboost",
            "health": "/health"}[name]


async def client_loop(url: str, job_id: str, n_examples: int, deadline: float, think_s: float,
                      seed: int, samples: list[tuple[str, float, int]]) -> None:
    """One closed-loop client: request, record (endpoint, seconds, status; 0 = exception), repeat."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=httpx.Limits(max_connections=1)) as client:
        while time.perf_counter() < deadline:
            name = rng.choice(ENDPOINTS)
            started = time.perf_counter()
            try:
                status = (await client.get(endpoint_path(name, job_id, n_examples, rng))).status_code
            except httpx.HTTPError:
                status = 0
            samples.append((name, time.perf_counter() - started, status))
            if think_s:
                await asyncio.sleep(think_s)


def run_load(url: str, job_id: str, n_examples: int, n_clients: int, seconds: float,
             think_s: float = 0.0, seed: int = 0) -> tuple[list[tuple[str, float, int]], float]:
    samples: list[tuple[str, float, int]] = []

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(url, job_id, n_examples, started + seconds, think_s, seed + i, samples)
                               for i in range(n_clients)))
        return time.perf_counter() - started

    return samples, asyncio.run(main())


def summarize(samples: list[tuple[str, float, int]], elapsed: float) -> dict:
    rows = {}
    for name in (*ENDPOINTS, "overall"):
        picked = [(s, c) for n, s, c in samples if name == "overall" or n == name]
        ms = np.array([s for s, _ in picked]) * 1000
        errors = sum(1 for _, c in picked if not 200 <= c < 300)
        q = np.percentile(ms, [50, 90, 99]) if len(ms) else [float("nan")] * 3
        rows[name] = {"n": len(picked), "p50_ms": float(q[0]), "p90_ms": float(q[1]), "p99_ms": float(q[2]),
                      "max_ms": float(ms.max()) if len(ms) else float("nan"),
                      "mean_ms": float(ms.mean()) if len(ms) else float("nan"), "errors": errors}
    codes = Counter(c for _, _, c in samples if not 200 <= c < 300)
    return {"endpoints": rows, "elapsed_s": elapsed, "requests_per_s": len(samples) / elapsed,
            "error_codes": {str(k): v for k, v in codes.items()}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU seconds spent busy by the whole machine, every process (Linux /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def descendant_pids(pid: int) -> list[int]:
    """Children, grandchildren, ...: training workers fork from a fork server, a child of the server."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            out += [child, *descendant_pids(child)]
    return out


def measured_load(server: Server, client: httpx.Client, ids: dict, n_examples: int, n_clients: int,
                  seconds: float, think_s: float) -> dict:
    """One load phase with training state, load average and CPU use around it."""
    pid = server.proc.pid
    before = client.get(f"/jobs/{ids['training_job_id']}").json()
    procs = {"server": [pid], "workers": descendant_pids(pid)}
    cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in procs.items()}
    own0, machine0 = time.process_time(), busy_cpu_seconds()
    samples, elapsed = run_load(server.url, ids["job_id"], n_examples, n_clients, seconds, think_s)
    cpu = {k: (sum(cpu_seconds(p) for p in v) - cpu0[k]) / elapsed for k, v in procs.items()}
    cpu["load_client"] = (time.process_time() - own0) / elapsed
    cpu["other_processes"] = (busy_cpu_seconds() - machine0) / elapsed - sum(cpu.values())
    loadavg = os.getloadavg()
    after = client.get(f"/jobs/{ids['training_job_id']}").json()
    return {**summarize(samples, elapsed), "loadavg_after": loadavg, "cpu_cores_used": cpu,
            "training": {"status_before": before["status"], "status_after": after["status"],
                         "epochs_done_before": before["epochs_done"], "epochs_done_after": after["epochs_done"],
                         "running_throughout": before["status"] == after["status"] == "running"}}


# --- profile -----------------------------------------------------------------------------------------

def single_client(url: str, job_id: str, n_examples: int, reps: int) -> dict[str, dict[str, float]]:
    """Each endpoint `reps` times in a row, one connection: service time without queueing."""
    rng = random.Random(1)
    out = {}
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for name in ENDPOINTS:
            ms = []
            for _ in range(reps):
                started = time.perf_counter()
                client.get(endpoint_path(name, job_id, n_examples, rng)).raise_for_status()
                ms.append((time.perf_counter() - started) * 1000)
            out[name] = {"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                         "max_ms": float(max(ms))}
    return out


def pyspy_profile(server: Server, ids: dict, n_examples: int, n_clients: int, seconds: float, raw: Path) -> dict:
    """py-spy (raw collapsed stacks) on the server during a burst of the same load; top frames."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        return {"skipped": "py-spy is not installed"}
    spy = subprocess.Popen([str(exe), "record", "--pid", str(server.proc.pid), "--duration", str(int(seconds)),
                            "--rate", "100", "--format", "raw", "--nonblocking", "--output", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let it attach
    samples, elapsed = run_load(server.url, ids["job_id"], n_examples, n_clients, seconds - 1.0)
    spy.wait(60)
    if not raw.exists():
        return {"skipped": f"py-spy failed: {spy.stderr.read().decode()[-500:]}"}
    return {"load": summarize(samples, elapsed)["endpoints"]["overall"], **top_frames(raw)}


def top_frames(raw: Path, n_top: int = 20) -> dict:
    """Self and inclusive sample shares per function from py-spy's raw output ("f1;f2;...;fn count").

    Stacks that end waiting (a threadpool worker with no request, the event loop in select) are
    counted apart as idle; shares are of the busy samples. Thread and event-loop plumbing is left
    out of the inclusive list (it contains everything)."""
    self_n: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    busy = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # "func (path/to/file.py:12)" -> "func (file.py)": one row per function, not per line
        frames = [f"{m[1]} ({Path(m[2]).name})" for m in map(FRAME.fullmatch, stack.split(";")) if m]
        if not frames or not count.isdigit():
            continue
        if frames[-1] in IDLE_LEAVES:
            idle += int(count)
            continue
        busy += int(count)
        self_n[frames[-1]] += int(count)
        for f in set(frames):
            if f.rsplit("(", 1)[-1].rstrip(")") not in PLUMBING_FILES:
                incl[f] += int(count)
    share = lambda c: {k: round(v / max(busy, 1), 4) for k, v in c.most_common(n_top)}  # noqa: E731
    return {"busy_samples": busy, "idle_samples": idle, "self": share(self_n), "inclusive": share(incl)}


def time_call(fn: Callable[[], object], reps: int) -> dict[str, float]:
    ms = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - started) * 1000)
    return {"min_ms": float(min(ms)), "p50_ms": float(np.median(ms)), "max_ms": float(max(ms))}


# Variants of the queries behind the examples and dynamics endpoints, each dropping or moving one part.
SCORES_ONLY = "SELECT * FROM example_scores WHERE job_id = ? ORDER BY example_id LIMIT 100 OFFSET ?"
SCORES_EXAMPLES = ("SELECT s.*, e.source FROM example_scores s JOIN examples e ON e.dataset_id = ? "
                   "AND e.example_id = s.example_id WHERE s.job_id = ? ORDER BY s.example_id LIMIT 100 OFFSET ?")
PAGE_FIRST = """
    WITH page AS (SELECT * FROM example_scores WHERE job_id = $job ORDER BY example_id LIMIT 100 OFFSET $offset)
    SELECT p.example_id, e.source, $names[p.given_label + 1] AS given_label, p.consistency, p.consensus,
           $names[p.consensus_label + 1] AS consensus_label, p.heldout_consistency, p.accessibility,
           p.first_learned_epoch, p.mean_label_prob, p.split, p.mislabel_score, p.is_suspected_mislabel,
           $names[p.suggested_label + 1] AS suggested_label, p.adaboost_accessibility, p.family_agreement
    FROM page p JOIN examples e ON e.dataset_id = $dataset AND e.example_id = p.example_id
    ORDER BY p.example_id"""
DYNAMICS_ONE_PASS = ("SELECT epoch, least(floor(consistency * $bins), $bins - 1)::INT, "
                     "least(floor(consensus * $bins), $bins - 1)::INT, count(*) FROM example_epoch_stats "
                     "WHERE job_id = $job GROUP BY ALL")


def query_costs(data_dir: Path, ids: dict, n_examples: int, reps: int = 20) -> dict[str, dict[str, float]]:
    """After the server stopped: `service/read/queries.py` and variants, in-process on its DuckDB file."""
    from service.read import queries
    from service.read.cache import build_score_index
    from service.result_cache import ResultCache
    from service.schemas import ExampleOut, ExamplePage
    from service.store import jobs
    from service.store.db import Store

    store = Store(data_dir / "curate.duckdb")
    job_id, dataset_id = ids["job_id"], ids["dataset_id"]
    rng = random.Random(2)
    offset = lambda: rng.randrange(max(n_examples - 100, 1))  # noqa: E731
    names = queries.get_dataset(store, dataset_id).class_names

    def sql(query: str, params: Callable[[], list | dict]) -> Callable[[], None]:
        def run() -> None:
            with store.reader() as cur:
                cur.sql(query, params=params()).fetchall()
        return run

    page = queries.score_rows(store, job_id, limit=100).to_pylist()
    in_memory = queries.score_rows(store, job_id)  # a whole finished job, as a cache would hold it
    cache = ResultCache(2**40)  # what the read endpoints use (service/result_cache.py), filled once here
    queries.example_page_json(store, cache, job_id)
    queries.dynamics_json(store, cache, job_id)
    calls = {
        "reader() cursor + SELECT 1": sql("SELECT 1", list),
        "jobs.get_job": lambda: jobs.get_job(store, job_id),
        "score_rows(limit=100, offset=random)": lambda: queries.score_rows(store, job_id, limit=100, offset=offset()),
        "score_rows(split=hard, limit=50)": lambda: queries.score_rows(store, job_id, split="hard", limit=50),
        "score_rows(suspected, by mislabel_score, 50)": lambda: queries.score_rows(
            store, job_id, suspected_only=True, order="mislabel_score", limit=50),
        "count_rows()": lambda: queries.count_rows(store, job_id),
        "dynamics_histograms": lambda: queries.dynamics_histograms(store, job_id),
        "adaboost_curves": lambda: queries.adaboost_curves(store, job_id),
        "variant: example_scores page only (no joins)": sql(SCORES_ONLY, lambda: [job_id, offset()]),
        "variant: + examples join (no class names)": sql(SCORES_EXAMPLES, lambda: [dataset_id, job_id, offset()]),
        "variant: page first, then examples join + $names[label + 1]": sql(PAGE_FIRST, lambda: {
            "job": job_id, "offset": offset(), "names": names, "dataset": dataset_id}),
        "variant: dynamics in one GROUP BY (both histograms)": sql(DYNAMICS_ONE_PASS, lambda: {
            "job": job_id, "bins": 20}),
        "variant: whole job's scores (to cache once)": lambda: queries.score_rows(store, job_id),
        "variant: 100 rows sliced from the cached Arrow table": lambda: in_memory.slice(offset(), 100).to_pylist(),
        "pydantic: ExamplePage of 100 rows -> JSON": lambda: ExamplePage(
            job_id=job_id, total=n_examples, limit=100, offset=0,
            items=[ExampleOut(**r) for r in page]).model_dump_json(),
        "cache fill, once per job: whole job's scores -> rendered rows + sort orders": lambda: build_score_index(
            queries.score_rows(store, job_id)),
        "cache hit: example_page_json(limit=100, offset=random)": lambda: queries.example_page_json(
            store, cache, job_id, limit=100, offset=offset(), memory_only=True),
        "cache hit: example_page_json(split=hard, limit=50)": lambda: queries.example_page_json(
            store, cache, job_id, split="hard", limit=50, memory_only=True),
        "cache hit: job_json": lambda: queries.job_json(store, cache, job_id, memory_only=True),
        "cache hit: dynamics_json": lambda: queries.dynamics_json(store, cache, job_id, memory_only=True),
    }
    try:
        return {name: time_call(fn, reps) for name, fn in calls.items()}
    finally:
        store.close()


def threaded_throughput(data_dir: Path, ids: dict, n_examples: int, seconds: float = 3.0) -> dict[str, float]:
    """score_rows calls per second in-process by Python threads (and DuckDB threads): does it scale?"""
    from service.read import queries
    from service.store.db import Store

    store = Store(data_dir / "curate.duckdb")
    out = {}
    try:
        for n_threads, duckdb_threads in ((1, os.cpu_count()), (4, os.cpu_count()), (16, os.cpu_count()), (4, 1)):
            with store.reader() as cur:
                cur.execute(f"SET threads = {int(duckdb_threads)}")  # a database-wide setting
            counts = [0] * n_threads
            deadline = time.perf_counter() + seconds

            def work(i: int, deadline: float = deadline, counts: list[int] = counts) -> None:  # bound now
                rng = random.Random(i)
                while time.perf_counter() < deadline:
                    queries.score_rows(store, ids["job_id"], limit=100, offset=rng.randrange(n_examples - 100))
                    counts[i] += 1

            threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            out[f"{n_threads} threads, duckdb threads={duckdb_threads}"] = sum(counts) / seconds
    finally:
        store.close()
    return out


# --- report ------------------------------------------------------------------------------------------

def describe_machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            **{p: version(p) for p in ("duckdb", "fastapi", "starlette", "uvicorn", "httpx", "pydantic", "anyio")}}


def print_table(title: str, load: dict) -> None:
    table = Table(title=title)
    for col in ("endpoint", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for name, r in load["endpoints"].items():
        table.add_row(name, str(r["n"]), *(f"{r[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                      str(r["errors"]), style="bold" if name == "overall" else None)
    console.print(table)
    console.print(f"{load['requests_per_s']:.0f} requests/s over {load['elapsed_s']:.1f} s; "
                  f"training {load['training']}; load average {load['loadavg_after']}")


def verdict(load: dict) -> tuple[bool, str]:
    overall = load["endpoints"]["overall"]
    ok = overall["p99_ms"] < TARGET_P99_MS and overall["errors"] == 0
    return ok, (f"{'PASS' if ok else 'MISS'}: p99 {overall['p99_ms']:.1f} ms (target < {TARGET_P99_MS:.0f}), "
                f"{overall['errors']} errors (target 0)")


def md_rows(header: list[str], rows: list[list[str]]) -> list[str]:
    return markdown_table(header, rows).splitlines()


def _cores_busy(cpu: dict) -> str:
    return (f"server {cpu['server']:.2f}, training workers {cpu['workers']:.2f}, load clients "
            f"{cpu['load_client']:.2f}, other processes on the machine (not this benchmark) "
            f"{cpu['other_processes']:.2f}")


def write_markdown(path: Path, result: dict) -> None:
    load, cfg, setup = result["load"], result["config"], result["setup"]
    tr, cpu = load["training"], load["cpu_cores_used"]
    little = 1000 * cfg["clients"] / load["requests_per_s"] - cfg["think_ms"]
    lines = ["# REST read latency under load while a job trains", "",
             f"Command: `{result['command']}`", "", f"Machine: {result['machine']}", "",
             f"Config: {cfg}", "",
             f"Setup: upload {setup['upload_s']:.1f} s; finished job ({FINISHED_JOB}) trained and scored in "
             f"{setup['finished_job_s']:.1f} s (summary {setup['summary']}).", "",
             f"Training during the load: job {TRAINING_JOB}; status {tr['status_before']} -> {tr['status_after']}, "
             f"epochs_done {tr['epochs_done_before']} -> {tr['epochs_done_after']} "
             f"({'running throughout' if tr['running_throughout'] else 'NOT running throughout'}).", "",
             f"Load average (1, 5, 15 min): before setup {_fmt_load(result['loadavg_before'])}, after the load phase "
             f"{_fmt_load(load['loadavg_after'])}. CPU cores busy during the load (of {os.cpu_count()}): "
             f"{_cores_busy(cpu)}.", "",
             f"## Result: {result['verdict']}", "",
             f"{load['requests_per_s']:.0f} requests/s over {load['elapsed_s']:.1f} s; errors by status "
             f"(0 = exception): {load['error_codes'] or 'none'}. Closed loop, so by Little's law the mean latency "
             f"is clients / throughput - think time = {little:.0f} ms; a mean under {TARGET_P99_MS:.0f} ms with "
             f"{cfg['clients']} clients would take more than "
             f"{cfg['clients'] / (TARGET_P99_MS + cfg['think_ms']) * 1000:.0f} requests/s.", ""]
    lines += _load_rows(load)
    also = result.get("also")
    if also:
        a, a_cpu, a_tr = also["load"], also["load"]["cpu_cores_used"], also["load"]["training"]
        lines += ["", f"## Second run, not the headline: think time {also['think_ms']:g} ms", "",
                  f"Right after the headline run, same server, data and training job; each client pauses "
                  f"{also['think_ms']:g} ms between requests{_offered(cfg['clients'], also['think_ms'])}. "
                  f"{also['verdict']}. {a['requests_per_s']:.0f} requests/s "
                  f"over {a['elapsed_s']:.1f} s; errors by status: {a['error_codes'] or 'none'}. Load average after "
                  f"it {_fmt_load(a['loadavg_after'])}; CPU cores busy: {_cores_busy(a_cpu)}; "
                  f"training {a_tr['status_before']} -> {a_tr['status_after']}, "
                  f"epochs_done {a_tr['epochs_done_before']} -> {a_tr['epochs_done_after']}.", ""]
        lines += _load_rows(a)
    prof = result.get("profile")
    if prof:
        lines += ["", "## Profile", "", "Single client, one request at a time (ms, p50 / p90):", ""]
        lines += md_rows(["endpoint", "training running", "training cancelled"],
                         [[k, f"{v['p50_ms']:.1f} / {v['p90_ms']:.1f}",
                           f"{prof['single_idle'][k]['p50_ms']:.1f} / {prof['single_idle'][k]['p90_ms']:.1f}"]
                          for k, v in prof["single_training"].items()])
        lines += ["", "In-process against the DuckDB file after the server stopped, 20 calls each (min is the "
                  "least disturbed by other processes):", ""]
        lines += md_rows(["call", "min ms", "p50 ms", "max ms"],
                         [[k, f"{v['min_ms']:.2f}", f"{v['p50_ms']:.2f}", f"{v['max_ms']:.1f}"]
                          for k, v in prof["queries"].items()])
        lines += ["", f"score_rows calls/s in-process by thread count: {_fmt(prof['threaded'])}", ""]
        spy = prof["pyspy"]
        if "skipped" in spy:
            lines += [f"py-spy: {spy['skipped']}"]
        else:
            lines += [f"py-spy on the server (all threads, 100 Hz) during a 10 s burst of the same load (overall "
                      f"p99 {spy['load']['p99_ms']:.0f} ms): {spy['busy_samples']} busy samples, "
                      f"{spy['idle_samples']} idle (waiting) left out. Share of busy samples:", ""]
            lines += md_rows(["function (inclusive)", "share"], [[f"`{k}`", f"{v:.1%}"]
                                                               for k, v in spy["inclusive"].items()])
            lines += [""] + md_rows(["function (self: on top of the stack)", "share"],
                                    [[f"`{k}`", f"{v:.1%}"] for k, v in spy["self"].items()])
    path.write_text("\n".join(lines) + "\n")


def _offered(n_clients: int, think_ms: float) -> str:
    return f" (at most {n_clients / think_ms * 1000:.0f} requests/s even with instant answers)" if think_ms else ""


def _load_rows(load: dict) -> list[str]:
    return md_rows(["endpoint", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"],
                   [[k, str(r["n"]), *(f"{r[c]:.1f}" for c in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
                     str(r["errors"])] for k, r in load["endpoints"].items()])


def _fmt_load(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())


# --- main --------------------------------------------------------------------------------------------

def profile(server: Server, client: httpx.Client, ids: dict, work: Path, n_examples: int, n_clients: int) -> dict:
    console.print("profile: single client while training runs")
    prof = {"single_training": single_client(server.url, ids["job_id"], n_examples, 20)}
    console.print("profile: py-spy during a 10 s load burst")
    prof["pyspy"] = pyspy_profile(server, ids, n_examples, n_clients, 10.0, work / "pyspy.txt")
    client.delete(f"/jobs/{ids['training_job_id']}")
    wait_for_job(client, ids["training_job_id"], lambda j: j["status"] == "cancelled", 120)
    console.print("profile: single client with training cancelled")
    prof["single_idle"] = single_client(server.url, ids["job_id"], n_examples, 20)
    return prof


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="curate-api-load-"))
    loadavg_before = os.getloadavg()
    server = Server(work / "data").start()
    prof = also = None
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            console.print(f"setup: {args.examples:,} examples, finished job, then a training job ({server.url})")
            ids = prepare(client, work, args.examples)
            console.print(f"setup done: finished job in {ids['finished_job_s']:.1f} s; load for {args.seconds} s")
            load = measured_load(server, client, ids, args.examples, args.clients, args.seconds, args.think_ms / 1000)
            ok, line = verdict(load)
            if args.also_think_ms is not None:
                console.print(f"second load phase: think time {args.also_think_ms:g} ms")
                also = measured_load(server, client, ids, args.examples, args.clients, args.seconds,
                                     args.also_think_ms / 1000)
            if args.profile or (args.profile is None and not ok):
                prof = profile(server, client, ids, work, args.examples, args.clients)
            else:
                client.delete(f"/jobs/{ids['training_job_id']}")
        server.stop()
        if prof is not None:
            console.print("profile: queries in-process against the DuckDB file")
            prof["queries"] = query_costs(work / "data", ids, args.examples)
            prof["threaded"] = threaded_throughput(work / "data", ids, args.examples)
    finally:
        server.stop()
        if args.keep:
            console.print(f"kept {work} (DuckDB file: {work / 'data' / 'curate.duckdb'})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return {"command": "python benchmarks/api_load.py " + " ".join(sys.argv[1:]), "machine": describe_machine(),
            "config": {"clients": args.clients, "seconds": args.seconds, "examples": args.examples,
                       "think_ms": args.think_ms, "endpoints": ENDPOINTS, "target_p99_ms": TARGET_P99_MS},
            "loadavg_before": loadavg_before, "setup": {k: v for k, v in ids.items() if k.endswith(("_s", "summary"))},
            "load": load, "verdict": line, "passed": ok, "profile": prof,
            "also": None if also is None else {"think_ms": args.also_think_ms, "load": also,
                                               "verdict": verdict(also)[1]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause of each client between requests")
    parser.add_argument("--also-think-ms", type=float, default=None,
                        help="then a second load phase with this think time (a second table, not the headline)")
    parser.add_argument("--quick", action="store_true", help="10 clients, 5 s, 20,000 examples")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                        help="profile even on a PASS (--no-profile: never); default: on a MISS")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.examples = 10, 5.0, 20_000
    result = run(args)
    print_table(f"{args.clients} clients x {args.seconds:.0f} s, {args.examples:,} examples", result["load"])
    console.print(result["verdict"], style="green" if result["passed"] else "red")
    if result["also"]:
        print_table(f"second run, think time {args.also_think_ms:g} ms", result["also"]["load"])
        console.print(result["also"]["verdict"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "api_load.json").write_text(json.dumps(result, indent=2, default=str))
    write_markdown(args.out / "api_load.md", result)
    console.print(f"wrote {args.out / 'api_load.json'} and {args.out / 'api_load.md'}")


if __name__ == "__main__":
    main()
