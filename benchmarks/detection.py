"""Benchmark: how well Curate and cleanlab find planted label noise.

    python benchmarks/detection.py [--datasets digits,breast_cancer,wine,iris]
        [--noise sym10,sym20,sym40,pair30] [--seeds 0,1,2] [--quick] [--out benchmarks/results]

For each (dataset, noise, seed) the seed plants the noise; Curate (through
`benchmarks.curate_adapter.run_curate`) and two cleanlab baselines (5-fold
out-of-fold probabilities of a logistic regression and of an MLP) score every
example. Writes `<out>/detection.json` (every run, the summary, the machine) and
`<out>/detection.md` (the same tables), and prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from benchmarks.report import markdown_table
from benchmarks.noise import compute_detection_metrics, plant_pair_noise, plant_symmetric_noise

DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
}
NOISE_KINDS = {"sym": plant_symmetric_noise, "pair": plant_pair_noise}
CURATE = "curate"
BASELINES = ("cleanlab_logreg", "cleanlab_mlp")
METHODS = (CURATE, *BASELINES)
METRICS = ("ap", "auroc", "precision_at_k", "f1", "estimated_rate", "planted_rate", "seconds")
QUICK = {"datasets": "digits,iris", "noise": "sym10,pair30", "seeds": "0"}
BASELINE_BLAS_THREADS = 1
TARGET_MEAN_AP, TARGET_MEAN_F1, TARGET_RATE_GAP, TARGET_DIGITS_SECONDS = 0.97, 0.92, 0.03, 30.0


@dataclass(frozen=True)
class Detection:
    mislabel_score: np.ndarray  # (n_examples,) float, high = suspect
    is_flagged: np.ndarray  # (n_examples,) bool
    estimated_n_errors: int
    seconds: float


# --- running the detectors -------------------------------------------------------------


def make_baseline(method: str, random_state: int) -> Pipeline:
    if method == "cleanlab_logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    mlp = MLPClassifier(hidden_layer_sizes=(128,), max_iter=500, random_state=random_state)
    return make_pipeline(StandardScaler(), mlp)


def run_cleanlab(method: str, X: np.ndarray, y_noisy: np.ndarray, random_state: int) -> Detection:
    """Out-of-fold probabilities (5-fold, timed) → cleanlab's flagged set and quality score.

    BLAS runs on one thread: on these small matrices more threads only add overhead
    (up to 100x slower on a busy 2-core machine), so this is the baselines' best setting.
    """
    start = time.perf_counter()
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state)
    with warnings.catch_warnings(), threadpool_limits(limits=BASELINE_BLAS_THREADS):
        warnings.simplefilter("ignore", ConvergenceWarning)
        pred_probs = cross_val_predict(
            make_baseline(method, random_state), X, y_noisy, cv=cv, method="predict_proba"
        )
    # n_jobs=1: same result as the default, without a process pool's start-up in the timing.
    is_flagged = find_label_issues(y_noisy, pred_probs, n_jobs=1)
    quality = get_label_quality_scores(y_noisy, pred_probs)
    seconds = time.perf_counter() - start
    return Detection(1.0 - quality, is_flagged, int(is_flagged.sum()), seconds)


def run_curate_or_none(
    X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int
) -> Detection | None:
    """Curate through the lead's adapter; None while the adapter is a placeholder."""
    from benchmarks.curate_adapter import run_curate

    try:
        result = run_curate(X, y_noisy, n_classes, random_state=random_state)
    except NotImplementedError:
        return None
    return Detection(
        np.asarray(result.mislabel_score, dtype=np.float64),
        np.asarray(result.is_flagged, dtype=bool),
        int(result.estimated_n_errors),
        float(result.seconds),
    )


