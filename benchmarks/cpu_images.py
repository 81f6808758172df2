"""Benchmark: image jobs on a CPU, before and after the CPU image defaults (issue 17, item 1).

    OMP_NUM_THREADS=1 CURATE_TORCH_THREADS=1 python benchmarks/cpu_images.py [--part training,e2e,large,detection]
        [--repeats 3] [--threads 1] [--out benchmarks/results]

Parts (each is measured in one run, variants interleaved, so a shared box's load hits them alike):
  training   the default job's training (8 members x 20 epochs, train_group in this process) on
             digits as a table (MLP) and as 8x8 images: the old CNN (width 32, NCHW) against the
             new defaults (width 32, channels_last on the CPU) and width 16 in channels_last
  e2e        the same data end to end through the engine (upload, workers, DuckDB, scores):
             the table's NPZ against the images' zipped PNG folder, default spec
  large      10,000 synthetic 28x28 digit-like images end to end, default spec (stride-2 stem)
  large_detection  the same images with 20 % confusion noise (seed 100; --large-noise, --large-seed):
             Curate's AP and time at CNN widths 16 and 32 and through the MLP (--variants; mlp:3
             for three hidden layers), and cleanlab on a scikit-learn
             MLP's out-of-fold probabilities of the pixels, for scale
  detection  digits_image (benchmarks/detection.py's image form) on test seeds 100-102, noise
             confusion20 and ambiguous20: Curate's AP with the defaults, against the committed
             detection report's (the width-32 NCHW CNN), which is the "before"; --width 16 runs
             it with that width instead
Writes `<out>/cpu_images.json` and `<out>/cpu_images.md`; every figure comes with os.getloadavg().
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from sklearn.datasets import load_digits

from benchmarks.report import markdown_table
from benchmarks.synthetic import synthetic_digits

OLD_CNN = {"cnn_width": 32, "cnn_stem_stride": 1}  # the defaults before issue 17 (and NCHW on the CPU)
DETECTION_NOISE = ("confusion20", "ambiguous20")
TEST_SEEDS = (100, 101, 102)


def digits_images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits as a table (n, 64) float32, as images (n, 1, 8, 8) uint8 (as detection.py makes them), labels."""
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), np.round(X.reshape(-1, 1, 8, 8) * 255.0 / 16.0).astype(np.uint8), y


def load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}


# --- training only, in this process --------------------------------------------------------------


def time_training(X: np.ndarray, y: np.ndarray, spec_kw: dict, channels_last: bool) -> float:
    """Wall seconds of train_group over the default job (8 members x 20 epochs, one group)."""
    import models.ensemble as ensemble
    from models.spec import TrainSpec

    ensemble.CPU_CHANNELS_LAST = channels_last
    spec = TrainSpec(**spec_kw)
    started = time.perf_counter()
    for _ in ensemble.train_group(X, y, int(y.max()) + 1, spec, list(range(spec.n_members))):
        pass
    return time.perf_counter() - started


