"""Suspected mislabels: a score per example, an estimate of how many labels are wrong, a flag, the
estimated precision of the flag, and a suggested label.

Method [ours, chosen on selection seeds 0-2 by benchmarks/detection_variants.py (6 tables x 5 noise
kinds, 5 scores, 4 counts, 12 training variants) and benchmarks/flag_calibration.py (the ranking,
the precision estimate); graded by benchmarks/detection.py on test seeds 100-102]:
- score (default "consistency_prob_margin"): the mean of two ranks, the ensemble's in-sample
  consistency with the given label and the ensemble-mean prediction's margin of it (the mean softmax
  of the given label minus the largest mean softmax of another class), each averaged over every
  trained epoch; 1 = most suspect. A wrong label is learned late, only by memorisation: few members
  predict it for most of training (consistency, Hacohen et al.'s signal) and its margin stays
  negative (AUM-style). Until 2026-12-06 the margin was the members' mean logit margin
  ("consistency_margin", chosen by benchmarks/detection_variants.py among 5 scores); the softmax
  margin is bounded in [-1, 1], so a few members' large logits do not dominate it, and it ranked
  better on the six tables' records on the selection seeds (mean AP 0.9272 vs 0.9245, 34 cases
  better, 20 worse, the worst -0.0017; benchmarks/results/flag_calibration_counts.md), with the
  test seeds agreeing; benchmarks/detection.py grades it against the baselines.
- count (default "margin"): the examples whose mean margin over members and trained epochs is
  negative, i.e. the ensemble, averaged over training, prefers another class. On the realistic
  noise kinds it was closer to the planted count than confident learning's (Northcutt et al.),
  which under-counts errors that sit on ambiguous examples; confident learning stays available.
- flag: the n_errors examples with the highest score.
- estimated precision at the cut: the mean over flagged examples of 1 - their accessibility (the
  share of in-sample member-epoch predictions that were the given label): how often the ensemble
  itself voted against the flagged labels. Chosen by benchmarks/flag_calibration.py on the
  selection seeds over 1 - the mean given-label probability, the previous estimate, which ran
  0.11 below the measured precision on average (the probability of a memorised wrong label
  climbs late in training, while a vote for another class is counted once per epoch).
- suggested label: the most probable class other than the given one.
"""

import warnings
from typing import TypeVar, cast

import numpy as np
import numpy.typing as npt

from scoring.ranks import average_ranks

Float = TypeVar("Float", bound=np.floating)  # the curves' float dtype


