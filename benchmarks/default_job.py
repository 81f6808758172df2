"""Benchmark: the default digits job end to end, as a user runs it (issue 12's 20 s budget).

    python benchmarks/default_job.py [--repeats 3] [--out benchmarks/results]

`curate score digits.npz` in a fresh subprocess and data dir, wall to wall (interpreter start,
ingest, 8 members x 20 epochs, AdaBoost on as by default, the low-noise pass (digits' labels are
clean), scoring, DuckDB writes, attributions of the flagged and hard examples), once more with
`--no-adaboost`, once without the low-noise pass and, with `--threads N`, once with CURATE_TORCH_THREADS=N;
interleaved, `--repeats` rounds. Writes
`<out>/default_job.{json,md}` with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from sklearn.datasets import load_digits

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import markdown_table  # noqa: E402

TARGET_SECONDS = 20.0
CURATE = str(Path(sys.executable).with_name("curate"))


def time_job(extra: list[str], env: dict[str, str] | None = None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        X, y = load_digits(return_X_y=True)
        data = Path(tmp) / "digits.npz"
        np.savez(data, X=X.astype(np.float32), y=y, class_names=np.array([str(i) for i in range(10)]))
        started = time.perf_counter()
        subprocess.run([CURATE, "score", str(data), "--data-dir", str(Path(tmp) / "curate"), *extra],
                       check=True, capture_output=True, env={**os.environ, **(env or {})})
        return time.perf_counter() - started


def cpu_model() -> str:
    """The CPU's model name (Linux), else platform.processor(): the boxes this runs on differ (12.6 s on
    one, 17.3 s on another for the same job)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--threads", type=int, default=0,
                        help="also the default job with CURATE_TORCH_THREADS set to this (e.g. 2: as before the "
                             "MLP took one thread, benchmarks/threads.py)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    # digits' labels are clean, so the default job takes the low-noise pass (4 x 10 more under a weaker
    # Jumpout row); the third job turns it off, to show what the pass costs on the same box
    jobs: list[tuple[str, list[str], dict[str, str]]] = [
        ("default (AdaBoost on)", [], {}), ("--no-adaboost", ["--no-adaboost"], {}),
        ("without the low-noise pass (--set low_noise_pass_below=0)", ["--set", "low_noise_pass_below=0"], {})]
    if args.threads:
        jobs.append((f"default, CURATE_TORCH_THREADS={args.threads}", [], {"CURATE_TORCH_THREADS": str(args.threads)}))
    seconds: dict[str, list[float]] = {name: [] for name, _, _ in jobs}
    for _ in range(args.repeats):  # interleaved, so a change in the box's speed touches every job alike
        for name, extra, env in jobs:
            seconds[name].append(time_job(extra, env))
    for name, _, _ in jobs:
        rows.append({"job": name, "seconds": seconds[name], "median": statistics.median(seconds[name]),
                     "meets_target": max(seconds[name]) < TARGET_SECONDS})
    machine = {"platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
               "python": platform.python_version(),
               "load_1min_before": round(load_before, 1), "load_1min_after": round(os.getloadavg()[0], 1),
               "command": " ".join(["python", *sys.argv])}
    header = ["job (digits, 1,797 x 64, 8 members x 20 epochs)", "runs (s)", "median (s)", f"all < {TARGET_SECONDS:.0f} s"]
    body = [[r["job"], ", ".join(f"{s:.1f}" for s in r["seconds"]), f"{r['median']:.1f}",
             "yes" if r["meets_target"] else "**no**"] for r in rows]
    table = markdown_table(header, body)
    Console().print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "default_job.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    (args.out / "default_job.md").write_text(
        f"# The default digits job end to end\n\nCommand: `{machine['command']}`\n\nMachine: "
        + ", ".join(f"{k} {v}" for k, v in machine.items() if k != "command") + f"\n\n{table}\n")


if __name__ == "__main__":
    main()
