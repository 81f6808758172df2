"""`curate score`'s progress: the job's time estimate once it is known, then a bar on a terminal,
or plain lines where stderr is not one (logs, CI), where a redrawn bar would print nothing useful.

The estimate (service/engine/estimate.py) is stored on the job after its first trained epoch;
this reads it back through the backend, so a local run and a server's job print the same line.
"""

import time
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from models.spec import NARROW_CNN, WIDE_CNN
from service.cli.client import ProgressFn
from service.engine.estimate import format_seconds
from service.schemas import JobOut

PLAIN_EVERY_S = 5.0  # without a terminal: a line at most this often (and the first and last epoch)


class _Backend(Protocol):
    def wait(self, job_id: str, progress: ProgressFn) -> JobOut: ...

    def job(self, job_id: str) -> JobOut: ...


def training_line(job: JobOut, kind: str, width_was_set: bool) -> str:
    """'training 8 members x 20 epochs, CNN width 16 (...), bf16 autocast': what the job trains,
    before it starts; for images the CNN's width and, when Curate chose the narrow one, why and how
    to override; bf16 where it trains so (a GPU, or a CNN on a CPU with native bf16)."""
    spec = job.spec
    line = f"training {spec.n_members} members x {spec.n_epochs} epochs"
    if kind == "image" and spec.model != "mlp" and spec.cnn_width is not None:
        line += f", CNN width {spec.cnn_width}"
        if spec.cnn_width == NARROW_CNN and not width_was_set:
            line += (f" (chosen for a large image set on a CPU: {WIDE_CNN} is ~2.4x slower here; "
                     f"--set cnn_width={WIDE_CNN} to train it)")
    if spec.precision == "bf16":
        line += ", bf16 autocast"
    return line


def estimate_line(job: JobOut) -> str | None:
    """'estimated training time: about 3 min (from ...)', or None while the job has no estimate."""
    if job.estimated_seconds is None:
        return None
    note = f" ({job.estimate_note})" if job.estimate_note else ""
    return f"estimated training time: about {format_seconds(job.estimated_seconds)}{note}"


def plain_line(done: int, total: int, elapsed_s: float) -> str:
    """One progress line for a log: epochs, elapsed time and, once an epoch is done, time left at this pace."""
    left = f", about {format_seconds(elapsed_s / done * (total - done))} left" if 0 < done < total else ""
    return f"training: {done}/{total} epochs, {format_seconds(elapsed_s)} elapsed{left}"


class _Reporter:
    """The progress callback: prints the estimate once, then draws the bar or writes plain lines."""

    def __init__(self, backend: _Backend, job_id: str, console: Console, bar: Progress | None) -> None:
        self.backend, self.job_id, self.console, self.bar = backend, job_id, console, bar
        self.task = bar.add_task("train", total=None) if bar is not None else None
        self.estimated = False
        self.started = time.monotonic()
        self.last_line = -PLAIN_EVERY_S

    def __call__(self, done: int, total: int) -> None:
        if not self.estimated and done > 0:
            line = estimate_line(self.backend.job(self.job_id))
            if line is not None:
                self.estimated = True
                # above the bar (rich prints it there while the bar is live)
                (self.bar.console if self.bar is not None else self.console).print(line, highlight=False)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, total=total)
            return
        now = time.monotonic()
        if done in (1, total) or now - self.last_line >= PLAIN_EVERY_S:
            self.last_line = now
            self.console.print(plain_line(done, total, now - self.started), highlight=False)


def wait_with_progress(backend: _Backend, job_id: str, console: Console) -> JobOut:
    """Follow the job to its end, reporting on `console` (stderr: stdout keeps the results)."""
    if not console.is_terminal:
        return backend.wait(job_id, _Reporter(backend, job_id, console, None))
    columns = (TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        return backend.wait(job_id, _Reporter(backend, job_id, console, bar))