def compute_rank_score(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:  # (n,) -> (n,)
    """Average rank of each value scaled to [0, 1]; 1 = the largest value. NaN stays NaN and
    does not disturb the ranks of the others."""
    finite = ~np.isnan(values)
    out = np.full(len(values), np.nan)
    n = int(finite.sum())
    if n == 1:
        out[finite] = 1.0
    elif n > 1:
        out[finite] = (average_ranks(values[finite]) - 1.0) / (n - 1.0)
    return out


MISLABEL_METHODS = ("consistency_margin", "margin", "prob", "prob_margin", "consistency", "consistency_prob_margin")
COUNT_METHODS = ("margin", "confident_learning")


def compute_prob_margin(
    prob_sum: npt.NDArray[np.floating],  # (n_examples, n_classes) softmax sums over the in-sample members
    n_members: npt.NDArray[np.integer],  # (n_examples,) in-sample members per example
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
) -> npt.NDArray[np.float64]:  # (n_examples,) in [-1, 1]; NaN where no member is in-sample
    """The ensemble's margin in probability space: the mean softmax of the given label minus the
    largest mean softmax of another class (the ensemble-mean prediction's margin)."""
    n, k = prob_sum.shape
    if given_labels.shape != (n,) or n_members.shape != (n,):
        raise ValueError(f"given_labels {given_labels.shape} and n_members {n_members.shape} must be ({n},) "
                         f"to match prob_sum {prob_sum.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        probs = prob_sum.astype(np.float64) / n_members[:, None]
    rows = np.arange(n)
    given = probs[rows, given_labels]
    probs[rows, given_labels] = -np.inf  # in place: probs is this call's own array, one (n, k) buffer in all
    margin: npt.NDArray[np.float64] = given - (probs.max(axis=1) if k > 1 else 0.0)
    return margin


def compute_mislabel_score(
    label_prob: npt.NDArray[Float],  # (n_epochs, n_examples) ensemble-mean prob of the given label
    margin: npt.NDArray[np.floating],  # (n_epochs, n_examples) ensemble-mean margin of the given label
    first_epoch: int = 1,
    method: str = "consistency_prob_margin",
    consistency: npt.NDArray[np.floating] | None = None,  # (n_epochs, n_examples) share of members on the label
    prob_margin: npt.NDArray[np.floating] | None = None,  # (n_epochs, n_examples) compute_prob_margin per epoch
) -> npt.NDArray[np.float64] | npt.NDArray[Float]:
    """(n_examples,) in [0, 1]; high = suspect. float64 from the rank methods; "prob" keeps
    label_prob's float dtype.

    methods: "prob" = 1 - mean given-label probability over epochs; "margin" = rank of the
    negated mean margin; "prob_margin" = mean of those two ranks; "consistency" = rank of the
    negated mean consistency; "consistency_margin" = mean of the consistency and margin ranks;
    "consistency_prob_margin" (default) = mean of the consistency rank and the rank of the negated
    mean ensemble margin in probability space (`prob_margin`, bounded in [-1, 1], so a few members'
    large logits do not dominate it). The consistency methods need `consistency`, the default also
    `prob_margin`.
    """
    if label_prob.shape != margin.shape or label_prob.ndim != 2:
        raise ValueError(f"label_prob {label_prob.shape} and margin {margin.shape} must both be (n_epochs, n_examples)")
    if method.startswith("consistency") and (consistency is None or consistency.shape != margin.shape):
        raise ValueError(f"method {method!r} needs consistency shaped like margin {margin.shape}, got "
                         f"{None if consistency is None else consistency.shape}")
    if method == "consistency_prob_margin" and (prob_margin is None or prob_margin.shape != margin.shape):
        raise ValueError(f"method {method!r} needs prob_margin shaped like margin {margin.shape}, got "
                         f"{None if prob_margin is None else prob_margin.shape}")
    # numpy's stubs type nanmean over an axis as Any; both keep their input's float dtype
    mean_prob: npt.NDArray[Float] = np.nanmean(label_prob[first_epoch:], axis=0)
    mean_margin: npt.NDArray[np.floating] = np.nanmean(margin[first_epoch:], axis=0)
    if method == "prob":
        # a Python float does not widen an array's dtype (NEP 50); the stubs widen it to floating[Any]
        return cast("npt.NDArray[Float]", 1.0 - mean_prob)
    if method == "margin":
        return compute_rank_score(-mean_margin)
    if method == "prob_margin":
        return 0.5 * (compute_rank_score(-mean_prob) + compute_rank_score(-mean_margin))
    if method in ("consistency", "consistency_margin", "consistency_prob_margin"):
        assert consistency is not None  # checked above: the consistency methods raise without it
        mean_consistency: npt.NDArray[np.floating] = np.nanmean(consistency[first_epoch:], axis=0)
        if method == "consistency":
            return compute_rank_score(-mean_consistency)
        if method == "consistency_prob_margin":
            assert prob_margin is not None  # checked above
            with warnings.catch_warnings():  # an example no member trained on is NaN at every epoch
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_prob_margin: npt.NDArray[np.floating] = np.nanmean(prob_margin[first_epoch:], axis=0)
            return 0.5 * (compute_rank_score(-mean_consistency) + compute_rank_score(-mean_prob_margin))
        return 0.5 * (compute_rank_score(-mean_consistency) + compute_rank_score(-mean_margin))
    raise ValueError(f"unknown mislabel method {method!r}; use one of {', '.join(MISLABEL_METHODS)}")


def estimate_n_errors_by_margin(
    margin: npt.NDArray[np.floating],  # (n_epochs, n_examples) ensemble-mean margin of the given label
    first_epoch: int = 1,
) -> int:
    """Examples whose margin of the given label, averaged over the trained epochs, is negative: the
    ensemble has on average preferred another class. NaN (no in-sample member) counts as not."""
    trained = margin[first_epoch:]
    seen = (~np.isnan(trained)).sum(axis=0)
    mean = np.where(seen > 0, np.nansum(trained, axis=0) / np.maximum(seen, 1), np.nan)
    with np.errstate(invalid="ignore"):
        return int((mean < 0).sum())


def estimate_flag_precision(
    accessibility: npt.NDArray[np.floating],  # (n_examples,) mean in-sample consistency with the given label
    is_flagged: npt.NDArray[np.bool_],  # (n_examples,)
) -> float | None:
    """The share of flagged labels the ensemble expects to be wrong: the mean over the flagged of
    1 - accessibility, i.e. the share of their member-epoch predictions that were another class.
    NaN (never in-sample) is left out; None when nothing (else) is flagged."""
    a = accessibility[is_flagged]
    a = a[~np.isnan(a)]
    return float(np.clip(1.0 - a, 0.0, 1.0).mean()) if a.size else None


def compute_confident_joint(
    probs: npt.NDArray[np.float64],  # (n_examples, n_classes) rows sum to 1
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
) -> npt.NDArray[np.float64]:
    """Calibrated confident joint Q[given, true] (n_classes, n_classes), summing to 1."""
    n, k = probs.shape
    if given_labels.shape != (n,):
        raise ValueError(f"given_labels {given_labels.shape} does not match probs {probs.shape}")
    label_counts = np.bincount(given_labels, minlength=k).astype(np.float64)
    thresholds = np.array([probs[given_labels == j, j].mean() if label_counts[j] else 1.0 for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -np.inf)
    has_any = above.any(axis=1)
    confident = masked.argmax(axis=1)
    joint = np.zeros((k, k))
    np.add.at(joint, (given_labels[has_any], confident[has_any]), 1.0)
    row = joint.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        calibrated = np.where(row > 0, joint / row, 0.0) * label_counts[:, None]
    total = calibrated.sum()
    return calibrated / total if total > 0 else calibrated


def estimate_n_label_errors(
    probs: npt.NDArray[np.float64],  # (n_examples, n_classes)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
) -> int:
    """Estimated number of wrong labels in the data set (confident learning's count)."""
    joint = compute_confident_joint(probs, given_labels)
    return int(round(len(given_labels) * (1.0 - np.trace(joint))))


def flag_suspected_mislabels(
    mislabel_score: npt.NDArray[np.floating],  # (n_examples,)
    n_errors: int,
) -> npt.NDArray[np.bool_]:
    """True for the n_errors examples with the highest score (ties broken by example order)."""
    flags = np.zeros(len(mislabel_score), dtype=bool)
    if n_errors > 0:  # NaN scores sort last and are never flagged
        order = np.argsort(-mislabel_score, kind="stable")
        flags[order[:n_errors]] = True
        flags &= ~np.isnan(mislabel_score)
    return flags


def compute_suggested_label(
    probs: npt.NDArray[np.float64],  # (n_examples, n_classes)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
) -> npt.NDArray[np.int64]:
    """The most probable class other than the given label, (n_examples,)."""
    others = probs.copy()
    others[np.arange(len(given_labels)), given_labels] = -np.inf
    suggested: npt.NDArray[np.int64] = others.argmax(axis=1).astype(np.int64)  # argmax(axis=) is Any in the stubs
    return suggested
