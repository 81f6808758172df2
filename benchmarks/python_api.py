"""Benchmark (issue 18's Measure): the notebook API's overhead over the CLI on the digits job.

    OMP_NUM_THREADS=1 CURATE_TORCH_THREADS=1 python benchmarks/python_api.py [--repeats 3] [--out benchmarks/results]

Both in a fresh subprocess and data dir, wall to wall, the same spec (the default 8 members x 20
epochs, AdaBoost off) on the same digits .npz, runs alternating so that load drifts hit both:
`curate score digits.npz --no-adaboost` against
`python -c "import curate; curate.score('digits.npz', adaboost=False, progress=False)"`.
Writes `<out>/python_api.{json,md}`; the target is at most 5 % slower (medians).
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
from sklearn.datasets import load_digits

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.report import markdown_table  # noqa: E402

CURATE = str(Path(sys.executable).with_name("curate"))
TARGET = 0.05


def _commands(data: Path, data_dir: Path) -> dict[str, list[str]]:
    api = f"import curate; curate.score({str(data)!r}, adaboost=False, progress=False, data_dir={str(data_dir)!r})"
    return {"cli": [CURATE, "score", str(data), "--no-adaboost", "--data-dir", str(data_dir)],
            "api": [sys.executable, "-c", api]}


def time_once(door: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        X, y = load_digits(return_X_y=True)
        data = Path(tmp) / "digits.npz"
        np.savez(data, X=X.astype(np.float32), y=y, class_names=np.array([str(i) for i in range(10)]))
        started = time.perf_counter()
        subprocess.run(_commands(data, Path(tmp) / "curate")[door], check=True, capture_output=True)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {"cli": [], "api": []}
    for _ in range(args.repeats):
        for door in ("cli", "api"):
            seconds[door].append(time_once(door))
    cli, api = statistics.median(seconds["cli"]), statistics.median(seconds["api"])
    overhead = api / cli - 1.0
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "load_1min_before": round(load_before, 1), "load_1min_after": round(os.getloadavg()[0], 1),
               "command": " ".join(["python", *sys.argv])}
    header = ["door (digits 1,797 x 64, 8 members x 20 epochs, AdaBoost off)", "runs (s)", "median (s)"]
    body = [["`curate score` (CLI)", ", ".join(f"{s:.1f}" for s in seconds["cli"]), f"{cli:.1f}"],
            ["`curate.score` (Python)", ", ".join(f"{s:.1f}" for s in seconds["api"]), f"{api:.1f}"]]
    verdict = f"overhead of the Python API: {overhead:+.1%} (target at most {TARGET:.0%}: " \
              f"{'met' if overhead <= TARGET else 'missed'})"
    table = markdown_table(header, body)
    print(table + "\n\n" + verdict)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "python_api.json").write_text(json.dumps(
        {"machine": machine, "seconds": seconds, "median_cli": cli, "median_api": api, "overhead": overhead},
        indent=2) + "\n")
    (args.out / "python_api.md").write_text(
        f"# The Python API against the CLI\n\nCommand: `{machine['command']}`\n\nMachine: "
        + ", ".join(f"{k} {v}" for k, v in machine.items() if k != "command") + f"\n\n{table}\n\n{verdict}\n")


if __name__ == "__main__":
    main()
