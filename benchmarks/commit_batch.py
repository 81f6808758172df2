"""What committing a job's AdaBoost stages costs the engine: one transaction per stage, or one per
batch of the stages that reached it together (service.store.results.commit_epochs).

For each dataset size, a fresh store gets the 101 stage records (stage 0 and 100 rounds, the
default AdaBoostSpec) of a real AdaBoost fit on digits-like data, committed one per transaction
and then all in one, into two jobs; the table gives the wall time of each and the rows stored.

    python benchmarks/commit_batch.py            # prints a table, writes results/commit_batch.{md,json}
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import markdown_table, print_tables  # noqa: E402
from models.adaboost import AdaBoostBaseline, boosting_features  # noqa: E402
from models.spec import AdaBoostSpec, GroupTask, TrainSpec  # noqa: E402
from service.engine.engine import Engine  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.store import jobs  # noqa: E402
from service.store.results import commit_epochs  # noqa: E402


def digits_like(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n examples of scikit-learn's digits, repeated with small noise past its 1,797."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = np.arange(n) % len(y)
    return (X[idx] + rng.normal(0, 0.5, (n, X.shape[1]))).astype(np.float32), y[idx]


def measure(n: int, rounds: int, data_dir: Path) -> dict:
    X, y = digits_like(n)
    np.savez(data_dir / "d.npz", X=X, y=y)
    records = list(AdaBoostBaseline(n_rounds=rounds, learning_rate=0.5).fit(boosting_features(X), y)
                   .stage_records(y, member=0, group=0))
    engine = Engine(Settings(data_dir=data_dir / "curate"))
    ds = engine.add_dataset(data_dir / "d.npz")
    row: dict[str, object] = {"n_examples": n, "records": len(records)}
    for how in ("one per transaction", "one batch"):
        spec = TrainSpec(n_members=2, n_epochs=1)
        job_id = engine.submit(ds.dataset_id, spec, AdaBoostSpec(n_rounds=rounds))
        attempt = jobs.start_attempt(engine.store, job_id)
        task = GroupTask(job_id=job_id, attempt=attempt, model="adaboost", group=0, members=(0,), spec=spec,
                         adaboost=AdaBoostSpec(n_rounds=rounds), x_path="", y_path="", n_classes=10)
        started = time.perf_counter()
        if how == "one batch":
            commit_epochs(engine.store, task, records)
        else:
            for record in records:
                commit_epochs(engine.store, task, [record])
        row[how] = round(time.perf_counter() - started, 3)
        with engine.store.reader() as cur:
            stored = cur.execute("SELECT count(*) FROM predictions WHERE job_id = ?", [job_id]).fetchone()[0]
        if stored != len(records) * n:
            raise AssertionError(f"{how}: {stored} rows stored, expected {len(records) * n}")
    engine.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1797, 10000])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(n, args.rounds, Path(tmp)))
    header = ["examples", "records", "one per transaction s", "one batch s", "speed-up"]
    body = [[str(r["n_examples"]), str(r["records"]), f"{r['one per transaction']:.2f}", f"{r['one batch']:.2f}",
             f"{r['one per transaction'] / r['one batch']:.1f}x"] for r in rows]  # type: ignore[operator]
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "load_average_before": [round(v, 2) for v in load_before],
               "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    from rich.console import Console

    print_tables(Console(), [(f"Committing {args.rounds} AdaBoost rounds (+ stage 0)", header, body)])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "commit_batch.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    text = (f"# Committing AdaBoost's stages: one transaction each, or one batch\n\nCommand: `python "
            f"benchmarks/commit_batch.py --sizes {' '.join(map(str, args.sizes))} --rounds {args.rounds}`\n\n"
            f"Machine: {machine}\n\nWall time of the engine's commits (DuckDB file, one writer).\n\n"
            + markdown_table(header, body) + "\n")
    (args.out / "commit_batch.md").write_text(text)


if __name__ == "__main__":
    main()
