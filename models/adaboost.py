"""AdaBoost baseline: boosting stages as the "epochs" of a second model family.

Hacohen et al. show that AdaBoost learns examples in the same order as neural networks
(SCIENCE.md §1). We fit discrete AdaBoost (SAMME) on decision trees and read the ensemble's
predictions after every round t = 1..T, so boosting dynamics can be stored in the same
per-epoch tables as the ensemble's (stage in place of epoch, with epoch 0 = majority-class
prediction before any round).

Two engines, one output:
  - `max_depth == 1` (stumps, the paper's setting): our own vectorised SAMME on histogram
    stumps (`_bin_features`, `_boost_stumps`, `_staged_samme`). scikit-learn's exact tree sorts
    every feature every round (0.6 s a round on 50,000 x 192, one core); binning once and
    histogramming the weights each round is about 15x faster (benchmarks/adaboost_speed.py), and
    on features with at most 256 distinct values it chooses among exactly the splits sklearn's
    tree sees, so the stages are sklearn's up to ties between equally good splits.
  - `max_depth > 1`: scikit-learn's `AdaBoostClassifier` with `staged_predict_proba`.

Probability columns are indexed by class 0..K-1 with K = max(y) + 1, also when a class is
missing from the training labels (its column is then 0 after stage 0).
"""

import warnings
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import AdaBoostClassifier
from sklearn.tree import DecisionTreeClassifier

from models.predictions import EpochRecord, PredictionRecord

_PROB_FLOOR = 1e-7  # probabilities are clipped here before taking logs for the margin
MAX_POOLED_SIDE = 8  # images reach the weak learners average-pooled to at most 8 x 8 per channel [ours]
MAX_BINS = 256  # histogram bins per feature; up to this many distinct values are split exactly [ours]
_WORSE_THAN_RANDOM = (  # scikit-learn's message, so both engines fail alike
    "BaseClassifier in AdaBoostClassifier ensemble is worse than random, ensemble can not be fit."
)


