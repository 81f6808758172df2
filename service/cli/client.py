"""`Client`: a running Curate server from Python, over its REST API (httpx). The CLI's HTTP backend
and `curate.Client` are this one class: one client, not two.

It lives in the CLI stage because that is the one stage of service/ allowed to sit on top of every
other (the API's schemas, the engine's errors) while nothing in service/ imports the `curate`
package; `curate` re-exports it. Every answer is a pydantic model of service/schemas.py (the OpenAPI
contract), and every failure is one exception type, `CurateError`, carrying the server's error
code, the HTTP status and the server's message.

Progress comes over the job's server-sent events (httpx-sse). A dropped stream is followed again
with a bounded, backed-off reconnect: at most `Reconnect.max_attempts` tries in a row and at most
`Reconnect.deadline_s` seconds without a working stream, then CurateError(code="unreachable").
A server that restarts mid-job resumes it, and the client picks the stream up again.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt
from httpx_sse import SSEError, connect_sse
from pydantic import ValidationError

from models.spec import AdaBoostSpec, TrainSpec
from service.errors import CurationError
from service.ingest.options import IngestOptions
from service.schemas import (
    AcceptSuggested,
    AdaBoostOut,
    AttributionOut,
    DatasetOut,
    DecisionIn,
    DiffOut,
    DynamicsOut,
    EpochLogged,
    ExampleOut,
    Health,
    JobOut,
    ReviewOut,
    ReviewResult,
)

ProgressFn = Callable[[int, int], None]  # (epochs_done, epochs_total)
PAGE = 1000  # rows per request of a paginated read (the server's default max_page_size)


class CurateError(CurationError):
    """Any failure of a Curate call: `code` is the server's error code (e.g. not_found, invalid_spec,
    job_not_finished), `status` the HTTP status (None when the server could not be reached: code
    unreachable), `message` the server's message naming the problem."""

    status_code = 400  # the class defaults (CurationError's contract); instances carry the real ones
    code = "curate_error"

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.status = status
        if status is not None:
            self.status_code = status

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no answer"
        return f"{self.message} ({self.code}, {where})"


@dataclass(frozen=True)
class Reconnect:
    """How `wait` follows a job's event stream again after it drops: never forever."""

    max_attempts: int = 8  # failed tries in a row (a try that delivers an event resets the count)
    first_delay_s: float = 0.5  # wait before the first retry; doubled after each failure
    max_delay_s: float = 8.0  # ... up to this
    deadline_s: float = 120.0  # the longest time without a working stream
    read_timeout_s: float = 60.0  # silence that counts as a dead stream (the server pings every 15 s)

    def delay(self, failures: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(failures - 1, 0))


