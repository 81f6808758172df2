"""The CLI's two doors to the same engine: in-process (LocalBackend) or a running server over
HTTP (RemoteBackend). Both return the API's schemas, so the CLI prints the same thing."""

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from models.spec import AdaBoostSpec, TrainSpec
from service.store import catalog
from service.read import diff
from service.store import jobs
from service.read import queries
from service.store import reviews
from service.read import dataset_export
from service.store import versions
from service.engine.engine import Engine
from service.errors import CurationError, JobCancelled
from service.engine.explain import explain_example
from service.read.exports import write_table
from service.schemas import (AcceptSuggested, AdaBoostOut, AttributionOut, DatasetOut, DecisionIn, DiffOut, ExampleOut,
                             JobOut, ReviewOut, ReviewResult)
from service.settings import Settings

ProgressFn = Callable[[int, int], None]  # (epochs_done, epochs_total)


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

    def add_dataset(self, path: Path, label_column: str, resize: tuple[int, int] | None,
                    name: str | None = None) -> DatasetOut:
        m, reused = self.engine.ingest(path, label_column=label_column, resize=resize, name=name)
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
        rows = queries.export_rows(self.engine.store, job_id, what)
        write_table(rows, fmt, output)
        return rows.num_rows


class RemoteBackend:
    def __init__(self, url: str, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(60.0))

    def close(self) -> None:
        self.client.close()

    def warm_up(self) -> None:
        """Nothing to do: the server's scheduler keeps its workers ready."""

    def _json(self, response: httpx.Response) -> object:
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise CurationError(f"{message} (HTTP {response.status_code})")
        return response.json() if response.content else None

    def add_dataset(self, path: Path, label_column: str, resize: tuple[int, int] | None,
                    name: str | None = None) -> DatasetOut:
        if path.is_dir():
            raise CurationError(f"{path}: upload a .zip of the image folder to a server, not a directory")
        if not path.exists():
            raise CurationError(f"{path}: does not exist")
        params = {"filename": path.name, "label_column": label_column, "name": name or path.name}
        if resize:
            params["resize"] = f"{resize[0]}x{resize[1]}"
        with path.open("rb") as f:
            r = self.client.post("/datasets", params=params, content=f,
                                 headers={"Content-Type": "application/octet-stream"})
        return DatasetOut.model_validate(self._json(r))

    def dataset(self, dataset_id: str) -> DatasetOut:
        return DatasetOut.model_validate(self._json(self.client.get(f"/datasets/{dataset_id}")))

    def datasets(self) -> list[DatasetOut]:
        return [DatasetOut.model_validate(d) for d in self._json(self.client.get("/datasets"))]  # type: ignore[union-attr]

    def delete_dataset(self, dataset_id: str, tree: bool = False) -> None:
        self._json(self.client.delete(f"/datasets/{dataset_id}", params={"tree": tree}))

    def review(self, job_id: str, decisions: list[DecisionIn]) -> ReviewResult:
        body = {"decisions": [d.model_dump(exclude_none=True) for d in decisions]}
        return ReviewResult.model_validate(self._json(self.client.post(f"/jobs/{job_id}/reviews", json=body)))

    def accept_suggested(self, job_id: str, accept: AcceptSuggested) -> ReviewResult:
        body = {"accept_suggested": accept.model_dump(exclude_none=True)}
        return ReviewResult.model_validate(self._json(self.client.post(f"/jobs/{job_id}/reviews", json=body)))

    def reviews(self, job_id: str, action: str | None = None) -> list[ReviewOut]:
        items: list[ReviewOut] = []
        while True:
            params = {"limit": 1000, "offset": len(items), **({"action": action} if action else {})}
            page = self._json(self.client.get(f"/jobs/{job_id}/reviews", params=params))
            batch = [ReviewOut.model_validate(i) for i in page["items"]]  # type: ignore[index]
            items.extend(batch)
            if not batch or len(items) >= page["total"]:  # type: ignore[index]
                return items

    def create_version(self, dataset_id: str, from_job: str) -> DatasetOut:
        r = self.client.post(f"/datasets/{dataset_id}/versions", json={"from_job": from_job})
        return DatasetOut.model_validate(self._json(r))

    def export_dataset(self, dataset_id: str, fmt: str | None, output: Path) -> Path:
        params = {"format": fmt} if fmt else {}
        self._download(f"/datasets/{dataset_id}/export", params, output)
        return output

    def diff(self, job_a: str, job_b: str) -> DiffOut:
        return DiffOut.model_validate(self._json(self.client.get(f"/jobs/{job_a}/diff/{job_b}")))

    def _download(self, url: str, params: dict[str, str], output: Path) -> None:
        """Stream a file answer to `output` (via output.partial)."""
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".partial")
        with self.client.stream("GET", url, params=params) as r:
            if r.status_code >= 400:
                r.read()
                self._json(r)
            with tmp.open("wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
        tmp.replace(output)

    def submit(self, dataset_id: str, spec: TrainSpec, adaboost: AdaBoostSpec) -> str:
        body = {"dataset_id": dataset_id, "spec": spec.model_dump(), "adaboost": adaboost.model_dump()}
        return str(self._json(self.client.post("/jobs", json=body))["job_id"])  # type: ignore[index]

    def wait(self, job_id: str, progress: ProgressFn) -> JobOut:
        """Follow the job's server-sent events until it finishes."""
        while True:
            try:
                with self.client.stream("GET", f"/jobs/{job_id}/events", timeout=None) as r:
                    if r.status_code >= 400:
                        r.read()
                        self._json(r)
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            data = json.loads(line[6:])
                            if "epochs_done" in data:
                                progress(data["epochs_done"], data["epochs_total"])
                break
            except httpx.TransportError:
                time.sleep(1.0)  # server restarting: it resumes the job, follow again
        return self.job(job_id)

    def job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._json(self.client.get(f"/jobs/{job_id}")))

    def retry(self, job_id: str) -> None:
        self._json(self.client.post(f"/jobs/{job_id}/retry"))

    def cancel(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._json(self.client.delete(f"/jobs/{job_id}")))

    def jobs(self) -> list[JobOut]:
        return [JobOut.model_validate(j) for j in self._json(self.client.get("/jobs"))]  # type: ignore[union-attr]

    def examples(self, job_id: str, *, suspected_only: bool = False, order: str = "example_id",
                 limit: int | None = None) -> list[ExampleOut]:
        path = f"/jobs/{job_id}/mislabeled" if suspected_only else f"/jobs/{job_id}/examples"
        items: list[ExampleOut] = []
        offset = 0
        while limit is None or len(items) < limit:
            page_size = 1000 if limit is None else min(1000, limit - len(items))
            params = {"limit": page_size, "offset": offset}
            if not suspected_only:
                params["order"] = order  # type: ignore[assignment]
            page = self._json(self.client.get(path, params=params))
            batch = [ExampleOut.model_validate(i) for i in page["items"]]  # type: ignore[index]
            items.extend(batch)
            offset += len(batch)
            if not batch or offset >= page["total"]:  # type: ignore[index]
                break
        return items

    def adaboost(self, job_id: str) -> AdaBoostOut:
        return AdaBoostOut.model_validate(self._json(self.client.get(f"/jobs/{job_id}/adaboost")))

    def attribution(self, job_id: str, example_id: int, method: str, target: str) -> AttributionOut:
        r = self.client.get(f"/jobs/{job_id}/examples/{example_id}/attribution",
                            params={"method": method, "target": target})
        return AttributionOut.model_validate(self._json(r))

    def export(self, job_id: str, what: str, fmt: str, output: Path) -> int:
        self._download(f"/jobs/{job_id}/export", {"what": what, "format": fmt}, output)
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
        if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
            return url
    except (ValueError, KeyError, httpx.HTTPError):
        return None
    return None


def open_backend(settings: Settings, url: str | None, api_key: str | None) -> LocalBackend | RemoteBackend:
    """--url, else a server running on this data dir, else the engine in this process."""
    url = url or find_server(settings)
    return RemoteBackend(url, api_key) if url else LocalBackend(settings)

