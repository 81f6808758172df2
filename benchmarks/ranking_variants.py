"""Benchmark: post-hoc ranking variants on cached ensemble records (issue 12).

Grades scores that need no retraining, computed from the records `flag_calibration.py --cache DIR`
trained (the six tables x 9 noise kinds, selection seeds 0-2 and test seeds 100-102, the default
8 x 20 budget), against the default `consistency_prob_margin`:
  - epoch weighting: the two signals averaged with linearly rising (late) or falling (early)
    weights 0.5..1.5, or over the last 5 epochs only;
  - the margin in log-probability space, the consistency and margin ranks weighted 1:2 and 2:1,
    the given label's mean probability as a third rank;
  - per-class centring (each class's median rank subtracted, as per-class thresholds would);
  - a blend with cleanlab's score on a 5-fold logistic regression's out-of-fold probabilities,
    everywhere, or gated by how often that regression agrees with the ensemble's final prediction
    (the gate's threshold chosen on the selection seeds, applied to the test seeds);
  - other learning-dynamics signals, each as a third rank beside the default's two (weight 1 of 3):
    forgetting events (a member's correct -> wrong transitions of the given label, Toneva et al.
    2019), the epoch from which a member predicts the given label to the end ("last learned": a
    memorised label is learned late and then kept), and the given label's probability over the
    first quarter of the epochs (before memorisation); "last learned" also alone;
  - the disagreement of an example's 10 nearest neighbours (standardised inputs) with its label
    (a kNN vote, as in SimiFeat or deep kNN), blended at weight 0.15 and 0.25;
  - with --mix NAME=DIR (repeatable): the members of DIR's record of the same case (another training
    config, e.g. a `label_smoothing.py --knob dropout` cache) appended to the default's members, so a
    mixed ensemble (8 Jumpout + 8 plain-dropout members, say) is graded beside the default, on the
    cases DIR holds (a mean over fewer records shows their count in brackets).

    python benchmarks/ranking_variants.py --cache DIR [--mix NAME=DIR ...]

Writes benchmarks/results/ranking_variants.{json,md}. Records missing from DIR are skipped (train
them with flag_calibration.py first).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.detection import DATASETS, describe_machine
from benchmarks.flag_calibration import _scores
from benchmarks.report import markdown_table, write_report

SELECTION, TEST = (0, 1, 2), (100, 101, 102)
REALISTIC = ("confusion", "ambiguous")


def rank01(values: np.ndarray) -> np.ndarray:
    return (rankdata(values) - 1) / max(len(values) - 1, 1)


def lr_out_of_fold(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """5-fold out-of-fold probabilities of a standardised logistic regression (cleanlab's LR baseline)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), X, y,
                                 cv=StratifiedKFold(5, shuffle=True, random_state=seed), method="predict_proba")


