"""Rows of a recorded job: training dynamics that the user's own training loop logged (curate.Recorder,
POST /jobs/recorded), not Curate's ensemble.

A recorded job lives in status `recording` while epochs arrive: the scheduler never picks it up (it
runs only `queued` and `running` jobs) and a restart leaves it as it was, so logging can go on.
Each epoch of each model is committed like an ensemble member's (service.store.results.commit_epoch,
model `ensemble`, group = member = the model's index). `finish` moves it to `finishing`, which
refuses further epochs, then the engine scores it and marks it succeeded.
"""

import uuid

from models.spec import AdaBoostSpec, TrainSpec
from scoring.scores import ScoringOptions
from service.errors import Conflict, NotFound
from service.store.db import Store, to_json
from service.store.jobs import _COLUMNS, add_event

RECORDING = "recording"  # epochs may be logged
FINISHING = "finishing"  # scoring: no more epochs (left so by a crash mid-finish: finish again)
RUN_BY = "recorder"  # jobs.run_by of a recorded job: nobody trains it


def create_recorded_job(store: Store, dataset_id: str, n_models: int, n_epochs: int, scoring: ScoringOptions,
                        owner: str | None = None) -> str:
    """A new recorded job on the caller's dataset; `n_models` x `n_epochs` is only the expected size
    (progress), the logged epochs decide at finish. NotFound if the dataset is not the caller's."""
    job_id = uuid.uuid4().hex[:12]
    spec = TrainSpec(n_members=n_models, n_epochs=n_epochs, dropout="none")
    with store.transaction() as cur:
        found = cur.execute("SELECT 1 FROM datasets WHERE dataset_id = ? AND owner IS NOT DISTINCT FROM ?",
                            [dataset_id, owner]).fetchone()
        if found is None:
            raise NotFound(f"dataset {dataset_id} not found")
        cur.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 1, 0, ?, NULL, NULL, NULL, ?, "
                    "now(), now(), NULL)",
                    [job_id, dataset_id, spec.model_dump_json(), to_json(scoring.__dict__),
                     AdaBoostSpec(enabled=False).model_dump_json(), RECORDING, n_models * n_epochs, owner])
        cur.execute("UPDATE jobs SET run_by = ? WHERE job_id = ?", [RUN_BY, job_id])
        add_event(cur, job_id, RECORDING, f"recording from the user's training loop ({n_models} model(s) expected)")
    return job_id


def logged_epochs(store: Store, job_id: str) -> dict[int, set[int]]:
    """model index -> the epochs committed for it."""
    with store.reader() as cur:
        rows = cur.execute("SELECT DISTINCT member, epoch FROM predictions WHERE job_id = ? AND model = 'ensemble'",
                           [job_id]).fetchall()
    found: dict[int, set[int]] = {}
    for member, epoch in rows:
        found.setdefault(int(member), set()).add(int(epoch))
    return found


def start_finishing(store: Store, job_id: str, owner: str | None = None) -> None:
    """recording (or finishing, left by a crash) -> finishing; Conflict naming the status otherwise."""
    with store.transaction() as cur:
        row = cur.execute("SELECT status, run_by FROM jobs WHERE job_id = ? AND owner IS NOT DISTINCT FROM ?",
                          [job_id, owner]).fetchone()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        if row[1] != RUN_BY:
            raise Conflict(f"job {job_id} is not a recorded job (Curate trains it); only recorded jobs finish")
        if row[0] not in (RECORDING, FINISHING):
            raise Conflict(f"job {job_id} is {row[0]}; only a recording job can finish")
        cur.execute("UPDATE jobs SET status = ? WHERE job_id = ?", [FINISHING, job_id])
        add_event(cur, job_id, FINISHING, "scoring the recorded epochs")


def reopen(store: Store, job_id: str) -> None:
    """finishing -> recording: the logged epochs could not be scored (the caller says why); log more."""
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET status = ? WHERE job_id = ? AND status = ?", [RECORDING, job_id, FINISHING])


def set_recorded_shape(store: Store, job_id: str, spec: TrainSpec, scoring: ScoringOptions, epochs_done: int) -> None:
    """The spec and scoring options of what was logged (n_members = models, n_epochs = trained
    epochs), written before scoring so that every reader sees the job's real shape."""
    with store.transaction() as cur:
        cur.execute("UPDATE jobs SET spec = ?, scoring = ?, epochs_total = ?, epochs_done = ? WHERE job_id = ?",
                    [spec.model_dump_json(), to_json(scoring.__dict__), epochs_done, epochs_done, job_id])
