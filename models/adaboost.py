"""AdaBoost baseline: boosting stages as the "epochs" of a second model family.

Hacohen et al. show that AdaBoost learns examples in the same order as neural networks
(SCIENCE.md §1). We fit scikit-learn's AdaBoost (SAMME) on decision trees and read
`staged_predict` / `staged_predict_proba` after every round t = 1..T, so boosting dynamics can
be stored in the same per-epoch tables as the ensemble's (stage in place of epoch, with
epoch 0 = majority-class prediction before any round).

Probability columns are indexed by class 0..K-1 with K = max(y) + 1, also when a class is
missing from the training labels (its column is then 0 after stage 0).
"""

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import AdaBoostClassifier
from sklearn.tree import DecisionTreeClassifier

from models.predictions import EpochRecord, PredictionRecord

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
      - `n_stages_fitted_` int: rounds boosting actually ran (sklearn stops early on a perfect
        or a worse-than-chance learner); later stages repeat the last fitted one.
      - `record_` PredictionRecord with one member and T + 1 epochs (epoch 0 = majority class).
    """

    def __init__(
        self,
        n_rounds: int = 100,
        max_depth: int = 1,
        learning_rate: float = 1.0,
        random_state: int | None = None,
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
        if int(self.n_rounds) < 1:
            raise ValueError(f"n_rounds must be >= 1, got {self.n_rounds}")
        if int(self.max_depth) < 1:
            raise ValueError(f"max_depth must be >= 1, got {self.max_depth}")
        n_classes = int(y2.max()) + 1
        clf = AdaBoostClassifier(
            estimator=DecisionTreeClassifier(
                max_depth=self.max_depth, random_state=self.random_state
            ),
            n_estimators=int(self.n_rounds),
            learning_rate=self.learning_rate,
            random_state=self.random_state,
        ).fit(X2, y2)
        classes = clf.classes_.astype(np.int64)
        probas = [_full_proba(p, classes, n_classes) for p in clf.staged_predict_proba(X2)]
        labels = [np.asarray(p, dtype=np.int64) for p in clf.staged_predict(X2)]
        n_fitted = len(labels)
        # Pad by repeating the last stage when boosting stopped early.
        probas += [probas[-1]] * (self.n_rounds - n_fitted)
        labels += [labels[-1]] * (self.n_rounds - n_fitted)

        self.classifier_ = clf
        self.n_classes_ = n_classes
        self.n_stages_fitted_ = int(n_fitted)
        self.stage_proba_ = np.stack(probas).astype(np.float32)
        self.predicted_label_ = np.stack(labels).astype(np.int16)
        self.label_prob_, self.margin_ = _label_prob_and_margin(self.stage_proba_, y2)
        self.majority_class_ = int(np.argmax(np.bincount(y2, minlength=n_classes)))
        self.record_ = PredictionRecord.from_epochs(self.stage_records(y2), n_members=1)
        return self

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
    n = proba.shape[1]
    idx = np.arange(n)
    label_prob = proba[:, idx, y]  # (n_stages, n)
    log_p = np.log(np.clip(proba.astype(np.float64), _PROB_FLOOR, 1.0))
    others = log_p.copy()
    others[:, idx, y] = -np.inf
    margin = log_p[:, idx, y] - others.max(axis=2)
    return label_prob.astype(np.float32), margin.astype(np.float32)
