"""Benchmark: choosing the Jumpout row per data set without the truth (issue 12).

The default takes Jumpout's rates from the data's examples per feature (models/spec.py:
JUMPOUT_BY_RATIO, chosen on six tables). Phishing is its known miss: it falls in the paper row, and
the strong row ranks its wrong labels better (label_smoothing-phishing-strong-*.md). This measures
whether a label-free check picks better, case by case. The check is a short calibration run per
row: 4 members x 20 epochs, 4-fold cross-fitted (member m never trains on fold m), so every
example has one held-out prediction an epoch; the row whose held-out predictions agree best with
the given (noisy) labels wins: by accuracy or by mean log-probability of the given label, averaged
over the trained epochs. It is graded beside every fixed row, the by-ratio rule, the oracles that
need the truth (the best row per data set, per case), and an ensemble that mixes the rows' members:

    python benchmarks/jumpout_rows.py --seeds 0,1,2 --cache DIR --jobs 2 --name selection
    python benchmarks/jumpout_rows.py --seeds 100,101,102 --cache DIR --jobs 2 --name test

Every record is the default 8 x 20 at the default label smoothing, cached in DIR/ls<s>_<row>/ as
`label_smoothing.py --row` caches them (one cache serves both); calibrations in DIR/calibration/.
The mixed ensemble takes members 0-2 from the strong row's record, 3-5 from the middle row's and
6-7 from the paper row's; its per-epoch probability sums (which the records keep summed over all 8
members) are each row's sum weighted by its share of members: an approximation of training it.
Writes benchmarks/results/jumpout_rows[-NAME].{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks.detection import TABLE_NOISE, describe_machine
from benchmarks.detection_variants import VARIANTS, default_variant
from benchmarks.flag_calibration import _scores
from benchmarks.label_smoothing import REALISTIC, add_sweep_arguments, planted_case, sweep_cases, train
from benchmarks.noise import compute_detection_metrics
from benchmarks.report import markdown_table, write_named_report
from models.spec import LABEL_SMOOTHING

ROWS = tuple(VARIANTS)  # strong, mid, paper
CAL_MEMBERS, CAL_FOLDS, CAL_EPOCHS = 4, 4, 20
CRITERIA = ("accuracy", "log_prob")  # held-out agreement with the given labels, mean over trained epochs
MIX = ((0, (0, 1, 2)), (1, (3, 4, 5)), (2, (6, 7)))  # (row index, member ids) of the mixed ensemble


def calibrate(case: tuple[str, str, int, str]) -> str:
    """Every row's short cross-fitted run on one case (a no-op if cached): held-out accuracy and mean
    log-probability of the given labels per epoch, and each run's seconds. Returns the file's path."""
    dataset, noise, seed, cache = case
    path = Path(cache) / "calibration" / f"{dataset}_{noise}_{seed}.npz"
    if path.exists():
        return str(path)
    from models.ensemble import Ensemble
    from models.spec import TrainSpec

    X_train, y_noisy, _, n_classes = planted_case(dataset, noise, seed)
    out: dict[str, np.ndarray] = {}
    for row in ROWS:
        spec = TrainSpec(random_state=seed, n_members=CAL_MEMBERS, n_folds=CAL_FOLDS, n_epochs=CAL_EPOCHS,
                         **VARIANTS[row])  # type: ignore[arg-type]
        started = time.perf_counter()
        record = Ensemble(spec).fit(X_train, y_noisy, n_classes).record_
        held = record.held_out[:, None, :]  # (members, 1, examples): one held-out member an example
        right = record.predicted_label == y_noisy[None, None, :]
        log_prob = np.log(np.clip(record.label_prob, 1e-6, 1.0))
        out[f"{row}_accuracy"] = (right * held).sum(axis=(0, 2)) / held.sum()
        out[f"{row}_log_prob"] = (log_prob * held).sum(axis=(0, 2)) / held.sum()
        out[f"{row}_seconds"] = np.array(time.perf_counter() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.rename(path)
    return str(path)


def _load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


def _grade(r: dict[str, np.ndarray]) -> dict[str, float]:
    scores = _scores(r)
    flipped = r["flipped"].astype(bool)
    m = compute_detection_metrics(flipped, scores.mislabel_score, scores.is_suspected_mislabel)
    return {"ap": float(m["ap"]), "f1": float(m["f1"]),
            "rate_gap": abs(scores.estimated_n_errors - int(flipped.sum())) / len(flipped)}


def mixed(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The mixed-row ensemble's record (see the module's docstring for its approximation)."""
    out = dict(records[0])
    n = sum(len(members) for _, members in MIX)
    for key in ("predicted_label", "label_prob", "margin", "held_out"):
        out[key] = np.concatenate([records[i][key][list(members)] for i, members in MIX])
    for key in ("prob_sum", "heldout_prob_sum"):
        full = records[0]["predicted_label"].shape[0]
        out[key] = sum(records[i][key].astype(np.float64) * len(members) / full
                       for i, members in MIX).astype(np.float32)
    assert out["predicted_label"].shape[0] == n
    return out


