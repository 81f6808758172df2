"""The per-epoch record a worker sends back, and the stacked record of a whole run.

Torch-free numpy containers: they cross process boundaries (pickled) and the service reads them.
Epoch 0 is the state before any training step.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class EpochRecord:
    """What a member group predicted for every example after one epoch."""

    group: int  # member-group index within the job
    epoch: int  # 0 = before training
    members: tuple[int, ...]  # global member indices, len G
    predicted_label: npt.NDArray[np.int16]  # (G, n_examples) argmax class
    label_prob: npt.NDArray[np.float32]  # (G, n_examples) softmax probability of the given label
    margin: npt.NDArray[np.float32]  # (G, n_examples) given-label logit minus best other logit
    held_out: npt.NDArray[np.bool_]  # (G, n_examples) True where the member did not train on the example
    prob_sum: npt.NDArray[np.float32]  # (n_examples, n_classes) sum of softmax over members that trained on it
    heldout_prob_sum: npt.NDArray[np.float32]  # (n_examples, n_classes) same over members that held it out
    train_loss: float  # mean training loss of the epoch (nan at epoch 0)
    seconds: float  # wall time of the epoch including the record pass

    @property
    def n_examples(self) -> int:
        return int(self.predicted_label.shape[1])


@dataclass(frozen=True)
class PredictionRecord:
    """Learning dynamics of a whole run: every member, every recorded epoch, every example."""

    predicted_label: npt.NDArray[np.int16]  # (n_members, n_epochs, n_examples)
    label_prob: npt.NDArray[np.float32]  # (n_members, n_epochs, n_examples)
    margin: npt.NDArray[np.float32]  # (n_members, n_epochs, n_examples)
    held_out: npt.NDArray[np.bool_]  # (n_members, n_examples)
    prob_sum: npt.NDArray[np.float32]  # (n_epochs, n_examples, n_classes) in-sample softmax sums
    heldout_prob_sum: npt.NDArray[np.float32]  # (n_epochs, n_examples, n_classes) held-out softmax sums

    @classmethod
    def from_epochs(cls, records: list[EpochRecord], n_members: int) -> "PredictionRecord":
        """Stack epoch records of all groups; every (group, epoch) pair must be present once."""
        if not records:
            raise ValueError("no epoch records to stack")
        n_examples = records[0].n_examples
        n_classes = records[0].prob_sum.shape[1]
        n_epochs = max(r.epoch for r in records) + 1
        pred = np.full((n_members, n_epochs, n_examples), -1, dtype=np.int16)
        prob = np.zeros((n_members, n_epochs, n_examples), dtype=np.float32)
        marg = np.zeros((n_members, n_epochs, n_examples), dtype=np.float32)
        held = np.zeros((n_members, n_examples), dtype=bool)
        psum = np.zeros((n_epochs, n_examples, n_classes), dtype=np.float32)
        hsum = np.zeros((n_epochs, n_examples, n_classes), dtype=np.float32)
        for r in records:
            idx = list(r.members)
            pred[idx, r.epoch] = r.predicted_label
            prob[idx, r.epoch] = r.label_prob
            marg[idx, r.epoch] = r.margin
            held[idx] = r.held_out
            psum[r.epoch] += r.prob_sum
            hsum[r.epoch] += r.heldout_prob_sum
        if (pred < 0).any():
            raise ValueError("missing (member, epoch) predictions in the epoch records")
        return cls(pred, prob, marg, held, psum, hsum)