def part_training(repeats: int) -> dict:
    X, images, y = digits_images()
    fp32 = {"precision": "fp32"}  # the default before precision auto took bf16 for a CNN on a bf16 CPU
    variants = {
        "table (MLP)": (X, {}, True),
        "table (MLP), bf16": (X, {"precision": "bf16"}, True),
        "images, before (CNN width 32, NCHW, fp32)": (images, {**OLD_CNN, **fp32}, False),
        "images, width 16 channels_last, fp32 (faster, but lower AP)": (images, {"cnn_width": 16, **fp32}, True),
        "images, width 32 channels_last, fp32": (images, fp32, True),
        "images, defaults (width 32, channels_last, precision auto)": (images, {}, True),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    loads = []
    for _ in range(repeats):
        for name, (data, kw, cl) in variants.items():
            times[name].append(time_training(data, y, kw, cl))
        loads.append(load())
    table = statistics.median(times["table (MLP)"])
    rows = [{"variant": k, "seconds": [round(t, 2) for t in v], "median_s": round(statistics.median(v), 2),
             "x_table": round(statistics.median(v) / table, 2)} for k, v in times.items()]
    from models.spec import cpu_has_native_bf16, precision_for

    return {"what": f"train_group, 8 members x 20 epochs, digits (1,797); precision auto for the CNN here: "
                    f"{precision_for(False, True, cpu_has_native_bf16())}", "rows": rows, "load": loads}


# --- end to end through the engine ---------------------------------------------------------------


def run_e2e(X: np.ndarray, y: np.ndarray, images: np.ndarray | None, **spec: object) -> float:
    from benchmarks.curate_adapter import run_curate

    return run_curate(X, y, int(y.max()) + 1, images=images, **spec).seconds


def part_e2e(repeats: int) -> dict:
    from models.spec import cpu_has_native_bf16, precision_for
    from service.settings import Settings

    X, images, y = digits_images()
    # "fp32": the default before precision auto took bf16 for a CNN on a CPU with native bf16
    # (on a CPU without it the two rows train the same)
    variants: dict[str, tuple[np.ndarray | None, dict]] = {
        "table (NPZ)": (None, {}), "images (zipped PNGs), fp32": (images[:, 0], {"precision": "fp32"}),
        "images (zipped PNGs), default precision": (images[:, 0], {})}
    times: dict[str, list[float]] = {k: [] for k in variants}
    loads = []
    for _ in range(repeats):
        for name, (data, spec) in variants.items():
            times[name].append(run_e2e(X, y, data, **spec))
        loads.append(load())
    table = statistics.median(times["table (NPZ)"])
    rows = [{"variant": k, "seconds": [round(t, 2) for t in v], "median_s": round(statistics.median(v), 2),
             "x_table": round(statistics.median(v) / table, 2)} for k, v in times.items()]
    settings = Settings()
    cnn_threads = settings.threads_per_worker(cnn=True)
    threads = f"{settings.threads_per_worker(cnn=False)} (MLP) / {cnn_threads} (CNN)"
    return {"what": f"upload -> train (8 x 20, no AdaBoost, no explanations) -> scores, digits; {threads} torch "
                    f"thread(s) in the training worker; default precision here: "
                    f"{precision_for(False, True, cpu_has_native_bf16())} for the CNN",
            "rows": rows, "load": loads, "worker_threads": cnn_threads}


def part_large() -> dict:
    images, y = synthetic_digits()
    before = load()
    seconds = run_e2e(np.zeros((len(y), 1), dtype=np.float32), y, images)
    return {"what": "10,000 synthetic 28x28 digit-like images, default spec, end to end",
            "rows": [{"variant": "after (defaults)", "seconds": [round(seconds, 1)], "median_s": round(seconds, 1)}],
            "load": [before, load()]}


def large_variant(variant: str, default_precision: str) -> tuple[dict[str, object], str]:
    """(TrainSpec fields, the report's name) of a --variants entry: a CNN width (WIDTH:fp32 or
    WIDTH:bf16 sets the precision) or mlp, the MLP on the pixels (mlp:LAYERS sets its depth)."""
    width, _, setting = variant.partition(":")
    if width == "mlp":
        layers = {"n_hidden_layers": int(setting)} if setting else {}
        return {"model": "mlp", **layers}, "curate, MLP on the pixels" + (f", {setting} hidden layers" if setting else "")
    if not width.isdigit() or setting not in ("", "fp32", "bf16"):
        raise SystemExit(f"--variants: {variant!r} is not WIDTH[:fp32|:bf16] or mlp[:LAYERS]")
    return ({"cnn_width": int(width), **({"precision": setting} if setting else {})},
            f"curate, CNN width {width}, {setting or default_precision}")


def part_large_detection(variants: tuple[str, ...] = ("16", "32", "mlp"), seed: int = 100,
                         noise: str = "confusion20") -> dict:
    from benchmarks.baselines import run_cleanlab
    from benchmarks.curate_adapter import run_curate
    from benchmarks.detection import parse_noise, plant
    from benchmarks.noise import compute_detection_metrics
    from models.spec import cpu_has_native_bf16, precision_for

    images, y = synthetic_digits()
    X = images.reshape(len(y), -1).astype(np.float64) / 255.0
    kind, rate = parse_noise(noise)
    y_noisy, flipped = plant(kind, rate, X, y, 10, seed)
    rows = []
    default_precision = precision_for(False, True, cpu_has_native_bf16())
    for variant in variants:
        spec, method = large_variant(variant, default_precision)
        out = run_curate(X, y_noisy, 10, random_state=seed, images=images, **spec)
        m = compute_detection_metrics(flipped, out.mislabel_score, out.is_flagged)
        rows.append({"method": method, "ap": round(m["ap"], 4), "f1": round(m["f1"], 4),
                     "seconds": round(out.seconds, 1), **load()})
        print(rows[-1], flush=True)
    base = run_cleanlab("cleanlab_mlp", X, y_noisy, seed)
    m = compute_detection_metrics(flipped, base.mislabel_score, base.is_flagged)
    rows.append({"method": "cleanlab, MLP out of fold", "ap": round(m["ap"], 4), "f1": round(m["f1"], 4),
                 "seconds": round(base.seconds, 1), **load()})
    print(rows[-1], flush=True)
    return {"what": f"10,000 synthetic 28x28 images, {kind} noise {round(rate * 100)} %, seed {seed}, end to end",
            "rows": rows,
            "n_flipped": int(flipped.sum())}


# --- detection on the image form -----------------------------------------------------------------


def part_detection(seeds: tuple[int, ...], **spec: object) -> dict:
    from benchmarks.curate_adapter import run_curate
    from benchmarks.detection import DATASETS, parse_noise, plant
    from benchmarks.noise import compute_detection_metrics

    committed = json.loads(Path("benchmarks/results/detection.json").read_text())["rows"]
    before = {(r["noise"], r["seed"]): r for r in committed if r["dataset"] == "digits_image" and r["method"] == "curate"}
    X, y = DATASETS["digits_image"](return_X_y=True)
    X, n_classes = X.astype(np.float64), int(y.max()) + 1
    rows = []
    for noise in DETECTION_NOISE:
        kind, rate = parse_noise(noise)
        for seed in seeds:
            y_noisy, flipped = plant(kind, rate, X, y, n_classes, seed)
            images = np.round(X.reshape(len(X), 8, 8) * 255.0 / 16.0).astype(np.uint8)  # as detection.py
            detection = run_curate(X, y_noisy, n_classes, random_state=seed, images=images, **spec)
            metrics = compute_detection_metrics(flipped, detection.mislabel_score, detection.is_flagged)
            old = before.get((noise, seed), {})
            rows.append({"noise": noise, "seed": seed, "ap": round(metrics["ap"], 4), "f1": round(metrics["f1"], 4),
                         "seconds": round(detection.seconds, 1), "ap_before": old.get("ap"),
                         "f1_before": old.get("f1"), "seconds_before": old.get("seconds"), **load()})
            print(rows[-1], flush=True)
    return {"what": "digits_image, Curate with the defaults vs the committed detection report (width 32)",
            "rows": rows}


# --- report --------------------------------------------------------------------------------------


def markdown(report: dict) -> str:
    out = ["# CPU image jobs (issue 17, item 1)", "",
           f"Last run: `{report['command']}`; {report['machine']}. Variants of one part ran interleaved in one "
           "run; the ratios between them are the figures to read (the box is shared).", ""]
    for part in ("training", "e2e", "e2e_default_threads", "large"):
        if part in report:
            p = report[part]
            out += [f"## {part}: {p['what']}", "", *([f"Measured by `{p['command']}`.", ""] if "command" in p else []),
                    markdown_table(
                ["variant", "runs (s)", "median (s)", "x table"],
                [[r["variant"], ", ".join(f"{s:g}" for s in r["seconds"]), f"{r['median_s']:g}",
                  f"{r['x_table']:g}" if "x_table" in r else ""] for r in p["rows"]]), "",
                    "Load (1/5/15 min) after each round: " + "; ".join(
                        f"{la['load_1m']}/{la['load_5m']}/{la['load_15m']}" for la in p["load"]), ""]
    if "large_detection" in report:
        p = report["large_detection"]
        out += [f"## large_detection: {p['what']}", "", *([f"Measured by `{p['command']}`.", ""] if "command" in p else []),
                markdown_table(
            ["method", "AP", "F1", "seconds", "load 1m"],
            [[r["method"], f"{r['ap']:.3f}", f"{r['f1']:.3f}", f"{r['seconds']:.0f}", f"{r['load_1m']}"]
             for r in p["rows"]]), ""]
    if "detection" in report:
        p = report["detection"]
        out += [f"## detection: {p['what']}", "", markdown_table(
            ["noise", "seed", "AP after", "AP before", "F1 after", "F1 before", "s after", "s before", "load 1m"],
            [[r["noise"], str(r["seed"]), f"{r['ap']:.3f}", _f(r["ap_before"]), f"{r['f1']:.3f}", _f(r["f1_before"]),
              f"{r['seconds']:.0f}", _f(r["seconds_before"], 0), f"{r['load_1m']}"] for r in p["rows"]]), ""]
    return "\n".join(out) + "\n"


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="training,e2e,large,detection")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the in-process training part")
    parser.add_argument("--seeds", default=",".join(map(str, TEST_SEEDS)))
    parser.add_argument("--width", type=int, default=0, help="detection part: this cnn_width (0: the default)")
    parser.add_argument("--variants", default="16,32,mlp",
                        help="large_detection: CNN widths (WIDTH:fp32 or :bf16 sets the precision) and/or mlp "
                             "(mlp:LAYERS sets its hidden layers)")
    parser.add_argument("--large-seed", type=int, default=100, help="large_detection: the seed of noise and training")
    parser.add_argument("--large-noise", default="confusion20", help="large_detection: the noise planted")
    parser.add_argument("--precision", default="", help="detection part: this TrainSpec precision ('': the default)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    path = args.out / "cpu_images.json"
    report = json.loads(path.read_text()) if path.exists() else {}  # parts not rerun stay as they were
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "CURATE_TORCH_THREADS") if k in os.environ)
    report.update(command=f"{env} python benchmarks/cpu_images.py ".lstrip()
                          + " ".join(argv if argv is not None else sys.argv[1:]),
                  machine=f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} torch thread(s) "
                          f"in-process, CURATE_TORCH_THREADS={os.environ.get('CURATE_TORCH_THREADS', 'unset')}")
    parts = args.part.split(",")
    if "training" in parts:
        report["training"] = part_training(args.repeats)
    if "e2e" in parts:  # one torch thread a worker, as the earlier runs; the default (a CNN: cores / workers) apart
        e2e = part_e2e(args.repeats)
        report["e2e" if e2e["worker_threads"] == 1 else "e2e_default_threads"] = {**e2e, "command": report["command"]}
    if "detection" in parts:
        spec: dict[str, object] = {"cnn_width": args.width} if args.width else {}
        if args.precision:
            spec["precision"] = args.precision
        report["detection"] = part_detection(tuple(int(s) for s in args.seeds.split(",")), **spec)
    if "large" in parts:
        report["large"] = part_large()
    if "large_detection" in parts:
        report["large_detection"] = {**part_large_detection(tuple(args.variants.split(",")), args.large_seed,
                                                            args.large_noise), "command": report["command"]}
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "cpu_images.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
