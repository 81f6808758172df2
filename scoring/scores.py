"""All per-example scores of a job from its learning dynamics, in one call.

Input: the stacked prediction record (see models/predictions.py for the arrays). Output: the
per-epoch curves and the per-example fields that the store, API, CLI and exports show.
"""

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scoring.consensus import compute_consensus, compute_vote_counts
from scoring.consistency import compute_accessibility, compute_consistency, compute_first_learned_epoch
from scoring.mislabel import (
    compute_mislabel_score,
    compute_suggested_label,
    estimate_n_label_errors,
    flag_suspected_mislabels,
)
from scoring.splits import compute_splits


@dataclass(frozen=True)
class ScoringOptions:
    easy_at_least: float = 0.8  # accessibility at or above -> "easy"
    hard_below: float = 0.3  # accessibility below -> "hard"
    learned_threshold: float = 0.5  # consistency that counts as "learned" for first_learned_epoch
    mislabel_method: str = "prob_margin"  # see scoring.mislabel.compute_mislabel_score
    count_from: str = "auto"  # probabilities for the error count: in_sample | held_out | auto


@dataclass(frozen=True)
class ExampleScores:
    # per epoch, (n_epochs, n_examples), over all members
    consistency_curve: npt.NDArray[np.float64]
    consensus_curve: npt.NDArray[np.float64]
    consensus_label_curve: npt.NDArray[np.int64]
    # per epoch over held-out members only (NaN without cross-fitting)
    heldout_consistency_curve: npt.NDArray[np.float64]
    # per example, (n_examples,)
    consistency: npt.NDArray[np.float64]  # final epoch, all members
    consensus: npt.NDArray[np.float64]  # final epoch
    consensus_label: npt.NDArray[np.int64]  # final epoch
    heldout_consistency: npt.NDArray[np.float64]  # final epoch, held-out members (NaN without folds)
    accessibility: npt.NDArray[np.float64]  # mean in-sample consistency over trained epochs
    first_learned_epoch: npt.NDArray[np.int64]  # -1 = never
    mean_label_prob: npt.NDArray[np.float64]  # in-sample prob of the given label, mean over trained epochs
    split: npt.NDArray[np.str_]
    mislabel_score: npt.NDArray[np.float64]
    is_suspected_mislabel: npt.NDArray[np.bool_]
    suggested_label: npt.NDArray[np.int64]
    estimated_n_errors: int
    options: ScoringOptions = field(default_factory=ScoringOptions)


def _masked_member_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over members where mask (M, n) is True: (M, E, n) -> (E, n); NaN where none."""
    count = mask.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask[:, None, :], values, 0.0).sum(axis=0) / count[None, :]


def _mean_probs(prob_sum: np.ndarray, n_members_counted: np.ndarray) -> np.ndarray:
    """Class probabilities averaged over members and trained epochs: (E, n, K) sums -> (n, K)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = prob_sum[1:].mean(axis=0) / n_members_counted[:, None]
    return probs


def compute_example_scores(
    predicted_label: npt.NDArray[np.integer],  # (n_members, n_epochs, n_examples)
    label_prob: npt.NDArray[np.floating],  # (n_members, n_epochs, n_examples)
    margin: npt.NDArray[np.floating],  # (n_members, n_epochs, n_examples)
    held_out: npt.NDArray[np.bool_],  # (n_members, n_examples)
    prob_sum: npt.NDArray[np.floating],  # (n_epochs, n_examples, n_classes) in-sample softmax sums
    heldout_prob_sum: npt.NDArray[np.floating],  # (n_epochs, n_examples, n_classes)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
    options: ScoringOptions = ScoringOptions(),
) -> ExampleScores:
    """Every per-example score of a job; see ExampleScores for the fields."""
    if predicted_label.ndim != 3:
        raise ValueError(f"predicted_label must be (n_members, n_epochs, n_examples), got {predicted_label.shape}")
    n_members, n_epochs, n_examples = predicted_label.shape
    if n_epochs < 2:
        raise ValueError(f"need epoch 0 and at least one trained epoch, got {n_epochs} epochs")
    for name, arr in (("label_prob", label_prob), ("margin", margin)):
        if arr.shape != predicted_label.shape:
            raise ValueError(f"{name} {arr.shape} must match predicted_label {predicted_label.shape}")
    if held_out.shape != (n_members, n_examples):
        raise ValueError(f"held_out {held_out.shape} must be (n_members, n_examples) = {(n_members, n_examples)}")
    n_classes = prob_sum.shape[2] if prob_sum.ndim == 3 else -1
    if prob_sum.shape != (n_epochs, n_examples, n_classes) or heldout_prob_sum.shape != prob_sum.shape:
        raise ValueError(f"prob_sum {prob_sum.shape} / heldout_prob_sum {heldout_prob_sum.shape} must be "
                         f"(n_epochs, n_examples, n_classes) = ({n_epochs}, {n_examples}, K)")
    y = np.asarray(given_labels, dtype=np.int64)
    if y.shape != (n_examples,):
        raise ValueError(f"given_labels {y.shape} must be (n_examples,) = ({n_examples},)")
    if n_examples and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"given labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    in_sample = ~held_out
    has_heldout = bool(held_out.any())

    consistency_curve = compute_consistency(predicted_label, y)
    consensus_curve, consensus_label_curve = compute_consensus(compute_vote_counts(predicted_label, n_classes))
    heldout_curve = (compute_consistency(predicted_label, y, held_out) if has_heldout
                     else np.full((n_epochs, n_examples), np.nan))
    in_curve = compute_consistency(predicted_label, y, in_sample) if has_heldout else consistency_curve
    accessibility = compute_accessibility(in_curve)

    prob_curve = _masked_member_mean(label_prob.astype(np.float64), in_sample)
    margin_curve = _masked_member_mean(margin.astype(np.float64), in_sample)
    mislabel_score = compute_mislabel_score(prob_curve, margin_curve, method=options.mislabel_method)

    in_probs = _mean_probs(prob_sum.astype(np.float64), in_sample.sum(axis=0))
    use_heldout = options.count_from == "held_out" or (options.count_from == "auto" and has_heldout)
    if use_heldout and not has_heldout:
        raise ValueError("count_from='held_out' needs cross-fitting (n_folds >= 2)")
    count_probs = _mean_probs(heldout_prob_sum.astype(np.float64), held_out.sum(axis=0)) if use_heldout else in_probs
    n_errors = estimate_n_label_errors(np.nan_to_num(count_probs, nan=1.0 / n_classes), y)

    return ExampleScores(
        consistency_curve=consistency_curve,
        consensus_curve=consensus_curve,
        consensus_label_curve=consensus_label_curve,
        heldout_consistency_curve=heldout_curve,
        consistency=consistency_curve[-1],
        consensus=consensus_curve[-1],
        consensus_label=consensus_label_curve[-1],
        heldout_consistency=heldout_curve[-1],
        accessibility=accessibility,
        first_learned_epoch=compute_first_learned_epoch(consistency_curve, options.learned_threshold),
        mean_label_prob=np.nanmean(prob_curve[1:], axis=0),
        split=compute_splits(accessibility, options.easy_at_least, options.hard_below),
        mislabel_score=mislabel_score,
        is_suspected_mislabel=flag_suspected_mislabels(mislabel_score, n_errors),
        suggested_label=compute_suggested_label(np.nan_to_num(in_probs), y),
        estimated_n_errors=n_errors,
        options=options,
    )
