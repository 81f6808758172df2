"""Consistency (Hacohen et al.): the share of ensemble members that predict the given label.

c^e(x, y) = (1/N) #{i : f_i^e(x) = y}. High = easy. Arrays are shaped
(n_members, n_epochs, n_examples); epoch 0 is the untrained network.
"""

from typing import TypeVar

import numpy as np
import numpy.typing as npt

Float = TypeVar("Float", bound=np.floating)  # the curve's float dtype, kept by the epoch mean

NEVER = -1  # first_learned_epoch of an example never learned for good


def _check(
    preds: npt.NDArray[np.integer],  # (n_members, n_epochs, n_examples)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
    member_mask: npt.NDArray[np.bool_] | None,  # (n_members, n_examples)
) -> None:
    if preds.ndim != 3:
        raise ValueError(f"preds must be (n_members, n_epochs, n_examples), got shape {preds.shape}")
    if given_labels.shape != (preds.shape[2],):
        raise ValueError(f"given_labels shape {given_labels.shape} does not match preds {preds.shape}")
    if member_mask is not None and member_mask.shape != (preds.shape[0], preds.shape[2]):
        raise ValueError(f"member_mask must be (n_members, n_examples) = {(preds.shape[0], preds.shape[2])}, "
                         f"got {member_mask.shape}")


def compute_consistency(
    preds: npt.NDArray[np.integer],  # (n_members, n_epochs, n_examples)
    given_labels: npt.NDArray[np.integer],  # (n_examples,)
    member_mask: npt.NDArray[np.bool_] | None = None,  # (n_members, n_examples): members to count
) -> npt.NDArray[np.float64]:
    """Consistency per epoch, (n_epochs, n_examples) in [0, 1]; high = easy.

    With `member_mask`, only the selected members of each example count (for instance the
    members that held the example out); examples with no selected member get NaN.
    """
    _check(preds, given_labels, member_mask)
    hits: npt.NDArray[np.bool_] = preds == given_labels[None, None, :]  # (n_members, n_epochs, n_examples)
    # numpy's stubs type a reduction over an axis as Any; the annotations say what it is
    if member_mask is None:
        share: npt.NDArray[np.float64] = hits.mean(axis=0)
        return share
    counts = member_mask.sum(axis=0).astype(np.float64)  # (n_examples,)
    with np.errstate(invalid="ignore", divide="ignore"):
        masked_share: npt.NDArray[np.float64] = (hits & member_mask[:, None, :]).sum(axis=0) / counts[None, :]
    return masked_share


def compute_accessibility(
    consistency: npt.NDArray[Float],  # (n_epochs, n_examples)
    first_epoch: int = 1,
) -> npt.NDArray[Float]:
    """Mean consistency over epochs first_epoch.. (default: every trained epoch, not the init).

    (n_examples,) in [0, 1]; high = learned early by every member (easy), low = hard or mislabeled.
    """
    if consistency.ndim != 2 or consistency.shape[0] <= first_epoch:
        raise ValueError(f"consistency must be (n_epochs > {first_epoch}, n_examples), got {consistency.shape}")
    accessibility: npt.NDArray[Float] = consistency[first_epoch:].mean(axis=0)  # same float dtype as the input
    return accessibility


def compute_first_learned_epoch(
    consistency: npt.NDArray[np.floating],  # (n_epochs, n_examples)
    threshold: float = 0.5,
) -> npt.NDArray[np.int64]:
    """First epoch from which consistency stays >= threshold to the end; NEVER (-1) if it does not.

    (n_examples,) int; low = learned early.
    """
    if consistency.ndim != 2:
        raise ValueError(f"consistency must be (n_epochs, n_examples), got {consistency.shape}")
    above = consistency >= threshold
    # stays above from e on  <=>  all of above[e:] true: a suffix AND (boolean, no int64 copy)
    suffix_all = np.flip(np.logical_and.accumulate(np.flip(above, axis=0), axis=0), axis=0)
    first = np.argmax(suffix_all, axis=0)
    return np.where(suffix_all.any(axis=0), first, NEVER).astype(np.int64)