def learning_events(predicted: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(members, epochs, n) predicted labels -> (members, n) forgetting events (correct at one epoch,
    wrong at the next; `epochs`, more than any count, where the member never predicted the label, as
    Toneva et al. rank never-learned examples first) and the last-learned epoch (the first epoch from
    which every later one is correct; `epochs` when the last is wrong)."""
    correct = predicted == y[None, None, :]
    forgetting = np.where(correct.any(axis=1), (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1), predicted.shape[1])
    kept_to_the_end = np.cumprod(correct[:, ::-1], axis=1).sum(axis=1)  # trailing run of correct epochs
    return forgetting, predicted.shape[1] - kept_to_the_end


def knn_disagreement(X: np.ndarray, y: np.ndarray, k: int = 10) -> np.ndarray:
    """The share of each example's k nearest neighbours (standardised inputs, itself left out) whose
    label differs from its own."""
    from sklearn.neighbors import NearestNeighbors

    Z = StandardScaler().fit_transform(X)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z, return_distance=False)[:, 1:]
    return (y[neighbours] != y[:, None]).mean(axis=1)


def merge_members(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One record whose members are a's then b's (the same case: the same noisy labels)."""
    if not np.array_equal(a["y_noisy"], b["y_noisy"]):
        raise ValueError("the two records have different noisy labels: not the same case")
    out = dict(a)
    for key in ("predicted_label", "label_prob", "margin", "held_out"):
        out[key] = np.concatenate([a[key], b[key]])
    for key in ("prob_sum", "heldout_prob_sum"):
        out[key] = a[key] + b[key]
    return out


def mean_ap(rows: list[dict], name: str) -> str:
    """The mean of one ranking's AP over the rows that have it ('n/a' when none has)."""
    values = [r[name] for r in rows if name in r]
    if not values:
        return "n/a"
    mean = f"{np.mean(values):.4f}"
    return mean if len(values) == len(rows) else f"{mean} ({len(values)})"  # fewer rows: say how many


def variants(r: dict[str, np.ndarray], X: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], float]:
    """Every variant's score (high = suspect) of one record, and the LR-ensemble agreement (the gate's input)."""
    from cleanlab.rank import get_label_quality_scores  # the bench extra

    y = r["y_noisy"].astype(np.int64)
    predicted = r["predicted_label"][:, 1:].astype(np.int64)  # (M, E, n): the trained epochs
    n_members, n_epochs, n = predicted.shape
    consistency = (predicted == y).mean(axis=0)  # (E, n)
    probs = r["prob_sum"][1:] / n_members  # (E, n, K): every member is in-sample without folds
    rows = np.arange(n)
    given = probs[:, rows, y]
    others = probs.copy()
    others[:, rows, y] = -1.0
    other = others.max(axis=2)
    margin = given - other
    log_margin = np.log(np.clip(given, 1e-6, 1)) - np.log(np.clip(other, 1e-6, 1))
    late = np.linspace(0.5, 1.5, n_epochs)[:, None]
    early = late[::-1]
    c, m = rank01(-consistency.mean(0)), rank01(-margin.mean(0))
    default = _scores(r).mislabel_score
    centred = rank01(default)
    for label in np.unique(y):
        centred[y == label] -= np.median(centred[y == label])
    oof = lr_out_of_fold(X, y, seed)
    lr = 1.0 - get_label_quality_scores(y, oof)
    agreement = float(np.mean(oof.argmax(1) == r["prob_sum"][-1].argmax(1)))
    forgetting, last_learned = learning_events(predicted, y)
    d, knn = rank01(default), rank01(knn_disagreement(X, y))
    out = {
        "default": default,
        "weights late": rank01(-(consistency * late).mean(0)) + rank01(-(margin * late).mean(0)),
        "weights early": rank01(-(consistency * early).mean(0)) + rank01(-(margin * early).mean(0)),
        "last 5 epochs": rank01(-consistency[-5:].mean(0)) + rank01(-margin[-5:].mean(0)),
        "log-prob margin": c + rank01(-log_margin.mean(0)),
        "consistency 1 : margin 2": c + 2 * m,
        "consistency 2 : margin 1": 2 * c + m,
        "+ given-label prob": c + m + rank01(-given.mean(0)),
        "per-class centred": centred,
        "LR (cleanlab)": lr,
        "blend with LR": rank01(default) + rank01(lr),
        "last learned": rank01(last_learned.mean(0)),
        "+ last learned": 2 * d + rank01(last_learned.mean(0)),
        "+ forgetting events": 2 * d + rank01(forgetting.mean(0)),
        "+ early given-label prob": 2 * d + rank01(-given[: max(n_epochs // 4, 1)].mean(0)),
        "kNN disagreement": knn,
        "blend with kNN 0.15": 0.85 * d + 0.15 * knn,
        "blend with kNN 0.25": 0.75 * d + 0.25 * knn,
    }
    return out, agreement


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="flag_calibration.py's record cache")
    parser.add_argument("--mix", action="append", default=[], metavar="NAME=DIR",
                        help="grade the default's members plus DIR's members of the same case, as 'NAME'")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    mixes = []
    for text in args.mix:
        name, sep, folder = text.partition("=")
        if not (sep and name and Path(folder).is_dir()):
            parser.error(f"--mix {text!r}: expected NAME=DIR with DIR a folder of records")
        mixes.append((name, Path(folder)))
    rows, data = [], {}
    for path in sorted(args.cache.glob("*.npz")):
        dataset, noise, seed = path.stem.rsplit("_", 2)
        if not seed.isdigit() or int(seed) not in SELECTION + TEST or dataset not in DATASETS:
            continue  # another budget's record (a suffix) or another data set
        with np.load(path) as stored:
            r = {k: stored[k] for k in stored.files}
        if dataset not in data:
            data[dataset] = DATASETS[dataset](return_X_y=True)[0].astype(np.float64)
        scores, agreement = variants(r, data[dataset], int(seed))
        for name, folder in mixes:
            other = folder / path.name
            if not other.exists():  # graded where DIR has the case (a sweep's cache may hold the selection seeds only)
                continue
            with np.load(other) as stored:
                scores[name] = _scores(merge_members(r, {k: stored[k] for k in stored.files})).mislabel_score
        flipped = r["flipped"].astype(bool)
        rows.append({"dataset": dataset, "noise": noise, "seed": int(seed), "agreement": round(agreement, 4),
                     **{k: round(float(average_precision_score(flipped, s)), 4) for k, s in scores.items()}})
    names = [k for k in rows[0] if k not in ("dataset", "noise", "seed", "agreement")]
    names += [name for name, _ in mixes if name not in names]
    # the gate: blend where LR agrees with the ensemble at least t; t chosen on the selection seeds
    selection = [r for r in rows if r["seed"] in SELECTION]
    candidates = sorted({r["agreement"] for r in selection})

    def gated(r: dict, t: float) -> float:
        return r["blend with LR"] if r["agreement"] >= t else r["default"]

    threshold = max(candidates, key=lambda t: np.mean([gated(r, t) for r in selection]))
    for r in rows:
        r[f"blend with LR where agreement >= {threshold}"] = gated(r, threshold)
    names.append(f"blend with LR where agreement >= {threshold}")
    table = []
    for name in names:
        line = [name]
        for seeds in (SELECTION, TEST):
            sub = [r for r in rows if r["seed"] in seeds]
            real = [r for r in sub if r["noise"].startswith(REALISTIC)]
            line += [mean_ap(rs, name) for rs in (sub, real)]
        table.append(line)
    header = ["ranking", "selection: mean AP", "selection: realistic", "test: mean AP", "test: realistic"]
    datasets = sorted({r["dataset"] for r in rows})
    by_dataset = [[name] + [mean_ap([r for r in selection if r["dataset"] == d], name) for d in datasets]
                  for name in names]
    command = "python benchmarks/ranking_variants.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "machine": describe_machine(), "n_records": len(rows), "gate_threshold": threshold,
              "rows": rows, "table": [dict(zip(header, line)) for line in table]}
    md = ["# Post-hoc ranking variants on cached records (issue 12)", "",
          f"Command: `{command}`; {len(rows)} records (6 tables x 9 noise kinds x 6 seeds, 8 x 20, default "
          "training); `realistic` = the confusion and ambiguous cases. AP of every variant on the same records. "
          "A `+ signal` row adds that signal's rank to the default's two ranks (weight 1 of 3).", "",
          f"Machine: {', '.join(f'{k} {v}' for k, v in describe_machine().items() if k != 'command')}", "",
          markdown_table(header, table), "", "## Mean AP per data set (selection seeds)", "",
          markdown_table(["ranking", *datasets], by_dataset)]
    write_report(args.out, "ranking_variants", report, md)
    print("\n".join(md))
    return report


if __name__ == "__main__":
    main()
