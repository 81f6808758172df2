"""Benchmark (issue 18's Measure): your own model through curate.Recorder against Curate's ensemble,
on digits with 10 % planted symmetric label noise, AP of the mislabel score against the planted truth.

    OMP_NUM_THREADS=1 CURATE_TORCH_THREADS=1 python benchmarks/recorder.py [--seeds 0 1] [--out benchmarks/results]

Rows: Curate's ensemble (curate.score, the default spec: 8 Jumpout MLPs x 20 epochs, AdaBoost off:
it does not change the scores); one plain PyTorch MLP (2 x 128 ReLU, Adam 1e-3, batch 32, no
dropout) trained 20 epochs here with every epoch's logits logged (one model: AUM-style margin
scores); four such MLPs of different seeds logged as models 0-3 (consistency x margin). Writes
`<out>/recorder.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import curate  # noqa: E402
from benchmarks.report import markdown_table  # noqa: E402
from examples.python_api import planted_digits, train_my_mlp  # noqa: E402

EPOCHS = 20


def _row(name: str, result: curate.Result, is_flipped: np.ndarray, seconds: float) -> dict:
    scores = result.scores
    flagged = scores["is_suspected_mislabel"].to_numpy()
    return {"method": name, "ap": float(average_precision_score(is_flipped, scores["mislabel_score"])),
            "estimated_errors": int(result.job.estimated_n_errors or 0), "planted": int(is_flipped.sum()),
            "precision": float(is_flipped[flagged].mean()) if flagged.any() else None,
            "recall": float(flagged[is_flipped].mean()), "seconds": round(seconds, 1)}


def run_seed(seed: int, data_dir: Path) -> list[dict]:
    X, y, is_flipped = planted_digits(1797, noise=0.1, seed=seed)
    rows = []
    started = time.perf_counter()
    ensemble = curate.score(X, y, seed=seed, adaboost=False, progress=False, data_dir=data_dir)
    rows.append(_row("Curate ensemble (8 x 20, Jumpout)", ensemble, is_flipped, time.perf_counter() - started))
    for n_models in (1, 4):
        started = time.perf_counter()
        rec = curate.Recorder((X, y), n_classes=10, n_models=n_models, n_epochs=EPOCHS, data_dir=data_dir)
        for model in range(n_models):
            train_my_mlp(X, y, _Model(rec, model), EPOCHS, seed=1000 * seed + model)
        name = "Recorder: 1 PyTorch MLP (margin, AUM-style)" if n_models == 1 else \
            f"Recorder: {n_models} PyTorch MLPs (consistency x margin)"
        rows.append(_row(name, rec.finish(), is_flipped, time.perf_counter() - started))
    for r in rows:
        r["seed"] = seed
    return rows


class _Model:
    """A Recorder seen as one model index, so the example's training loop logs model `model`."""

    def __init__(self, rec: curate.Recorder, model: int) -> None:
        self.rec, self.model = rec, model

    def log(self, epoch: int, ids: np.ndarray, logits: object) -> None:
        self.rec.log(epoch, ids, logits, model=self.model)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows += run_seed(seed, Path(tmp) / "data")
        curate.close()
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "load_1min_before": round(load_before, 1), "load_1min_after": round(os.getloadavg()[0], 1),
               "command": " ".join(["python", *sys.argv])}
    header = ["seed", "method (digits 1,797, 10 % symmetric noise, 20 epochs)", "AP", "estimated / planted",
              "precision", "recall", "seconds"]
    body = [[str(r["seed"]), r["method"], f"{r['ap']:.3f}", f"{r['estimated_errors']} / {r['planted']}",
             f"{r['precision']:.3f}" if r["precision"] is not None else "n/a", f"{r['recall']:.3f}",
             f"{r['seconds']:.1f}"] for r in rows]
    table = markdown_table(header, body)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recorder.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    (args.out / "recorder.md").write_text(
        f"# Your own model through curate.Recorder vs Curate's ensemble\n\nCommand: `{machine['command']}`\n\n"
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items() if k != "command") + f"\n\n{table}\n")


if __name__ == "__main__":
    main()
