"""Scoring at scale: all scores from stored predictions of 1M examples x 16 members x 30 epochs.

Target (issue 8): <= 60 s and <= 4 GB on 2 cores. Two phases in separate processes, so the
peak memory of scoring is its own:
  build  synthetic learning dynamics committed through the engine's own per-epoch commit path
  score  finalize_job (stream epochs from DuckDB -> curves -> scores -> write tables), timed

    python benchmarks/scoring_scale.py [--examples 1000000 --members 16 --epochs 30] [--quick]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from models.predictions import EpochRecord
from models.spec import AdaBoostSpec, GroupTask, TrainSpec
from service.engine.engine import Engine
from service.engine.finalize import finalize_job
from service.settings import Settings
from service.store import jobs
from service.store.results import commit_epoch

N_CLASSES = 10


def build(data_dir: Path, n: int, members: int, epochs: int, seed: int = 0) -> str:
    """A dataset and a 'running' job whose every epoch is committed with synthetic records."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    path = data_dir / "synthetic.npz"
    np.savez(path, X=rng.normal(size=(n, 4)).astype(np.float32), y=y)
    engine = Engine(Settings(data_dir=data_dir / "curate"))
    ds = engine.add_dataset(path)
    spec = TrainSpec(n_members=members, n_epochs=epochs, random_state=seed)
    job_id = engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False))
    attempt = jobs.start_attempt(engine.store, job_id)
    task = GroupTask(job_id=job_id, attempt=attempt, model="ensemble", group=0, members=tuple(range(members)),
                     spec=spec, adaboost=AdaBoostSpec(enabled=False), x_path="", y_path="", n_classes=N_CLASSES)
    difficulty = rng.beta(2, 5, n)  # most examples easy, a tail of hard ones
    for epoch in range(epochs + 1):
        p_right = np.clip(epoch / epochs * (1.2 - difficulty), 0.05, 0.99)
        right = rng.random((members, n)) < p_right
        other = (y + rng.integers(1, N_CLASSES, (members, n))) % N_CLASSES
        pred = np.where(right, y, other).astype(np.int16)
        prob = np.where(right, 0.5 + 0.5 * rng.random((members, n)), 0.5 * rng.random((members, n))).astype(np.float32)
        probs = np.full((n, N_CLASSES), 0.0, dtype=np.float32)
        np.add.at(probs, (np.arange(n), y), prob.sum(axis=0))
        record = EpochRecord(group=0, epoch=epoch, members=tuple(range(members)), predicted_label=pred,
                             label_prob=prob, margin=(prob - 0.5).astype(np.float32),
                             held_out=np.zeros((members, n), bool), prob_sum=probs,
                             heldout_prob_sum=np.zeros_like(probs), train_loss=float("nan"), seconds=0.0)
        commit_epoch(engine.store, task, record)
    engine.close()
    return job_id


def score(data_dir: Path, job_id: str) -> dict:
    engine = Engine(Settings(data_dir=data_dir / "curate"))
    job = jobs.get_job(engine.store, job_id)
    started = time.perf_counter()
    scores = finalize_job(engine.store, engine.settings, job)
    seconds = time.perf_counter() - started
    engine.close()
    return {"seconds": seconds, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "estimated_n_errors": scores.estimated_n_errors,
            "split_counts": {s: int((scores.split == s).sum()) for s in ("easy", "intermediate", "hard")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=1_000_000)
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="100k examples")
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--phase", choices=["all", "build", "score"], default="all")
    ap.add_argument("--dir")
    ap.add_argument("--job")
    args = ap.parse_args()
    n = 100_000 if args.quick else args.examples
    if args.phase == "build":
        print(json.dumps({"job_id": build(Path(args.dir), n, args.members, args.epochs)}))
        return
    if args.phase == "score":
        print(json.dumps(score(Path(args.dir), args.job)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        me = [sys.executable, __file__, "--examples", str(n), "--members", str(args.members),
              "--epochs", str(args.epochs), "--dir", tmp]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        t = time.perf_counter()
        built = json.loads(subprocess.run([*me, "--phase", "build"], check=True, capture_output=True, text=True,
                                          env=env).stdout.strip().splitlines()[-1])
        build_s = time.perf_counter() - t
        db_gb = (Path(tmp) / "curate" / "curate.duckdb").stat().st_size / 1024**3
        result = json.loads(subprocess.run([*me, "--phase", "score", "--job", built["job_id"]], check=True,
                                           capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1])
    rows = n * args.members * (args.epochs + 1)
    report = {"command": " ".join(["python", "benchmarks/scoring_scale.py", *sys.argv[1:]]),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                          "load_average": os.getloadavg()},
              "examples": n, "members": args.members, "epochs": args.epochs, "prediction_rows": rows,
              "build_and_commit_seconds": build_s, "db_gb": db_gb, **result,
              "targets": {"seconds<=60": result["seconds"] <= 60, "peak_rss_gb<=4": result["peak_rss_gb"] <= 4}}
    table = Table(title=f"scoring {n:,} examples x {args.members} members x {args.epochs + 1} epochs ({rows:,} rows)")
    for col in ("phase", "figure"):
        table.add_column(col)
    table.add_row("build + commit (engine path)", f"{build_s:.1f} s, DuckDB {db_gb:.2f} GB")
    table.add_row("score (finalize_job)", f"{result['seconds']:.1f} s  (target <= 60 s)")
    table.add_row("peak RSS of scoring", f"{result['peak_rss_gb']:.2f} GB  (target <= 4 GB)")
    Console().print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "scoring_scale_quick" if args.quick else "scoring_scale"
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{name}.md").write_text(
        f"# Scoring at scale\n\nCommand: `{report['command']}`\n\nMachine: {report['machine']}\n\n"
        f"| what | figure | target |\n|---|---|---|\n"
        f"| prediction rows | {rows:,} | |\n| build + commit through the engine | {build_s:.1f} s | |\n"
        f"| DuckDB file | {db_gb:.2f} GB | |\n"
        f"| scoring (finalize_job: stream epochs, score, write tables) | {result['seconds']:.1f} s | <= 60 s "
        f"{'PASS' if result['seconds'] <= 60 else 'MISS'} |\n"
        f"| peak RSS of the scoring process | {result['peak_rss_gb']:.2f} GB | <= 4 GB "
        f"{'PASS' if result['peak_rss_gb'] <= 4 else 'MISS'} |\n")


if __name__ == "__main__":
    main()
