"""Run a job: dispatch its member groups (and AdaBoost) to an executor, commit every epoch
exactly once (service.store.results.commit_epochs: one transaction per epoch, or per run of one
group's epochs that arrived together, fenced by the job's attempt), then score, keep the final
weights and explain. A restarted job resumes every group after its last committed epoch.
"""

import threading
import time
from collections.abc import Callable

import numpy as np

from models.predictions import EpochRecord
from models.spec import GroupTask, TrainSpec
from scoring.scores import ExampleScores, second_round_exclusion
from service.engine.estimate import EpochTimer, Estimate, job_shape
from service.engine.executors.local import Executor, WorkerFailed
from service.engine.explain import explain_job, keep_model
from service.engine.finalize import finalize_job, first_round_scores, low_noise_first_pass
from service.limits import cuda_device_count
from service.settings import Settings
from service.store import catalog, jobs
from service.store.db import Store
from service.store.results import StaleAttempt, commit_epochs, done_epochs

Progress = Callable[[str, int, int], None]  # (job_id, epochs_done, epochs_total)


def build_tasks(store: Store, settings: Settings, job: jobs.Job, attempt: int) -> list[GroupTask]:
    """Tasks still to run: groups with epochs left, each resuming after its last committed epoch."""
    units = [("ensemble", g, tuple(m), job.spec.n_epochs) for g, m in enumerate(job.spec.member_groups())]
    if job.adaboost.enabled:
        units.append(("adaboost", 0, (0,), job.adaboost.n_rounds))
    return _tasks(store, settings, job, attempt, units, job.spec, ())


def build_round2_tasks(store: Store, settings: Settings, job: jobs.Job, attempt: int) -> list[GroupTask]:
    """A rounds=2 job's second round, once the first is committed: every member group again, from
    other seeds, with the first round's suspected mislabels held out by every member
    (second_round_exclusion). They are recomputed from the committed first round (deterministic),
    so a resumed job holds out the same examples."""
    units = [("round2", g, tuple(m), job.spec.n_epochs) for g, m in enumerate(job.spec.member_groups())]
    done = done_epochs(store, job.job_id)
    if all(done.get((model, group), -1) >= last for model, group, _, last in units):
        return []
    exclude = tuple(int(i) for i in second_round_exclusion(first_round_scores(store, job)))
    spec = job.spec.model_copy(update={"random_state": job.spec.round2_seed()})
    return _tasks(store, settings, job, attempt, units, spec, exclude)


def build_low_noise_tasks(store: Store, settings: Settings, job: jobs.Job, attempt: int) -> list[GroupTask]:
    """The low-noise pass of a job whose first pass estimated few label errors (TrainSpec.
    wants_low_noise_pass): every member group again, stored as model round2, under the weaker Jumpout
    row from the second round's seeds, on every example."""
    spec = job.spec.low_noise_spec()
    units = [("round2", g, tuple(m), spec.n_epochs) for g, m in enumerate(spec.member_groups())]
    return _tasks(store, settings, job, attempt, units, spec, ())


def _tasks(store: Store, settings: Settings, job: jobs.Job, attempt: int, units: list[tuple[str, int, tuple, int]],
           spec: TrainSpec, exclude: tuple[int, ...]) -> list[GroupTask]:
    done = done_epochs(store, job.job_id)
    n_classes = catalog.dataset_size(store, job.dataset_id)[1]
    ds = settings.datasets_dir / job.dataset_id
    threads = settings.threads_per_worker(cnn=spec.trains_cnn(np.load(ds / "X.npy", mmap_mode="r").ndim))
    tasks = []
    for model, group, members, last in units:
        resume = done.get((model, group))
        if resume is not None and resume >= last:
            continue
        ckpt = settings.checkpoint_dir(job.job_id, model, group)
        tasks.append(GroupTask(job_id=job.job_id, attempt=attempt, model=model, group=group, members=members,
                               spec=spec if model != "adaboost" else job.spec, adaboost=job.adaboost,
                               x_path=str(ds / "X.npy"), y_path=str(ds / "y.npy"), n_classes=n_classes,
                               checkpoint_dir=str(ckpt), resume_after=resume,
                               n_threads=threads, exclude=exclude if model == "round2" else ()))
    return tasks


