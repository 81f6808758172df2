"""Benchmark: torch CPU threads per training worker, the choice behind `Settings.threads_per_worker`.

    python benchmarks/threads.py [--repeats 2] [--out benchmarks/results]

Each workload trains one member group (8 members, `train_group` as a worker runs it) in a fresh
Python process, so the OpenMP settings are read as torch loads:
  - mlp: digits as a table (1,797 x 64), 20 epochs, the default MLP;
  - cnn8: digits as 8x8 images, 6 epochs, the default CNN;
  - cnn28: 2,000 synthetic 28x28 digits, 2 epochs, the default CNN;
under 1 thread, 2 threads with OMP_WAIT_POLICY=PASSIVE (what a worker sets: idle threads sleep) and
2 threads with libgomp's default policy (idle threads spin a while first) and 2 threads spinning
for 20,000 turns only (GOMP_SPINCOUNT). Interleaved, `--repeats`
rounds; with `--busy 1`, beside a process spinning on one core. Also says whether each run's records equal the 1-thread run's bit for bit. Writes
`<out>/threads.{json,md}` (`threads-busy` with --busy) with the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.default_job import cpu_model  # noqa: E402
from benchmarks.report import markdown_table, write_report  # noqa: E402

WORKLOADS = {"mlp": "digits table 1,797 x 64, MLP, 8 x 20", "cnn8": "digits 8x8 images, CNN, 8 x 6",
             "cnn28": "2,000 synthetic 28x28, CNN, 8 x 2"}
# name: (threads, the OpenMP environment)
SETTINGS = {"1 thread": ("1", {"OMP_WAIT_POLICY": "PASSIVE"}),
            "2 threads, PASSIVE": ("2", {"OMP_WAIT_POLICY": "PASSIVE"}),
            "2 threads, spinning (libgomp default)": ("2", {}),
            "2 threads, spin 20k then sleep": ("2", {"GOMP_SPINCOUNT": "20000"})}


def train_once(workload: str, threads: int) -> tuple[float, str]:
    """In this (fresh) process: train the workload's group; (seconds, digest of every record's arrays)."""
    import time

    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    from benchmarks.synthetic import synthetic_digits
    from models.ensemble import train_group
    from models.spec import TrainSpec

    torch.set_num_threads(threads)
    if workload == "cnn28":
        X, y = synthetic_digits(n=2000)
        X, epochs = X[:, None], 2
    else:
        X, y = load_digits(return_X_y=True)
        if workload == "cnn8":
            X, epochs = (X.reshape(-1, 1, 8, 8) * 16).clip(0, 255).astype(np.uint8), 6
        else:
            X, epochs = ((X - X.mean(0)) / (X.std(0) + 1e-6)).astype(np.float32), 20
    spec = TrainSpec(n_members=8, n_epochs=epochs)
    started = time.perf_counter()
    records = list(train_group(X, np.asarray(y, dtype=np.int64), 10, spec, list(range(8))))
    seconds = time.perf_counter() - started
    digest = hashlib.sha256()
    for record in records:  # the predictions, not the timings
        for value in vars(record).values():
            if isinstance(value, np.ndarray):
                digest.update(np.ascontiguousarray(value).tobytes())
    return seconds, digest.hexdigest()[:16]


def run_child(workload: str, threads: str, omp: dict[str, str]) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))} | omp
    done = subprocess.run([sys.executable, __file__, "--child", workload, threads], env=env, check=True,
                          capture_output=True, text=True)
    seconds, digest = done.stdout.split()[-2:]
    return float(seconds), digest


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--busy", type=int, default=0, help="processes spinning on a core throughout, as "
                        "the AdaBoost fit, the engine's commits or another job would (report: threads-busy)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        seconds, digest = train_once(args.child[0], int(args.child[1]))
        print(f"{seconds:.3f} {digest}")
        return {}
    load_before = os.getloadavg()[0]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    workloads = args.workloads.split(",")
    runs: dict[str, dict[str, list[tuple[float, str]]]] = {w: {s: [] for s in SETTINGS} for w in workloads}
    for _ in range(args.repeats):  # interleaved: a drift in the box's speed touches every setting alike
        for workload in workloads:
            for name, (threads, omp) in SETTINGS.items():
                runs[workload][name].append(run_child(workload, threads, omp))
    for proc in busy:
        proc.kill()
    rows = []
    for workload in workloads:
        one = statistics.median(s for s, _ in runs[workload]["1 thread"])
        reference = runs[workload]["1 thread"][0][1]
        for name in SETTINGS:
            seconds = [s for s, _ in runs[workload][name]]
            rows.append({"workload": workload, "setting": name, "seconds": seconds,
                         "median": statistics.median(seconds), "vs_1_thread": statistics.median(seconds) / one,
                         "same_records_as_1_thread": all(d == reference for _, d in runs[workload][name])})
    machine = {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
               "python": platform.python_version(), "busy_processes": args.busy, "load_1min_before": round(load_before, 1),
               "load_1min_after": round(os.getloadavg()[0], 1), "command": " ".join(["python", *sys.argv])}
    header = ["workload", "setting", "runs (s)", "median (s)", "x 1 thread", "records = 1 thread's"]
    body = [[WORKLOADS[r["workload"]], r["setting"], ", ".join(f"{s:.2f}" for s in r["seconds"]),
             f"{r['median']:.2f}", f"{r['vs_1_thread']:.2f}", "yes" if r["same_records_as_1_thread"] else "no"]
            for r in rows]
    table = markdown_table(header, body)
    Console().print(table)
    report = {"machine": machine, "rows": rows}
    write_report(args.out, "threads-busy" if args.busy else "threads", report, [
        "# Torch threads per training worker", "", f"Command: `{machine['command']}`", "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items() if k != "command"), "", table])
    return report


if __name__ == "__main__":
    main()
