"""Score a job whose epochs are all committed: read the predictions back (service.store.results),
compute every score (scoring/ is pure numpy), compare with AdaBoost, and write the results in one
transaction."""

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
from scoring.scores import (
    DynamicsAccumulator,
    ExampleScores,
    ScoringOptions,
    take_low_noise_pass,
    take_mislabels_from,
)
from service.settings import Settings
from service.store import catalog, jobs
from service.store.db import Store
from service.store.results import epoch_predictions, epoch_probs, stage_predictions, write_scores
from service.vocab import SPLITS


def compute_job_scores(store: Store, job_id: str, n_members: int, n_epochs: int, n_examples: int,
                       n_classes: int, given: np.ndarray, options: ScoringOptions,
                       model: str = "ensemble") -> ExampleScores:
    """Stream the ensemble's predictions epoch by epoch into the scorer (memory ~ epochs x examples).

    model "round2" (a rounds=2 job's second round) is scored over all its members: in-sample for
    the examples it trained on, held out (by every member) for the first round's suspects."""
    pooled = model == "round2"
    with store.reader() as cur:
        first = epoch_predictions(cur, job_id, model, 0, n_members, n_examples)
        held_out = np.zeros_like(first["held_out"]) if pooled else first["held_out"]
        acc = DynamicsAccumulator(given, n_classes, n_epochs + 1, held_out)
        for epoch in range(n_epochs + 1):
            pred = first if epoch == 0 else epoch_predictions(cur, job_id, model, epoch, n_members, n_examples)
            prob_sum, heldout_sum = epoch_probs(cur, job_id, model, epoch, n_examples, n_classes)
            if pooled:
                prob_sum, heldout_sum = prob_sum + heldout_sum, np.zeros_like(heldout_sum)
            acc.add_epoch(epoch, pred["predicted_label"], pred["label_prob"], pred["margin"], prob_sum, heldout_sum)
    return acc.scores(options)


def first_round_scores(store: Store, job: jobs.Job) -> ExampleScores:
    """Every score of the job's first (or only) round."""
    n_examples, n_classes = catalog.dataset_size(store, job.dataset_id)
    given = catalog.given_labels(store, job.dataset_id)
    return compute_job_scores(store, job.job_id, job.spec.n_members, job.spec.n_epochs, n_examples, n_classes,
                              given, job.scoring)


def low_noise_first_pass(store: Store, job: jobs.Job) -> ExampleScores | None:
    """The first pass's scores if the job trains (or trained) the low-noise pass, else None: decided
    from its committed first pass (deterministic), so a resumed job and the scoring decide alike."""
    if job.spec.low_noise_jumpout is None:
        return None  # no scoring needed
    first = first_round_scores(store, job)
    return first if job.spec.wants_low_noise_pass(first.estimated_n_errors, len(first.mislabel_score)) else None


def finalize_job(store: Store, settings: Settings, job: jobs.Job) -> ExampleScores:
    n_examples, n_classes = catalog.dataset_size(store, job.dataset_id)
    given = catalog.given_labels(store, job.dataset_id)
    scores = compute_job_scores(store, job.job_id, job.spec.n_members, job.spec.n_epochs, n_examples, n_classes,
                                given, job.scoring)
    rounds: dict[str, object] = {}
    if job.spec.rounds == 2:
        second = compute_job_scores(store, job.job_id, job.spec.n_members, job.spec.n_epochs, n_examples, n_classes,
                                    given, job.scoring, model="round2")
        rounds = {"first_round_flagged": int(scores.is_suspected_mislabel.sum()),
                  "first_round_estimated_n_errors": scores.estimated_n_errors}
        scores = take_mislabels_from(scores, second)
    elif job.spec.wants_low_noise_pass(scores.estimated_n_errors, n_examples):
        low = job.spec.low_noise_spec()
        second = compute_job_scores(store, job.job_id, low.n_members, low.n_epochs, n_examples, n_classes, given,
                                    job.scoring, model="round2")
        rounds = {"low_noise_pass": {"jumpout": list(job.spec.low_noise_jumpout or ()),
                                     "n_members": low.n_members, "n_epochs": low.n_epochs,
                                     "first_pass_estimated_n_errors": scores.estimated_n_errors,
                                     "second_pass_estimated_n_errors": second.estimated_n_errors}}
        scores = take_low_noise_pass(scores, second)
    summary: dict[str, object] = {**rounds,"n_examples": n_examples,
                                  "split_counts": {s: int((scores.split == s).sum()) for s in SPLITS},
                                  "estimated_precision": scores.estimated_precision,
                                  "mislabel_method": scores.options.mislabel_method,
                                  "count_method": scores.options.count_method}
    summary["phases"] = _phases(scores.consistency_curve, job.spec.n_members, n_classes)
    ada_access = family = None
    curves_rows = None
    if job.adaboost.enabled:
        stages = stage_predictions(store, job.job_id, job.adaboost.n_rounds, n_examples)  # (T, n)
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
    write_scores(store, job_id, stats, pa.table(per_example), curves_rows, s.estimated_n_errors, summary)
