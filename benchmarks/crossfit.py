"""Does cross-fitting help the detector? Held-out signals against the in-sample default, selection seeds only.

    OMP_NUM_THREADS=1 CURATE_TORCH_THREADS=1 python benchmarks/crossfit.py [--datasets ...] [--noise ...]
        [--seeds 0,1,2] [--jobs 2] [--out benchmarks/results]

Issue 12 lists cross-fitting (an example's score from members that never trained on it) as a lead.
Per case (data set, noise, seed) this trains the default ensemble (8 x 20, Jumpout by data size) and
the same with `n_folds=4` (member m holds out fold m mod 4, so each example has 2 held-out members
and 6 in-sample ones), then ranks the planted flips by:
- `default`: consistency_margin over the in-sample members (the default ranking when this ran, 2026-12-06);
- `xfit4 in-sample`: the same score over the cross-fitted run's in-sample members (6 of 8 see each example);
- `xfit4 held-out prob / margin / consistency`: the held-out members' mean given-label probability,
  margin and consistency over the trained epochs (cleanlab's kind of signal, from our own networks);
- `xfit4 in-sample + held-out prob`: the mean of the two ranks;
- `LR out of fold`, `default + LR`: a logistic regression's 5-fold out-of-fold probability of the
  given label (cleanlab's best baseline on the near-linear tables), alone and averaged with the default.
And a fit gate, to see whether the blend could be chosen per data set without the truth: `default + LR`
where the logistic regression's out-of-fold log-loss on the noisy labels is below the held-out members'
(it fits the data at least as well as our networks), else `default`; next to the oracle (the better of
the two in each run). AP only (no count, no flag). Writes `<out>/crossfit.{json,md}`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.detection import DATASETS, describe_machine, fmt, parse_noise, plant
from benchmarks.detection_variants import DATASET_ORDER, member_mean
from benchmarks.report import markdown_table, write_report
from models.ensemble import Ensemble
from models.predictions import PredictionRecord
from models.spec import TrainSpec
from scoring.mislabel import compute_rank_score

SCORES = ("default", "xfit4 in-sample", "xfit4 held-out prob", "xfit4 held-out margin",
          "xfit4 held-out consistency", "xfit4 in-sample + held-out prob", "LR out of fold", "default + LR")


def signals(r: PredictionRecord, y: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean given-label probability, margin and consistency over the trained epochs, over `members` (M, n)."""
    prob = member_mean(r.label_prob.astype(np.float64), members)[1:].mean(axis=0)
    margin = member_mean(r.margin.astype(np.float64), members)[1:].mean(axis=0)
    consistency = member_mean((r.predicted_label == y[None, None, :]).astype(np.float64), members)[1:].mean(axis=0)
    return prob, margin, consistency


def default_score(r: PredictionRecord, y: np.ndarray) -> np.ndarray:
    _, margin, consistency = signals(r, y, ~r.held_out)
    return 0.5 * (compute_rank_score(-consistency) + compute_rank_score(-margin))


def run_case(case: tuple[str, str, int]) -> dict:
    dataset, noise, seed = case
    X, y = DATASETS[dataset](return_X_y=True)
    X, k = X.astype(np.float64), int(y.max()) + 1
    kind, rate = parse_noise(noise)
    y_noisy, flipped = plant(kind, rate, X, y, k, seed)
    started = time.perf_counter()
    plain = Ensemble(TrainSpec(random_state=seed)).fit(X, y_noisy, k).record_
    seconds_default = time.perf_counter() - started
    started = time.perf_counter()
    crossfit = Ensemble(TrainSpec(random_state=seed, n_folds=4)).fit(X, y_noisy, k).record_
    seconds_xfit = time.perf_counter() - started
    default = default_score(plain, y_noisy)
    in_sample = default_score(crossfit, y_noisy)
    prob, margin, consistency = signals(crossfit, y_noisy, crossfit.held_out)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    lr_prob = cross_val_predict(lr, X, y_noisy, cv=cv, method="predict_proba")[np.arange(len(y)), y_noisy]
    eps = 1e-6  # log-loss of the given labels, out of fold and held out
    nll_lr, nll_heldout = (float(-np.log(np.clip(p, eps, 1.0)).mean()) for p in (lr_prob, prob))
    scores = dict(zip(SCORES, (
        default, in_sample, compute_rank_score(-prob), compute_rank_score(-margin), compute_rank_score(-consistency),
        0.5 * (in_sample + compute_rank_score(-prob)), compute_rank_score(-lr_prob),
        0.5 * (default + compute_rank_score(-lr_prob))), strict=True))
    return dict(dataset=dataset, noise=noise, seed=seed, seconds_default=seconds_default, seconds_xfit=seconds_xfit,
                nll_lr=nll_lr, nll_heldout=nll_heldout,
                ap={name: float(average_precision_score(flipped, s)) for name, s in scores.items()})


