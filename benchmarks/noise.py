"""Plant label noise with a known mask, and score how well a detector finds it.

Used by `benchmarks/detection.py` and importable from tests. Nothing of ours is
imported here: arrays in, arrays and plain dicts out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _check_labels(y: np.ndarray, rate: float, n_classes: int) -> npt.NDArray[np.int64]:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_examples,), got shape {y.shape}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def plant_symmetric_noise(
    y: np.ndarray,  # (n_examples,) int labels in [0, n_classes)
    rate: float,
    n_classes: int,
    random_state: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Flip exactly round(rate * n) examples, chosen uniformly, each to a different class
    chosen uniformly. Returns (y_noisy (n_examples,), is_flipped (n_examples,) bool)."""
    y = _check_labels(y, rate, n_classes)
    rng = np.random.default_rng(random_state)
    n_flips = round(rate * y.size)
    flipped = rng.choice(y.size, size=n_flips, replace=False)
    # An offset in [1, K-1] added mod K lands uniformly on the K-1 other classes.
    offsets = rng.integers(1, n_classes, size=n_flips)
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + offsets) % n_classes
    is_flipped = np.zeros(y.size, dtype=bool)
    is_flipped[flipped] = True
    return y_noisy, is_flipped


def plant_pair_noise(
    y: np.ndarray,  # (n_examples,) int labels in [0, n_classes)
    rate: float,
    n_classes: int,
    random_state: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Class-pair (asymmetric) noise: for each class c, flip round(rate * n_c) of its
    examples, chosen uniformly, to (c + 1) % n_classes.
    Returns (y_noisy (n_examples,), is_flipped (n_examples,) bool)."""
    y = _check_labels(y, rate, n_classes)
    return _flip_within_classes(y, rate, (np.arange(n_classes) + 1) % n_classes, random_state)


def _flip_within_classes(
    y: npt.NDArray[np.int64], rate: float, targets: npt.NDArray[np.int64], random_state: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """For each class c, round(rate * n_c) of its examples, chosen uniformly, relabelled targets[c]."""
    rng = np.random.default_rng(random_state)
    y_noisy = y.copy()
    is_flipped = np.zeros(y.size, dtype=bool)
    for c in range(len(targets)):
        members = np.flatnonzero(y == c)
        flipped = rng.choice(members, size=round(rate * members.size), replace=False)
        y_noisy[flipped] = targets[c]
        is_flipped[flipped] = True
    return y_noisy, is_flipped


REFERENCE_KNN_K = 15  # neighbours of the kNN annotator: probabilities in steps of 1/15


def compute_reference_probs(
    X: np.ndarray,  # (n_examples, ...) features; images are flattened
    y: np.ndarray,  # (n_examples,) clean labels
    random_state: int,
    model: str = "logreg",
) -> npt.NDArray[np.float64]:
    """5-fold out-of-fold class probabilities (n_examples, n_classes) of a simple model on the
    *clean* labels: the annotator's view of which examples are ambiguous and which classes look
    alike. model: "logreg" (standardised logistic regression, issue 12's annotator; cleanlab's
    logistic-regression baseline shares its view) or "knn" (standardised 15-nearest-neighbour vote,
    an annotator no baseline shares)."""
    if model not in ("logreg", "knn"):
        raise ValueError(f"reference model must be logreg or knn, got {model!r}")
    X2 = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=random_state)
    estimator = LogisticRegression(max_iter=2000) if model == "logreg" else KNeighborsClassifier(REFERENCE_KNN_K)
    return cross_val_predict(make_pipeline(StandardScaler(), estimator), X2, y, cv=cv, method="predict_proba")


def compute_confusion_targets(
    reference_probs: npt.NDArray[np.float64],  # (n_examples, n_classes)
    y: np.ndarray,  # (n_examples,) clean labels
) -> npt.NDArray[np.int64]:
    """For each class, the other class the reference model confuses it with most, (n_classes,).

    Confusion counts of the out-of-fold argmax; a class that is never confused (or ties) falls
    back to the largest summed probability mass, so every class gets a target unlike itself."""
    n_classes = reference_probs.shape[1]
    predicted = reference_probs.argmax(axis=1)
    counts = np.zeros((n_classes, n_classes))
    np.add.at(counts, (y, predicted), 1.0)
    mass = np.zeros((n_classes, n_classes))
    np.add.at(mass, y, reference_probs)
    # counts first, probability mass (< 1 per example, scaled below 1 in total) to break ties
    score = counts + mass / (len(y) + 1.0)
    np.fill_diagonal(score, -np.inf)
    return score.argmax(axis=1).astype(np.int64)


def plant_confusion_noise(
    y: np.ndarray,  # (n_examples,) int labels in [0, n_classes)
    rate: float,
    n_classes: int,
    random_state: int,
    reference_probs: npt.NDArray[np.float64],  # (n_examples, n_classes), compute_reference_probs
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Similar-class noise: for each class c, flip round(rate * n_c) of its examples, chosen
    uniformly, to the class a clean model confuses c with most (compute_confusion_targets).
    Returns (y_noisy (n_examples,), is_flipped (n_examples,) bool)."""
    y = _check_labels(y, rate, n_classes)
    return _flip_within_classes(y, rate, compute_confusion_targets(reference_probs, y), random_state)


def plant_ambiguous_noise(
    y: np.ndarray,  # (n_examples,) int labels in [0, n_classes)
    rate: float,
    n_classes: int,
    random_state: int,
    reference_probs: npt.NDArray[np.float64],  # (n_examples, n_classes), compute_reference_probs
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Instance-dependent noise: exactly round(rate * n) examples are flipped, drawn without
    replacement with weight 1 - p(true class) + 0.01 (the reference model's out-of-fold
    probability), so ambiguous examples are flipped far more often; each goes to its most probable
    *other* class. Returns (y_noisy (n_examples,), is_flipped (n_examples,) bool)."""
    y = _check_labels(y, rate, n_classes)
    probs = np.asarray(reference_probs, dtype=np.float64)
    if probs.shape != (y.size, n_classes):
        raise ValueError(f"reference_probs {probs.shape} must be (n_examples, n_classes) = {(y.size, n_classes)}")
    rng = np.random.default_rng(random_state)
    weight = 1.0 - probs[np.arange(y.size), y] + 0.01
    flipped = rng.choice(y.size, size=round(rate * y.size), replace=False, p=weight / weight.sum())
    others = probs.copy()
    others[np.arange(y.size), y] = -np.inf
    y_noisy = y.copy()
    y_noisy[flipped] = others[flipped].argmax(axis=1)
    is_flipped = np.zeros(y.size, dtype=bool)
    is_flipped[flipped] = True
    return y_noisy, is_flipped


def compute_detection_metrics(
    is_flipped: np.ndarray,  # (n_examples,) bool, the planted truth
    mislabel_score: np.ndarray,  # (n_examples,) float, high = suspect
    is_flagged: np.ndarray,  # (n_examples,) bool, the detector's verdict
) -> dict[str, float | int]:
    """Ranking metrics of the score (ap, auroc, precision_at_k with k = number of true
    flips) and set metrics of the flagged mask (precision, recall, f1, n_flagged)."""
    truth = np.asarray(is_flipped, dtype=bool)
    score = np.asarray(mislabel_score, dtype=np.float64)
    flagged = np.asarray(is_flagged, dtype=bool)
    if not truth.shape == score.shape == flagged.shape or truth.ndim != 1:
        raise ValueError(
            "is_flipped, mislabel_score and is_flagged must share one 1-D shape (n_examples,), "
            f"got {truth.shape}, {score.shape}, {flagged.shape}"
        )
    n_flips = int(truth.sum())
    if n_flips in (0, truth.size):
        raise ValueError(f"need both flipped and clean examples, got {n_flips} of {truth.size}")
    top_k = np.argsort(-score, kind="stable")[:n_flips]
    return {
        "ap": float(average_precision_score(truth, score)),
        "auroc": float(roc_auc_score(truth, score)),
        "precision_at_k": float(truth[top_k].mean()),
        "f1": float(f1_score(truth, flagged, zero_division=0.0)),
        "precision": float(precision_score(truth, flagged, zero_division=0.0)),
        "recall": float(recall_score(truth, flagged, zero_division=0.0)),
        "n_flagged": int(flagged.sum()),
    }