def grade_case(records: list[dict[str, np.ndarray]], calibration: dict[str, np.ndarray], dataset: str) -> dict:
    """Every method's AP / F1 / count gap on one case, and each criterion's pick."""
    fixed = {row: _grade(r) for row, r in zip(ROWS, records)}
    graded = {**fixed, "by-ratio rule": fixed[default_variant(dataset)], "mixed rows": _grade(mixed(records)),
              "per-case oracle": max(fixed.values(), key=lambda g: g["ap"])}
    picks = {}
    for criterion in CRITERIA:
        value = {row: float(calibration[f"{row}_{criterion}"][1:].mean()) for row in ROWS}
        picks[criterion] = max(ROWS, key=lambda row: value[row])
        graded[f"calibrated: {criterion}"] = fixed[picks[criterion]]
    seconds = {"record": float(np.mean([r["train_seconds"] for r in records])),
               "calibration": float(sum(calibration[f"{row}_seconds"] for row in ROWS))}
    return {"graded": graded, "picks": picks, "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_sweep_arguments(parser, TABLE_NOISE)
    args = parser.parse_args(argv)
    seeds, cases = sweep_cases(args)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        records = list(pool.map(train, [(d, n, s, LABEL_SMOOTHING, str(args.cache), "label_smoothing", row)
                                        for d, n, s in cases for row in ROWS]))
        calibrations = list(pool.map(calibrate, [(d, n, s, str(args.cache)) for d, n, s in cases]))
    rows = []
    for i, (d, n, s) in enumerate(cases):
        case = grade_case([_load(p) for p in records[i * len(ROWS):(i + 1) * len(ROWS)]], _load(calibrations[i]), d)
        rows.append({"dataset": d, "noise": n, "seed": s, **case})
    datasets = list(dict.fromkeys(d for d, _, _ in cases))
    methods = list(rows[0]["graded"])
    # the best fixed row per data set, by mean AP over its cases (needs the truth)
    best_row = {d: max(ROWS, key=lambda row: np.mean([r["graded"][row]["ap"] for r in rows if r["dataset"] == d]))
                for d in datasets}
    for r in rows:
        r["graded"]["per-data-set oracle"] = r["graded"][best_row[r["dataset"]]]
    methods.insert(methods.index("per-case oracle"), "per-data-set oracle")

    def mean(method: str, key: str, keep: object = None) -> float:
        values = [r["graded"][method][key] for r in rows if keep is None or keep(r)]  # type: ignore[operator]
        return float(np.mean(values)) if values else float("nan")

    def realistic(r: dict) -> bool:
        return r["noise"].startswith(REALISTIC)

    summary = [[m, f"{mean(m, 'ap'):.4f}", f"{mean(m, 'ap', realistic):.4f}", f"{mean(m, 'f1', realistic):.4f}",
                f"{mean(m, 'rate_gap'):.4f}", *[f"{mean(m, 'ap', lambda r, d=d: r['dataset'] == d):.4f}"
                                                for d in datasets]] for m in methods]
    picks = [[d, *[", ".join(f"{row} {count}" for row, count in Counter(
        r["picks"][c] for r in rows if r["dataset"] == d).most_common()) for c in CRITERIA], best_row[d]]
        for d in datasets]
    record_s = np.mean([r["seconds"]["record"] for r in rows])
    calibration_s = np.mean([r["seconds"]["calibration"] for r in rows])
    command = "python benchmarks/jumpout_rows.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "machine": describe_machine(), "seeds": seeds,
              "label_smoothing": LABEL_SMOOTHING, "best_row": best_row,
              "seconds": round(time.perf_counter() - started, 1),
              "mean_record_seconds": round(float(record_s), 2),
              "mean_calibration_seconds": round(float(calibration_s), 2), "rows": rows}
    machine = ", ".join(f"{k} {v}" for k, v in report["machine"].items() if k != "command")
    md = ["# Choosing the Jumpout row without the truth (issue 12)", "",
          f"Command: `{command}`; seeds {', '.join(map(str, seeds))}; {len(cases)} cases; 8 x 20, label smoothing "
          f"{LABEL_SMOOTHING:g}, the default ranking and count. Calibration: {CAL_MEMBERS} members x {CAL_EPOCHS} "
          f"epochs per row, {CAL_FOLDS}-fold cross-fitted; a record trained in {record_s:.2f} s, a case's three "
          f"calibration runs in {calibration_s:.2f} s (1 thread each). `realistic` = the confusion and ambiguous "
          "cases. The oracles need the truth.", "",
          f"Machine: {machine}", "",
          markdown_table(["method", "mean AP", "realistic AP", "realistic F1", "mean |count gap|",
                          *[f"{d} AP" for d in datasets]], summary), "",
          "## What each criterion picked (cases per row)", "",
          markdown_table(["data set", *[f"calibrated: {c}" for c in CRITERIA], "best row (oracle)"], picks)]
    write_named_report(args.out, "jumpout_rows", args.name, report, md)
    return report


if __name__ == "__main__":
    main()
