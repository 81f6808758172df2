"""Job rows: create, read, move between statuses, request cancel.

Statuses: queued -> running -> succeeded | failed | cancelled; running -> cancelling -> cancelled.
Every restart of a job's training bumps `attempt`; commits of an older attempt are refused.
"""

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.spec import AdaBoostSpec, TrainSpec
from scoring.scores import ScoringOptions
from service.errors import Conflict, InvalidSpec, JobNotFinished, NotFound
from service.limits import check_job_memory, cuda_device_count
from service.schemas import JobOut
from service.store.db import Store, to_json

FINISHED = ("succeeded", "failed", "cancelled")
UNFINISHED = ("queued", "running", "cancelling", "recording")  # recording: store/recorded.py


@dataclass(frozen=True)
class Job:
    job_id: str
    dataset_id: str
    spec: TrainSpec
    scoring: ScoringOptions
    adaboost: AdaBoostSpec
    status: str
    attempt: int
    epochs_done: int
    epochs_total: int
    estimated_n_errors: int | None
    summary: dict | None
    error: str | None
    owner: str | None
    created_at: Any
    started_at: Any
    finished_at: Any
    estimate: dict | None = None  # {"seconds", "note"}: set_estimate


_COLUMNS = ("job_id, dataset_id, spec, scoring, adaboost, status, attempt, epochs_done, epochs_total, "
            "estimated_n_errors, summary, error, owner, created_at, started_at, finished_at")
_READ_COLUMNS = f"{_COLUMNS}, estimate"  # estimate is written later (set_estimate), never on insert


def stored_spec(text: str) -> TrainSpec:
    """A job's stored TrainSpec. One stored before 2026-12-07 lacks label_smoothing and trained
    without it, and its precision "auto" meant bf16 on CUDA only: both are pinned to what that job
    trained with, so its resume and its shown spec stay true (a new job stores both resolved)."""
    data = json.loads(text)
    if "label_smoothing" not in data:
        data["label_smoothing"] = 0.0
        if data.get("precision") == "auto" and (data.get("device") == "cpu" or (
                data.get("device") == "auto" and cuda_device_count() == 0)):
            data["precision"] = "fp32"
    return TrainSpec.model_validate(data)


def _job(row: tuple) -> Job:
    values = list(row)
    values[2] = stored_spec(values[2])
    values[3] = ScoringOptions(**json.loads(values[3]))
    values[4] = AdaBoostSpec.model_validate_json(values[4])
    values[10] = json.loads(values[10]) if values[10] else None
    values[16] = json.loads(values[16]) if values[16] else None
    for i in (13, 14, 15):  # stored in UTC (the store sets TimeZone = UTC): make that explicit
        if values[i] is not None and values[i].tzinfo is None:
            values[i] = values[i].replace(tzinfo=UTC)
    return Job(*values)


def check_spec_fits(spec: TrainSpec, dataset_id: str, kind: str) -> None:
    """Refuse at submission what the worker would refuse minutes later: a CNN or image
    augmentation on a tabular dataset."""
    if kind == "image":
        if spec.augment != "none" and spec.model == "mlp":
            raise InvalidSpec(f"augment={spec.augment} shifts images, which a CNN sees; dataset {dataset_id} "
                              "would be flattened for model=mlp (use model=cnn or auto)")
        return
    if spec.model == "cnn":
        raise InvalidSpec(f"model=cnn needs images; dataset {dataset_id} is {kind} (use model=mlp or auto)")
    if spec.augment != "none":
        raise InvalidSpec(f"augment={spec.augment} needs images; dataset {dataset_id} is {kind}")


def create_job(store: Store, dataset_id: str, spec: TrainSpec, scoring: ScoringOptions,
               adaboost: AdaBoostSpec, owner: str | None = None, max_job_memory: int | None = None,
               on_gpu: bool = False, cpu_bf16: bool = False) -> str:
    """Queue a job; refused at once (InvalidSpec) if the dataset cannot take the spec or, with
    max_job_memory (0 = half the RAM), if one member group's estimated memory exceeds it. on_gpu,
    cpu_bf16: the job will train on a GPU, on a CPU with native bf16 (the by-device defaults: the
    CNN's width, the precision)."""
    job_id = uuid.uuid4().hex[:12]
    total = len(spec.member_groups()) * spec.n_epochs * spec.rounds
    with store.transaction() as cur:
        row = cur.execute("SELECT kind, x_shape, n_classes, n_examples FROM datasets WHERE dataset_id = ? "
                          "AND owner IS NOT DISTINCT FROM ?", [dataset_id, owner]).fetchone()
        if row is None:
            raise NotFound(f"dataset {dataset_id} not found")
        try:  # the by-data defaults are filled in here, so the stored spec is what trains
            x_shape = json.loads(row[1])
            spec = spec.resolved(int(row[3]), math.prod(x_shape[1:]), on_gpu=on_gpu,
                                 cnn=row[0] == "image" and spec.model != "mlp", cpu_bf16=cpu_bf16,
                                 pixels=len(x_shape) == 4)
        except ValueError as error:
            raise InvalidSpec(f"dataset {dataset_id}: {error}") from error
        check_spec_fits(spec, dataset_id, row[0])
        if max_job_memory is not None:
            check_job_memory(spec, tuple(json.loads(row[1])), int(row[2]), max_job_memory, dataset_id)
        cur.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'queued', 0, 0, ?, NULL, NULL, NULL, ?, "
                    "now(), NULL, NULL)",
                    [job_id, dataset_id, spec.model_dump_json(), to_json(scoring.__dict__),
                     adaboost.model_dump_json(), total, owner])
        add_event(cur, job_id, "queued", f"{spec.n_members} members x {spec.n_epochs} epochs"
                  + (f", CNN width {spec.cnn_width}, {spec.precision}" if row[0] == "image" and spec.model != "mlp"
                     else ""))
    return job_id


