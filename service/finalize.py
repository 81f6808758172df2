"""Score a job whose epochs are all committed: read the predictions back, compute every score
(scoring/ is pure numpy), compare with AdaBoost, and write the results in one transaction."""

import numpy as np
import pyarrow as pa

from scoring.agreement import (
    FAMILY_CATEGORIES,
    compute_boosting_accessibility,
    compute_difficulty_correlation,
    compute_family_agreement,
    compute_stage_accuracy_by_group,
    check_curves_ordered,
)
from scoring.scores import ExampleScores, compute_example_scores
from service import jobs
from service.settings import Settings
from service.store import Store, insert_arrow, to_json


def load_dynamics(store: Store, job_id: str, model: str, n_members: int, n_epochs: int,
                  n_examples: int, n_classes: int) -> dict[str, np.ndarray]:
    """Committed predictions as arrays shaped (n_members, n_epochs + 1, n_examples) etc."""
    shape = (n_members, n_epochs + 1, n_examples)
    out = {"predicted_label": np.full(shape, -1, np.int16), "label_prob": np.zeros(shape, np.float32),
           "margin": np.zeros(shape, np.float32), "held_out": np.zeros((n_members, n_examples), bool),
           "prob_sum": np.zeros((n_epochs + 1, n_examples, n_classes), np.float32),
           "heldout_prob_sum": np.zeros((n_epochs + 1, n_examples, n_classes), np.float32)}
    with store.reader() as cur:
        rows = cur.execute("SELECT member, epoch, example_id, predicted_label, label_prob, margin, held_out "
                           "FROM predictions WHERE job_id = ? AND model = ?", [job_id, model]).fetchnumpy()
        probs = cur.sql("SELECT epoch, example_id, prob_sum, heldout_prob_sum FROM group_probs "
                        "WHERE job_id = $job AND model = $model", params={"job": job_id, "model": model}
                        ).to_arrow_table()
    m, e, i = (np.asarray(rows[c]).astype(np.int64) for c in ("member", "epoch", "example_id"))
    for col in ("predicted_label", "label_prob", "margin"):
        out[col][m, e, i] = rows[col]
    out["held_out"][m, i] = rows["held_out"]
    if (out["predicted_label"] < 0).any():
        raise RuntimeError(f"job {job_id}: {model} predictions are incomplete; cannot score")
    pe = probs.column("epoch").to_numpy().astype(np.int64)
    pi = probs.column("example_id").to_numpy().astype(np.int64)
    for col in ("prob_sum", "heldout_prob_sum"):
        flat = probs.column(col).combine_chunks().flatten().to_numpy()
        np.add.at(out[col], (pe, pi), flat.reshape(len(pe), n_classes))
    return out


def finalize_job(store: Store, settings: Settings, job: jobs.Job) -> ExampleScores:
    with store.reader() as cur:
        n_examples, n_classes = cur.execute("SELECT n_examples, n_classes FROM datasets WHERE dataset_id = ?",
                                            [job.dataset_id]).fetchone()
        given = cur.execute("SELECT given_label FROM examples WHERE dataset_id = ? ORDER BY example_id",
                            [job.dataset_id]).fetchnumpy()["given_label"].astype(np.int64)
    dyn = load_dynamics(store, job.job_id, "ensemble", job.spec.n_members, job.spec.n_epochs, n_examples, n_classes)
    scores = compute_example_scores(**dyn, given_labels=given, options=job.scoring)
    summary: dict[str, object] = {"n_examples": n_examples,
                                  "split_counts": {s: int((scores.split == s).sum()) for s in ("easy", "intermediate", "hard")}}
    ada_access = family = None
    curves_rows = None
    if job.adaboost.enabled:
        ada = load_dynamics(store, job.job_id, "adaboost", 1, job.adaboost.n_rounds, n_examples, n_classes)
        stages = ada["predicted_label"][0, 1:]  # (T, n): stage t = 1..T
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
        "consistency": s.consistency_curve.ravel().astype(np.float32),
        "consensus": s.consensus_curve.ravel().astype(np.float32),
        "consensus_label": s.consensus_label_curve.ravel().astype(np.int16),
        "heldout_consistency": pa.array(s.heldout_consistency_curve.ravel().astype(np.float32), from_pandas=True),
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