def run_job(store: Store, settings: Settings, job_id: str, executor: Executor,
            progress: Progress | None = None, stopping: threading.Event | None = None,
            cancel: threading.Event | None = None, run_by: str = "cli") -> jobs.Job:
    """Train (or resume), score and finish one job; returns its final row.

    stopping: pause (the job stays running and resumes at restart); cancel: stop and mark the job
    cancelled (set by `curate score`'s SIGINT/SIGTERM handler; `retry` resumes it)."""
    attempt = jobs.start_attempt(store, job_id, run_by)
    job = jobs.get_job(store, job_id, owner=jobs.owner_of(store, job_id))
    tasks = build_tasks(store, settings, job, attempt)
    timer = _epoch_timer(store, settings, job, executor)
    total = [job.epochs_total]  # grows if the low-noise pass is decided

    def on_records(task: GroupTask, records: list[EpochRecord]) -> None:
        done = commit_epochs(store, task, records)
        for record in records if task.model == "ensemble" else ():
            estimate = timer.observe(task.group, record.epoch, record.seconds)
            if estimate is not None:  # stored before progress is reported, so a follower sees both at once
                jobs.set_estimate(store, job_id, attempt, estimate.seconds, estimate.note)
        if progress is not None:
            progress(job_id, done, total[0])

    def should_stop() -> bool:
        return any(e is not None and e.is_set() for e in (stopping, cancel)) or \
            jobs.status_of(store, job_id) != "running"

    try:
        finished = executor.run(tasks, on_records, should_stop)
        if finished and job.spec.rounds == 2:
            finished = executor.run(build_round2_tasks(store, settings, job, attempt), on_records, should_stop)
        elif finished and (first := low_noise_first_pass(store, job)) is not None:
            total[0] = _start_low_noise_pass(store, job, attempt, first, timer.last)
            finished = executor.run(build_low_noise_tasks(store, settings, job, attempt), on_records, should_stop)
        if not finished:
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


def _start_low_noise_pass(store: Store, job: jobs.Job, attempt: int, first: ExampleScores,
                          estimate: Estimate | None) -> int:
    """Count the pass's epochs in the job's total, say why it trains again (once, not again on resume)
    and add the pass to the time estimate; returns the new epochs_total."""
    low = job.spec.low_noise_spec()
    pass_epochs = low.n_epochs
    total = len(job.spec.member_groups()) * job.spec.n_epochs + len(low.member_groups()) * pass_epochs
    if job.epochs_total >= total:  # a resumed job decided it already
        return job.epochs_total
    n = len(first.mislabel_score)
    sigma, p_min, p_max = job.spec.low_noise_jumpout or (0.0, 0.0, 0.0)
    message = (f"the first pass estimates {first.estimated_n_errors} label errors ({first.estimated_n_errors / n:.1%}), "
               f"under {job.spec.low_noise_pass_below:.0%}: training the ensemble again under the weaker Jumpout row "
               f"(sigma {sigma:g}, p {p_min:g}-{p_max:g}), {low.n_members} members x {pass_epochs} epochs; the flags "
               "come from that pass")
    jobs.set_epochs_total(store, job.job_id, attempt, total, message)
    if estimate is not None:
        share = low.n_members * pass_epochs / (job.spec.n_members * job.spec.n_epochs)  # training ~ members x epochs
        jobs.set_estimate(store, job.job_id, attempt, (1 + share) * estimate.seconds,
                          f"{estimate.note}; x{1 + share:g}: the low-noise pass trains {low.n_members} members x "
                          f"{pass_epochs} epochs more")
    return total


def _epoch_timer(store: Store, settings: Settings, job: jobs.Job, executor: Executor) -> EpochTimer:
    """The job's estimate from its first timed epochs (service/engine/estimate.py): groups run
    max_workers at once on the local executor, all at once on a cluster."""
    n_groups = len(job.spec.member_groups())
    kind = catalog.get_dataset(store, job.dataset_id, owner=job.owner).kind
    shape = job_shape(job.spec.n_epochs * job.spec.rounds, n_groups, getattr(executor, "max_workers", n_groups),
                      job.spec.model, kind,
                      job.spec.device, cuda_device_count(),
                      remote_gpus=settings.ray_gpus_per_group > 0 or settings.ray_members_per_gpu > 0)
    return EpochTimer(shape)


def _finish_if_cancelled(store: Store, job_id: str, attempt: int) -> None:
    """cancelling -> cancelled (finish() is fenced by the attempt, so a newer attempt is untouched)."""
    if jobs.status_of(store, job_id) == "cancelling":
        jobs.finish(store, job_id, attempt, "cancelled")