def get_job(store: Store, job_id: str, owner: str | None = None) -> Job:
    with store.reader() as cur:
        row = cur.execute(f"SELECT {_READ_COLUMNS} FROM jobs WHERE job_id = ? AND owner IS NOT DISTINCT FROM ?",
                          [job_id, owner]).fetchone()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    return _job(row)


def finished_job(store: Store, job_id: str, owner: str | None = None) -> Job:
    """A job whose scores exist (it succeeded); JobNotFinished names its status otherwise."""
    job = get_job(store, job_id, owner)
    if job.status != "succeeded":
        raise JobNotFinished(f"job {job_id} is {job.status}; scores exist once it has succeeded")
    return job


def list_jobs(store: Store, owner: str | None = None, limit: int = 100) -> list[Job]:
    with store.reader() as cur:
        rows = cur.execute(f"SELECT {_READ_COLUMNS} FROM jobs WHERE owner IS NOT DISTINCT FROM ? "
                           "ORDER BY created_at DESC LIMIT ?", [owner, limit]).fetchall()
    return [_job(r) for r in rows]


def job_ids(store: Store, statuses: tuple[str, ...]) -> list[str]:
    """Ids of the jobs in these statuses, oldest first."""
    with store.reader() as cur:
        return [r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE list_contains(?, status) "
                                          "ORDER BY created_at", [list(statuses)]).fetchall()]


def runnable_job_ids(store: Store) -> list[str]:
    """The scheduler's queue: jobs left running (resumed first), then queued ones, oldest first."""
    with store.reader() as cur:
        return [r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE status IN ('running', 'queued') "
                                          "ORDER BY status = 'queued', created_at").fetchall()]


def finish_cancelling(store: Store) -> None:
    """At a server's start: jobs left `cancelling` by the last one are cancelled."""
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE status = 'cancelling'")


def update_summary(cur: Any, job_id: str, parts: dict, replace: bool = False) -> None:
    """The one writer of jobs.summary: merge `parts` into it (or replace it whole), inside the
    caller's transaction. The finalize step writes the scores' summary, the explain step adds
    "attributions"."""
    summary: dict = {}
    if not replace:
        row = cur.execute("SELECT summary FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        summary = json.loads(row[0]) if row and row[0] else {}
    summary.update(parts)
    cur.execute("UPDATE jobs SET summary = ? WHERE job_id = ?", [to_json(summary), job_id])


def set_estimate(store: Store, job_id: str, attempt: int, seconds: float, note: str) -> None:
    """Store the job's estimated training time (service/engine/estimate.py); fenced by the attempt
    like every write of a running job, so a stale worker's timings never overwrite a newer one's."""
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET estimate = ? WHERE job_id = ? AND attempt = ?",
                    [to_json({"seconds": float(seconds), "note": note}), job_id, attempt])


def set_epochs_total(store: Store, job_id: str, attempt: int, total: int, why: str) -> None:
    """A running job's new epochs_total (its low-noise pass adds one training of the ensemble), with
    the event that says why; fenced by the attempt like every write of a running job."""
    with store.transaction() as cur:
        updated = cur.execute("UPDATE jobs SET epochs_total = ? WHERE job_id = ? AND attempt = ? RETURNING job_id",
                              [total, job_id, attempt]).fetchall()
        if updated:
            add_event(cur, job_id, "low_noise_pass", why)


def owner_of(store: Store, job_id: str) -> str | None:
    """A job's owner (None: no such job, or a job without keys)."""
    with store.reader() as cur:
        row = cur.execute("SELECT owner FROM jobs WHERE job_id = ?", [job_id]).fetchone()
    return row[0] if row else None


def add_event(cur: Any, job_id: str, kind: str, message: str) -> None:
    cur.execute("INSERT INTO events VALUES (?, now(), ?, ?)", [job_id, kind, message])