def tables(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    def mean_ap(name: str, picked: list[dict]) -> str:
        return fmt(float(np.mean([r["ap"][name] for r in picked])) if picked else None)

    cases = list(dict.fromkeys((r["dataset"], r["noise"]) for r in rows))
    cases.sort(key=lambda c: DATASET_ORDER.index(c[0]) if c[0] in DATASET_ORDER else len(DATASET_ORDER))
    per_case = [[d, n, *[mean_ap(s, [r for r in rows if (r["dataset"], r["noise"]) == (d, n)]) for s in SCORES]]
                for d, n in cases]
    realistic = [r for r in rows if r["noise"].startswith(("confusion", "ambiguous"))]
    means = [["all cases", "", *[mean_ap(s, rows) for s in SCORES]],
             ["confusion + ambiguous", "", *[mean_ap(s, realistic) for s in SCORES]]]
    seconds = [[fmt(float(np.mean([r["seconds_default"] for r in rows])), digits=1),
                fmt(float(np.mean([r["seconds_xfit"] for r in rows])), digits=1)]]
    gated = [r["ap"]["default + LR"] if r["nll_lr"] < r["nll_heldout"] else r["ap"]["default"] for r in rows]
    oracle = [max(r["ap"]["default + LR"], r["ap"]["default"]) for r in rows]
    gate = [[fmt(float(np.mean([r["ap"]["default"] for r in rows]))),
             fmt(float(np.mean([r["ap"]["default + LR"] for r in rows]))), fmt(float(np.mean(gated))),
             fmt(float(np.mean(oracle))), f"{sum(r['nll_lr'] < r['nll_heldout'] for r in rows)} of {len(rows)}"]]
    return [("Mean AP over the seeds, per case and score", ["dataset", "noise", *SCORES], per_case + means),
            ("The fit gate: mean AP over every run", ["default", "default + LR", "gated", "oracle (best of the two per run)",
                                                     "runs the gate blends"], gate),
            ("Training seconds per run (one torch thread)", ["default", "xfit4"], seconds)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASET_ORDER))
    parser.add_argument("--noise", default="sym20,confusion20,confusion40,ambiguous20,ambiguous30")
    parser.add_argument("--seeds", default="0,1,2", help="selection seeds (the test seeds 100-102 choose nothing)")
    parser.add_argument("--jobs", type=int, default=2, help="cases trained at once, one process each")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    cases = list(itertools.product(args.datasets.split(","), args.noise.split(","),
                                   [int(s) for s in args.seeds.split(",")]))
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = []
        for row in pool.map(run_case, cases):
            rows.append(row)
            print(row["dataset"], row["noise"], row["seed"],
                  " ".join(f"{name}={ap:.3f}" for name, ap in row["ap"].items()), flush=True)
    report = {"machine": describe_machine(), "config": {k: v for k, v in vars(args).items() if k != "out"},
              "total_seconds": time.perf_counter() - started, "rows": rows}
    lines = ["# Cross-fitting and held-out signals (selection seeds)", "", f"Command: `{report['machine']['command']}`",
             "", f"Seeds {args.seeds}; {args.jobs} cases at once. See the script's docstring for each score.", ""]
    for title, header, body in tables(rows):
        lines += [f"## {title}", "", markdown_table(header, body), ""]
        print(f"\n{title}\n{markdown_table(header, body)}")
    lines.append(f"Total wall time: {report['total_seconds']:.0f} s")
    write_report(args.out, "crossfit", report, lines)
    return report


if __name__ == "__main__":
    main()
