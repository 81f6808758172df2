"""AdaBoost baseline: boosting stages as the "epochs" of a second model family.

Hacohen et al. show that AdaBoost learns examples in the same order as neural networks
(SCIENCE.md §1). We fit discrete AdaBoost (SAMME) on decision trees and read the ensemble's
predictions after every round t = 1..T, so boosting dynamics can be stored in the same
per-epoch tables as the ensemble's (stage in place of epoch, with epoch 0 = majority-class
prediction before any round).

Two engines, one output:
  - `max_depth == 1` (stumps, the paper's setting): our own vectorised SAMME on histogram
    stumps (`models/stumps.py`). scikit-learn's exact tree sorts
    every feature every round (0.6 s a round on 50,000 x 192, one core); binning once and
    histogramming the weights each round is about 15x faster (benchmarks/adaboost_speed.py), and
    on features with at most 256 distinct values it chooses among exactly the splits sklearn's
    tree sees, so the stages are sklearn's up to ties between equally good splits.
  - `max_depth > 1`: scikit-learn's `AdaBoostClassifier` with `staged_predict_proba`.

Probability columns are indexed by class 0..K-1 with K = max(y) + 1, also when a class is
missing from the training labels (its column is then 0 after stage 0).
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from models.predictions import EpochRecord, PredictionRecord
from models.stumps import bin_features, boost_stumps, staged_samme

if TYPE_CHECKING:  # imported where used: the stumps path (the default) needs no scikit-learn
    from sklearn.ensemble import AdaBoostClassifier

_PROB_FLOOR = 1e-7  # probabilities are clipped here before taking logs for the margin
MAX_POOLED_SIDE = 8  # images reach the weak learners average-pooled to at most 8 x 8 per channel [ours]


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

    # fit sets both: the engine that ran fills its own, the other is None
    classifier_: "AdaBoostClassifier | None"
    stumps_: list[tuple[int, float, int, int]] | None  # (feature, threshold, left_class, right_class)

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
        """scikit-learn's SAMME on exact trees; yields (proba over classes_, label) per stage.

        scikit-learn is imported here, not at the top: importing it costs 1.5-2 s of CPU in every
        job's AdaBoost worker (the fit of 100 stump rounds on 300 digits: 0.06 s)."""
        from sklearn.ensemble import AdaBoostClassifier
        from sklearn.tree import DecisionTreeClassifier

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
        bins, thresholds = bin_features(X32)
        stumps, alphas, preds = boost_stumps(
            bins, y_index, classes.size, int(self.n_rounds), float(self.learning_rate)
        )
        self.classifier_ = None
        self.classes_ = classes
        self.stage_weights_ = np.asarray(alphas, dtype=np.float64)
        self.stumps_ = [
            (f, float(thresholds[f, j]) if f >= 0 else np.inf, int(classes[left]), int(classes[right]))
            for f, j, left, right in stumps
        ]
        return ((proba, classes[label]) for proba, label in staged_samme(preds, alphas, classes.size))

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
            # scikit-learn ships no type hints: its predict is Any
            predicted: npt.NDArray[np.int64] = self.classifier_.predict(X2).astype(np.int64)
            return predicted
        assert self.stumps_ is not None  # fit without a classifier_ set the stumps
        X32 = X2.astype(np.float32)
        preds = []  # each stump's class index per example
        for f, thr, left, right in self.stumps_:
            label = np.where(X32[:, f] <= thr, left, right) if f >= 0 else np.full(len(X32), left)
            preds.append(np.searchsorted(self.classes_, label))
        *_, (_, label) = staged_samme(preds, self.stage_weights_, self.classes_.size)  # last stage
        labels: npt.NDArray[np.int64] = self.classes_[label]  # classes_ is int64; fancy indexing is Any in the stubs
        return labels

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
