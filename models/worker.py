"""Worker entry point: run one GroupTask and stream its epoch records to the engine.

Runs in a worker process (LocalExecutor: forked from its fork server) or a Ray task; never touches DuckDB. Messages on
`out`, keyed by (model, group): ("record", key, EpochRecord), ("done", key, None),
("error", key, traceback text).
"""

import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from models.lifeline import die_with, is_alive
from models.predictions import EpochRecord
from models.spec import GroupTask

TRAINING_NICENESS = 10


class _Queue(Protocol):
    def put(self, item: object) -> None: ...


class _Flag(Protocol):
    def is_set(self) -> bool: ...


def iter_task_records(task: GroupTask, X: np.ndarray | None = None,
                      y: np.ndarray | None = None) -> Iterator[EpochRecord]:
    """The records of one task, in epoch order.

    X, y: the dataset already in memory (RayExecutor broadcasts it once per job); by default
    they are loaded from task.x_path and task.y_path.
    """
    if X is None:
        X = np.load(task.x_path, mmap_mode="r")
    y = np.asarray(np.load(task.y_path) if y is None else y).astype(np.int64)
    if task.model == "adaboost":
        from models.adaboost import AdaBoostBaseline, boosting_features

        ada = task.adaboost
        flat = boosting_features(X)
        base = AdaBoostBaseline(n_rounds=ada.n_rounds, max_depth=ada.max_depth, learning_rate=ada.learning_rate,
                                random_state=task.spec.random_state).fit(flat, y)
        after = -1 if task.resume_after is None else task.resume_after
        yield from (r for r in base.stage_records(y, member=0, group=task.group) if r.epoch > after)
        return
    import torch

    from models.ensemble import train_group

    if task.n_threads:
        torch.set_num_threads(task.n_threads)
    ckpt = Path(task.checkpoint_dir) if task.checkpoint_dir else None
    yield from train_group(np.asarray(X), y, task.n_classes, task.spec, list(task.members), group=task.group,
                           checkpoint_dir=ckpt, resume_after=task.resume_after,
                           keep_checkpoints=task.keep_checkpoints,
                           exclude=np.asarray(task.exclude, dtype=np.int64) if task.exclude else None)


def run_task(task: GroupTask, out: _Queue, cancel: _Flag, parent_pid: int | None = None) -> None:
    """Process entry: stream records until done, cancelled, failed or the engine (`parent_pid`) is gone."""
    die_with(parent_pid)  # models/lifeline.py: no orphan outlives the engine
    key = (task.model, task.group)
    # idle OpenMP threads sleep instead of spinning: with other processes on the cores, spinning
    # threads made 2-thread training 5-25x slower (benchmarks/throughput.md). libgomp reads it when
    # torch loads: here for a spawned worker; service.engine.executors.local.worker_context sets it for the fork server
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        os.nice(TRAINING_NICENESS)  # training yields the CPU to the server that reads and writes
    except OSError:
        pass
    try:
        for record in iter_task_records(task):
            if cancel.is_set() or (parent_pid is not None and not is_alive(parent_pid)):
                return
            out.put(("record", key, record))
        out.put(("done", key, None))
    except BaseException:  # the engine records the traceback tail in jobs.error
        out.put(("error", key, traceback.format_exc()))


def run_explain(job_dir: str, spec_json: str, members_by_group: list[list[int]], x_path: str, y_path: str,
                n_classes: int, example_ids: list[int], targets: dict[str, list[int]], methods: list[str],
                n_threads: int = 0, parent_pid: int | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Process entry of service/engine/explain.py: `models.explain_worker.explain_examples` with n_threads
    torch CPU threads (0 = torch's default); this module stays torch-free for the engine. The
    process dies with the engine (`parent_pid`), like a training worker."""
    die_with(parent_pid)
    import torch

    from models.explain_worker import explain_examples

    if n_threads:
        torch.set_num_threads(n_threads)
    return explain_examples(job_dir, spec_json, members_by_group, x_path, y_path, n_classes, example_ids,
                            targets, methods)
