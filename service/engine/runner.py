"""Run a job: dispatch its member groups (and AdaBoost) to an executor, commit every epoch
exactly once, then score.

Each (job, model, group, epoch) is committed in one transaction: delete that key, insert the
batch, advance progress, fenced by the job's attempt (a stale attempt or a cancelled job
writes nothing). A restarted job resumes every group after its last committed epoch.
"""

import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from models.predictions import EpochRecord
from models.spec import GroupTask
from service.store import jobs
from service.engine.executors.local import Executor, WorkerFailed
from service.engine.explain import explain_job, keep_model
from service.engine.finalize import finalize_job
from service.settings import Settings
from service.store.db import Store, fixed_lists, insert_arrow, to_json

Progress = Callable[[str, int, int], None]  # (job_id, epochs_done, epochs_total)


class StaleAttempt(Exception):
    """A record from an attempt that is no longer current (restarted or cancelled job)."""


def build_tasks(store: Store, settings: Settings, job: jobs.Job, attempt: int) -> list[GroupTask]:
    """Tasks still to run: groups with epochs left, each resuming after its last committed epoch."""
    with store.reader() as cur:
        done = {(m, g): e for m, g, e in cur.execute(
            "SELECT model, group_id, last_epoch FROM job_groups WHERE job_id = ?", [job.job_id]).fetchall()}
        n_classes = cur.execute("SELECT n_classes FROM datasets WHERE dataset_id = ?", [job.dataset_id]).fetchone()[0]
    ds = settings.datasets_dir / job.dataset_id
    units = [("ensemble", g, tuple(m), job.spec.n_epochs) for g, m in enumerate(job.spec.member_groups())]
    if job.adaboost.enabled:
        units.append(("adaboost", 0, (0,), job.adaboost.n_rounds))
    tasks = []
    for model, group, members, last in units:
        resume = done.get((model, group))
        if resume is not None and resume >= last:
            continue
        ckpt = settings.jobs_dir / job.job_id / f"{model}-group-{group}" / "ckpt"
        tasks.append(GroupTask(job_id=job.job_id, attempt=attempt, model=model, group=group, members=members,
                               spec=job.spec, adaboost=job.adaboost, x_path=str(ds / "X.npy"),
                               y_path=str(ds / "y.npy"), n_classes=n_classes, checkpoint_dir=str(ckpt),
                               resume_after=resume, n_threads=settings.threads_per_worker()))
    return tasks


def commit_epoch(store: Store, task: GroupTask, record: EpochRecord) -> int:
    """Store one (model, group, epoch) exactly once; returns the job's ensemble epochs done."""
    n_members, n = record.predicted_label.shape
    members = np.repeat(np.asarray(record.members, dtype=np.int16), n)
    preds = pa.table({
        "member": members, "epoch": np.full(n_members * n, record.epoch, np.int16),
        "example_id": np.tile(np.arange(n, dtype=np.int32), n_members),
        "predicted_label": record.predicted_label.ravel().astype(np.int16),
        "label_prob": record.label_prob.ravel(), "margin": record.margin.ravel(),
        "held_out": record.held_out.ravel(),
    })
    probs = pa.table({"epoch": np.full(n, record.epoch, np.int16), "example_id": np.arange(n, dtype=np.int32),
                      "prob_sum": fixed_lists(record.prob_sum),
                      "heldout_prob_sum": fixed_lists(record.heldout_prob_sum)})
    key = [task.job_id, task.model, record.epoch]
    with store.transaction() as cur:
        row = cur.execute("SELECT attempt, status FROM jobs WHERE job_id = ?", [task.job_id]).fetchone()
        if row is None or row[0] != task.attempt or row[1] != "running":
            raise StaleAttempt(f"job {task.job_id} attempt {task.attempt} is no longer running")
        cur.execute("DELETE FROM predictions WHERE job_id = ? AND model = ? AND epoch = ? AND member IN "
                    "(SELECT unnest(?::SMALLINT[]))", key + [list(record.members)])
        cur.execute("DELETE FROM group_probs WHERE job_id = ? AND model = ? AND epoch = ? AND group_id = ?",
                    key + [task.group])
        cur.execute("DELETE FROM epoch_metrics WHERE job_id = ? AND model = ? AND epoch = ? AND group_id = ?",
                    key + [task.group])
        insert_arrow(cur, "predictions", preds, {"job_id": task.job_id, "model": task.model})
        insert_arrow(cur, "group_probs", probs, {"job_id": task.job_id, "model": task.model, "group_id": task.group})
        loss = None if np.isnan(record.train_loss) else record.train_loss
        cur.execute("INSERT INTO epoch_metrics VALUES (?, ?, ?, ?, ?, ?, now())",
                    key[:2] + [task.group, record.epoch, loss, record.seconds])
        cur.execute("DELETE FROM job_groups WHERE job_id = ? AND model = ? AND group_id = ?",
                    [task.job_id, task.model, task.group])
        cur.execute("INSERT INTO job_groups VALUES (?, ?, ?, ?, ?)",
                    [task.job_id, task.model, task.group, to_json(list(task.members)), record.epoch])
        done = cur.execute("SELECT coalesce(sum(last_epoch), 0) FROM job_groups WHERE job_id = ? "
                           "AND model = 'ensemble'", [task.job_id]).fetchone()[0]
        cur.execute("UPDATE jobs SET epochs_done = ? WHERE job_id = ?", [done, task.job_id])
    return int(done)


