"""How close are Curate's estimated error count and the estimated precision of its flags to the truth?

    python benchmarks/flag_calibration.py [--datasets wine,iris,breast_cancer,digits,segment,phishing]
        [--noise sym10,...,ambiguous30] [--selection-seeds 0,1,2] [--test-seeds 100,101,102]
        [--budgets 8x20,16x20,8x40,8x20r2] [--cache DIR] [--out benchmarks/results]

For each (dataset, noise, seed) this trains the default ensemble directly (no store: the Jumpout
row the default picks, 8 members x 20 epochs, as `benchmarks/detection_variants.py` does), scores
the record with `scoring.scores.compute_example_scores` (the pipeline's own scoring), and grades:
- the estimated precision at the cut against the measured share of planted flips among the
  flagged, for the default estimate (1 - accessibility: the share of member-epoch votes against
  the flagged labels) and the previous one (1 - the mean probability of the given label);
- the estimated error count against the planted count, for the default count (mean margin over
  the trained epochs < 0), the same over the first half of training only (before memorisation),
  confident learning on the in-sample probabilities, and the expected number of wrong labels if each
  example's share of votes against its label were its chance of being wrong (the sum of 1 -
  accessibility); with the flagged-set F1 each count gives, next to the planted count's (an oracle:
  how far the ranking alone goes).
The estimators were chosen on the selection seeds; the test seeds are reported apart and chose
nothing. `--budgets MxE,...` also trains M members x E epochs beside the default 8 x 20 and
reports what a larger budget buys (AP, flagged-set F1, rate gap) on the same cases; `MxEr2` is
rounds=2 (TrainSpec.rounds): after the M x E round, M more members train E epochs with that round's
suspects held out by all of them (`scoring.scores.second_round_exclusion`, as the engine does) and
the flags come from the second round (`take_mislabels_from`). Budgets are graded on both seed
sets, so one that would become the default is chosen on the selection seeds and reported on the
test seeds. `--cache DIR` keeps each record as an .npz so a rerun only re-grades.
Writes `<out>/<name>.{json,md}` (name: flag_calibration).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rich.console import Console

from benchmarks.detection import DATASETS, TABLE_NOISE, describe_machine, fmt, parse_noise, plant
from benchmarks.detection_variants import VARIANTS, default_variant
from benchmarks.noise import compute_detection_metrics
from benchmarks.report import markdown_table, print_tables, write_report
from scoring.mislabel import (
    MISLABEL_METHODS,
    estimate_n_errors_by_margin,
    estimate_n_label_errors,
    flag_suspected_mislabels,
)
from scoring.scores import (
    ExampleScores,
    ScoringOptions,
    compute_example_scores,
    second_round_exclusion,
    take_mislabels_from,
)

KINDS = ("sym", "pair", "confusion", "ambiguous")
PRECISION_ESTIMATES = ("votes_against", "one_minus_prob")  # the default first
# the default first; "planted" is the oracle (the true count), to show what the ranking allows at a perfect count
COUNTS = ("margin", "margin_first_half", "confident_learning", "expected_votes", "planted")
RECORD_FIELDS = ("predicted_label", "label_prob", "margin", "held_out", "prob_sum", "heldout_prob_sum")


DEFAULT_BUDGET = "8x20"  # TrainSpec's n_members x n_epochs


def parse_budget(text: str) -> tuple[int, int, int]:
    """'16x20' -> (16, 20, 1); '8x20r2' -> (8, 20, 2): members, epochs (each round), rounds."""
    body, _, rounds = text.partition("r")
    members, _, epochs = body.partition("x")
    if not (members.isdigit() and epochs.isdigit() and rounds in ("", "2")):
        raise SystemExit(f"--budgets: {text!r} is not MEMBERSxEPOCHS[r2], e.g. 16x20 or 8x20r2")
    return int(members), int(epochs), 2 if rounds else 1


def _scores(r: dict[str, np.ndarray], pooled: bool = False, options: ScoringOptions | None = None) -> ExampleScores:
    """The pipeline's scores of a record; pooled (a second round, finalize's model 'round2'): every
    member's predictions count in-sample, the excluded examples' included."""
    y = r["y_noisy"].astype(np.int64)
    prob_sum, heldout = r["prob_sum"].astype(np.float32), r["heldout_prob_sum"].astype(np.float32)
    held_out = r["held_out"]
    if pooled:
        prob_sum, heldout, held_out = prob_sum + heldout, np.zeros_like(heldout), np.zeros_like(held_out)
    return compute_example_scores(r["predicted_label"], r["label_prob"], r["margin"], held_out, prob_sum, heldout, y,
                                  options or ScoringOptions())


def train_record(dataset: str, noise: str, seed: int, cache: Path | None,
                 budget: str = DEFAULT_BUDGET) -> dict[str, np.ndarray]:
    """The noisy labels, the planted flips and the ensemble's record of one case at one budget."""
    """For an `r2` budget: the second round's record; its first round is the same budget without r2."""
    suffix = "" if budget == DEFAULT_BUDGET else f"_{budget}"
    path = None if cache is None else cache / f"{dataset}_{noise}_{seed}{suffix}.npz"
    if path is not None and path.exists():
        with np.load(path) as stored:
            if "heldout_prob_sum" in stored:  # records cached before it was kept are trained again
                out = {k: stored[k] for k in ("y_noisy", "flipped", *RECORD_FIELDS)}
                out["train_seconds"] = stored["train_seconds"] if "train_seconds" in stored else np.array(np.nan)
                return out
    from models.ensemble import Ensemble  # torch only when something is trained
    from models.spec import TrainSpec

    n_members, n_epochs, rounds = parse_budget(budget)
    X, y = DATASETS[dataset](return_X_y=True)
    X, n_classes = X.astype(np.float64), int(y.max()) + 1
    kind, rate = parse_noise(noise)
    y_noisy, flipped = plant(kind, rate, X, y, n_classes, seed)
    spec = TrainSpec(random_state=seed, n_members=n_members, n_epochs=n_epochs,  # type: ignore[arg-type]
                     **VARIANTS[default_variant(dataset)])
    exclude, first_seconds = None, 0.0
    if rounds == 2:
        first = train_record(dataset, noise, seed, cache, budget.partition("r")[0])
        exclude, first_seconds = second_round_exclusion(_scores(first)), float(first["train_seconds"])
        spec = spec.model_copy(update={"random_state": spec.round2_seed()})
    started = time.perf_counter()
    record = Ensemble(spec).fit(X, y_noisy, n_classes, exclude=exclude).record_
    out = {"y_noisy": y_noisy, "flipped": flipped, **{k: getattr(record, k) for k in RECORD_FIELDS},
           "train_seconds": np.array(time.perf_counter() - started + first_seconds)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **out)
    return out


