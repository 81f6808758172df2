"""Score a job whose epochs are all committed: read the predictions back, compute every score
(scoring/ is pure numpy), compare with AdaBoost, and write the results in one transaction."""

import numpy as np
import pyarrow as pa

from scoring.agreement import (
    FAMILY_CATEGORIES,
    check_curves_ordered,
    compute_boosting_accessibility,
    compute_difficulty_correlation,
    compute_family_agreement,
    compute_stage_accuracy_by_group,
)
from scoring.phases import compute_agreement_index, detect_phases
from scoring.scores import DynamicsAccumulator, ExampleScores, ScoringOptions
from service.store import jobs
from service.settings import Settings
from service.store.db import Store, insert_arrow, to_json


def _epoch_predictions(cur, job_id: str, model: str, epoch: int, n_members: int, n_examples: int
                       ) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """One epoch's committed predictions as (n_members, n_examples) arrays."""
    table = cur.sql("SELECT member, example_id, predicted_label, label_prob, margin, held_out FROM predictions "
                    "WHERE job_id = $job AND model = $model AND epoch = $epoch",
                    params={"job": job_id, "model": model, "epoch": epoch}).to_arrow_table()
    if table.num_rows != n_members * n_examples:
        raise RuntimeError(f"job {job_id}: {model} epoch {epoch} has {table.num_rows} predictions, "
                           f"expected {n_members * n_examples}; cannot score")
    # one row per (member, example): its flat position; rows usually arrive in order already
    flat = table.column("member").to_numpy().astype(np.int64) * n_examples + table.column("example_id").to_numpy()
    in_order = bool((flat == np.arange(len(flat))).all())
    out = {}
    for col in ("predicted_label", "label_prob", "margin", "held_out"):
        values = table.column(col).to_numpy(zero_copy_only=False)
        if not in_order:
            placed = np.empty_like(values)
            placed[flat] = values
            values = placed
        out[col] = values.reshape(n_members, n_examples)
    return out


def _epoch_probs(cur, job_id: str, model: str, epoch: int, n_examples: int, n_classes: int
                 ) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """One epoch's class-probability sums over all groups, each (n_examples, n_classes)."""
    table = cur.sql("SELECT group_id, example_id, prob_sum, heldout_prob_sum FROM group_probs "
                    "WHERE job_id = $job AND model = $model AND epoch = $epoch ORDER BY group_id, example_id",
                    params={"job": job_id, "model": model, "epoch": epoch}).to_arrow_table()
    groups = table.column("group_id").to_numpy()
    ids = table.column("example_id").to_numpy().astype(np.int64)
    bounds = np.flatnonzero(np.diff(groups)) + 1  # each group covers every example once
    sums = []
    for col in ("prob_sum", "heldout_prob_sum"):
        flat = table.column(col).combine_chunks().flatten().to_numpy().reshape(len(ids), n_classes)
        total = np.zeros((n_examples, n_classes))
        for part_ids, part in zip(np.split(ids, bounds), np.split(flat, bounds)):
            total[part_ids] += part
        sums.append(total)
    return sums[0], sums[1]


def compute_job_scores(store: Store, job_id: str, n_members: int, n_epochs: int, n_examples: int,
                       n_classes: int, given: np.ndarray, options: ScoringOptions) -> ExampleScores:
    """Stream the ensemble's predictions epoch by epoch into the scorer (memory ~ epochs x examples)."""
    with store.reader() as cur:
        first = _epoch_predictions(cur, job_id, "ensemble", 0, n_members, n_examples)
        acc = DynamicsAccumulator(given, n_classes, n_epochs + 1, first["held_out"])
        for epoch in range(n_epochs + 1):
            pred = first if epoch == 0 else _epoch_predictions(cur, job_id, "ensemble", epoch, n_members, n_examples)
            prob_sum, heldout_sum = _epoch_probs(cur, job_id, "ensemble", epoch, n_examples, n_classes)
            acc.add_epoch(epoch, pred["predicted_label"], pred["label_prob"], pred["margin"], prob_sum, heldout_sum)
    return acc.scores(options)


def load_stage_predictions(store: Store, job_id: str, n_stages: int, n_examples: int) -> np.ndarray:
    """AdaBoost's predicted labels after stages 1..T, (n_stages, n_examples)."""
    with store.reader() as cur:
        rows = cur.execute("SELECT epoch, example_id, predicted_label FROM predictions WHERE job_id = ? "
                           "AND model = 'adaboost' AND epoch >= 1", [job_id]).fetchnumpy()
    if len(rows["epoch"]) != n_stages * n_examples:
        raise RuntimeError(f"job {job_id}: AdaBoost predictions are incomplete; cannot score")
    out = np.empty((n_stages, n_examples), dtype=np.int16)
    out[rows["epoch"].astype(np.int64) - 1, rows["example_id"].astype(np.int64)] = rows["predicted_label"]
    return out


