"""Benchmark: the default digits job end to end, as a user runs it (issue 12's 20 s budget).

    python benchmarks/default_job.py [--repeats 3] [--out benchmarks/results]

`curate score digits.npz` in a fresh subprocess and data dir, wall to wall (interpreter start,
ingest, 8 members x 20 epochs, AdaBoost on as by default, scoring, DuckDB writes, attributions of
the flagged and hard examples), and once more with `--no-adaboost`. Writes
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


def time_job(extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        X, y = load_digits(return_X_y=True)
        data = Path(tmp) / "digits.npz"
        np.savez(data, X=X.astype(np.float32), y=y, class_names=np.array([str(i) for i in range(10)]))
        started = time.perf_counter()
        subprocess.run([CURATE, "score", str(data), "--data-dir", str(Path(tmp) / "curate"), *extra],
                       check=True, capture_output=True)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    for name, extra in (("default (AdaBoost on)", []), ("--no-adaboost", ["--no-adaboost"])):
        seconds = [time_job(extra) for _ in range(args.repeats)]
        rows.append({"job": name, "seconds": seconds, "median": statistics.median(seconds),
                     "meets_target": max(seconds) < TARGET_SECONDS})
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
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
