"""`curate`: score a dataset, list jobs, export scores and flag noisy labels from the terminal."""

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from models.spec import AdaBoostSpec, DropoutName, ModelName, TrainSpec
from service import jobs, queries
from service.engine import Engine
from service.errors import CurationError
from service.exports import FORMATS, write_table
from service.settings import Settings

app = typer.Typer(help="Curate: learning-dynamics scores, difficulty splits and suspected mislabels.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="data directory (default: $CURATE_DATA_DIR or ./data)")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def cli_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One line on stderr and exit 1 for every error a user can cause; no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CurationError as exc:
            err.print(f"error: {exc.message}", markup=False, highlight=False)
        except (ValueError, OSError) as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
        except Exception as exc:  # unexpected: still one line, the traceback with CURATE_DEBUG=1
            if os.environ.get("CURATE_DEBUG"):
                raise
            err.print(f"internal error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        raise typer.Exit(1)

    return wrapper


def _parse_resize(resize: str | None) -> tuple[int, int] | None:
    if resize is None:
        return None
    try:
        h, w = (int(v) for v in resize.lower().split("x"))
    except ValueError:
        raise CurationError(f"--resize must look like 32x32 (height x width), got {resize!r}") from None
    return h, w


def _run_with_progress(engine: Engine, job_id: str) -> jobs.Job:
    job = jobs.get_job(engine.store, job_id)
    columns = (TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} epochs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("train", total=job.epochs_total)
        return engine.run(job_id, progress=lambda _, done, total: bar.update(task, completed=done, total=total))


def _print_summary(engine: Engine, job: jobs.Job, top: int = 10) -> None:
    if job.status != "succeeded":
        raise CurationError(f"job {job.job_id} {job.status}: {job.error or ''}".strip())
    summary = job.summary or {}
    n = summary.get("n_examples", 0)
    counts = summary.get("split_counts", {})
    out.print(f"job [bold]{job.job_id}[/]  dataset {job.dataset_id}  {n} examples  "
              f"{job.spec.n_members} members x {job.spec.n_epochs} epochs ({job.spec.dropout})")
    out.print("splits: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("easy", "intermediate", "hard")))
    rate = (job.estimated_n_errors or 0) / max(n, 1)
    out.print(f"estimated label errors: {job.estimated_n_errors} ({rate:.1%}); flagged as suspected mislabels")
    if "adaboost" in summary:
        a = summary["adaboost"]
        out.print(f"AdaBoost agreement: Spearman {a.get('spearman_r')!s:.6}, Pearson {a.get('pearson_r')!s:.6}")
    _print_suspects(engine, job.job_id, top)


def _print_suspects(engine: Engine, job_id: str, top: int) -> None:
    rows = queries.score_rows(engine.store, job_id, suspected_only=True, order="mislabel_score", limit=top)
    table = Table(title=f"top {rows.num_rows} suspected mislabels")
    for col in ("example_id", "source", "given_label", "suggested_label", "mislabel_score"):
        table.add_column(col)
    for r in rows.to_pylist():
        table.add_row(str(r["example_id"]), r["source"], r["given_label"], r["suggested_label"],
                      f"{r['mislabel_score']:.3f}")
    out.print(table)


@app.command()
@cli_errors
def score(
    path: Annotated[Path, typer.Argument(help="image folder, .zip, .csv, .parquet or .npz")],
    members: Annotated[int, typer.Option(help="ensemble size N")] = TrainSpec().n_members,
    epochs: Annotated[int, typer.Option(help="training epochs")] = TrainSpec().n_epochs,
    model: Annotated[str, typer.Option(help="auto | mlp | cnn")] = "auto",
    dropout: Annotated[str, typer.Option(help="jumpout | dropout | none")] = "jumpout",
    folds: Annotated[int, typer.Option(help="cross-fitting folds (0 = none)")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    seed: Annotated[int, typer.Option(help="random_state of the whole run")] = 0,
    label_column: Annotated[str, typer.Option(help="label column of a CSV or Parquet file")] = "label",
    resize: Annotated[str | None, typer.Option(help="resize images to HxW, e.g. 32x32")] = None,
    adaboost: Annotated[bool, typer.Option(help="train the AdaBoost baseline too")] = True,
    top: Annotated[int, typer.Option(help="suspects to print")] = 10,
    data_dir: DataDir = None,
) -> None:
    """Ingest PATH, train the ensemble, score every example and print a summary."""
    spec = TrainSpec(n_members=members, n_epochs=epochs, model=model, dropout=dropout,  # type: ignore[arg-type]
                     n_folds=folds, device=device, random_state=seed)
    engine = Engine(_settings(data_dir))
    try:
        manifest = engine.add_dataset(path, label_column=label_column, resize=_parse_resize(resize))
        err.print(f"dataset {manifest.dataset_id}: {manifest.n_examples} {manifest.kind} examples, "
                  f"{manifest.n_classes} classes", highlight=False)
        job_id = engine.submit(manifest.dataset_id, spec, AdaBoostSpec(enabled=adaboost))
        _print_summary(engine, _run_with_progress(engine, job_id), top)
    finally:
        engine.close()


@app.command("jobs")
@cli_errors
def list_jobs(data_dir: DataDir = None) -> None:
    """List jobs, newest first."""
    engine = Engine(_settings(data_dir))
    try:
        table = Table()
        for col in ("job_id", "dataset_id", "status", "epochs", "est. errors", "created_at"):
            table.add_column(col)
        for j in jobs.list_jobs(engine.store):
            table.add_row(j.job_id, j.dataset_id, j.status, f"{j.epochs_done}/{j.epochs_total}",
                          str(j.estimated_n_errors if j.estimated_n_errors is not None else "-"), str(j.created_at)[:19])
        out.print(table)
    finally:
        engine.close()


@app.command()
@cli_errors
def show(job_id: str, top: Annotated[int, typer.Option(help="suspects to print")] = 10, data_dir: DataDir = None) -> None:
    """Show a job's status, splits, estimated errors and top suspects."""
    engine = Engine(_settings(data_dir))
    try:
        job = jobs.get_job(engine.store, job_id)
        if job.status != "succeeded":
            out.print(f"job {job.job_id}: {job.status}, {job.epochs_done}/{job.epochs_total} epochs")
            if job.error:
                out.print(job.error, markup=False)
            return
        _print_summary(engine, job, top)
    finally:
        engine.close()


@app.command()
@cli_errors
def export(
    job_id: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write")],
    what: Annotated[str, typer.Option(help="scores | easy | intermediate | hard | mislabeled")] = "scores",
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet | jsonl")] = "csv",
    data_dir: DataDir = None,
) -> None:
    """Export per-example scores, one split, or the suspected mislabels."""
    if fmt not in FORMATS:
        raise CurationError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    engine = Engine(_settings(data_dir))
    try:
        rows = queries.export_rows(engine.store, job_id, what)
        write_table(rows, fmt, output)
        err.print(f"wrote {rows.num_rows} rows to {output}", highlight=False)
    finally:
        engine.close()


@app.command()
@cli_errors
def flag(job_id: str, top: Annotated[int, typer.Option(help="how many to list (0 = all flagged)")] = 0,
         data_dir: DataDir = None) -> None:
    """List suspected mislabels, worst first: example_id, source, given and suggested label, score."""
    engine = Engine(_settings(data_dir))
    try:
        rows = queries.score_rows(engine.store, job_id, suspected_only=True, order="mislabel_score",
                                  limit=top or None)
        out.print("example_id\tsource\tgiven_label\tsuggested_label\tmislabel_score", highlight=False)
        for r in rows.to_pylist():
            out.print(f"{r['example_id']}\t{r['source']}\t{r['given_label']}\t{r['suggested_label']}\t"
                      f"{r['mislabel_score']:.4f}", markup=False, highlight=False)
    finally:
        engine.close()


@app.command()
@cli_errors
def demo(
    noise: Annotated[float, typer.Option(help="share of labels to flip")] = 0.1,
    members: Annotated[int, typer.Option(help="ensemble size N")] = TrainSpec().n_members,
    epochs: Annotated[int, typer.Option(help="training epochs")] = TrainSpec().n_epochs,
    seed: Annotated[int, typer.Option(help="seed of the planted noise and the run")] = 0,
    data_dir: DataDir = None,
) -> None:
    """Digits with planted label noise: score it and print precision/recall of the flags."""
    from service.demo import run_demo

    run_demo(_settings(data_dir), noise=noise, members=members, epochs=epochs, seed=seed, console=out,
             run=_run_with_progress, summary=_print_summary)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
