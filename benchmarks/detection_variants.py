"""Which training and scoring variant should Curate's default be? Run on *selection* seeds only.

    python benchmarks/detection_variants.py [--datasets iris,wine,breast_cancer,phishing,digits,segment]
        [--noise sym20,pair30,confusion20,confusion40,ambiguous20] [--seeds 0,1,2] [--variants strong,mid,paper]

Trains the ensemble directly (no store) for each training variant, then scores the same record
with every scoring method and count of `scoring/mislabel.py`. The defaults chosen from this report
(Jumpout by data size, 60 steps an epoch, the consistency_margin score until 2026-12-06, when
flag_calibration.py chose consistency_prob_margin, the margin count) are graded
on separate test seeds by `benchmarks/detection.py`, against the baselines. Writes
`benchmarks/results/detection_variants.{json,md}`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rich.console import Console

from benchmarks.detection import DATASETS, describe_machine, fmt, parse_noise, plant
from benchmarks.noise import compute_detection_metrics
from benchmarks.report import markdown_table, write_report
from models.ensemble import Ensemble
from models.predictions import PredictionRecord
from models.spec import JUMPOUT_BY_RATIO, TrainSpec, jumpout_for_data
from scoring.mislabel import (
    MISLABEL_METHODS,
    compute_mislabel_score,
    compute_prob_margin,
    estimate_n_errors_by_margin,
    estimate_n_label_errors,
    flag_suspected_mislabels,
)

# the three rows of JUMPOUT_BY_RATIO, each tried on every data set (the default picks one by n / d)
VARIANTS = {name: dict(jumpout_sigma=row[1], jumpout_p_min=row[2], jumpout_p_max=row[3])
            for name, row in zip(("strong", "mid", "paper"), JUMPOUT_BY_RATIO)}
DATASET_ORDER = ("wine", "breast_cancer", "digits", "iris", "segment", "phishing")  # by examples per feature


def member_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the members where mask (M, n) holds: (M, E, n) -> (E, n)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask[:, None, :], values, 0.0).sum(axis=0) / mask.sum(axis=0)[None, :]


def score_record(r: PredictionRecord, y: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Every scoring method and both counts on one in-sample record."""
    in_sample = ~r.held_out
    prob = member_mean(r.label_prob.astype(np.float64), in_sample)
    margin = member_mean(r.margin.astype(np.float64), in_sample)
    consistency = member_mean((r.predicted_label == y[None, None, :]).astype(np.float64), in_sample)
    prob_margin = np.stack([compute_prob_margin(epoch, in_sample.sum(axis=0), y) for epoch in r.prob_sum])
    scores = {m: compute_mislabel_score(prob, margin, method=m, consistency=consistency, prob_margin=prob_margin)
              for m in MISLABEL_METHODS}
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = r.prob_sum[1:].sum(axis=0) / (in_sample.sum(axis=0)[:, None] * (r.prob_sum.shape[0] - 1))
    counts = {"margin": estimate_n_errors_by_margin(margin),
              "confident_learning": estimate_n_label_errors(np.nan_to_num(probs, nan=1.0 / probs.shape[1]), y)}
    return scores, counts


def run(args: argparse.Namespace, console: Console) -> list[dict]:
    rows = []
    for dataset, noise, seed in itertools.product(args.datasets, args.noise, args.seeds):
        X, y = DATASETS[dataset](return_X_y=True)
        X, k = X.astype(np.float64), int(y.max()) + 1
        kind, rate = parse_noise(noise)
        y_noisy, flipped = plant(kind, rate, X, y, k, seed)
        for variant in args.variants:
            started = time.perf_counter()
            record = Ensemble(TrainSpec(random_state=seed, **VARIANTS[variant])).fit(X, y_noisy, k).record_
            seconds = time.perf_counter() - started
            scores, counts = score_record(record, y_noisy)
            for (method, score), (count, n_errors) in itertools.product(scores.items(), counts.items()):
                metrics = compute_detection_metrics(flipped, score, flag_suspected_mislabels(score, n_errors))
                rows.append(dict(dataset=dataset, noise=noise, seed=seed, variant=variant, method=method,
                                 count=count, ap=metrics["ap"], f1=metrics["f1"],
                                 rate_gap=abs(n_errors - int(flipped.sum())) / len(y), seconds=seconds))
            best = max(scores, key=lambda m: compute_detection_metrics(flipped, scores[m], flipped)["ap"])
            console.log(f"{dataset} {noise} seed={seed} {variant}: {seconds:.1f}s, best score {best}")
    return rows


