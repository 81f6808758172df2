"""Executors run GroupTasks somewhere else and hand the EpochRecords back to the engine, each
task's in epoch order, several of one task at once when they arrived together.

LocalExecutor (default): one subprocess per task, records back over a multiprocessing queue,
cancel by flag then terminate. Workers come from a fork server (`worker_context`), never from a
fork of the engine (which holds DuckDB and threads).
"""

import multiprocessing as mp
import os
import queue
import sys
import threading
from collections.abc import Callable
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from models.checkpoints import prune_checkpoints
from models.lifeline import kill_group
from models.predictions import EpochRecord
from models.spec import GroupTask

OnRecords = Callable[[GroupTask, list[EpochRecord]], None]  # consecutive epochs of one task, committed at once
ShouldStop = Callable[[], bool]
TaskKey = tuple[str, int]  # (model, group)
Message = tuple[str, TaskKey, Any]  # ("record", key, EpochRecord) | ("done", key, None) | ("failed", key, traceback)
MAX_BATCH = 256  # records handed over at once at most (AdaBoost's default 100 stages arrive together)


# imported once by the fork server, so a worker starts in milliseconds instead of seconds:
# '__main__' (else every child re-imports the CLI script, ~0.5 s), torch with the model code
# (~1.2 s), and torch._dynamo, which the first optimizer constructor imports lazily (~1.1 s)
WORKER_PRELOAD = ["__main__", "models.worker", "models.ensemble", "models.explain_worker", "torch._dynamo"]


def worker_context() -> BaseContext:
    """The multiprocessing context for training and explanation workers.

    A fork server: a fresh interpreter (no DuckDB, no threads) that imports torch and the model
    code once, then forks a child per task. With "spawn" every task paid the interpreter start,
    the CLI import and the torch import again: a task's first record came 2.3 s after its start,
    against 0.06 s from the fork server (benchmarks/results/worker_start.md). Linux only:
    elsewhere "spawn" (macOS's system frameworks are not safe in a forked child; Windows has no fork).
    """
    if sys.platform != "linux":
        return mp.get_context("spawn")
    # libgomp reads this when torch loads, i.e. once in the fork server: idle OpenMP threads
    # sleep instead of spinning (spinning made 2-thread training 5-25x slower on shared cores)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(WORKER_PRELOAD)
    return ctx


class WorkerFailed(Exception):
    """A worker raised or died; the message ends with its traceback tail."""


class Executor(Protocol):
    def run(self, tasks: list[GroupTask], on_records: OnRecords, should_stop: ShouldStop) -> bool:
        """Run every task, handing its records to on_records in epoch order; return False if
        stopped early by should_stop. Raise WorkerFailed."""
        ...


def tail(text: str, n_lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-n_lines:])


class LocalExecutor:
    """Up to `max_workers` member groups at once (plus the AdaBoost baseline beside them), each in
    its own worker process."""

    def __init__(self, max_workers: int = 1, poll_seconds: float = 0.2) -> None:
        self.max_workers = max_workers
        self.poll_seconds = poll_seconds
        self._warming: threading.Thread | None = None

    def warm_up(self) -> None:
        """Start the fork server in the background (it imports torch: ~3 s), so that the first job
        does not wait for it; once. Called where jobs will run soon (Engine.warm_up_workers)."""
        if self._warming is None:
            self._warming = threading.Thread(target=_start_fork_server, name="curate-fork-server", daemon=True)
            self._warming.start()

    def run(self, tasks: list[GroupTask], on_records: OnRecords, should_stop: ShouldStop) -> bool:
        from models.worker import run_task  # torch-free module: the child imports torch itself

        ctx = worker_context()
        out = ctx.Queue()
        cancel = ctx.Event()
        pending = list(tasks)
        running: dict[TaskKey, tuple[GroupTask, BaseProcess]] = {}
        try:
            while pending or running:
                for task in _startable(pending, running, self.max_workers):
                    pending.remove(task)
                    proc = ctx.Process(target=run_task, args=(task, out, cancel, os.getpid()), daemon=True)
                    proc.start()
                    running[(task.model, task.group)] = (task, proc)
                if should_stop():
                    return False
                try:
                    first = out.get(timeout=self.poll_seconds)
                except queue.Empty:
                    _check_alive(running)
                    continue
                for kind, key, payload in _batched([first, *_waiting(out, MAX_BATCH - 1)]):
                    if kind == "records":
                        task = running[key][0]
                        on_records(task, payload)
                        prune_checkpoints(task.checkpoint_dir, payload[-1].epoch)  # committed: older ones are done with
                    elif kind == "done":
                        _, proc = running.pop(key)
                        proc.join()
                    else:
                        raise WorkerFailed(f"{key[0]} group {key[1]} failed:\n{tail(payload)}")
            return True
        finally:  # every exit path (done, stopped, failed, KeyboardInterrupt) ends every worker's tree
            cancel.set()
            for _, proc in running.values():
                proc.join(timeout=1.0)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5.0)
                if proc.pid is not None:
                    kill_group(proc.pid)  # the worker leads its own group: anything it started goes too


def _startable(pending: list[GroupTask], running: dict[TaskKey, tuple[GroupTask, BaseProcess]],
               max_workers: int) -> list[GroupTask]:
    """The pending tasks to start now, in order: member groups while fewer than max_workers groups
    run; the AdaBoost baseline at once, beside them (one single-threaded scikit-learn fit, about
    2 s on digits: waiting for the groups' slot made it the job's tail, 3 s after training)."""
    free = max_workers - sum(1 for task, _ in running.values() if task.model != "adaboost")
    chosen = []
    for task in pending:
        if task.model == "adaboost":
            chosen.append(task)
        elif free > 0:
            chosen.append(task)
            free -= 1
    return chosen


def _waiting(out: Any, limit: int) -> list[Message]:
    """The messages already in the queue, at most `limit`, without waiting for more."""
    messages: list[Message] = []
    while len(messages) < limit:
        try:
            messages.append(out.get_nowait())
        except queue.Empty:
            break
    return messages


def _batched(messages: list[Message]) -> list[Message]:
    """The messages in order, each run of consecutive records of one task as one ("records", key,
    [EpochRecord, ...]) message (a task's records arrive in epoch order: its worker sends them so)."""
    out: list[Message] = []
    for kind, key, payload in messages:
        if kind == "record" and out and out[-1][0] == "records" and out[-1][1] == key:
            out[-1][2].append(payload)
        elif kind == "record":
            out.append(("records", key, [payload]))
        else:
            out.append((kind, key, payload))
    return out


def _start_fork_server() -> None:
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _check_alive(running: dict[TaskKey, tuple[GroupTask, BaseProcess]]) -> None:
    for (model, group), (_, proc) in running.items():
        if not proc.is_alive() and proc.exitcode != 0:
            raise WorkerFailed(f"{model} group {group} died with exit code {proc.exitcode}")
