"""Training dynamics from the user's own models (curate.Recorder, POST /jobs/recorded): each logged
epoch of logits becomes the same per-epoch record a Curate worker sends (models.predictions.EpochRecord),
is committed by the same function (service.store.results.commit_epoch), and the finished job is scored
by the same finalize step as Curate's own ensemble (service.engine.finalize.finalize_job).

Model k of the user is member k of the job. One model gives AUM-style scores (the mislabel score is the
rank of the negated mean margin, Pleiss et al.); several give the ensemble's consistency x margin score.
Epoch 0 is the model before training; when it was not logged, finish() commits a chance-level placeholder
(every member predicting another class than the given one, margin 0, probability 1/K): no per-example
score reads epoch 0 except first_learned_epoch, which then starts at 1.
"""

import dataclasses
import logging

import numpy as np
import numpy.typing as npt

from models.predictions import EpochRecord
from models.spec import GroupTask
from service.engine.engine import Engine
from service.engine.finalize import finalize_job
from service.errors import Conflict, InvalidSpec
from service.store import catalog, jobs, recorded
from service.store.results import StaleAttempt, commit_epoch

log = logging.getLogger("curate.recorded")

MAX_MODELS = 512  # TrainSpec.n_members' bound
MAX_EPOCH = 1000  # TrainSpec.n_epochs' bound


def epoch_record(logits: npt.NDArray[np.floating],  # (n_examples, n_classes), rows in example_id order
                 given: npt.NDArray[np.integer],  # (n_examples,)
                 model: int, epoch: int) -> EpochRecord:
    """The worker's per-epoch record of one model from its logits: argmax, softmax probability of the
    given label, margin (given-label logit minus the best other logit), softmax sums (in-sample)."""
    z = np.asarray(logits, dtype=np.float64)
    n = len(given)
    rows = np.arange(n)
    shifted = z - z.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    given_logit = z[rows, given]
    others = z.copy()
    others[rows, given] = -np.inf
    return EpochRecord(
        group=model, epoch=epoch, members=(model,),
        predicted_label=z.argmax(axis=1).astype(np.int16)[None, :],
        label_prob=probs[rows, given].astype(np.float32)[None, :],
        margin=(given_logit - others.max(axis=1)).astype(np.float32)[None, :],
        held_out=np.zeros((1, n), dtype=bool),
        prob_sum=probs.astype(np.float32), heldout_prob_sum=np.zeros_like(probs, dtype=np.float32),
        train_loss=float("nan"), seconds=0.0)


def placeholder_epoch0(given: npt.NDArray[np.integer], n_classes: int, model: int) -> EpochRecord:
    """Epoch 0 of a model whose untrained state was not logged: chance level, never the given label."""
    n = len(given)
    uniform = np.full((n, n_classes), 1.0 / n_classes, dtype=np.float32)
    return EpochRecord(
        group=model, epoch=0, members=(model,),
        predicted_label=((np.asarray(given) + 1) % n_classes).astype(np.int16)[None, :],
        label_prob=uniform[:, 0][None, :].copy(), margin=np.zeros((1, n), dtype=np.float32),
        held_out=np.zeros((1, n), dtype=bool), prob_sum=uniform, heldout_prob_sum=np.zeros_like(uniform),
        train_loss=float("nan"), seconds=0.0)


def create(engine: Engine, dataset_id: str, n_models: int = 1, n_epochs: int = 1, owner: str | None = None) -> str:
    """A recorded job on a stored dataset; n_models x n_epochs is the expected size (for progress)."""
    if not 1 <= n_models <= MAX_MODELS:
        raise InvalidSpec(f"n_models must be 1..{MAX_MODELS}, got {n_models}")
    if not 1 <= n_epochs <= MAX_EPOCH:
        raise InvalidSpec(f"n_epochs must be 1..{MAX_EPOCH}, got {n_epochs}")
    return recorded.create_recorded_job(engine.store, dataset_id, n_models, n_epochs, engine.scoring_options(), owner)


def _recording_job(engine: Engine, job_id: str, owner: str | None) -> jobs.Job:
    job = jobs.get_job(engine.store, job_id, owner)
    if job.status != recorded.RECORDING:
        raise Conflict(f"job {job_id} is {job.status}; epochs can be logged only while it is recording")
    return job


def log_epoch(engine: Engine, job_id: str, model: int, epoch: int, logits: npt.NDArray[np.floating],
              owner: str | None = None) -> int:
    """Commit one model's logits of one epoch, (n_examples, n_classes) in example_id order (logging the
    same model and epoch again replaces it); returns the job's epochs done."""
    job = _recording_job(engine, job_id, owner)
    n_examples, n_classes = catalog.dataset_size(engine.store, job.dataset_id)
    if not 0 <= model < MAX_MODELS:
        raise InvalidSpec(f"model must be 0..{MAX_MODELS - 1}, got {model}")
    if not 0 <= epoch <= MAX_EPOCH:
        raise InvalidSpec(f"epoch must be 0..{MAX_EPOCH}, got {epoch}")
    if logits.shape != (n_examples, n_classes):
        raise InvalidSpec(f"logits {logits.shape} must be (n_examples, n_classes) = ({n_examples}, {n_classes}) "
                          f"for dataset {job.dataset_id}")
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        raise InvalidSpec(f"logits of example {int(np.argmax(bad))} (model {model}, epoch {epoch}) are not finite")
    given = catalog.given_labels(engine.store, job.dataset_id)
    return _commit(engine, job, epoch_record(logits, given, model, epoch))


