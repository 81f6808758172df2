"""How long a job will take, from a short calibration: its first trained epoch.

Why: an image job on a CPU can take an hour where the same data as a table takes seconds, and a
user should learn that in the first seconds, with what would make it faster, not after the hour.
The worker already times every epoch it records (`EpochRecord.seconds`, train + record pass), so
the calibration costs nothing: epoch 0 (the record pass before training) and epoch 1 of the first
member group to report give the pace, and the rest is arithmetic. Later epochs refine it.

Pure arithmetic, no I/O: the runner (service/engine/runner.py) feeds it and stores the result.
"""

import math
from dataclasses import dataclass

LONG_JOB_S = 600.0  # over this on a CPU, the estimate says so and what would make the job faster


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole job's training wall time from its start (scoring adds a few seconds)
    note: str  # what the figure rests on and, for a long CPU job, what would make it faster


@dataclass(frozen=True)
class JobShape:
    """What the arithmetic needs to know about a job besides its timings."""

    n_epochs: int  # trained epochs of every member group (epoch 0, the record before training, comes on top)
    n_groups: int  # member groups
    n_parallel: int  # groups trained at once (the local executor's max_workers)
    model: str  # "cnn" | "mlp" | "auto"
    on_cpu: bool


def estimate_training_seconds(record_s: float, epoch_s: float, shape: JobShape) -> float:
    """Seconds to train every group: record_s is epoch 0 (one record pass), epoch_s one trained
    epoch with its record pass. Groups run in waves of n_parallel, each wave as long as one group
    (the groups of a job are the same size but for the last one)."""
    if record_s < 0 or epoch_s < 0:
        raise ValueError(f"timings must be >= 0 s, got record_s={record_s}, epoch_s={epoch_s}")
    if shape.n_epochs < 1 or shape.n_groups < 1 or shape.n_parallel < 1:
        raise ValueError(f"n_epochs, n_groups and n_parallel must be >= 1, got {shape}")
    waves = math.ceil(shape.n_groups / min(shape.n_parallel, shape.n_groups))
    return waves * (record_s + shape.n_epochs * epoch_s)


def estimate_job(record_s: float, epoch_seconds: list[float], shape: JobShape) -> Estimate:
    """The estimate from epoch 0's record_s and the trained epochs timed so far (at least one: the
    mean of the last few, so a slow first epoch (lazy initialisation, caches) weighs less later)."""
    if not epoch_seconds:
        raise ValueError("estimate_job needs at least one trained epoch's seconds")
    recent = epoch_seconds[-5:]
    epoch_s = sum(recent) / len(recent)
    seconds = estimate_training_seconds(record_s, epoch_s, shape)
    basis = (f"from {len(epoch_seconds)} timed epoch{'s' if len(epoch_seconds) != 1 else ''} "
             f"({epoch_s:.2f} s each, {shape.n_epochs} epochs x {shape.n_groups} group"
             f"{'s' if shape.n_groups != 1 else ''}, {min(shape.n_parallel, shape.n_groups)} at once)")
    advice = advise(seconds, shape)
    return Estimate(seconds=seconds, note=f"{basis}; {advice}" if advice else basis)


def advise(seconds: float, shape: JobShape) -> str | None:
    """For a CPU job over LONG_JOB_S: say so, and what would make it faster; else None."""
    if not shape.on_cpu or seconds <= LONG_JOB_S:
        return None
    tips = [f"fewer epochs (--epochs {max(1, shape.n_epochs // 2)} halves it)"]
    if shape.model in ("cnn", "auto"):
        # the pixel MLP is fast but finds far fewer wrong labels (28x28 digits: AP 0.44 vs 0.99 for the
        # CNN, benchmarks/results/cpu_images-mlp-depth.md): the tip says so
        tips.append("pretrained image features (--features), or the MLP on the pixels (--model mlp: "
                    "faster, but it finds far fewer wrong labels than the CNN)")
    tips.append("a GPU (--device cuda)")
    if shape.n_groups > 1:
        tips.append("more workers on more cores, or a Ray cluster (the member groups train in parallel)")
    else:
        tips.append("a Ray cluster with members_per_group set (groups train in parallel)")
    return f"over {LONG_JOB_S / 60:.0f} minutes on a CPU (about {format_seconds(seconds)}); faster: " + \
        ", ".join(tips)


def format_seconds(seconds: float) -> str:
    """'45 s', '12 min', '1 h 05 min': how a person reads a duration."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def job_shape(n_epochs: int, n_groups: int, n_parallel: int, model: str, dataset_kind: str, device: str,
              n_cuda_devices: int, remote_gpus: bool = False) -> JobShape:
    """The JobShape of a job: its model with `auto` resolved by the dataset's kind (a CNN for
    images), and whether it trains on a CPU (device cpu, or auto on a host without CUDA devices
    and no GPUs asked of a Ray cluster)."""
    resolved = model if model != "auto" else ("cnn" if dataset_kind == "image" else "mlp")
    on_cpu = device == "cpu" or (device == "auto" and n_cuda_devices == 0 and not remote_gpus)
    return JobShape(n_epochs=n_epochs, n_groups=n_groups, n_parallel=max(1, n_parallel), model=resolved,
                    on_cpu=on_cpu)


class EpochTimer:
    """The timings of one member group (the first to report), turned into estimates as they land.

    `observe` returns a new Estimate at the first trained epoch, then whenever the figure moves by
    more than `tolerance` (so a job's row is written a few times, not every epoch), else None."""

    def __init__(self, shape: JobShape, tolerance: float = 0.1) -> None:
        self.shape, self.tolerance = shape, tolerance
        self.group: int | None = None
        self.record_s: float | None = None
        self.epoch_seconds: list[float] = []
        self.last: Estimate | None = None

    def observe(self, group: int, epoch: int, seconds: float) -> Estimate | None:
        if self.group is None:
            self.group = group
        if group != self.group:
            return None
        if epoch == 0:
            self.record_s = seconds
            return None
        self.epoch_seconds.append(seconds)
        # resumed after epoch 0: one record pass costs well under a trained epoch, which includes one
        record_s = self.record_s if self.record_s is not None else 0.0
        estimate = estimate_job(record_s, self.epoch_seconds, self.shape)
        if self.last is not None and abs(estimate.seconds - self.last.seconds) <= self.tolerance * self.last.seconds:
            return None
        self.last = estimate
        return estimate
