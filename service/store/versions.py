"""Corrected dataset versions: a job's current decisions applied to its dataset as a new,
immutable dataset (relabels change y, excludes drop the row), and any dataset exported in the
form it was uploaded in.

A version is written like any ingested dataset (service.ingest.files.save_dataset: files into a temp
folder, fsynced, renamed; then its rows), with `parent_id`, `version`, `root_id` and the applied
decision counts in `datasets`, and per row the `parent_example_id`, the `root_example_id` (the
row of the original upload) and the decision applied to it. Nothing ever rewrites the parent.
"""

import io
import re
import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from service.read import queries

from service.store import reviews
from service.read.exports import neutralise_formulas
from service.store.catalog import insert_dataset_row
from service.ingest.files import load_arrays, load_manifest, load_sources, save_dataset
from service.errors import CurationError, InvalidDataset
from service.ingest.formats import LoadedDataset
from service.ingest.formats import _check_classes as check_classes
from service.schemas import DatasetOut
from service.settings import Settings
from service.store.db import Store, insert_arrow, to_json

EXPORT_FORMATS = ("csv", "parquet", "npz", "zip")
MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "npz": "application/octet-stream",
         "zip": "application/zip"}
_UPLOADED_AS = {"csv": "csv", "parquet": "parquet", "npz": "npz", "zip": "zip", "image_folder": "zip"}
_BATCH = 65_536  # rows per written batch: an export holds one batch of a table in memory, not the table


class InvalidVersion(CurationError):
    status_code = 422
    code = "invalid_version"


def create_version(store: Store, settings: Settings, dataset_id: str, from_job: str,
                   owner: str | None = None) -> DatasetOut:
    """A new dataset from `dataset_id` with the current decisions of `from_job` (a succeeded job on it)."""
    parent = queries.get_dataset(store, dataset_id, owner)
    job = queries.finished_job(store, from_job, owner)
    if job.dataset_id != dataset_id:
        raise InvalidVersion(f"job {from_job} scored dataset {job.dataset_id}, not {dataset_id}: a version "
                             "applies the decisions of a job on the dataset it is made from")
    decided = reviews.current_decisions(store, from_job, owner)
    X, y = load_arrays(settings.datasets_dir, dataset_id)
    action = np.full(len(y), "", dtype=object)
    action[decided.example_id] = decided.action
    new_y = np.asarray(y, dtype=np.int64).copy()
    relabel = decided.action == "relabel"
    new_y[decided.example_id[relabel]] = decided.label[relabel]
    kept = np.flatnonzero(action != "exclude")
    try:  # the rule every upload meets: at least 2 classes, each with at least 2 examples
        check_classes(f"a version of {dataset_id}", new_y[kept], list(parent.class_names), "example")
    except InvalidDataset as exc:
        raise InvalidVersion(f"{exc.message} (clear some decisions of job {from_job})") from None
    manifest = load_manifest(settings.datasets_dir, dataset_id)
    sources = load_sources(settings.datasets_dir, dataset_id)
    loaded = LoadedDataset(np.ascontiguousarray(X[kept]), new_y[kept], list(parent.class_names),
                           [sources[i] for i in kept.tolist()], kind=manifest.kind,  # type: ignore[arg-type]
                           feature_names=manifest.feature_names)
    applied = {a: int((decided.action == a).sum()) for a in reviews.DECIDED}
    new_id = uuid.uuid4().hex[:12]
    root_id = parent.root_id or dataset_id
    try:
        # files first, then rows, in one turn of the single writer: the version number cannot be taken twice
        with store.transaction() as cur:
            root_name, label_column = cur.execute("SELECT name, coalesce(label_column, 'label') FROM datasets "
                                                  "WHERE dataset_id = ?", [root_id]).fetchone()
            version = int(cur.execute("SELECT coalesce(max(version), 0) + 1 FROM datasets "
                                      "WHERE coalesce(root_id, dataset_id) = ?", [root_id]).fetchone()[0])
            roots = _root_examples(cur, dataset_id)[kept]
            lineage = {"parent_id": dataset_id, "version": version, "root_id": root_id, "from_job": from_job,
                       "applied": applied, "parent_example_id": kept.tolist()}
            saved = save_dataset(loaded, settings.datasets_dir, new_id, f"{root_name} v{version}",
                                 manifest.source_format, extra_json={"lineage.json": lineage})
            insert_dataset_row(cur, saved, owner, parent_id=dataset_id, version=version, root_id=root_id,
                               applied=to_json(applied), label_column=label_column)
            insert_arrow(cur, "examples", _version_rows(loaded.sources, new_y[kept], kept, roots, action[kept]),
                         {"dataset_id": new_id})
    except BaseException:
        shutil.rmtree(settings.datasets_dir / new_id, ignore_errors=True)
        raise
    return queries.get_dataset(store, new_id, owner)


def _root_examples(cur: duckdb.DuckDBPyConnection, dataset_id: str) -> np.ndarray:  # (n_examples,) int64
    """Per example of `dataset_id`, its row in the original upload."""
    return np.asarray(cur.execute("SELECT coalesce(root_example_id, example_id) AS r FROM examples "
                                  "WHERE dataset_id = ? ORDER BY example_id", [dataset_id]).fetchnumpy()["r"], np.int64)


