"""`curate.score` and `curate.load`: Curate's ensemble on your data from Python, in this process.

The same path as `curate score PATH` without a server: the CLI's LocalBackend ingests the data,
submits the job to the engine and runs it here (forked training workers, one DuckDB store), so the
scores are the ones the CLI, the API and the dashboard show for the same data directory.
"""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from curate.data import data_source
from curate.errors import curate_errors
from curate.result import LocalSource, Result
from curate.session import SCRIPT_HINT, local_backend
from models.spec import AdaBoostSpec, TrainSpec
from service.cli.client import CurateError, _problems, progress_bar
from service.ingest.options import IngestOptions


@curate_errors
def score(
    data: Any,
    y: Any = None,
    *,
    label: str = "label",
    members: int = 8,
    epochs: int = 20,
    model: Literal["auto", "mlp", "cnn"] = "auto",
    dropout: Literal["jumpout", "dropout", "none"] = "jumpout",
    folds: int = 0,
    device: str = "auto",
    seed: int = 0,
    adaboost: bool = True,
    resize: tuple[int, int] | None = None,
    categorical: Sequence[str] = (),
    ignore: Sequence[str] = (),
    text_column: str | None = None,
    embedder: str = "auto",
    features: str | None = None,
    weights: str | Path | None = None,
    skip_unreadable: bool = False,
    name: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    **settings: Any,
) -> Result:
    """Train Curate's ensemble on the data, score every example and return the Result.

    data: arrays X (n, d) or images (n, H, W[, C]) with labels `y`; a pandas or polars DataFrame
    whose column `label` holds the labels (or with `y`); a path (.csv, .parquet, .npz, .zip or an
    image folder); or the id of a stored dataset (e.g. a version made by Result.apply()).
    resize, categorical, ignore, text_column, embedder, features, weights, skip_unreadable: how the
    data is read, as the options of `curate score` (README, Ingestion).
    members, epochs, model, dropout, folds, device, seed: as `curate score`; any other TrainSpec
    field as a keyword (e.g. hidden_units=64, batch_size=128). data_dir: where the DuckDB store
    and datasets live (default: a temporary directory removed when Python exits).
    progress: a tqdm bar (notebook-aware) while it trains. Ctrl-C cancels the job.
    """
    spec = _spec(members=members, epochs=epochs, model=model, dropout=dropout, folds=folds, device=device,
                 seed=seed, **settings)
    backend = local_backend(data_dir)
    backend.warm_up()  # the workers' fork server starts while the data is ingested
    with data_source(data, y, label=label) as source:
        if source.dataset_id is not None:
            ds = backend.dataset(source.dataset_id)
        else:
            assert source.path is not None
            options = IngestOptions(label_column=source.label_column, resize=resize, categorical=tuple(categorical),
                                    ignore=tuple(ignore), text_column=text_column, embedder=embedder,
                                    features=features, weights=None if weights is None else str(weights),
                                    skip_unreadable=skip_unreadable)
            ds = backend.add_dataset(source.path, options, name or source.path.name)
    job_id = backend.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=adaboost))
    with progress_bar(progress, f"curate {ds.n_examples} examples") as report:
        job = backend.wait(job_id, report)
    if job.status != "succeeded":
        hint = f" ({SCRIPT_HINT})" if "died with exit code" in (job.error or "") and _run_as_script() else ""
        raise CurateError(f"job {job_id} {job.status}: {job.error or ''}{hint}".strip(), f"job_{job.status}")
    return Result(LocalSource(backend), job_id)


@curate_errors
def load(job_id: str, data_dir: str | Path) -> Result:
    """The Result of a job scored before in `data_dir` (by curate.score, the CLI or a server that
    has stopped: only one process can hold the data directory)."""
    backend = local_backend(data_dir)
    backend.job(job_id)  # NotFound naming the job
    return Result(LocalSource(backend), job_id)


def _run_as_script() -> bool:
    return hasattr(sys.modules.get("__main__"), "__file__")


def _spec(*, members: int, epochs: int, model: str, dropout: str, folds: int, device: str, seed: int,
          **settings: Any) -> TrainSpec:
    """The TrainSpec of these keywords; an unknown or invalid one is a CurateError naming it."""
    try:
        return TrainSpec(n_members=members, n_epochs=epochs, model=model, dropout=dropout, n_folds=folds,
                         device=device, random_state=seed, **settings)
    except ValidationError as exc:
        raise CurateError(f"invalid settings: {_problems(exc)}", "invalid_spec") from None