def run_case(dataset: str, noise: str, seed: int, console: Console) -> list[dict]:
    """One (dataset, noise, seed): plant the noise, run every method, one row each."""
    X, y = DATASETS[dataset](return_X_y=True)
    X, n_classes = X.astype(np.float64), int(y.max()) + 1
    kind, rate = parse_noise(noise)
    y_noisy, is_flipped = NOISE_KINDS[kind](y, rate, n_classes, random_state=seed)
    rows = []
    for method in METHODS:
        if method == CURATE:
            detection = run_curate_or_none(X, y_noisy, n_classes, seed)
        else:
            detection = run_cleanlab(method, X, y_noisy, seed)
        row = {"dataset": dataset, "noise": noise, "seed": seed, "method": method,
               "n_examples": len(y), "n_classes": n_classes, "n_flipped": int(is_flipped.sum()),
               "planted_rate": float(is_flipped.mean()), "status": "n/a"}
        if detection is not None:
            row.update(compute_detection_metrics(is_flipped, detection.mislabel_score,
                                                 detection.is_flagged))
            row.update(status="ok", estimated_n_errors=detection.estimated_n_errors,
                       estimated_rate=detection.estimated_n_errors / len(y),
                       seconds=detection.seconds)
        rows.append(row)
        shown = f"AP {row['ap']:.3f} F1 {row['f1']:.3f} {row['seconds']:.1f}s" if detection else "n/a"
        console.log(f"{dataset} {noise} seed={seed} {method}: {shown}")
    return rows


def parse_noise(noise: str) -> tuple[str, float]:
    """'sym20' → ('sym', 0.20); 'pair30' → ('pair', 0.30)."""
    kind = noise.rstrip("0123456789")
    digits = noise[len(kind):]
    if kind not in NOISE_KINDS or not digits or int(digits) > 100:
        raise ValueError(f"noise must look like sym10 or pair30, got {noise!r}")
    return kind, int(digits) / 100


# --- summarising -----------------------------------------------------------------------


def summarise_cases(rows: list[dict]) -> list[dict]:
    """Mean and sd over seeds of each metric, per (dataset, noise, method)."""
    keys = dict.fromkeys((r["dataset"], r["noise"], r["method"]) for r in rows)
    cases = []
    for dataset, noise, method in keys:
        runs = [r for r in rows if (r["dataset"], r["noise"], r["method"]) == (dataset, noise, method)]
        case = {"dataset": dataset, "noise": noise, "method": method, "n_seeds": len(runs)}
        ok = [r for r in runs if r["status"] == "ok"]
        case["status"] = "ok" if ok else "n/a"
        for metric in METRICS:
            values = np.array([r[metric] for r in (ok or runs) if metric in r], dtype=np.float64)
            case[metric] = float(values.mean()) if values.size else None
            case[f"{metric}_sd"] = float(values.std(ddof=1)) if values.size > 1 else None
        cases.append(case)
    return cases


def compare_cases(cases: list[dict]) -> list[dict]:
    """Per (dataset, noise): Curate against the better cleanlab baseline on AP and F1."""
    comparisons = []
    for dataset, noise in dict.fromkeys((c["dataset"], c["noise"]) for c in cases):
        here = {c["method"]: c for c in cases if (c["dataset"], c["noise"]) == (dataset, noise)}
        curate, baselines = here[CURATE], [here[m] for m in BASELINES]
        row = {"dataset": dataset, "noise": noise}
        for metric in ("ap", "f1"):
            best = max(baselines, key=lambda c: c[metric])
            row[f"cleanlab_best_{metric}"], row[f"cleanlab_best_{metric}_method"] = best[metric], best["method"]
            row[f"curate_{metric}"] = curate[metric] if curate["status"] == "ok" else None
            row[f"curate_beats_{metric}"] = (None if row[f"curate_{metric}"] is None
                                             else row[f"curate_{metric}"] > best[metric])
        row["curate_rate_gap"] = (abs(curate["estimated_rate"] - curate["planted_rate"])
                                  if curate["status"] == "ok" else None)
        row["cleanlab_rate_gaps"] = {m: abs(here[m]["estimated_rate"] - here[m]["planted_rate"])
                                     for m in BASELINES}
        comparisons.append(row)
    return comparisons