def boosting_features(X: np.ndarray) -> npt.NDArray[np.float32]:
    """(n, d) float32 inputs for the weak learners: tables as they are; images (n, C, H, W)
    average-pooled in blocks to at most 8 x 8 per channel (rows and columns that do not fill a
    block are cropped), so 32 x 32 x 3 becomes 192 features.

    Why [ours]: an exact depth-1 tree sorts every feature, so a round costs n_features x n log n.
    Measured on this project's CPU (one core, random CIFAR-shaped images): raw pixels, 5,000 x
    3,072, 1.0 s a round (about 20 minutes for 100 rounds on 50,000 images, far longer than the
    ensemble on a GPU); pooled to 192 features, 0.07 s a round on 5,000 and 0.67 s on 50,000.
    Digit-sized images (8 x 8) are unchanged.
    """
    X = np.asarray(X)
    if X.ndim == 4:
        n, c, h, w = X.shape
        fh, fw = -(-h // MAX_POOLED_SIDE), -(-w // MAX_POOLED_SIDE)  # block sides (ceil)
        if fh > 1 or fw > 1:
            hh, ww = h // fh, w // fw
            blocks = X[:, :, : hh * fh, : ww * fw].reshape(n, c, hh, fh, ww, fw)
            X = blocks.mean(axis=(3, 5), dtype=np.float32)
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


class AdaBoostBaseline:
    """AdaBoost on decision trees whose boosting stages are recorded like training epochs.

    Fitted attributes (T = n_rounds, n = n_examples, K = n_classes):
      - `stage_proba_` (T, n, K) float32: `predict_proba` after each stage.
      - `predicted_label_` (T, n) int16: `predict` after each stage.
      - `label_prob_` (T, n) float32: probability of the given label, in [0, 1]; low = hard.
      - `margin_` (T, n) float32: log prob of the given label minus the largest log prob of the
        other classes (probs clipped at 1e-7); negative = misclassified.
      - `n_stages_fitted_` int: rounds boosting actually ran (SAMME stops early on a perfect
        or a worse-than-chance learner); later stages repeat the last fitted one.
      - `stage_weights_` (n_stages_fitted_,) float64: each fitted stage's vote (SAMME alpha).
      - `classes_` (K_present,) int64: the labels present in y, the classes boosting votes for.
      - `stumps_` (max_depth == 1; else None): one (feature, threshold, left_class,
        right_class) per fitted stage: x[feature] <= threshold -> left_class, else right_class
        (feature -1: every feature was constant, both classes the same).
      - `classifier_` (max_depth > 1; else None): the fitted scikit-learn AdaBoostClassifier.
      - `record_` PredictionRecord with one member and T + 1 epochs (epoch 0 = majority class).
    """

    def __init__(
        self,
        n_rounds: int = 100,
        max_depth: int = 1,
        learning_rate: float = 1.0,
        random_state: int | None = None,  # seeds scikit-learn's trees (max_depth > 1)
    ) -> None:
        self.n_rounds = n_rounds
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,  # (n_examples, ...) features; flattened to (n_examples, n_features)
        y: np.ndarray,  # (n_examples,) int labels in 0..K-1
    ) -> "AdaBoostBaseline":
        """Fit n_rounds of boosting and record every stage's predictions on X."""
        X2, y2 = _check_inputs(X, y)
        n_rounds = int(self.n_rounds)
        if n_rounds < 1:
            raise ValueError(f"n_rounds must be >= 1, got {self.n_rounds}")
        if int(self.max_depth) < 1:
            raise ValueError(f"max_depth must be >= 1, got {self.max_depth}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        n_classes = int(y2.max()) + 1
        stages = self._fit_stumps(X2, y2) if int(self.max_depth) == 1 else self._fit_sklearn(X2, y2)

        stage_proba = np.empty((n_rounds, y2.size, n_classes), dtype=np.float32)
        predicted = np.empty((n_rounds, y2.size), dtype=np.int16)
        n_fitted = 0
        for t, (proba, label) in enumerate(stages):
            stage_proba[t] = _full_proba(proba, self.classes_, n_classes)
            predicted[t] = label
            n_fitted = t + 1
        # Pad by repeating the last stage when boosting stopped early.
        stage_proba[n_fitted:] = stage_proba[n_fitted - 1]
        predicted[n_fitted:] = predicted[n_fitted - 1]

        self.n_features_in_ = X2.shape[1]
        self.n_classes_ = n_classes
        self.n_stages_fitted_ = n_fitted
        self.stage_proba_ = stage_proba
        self.predicted_label_ = predicted
        self.label_prob_, self.margin_ = _label_prob_and_margin(self.stage_proba_, y2)
        self.majority_class_ = int(np.argmax(np.bincount(y2, minlength=n_classes)))
        self.record_ = PredictionRecord.from_epochs(self.stage_records(y2), n_members=1)
        return self

    def _fit_sklearn(self, X2: np.ndarray, y2: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """scikit-learn's SAMME on exact trees; yields (proba over classes_, label) per stage."""
        clf = AdaBoostClassifier(
            estimator=DecisionTreeClassifier(
                max_depth=self.max_depth, random_state=self.random_state
            ),
            n_estimators=int(self.n_rounds),
            learning_rate=self.learning_rate,
            random_state=self.random_state,
        ).fit(X2, y2)
        self.classifier_, self.stumps_ = clf, None
        self.classes_ = clf.classes_.astype(np.int64)
        self.stage_weights_ = clf.estimator_weights_[: len(clf.estimators_)].copy()
        return zip(clf.staged_predict_proba(X2), clf.staged_predict(X2))

    def _fit_stumps(self, X2: np.ndarray, y2: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Our SAMME on histogram stumps; yields (proba over classes_, label) per stage.

        X is compared in float32, as scikit-learn's trees do, so its splits are ours.
        """
        X32 = X2.astype(np.float32)
        if X32.shape[1] == 0:
            raise ValueError(f"X has no features, shape {X2.shape}")
        if not np.isfinite(X32).all():
            raise ValueError("X must hold finite values that fit in float32 (found NaN or infinity)")
        classes, y_index = np.unique(y2, return_inverse=True)
        bins, thresholds = _bin_features(X32)
        stumps, alphas, preds = _boost_stumps(
            bins, y_index, classes.size, int(self.n_rounds), float(self.learning_rate)
        )
        self.classifier_ = None
        self.classes_ = classes
        self.stage_weights_ = np.asarray(alphas, dtype=np.float64)
        self.stumps_ = [
            (f, float(thresholds[f, j]) if f >= 0 else np.inf, int(classes[left]), int(classes[right]))
            for f, j, left, right in stumps
        ]
        return ((proba, classes[label]) for proba, label in _staged_samme(preds, alphas, classes.size))

    def predict(
        self,
        X: np.ndarray,  # (n_examples, ...) shaped like fit's X
    ) -> npt.NDArray[np.int64]:
        """(n_examples,) labels the last fitted stage gives new examples, e.g. held-out ones."""
        if not hasattr(self, "stage_proba_"):
            raise ValueError("AdaBoostBaseline is not fitted; call fit first")
        X2 = np.asarray(X, dtype=np.float64)
        X2 = X2.reshape(X2.shape[0], -1)
        if X2.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X2.shape[1]} features, expected {self.n_features_in_} as in fit")
        if self.classifier_ is not None:
            return self.classifier_.predict(X2).astype(np.int64)
        X32 = X2.astype(np.float32)
        preds = []  # each stump's class index per example
        for f, thr, left, right in self.stumps_:
            label = np.where(X32[:, f] <= thr, left, right) if f >= 0 else np.full(len(X32), left)
            preds.append(np.searchsorted(self.classes_, label))
        *_, (_, label) = _staged_samme(preds, self.stage_weights_, self.classes_.size)  # last stage
        return self.classes_[label]

    def stage_records(
        self,
        y: np.ndarray,  # (n_examples,) the given labels used in fit
        member: int = 0,
        group: int = 0,
    ) -> list[EpochRecord]:
        """One EpochRecord per stage: epoch 0 (majority class, uniform probs), then 1..n_rounds.

        Each record holds a single member (`member`), nothing held out, `prob_sum` = that
        stage's predict_proba (n_examples, K), `train_loss` = nan, `seconds` = 0.
        """
        if not hasattr(self, "stage_proba_"):
            raise ValueError("AdaBoostBaseline is not fitted; call fit first")
        y2 = np.asarray(y)
        n_examples = self.stage_proba_.shape[1]
        if y2.shape != (n_examples,):
            raise ValueError(f"y has shape {y2.shape}, expected ({n_examples},) as in fit")
        y2 = y2.astype(np.int64)
        K = self.n_classes_
        uniform = np.full((1, n_examples, K), 1.0 / K, dtype=np.float32)
        proba = np.concatenate([uniform, self.stage_proba_])  # (T + 1, n, K)
        majority = np.full((1, n_examples), self.majority_class_, dtype=np.int16)
        pred = np.concatenate([majority, self.predicted_label_])
        label_prob, margin = _label_prob_and_margin(proba, y2)
        held_out = np.zeros((1, n_examples), dtype=bool)
        zeros = np.zeros((n_examples, K), dtype=np.float32)
        return [
            EpochRecord(
                group=group,
                epoch=t,
                members=(member,),
                predicted_label=pred[t][None].copy(),
                label_prob=label_prob[t][None].copy(),
                margin=margin[t][None].copy(),
                held_out=held_out.copy(),
                prob_sum=proba[t].copy(),
                heldout_prob_sum=zeros.copy(),
                train_loss=float("nan"),
                seconds=0.0,
            )
            for t in range(proba.shape[0])
        ]


def _check_inputs(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X2 = np.asarray(X, dtype=np.float64)
    y2 = np.asarray(y)
    if X2.ndim < 2:
        raise ValueError(f"X must be (n_examples, n_features) or images, got shape {X2.shape}")
    X2 = X2.reshape(X2.shape[0], -1)
    if y2.shape != (X2.shape[0],):
        raise ValueError(f"y has shape {y2.shape}, expected ({X2.shape[0]},) to match X {X2.shape}")
    if y2.size == 0:
        raise ValueError("X and y have no examples")
    if not np.issubdtype(y2.dtype, np.integer):
        if not np.all(np.mod(y2, 1) == 0):
            raise ValueError("y must hold integer class labels 0..K-1")
    y2 = y2.astype(np.int64)
    if y2.min() < 0:
        raise ValueError(f"y must hold labels in 0..K-1, found {int(y2.min())}")
    if np.unique(y2).size < 2:
        raise ValueError("y must hold at least two classes")
    return X2, y2


def _full_proba(
    proba: np.ndarray,  # (n, len(classes)) columns in sklearn's classes_ order
    classes: np.ndarray,  # (len(classes),) labels present in y
    n_classes: int,
) -> np.ndarray:
    full = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    full[:, classes] = proba
    return full


def _label_prob_and_margin(
    proba: np.ndarray,  # (n_stages, n, K)
    y: np.ndarray,  # (n,)
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Probability of the given label and the margin. Clip and log are monotone, so the margin
    takes them after the max over the other classes, one stage at a time: the same numbers as
    on the whole (n_stages, n, K) array, without its float64 copies (1 GB at 50,000 x 100 x 10).
    """
    label_prob = proba[:, np.arange(proba.shape[1]), y]  # (n_stages, n)
    is_label = np.arange(proba.shape[2]) == y[:, None]  # (n, K)
    other = np.empty_like(label_prob)  # largest probability of another class
    for t, stage in enumerate(proba):
        other[t] = np.where(is_label, -np.inf, stage).max(axis=1)
    log_label, log_other = (
        np.log(np.clip(p.astype(np.float64), _PROB_FLOOR, 1.0)) for p in (label_prob, other)
    )
    return label_prob.astype(np.float32), (log_label - log_other).astype(np.float32)


# ---------------------------------------------------------------- SAMME on histogram stumps


def _bin_features(
    X: npt.NDArray[np.float32],  # (n, F), finite
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """Bin every feature once, so that each round a stump is a cut between two bins.

    Returns bins (F, n) uint8 and thresholds (F, B - 1) float64, padded with +inf, such that
    x[i, f] <= thresholds[f, j] iff bins[f, i] <= j. Thresholds lie halfway between neighbouring
    distinct values, as an exact tree's do. A feature with at most MAX_BINS distinct values is
    cut between every pair, so stumps choose among exactly the partitions sklearn's tree sees; a
    feature with more is cut after the values at MAX_BINS - 1 evenly spaced ranks (quantiles),
    so each bin holds about n / MAX_BINS examples.
    """
    n, F = X.shape
    Xt = np.ascontiguousarray(X.T)  # (F, n): each feature contiguous
    order = np.argsort(Xt, axis=1)
    ranked = np.take_along_axis(Xt, order, axis=1)  # each feature sorted
    change = ranked[:, 1:] != ranked[:, :-1]  # (F, n - 1): a new value starts at position p + 1
    cut = change.copy()  # where thresholds go
    many = np.flatnonzero(change.sum(axis=1) >= MAX_BINS)  # features with > MAX_BINS values
    if many.size:
        # Last position of each quantile (at most n - 2 since n > MAX_BINS here), then the
        # first change at or after it, so tied values never straddle a cut.
        ranks = -(-np.arange(1, MAX_BINS) * n // MAX_BINS) - 1
        at = np.where(change[many], np.arange(n - 1, dtype=np.int32), np.int32(n - 1))
        next_change = np.minimum.accumulate(at[:, ::-1], axis=1)[:, ::-1][:, ranks]
        rows = np.broadcast_to(many[:, None], next_change.shape)
        inside = next_change < n - 1  # a rank inside the top value's run has no cut after it
        cut[many] = False
        cut[rows[inside], next_change[inside]] = True
    bin_ranked = np.zeros((F, n), dtype=np.uint8)
    np.cumsum(cut, axis=1, dtype=np.uint8, out=bin_ranked[:, 1:])  # at most 255 cuts a feature
    bins = np.empty_like(bin_ranked)
    np.put_along_axis(bins, order, bin_ranked, axis=1)

    f, p = np.nonzero(cut)
    thresholds = np.full((F, int(bin_ranked[:, -1].max())), np.inf)
    # The midpoint in float64 of two float32 values, exactly as sklearn's splitter computes it.
    low, high = ranked[f, p].astype(np.float64), ranked[f, p + 1].astype(np.float64)
    thresholds[f, bin_ranked[f, p + 1] - 1] = low / 2.0 + high / 2.0
    return bins, thresholds


def _boost_stumps(
    bins: npt.NDArray[np.uint8],  # (F, n) from _bin_features
    y: npt.NDArray[np.intp],  # (n,) class index 0..K-1
    n_classes: int,  # K, classes present in y
    n_rounds: int,
    learning_rate: float,
) -> tuple[list[tuple[int, int, int, int]], list[float], list[npt.NDArray[np.intp]]]:
    """SAMME with stumps, step for step as sklearn's AdaBoostClassifier.fit and _boost.

    Same epsilon clip, weighted error, early stops, alpha, reweighting and renormalising, so
    stopping and weights match an exact tree's run whenever the stumps match. Returns, per
    fitted stage, the stump (feature, cut j: left is bin <= j, left class, right class), its
    weight alpha and its class-index prediction for every example.
    """
    F, n = bins.shape
    K, B = n_classes, int(bins.max()) + 1
    cell = np.arange(F)[:, None] * B + bins  # (F, n) histogram cell (feature, bin), intp
    n_left = np.cumsum(np.bincount(cell.ravel(), minlength=F * B).reshape(F, B), axis=1)
    valid = (n_left > 0) & (n_left < n)  # (F, B): both sides hold an example (counts, not weights)
    # Cell (feature, bin, class) of every (feature, example). intp, since np.bincount would
    # otherwise copy it to intp every round.
    flat = (cell * K + y).ravel()
    del cell
    w = np.full(n, 1.0 / n)
    eps = np.finfo(np.float64).eps
    stumps, alphas, preds = [], [], []
    for t in range(n_rounds):
        w = np.clip(w, eps, None)  # as sklearn (its issue #20320): no vanishing weights
        hist = np.bincount(flat, weights=np.tile(w, F), minlength=F * B * K).reshape(F, B, K)
        stump = _best_stump(hist, valid)
        f, j, left, right = stump
        pred = np.where(bins[f] <= j, left, right) if f >= 0 else np.full(n, left)
        incorrect = pred != y
        err = np.average(incorrect, weights=w)
        if err <= 0:  # perfect: kept with weight 1, and boosting stops
            alpha = 1.0
        elif err >= 1.0 - 1.0 / K:  # no better than chance: dropped, and boosting stops
            if not stumps:
                raise ValueError(_WORSE_THAN_RANDOM)
            break
        else:
            alpha = float(learning_rate * (np.log((1.0 - err) / err) + np.log(K - 1.0)))
        stumps.append(stump)
        alphas.append(alpha)
        preds.append(pred)
        if err <= 0 or t == n_rounds - 1:
            break
        w = np.exp(np.log(w) + alpha * incorrect * (w > 0))
        total = w.sum()
        if not np.isfinite(total):
            warnings.warn(f"Sample weights overflowed at round {t}; boosting stopped. "
                          "Try a lower learning rate.", stacklevel=4)
            break
        if total <= 0:
            break
        w /= total
    return stumps, alphas, preds


def _best_stump(
    hist: npt.NDArray[np.float64],  # (F, B, K) weight per (feature, bin, class)
    valid: npt.NDArray[np.bool_],  # (F, B) cut after bin j leaves examples on both sides
) -> tuple[int, int, int, int]:
    """(feature, cut j, left class, right class) of the stump of least weighted Gini impurity.

    Maximises sklearn's proxy sum_k L_k^2 / W_L + sum_k R_k^2 / W_R, taking the first
    (feature, cut) on ties (sklearn takes the first in a random order of features). Each leaf
    predicts its heaviest class, the first on ties. Every feature constant: (-1, -1, c, c), c
    the heaviest class overall.
    """
    left = np.cumsum(hist, axis=1)  # class weights with bin <= j
    right = left[:, -1:] - left
    with np.errstate(divide="ignore", invalid="ignore"):
        proxy = (left * left).sum(axis=2) / left.sum(axis=2)
        proxy += (right * right).sum(axis=2) / right.sum(axis=2)
    proxy[~(valid & np.isfinite(proxy))] = -np.inf
    f, j = np.unravel_index(np.argmax(proxy), proxy.shape)
    if proxy[f, j] == -np.inf:
        heaviest = int(np.argmax(left[0, -1]))
        return -1, -1, heaviest, heaviest
    return int(f), int(j), int(np.argmax(left[f, j])), int(np.argmax(right[f, j]))


def _staged_samme(
    preds: list[npt.NDArray[np.intp]],  # per stage (n,) class index each weak learner predicts
    alphas: "list[float] | np.ndarray",  # per stage weight
    n_classes: int,  # K, classes present
) -> Iterator[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]]:
    """(proba (n, K), predicted class index (n,)) after each stage.

    The same arithmetic as sklearn's staged_decision_function, _compute_proba_from_decision and
    staged_predict, so probabilities agree to rounding when the stumps agree.
    """
    K = n_classes
    vote = None
    norm = 0.0
    for pred, alpha in zip(preds, alphas):
        norm += alpha
        current = np.where(pred[:, None] == np.arange(K), alpha, -1 / (K - 1) * alpha)
        vote = current if vote is None else vote + current
        if K == 2:
            signed = vote.copy()
            signed[:, 0] *= -1
            decision = (signed / norm).sum(axis=1)  # > 0: the second class
            yield _softmax(np.vstack([-decision, decision]).T / 2), (decision > 0).astype(np.intp)
        else:
            decision = vote / norm
            yield _softmax(decision / (K - 1)), np.argmax(decision, axis=1)


def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Row-wise softmax of (n, K), the same steps as sklearn.utils.extmath.softmax."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
