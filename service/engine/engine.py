"""The engine: one store, one executor, one result cache, the jobs of one data directory.

`curate score` without a server runs it in-process; `curate serve` (REST) hosts the same object.
Only this process opens the DuckDB file. Every write that a front door asks for goes through an
Engine method, so that the writes which change a succeeded job's answers also drop them from the
result cache (`cache`), and a job that succeeds calls the `on_succeeded` hooks (the app wires
them to cache warming; the engine never imports the read stage).
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from models.spec import AdaBoostSpec, TrainSpec, cpu_has_native_bf16
from scoring.scores import ScoringOptions
from service.engine.executors.local import Executor, LocalExecutor
from service.engine.runner import Progress, run_job
from service.ingest.files import DatasetManifest
from service.ingest.options import IngestOptions
from service.limits import check_device, cuda_device_count
from service.result_cache import ResultCache
from service.schemas import AcceptSuggested, DecisionIn, ReviewResult
from service.settings import Settings
from service.store import catalog, jobs, reviews
from service.store.db import Store

log = logging.getLogger("curate.engine")


class Engine:
    def __init__(self, settings: Settings, executor: Executor | None = None, run_by: str = "cli") -> None:
        self.settings = settings
        self.run_by = run_by  # server | cli: recorded on each job it runs (a server resumes only its own)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.db_path, settings.duckdb_memory_limit)
        self.executor = executor or LocalExecutor(max_workers=settings.max_workers)
        self.stopping = threading.Event()  # set on shutdown: running jobs pause, resume at restart
        self.cancelling = threading.Event()  # set by a signal to `curate score`: its job is cancelled
        self.cache = ResultCache(int(settings.result_cache_mb * 1024**2))  # succeeded jobs' answers
        self.on_succeeded: list[Callable[[jobs.Job], None]] = []  # called with each job that succeeds
        catalog.clean_orphans(self.store, settings)

    def scoring_options(self) -> ScoringOptions:
        return ScoringOptions(easy_at_least=self.settings.easy_at_least, hard_below=self.settings.hard_below)

    def add_dataset(self, path: Path, options: IngestOptions = IngestOptions(), *, name: str | None = None,
                    owner: str | None = None) -> DatasetManifest:
        """Store PATH as a new dataset, read as `options` say (label column, resize, column roles, ...)."""
        manifest = catalog.add_dataset(self.store, self.settings, path, options, name=name, owner=owner)
        self.warm_up_workers()  # a job usually follows a stored dataset
        return manifest

    def ingest(self, path: Path, options: IngestOptions = IngestOptions(), *, name: str | None = None,
               owner: str | None = None) -> tuple[DatasetManifest, bool]:
        """(manifest, reused): the same upload with the same options stored before is reused, not stored twice."""
        stored = catalog.ingest(self.store, self.settings, path, options, name=name, owner=owner)
        self.warm_up_workers()  # a job usually follows a stored dataset
        return stored

    def submit(self, dataset_id: str, spec: TrainSpec, adaboost: AdaBoostSpec, owner: str | None = None) -> str:
        if isinstance(self.executor, LocalExecutor):  # a Ray cluster's devices are its own to check
            check_device(spec)
        job_id = jobs.create_job(self.store, dataset_id, spec, self.scoring_options(), adaboost, owner,
                                 max_job_memory=self.settings.max_job_memory, on_gpu=self.trains_on_gpu(spec),
                                 cpu_bf16=self.trains_with_cpu_bf16(spec))
        self.warm_up_workers()
        return job_id

    def trains_on_gpu(self, spec: TrainSpec) -> bool:
        """Whether a job of `spec` will train on a GPU: its device, or for "auto" this host's CUDA
        devices (local executor) or the GPUs the Ray settings ask for."""
        if spec.device != "auto":
            return spec.device.startswith("cuda")
        if isinstance(self.executor, LocalExecutor):
            return cuda_device_count() > 0
        return self.settings.ray_gpus_per_group > 0 or self.settings.ray_members_per_gpu > 0

    def trains_with_cpu_bf16(self, spec: TrainSpec) -> bool:
        """Whether a CPU job of `spec` trains where the CPU has native bf16 (precision auto then
        takes bf16 for a CNN): this host's CPU under the local executor; a Ray cluster's CPUs are
        not known here, so its CPU jobs keep fp32."""
        return isinstance(self.executor, LocalExecutor) and not self.trains_on_gpu(spec) and cpu_has_native_bf16()

    def warm_up_workers(self) -> None:
        """Get the executor's workers ready before a job needs them (a no-op for executors without
        it): called when a dataset is stored, a job submitted or a server starts with jobs to run,
        not when a server starts idle. The local fork server imports torch (about 4 s of CPU, 800 MB
        held): a server that only serves results never starts it."""
        warm_up = getattr(self.executor, "warm_up", None)
        if warm_up is not None:
            warm_up()

    def run(self, job_id: str, progress: Progress | None = None) -> jobs.Job:
        job = run_job(self.store, self.settings, job_id, self.executor, progress, self.stopping, self.cancelling,
                      self.run_by)
        if job.status == "succeeded":
            for hook in self.on_succeeded:
                try:
                    hook(job)
                except Exception:  # a hook only warms caches: the job's results stand
                    log.exception("an on_succeeded hook failed for job %s", job_id)
        return job

    def cancel(self, job_id: str, owner: str | None = None) -> jobs.Job:
        """Ask a queued or running job to stop (its runner stops within seconds)."""
        return jobs.request_cancel(self.store, job_id, owner)

    def delete_dataset(self, dataset_id: str, owner: str | None = None, tree: bool = False) -> list[str]:
        """catalog.delete_dataset, then the removed jobs' cached answers."""
        return catalog.delete_dataset(self.store, self.settings, dataset_id, owner, tree=tree,
                                      on_job_removed=self.cache.forget_job)

    def record_decisions(self, job_id: str, decisions: list[DecisionIn], owner: str | None = None,
                         decided_by: str = reviews.LOCAL) -> ReviewResult:
        """Store review decisions; the job's cached rows (which carry `decision`) are dropped."""
        result = reviews.record_decisions(self.store, job_id, decisions, owner, decided_by)
        self.cache.forget_job(job_id)
        return result

    def accept_suggested(self, job_id: str, accept: AcceptSuggested, owner: str | None = None,
                         decided_by: str = reviews.LOCAL) -> ReviewResult:
        result = reviews.accept_suggested(self.store, job_id, accept, owner, decided_by)
        self.cache.forget_job(job_id)
        return result

    def interrupted_jobs(self) -> list[str]:
        """Jobs left running by a crash: they resume from their last committed epoch."""
        return jobs.job_ids(self.store, ("running",))

    def cancel_interrupted_cli_jobs(self) -> list[str]:
        """Jobs an in-process `curate score` left running when it died: cancelled, not resumed."""
        return jobs.cancel_interrupted(self.store, "cli")

    def close(self) -> None:
        self.store.close()
