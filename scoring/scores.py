"""All per-example scores of a job from its learning dynamics, in one call.

Input: the stacked prediction record (see models/predictions.py for the arrays). Output: the
per-epoch curves and the per-example fields that the store, API, CLI and exports show.
"""

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from scoring.consensus import compute_consensus, compute_vote_counts
from scoring.consistency import compute_accessibility, compute_consistency, compute_first_learned_epoch
from scoring.mislabel import (
    COUNT_METHODS,
    MISLABEL_METHODS,
    compute_mislabel_score,
    compute_prob_margin,
    compute_suggested_label,
    estimate_flag_precision,
    estimate_n_errors_by_margin,
    estimate_n_label_errors,
    flag_suspected_mislabels,
)
from scoring.splits import compute_splits


@dataclass(frozen=True)
class ScoringOptions:
    easy_at_least: float = 0.8  # accessibility at or above -> "easy"
    hard_below: float = 0.3  # accessibility below -> "hard"
    learned_threshold: float = 0.5  # consistency that counts as "learned" for first_learned_epoch
    mislabel_method: str = "consistency_prob_margin"  # scoring.mislabel.compute_mislabel_score (chosen by benchmark)
    count_method: str = "margin"  # margin | confident_learning (scoring.mislabel)
    count_from: str = "auto"  # confident learning's probabilities: in_sample | held_out | auto

    def __post_init__(self) -> None:
        if self.mislabel_method not in MISLABEL_METHODS:
            raise ValueError(f"mislabel_method must be one of {MISLABEL_METHODS}, got {self.mislabel_method!r}")
        if self.count_method not in COUNT_METHODS:
            raise ValueError(f"count_method must be one of {COUNT_METHODS}, got {self.count_method!r}")


@dataclass(frozen=True)
class ExampleScores:
    # per epoch, (n_epochs, n_examples), over all members (float32 / int16 to keep big jobs small)
    consistency_curve: npt.NDArray[np.float32]
    consensus_curve: npt.NDArray[np.float32]
    consensus_label_curve: npt.NDArray[np.int16]
    # per epoch over held-out members only (NaN without cross-fitting)
    heldout_consistency_curve: npt.NDArray[np.float32]
    # per example, (n_examples,)
    consistency: npt.NDArray[np.float64]  # final epoch, all members
    consensus: npt.NDArray[np.float64]  # final epoch
    consensus_label: npt.NDArray[np.int64]  # final epoch
    heldout_consistency: npt.NDArray[np.float64]  # final epoch, held-out members (NaN without folds)
    accessibility: npt.NDArray[np.float64]  # mean in-sample consistency over trained epochs
    first_learned_epoch: npt.NDArray[np.int64]  # -1 = never
    mean_label_prob: npt.NDArray[np.float64]  # in-sample prob of the given label, mean over trained epochs
    split: npt.NDArray[np.str_]
    # float64; float32 only from method "prob", which keeps the float32 curve's dtype
    mislabel_score: npt.NDArray[np.float64] | npt.NDArray[np.float32]
    is_suspected_mislabel: npt.NDArray[np.bool_]
    suggested_label: npt.NDArray[np.int64]
    estimated_n_errors: int
    estimated_precision: float | None  # share of the flagged the ensemble expects to be wrong
    options: ScoringOptions = field(default_factory=ScoringOptions)


def _masked_member_mean(
    values: npt.NDArray[np.float64],  # (n_members, n_examples)
    mask: npt.NDArray[np.bool_],  # (n_members, n_examples)
) -> npt.NDArray[np.float64]:
    """Mean over members where mask (M, n) is True: (M, n) -> (n,); NaN where none."""
    count = mask.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a sum over an axis is Any in numpy's stubs; the annotation says what it is
        mean: npt.NDArray[np.float64] = np.where(mask, values, 0.0).sum(axis=0) / count
    return mean