def _version_rows(sources: list[str], y: np.ndarray, parents: np.ndarray, roots: np.ndarray,
                  actions: np.ndarray) -> pa.Table:
    return pa.table({"example_id": np.arange(len(y), dtype=np.int32), "source": pa.array(sources, pa.string()),
                     "given_label": y.astype(np.int32), "parent_example_id": parents.astype(np.int32),
                     "root_example_id": roots.astype(np.int32),
                     "action": pa.array(actions, pa.string(), mask=actions == "")})


# --- export ---------------------------------------------------------------------------------------

def export_dataset(store: Store, settings: Settings, dataset_id: str, fmt: str | None, path: Path,
                   owner: str | None = None) -> Path:
    """Write the dataset to `path` (via `path.partial`) as CSV/Parquet (features, the label column by
    class name, `curate_action`), NPZ (X, y, class_names) or, for images, a zip with each image in
    its class folder under its original name (as PNG). `fmt` None: the form it was uploaded in."""
    ds = queries.get_dataset(store, dataset_id, owner)
    fmt = fmt or _UPLOADED_AS[ds.source_format]
    if fmt not in EXPORT_FORMATS:
        raise InvalidVersion(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    if (fmt == "zip") != (ds.kind == "image") and fmt != "npz":
        raise InvalidVersion(f"dataset {dataset_id} holds {ds.kind} examples: export it as "
                             f"{'zip or npz' if ds.kind == 'image' else 'csv, parquet or npz'}, not {fmt}")
    X, y = load_arrays(settings.datasets_dir, dataset_id)
    with store.reader() as cur:
        cols = cur.sql("SELECT source, action FROM examples WHERE dataset_id = ? ORDER BY example_id",
                       params=[dataset_id]).to_arrow_table()
        label_column = cur.execute("SELECT coalesce(label_column, 'label') FROM datasets WHERE dataset_id = "
                                   "coalesce((SELECT root_id FROM datasets WHERE dataset_id = ?), ?)",
                                   [dataset_id, dataset_id]).fetchone()[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        if fmt == "npz":
            with tmp.open("wb") as f:
                np.savez(f, X=X, y=np.asarray(y, np.int64), class_names=np.array(ds.class_names))
        elif fmt == "zip":
            _write_image_zip(tmp, X, y, ds.class_names, cols.column("source").to_pylist())
        else:
            names = load_manifest(settings.datasets_dir, dataset_id).feature_names or []
            _write_rows(tmp, fmt, X, y, ds.class_names, names, label_column, cols.column("action"))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _write_rows(tmp: Path, fmt: str, X: np.ndarray, y: np.ndarray, class_names: list[str], feature_names: list[str],
                label_column: str, actions: pa.ChunkedArray) -> None:
    """CSV or Parquet, one batch of rows at a time."""
    classes = pa.array(class_names, pa.string())
    schema = pa.schema([*(pa.field(n, pa.float32()) for n in feature_names), pa.field(label_column, pa.string()),
                        pa.field("curate_action", pa.string())])
    writer = pacsv.CSVWriter(tmp, schema) if fmt == "csv" else pq.ParquetWriter(tmp, schema)
    try:
        for start in range(0, len(y), _BATCH):
            part = slice(start, start + _BATCH)
            block = np.asarray(X[part], dtype=np.float32)
            columns = [*(block[:, j] for j in range(block.shape[1])), classes.take(pa.array(y[part])),
                       actions.slice(start, _BATCH).combine_chunks().cast(pa.string())]
            table = pa.Table.from_arrays(columns, schema=schema)
            writer.write_table(neutralise_formulas(table) if fmt == "csv" else table)
    finally:
        writer.close()


def _write_image_zip(tmp: Path, X: np.ndarray, y: np.ndarray, class_names: list[str], sources: list[str]) -> None:
    """Each image (C, H, W) uint8 as PNG at <class>/<its path below its old class folder>."""
    from PIL import Image

    folders = [_safe_part(c) for c in class_names]
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, source in enumerate(sources):
            img = np.asarray(X[i])
            pil = Image.fromarray(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1))
            buf = io.BytesIO()
            pil.save(buf, format="PNG")
            zf.writestr(f"{folders[int(y[i])]}/{_below_class(source, i)}", buf.getvalue())


def _below_class(source: str, i: int) -> str:
    """'cat/sub/001.jpg' -> 'sub/001.png' (the bytes written are PNG); 'index 7' -> 'index_7.png'."""
    parts = PurePosixPath(source).parts
    if source.startswith("index ") or len(parts) < 2:
        return f"{_safe_part(source.replace(' ', '_')) or f'example_{i}'}.png"
    rel = PurePosixPath(*(_safe_part(p) for p in parts[1:]))
    return str(rel if rel.suffix.lower() == ".png" else rel.with_suffix(".png"))


def _safe_part(name: str) -> str:
    cleaned = re.sub(r"[/\\\x00]", "_", name)
    return "_" if cleaned in ("", ".", "..") else cleaned


def export_name(ds: DatasetOut, fmt: str | None) -> str:
    """The download's file name: <name>-v<version>.<format>."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(ds.name).stem) or ds.dataset_id
    return f"{stem}-v{ds.version}.{fmt or _UPLOADED_AS[ds.source_format]}"