def finalize_job(store: Store, settings: Settings, job: jobs.Job) -> ExampleScores:
    with store.reader() as cur:
        n_examples, n_classes = cur.execute("SELECT n_examples, n_classes FROM datasets WHERE dataset_id = ?",
                                            [job.dataset_id]).fetchone()
        given = cur.execute("SELECT given_label FROM examples WHERE dataset_id = ? ORDER BY example_id",
                            [job.dataset_id]).fetchnumpy()["given_label"].astype(np.int64)
    scores = compute_job_scores(store, job.job_id, job.spec.n_members, job.spec.n_epochs, n_examples, n_classes,
                                given, job.scoring)
    splits = ("easy", "intermediate", "hard")
    summary: dict[str, object] = {"n_examples": n_examples,
                                  "split_counts": {s: int((scores.split == s).sum()) for s in splits},
                                  "estimated_precision": scores.estimated_precision,
                                  "mislabel_method": scores.options.mislabel_method,
                                  "count_method": scores.options.count_method}
    summary["phases"] = _phases(scores.consistency_curve, job.spec.n_members, n_classes)
    ada_access = family = None
    curves_rows = None
    if job.adaboost.enabled:
        stages = load_stage_predictions(store, job.job_id, job.adaboost.n_rounds, n_examples)  # (T, n)
        ada_access = compute_boosting_accessibility(stages, given)
        corr = compute_difficulty_correlation(scores.accessibility, ada_access)
        curves = compute_stage_accuracy_by_group(stages, given, scores.split)
        family = compute_family_agreement(scores.accessibility, ada_access)
        summary["adaboost"] = {**{k: _num(v) for k, v in corr.__dict__.items()},
                               "curves_ordered": _num(check_curves_ordered(curves)),
                               "final_accuracy": float((stages[-1] == given).mean()),
                               "family_counts": {k: int((family == k).sum()) for k in FAMILY_CATEGORIES}}
        t = len(stages)
        curves_rows = pa.table({"stage": np.tile(np.arange(1, t + 1, dtype=np.int32), 3),
                                "split": np.repeat(list(curves), t),
                                "accuracy": np.concatenate([curves[s] for s in curves]).astype(np.float32)})
    _write_scores(store, job.job_id, scores, given, ada_access, family, curves_rows, summary)
    return scores


def _phases(consistency: np.ndarray, n_members: int, n_classes: int) -> dict[str, list] | None:
    """Agreement index and learning phase per epoch (SCIENCE.md section 1), computed once here so
    pages read a few numbers instead of the whole (epochs x examples) consistency matrix."""
    try:
        agreement = compute_agreement_index(consistency, n_members)
        phases = detect_phases(consistency, n_members, n_classes)
    except ValueError:  # e.g. one member: no agreement to measure
        return None
    return {"agreement_index": [_num(float(a)) for a in agreement], "phase": [int(p) for p in phases]}


def _num(value: object) -> object:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return value


def _write_scores(store: Store, job_id: str, s: ExampleScores, given: np.ndarray, ada_access: np.ndarray | None,
                  family: np.ndarray | None, curves_rows: pa.Table | None, summary: dict) -> None:
    n_epochs, n = s.consistency_curve.shape
    stats = pa.table({
        "epoch": np.repeat(np.arange(n_epochs, dtype=np.int16), n),
        "example_id": np.tile(np.arange(n, dtype=np.int32), n_epochs),
        "consistency": s.consistency_curve.ravel().astype(np.float32, copy=False),
        "consensus": s.consensus_curve.ravel().astype(np.float32, copy=False),
        "consensus_label": s.consensus_label_curve.ravel().astype(np.int16, copy=False),
        "heldout_consistency": pa.array(s.heldout_consistency_curve.ravel().astype(np.float32, copy=False),
                                        from_pandas=True),
    })
    per_example = {
        "example_id": np.arange(n, dtype=np.int32), "given_label": given.astype(np.int16),
        "consistency": s.consistency, "consensus": s.consensus, "consensus_label": s.consensus_label,
        "heldout_consistency": pa.array(s.heldout_consistency, from_pandas=True),
        "accessibility": s.accessibility, "first_learned_epoch": s.first_learned_epoch.astype(np.int16),
        "mean_label_prob": s.mean_label_prob, "split": s.split.astype(object), "mislabel_score": s.mislabel_score,
        "is_suspected_mislabel": s.is_suspected_mislabel, "suggested_label": s.suggested_label.astype(np.int16),
    }
    if ada_access is not None and family is not None:
        per_example["adaboost_accessibility"] = ada_access
        per_example["family_agreement"] = family.astype(object)
    with store.transaction() as cur:
        for table in ("example_epoch_stats", "example_scores", "adaboost_curves"):
            cur.execute(f"DELETE FROM {table} WHERE job_id = ?", [job_id])
        insert_arrow(cur, "example_epoch_stats", stats, {"job_id": job_id})
        insert_arrow(cur, "example_scores", pa.table(per_example), {"job_id": job_id})
        if curves_rows is not None:
            insert_arrow(cur, "adaboost_curves", curves_rows, {"job_id": job_id})
        cur.execute("UPDATE jobs SET estimated_n_errors = ?, summary = ? WHERE job_id = ?",
                    [s.estimated_n_errors, to_json(summary), job_id])
