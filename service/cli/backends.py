"""The CLI's two doors to the same engine: in-process (LocalBackend) or a running server over
HTTP (RemoteBackend). Both return the API's schemas, so the CLI prints the same thing."""

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from models.spec import AdaBoostSpec, TrainSpec
from service.cli.client import Client, CurateError, ProgressFn, Reconnect
from service.engine.engine import Engine
from service.engine.explain import explain_example
from service.errors import JobCancelled
from service.ingest.options import IngestOptions
from service.read import dataset_export, diff, queries
from service.read.exports import write_table
from service.schemas import (
    AcceptSuggested,
    AdaBoostOut,
    AttributionOut,
    DatasetOut,
    DecisionIn,
    DiffOut,
    ExampleOut,
    JobOut,
    ReviewOut,
    ReviewResult,
)
from service.settings import Settings
from service.store import jobs, reviews, versions


@contextmanager
def cancel_on_signals(cancel: threading.Event) -> Iterator[list[str]]:
    """While inside: SIGINT or SIGTERM sets `cancel` (the running job stops within seconds and is
    marked cancelled) and is named in the yielded list; a second one raises KeyboardInterrupt.
    Only the main thread can own signal handlers; elsewhere this does nothing."""
    caught: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, _frame: object) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(signal.Signals(signum).name)
        cancel.set()

    cancel.clear()
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class LocalBackend:
    def __init__(self, settings: Settings) -> None:
        self.engine = Engine(settings)
        self.engine.cancel_interrupted_cli_jobs()  # a `curate score` that died left them: cancelled, retry resumes

    def close(self) -> None:
        self.engine.close()

    def warm_up(self) -> None:
        """A job will run here soon: start the workers' fork server while the data is ingested."""
        self.engine.warm_up_workers()

    def add_dataset(self, path: Path, options: IngestOptions = IngestOptions(), name: str | None = None) -> DatasetOut:
        m, reused = self.engine.ingest(path, options, name=name)
        return queries.get_dataset(self.engine.store, m.dataset_id).model_copy(update={"reused": reused})

    def dataset(self, dataset_id: str) -> DatasetOut:
        return queries.get_dataset(self.engine.store, dataset_id)

    def datasets(self) -> list[DatasetOut]:
        return queries.list_datasets(self.engine.store)

    def delete_dataset(self, dataset_id: str, tree: bool = False) -> None:
        self.engine.delete_dataset(dataset_id, tree=tree)

    def review(self, job_id: str, decisions: list[DecisionIn]) -> ReviewResult:
        return self.engine.record_decisions(job_id, decisions)

    def accept_suggested(self, job_id: str, accept: AcceptSuggested) -> ReviewResult:
        return self.engine.accept_suggested(job_id, accept)

    def reviews(self, job_id: str, action: str | None = None) -> list[ReviewOut]:
        return reviews.review_page(self.engine.store, job_id, action=action, limit=2**31).items

    def create_version(self, dataset_id: str, from_job: str) -> DatasetOut:
        return versions.create_version(self.engine.store, self.engine.settings, dataset_id, from_job)

    def export_dataset(self, dataset_id: str, fmt: str | None, output: Path) -> Path:
        return dataset_export.export_dataset(self.engine.store, self.engine.settings, dataset_id, fmt, output)

    def diff(self, job_a: str, job_b: str) -> DiffOut:
        return diff.diff_jobs(self.engine.store, job_a, job_b)

    def submit(self, dataset_id: str, spec: TrainSpec, adaboost: AdaBoostSpec) -> str:
        return self.engine.submit(dataset_id, spec, adaboost)

    def wait(self, job_id: str, progress: ProgressFn) -> JobOut:
        """Run the job here (or resume it) and return its final state. SIGINT or SIGTERM cancels it
        (JobCancelled, with how to resume), after its workers have stopped."""
        with cancel_on_signals(self.engine.cancelling) as caught:
            job = self.engine.run(job_id, progress=lambda _, d, t: progress(d, t))
        if caught and job.status == "cancelled":
            raise JobCancelled(f"job {job_id} cancelled by {caught[0]} at {job.epochs_done}/{job.epochs_total} "
                               f"epochs; resume it with: curate retry {job_id}")
        return jobs.job_out(job)

    def cancel(self, job_id: str) -> JobOut:
        return jobs.job_out(jobs.cancel_now(self.engine.store, job_id))

    def job(self, job_id: str) -> JobOut:
        return jobs.job_out(jobs.get_job(self.engine.store, job_id))

    def retry(self, job_id: str) -> None:
        jobs.retry(self.engine.store, job_id)

    def jobs(self) -> list[JobOut]:
        return [jobs.job_out(j) for j in jobs.list_jobs(self.engine.store)]

    def examples(self, job_id: str, *, suspected_only: bool = False, order: str = "example_id",
                 limit: int | None = None) -> list[ExampleOut]:
        rows = queries.score_rows(self.engine.store, job_id, suspected_only=suspected_only, order=order, limit=limit)
        return [ExampleOut(**r) for r in rows.to_pylist()]

    def adaboost(self, job_id: str) -> AdaBoostOut:
        return queries.adaboost_comparison(self.engine.store, job_id)

    def attribution(self, job_id: str, example_id: int, method: str, target: str) -> AttributionOut:
        return explain_example(self.engine.store, self.engine.settings, job_id, example_id, method, target)

    def export(self, job_id: str, what: str, fmt: str, output: Path) -> int:
        rows = queries.export_rows(self.engine.store, job_id, what, datasets_dir=self.engine.settings.datasets_dir)
        write_table(rows, fmt, output)
        return rows.num_rows


