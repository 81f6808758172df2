"""Bounds on what one request or job may take: a job's estimated memory, the on-demand
attribution queue, and a read timeout on request bodies.

Torch-free: the estimate counts from the TrainSpec and the dataset's shape what models/nets.py
would allocate, without building it.
"""

import asyncio
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from models.spec import WIDE_CNN, TrainSpec, mlp_layers_for
from service.errors import Busy, InvalidSpec, RequestTimeout

FLOAT = 4  # bytes: float32 weights, activations and inputs on the device


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int  # bytes of weights of one member group
    optimiser: int  # gradients + AdamW's two moments: 3x the weights
    activations: int  # forward + backward at the batch size (and the record pass)
    data: int  # the dataset on the device as float32

    @property
    def total(self) -> int:
        return self.parameters + self.optimiser + self.activations + self.data


def estimate_job_memory(spec: TrainSpec, x_shape: tuple[int, ...], n_classes: int) -> MemoryEstimate:
    """Peak bytes of one worker training one member group of `spec` on data of shape x_shape
    ((n, d) tabular or (n, C, H, W) images). An estimate (within ~2x): weights, optimiser state,
    activations kept for the backward pass at the batch size, the record pass over all examples in
    batches, and the data copied to the device once."""
    n = int(x_shape[0])
    members = max(len(g) for g in spec.member_groups())
    batch = spec.batch_size or min(256, max(8, n // 30))
    image = len(x_shape) == 4 and spec.model != "mlp"
    if image:
        channels, h, w = (int(v) for v in x_shape[1:])
        width = spec.cnn_width or WIDE_CNN  # resolved at job creation; unset: the wider one
        widths = [channels, width, 2 * width, 4 * width]
        params = sum(9 * a * b + 3 * b for a, b in zip(widths[:-1], widths[1:])) + widths[-1] * n_classes + n_classes
        pixels, per_example = h * w, 0
        for width in widths[1:]:  # conv, batch norm, ReLU and dropout outputs are kept per stage
            per_example += 4 * width * pixels
            pixels = pixels // 4 if min(h, w) >= 4 else pixels
            h, w = max(1, h // 2), max(1, w // 2)
    else:
        d = int(math.prod(x_shape[1:]))
        depth = spec.n_hidden_layers if spec.n_hidden_layers is not None else mlp_layers_for(n, d, len(x_shape) == 4)
        widths = [d] + [spec.hidden_units] * depth + [n_classes]
        params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
        per_example = 3 * sum(widths[1:])  # linear output, ReLU, dropout mask per layer
    parameters = members * params * FLOAT
    record_batch = max(batch, 1024)  # predictions of every example each epoch, without gradients
    activations = members * FLOAT * (2 * batch * per_example + record_batch * per_example // 3 + n * n_classes * 3)
    data = n * int(math.prod(x_shape[1:])) * FLOAT
    return MemoryEstimate(parameters, 3 * parameters, activations, data)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 1024**3


def check_job_memory(spec: TrainSpec, x_shape: tuple[int, ...], n_classes: int, limit: int, dataset_id: str) -> None:
    """InvalidSpec (422) naming the estimate and the limit when one member group would not fit."""
    limit = limit or physical_memory() // 2
    estimate = estimate_job_memory(spec, x_shape, n_classes)
    if estimate.total > limit:
        raise InvalidSpec(
            f"this job would need about {_gib(estimate.total)} per member group (weights {_gib(estimate.parameters)}, "
            f"optimiser {_gib(estimate.optimiser)}, activations {_gib(estimate.activations)}, data "
            f"{_gib(estimate.data)} for dataset {dataset_id}), over the limit max_job_memory = {_gib(limit)}: "
            "use fewer members per group (members_per_group), smaller layers or a smaller batch_size")


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 / 100 else f"{n / 1024**2:.1f} MiB"


class WorkQueue:
    """At most `workers` at once, `queue_size` more waiting; past that Busy (429, Retry-After)."""

    def __init__(self, what: str, workers: int, queue_size: int, retry_after: int = 5) -> None:
        self.what, self.workers, self.queue_size, self.retry_after = what, workers, queue_size, retry_after
        self._slots = threading.Semaphore(workers)
        self._lock = threading.Lock()
        self._admitted = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self._admitted >= self.workers + self.queue_size:
                raise Busy(f"{self.workers} {self.what} running and {self.queue_size} waiting already: retry in "
                           f"{self.retry_after} s", self.retry_after)
            self._admitted += 1
        try:
            with self._slots:
                yield
        finally:
            with self._lock:
                self._admitted -= 1


class BodyReadTimeout:
    """ASGI middleware: each part of a request body must arrive within `timeout_s`, or the request
    ends with 408 (a body that never finished held its worker slot forever). Once the body is
    complete, `receive` is passed through untouched (server-sent events wait on it for disconnects)."""

    def __init__(self, app, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or not self.timeout_s:
            return await self.app(scope, receive, send)
        complete = False

        async def timed_receive():  # type: ignore[no-untyped-def]
            nonlocal complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                raise RequestTimeout(f"the request body did not arrive within {self.timeout_s:g} s "
                                     "(body_read_timeout_s)") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed_receive, send)


def cuda_device_count() -> int:
    """CUDA devices this host's workers would see, without importing torch (the service never
    does): NVIDIA device nodes, narrowed by CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        nodes = [e for e in os.listdir("/dev") if e.startswith("nvidia") and e[6:].isdigit()]
    except OSError:
        nodes = []
    if visible is None:
        return len(nodes)
    listed = [v for v in visible.split(",") if v.strip() and not v.strip().startswith("-")]
    return min(len(nodes), len(listed))


def check_device(spec: TrainSpec) -> None:
    """Refuse at submission a CUDA device this host lacks (it failed minutes later in the worker,
    with a traceback of server paths)."""
    if not spec.device.startswith("cuda"):
        return
    n = cuda_device_count()
    index = int(spec.device.partition(":")[2] or 0)
    if index >= n:
        have = f"{n} CUDA device{'s' if n != 1 else ''}" if n else "no CUDA device"
        raise InvalidSpec(f"device={spec.device!r}, but this server has {have}: use device=auto or cpu")


@dataclass(frozen=True)
class IngestLimits:
    max_archive_bytes: int = 2 * 1024**3  # total uncompressed size of a zip or npz; size of a CSV or Parquet's data
    max_files: int = 200_000  # files in a folder or entries in a zip
    max_compression_ratio: float = 200.0  # per zip entry (zip bomb guard)
    max_decoded_bytes: int = 1024**3  # image pixels after decoding and resize, in all (PNG bomb guard)
    max_image_pixels: int = 25_000_000  # width x height of one image, checked before it is decoded