class DynamicsAccumulator:
    """Per-epoch curves built one epoch at a time, so a job of any size is scored in memory
    proportional to (n_epochs x n_examples), never (n_members x n_epochs x n_examples)."""

    def __init__(self, given_labels: npt.NDArray[np.integer], n_classes: int, n_epochs: int,
                 held_out: npt.NDArray[np.bool_]) -> None:  # held_out: (n_members, n_examples)
        y = np.asarray(given_labels, dtype=np.int64)
        n = len(y)
        if n and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"given labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
        if held_out.ndim != 2 or held_out.shape[1] != n:
            raise ValueError(f"held_out {held_out.shape} must be (n_members, n_examples) with n_examples = {n}")
        if n_epochs < 2:
            raise ValueError(f"need epoch 0 and at least one trained epoch, got {n_epochs} epochs")
        self.y, self.n_classes, self.n_epochs, self.held_out = y, n_classes, n_epochs, held_out
        self.has_heldout = bool(held_out.any())

        def curve() -> npt.NDArray[np.float32]:  # (n_epochs, n_examples), NaN until its epoch is added
            return np.full((n_epochs, n), np.nan, dtype=np.float32)

        self.consistency, self.consensus, self.heldout, self.in_sample = curve(), curve(), curve(), curve()
        self.prob, self.margin, self.prob_margin = curve(), curve(), curve()
        self.consensus_label = np.zeros((n_epochs, n), dtype=np.int16)
        self.prob_total = np.zeros((n, n_classes))  # in-sample softmax sums over trained epochs
        self.heldout_total = np.zeros((n, n_classes))
        self.seen = np.zeros(n_epochs, dtype=bool)

    def add_epoch(self, epoch: int,
                  predicted_label: npt.NDArray[np.integer],  # (n_members, n_examples)
                  label_prob: npt.NDArray[np.floating],  # (n_members, n_examples)
                  margin: npt.NDArray[np.floating],  # (n_members, n_examples)
                  prob_sum: npt.NDArray[np.floating],  # (n_examples, n_classes)
                  heldout_prob_sum: npt.NDArray[np.floating]) -> None:  # (n_examples, n_classes)
        m, n = self.held_out.shape
        for name, arr in (("predicted_label", predicted_label), ("label_prob", label_prob), ("margin", margin)):
            if arr.shape != (m, n):
                raise ValueError(f"{name} {arr.shape} must be (n_members, n_examples) = {(m, n)}")
        for name, arr in (("prob_sum", prob_sum), ("heldout_prob_sum", heldout_prob_sum)):
            if arr.shape != (n, self.n_classes):
                raise ValueError(f"{name} {arr.shape} must be (n_examples, n_classes) = {(n, self.n_classes)}")
        if not 0 <= epoch < self.n_epochs:
            raise ValueError(f"epoch {epoch} outside 0..{self.n_epochs - 1}")
        preds = predicted_label[:, None, :]
        self.consistency[epoch] = compute_consistency(preds, self.y)[0]
        share, label = compute_consensus(compute_vote_counts(preds, self.n_classes))
        self.consensus[epoch], self.consensus_label[epoch] = share[0], label[0]
        in_sample = ~self.held_out
        if self.has_heldout:
            self.heldout[epoch] = compute_consistency(preds, self.y, self.held_out)[0]
            self.in_sample[epoch] = compute_consistency(preds, self.y, in_sample)[0]
        else:
            self.in_sample[epoch] = self.consistency[epoch]
        self.prob[epoch] = _masked_member_mean(label_prob.astype(np.float64), in_sample)
        self.margin[epoch] = _masked_member_mean(margin.astype(np.float64), in_sample)
        self.prob_margin[epoch] = compute_prob_margin(prob_sum, in_sample.sum(axis=0), self.y)
        if epoch >= 1:
            self.prob_total += prob_sum
            self.heldout_total += heldout_prob_sum
        self.seen[epoch] = True

    def scores(self, options: "ScoringOptions | None" = None) -> ExampleScores:
        """Every per-example score; every epoch must have been added."""
        options = options or ScoringOptions()
        if not self.seen.all():
            raise ValueError(f"epochs {np.flatnonzero(~self.seen).tolist()} were never added")
        y, k = self.y, self.n_classes
        # curves stay float32 (n_epochs x n_examples: 124 MB each at 1M examples); per-example
        # results are float64
        accessibility = compute_accessibility(self.in_sample).astype(np.float64)
        mislabel_score = compute_mislabel_score(self.prob, self.margin, method=options.mislabel_method,
                                                consistency=self.in_sample, prob_margin=self.prob_margin)
        mean_label_prob = np.nanmean(self.prob[1:], axis=0).astype(np.float64)
        trained = self.n_epochs - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            in_probs = self.prob_total / trained / (~self.held_out).sum(axis=0)[:, None]
            heldout_probs = self.heldout_total / trained / self.held_out.sum(axis=0)[:, None]
        use_heldout = options.count_from == "held_out" or (options.count_from == "auto" and self.has_heldout)
        if use_heldout and not self.has_heldout:
            raise ValueError("count_from='held_out' needs cross-fitting (n_folds >= 2)")
        count_probs = heldout_probs if use_heldout else in_probs
        if options.count_method == "margin":
            n_errors = estimate_n_errors_by_margin(self.margin)
        else:
            n_errors = estimate_n_label_errors(np.nan_to_num(count_probs, nan=1.0 / k), y)
        flags = flag_suspected_mislabels(mislabel_score, n_errors)
        return ExampleScores(
            consistency_curve=self.consistency,
            consensus_curve=self.consensus,
            consensus_label_curve=self.consensus_label,
            heldout_consistency_curve=self.heldout,
            consistency=self.consistency[-1].astype(np.float64),
            consensus=self.consensus[-1].astype(np.float64),
            consensus_label=self.consensus_label[-1].astype(np.int64),
            heldout_consistency=self.heldout[-1].astype(np.float64),
            accessibility=accessibility,
            first_learned_epoch=compute_first_learned_epoch(self.consistency, options.learned_threshold),
            mean_label_prob=mean_label_prob,
            split=compute_splits(accessibility, options.easy_at_least, options.hard_below),
            mislabel_score=mislabel_score,
            is_suspected_mislabel=flags,
            suggested_label=compute_suggested_label(np.nan_to_num(in_probs), y),
            estimated_n_errors=n_errors,
            estimated_precision=estimate_flag_precision(accessibility, flags),
            options=options,
        )


