"""Consensus (Hacohen et al.): the share of members that agree on the most-voted label.

s^e(x) = max_k (1/N) #{i : f_i^e(x) = k}; the consensus label is that k (ties go to the
smallest class index). s >= max(c, 1/K); if c > 1/2 then s = c and the consensus label is y.
"""

import numpy as np
import numpy.typing as npt


def compute_vote_counts(
    preds: npt.NDArray[np.integer],  # (n_members, n_epochs, n_examples)
    n_classes: int,
    member_mask: npt.NDArray[np.bool_] | None = None,  # (n_members, n_examples)
) -> npt.NDArray[np.int32]:
    """Votes per class, (n_epochs, n_examples, n_classes): how many (selected) members predict k."""
    if preds.ndim != 3:
        raise ValueError(f"preds must be (n_members, n_epochs, n_examples), got shape {preds.shape}")
    if preds.size and (preds.min() < 0 or preds.max() >= n_classes):
        raise ValueError(f"predicted labels must lie in 0..{n_classes - 1}, got {preds.min()}..{preds.max()}")
    n_members, n_epochs, n_examples = preds.shape
    # flat bin of (epoch, example, class), one bincount per member (n_members is small)
    base = ((np.arange(n_epochs)[:, None] * n_examples + np.arange(n_examples)[None, :]) * n_classes)
    size = n_epochs * n_examples * n_classes
    votes = np.zeros(size, dtype=np.int64)
    for m in range(n_members):
        weights = None if member_mask is None else np.broadcast_to(member_mask[m], (n_epochs, n_examples)).ravel()
        votes += np.bincount((base + preds[m]).ravel(), weights=weights, minlength=size).astype(np.int64)
    votes = votes.reshape(n_epochs, n_examples, n_classes).astype(np.int32)
    return votes


def compute_consensus(
    votes: npt.NDArray[np.integer],  # (n_epochs, n_examples, n_classes)
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(consensus, consensus_label), each (n_epochs, n_examples); consensus in [1/K, 1], NaN
    where no member voted. High consensus = the members agree (on whatever label)."""
    if votes.ndim != 3:
        raise ValueError(f"votes must be (n_epochs, n_examples, n_classes), got shape {votes.shape}")
    total = votes.sum(axis=2).astype(np.float64)
    label = votes.argmax(axis=2).astype(np.int64)  # argmax takes the first (smallest) index on ties
    with np.errstate(invalid="ignore", divide="ignore"):
        share = votes.max(axis=2) / total
    return share, label