def check_targets(rows: list[dict], comparisons: list[dict]) -> list[dict]:
    """The five targets, each PASS, MISS, or n/a when Curate (or digits) was not run."""
    def verdict(name: str, value: float | None, ok: bool, shown: str | None = None) -> dict:
        status = "n/a" if value is None else ("PASS" if ok else "MISS")
        return {"target": name, "value": value, "status": status, "shown": shown or fmt(value)}

    curate_ok = all(c["curate_ap"] is not None for c in comparisons)
    beats_ap = [c["curate_beats_ap"] for c in comparisons]
    beats_f1 = [c["curate_beats_f1"] for c in comparisons]
    mean_ap = float(np.mean([c["curate_ap"] for c in comparisons])) if curate_ok else None
    mean_f1 = float(np.mean([c["curate_f1"] for c in comparisons])) if curate_ok else None
    gap = max(c["curate_rate_gap"] for c in comparisons) if curate_ok else None
    digits = [r["seconds"] for r in rows if r["method"] == CURATE and r["dataset"] == "digits"
              and r["status"] == "ok"]
    return [
        verdict("Curate AP above cleanlab's best in every case",
                sum(beats_ap) if curate_ok else None, curate_ok and all(beats_ap),
                f"{sum(beats_ap)} of {len(comparisons)} cases" if curate_ok else None),
        verdict("Curate F1 above cleanlab's best in every case",
                sum(beats_f1) if curate_ok else None, curate_ok and all(beats_f1),
                f"{sum(beats_f1)} of {len(comparisons)} cases" if curate_ok else None),
        verdict(f"Curate mean AP >= {TARGET_MEAN_AP}", mean_ap, mean_ap is not None and mean_ap >= TARGET_MEAN_AP),
        verdict(f"Curate mean F1 >= {TARGET_MEAN_F1}", mean_f1, mean_f1 is not None and mean_f1 >= TARGET_MEAN_F1),
        verdict(f"Curate estimated noise rate within +/-{TARGET_RATE_GAP * 100:.0f} points (per case mean)",
                gap, gap is not None and gap <= TARGET_RATE_GAP),
        verdict(f"Curate digits runs < {TARGET_DIGITS_SECONDS:.0f} s each",
                max(digits) if digits else None, bool(digits) and max(digits) < TARGET_DIGITS_SECONDS,
                f"slowest {max(digits):.1f} s" if digits else None),
    ]


# --- reporting -------------------------------------------------------------------------


