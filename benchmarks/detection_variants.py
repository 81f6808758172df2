"""Which training and scoring variant should be Curate's default? (feeds the choice in scoring/mislabel.py)

Trains the ensemble directly (no store) for each training variant, then scores the same record
with each scoring variant. Prints a table and writes benchmarks/results/detection_variants.json.

    python benchmarks/detection_variants.py [--datasets digits,wine] [--noise sym10,pair30] [--seeds 0]
"""

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
from rich.table import Table

from benchmarks.detection import DATASETS, NOISE_KINDS, parse_noise  # noqa: E402
from benchmarks.noise import compute_detection_metrics
from models.ensemble import Ensemble
from models.spec import TrainSpec
from scoring.mislabel import compute_mislabel_score, estimate_n_label_errors, flag_suspected_mislabels


def _masked_member_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the members selected by mask (M, n): (M, E, n) -> (E, n)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask[:, None, :], values, 0.0).sum(axis=0) / mask.sum(axis=0)[None, :]


def _mean_probs(prob_sum: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Class probabilities averaged over members and trained epochs: (E, n, K) sums -> (n, K)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return prob_sum[1:].mean(axis=0) / counts[:, None]

TRAIN_VARIANTS = {
    "jumpout_s0.1": dict(dropout="jumpout", batch_size=64),
    "jumpout_strong": dict(dropout="jumpout", jumpout_p_min=0.2, jumpout_sigma=0.3, jumpout_p_max=0.7, batch_size=64),
    "dropout0.5": dict(dropout="dropout", dropout_rate=0.5, batch_size=64),
    "js_b32": dict(dropout="jumpout", jumpout_p_min=0.2, jumpout_sigma=0.3, jumpout_p_max=0.7, batch_size=0),
    "js_b32_e30": dict(dropout="jumpout", jumpout_p_min=0.2, jumpout_sigma=0.3, jumpout_p_max=0.7, n_epochs=30),
    "js_b32_m16": dict(dropout="jumpout", jumpout_p_min=0.2, jumpout_sigma=0.3, jumpout_p_max=0.7, n_members=16),
    "js_mid_b32": dict(dropout="jumpout", jumpout_p_min=0.1, jumpout_sigma=0.2, jumpout_p_max=0.6),
    "jumpout_strong_f4": dict(dropout="jumpout", jumpout_p_min=0.2, jumpout_sigma=0.3, jumpout_p_max=0.7, n_folds=4),
}


def count_variants(r, y):  # type: ignore[no-untyped-def]
    in_sample = ~r.held_out
    probs_all = _mean_probs(r.prob_sum.astype(np.float64), in_sample.sum(0))
    e = r.prob_sum.shape[0]
    half = r.prob_sum[: max(2, e // 2)].astype(np.float64)
    probs_half = _mean_probs(half, in_sample.sum(0))
    prob_curve = _masked_member_mean(r.label_prob.astype(np.float64), in_sample)
    out = {"cl_all": estimate_n_label_errors(probs_all, y), "cl_half": estimate_n_label_errors(probs_half, y),
           "p_below_half": int((np.nanmean(prob_curve[1:], 0) < 0.5).sum())}
    if r.held_out.any():
        ho = _mean_probs(r.heldout_prob_sum.astype(np.float64), r.held_out.sum(0))
        out["cl_heldout"] = estimate_n_label_errors(np.nan_to_num(ho, nan=1 / ho.shape[1]), y)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="digits,breast_cancer,wine,iris")
    ap.add_argument("--noise", default="sym10,sym40,pair30")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--variants", default=",".join(TRAIN_VARIANTS))
    ap.add_argument("--out", default="benchmarks/results/detection_variants.json")
    args = ap.parse_args()
    rows = []
    for ds, noise, seed, variant in itertools.product(args.datasets.split(","), args.noise.split(","),
                                                      [int(s) for s in args.seeds.split(",")],
                                                      args.variants.split(",")):
        X, y = DATASETS[ds](return_X_y=True)
        k = int(y.max() + 1)
        kind, rate = parse_noise(noise)
        y_noisy, flipped = NOISE_KINDS[kind](y, rate, k, random_state=seed)
        t = time.perf_counter()
        r = Ensemble(TrainSpec(random_state=seed, **TRAIN_VARIANTS[variant])).fit(X, y_noisy, k).record_
        secs = time.perf_counter() - t
        counts = count_variants(r, y_noisy)
        in_sample = ~r.held_out
        pc = _masked_member_mean(r.label_prob.astype(np.float64), in_sample)
        mc = _masked_member_mean(r.margin.astype(np.float64), in_sample)
        for method in ("prob", "margin", "prob_margin"):
            score = compute_mislabel_score(pc, mc, method=method)
            for cname, n_err in counts.items():
                m = compute_detection_metrics(flipped, score, flag_suspected_mislabels(score, n_err))
                rows.append(dict(dataset=ds, noise=noise, seed=seed, variant=variant, method=method, count=cname,
                                 est_rate=n_err / len(y), planted=float(flipped.mean()), seconds=secs, **m))
        Console().print(f"{ds} {noise} {seed} {variant}: {secs:.1f}s counts {counts} true {int(flipped.sum())}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1, default=float))
    table = Table(title="mean over cases")
    for c in ("variant", "method", "count", "AP", "F1", "|est-planted|"):
        table.add_column(c)
    keys = sorted({(r["variant"], r["method"], r["count"]) for r in rows})
    for key in keys:
        sel = [r for r in rows if (r["variant"], r["method"], r["count"]) == key]
        table.add_row(*key, f"{np.mean([r['ap'] for r in sel]):.3f}", f"{np.mean([r['f1'] for r in sel]):.3f}",
                      f"{np.mean([abs(r['est_rate'] - r['planted']) for r in sel]):.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