def grade_case(r: dict[str, np.ndarray], first: dict[str, np.ndarray] | None = None) -> dict[str, float | int | None]:
    """Every estimate of one case next to its truth; `first`: r is a second round and this its first."""
    y, flipped = r["y_noisy"].astype(np.int64), r["flipped"].astype(bool)
    pooled = first is not None
    scores = _scores(r, pooled)
    if first is not None:
        scores = take_mislabels_from(_scores(first), scores)
    prob_sum = r["prob_sum"].astype(np.float32) + (r["heldout_prob_sum"].astype(np.float32) if pooled else 0.0)
    flagged = scores.is_suspected_mislabel
    seconds = float(r["train_seconds"])
    row: dict[str, float | int | None] = {"n_examples": len(y), "n_flipped": int(flipped.sum()),
                                          "n_flagged": int(flagged.sum()),
                                          "train_seconds": None if np.isnan(seconds) else seconds}
    metrics = compute_detection_metrics(flipped, scores.mislabel_score, flagged)
    row["ap"], row["f1"] = metrics["ap"], metrics["f1"]
    row["precision"] = float(flipped[flagged].mean()) if flagged.any() else None
    row["false_flags"] = np.flatnonzero(flagged & ~flipped).tolist()  # flagged, no planted flip (recurring_table)
    row["votes_against"] = scores.estimated_precision
    row["one_minus_prob"] = float((1.0 - scores.mean_label_prob[flagged]).mean()) if flagged.any() else None
    in_sample = np.ones_like(r["held_out"]) if pooled else ~r["held_out"]
    margin = np.where(in_sample[:, None, :], r["margin"], 0.0).sum(axis=0) / in_sample.sum(axis=0)[None, :]
    half = 1 + (margin.shape[0] - 1) // 2
    probs = prob_sum[1:].sum(axis=0) / (in_sample.sum(axis=0)[:, None] * (prob_sum.shape[0] - 1))
    counts = {"margin": scores.estimated_n_errors, "margin_first_half": estimate_n_errors_by_margin(margin[:half]),
              "confident_learning": estimate_n_label_errors(probs.astype(np.float64), y),
              "expected_votes": int(round(float(np.nansum(1.0 - scores.accessibility)))),
              "planted": int(flipped.sum())}
    assert counts["margin"] == estimate_n_errors_by_margin(margin)  # the default count, computed twice
    row.update({f"count_{k}": v for k, v in counts.items()})
    row.update({f"f1_{k}": compute_detection_metrics(flipped, scores.mislabel_score,
                                                      flag_suspected_mislabels(scores.mislabel_score, v))["f1"]
                for k, v in counts.items()})
    if first is None:  # every ranking of scoring.mislabel on the same record (AP needs no count)
        for method in MISLABEL_METHODS:
            other = _scores(r, options=ScoringOptions(mislabel_method=method)).mislabel_score
            row[f"ap_{method}"] = compute_detection_metrics(flipped, other, flagged)["ap"]
    return row


