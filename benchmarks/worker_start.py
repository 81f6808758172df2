"""How long a LocalExecutor worker takes to start: fork server vs spawn.

Each start method runs in a fresh Python process (so the fork server starts cold), which runs
`--tasks` one-epoch tasks on 300 digits one after another and times, for each, the wall time
from `LocalExecutor.run` to its first record (epoch 0) and to the end.

    python benchmarks/worker_start.py            # prints a table, writes results/worker_start.{md,json}
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import markdown_table, print_tables  # noqa: E402


def measure(method: str, n_tasks: int) -> list[dict]:
    """In this process: run n_tasks tiny tasks with the given start method."""
    import multiprocessing as mp

    import numpy as np
    from sklearn.datasets import load_digits

    from models.spec import AdaBoostSpec, GroupTask, TrainSpec
    from service.engine.executors import local as executors
    if method == "spawn":
        executors.worker_context = lambda: mp.get_context("spawn")
    X, y = load_digits(return_X_y=True)
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "X.npy", X[:300].astype(np.float32))
    np.save(tmp / "y.npy", y[:300].astype(np.int64))
    spec = TrainSpec(n_members=2, n_epochs=1, hidden_units=32, device="cpu")
    rows = []
    for i in range(n_tasks):
        task = GroupTask(job_id=f"bench{i}", attempt=1, model="ensemble", group=0, members=(0, 1), spec=spec,
                         adaboost=AdaBoostSpec(enabled=False), x_path=str(tmp / "X.npy"),
                         y_path=str(tmp / "y.npy"), n_classes=10, n_threads=1)
        started = time.perf_counter()
        first: list[float] = []

        def on_records(task: GroupTask, records: object, first: list[float] = first, started: float = started) -> None:
            if not first:
                first.append(time.perf_counter() - started)

        assert executors.LocalExecutor().run([task], on_records, lambda: False)
        rows.append({"method": method, "task": i + 1, "first_record_s": round(first[0], 3),
                     "done_s": round(time.perf_counter() - started, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--child", choices=["spawn", "forkserver"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.tasks)))
        return
    load_before = os.getloadavg()
    rows = []
    for method in ("spawn", "forkserver"):
        proc = subprocess.run([sys.executable, __file__, "--child", method, "--tasks", str(args.tasks)],
                              capture_output=True, text=True, check=True, cwd=ROOT)
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
    header = ["start method", "task", "to first record s", "to done s"]
    body = [[r["method"], str(r["task"]), f"{r['first_record_s']:.2f}", f"{r['done_s']:.2f}"] for r in rows]
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "load_average_before": [round(v, 2) for v in load_before],
               "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    from rich.console import Console

    print_tables(Console(), [("Worker start-up (1-epoch task, 300 digits, 2 members)", header, body)])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "worker_start.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    text = (f"# Worker start-up: fork server vs spawn\n\nCommand: `python benchmarks/worker_start.py "
            f"--tasks {args.tasks}`\n\nMachine: {machine}\n\nEach method runs in a fresh process, so its first "
            "task includes starting the fork server (interpreter + torch + model code). Every later task "
            "forks from it.\n\n" + markdown_table(header, body) + "\n")
    (args.out / "worker_start.md").write_text(text)


if __name__ == "__main__":
    main()
