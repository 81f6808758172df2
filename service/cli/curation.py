"""The curation loop from the terminal: review, reviews, apply, diff, datasets (same engine in-process
or through a server, as every `curate` command)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from service.cli.main import ApiKey, DataDir, Url, _backend, app, cli_errors, out
from service.errors import CurationError
from service.read.dataset_export import EXPORT_FORMATS
from service.schemas import AcceptSuggested, DatasetOut, DecisionIn, DiffOut


def _decision(example_id: int | None, relabel: str | None, keep: bool, exclude: bool, clear: bool,
              note: str | None) -> DecisionIn:
    chosen = [name for name, on in (("relabel", relabel is not None), ("keep", keep), ("exclude", exclude),
                                    ("clear", clear)) if on]
    if example_id is None or len(chosen) != 1:
        raise CurationError("give EXAMPLE_ID and exactly one of --relabel LABEL, --keep, --exclude, --clear "
                            "(or --accept-suggested with --top K or --min-score S)")
    return DecisionIn(example_id=example_id, action=chosen[0], label=relabel, note=note)


@app.command()
@cli_errors
def review(
    job_id: str,
    example_id: Annotated[int | None, typer.Argument(help="the example to decide on")] = None,
    relabel: Annotated[str | None, typer.Option(help="the right label (a class name)")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="the given label is right")] = False,
    exclude: Annotated[bool, typer.Option("--exclude", help="drop the example from the next version")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="undo: no decision")] = False,
    note: Annotated[str | None, typer.Option(help="why")] = None,
    accept_suggested: Annotated[bool, typer.Option("--accept-suggested", help="relabel flagged examples to "
                                                   "their suggested label (with --top or --min-score)")] = False,
    top: Annotated[int | None, typer.Option(help="--accept-suggested: the K worst flagged")] = None,
    min_score: Annotated[float | None, typer.Option(help="--accept-suggested: every flagged at or above")] = None,
    data_dir: DataDir = None, url: Url = None, api_key: ApiKey = None,
) -> None:
    """Decide on one example (relabel, keep, exclude, clear) or accept the suggested labels in bulk."""
    with _backend(data_dir, url, api_key) as backend:
        if accept_suggested:
            if (top is None) == (min_score is None):
                raise CurationError("--accept-suggested needs exactly one of --top K or --min-score S")
            result = backend.accept_suggested(job_id, AcceptSuggested(top=top, min_score=min_score))
        else:
            result = backend.review(job_id, [_decision(example_id, relabel, keep, exclude, clear, note)])
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    out.print(f"job {job_id}: {result.n_applied} decision(s) stored; now {counts}", highlight=False)


@app.command("reviews")
@cli_errors
def list_reviews(job_id: str, action: Annotated[str | None, typer.Option(help="relabel | keep | exclude")] = None,
                 data_dir: DataDir = None, url: Url = None, api_key: ApiKey = None) -> None:
    """The current decisions of a job, by example_id: example_id, source, given label, action, label, by, note."""
    with _backend(data_dir, url, api_key) as backend:
        items = backend.reviews(job_id, action)
    out.print("example_id\tsource\tgiven_label\taction\tlabel\tdecided_by\tnote", highlight=False)
    for r in items:
        out.print(f"{r.example_id}\t{r.source}\t{r.given_label}\t{r.action}\t{r.label or ''}\t{r.decided_by}\t"
                  f"{r.note or ''}", markup=False, highlight=False)


@app.command()
@cli_errors
def apply(
    job_id: str,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="also export the version to this file")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv | parquet | npz | zip (default: as uploaded)")] = None,
    data_dir: DataDir = None, url: Url = None, api_key: ApiKey = None,
) -> None:
    """Create a corrected version of the job's dataset from its decisions; last line: dataset <id>."""
    if fmt is not None and fmt not in EXPORT_FORMATS:
        raise CurationError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    with _backend(data_dir, url, api_key) as backend:
        version = backend.create_version(backend.job(job_id).dataset_id, job_id)
        if output is not None:
            backend.export_dataset(version.dataset_id, fmt, output)
    _print_version(version, output)


def _print_version(v: DatasetOut, output: Path | None) -> None:
    applied = ", ".join(f"{k} {n}" for k, n in (v.applied or {}).items())
    out.print(f"version {v.version} of {v.root_id} (from {v.parent_id}): {v.n_examples} examples; applied {applied}",
              highlight=False)
    if output is not None:
        out.print(f"wrote {output}", markup=False, highlight=False)
    out.print(f"dataset {v.dataset_id}", highlight=False)


@app.command("diff")
@cli_errors
def diff_jobs(job_a: str, job_b: str, data_dir: DataDir = None, url: Url = None, api_key: ApiKey = None) -> None:
    """JOB_B (on a corrected version) against JOB_A: errors, split transitions, suspects, per class."""
    with _backend(data_dir, url, api_key) as backend:
        d = backend.diff(job_a, job_b)
    print_diff(d)


def print_diff(d: DiffOut) -> None:
    e, s = d.estimated_errors, d.suspects
    out.print(f"job {d.job_a} (dataset {d.dataset_a}) -> job {d.job_b} (dataset {d.dataset_b}): "
              f"estimated label errors {e['a']} -> {e['b']}; relabelled {d.relabelled}, excluded {d.excluded}",
              highlight=False)
    out.print(f"suspects: resolved {s.resolved}, still suspect {s.still_suspect}, new {s.new}", highlight=False)
    splits = Table(title="split in a (rows) -> split in b (columns)")
    for col in ("", *d.splits):
        splits.add_column(col)
    for name, row in d.splits.items():
        splits.add_row(name, *(str(n) for n in row.values()))
    out.print(splits)
    per_class = Table(title="per class")
    for col in ("class", "suspects a", "suspects b", "resolved", "new"):
        per_class.add_column(col)
    for c in d.per_class:
        per_class.add_row(c.class_, str(c.suspects_a), str(c.suspects_b), str(c.resolved), str(c.new))
    out.print(per_class)


datasets_app = typer.Typer(help="Stored datasets and versions: list them (no subcommand) or remove one.",
                           invoke_without_command=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback()
@cli_errors
def list_datasets(ctx: typer.Context, data_dir: DataDir = None, url: Url = None, api_key: ApiKey = None) -> None:
    """Every dataset, newest first: id, name, kind, n, version, parent."""
    if ctx.invoked_subcommand is not None:
        return
    with _backend(data_dir, url, api_key) as backend:
        found = backend.datasets()
    table = Table()
    for col in ("dataset_id", "name", "kind", "n", "version", "parent"):
        table.add_column(col, no_wrap=col in ("dataset_id", "parent"))
    for ds in found:
        table.add_row(ds.dataset_id, ds.name, ds.kind, str(ds.n_examples), str(ds.version), ds.parent_id or "-")
    out.print(table)


@datasets_app.command("rm")
@cli_errors
def remove_dataset(dataset_id: str, tree: Annotated[bool, typer.Option(help="also every version made from it")] = False,
                   data_dir: DataDir = None, url: Url = None, api_key: ApiKey = None) -> None:
    """Remove a dataset with its finished jobs (refused while versions derive from it, unless --tree)."""
    with _backend(data_dir, url, api_key) as backend:
        backend.delete_dataset(dataset_id, tree=tree)
    out.print(f"removed dataset {dataset_id}{' and its versions' if tree else ''}", highlight=False)