def _records(dataset: str, noise: str, seed: int, cache: Path | None,
             budget: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """The record to grade and, for an r2 budget, its first round's."""
    record = train_record(dataset, noise, seed, cache, budget)
    if parse_budget(budget)[2] == 1:
        return record, None
    return record, train_record(dataset, noise, seed, cache, budget.partition("r")[0])


def run(args: argparse.Namespace, console: Console) -> list[dict]:
    rows = []
    seeds = [("selection", s) for s in args.selection_seeds] + [("test", s) for s in args.test_seeds]
    for budget, dataset, noise, (role, seed) in itertools.product(args.budgets, args.datasets, args.noise, seeds):
        started = time.perf_counter()
        row = {"dataset": dataset, "noise": noise, "kind": parse_noise(noise)[0], "seed": seed, "role": role,
               "budget": budget, **grade_case(*_records(dataset, noise, seed, args.cache, budget))}
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        console.log(f"{budget} {dataset} {noise} {role} {seed}: AP {row['ap']:.3f}, precision {fmt(row['precision'])}, votes against "
                    f"{fmt(row['votes_against'])}, 1 - prob {fmt(row['one_minus_prob'])}; "
                    f"count {row['count_margin']} / planted {row['n_flipped']} ({row['seconds']:.1f}s)")
    return rows


def precision_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per noise kind: mean (estimate - measured) and mean |estimate - measured| of each estimate."""
    body = []
    for kind in (*KINDS, "all"):
        some = [r for r in rows if (kind == "all" or r["kind"] == kind) and r["precision"] is not None]
        cells = [kind, str(len(some)), fmt(float(np.mean([r["precision"] for r in some])) if some else None)]
        for est in PRECISION_ESTIMATES:
            err = np.array([r[est] - r["precision"] for r in some if r[est] is not None])
            cells.append(f"{err.mean():+.3f} / {np.abs(err).mean():.3f} / {np.abs(err).max():.3f}" if err.size else "n/a")
        body.append(cells)
    return ["noise kind", "runs", "measured precision"] + [f"{e}: mean err / mean abs / max abs"
                                                          for e in PRECISION_ESTIMATES], body


def count_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per count: the rate gap (estimated - planted, in rate points) per kind, and the share of
    cases (seed means) within 3 points, issue 12's target."""
    body = []
    for count in COUNTS:
        gaps = {(r["dataset"], r["noise"]): [] for r in rows}
        for r in rows:
            gaps[(r["dataset"], r["noise"])].append((r[f"count_{count}"] - r["n_flipped"]) / r["n_examples"])
        case_gap = {case: float(np.mean(g)) for case, g in gaps.items()}
        cells = [count]
        for kind in KINDS:
            g = [v for (d, n), v in case_gap.items() if parse_noise(n)[0] == kind]
            cells.append(f"{np.mean(g):+.3f} (worst {max(g, key=abs):+.3f})" if g else "n/a")
        within = np.mean([abs(v) <= 0.03 for v in case_gap.values()])
        realistic = [r for r in rows if r["kind"] in ("confusion", "ambiguous")]
        f1 = [fmt(float(np.mean([r[f"f1_{count}"] for r in some]))) if some and f"f1_{count}" in some[0] else "n/a"
              for some in (rows, realistic)]
        cells += [f"{np.mean(np.abs(list(case_gap.values()))):.3f}", f"{within:.0%} of {len(case_gap)}", *f1]
        body.append(cells)
    return ["count", *KINDS, "mean |gap|", "cases within 3 points", "F1", "F1 confusion + ambiguous"], body


def conflicting_duplicates(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n,) True where the example's exact features appear again with another (clean) label."""
    _, group = np.unique(np.ascontiguousarray(X), axis=0, return_inverse=True)
    group = group.reshape(-1)
    group_label = np.unique(np.stack([group, np.asarray(y, dtype=np.int64)]), axis=1)  # distinct (group, label)
    n_labels = np.bincount(group_label[0], minlength=group.max() + 1)
    return n_labels[group] > 1


def recurring_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per data set: the flags on examples without a planted flip, and how many of those examples
    recur (false-flagged in at least half of the data set's runs, whatever the noise and seed: a
    property of the clean data, not of a run), and of those how many sit in conflicting duplicates."""
    body = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        some = [r for r in rows if r["dataset"] == dataset]
        seen = np.zeros(some[0]["n_examples"], dtype=int)
        for r in some:
            seen[r["false_flags"]] += 1
        recurring = np.flatnonzero(seen >= len(some) / 2)
        X, y = DATASETS[dataset](return_X_y=True)
        conflict = conflicting_duplicates(np.asarray(X, dtype=np.float64), np.asarray(y))
        body.append([dataset, str(len(some)), f"{np.mean([len(r['false_flags']) for r in some]):.1f}",
                     f"{np.mean([len(r['false_flags']) / r['n_examples'] for r in some]):.3f}",
                     str(len(recurring)), str(int(conflict[recurring].sum())), str(int(conflict.sum()))])
    return ["data set", "runs", "flags without a planted flip, a run", "as a share of the examples",
            "examples so flagged in >= half the runs", "of them in conflicting duplicates",
            "conflicting-duplicate rows in the clean data"], body


def method_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Per ranking (ScoringOptions.mislabel_method): mean AP per kind, over every run, and its
    cases (seed means) better and worse than the default's."""
    default = ScoringOptions().mislabel_method
    body = []
    for method in MISLABEL_METHODS:
        cells = [method + (" (default)" if method == default else "")]
        for kind in KINDS:
            aps = [r[f"ap_{method}"] for r in rows if r["kind"] == kind]
            cells.append(fmt(float(np.mean(aps)), digits=4) if aps else "n/a")
        realistic = [r[f"ap_{method}"] for r in rows if r["kind"] in ("confusion", "ambiguous")]
        cells += [fmt(float(np.mean([r[f"ap_{method}"] for r in rows])), digits=4),
                  fmt(float(np.mean(realistic)), digits=4) if realistic else "n/a"]
        deltas: dict[tuple[str, str], list[float]] = {}
        for r in rows:
            deltas.setdefault((r["dataset"], r["noise"]), []).append(r[f"ap_{method}"] - r[f"ap_{default}"])
        case = [float(np.mean(d)) for d in deltas.values()]
        cells += [f"{sum(d > 0 for d in case)} / {sum(d < 0 for d in case)} of {len(case)}",
                  f"{min(case):+.4f}" if case else "n/a"]
        body.append(cells)
    return ["ranking", *[f"AP {k}" for k in KINDS], "AP all", "AP confusion + ambiguous",
            "cases better / worse than the default", "worst case vs the default"], body


def _mean_seconds(rows: list[dict]) -> str:
    seconds = [r["train_seconds"] for r in rows if r["train_seconds"] is not None]
    return f"{np.mean(seconds):.1f}" if len(seconds) == len(rows) else "n/a (cached records)"


def budget_table(rows: list[dict], budgets: list[str]) -> tuple[list[str], list[list[str]]]:
    """Per budget, on the cases every budget ran: mean AP per kind, F1 and rate gap, seconds."""
    ran = {b: {(r["dataset"], r["noise"], r["seed"]) for r in rows if r["budget"] == b} for b in budgets}
    common = set.intersection(*ran.values())
    body = []
    for b in budgets:
        some = [r for r in rows if r["budget"] == b and (r["dataset"], r["noise"], r["seed"]) in common]
        cells = [b, str(len(some))]
        for kind in KINDS:
            aps = [r["ap"] for r in some if r["kind"] == kind]
            cells.append(fmt(float(np.mean(aps))) if aps else "n/a")
        cells += [fmt(float(np.mean([r["ap"] for r in some]))), fmt(float(np.mean([r["f1"] for r in some]))),
                  fmt(float(np.mean([abs(r["count_margin"] - r["n_flipped"]) / r["n_examples"] for r in some]))),
                  _mean_seconds(some)]
        body.append(cells)
    return ["budget (members x epochs)", "runs", *[f"AP {k}" for k in KINDS], "AP all", "F1", "mean |rate gap|",
            "training seconds a run"], body


def tables(rows: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    out = []
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    for role in ("selection", "test"):  # a budget that would become the default is chosen on the selection seeds
        some = [r for r in rows if r["role"] == role]
        if len(budgets) > 1 and some:
            out.append((f"What a larger budget buys ({role} seeds, the cases every budget ran)",
                        *budget_table(some, budgets)))
    for role in ("selection", "test"):
        some = [r for r in rows if r["role"] == role and r["budget"] == DEFAULT_BUDGET]
        if some:
            seeds = sorted({r["seed"] for r in some})
            out.append((f"Estimated precision at the cut against the measured precision ({role} seeds {seeds})",
                        *precision_table(some)))
            out.append((f"Estimated error count against the planted count ({role} seeds {seeds})", *count_table(some)))
            out.append((f"Each ranking's AP on the same records ({role} seeds {seeds})", *method_table(some)))
            if all("false_flags" in r for r in some):
                out.append((f"Flags without a planted flip, and the examples they recur on ({role} seeds {seeds})",
                            *recurring_table(some)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="wine,iris,breast_cancer,digits,segment,phishing")
    parser.add_argument("--noise", default=TABLE_NOISE)
    parser.add_argument("--selection-seeds", default="0,1,2")
    parser.add_argument("--test-seeds", default="100,101,102")
    parser.add_argument("--budgets", default=DEFAULT_BUDGET, help="MEMBERSxEPOCHS,...; the default first")
    parser.add_argument("--cache", type=Path, default=None, help="keep and reuse each case's record here")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--name", default="flag_calibration", help="the report's file stem")
    args = parser.parse_args(argv)
    args.datasets, args.noise, args.budgets = args.datasets.split(","), args.noise.split(","), args.budgets.split(",")
    for budget in args.budgets:
        parse_budget(budget)
    if args.budgets[0] != DEFAULT_BUDGET:
        args.budgets.insert(0, DEFAULT_BUDGET)
    args.selection_seeds = [int(s) for s in args.selection_seeds.split(",") if s]
    args.test_seeds = [int(s) for s in args.test_seeds.split(",") if s]
    console = Console(width=160)
    started = time.perf_counter()
    rows = run(args, console)
    machine = describe_machine()
    report = {"machine": machine, "total_seconds": time.perf_counter() - started,
              "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "name")},
              "rows": rows}
    print_tables(console, tables(rows))
    lines = ["# Flag calibration: the estimated error count and precision against the truth", "",
             f"Command: `{machine['command']}`", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items() if k != "command"), "",
             "The default ensemble (8 members x 20 epochs, the Jumpout row the default picks) trained "
             "directly, scored by the pipeline's scoring; flagged = the top-scored up to the default count. "
             "Precision errors are estimate - measured share of planted flips among the flagged.", ""]
    for title, header, body in tables(rows):
        lines += [f"## {title}", "", markdown_table(header, body), ""]
    lines.append(f"Total wall time: {report['total_seconds']:.0f} s")
    write_report(args.out, args.name, report, lines)


if __name__ == "__main__":
    main()