def start_attempt(store: Store, job_id: str, run_by: str = "cli") -> int:
    """queued/running -> running with attempt + 1 (run_by: server | cli); returns the new attempt."""
    with store.transaction() as cur:
        row = cur.execute("SELECT status, attempt FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        if row[0] not in ("queued", "running"):
            raise Conflict(f"job {job_id} is {row[0]}; only queued or interrupted jobs can run")
        attempt = row[1] + 1
        cur.execute("UPDATE jobs SET status = 'running', attempt = ?, run_by = ?, "
                    "started_at = coalesce(started_at, now()) WHERE job_id = ?", [attempt, run_by, job_id])
        add_event(cur, job_id, "running", f"attempt {attempt} ({run_by})")
    return attempt


def finish(store: Store, job_id: str, attempt: int, status: str, error: str | None = None) -> None:
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET status = ?, error = ?, finished_at = now() WHERE job_id = ? AND attempt = ?",
                    [status, error, job_id, attempt])
        add_event(cur, job_id, status, error or status)


def retry(store: Store, job_id: str, owner: str | None = None) -> Job:
    """failed / cancelled -> queued: the next run resumes every group after its last committed
    epoch (a dead Ray node, a crashed worker or an early cancel loses nothing committed)."""
    job = get_job(store, job_id, owner)
    if job.status not in ("failed", "cancelled"):
        raise Conflict(f"job {job_id} is {job.status}; only failed or cancelled jobs can be retried")
    with store.reader() as cur:
        run_by = cur.execute("SELECT run_by FROM jobs WHERE job_id = ?", [job_id]).fetchone()[0]
    if run_by == "recorder":  # its epochs come from the user's own training loop, not from Curate's
        raise Conflict(f"job {job_id} records the dynamics of your own models (curate.Recorder): Curate cannot "
                       "train it again; start a new recording")
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET status = 'queued', error = NULL, finished_at = NULL WHERE job_id = ?", [job_id])
        add_event(cur, job_id, "retry", f"retry after {job.status} at {job.epochs_done}/{job.epochs_total} epochs")
    return get_job(store, job_id, owner)


def request_cancel(store: Store, job_id: str, owner: str | None = None) -> Job:
    """queued (or recording) -> cancelled at once; running -> cancelling (the runner stops within seconds)."""
    job = get_job(store, job_id, owner)
    with store.transaction() as cur:
        if job.status in ("queued", "recording"):
            cur.execute("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE job_id = ?", [job_id])
        elif job.status == "running":
            cur.execute("UPDATE jobs SET status = 'cancelling' WHERE job_id = ?", [job_id])
        else:
            return job
        add_event(cur, job_id, "cancel", "cancel requested")
    return get_job(store, job_id, owner)


def cancel_interrupted(store: Store, run_by: str = "cli") -> list[str]:
    """Jobs left `running` by a `run_by` process that is gone -> cancelled (`retry` resumes them).
    Only called by the process that holds the data file, so no such job can still be running."""
    with store.transaction() as cur:
        ids = [r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE status IN ('running', 'cancelling') "
                                         "AND run_by = ? ORDER BY created_at", [run_by]).fetchall()]
        for job_id in ids:
            cur.execute("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE job_id = ?", [job_id])
            add_event(cur, job_id, "cancelled", f"interrupted while running in-process ({run_by}); not resumed")
    return ids


def cancel_now(store: Store, job_id: str, owner: str | None = None) -> Job:
    """Cancel from a process that runs no job (the CLI without a server): queued or interrupted -> cancelled."""
    job = request_cancel(store, job_id, owner)
    if job.status == "cancelling":
        finish(store, job_id, job.attempt, "cancelled")
    return get_job(store, job_id, owner)


def status_of(store: Store, job_id: str) -> str:
    with store.reader() as cur:
        row = cur.execute("SELECT status FROM jobs WHERE job_id = ?", [job_id]).fetchone()
    return row[0] if row else "missing"


def _eta(job: Job) -> float | None:
    """Seconds left at the pace so far; None until an epoch is done."""
    if job.status != "running" or job.started_at is None or job.epochs_done == 0:
        return None
    elapsed = (datetime.now(UTC) - job.started_at).total_seconds()
    return max(0.0, elapsed / job.epochs_done * (job.epochs_total - job.epochs_done))


def job_out(job: Job) -> JobOut:
    """The API's view of a job (also what the CLI prints, local or remote)."""
    return JobOut(job_id=job.job_id, dataset_id=job.dataset_id, status=job.status, attempt=job.attempt,
                  epochs_done=job.epochs_done, epochs_total=job.epochs_total,
                  progress=job.epochs_done / max(job.epochs_total, 1), eta_seconds=_eta(job),
                  estimated_n_errors=job.estimated_n_errors, error=job.error, spec=job.spec,
                  adaboost=job.adaboost, summary=job.summary, created_at=job.created_at,
                  started_at=job.started_at, finished_at=job.finished_at,
                  estimated_seconds=(job.estimate or {}).get("seconds"),
                  estimate_note=(job.estimate or {}).get("note"))