def _commit(engine: Engine, job: jobs.Job, record: EpochRecord) -> int:
    n_classes = record.prob_sum.shape[1]
    task = GroupTask(job_id=job.job_id, attempt=job.attempt, model="ensemble", group=record.group,
                     members=record.members, spec=job.spec, adaboost=job.adaboost, x_path="", y_path="",
                     n_classes=n_classes)
    try:
        return commit_epoch(engine.store, task, record, live_status=recorded.RECORDING)
    except StaleAttempt:  # finished or cancelled between the check and the commit
        raise Conflict(f"job {job.job_id} is {jobs.status_of(engine.store, job.job_id)}; "
                       "epochs can be logged only while it is recording") from None


def _check_complete(job_id: str, logged: dict[int, set[int]]) -> tuple[int, int, bool]:
    """(n_models, n_epochs, has_epoch0) of what was logged; InvalidSpec naming what is missing."""
    if not logged:
        raise InvalidSpec(f"job {job_id}: no epochs were logged; log at least epoch 1 of one model")
    n_models = max(logged) + 1
    missing_models = sorted(set(range(n_models)) - set(logged))
    if missing_models:
        raise InvalidSpec(f"job {job_id}: models are numbered 0..{n_models - 1}, but model "
                          f"{missing_models[0]} logged nothing")
    n_epochs = max(max(epochs) for epochs in logged.values())
    if n_epochs < 1:
        raise InvalidSpec(f"job {job_id}: only epoch 0 (before training) was logged; log trained epochs 1, 2, ...")
    for model, epochs in sorted(logged.items()):
        gaps = sorted(set(range(1, n_epochs + 1)) - epochs)
        if gaps:
            raise InvalidSpec(f"job {job_id}: model {model} lacks epoch {gaps[0]} of 1..{n_epochs} "
                              f"(every model logs every epoch; {len(gaps)} missing)")
    with_zero = {0 in epochs for epochs in logged.values()}
    if len(with_zero) > 1:
        raise InvalidSpec(f"job {job_id}: some models logged epoch 0 (before training) and others not; "
                          "log it for all or none")
    return n_models, n_epochs, with_zero == {True}


def finish(engine: Engine, job_id: str, owner: str | None = None) -> jobs.Job:
    """Score what was logged with the ensemble's scoring (margin alone for a single model) and mark the
    job succeeded. An incomplete log (a model missing an epoch) is refused and the job keeps recording."""
    recorded.start_finishing(engine.store, job_id, owner)
    job = jobs.get_job(engine.store, job_id, owner)
    try:
        n_models, n_epochs, has_zero = _check_complete(job_id, recorded.logged_epochs(engine.store, job_id))
    except InvalidSpec:
        recorded.reopen(engine.store, job_id)
        raise
    try:
        job = _score(engine, job, n_models, n_epochs, has_zero)
    except Exception as exc:  # recorded on the job, never lost (as the runner does)
        jobs.finish(engine.store, job_id, job.attempt, "failed", f"{type(exc).__name__}: {exc}")
        raise
    for hook in engine.on_succeeded:  # the same hooks Engine.run calls (cache warming)
        try:
            hook(job)
        except Exception:
            log.exception("an on_succeeded hook failed for recorded job %s", job_id)
    return job


def _score(engine: Engine, job: jobs.Job, n_models: int, n_epochs: int, has_zero: bool) -> jobs.Job:
    store = engine.store
    if not has_zero:
        given = catalog.given_labels(store, job.dataset_id)
        n_classes = catalog.dataset_size(store, job.dataset_id)[1]
        with store.transaction() as cur:  # commit_epoch refuses a job that is not in its live status
            jobs.add_event(cur, job.job_id, "epoch0", "epoch 0 not logged: a chance-level placeholder")
        for model in range(n_models):
            record = placeholder_epoch0(given, n_classes, model)
            task = GroupTask(job_id=job.job_id, attempt=job.attempt, model="ensemble", group=model, members=(model,),
                             spec=job.spec, adaboost=job.adaboost, x_path="", y_path="", n_classes=n_classes)
            commit_epoch(store, task, record, live_status=recorded.FINISHING)
    spec = job.spec.model_copy(update={"n_members": n_models, "n_epochs": n_epochs})
    scoring = job.scoring if n_models > 1 else dataclasses.replace(job.scoring, mislabel_method="margin")
    recorded.set_recorded_shape(store, job.job_id, spec, scoring, n_models * n_epochs)
    job = dataclasses.replace(job, spec=spec, scoring=scoring)
    finalize_job(store, engine.settings, job)
    with store.transaction() as cur:
        jobs.update_summary(cur, job.job_id, {"recorded": {"n_models": n_models, "n_epochs": n_epochs,
                                                           "epoch0_logged": has_zero,
                                                           "mislabel_method": scoring.mislabel_method}})
    jobs.finish(store, job.job_id, job.attempt, "succeeded")
    return jobs.get_job(store, job.job_id, owner=job.owner)