def _problems(exc: ValidationError) -> str:
    """One line per field pydantic refused: name, problem, the value given."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']} (got {e.get('input')!r})"
                     for e in exc.errors())


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:300] or response.reason_phrase
    raise CurateError(message, code, response.status_code)


class Client:
    """A Curate server at `url` (e.g. http://127.0.0.1:8000); `api_key` once the server has keys.

    Use it as a context manager, or call `close()`. Methods raise CurateError only."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout_s: float = 60.0,
                 reconnect: Reconnect = Reconnect()) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.reconnect = reconnect
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer (None for an empty one); CurateError for an error answer or no answer."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CurateError(f"{self.url}: {type(exc).__name__}: {exc}", "unreachable") from None
        _raise_for(response)
        return response.json() if response.content else None

    def _pages(self, path: str, params: dict[str, Any], limit: int | None) -> list[dict]:
        items: list[dict] = []
        while limit is None or len(items) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(items))
            page = self._request("GET", path, params={**params, "limit": size, "offset": len(items)})
            items.extend(page["items"])
            if not page["items"] or len(items) >= page["total"]:
                break
        return items

    def _download(self, path: str, params: dict[str, str], output: Path) -> Path:
        """Stream a file answer to `output` (through output.partial, renamed when complete)."""
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".partial")
        try:
            with self.http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                with tmp.open("wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
            tmp.replace(output)
        except httpx.TransportError as exc:
            raise CurateError(f"{self.url}: {type(exc).__name__}: {exc}", "unreachable") from None
        finally:
            tmp.unlink(missing_ok=True)
        return output

    # --- datasets --------------------------------------------------------------------------

    def health(self) -> Health:
        return Health.model_validate(self._request("GET", "/health"))

    def upload(self, path: str | Path, options: IngestOptions | None = None, *, name: str | None = None,
               **option_values: Any) -> DatasetOut:
        """Store a .csv, .parquet, .jsonl, .npz or .zip (image or text folder) on the server, read as
        `options` say (or as IngestOptions(**option_values): label_column="cls", resize=(32, 32), ...);
        the same file with the same options again returns the stored dataset (`reused`)."""
        options = options or IngestOptions(**option_values)
        if options.weights is not None:
            raise CurateError("a weights file is read on the server, not uploaded: run `curate score --weights` "
                              "there, or put the weights in the server's torchvision cache", "invalid_dataset")
        path = Path(path)
        if path.is_dir():
            raise CurateError(f"{path}: upload a .zip of the image folder to a server, not a directory", "invalid_dataset")
        if not path.is_file():
            raise CurateError(f"{path}: does not exist", "invalid_dataset")
        params = [("filename", path.name), ("name", name or path.name), ("label_column", options.label_column)]
        params += [(k, v) for k, v in options.to_query() if k != "label_column"]
        with path.open("rb") as f:
            return DatasetOut.model_validate(self._request(
                "POST", "/datasets", params=params, content=f, headers={"Content-Type": "application/octet-stream"}))

    def dataset(self, dataset_id: str) -> DatasetOut:
        return DatasetOut.model_validate(self._request("GET", f"/datasets/{dataset_id}"))

    def datasets(self) -> list[DatasetOut]:
        return [DatasetOut.model_validate(d) for d in self._request("GET", "/datasets")]

    def delete_dataset(self, dataset_id: str, *, tree: bool = False) -> None:
        """Remove a dataset with its finished jobs (with tree=True also the versions made from it)."""
        self._request("DELETE", f"/datasets/{dataset_id}", params={"tree": tree})

    # --- jobs ------------------------------------------------------------------------------

    def submit(self, dataset_id: str, spec: TrainSpec | None = None, *, adaboost: AdaBoostSpec | bool = True,
               **spec_fields: Any) -> JobOut:
        """Queue a job: `spec`, or TrainSpec fields as keywords (n_members=4, n_epochs=10, ...)."""
        try:  # validated here as the server would, so a typo fails before anything is sent
            spec = TrainSpec(**{**(spec.model_dump() if spec else {}), **spec_fields})
        except ValidationError as exc:
            raise CurateError(f"invalid spec: {_problems(exc)}", "invalid_spec") from None
        ada = adaboost if isinstance(adaboost, AdaBoostSpec) else AdaBoostSpec(enabled=adaboost)
        body = {"dataset_id": dataset_id, "spec": spec.model_dump(), "adaboost": ada.model_dump()}
        return JobOut.model_validate(self._request("POST", "/jobs", json=body))

    def job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._request("GET", f"/jobs/{job_id}"))

    def jobs(self) -> list[JobOut]:
        return [JobOut.model_validate(j) for j in self._request("GET", "/jobs")]

    def cancel(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._request("DELETE", f"/jobs/{job_id}"))

    def retry(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._request("POST", f"/jobs/{job_id}/retry"))

    def events(self, job_id: str, deadline: float | None = None) -> Iterator[dict[str, Any]]:
        """The job's `progress` events (dicts with status, epochs_done, epochs_total, progress,
        eta_seconds, error) until it finishes; reconnects as `self.reconnect` allows. `deadline`:
        a time.monotonic() after which CurateError(code="timeout")."""
        rc = self.reconnect
        failures, lost_since = 0, None
        while True:
            problem = "the stream ended before the job did"
            try:
                read = rc.read_timeout_s if deadline is None else max(0.1, min(rc.read_timeout_s,
                                                                             deadline - time.monotonic()))
                with connect_sse(self.http, "GET", f"/jobs/{job_id}/events",
                                 timeout=httpx.Timeout(self.http.timeout.connect, read=read)) as source:
                    response = source.response
                    if 400 <= response.status_code < 500:
                        response.read()
                        _raise_for(response)
                    if response.status_code >= 500:
                        problem = f"HTTP {response.status_code}"
                    else:
                        for event in source.iter_sse():
                            failures, lost_since = 0, None
                            if event.event == "end":
                                return
                            if event.event == "progress":
                                yield event.json()
                            self._check_deadline(deadline, job_id)
            except (httpx.TransportError, SSEError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            self._check_deadline(deadline, job_id)
            failures += 1
            lost_since = lost_since or time.monotonic()
            if failures >= rc.max_attempts or time.monotonic() - lost_since > rc.deadline_s:
                raise CurateError(f"lost the event stream of job {job_id} at {self.url} and could not follow it "
                                  f"again ({failures} tries in {time.monotonic() - lost_since:.0f} s; last: "
                                  f"{problem})", "unreachable")
            time.sleep(rc.delay(failures))

    @staticmethod
    def _check_deadline(deadline: float | None, job_id: str) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            raise CurateError(f"job {job_id} did not finish in time (wait's timeout_s)", "timeout")

    def wait(self, job_id: str, progress: ProgressFn | bool = True, *, timeout_s: float | None = None) -> JobOut:
        """Follow the job until it finishes and return its final state (succeeded, failed or
        cancelled: look at `status`). progress: True draws a tqdm bar (notebook-aware), False none,
        or a function of (epochs_done, epochs_total)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with progress_bar(progress, f"job {job_id}") as report:
            for event in self.events(job_id, deadline):
                report(int(event["epochs_done"]), int(event["epochs_total"]))
        return self.job(job_id)

    # --- results ---------------------------------------------------------------------------

    def scores(self, job_id: str, *, split: Literal["easy", "intermediate", "hard"] | None = None,
               order: Literal["example_id", "mislabel_score", "accessibility", "consistency"] = "example_id",
               limit: int | None = None) -> list[ExampleOut]:
        """Per-example scores of a succeeded job (every row, or the first `limit`)."""
        params: dict[str, Any] = {"order": order, **({"split": split} if split else {})}
        return [ExampleOut.model_validate(i) for i in self._pages(f"/jobs/{job_id}/examples", params, limit)]

    def mislabeled(self, job_id: str, *, limit: int | None = None) -> list[ExampleOut]:
        """Suspected mislabels, worst first, with their suggested label."""
        return [ExampleOut.model_validate(i) for i in self._pages(f"/jobs/{job_id}/mislabeled", {}, limit)]

    def dynamics(self, job_id: str, n_bins: int = 20) -> DynamicsOut:
        return DynamicsOut.model_validate(self._request("GET", f"/jobs/{job_id}/dynamics", params={"n_bins": n_bins}))

    def adaboost(self, job_id: str) -> AdaBoostOut:
        return AdaBoostOut.model_validate(self._request("GET", f"/jobs/{job_id}/adaboost"))

    def explain(self, job_id: str, example_id: int, method: str = "bias", target: str = "given") -> AttributionOut:
        """Why the ensemble gives the example's logit for its given (or suggested) label."""
        return AttributionOut.model_validate(self._request(
            "GET", f"/jobs/{job_id}/examples/{example_id}/attribution", params={"method": method, "target": target}))

    def export(self, job_id: str, output: str | Path, *, what: str = "scores", format: str = "csv") -> Path:
        """Write scores / one split / the mislabeled rows to `output` (csv, parquet or jsonl)."""
        return self._download(f"/jobs/{job_id}/export", {"what": what, "format": format}, Path(output))

    # --- the curation loop -----------------------------------------------------------------

    def review(self, job_id: str, decisions: DecisionIn | list[DecisionIn] | None = None, *,
               accept_suggested: AcceptSuggested | None = None) -> ReviewResult:
        """Store decisions (relabel, keep, exclude, clear), or accept the suggested labels of the
        flagged examples (AcceptSuggested(top=K) or (min_score=S)); all or none."""
        if (decisions is None) == (accept_suggested is None):
            raise CurateError("give decisions or accept_suggested, not both and not neither", "invalid_review")
        if accept_suggested is not None:
            body: dict[str, Any] = {"accept_suggested": accept_suggested.model_dump(exclude_none=True)}
        else:
            listed = [decisions] if isinstance(decisions, DecisionIn) else list(decisions or [])
            body = {"decisions": [d.model_dump(exclude_none=True) for d in listed]}
        return ReviewResult.model_validate(self._request("POST", f"/jobs/{job_id}/reviews", json=body))

    def reviews(self, job_id: str, action: str | None = None) -> list[ReviewOut]:
        """The current decisions of a job, by example_id."""
        params = {"action": action} if action else {}
        return [ReviewOut.model_validate(i) for i in self._pages(f"/jobs/{job_id}/reviews", params, None)]

    def create_version(self, dataset_id: str, from_job: str) -> DatasetOut:
        return DatasetOut.model_validate(self._request("POST", f"/datasets/{dataset_id}/versions",
                                                       json={"from_job": from_job}))

    def apply(self, job_id: str) -> DatasetOut:
        """A corrected version of the job's dataset with its decisions applied (a new dataset)."""
        return self.create_version(self.job(job_id).dataset_id, job_id)

    def export_dataset(self, dataset_id: str, output: str | Path, *, format: str | None = None) -> Path:
        """The dataset as a file, in the form it was uploaded in (or csv, parquet, npz, zip)."""
        return self._download(f"/datasets/{dataset_id}/export", {"format": format} if format else {}, Path(output))

    def diff(self, job_a: str, job_b: str) -> DiffOut:
        """Job b (on a corrected version) against job a: errors, split moves, suspects, per class."""
        return DiffOut.model_validate(self._request("GET", f"/jobs/{job_a}/diff/{job_b}"))

    # --- recorded jobs (curate.Recorder against a server) ------------------------------------

    def create_recorded(self, dataset_id: str, *, n_models: int = 1, n_epochs: int = 1) -> JobOut:
        """Open a job that records the dynamics of your own models on a stored dataset."""
        body = {"dataset_id": dataset_id, "n_models": n_models, "n_epochs": n_epochs}
        return JobOut.model_validate(self._request("POST", "/jobs/recorded", json=body))

    def log_epoch(self, job_id: str, model: int, epoch: int,
                  logits: npt.NDArray[np.floating]) -> EpochLogged:  # (n_examples, n_classes), by example_id
        """Send one model's logits of one epoch for every example (rows in example_id order)."""
        raw = np.ascontiguousarray(logits, dtype="<f4").tobytes()
        return EpochLogged.model_validate(self._request(
            "POST", f"/jobs/{job_id}/epochs", params={"model": model, "epoch": epoch}, content=raw,
            headers={"Content-Type": "application/octet-stream"}))

    def finish_recorded(self, job_id: str) -> JobOut:
        """Score the logged epochs; the answer is the succeeded job."""
        return JobOut.model_validate(self._request("POST", f"/jobs/{job_id}/finish"))


class progress_bar:
    """A context manager giving report(done, total): a tqdm.auto bar, the caller's function, or nothing."""

    def __init__(self, progress: ProgressFn | bool, desc: str) -> None:
        self.progress, self.desc, self.bar = progress, desc, None

    def __enter__(self) -> ProgressFn:
        if callable(self.progress):
            return self.progress
        if not self.progress:
            return lambda done, total: None
        from tqdm.auto import tqdm

        bar = self.bar = tqdm(total=None, desc=self.desc, unit="epoch")

        def report(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.n = done
            bar.refresh()

        return report

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.close()