def run_job(store: Store, settings: Settings, job_id: str, executor: Executor,
            progress: Progress | None = None, stopping: threading.Event | None = None,
            cancel: threading.Event | None = None, run_by: str = "cli") -> jobs.Job:
    """Train (or resume), score and finish one job; returns its final row.

    stopping: pause (the job stays running and resumes at restart); cancel: stop and mark the job
    cancelled (set by `curate score`'s SIGINT/SIGTERM handler; `retry` resumes it)."""
    attempt = jobs.start_attempt(store, job_id, run_by)
    job = jobs.get_job(store, job_id, owner=_owner(store, job_id))
    tasks = build_tasks(store, settings, job, attempt)

    def on_record(task: GroupTask, record: EpochRecord) -> None:
        done = commit_epoch(store, task, record)
        if progress is not None:
            progress(job_id, done, job.epochs_total)

    def should_stop() -> bool:
        return any(e is not None and e.is_set() for e in (stopping, cancel)) or \
            jobs.status_of(store, job_id) != "running"

    try:
        if not executor.run(tasks, on_record, should_stop):
            if cancel is not None and cancel.is_set():
                jobs.request_cancel(store, job_id, job.owner)
            _finish_if_cancelled(store, job_id, attempt)
            return jobs.get_job(store, job_id, owner=job.owner)
        started = time.perf_counter()
        finalize_job(store, settings, job)
        with store.transaction() as cur:
            jobs.add_event(cur, job_id, "scored", f"scores in {time.perf_counter() - started:.2f} s")
        keep_model(settings, job)  # each group's final weights; the other checkpoints were only for resuming
        explain_job(store, settings, job)  # attributions of the suspected mislabels and hard examples
        jobs.finish(store, job_id, attempt, "succeeded")
    except StaleAttempt:  # cancelled mid-epoch, or another attempt owns the job now
        _finish_if_cancelled(store, job_id, attempt)
    except WorkerFailed as exc:
        jobs.finish(store, job_id, attempt, "failed", str(exc))
    except Exception as exc:  # any other failure is recorded on the job, never lost
        jobs.finish(store, job_id, attempt, "failed", f"{type(exc).__name__}: {exc}")
        raise
    return jobs.get_job(store, job_id, owner=job.owner)


def _finish_if_cancelled(store: Store, job_id: str, attempt: int) -> None:
    """cancelling -> cancelled (finish() is fenced by the attempt, so a newer attempt is untouched)."""
    if jobs.status_of(store, job_id) == "cancelling":
        jobs.finish(store, job_id, attempt, "cancelled")


def _owner(store: Store, job_id: str) -> str | None:
    with store.reader() as cur:
        row = cur.execute("SELECT owner FROM jobs WHERE job_id = ?", [job_id]).fetchone()
    return row[0] if row else None