def mean_of(rows: list[dict], metric: str, **where: str) -> float:
    return float(np.mean([r[metric] for r in rows if all(r[k] == v for k, v in where.items())]))


def default_variant(dataset: str) -> str:
    """The Jumpout row the default (by examples per feature) picks for this data set."""
    X, _ = DATASETS[dataset](return_X_y=True)
    chosen = jumpout_for_data(len(X), int(np.prod(X.shape[1:])))
    return next(name for name, v in VARIANTS.items()
                if (v["jumpout_sigma"], v["jumpout_p_min"], v["jumpout_p_max"]) == chosen)


def default_rows(rows: list[dict]) -> list[dict]:
    picked = {d: default_variant(d) for d in dict.fromkeys(r["dataset"] for r in rows)}
    return [r for r in rows if r["variant"] == picked[r["dataset"]]]


def tables(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    datasets = [d for d in DATASET_ORDER if any(r["dataset"] == d for r in rows)]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by_size = [[d, *[fmt(mean_of(rows, "ap", dataset=d, variant=v, method="consistency_margin", count="margin"))
                     for v in variants]] for d in datasets]
    by_method = [[m, *[fmt(mean_of(rows, "ap", variant=v, method=m, count="margin")) for v in variants]]
                 for m in methods]
    by_count = [[c, *[f"{fmt(mean_of(rows, 'rate_gap', variant=v, method='consistency_margin', count=c))} / "
                      f"{fmt(mean_of(rows, 'f1', variant=v, method='consistency_margin', count=c))}"
                      for v in variants]] for c in ("margin", "confident_learning")]
    chosen = default_rows(rows)
    realistic = [r for r in chosen if r["noise"].startswith(("confusion", "ambiguous"))]
    by_default = [[m, fmt(mean_of(chosen, "ap", method=m, count="margin")),
                   fmt(mean_of(realistic, "ap", method=m, count="margin")),
                   fmt(mean_of(chosen, "f1", method=m, count="margin"))] for m in methods]
    by_default += [[f"(count: {c})", "", "", f"{fmt(mean_of(chosen, 'f1', method='consistency_margin', count=c))}, "
                    f"|est - planted| {fmt(mean_of(chosen, 'rate_gap', method='consistency_margin', count=c))}"]
                   for c in ("margin", "confident_learning")]
    picked = ", ".join(f"{d} {default_variant(d)}" for d in dict.fromkeys(r["dataset"] for r in rows))
    return [
        ("Mean AP of the default score per data set (fewest examples per feature first) and Jumpout row", ["dataset", *variants], by_size),
        (f"Each data set with the Jumpout row the default picks ({picked}): per score",
         ["score", "mean AP", "mean AP, confusion + ambiguous", "flagged-set F1 (margin count)"], by_default),
        ("Mean AP over every case, per score", ["score", *variants], by_method),
        ("Mean |estimated - planted| rate / flagged-set F1, per count", ["count", *variants], by_count),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASET_ORDER))
    parser.add_argument("--noise", default="sym20,pair30,confusion20,confusion40,ambiguous20")
    parser.add_argument("--seeds", default="0,1,2", help="selection seeds (the test seeds are 100-102)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--report-only", type=Path, help="rebuild the markdown from a detection_variants.json")
    args = parser.parse_args(argv)
    args.datasets, args.noise, args.variants = (a.split(",") for a in (args.datasets, args.noise, args.variants))
    args.seeds = [int(s) for s in args.seeds.split(",")]
    console = Console(width=150)
    started = time.perf_counter()
    if args.report_only:
        report = json.loads(args.report_only.read_text())
        rows = report["rows"]
    else:
        rows = run(args, console)
        report = {"machine": describe_machine(),
                  "config": {k: v for k, v in vars(args).items() if k not in ("out", "report_only")},
                  "total_seconds": time.perf_counter() - started, "rows": rows}
    lines = ["# Detection variants (selection seeds)", "", f"Command: `{report['machine']['command']}`", "",
             f"Seeds {report['config']['seeds']}; every variant is 8 members x 20 epochs, batch n // 60 (8..256). Jumpout rows: "
             + "; ".join(f"{n} = sigma {v['jumpout_sigma']}, p_min {v['jumpout_p_min']}, p_max {v['jumpout_p_max']}"
                         for n, v in VARIANTS.items()), ""]
    for title, header, body in tables(rows):
        lines += [f"## {title}", "", markdown_table(header, body), ""]
        console.print(f"[bold]{title}[/]")
        console.print(markdown_table(header, body))
    lines.append(f"Total wall time: {report['total_seconds']:.0f} s")
    write_report(args.out, "detection_variants", report, lines)


if __name__ == "__main__":
    main()