class RemoteBackend:
    """The CLI's verbs on a server, through the one HTTP client (service.cli.client.Client, which is
    also curate.Client): this class only adapts the CLI's call shapes to it."""

    def __init__(self, url: str, api_key: str | None = None) -> None:
        self.api = Client(url, api_key)
        self.client = self.api.http  # the raw httpx client, for the pages the API has no JSON twin of (report)

    def close(self) -> None:
        self.api.close()

    def warm_up(self) -> None:
        """Nothing to do: the server's scheduler keeps its workers ready."""

    def add_dataset(self, path: Path, options: IngestOptions = IngestOptions(), name: str | None = None) -> DatasetOut:
        return self.api.upload(path, options, name=name)

    def dataset(self, dataset_id: str) -> DatasetOut:
        return self.api.dataset(dataset_id)

    def datasets(self) -> list[DatasetOut]:
        return self.api.datasets()

    def delete_dataset(self, dataset_id: str, tree: bool = False) -> None:
        self.api.delete_dataset(dataset_id, tree=tree)

    def review(self, job_id: str, decisions: list[DecisionIn]) -> ReviewResult:
        return self.api.review(job_id, decisions)

    def accept_suggested(self, job_id: str, accept: AcceptSuggested) -> ReviewResult:
        return self.api.review(job_id, accept_suggested=accept)

    def reviews(self, job_id: str, action: str | None = None) -> list[ReviewOut]:
        return self.api.reviews(job_id, action)

    def create_version(self, dataset_id: str, from_job: str) -> DatasetOut:
        return self.api.create_version(dataset_id, from_job)

    def export_dataset(self, dataset_id: str, fmt: str | None, output: Path) -> Path:
        return self.api.export_dataset(dataset_id, output, format=fmt)

    def diff(self, job_a: str, job_b: str) -> DiffOut:
        return self.api.diff(job_a, job_b)

    def submit(self, dataset_id: str, spec: TrainSpec, adaboost: AdaBoostSpec) -> str:
        return self.api.submit(dataset_id, spec, adaboost=adaboost).job_id

    def wait(self, job_id: str, progress: ProgressFn) -> JobOut:
        """Follow the job's server-sent events until it finishes (bounded reconnects: Client.events)."""
        return self.api.wait(job_id, progress)

    def job(self, job_id: str) -> JobOut:
        return self.api.job(job_id)

    def retry(self, job_id: str) -> None:
        self.api.retry(job_id)

    def cancel(self, job_id: str) -> JobOut:
        return self.api.cancel(job_id)

    def jobs(self) -> list[JobOut]:
        return self.api.jobs()

    def examples(self, job_id: str, *, suspected_only: bool = False, order: str = "example_id",
                 limit: int | None = None) -> list[ExampleOut]:
        if suspected_only:
            return self.api.mislabeled(job_id, limit=limit)
        return self.api.scores(job_id, order=order, limit=limit)  # type: ignore[arg-type]

    def adaboost(self, job_id: str) -> AdaBoostOut:
        return self.api.adaboost(job_id)

    def attribution(self, job_id: str, example_id: int, method: str, target: str) -> AttributionOut:
        return self.api.explain(job_id, example_id, method, target)

    def export(self, job_id: str, what: str, fmt: str, output: Path) -> int:
        self.api.export(job_id, output, what=what, format=fmt)
        return _count_rows(output, fmt)


def _count_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path).num_rows
    return sum(1 for _ in path.open())


def find_server(settings: Settings) -> str | None:
    """The URL in <data_dir>/server.json if that server answers /health."""
    marker = settings.data_dir / "server.json"
    if not marker.exists():
        return None
    try:
        url = json.loads(marker.read_text())["url"]
        with Client(url, timeout_s=2.0, reconnect=Reconnect(max_attempts=1)) as client:
            client.health()
        return url
    except (ValueError, KeyError, TypeError, CurateError):
        return None


def open_backend(settings: Settings, url: str | None, api_key: str | None) -> LocalBackend | RemoteBackend:
    """--url, else a server running on this data dir, else the engine in this process."""
    url = url or find_server(settings)
    return RemoteBackend(url, api_key) if url else LocalBackend(settings)

