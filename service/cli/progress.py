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


def plain_line(done: int, total: int, elapsed_s: float, left_s: float | None = None) -> str:
    """One progress line for a log: epochs, elapsed time and, when known, the time left."""
    left = f", about {format_seconds(left_s)} left" if left_s is not None and done < total else ""
    return f"training: {done}/{total} epochs, {format_seconds(elapsed_s)} elapsed{left}"


class _Reporter:
    """The progress callback: prints the estimate once, then draws the bar or writes plain lines.

    Plain lines: one when the first epoch is done, one at the end, and one at most every
    PLAIN_EVERY_S between (a heartbeat even while a long epoch runs). The time left is the pace since
    the first trained epoch (start-up and the epoch-0 record pass do not recur, so counting them would
    overstate it many times on a short job), or the job's own estimate before a second epoch is done."""

    def __init__(self, backend: _Backend, job_id: str, console: Console, bar: Progress | None) -> None:
        self.backend, self.job_id, self.console, self.bar = backend, job_id, console, bar
        self.task = bar.add_task("train", total=None) if bar is not None else None
        self.estimated_s: float | None = None
        self.started = time.monotonic()
        self.last_line, self.last_done = -PLAIN_EVERY_S, -1
        self.first: tuple[float, int] | None = None  # (when, done) at the first trained epoch seen

    def __call__(self, done: int, total: int) -> None:
        if self.estimated_s is None and done > 0:
            job = self.backend.job(self.job_id)
            line = estimate_line(job)
            if line is not None:
                self.estimated_s = job.estimated_seconds
                # above the bar (rich prints it there while the bar is live)
                (self.bar.console if self.bar is not None else self.console).print(line, highlight=False)
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, total=total)
            return
        now = time.monotonic()
        if done > 0 and self.first is None:
            self.first = (now, done)
        if now - self.last_line >= PLAIN_EVERY_S or (done != self.last_done and done in (1, total)):
            self.last_line, self.last_done = now, done
            self.console.print(plain_line(done, total, now - self.started, self.time_left(now, done, total)),
                               highlight=False)

    def time_left(self, now: float, done: int, total: int) -> float | None:
        if self.first is not None and done > self.first[1]:
            return (now - self.first[0]) / (done - self.first[1]) * (total - done)
        if self.estimated_s is not None and total > 0:
            return self.estimated_s * (total - done) / total
        return None


def wait_with_progress(backend: _Backend, job_id: str, console: Console) -> JobOut:
    """Follow the job to its end, reporting on `console` (stderr: stdout keeps the results)."""
    if not console.is_terminal:
        return backend.wait(job_id, _Reporter(backend, job_id, console, None))
    columns = (TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        return backend.wait(job_id, _Reporter(backend, job_id, console, bar))
