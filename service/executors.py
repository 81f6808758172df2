"""Executors run GroupTasks somewhere else and hand each EpochRecord back to the engine.

LocalExecutor (default): spawned subprocesses (never fork a process that holds DuckDB), records
back over a multiprocessing queue, cancel by flag then terminate.
"""

import multiprocessing as mp
import queue
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Protocol

from models.checkpoints import prune_checkpoints
from models.predictions import EpochRecord
from models.spec import GroupTask

OnRecord = Callable[[GroupTask, EpochRecord], None]
ShouldStop = Callable[[], bool]
TaskKey = tuple[str, int]  # (model, group)


class WorkerFailed(Exception):
    """A worker raised or died; the message ends with its traceback tail."""


class Executor(Protocol):
    def run(self, tasks: list[GroupTask], on_record: OnRecord, should_stop: ShouldStop) -> bool:
        """Run every task; return False if stopped early by should_stop. Raise WorkerFailed."""
        ...


def tail(text: str, n_lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n_lines:])


class LocalExecutor:
    """Up to `max_workers` tasks at once, each in its own spawned process."""

    def __init__(self, max_workers: int = 1, poll_seconds: float = 0.2) -> None:
        self.max_workers = max_workers
        self.poll_seconds = poll_seconds

    def run(self, tasks: list[GroupTask], on_record: OnRecord, should_stop: ShouldStop) -> bool:
        from models.worker import run_task  # torch-free module: the child imports torch itself

        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        cancel = ctx.Event()
        pending = list(tasks)
        running: dict[TaskKey, tuple[GroupTask, BaseProcess]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.max_workers:
                    task = pending.pop(0)
                    proc = ctx.Process(target=run_task, args=(task, out, cancel), daemon=True)
                    proc.start()
                    running[(task.model, task.group)] = (task, proc)
                if should_stop():
                    return False
                try:
                    kind, key, payload = out.get(timeout=self.poll_seconds)
                except queue.Empty:
                    _check_alive(running)
                    continue
                if kind == "record":
                    task = running[key][0]
                    on_record(task, payload)
                    prune_checkpoints(task.checkpoint_dir, payload.epoch)  # committed: older ones are done with
                elif kind == "done":
                    _, proc = running.pop(key)
                    proc.join()
                else:
                    raise WorkerFailed(f"{key[0]} group {key[1]} failed:\n{tail(payload)}")
            return True
        finally:
            cancel.set()
            for _, proc in running.values():
                proc.join(timeout=1.0)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5.0)


def _check_alive(running: dict[TaskKey, tuple[GroupTask, BaseProcess]]) -> None:
    for (model, group), (_, proc) in running.items():
        if not proc.is_alive() and proc.exitcode != 0:
            raise WorkerFailed(f"{model} group {group} died with exit code {proc.exitcode}")