def second_round_exclusion(first: ExampleScores) -> npt.NDArray[np.int64]:
    """The examples a rounds=2 job's second round holds out: the first round's suspects, at most
    half of all examples (the most suspect first), so that the second round learns from a majority."""
    score = np.nan_to_num(np.asarray(first.mislabel_score, dtype=np.float64), nan=-np.inf)
    order = np.argsort(-score, kind="stable")
    n = min(int(first.is_suspected_mislabel.sum()), len(order) // 2)
    return np.sort(order[:n]).astype(np.int64)


def take_mislabels_from(first: ExampleScores, second: ExampleScores) -> ExampleScores:
    """A rounds=2 job's scores: the curves, splits and accessibility of the first round (every
    example trained on) with the suspects, count, estimated precision and suggested labels of the
    second, which held the first round's suspects out of training. A wrong label the second round
    never trained on is not memorised, so its held-out margin stays negative; a right one it held
    out is predicted right again and drops; the labels it did train on meet fewer wrong neighbours
    (benchmarks/flag_calibration.py measures the gain)."""
    if first.mislabel_score.shape != second.mislabel_score.shape:
        raise ValueError(f"rounds of {first.mislabel_score.shape} and {second.mislabel_score.shape} examples")
    return replace(first, mislabel_score=second.mislabel_score, is_suspected_mislabel=second.is_suspected_mislabel,
                   suggested_label=second.suggested_label, estimated_n_errors=second.estimated_n_errors,
                   estimated_precision=second.estimated_precision)


def take_low_noise_pass(first: ExampleScores, second: ExampleScores) -> ExampleScores:
    """A job's scores after its low-noise pass (TrainSpec.low_noise_jumpout): the curves, splits and
    accessibility of the first pass with the ranking and suggested labels of the second, which trained
    under a weaker Jumpout row, and the mean of the two passes' counts, flagged by the second's ranking.
    The weaker row ranks better at low noise; its own count under-counts ambiguous errors (they get
    learned) where the first pass's over-counts symmetric ones (its strong brake leaves hard right
    examples unlearned), so neither count alone is the better one (benchmarks/low_noise_pass.py)."""
    if first.mislabel_score.shape != second.mislabel_score.shape:
        raise ValueError(f"passes of {first.mislabel_score.shape} and {second.mislabel_score.shape} examples")
    n_errors = (first.estimated_n_errors + second.estimated_n_errors) // 2
    flags = flag_suspected_mislabels(second.mislabel_score, n_errors)
    return replace(first, mislabel_score=second.mislabel_score, is_suspected_mislabel=flags,
                   suggested_label=second.suggested_label, estimated_n_errors=n_errors,
                   estimated_precision=estimate_flag_precision(second.accessibility, flags))


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
    """Every per-example score of a job held in memory; see ExampleScores for the fields."""
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
    acc = DynamicsAccumulator(y, n_classes, n_epochs, held_out)
    for e in range(n_epochs):
        acc.add_epoch(e, predicted_label[:, e], label_prob[:, e], margin[:, e], prob_sum[e], heldout_prob_sum[e])
    return acc.scores(options)
