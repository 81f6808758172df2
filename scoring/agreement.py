"""Agreement between model families: does AdaBoost learn examples in the ensemble's order?

Hacohen et al. (SCIENCE.md §1, AdaBoost paragraph) group examples easy/intermediate/hard by the
network ensemble's consistency, plot AdaBoost's accuracy per group against the number of
weak learners (the curves stay ordered), and correlate AdaBoost difficulty with network
difficulty (r = 0.83 on their data). Boosting stages play the role of epochs here:
`predicted_label[t]` is the prediction of the boosted classifier H_t after t rounds.

Pure numpy; imports nothing of ours but the rank helpers (scoring/ranks.py).
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from scoring.ranks import pearson, spearman

SPLITS = ("easy", "intermediate", "hard")
FAMILY_CATEGORIES = ("both_easy", "both_hard", "hard_for_ensemble_only", "hard_for_boosting_only")


def compute_stage_accuracy_by_group(
    predicted_label: npt.NDArray[np.integer],  # (n_stages, n_examples)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
    split: npt.NDArray[np.str_],  # (n_examples,) "easy" / "intermediate" / "hard"
) -> dict[str, npt.NDArray[np.float64]]:
    """Per-group accuracy curve: for each split, the share of its examples with H_t(x) = y.

    Returns {"easy", "intermediate", "hard"} -> (n_stages,) in [0, 1]; high = the group is
    learned. A group with no examples maps to an all-NaN curve.
    """
    pred, labels = _check_stage_predictions(predicted_label, given_labels)
    split_arr = np.asarray(split)
    if split_arr.shape != labels.shape:
        raise ValueError(
            f"split has shape {split_arr.shape}, expected {labels.shape} to match given_labels"
        )
    unknown = set(np.unique(split_arr).tolist()) - set(SPLITS)
    if unknown:
        raise ValueError(f"split values must be in {SPLITS}, found {sorted(map(str, unknown))}")
    correct = pred == labels[None, :]  # (n_stages, n_examples)
    curves: dict[str, npt.NDArray[np.float64]] = {}
    for name in SPLITS:
        mask = split_arr == name
        if mask.any():
            curves[name] = correct[:, mask].mean(axis=1).astype(np.float64)
        else:
            curves[name] = np.full(pred.shape[0], np.nan)
    return curves


def compute_boosting_accessibility(
    predicted_label: npt.NDArray[np.integer],  # (n_stages, n_examples)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
) -> npt.NDArray[np.float64]:
    """AdaBoost accessibility: mean over stages t of 1[H_t(x) = y].

    Returns (n_examples,) in [0, 1]; high = learned early by boosting (easy), low = hard.
    """
    pred, labels = _check_stage_predictions(predicted_label, given_labels)
    # numpy's stubs type == between arrays and a reduction over an axis as Any
    accessibility: npt.NDArray[np.float64] = (pred == labels[None, :]).mean(axis=0).astype(np.float64)
    return accessibility


@dataclass(frozen=True)
class Correlation:
    """Pearson and Spearman correlation between two difficulty scores over examples.

    Fields are NaN when undefined (a constant input, fewer than 3 examples); `reason` says why.
    """

    pearson_r: float  # in [-1, 1]; high = the two families agree
    pearson_p: float  # two-sided p-value
    spearman_r: float  # in [-1, 1]
    spearman_p: float
    n_examples: int
    reason: str | None = None  # why the fields are NaN, None when they are defined


def compute_difficulty_correlation(
    ensemble_accessibility: npt.NDArray[np.floating],  # (n_examples,) in [0, 1], high = easy
    boosting_accessibility: npt.NDArray[np.floating],  # (n_examples,) in [0, 1], high = easy
) -> Correlation:
    """Correlate network-ensemble and AdaBoost difficulty; high r = same learning order."""
    a, b = _check_pair(ensemble_accessibility, boosting_accessibility)
    n = int(a.size)
    reason = None
    if n < 3:
        reason = f"fewer than 3 examples (n_examples={n})"
    elif np.ptp(a) == 0:
        reason = "ensemble_accessibility is constant; correlation is undefined"
    elif np.ptp(b) == 0:
        reason = "boosting_accessibility is constant; correlation is undefined"
    if reason is not None:
        nan = float("nan")
        return Correlation(nan, nan, nan, nan, n, reason)
    pearson_r, pearson_p = pearson(a, b)
    spearman_r, spearman_p = spearman(a, b)
    return Correlation(pearson_r, pearson_p, spearman_r, spearman_p, n_examples=n)


def compute_family_agreement(
    ensemble_accessibility: npt.NDArray[np.floating],  # (n_examples,) in [0, 1], high = easy
    boosting_accessibility: npt.NDArray[np.floating],  # (n_examples,) in [0, 1], high = easy
    threshold: float = 0.5,
) -> npt.NDArray[np.str_]:
    """Cross-family difficulty category per example; (n_examples,) strings.

    - "both_easy": both accessibilities >= threshold.
    - "both_hard": both < threshold: intrinsically hard or mislabeled (the bad end; inspect
      these first).
    - "hard_for_ensemble_only" / "hard_for_boosting_only": below threshold for one family only,
      i.e. model-specific difficulty rather than a property of the example.
    """
    a, b = _check_pair(ensemble_accessibility, boosting_accessibility)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    for name, arr in (("ensemble_accessibility", a), ("boosting_accessibility", b)):
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ValueError(f"{name} must lie in [0, 1], got range [{arr.min()}, {arr.max()}]")
    easy_a = a >= threshold
    easy_b = b >= threshold
    out = np.empty(a.shape, dtype=f"<U{max(map(len, FAMILY_CATEGORIES))}")
    out[easy_a & easy_b] = "both_easy"
    out[~easy_a & ~easy_b] = "both_hard"
    out[~easy_a & easy_b] = "hard_for_ensemble_only"
    out[easy_a & ~easy_b] = "hard_for_boosting_only"
    return out


def check_curves_ordered(curves: dict[str, npt.NDArray[np.floating]]) -> float:
    """Share of stages where accuracy(easy) >= accuracy(intermediate) >= accuracy(hard).

    `curves` as returned by `compute_stage_accuracy_by_group`. All-NaN groups (no examples) are
    left out of the comparison. Returns a value in [0, 1]: 1.0 = always ordered (the paper's
    finding), low = boosting learns in a different order. NaN when fewer than two groups have
    examples, since there is no order to check.
    """
    missing = [name for name in SPLITS if name not in curves]
    if missing:
        raise ValueError(f"curves lacks groups {missing}; expected keys {SPLITS}")
    arrays = [np.asarray(curves[name], dtype=np.float64) for name in SPLITS]
    shapes = [arr.shape for arr in arrays]
    if any(arr.ndim != 1 for arr in arrays) or len(set(shapes)) != 1 or shapes[0][0] == 0:
        raise ValueError(f"curves must be equal-length non-empty 1-D arrays, got shapes {shapes}")
    present = [arr for arr in arrays if not np.isnan(arr).all()]
    if len(present) < 2:
        return float("nan")
    ordered = np.ones(present[0].shape, dtype=bool)
    for upper, lower in zip(present[:-1], present[1:]):
        ordered &= upper >= lower
    return float(ordered.mean())


def _check_stage_predictions(
    predicted_label: npt.NDArray[np.integer], given_labels: npt.NDArray[np.integer]
) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(predicted_label)
    labels = np.asarray(given_labels)
    if pred.ndim != 2 or pred.shape[0] == 0:
        raise ValueError(
            f"predicted_label must be (n_stages, n_examples) with n_stages >= 1, got {pred.shape}"
        )
    if labels.shape != (pred.shape[1],):
        raise ValueError(
            f"given_labels has shape {labels.shape}, expected ({pred.shape[1]},) "
            f"to match predicted_label {pred.shape}"
        )
    return pred, labels


def _check_pair(
    ensemble_accessibility: npt.NDArray[np.floating],
    boosting_accessibility: npt.NDArray[np.floating],
) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(ensemble_accessibility, dtype=np.float64)
    b = np.asarray(boosting_accessibility, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"ensemble_accessibility {a.shape} and boosting_accessibility {b.shape} "
            "must be 1-D arrays of the same shape (n_examples,)"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("accessibilities must be finite (no NaN or inf)")
    return a, b
