"""The engine: one store, one executor, the jobs of one data directory.

`curate score` without a server runs it in-process; `curate serve` (REST) will host the same
object. Only this process opens the DuckDB file.
"""

import threading
from pathlib import Path

from models.spec import AdaBoostSpec, TrainSpec
from scoring.scores import ScoringOptions
from service.store import catalog
from service.store import jobs
from service.ingest.files import DatasetManifest
from service.engine.executors.local import Executor, LocalExecutor
from service.limits import check_device
from service.engine.runner import Progress, run_job
from service.settings import Settings
from service.store.db import Store


class Engine:
    def __init__(self, settings: Settings, executor: Executor | None = None, run_by: str = "cli") -> None:
        self.settings = settings
        self.run_by = run_by  # server | cli: recorded on each job it runs (a server resumes only its own)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.db_path, settings.duckdb_memory_limit)
        self.executor = executor or LocalExecutor(max_workers=settings.max_workers)
        self.stopping = threading.Event()  # set on shutdown: running jobs pause, resume at restart
        self.cancelling = threading.Event()  # set by a signal to `curate score`: its job is cancelled
        catalog.clean_orphans(self.store, settings)

    def scoring_options(self) -> ScoringOptions:
        return ScoringOptions(easy_at_least=self.settings.easy_at_least, hard_below=self.settings.hard_below)

    def add_dataset(self, path: Path, *, label_column: str = "label", resize: tuple[int, int] | None = None,
                    name: str | None = None, owner: str | None = None) -> DatasetManifest:
        return catalog.add_dataset(self.store, self.settings, path, name=name, label_column=label_column,
                                   resize=resize, owner=owner)

    def ingest(self, path: Path, *, label_column: str = "label", resize: tuple[int, int] | None = None,
               name: str | None = None, owner: str | None = None) -> tuple[DatasetManifest, bool]:
        """(manifest, reused): the same upload stored before is reused, not stored twice."""
        return catalog.ingest(self.store, self.settings, path, name=name, label_column=label_column,
                              resize=resize, owner=owner)

    def submit(self, dataset_id: str, spec: TrainSpec, adaboost: AdaBoostSpec, owner: str | None = None) -> str:
        if isinstance(self.executor, LocalExecutor):  # a Ray cluster's devices are its own to check
            check_device(spec)
        return jobs.create_job(self.store, dataset_id, spec, self.scoring_options(), adaboost, owner,
                               max_job_memory=self.settings.max_job_memory)

    def warm_up_workers(self) -> None:
        """Get the executor's workers ready before the first job (a no-op for executors without it)."""
        warm_up = getattr(self.executor, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def run(self, job_id: str, progress: Progress | None = None) -> jobs.Job:
        return run_job(self.store, self.settings, job_id, self.executor, progress, self.stopping, self.cancelling,
                       self.run_by)

    def interrupted_jobs(self) -> list[str]:
        """Jobs left running by a crash: they resume from their last committed epoch."""
        with self.store.reader() as cur:
            return [r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE status = 'running' "
                                              "ORDER BY created_at").fetchall()]

    def cancel_interrupted_cli_jobs(self) -> list[str]:
        """Jobs an in-process `curate score` left running when it died: cancelled, not resumed."""
        return jobs.cancel_interrupted(self.store, "cli")

    def close(self) -> None:
        self.store.close()