def fmt(value: float | None, sd: float | None = None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def results_table(cases: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "noise", "method", "AP", "AUROC", "P@k", "F1",
              "est. rate", "planted rate", "seconds"]
    body = []
    for c in cases:
        cells = [fmt(c[m], c[f"{m}_sd"]) for m in ("ap", "auroc", "precision_at_k", "f1", "estimated_rate")]
        body.append([c["dataset"], c["noise"], c["method"], *cells,
                     fmt(c["planted_rate"]), fmt(c["seconds"], c["seconds_sd"], 2)])
    return header, body


def summary_table(comparisons: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "noise", "Curate AP", "best cleanlab AP", "beats AP",
              "Curate F1", "best cleanlab F1", "beats F1", "|est - planted| Curate"]
    yes_no = {True: "yes", False: "no", None: "n/a"}
    body = [[c["dataset"], c["noise"],
             fmt(c["curate_ap"]), f"{fmt(c['cleanlab_best_ap'])} ({c['cleanlab_best_ap_method']})",
             yes_no[c["curate_beats_ap"]],
             fmt(c["curate_f1"]), f"{fmt(c['cleanlab_best_f1'])} ({c['cleanlab_best_f1_method']})",
             yes_no[c["curate_beats_f1"]], fmt(c["curate_rate_gap"])] for c in comparisons]
    return header, body


def digits_seconds(rows: list[dict]) -> dict[str, float]:
    """Mean wall time of one digits run, per method that ran."""
    by_method = {m: [r["seconds"] for r in rows if r["dataset"] == "digits" and r["method"] == m
                     and r["status"] == "ok"] for m in METHODS}
    return {m: float(np.mean(s)) for m, s in by_method.items() if s}


def print_report(console: Console, report: dict) -> None:
    for title, (header, body) in (("Detection of planted label noise (mean ± sd over seeds)",
                                   results_table(report["cases"])),
                                  ("Curate against cleanlab's best", summary_table(report["comparisons"]))):
        table = Table(title=title)
        for column in header:
            table.add_column(column, justify="left" if column in ("dataset", "noise", "method") else "right")
        previous = None
        for cells in body:
            if previous is not None and cells[:2] != previous:
                table.add_section()
            table.add_row(*cells)
            previous = cells[:2]
        console.print(table)
    for method, seconds in report["digits_seconds_per_run"].items():
        console.print(f"digits wall time per run, {method}: {seconds:.2f} s")
    for t in report["targets"]:
        style = {"PASS": "green", "MISS": "red"}.get(t["status"], "yellow")
        console.print(f"[{style}]{t['status']:>4}[/{style}]  {t['target']}  ({t['shown']})")
    console.print(f"total wall time: {report['total_seconds']:.1f} s")


def save_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "detection.json").write_text(json.dumps(report, indent=2) + "\n")
    machine = report["machine"]
    lines = ["# Label-noise detection benchmark", "",
             f"Command: `{machine['command']}`" + (" (quick run)" if report["quick"] else ""), "",
             "Machine: " + ", ".join(f"{k} {machine[k]}" for k in machine if k != "command"), "",
             "## Results (mean ± sd over seeds)", "", markdown_table(*results_table(report["cases"])), "",
             "## Curate against cleanlab's best", "", markdown_table(*summary_table(report["comparisons"])), "",
             "## Targets", ""]
    lines += [f"- **{t['status']}** {t['target']} ({t['shown']})" for t in report["targets"]]
    lines += [""] + [f"Digits wall time per run, {m}: {s:.2f} s  "
                     for m, s in report["digits_seconds_per_run"].items()]
    lines += [f"Total wall time: {report['total_seconds']:.1f} s", ""]
    (out / "detection.md").write_text("\n".join(lines))


def describe_machine() -> dict[str, str | int | None]:
    def package(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    info: dict[str, str | int | None] = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "numpy": package("numpy"), "torch": package("torch"),
        "scikit-learn": package("scikit-learn"), "cleanlab": package("cleanlab"),
    }
    if "torch" in sys.modules:  # only when the adapter already loaded it
        torch = sys.modules["torch"]
        info["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    info["baseline_blas_threads"] = BASELINE_BLAS_THREADS
    info["curate_torch_threads"] = os.environ.get("CURATE_TORCH_THREADS", "default (cores / workers)")
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    info["command"] = " ".join(["python", *sys.argv])
    return info


# --- command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--noise", default="sym10,sym20,sym40,pair30")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true", help="digits+iris, sym10+pair30, seed 0")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    args.datasets, args.noise = args.datasets.split(","), args.noise.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {list(DATASETS)}")
    for noise in args.noise:
        try:
            parse_noise(noise)
        except ValueError as error:
            parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 150))
    start = time.perf_counter()
    rows = [row for dataset in args.datasets for noise in args.noise for seed in args.seeds
            for row in run_case(dataset, noise, seed, console)]
    cases = summarise_cases(rows)
    comparisons = compare_cases(cases)
    report = {
        "quick": args.quick, "machine": describe_machine(),
        "config": {"datasets": args.datasets, "noise": args.noise, "seeds": args.seeds},
        "total_seconds": time.perf_counter() - start, "rows": rows, "cases": cases,
        "comparisons": comparisons, "targets": check_targets(rows, comparisons),
        "digits_seconds_per_run": digits_seconds(rows),
    }
    print_report(console, report)
    save_report(args.out, report)
    console.print(f"wrote {args.out / 'detection.json'} and {args.out / 'detection.md'}")
    return report


if __name__ == "__main__":
    main()
