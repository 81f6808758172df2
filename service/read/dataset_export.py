"""Any dataset (an upload or a corrected version) written back out in the form it was uploaded in:
CSV/Parquet (a table's columns as uploaded, or the features of an NPZ; the label column by class name,
`curate_action`), NPZ (the encoded features), for images a zip with
each image in its class folder under its original name, and for text datasets (.txt files per class)
a zip of .txt files the same way, or CSV/Parquet of the texts themselves (`text`, label, action)."""

import io
import json
import re
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from service.errors import InvalidVersion
from service.fsutil import atomic_path
from service.ingest.columns import ACTION_COLUMN, labels_as
from service.ingest.files import load_arrays, load_manifest, load_pixels, table_path
from service.ingest.text import has_texts, load_texts
from service.read.exports import neutralise_formulas
from service.schemas import DatasetOut
from service.settings import Settings
from service.store.catalog import get_dataset
from service.store.db import Store

EXPORT_FORMATS = ("csv", "parquet", "npz", "zip")
MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet", "npz": "application/octet-stream",
         "zip": "application/zip"}
_UPLOADED_AS = {"csv": "csv", "parquet": "parquet", "npz": "npz", "zip": "zip", "image_folder": "zip",
                "jsonl": "csv"}
_BATCH = 65_536  # rows per written batch: an export holds one batch of a table in memory, not the table


def export_dataset(store: Store, settings: Settings, dataset_id: str, fmt: str | None, path: Path,
                   owner: str | None = None) -> Path:
    """Write the dataset to `path` (via `path.partial`) as CSV/Parquet (features, the label column by
    class name, `curate_action`), NPZ (X, y, class_names) or, for images, a zip with each image in
    its class folder under its original name (as PNG). `fmt` None: the form it was uploaded in."""
    ds = get_dataset(store, dataset_id, owner)
    fmt = fmt or _UPLOADED_AS[ds.source_format]
    if fmt not in EXPORT_FORMATS:
        raise InvalidVersion(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    allowed = formats_for(ds, settings.datasets_dir)
    if fmt not in allowed:
        raise InvalidVersion(f"dataset {dataset_id} holds {_noun(ds, settings.datasets_dir)}: export it as "
                             f"{', '.join(allowed[:-1])} or {allowed[-1]}, not {fmt}")
    X, y = load_arrays(settings.datasets_dir, dataset_id)
    with store.reader() as cur:
        cols = cur.sql("SELECT source, action FROM examples WHERE dataset_id = ? ORDER BY example_id",
                       params=[dataset_id]).to_arrow_table()
        label_column = cur.execute("SELECT coalesce(label_column, 'label') FROM datasets WHERE dataset_id = "
                                   "coalesce((SELECT root_id FROM datasets WHERE dataset_id = ?), ?)",
                                   [dataset_id, dataset_id]).fetchone()[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if fmt == "npz":
            with tmp.open("wb") as f:
                np.savez(f, X=X, y=np.asarray(y, np.int64), class_names=np.array(ds.class_names))
        elif fmt == "zip" and ds.kind == "image":
            _write_image_zip(tmp, X, y, ds.class_names, cols.column("source").to_pylist())
        elif fmt == "zip" and (pixels := load_pixels(settings.datasets_dir, dataset_id)) is not None:
            _write_image_zip(tmp, pixels, y, ds.class_names, cols.column("source").to_pylist())  # features
        elif has_texts(settings.datasets_dir, dataset_id):
            texts = load_texts(settings.datasets_dir, dataset_id) or []
            if fmt == "zip":
                _write_text_zip(tmp, texts, y, ds.class_names, cols.column("source").to_pylist())
            else:
                _write_text_rows(tmp, fmt, texts, y, ds.class_names, label_column, cols.column("action"))
        elif (uploaded := table_path(settings.datasets_dir, dataset_id)) is not None:
            _write_table_rows(tmp, fmt, uploaded, y, ds.class_names, label_column, cols.column("action"))
        else:
            names = load_manifest(settings.datasets_dir, dataset_id).feature_names or []
            _write_rows(tmp, fmt, X, y, ds.class_names, names, label_column, cols.column("action"))
    return path


def formats_for(ds: DatasetOut, datasets_dir: Path) -> tuple[str, ...]:
    """The export formats a dataset can take, the one it was uploaded in first."""
    if ds.kind == "image":
        return ("zip", "npz")
    if load_pixels(datasets_dir, ds.dataset_id) is not None:  # pretrained features: the photos, or the embeddings
        return ("zip", "csv", "parquet", "npz")
    if has_texts(datasets_dir, ds.dataset_id):
        return ("zip", "csv", "parquet", "npz")  # npz: the embeddings the ensemble trained on
    return ("csv", "parquet", "npz")


def _noun(ds: DatasetOut, datasets_dir: Path) -> str:
    if ds.kind == "image":
        return "image examples"
    if load_pixels(datasets_dir, ds.dataset_id) is not None:
        return "photos embedded by a pretrained model"
    return "texts" if has_texts(datasets_dir, ds.dataset_id) else f"{ds.kind} examples"


def _write_rows(tmp: Path, fmt: str, X: np.ndarray, y: np.ndarray, class_names: list[str], feature_names: list[str],
                label_column: str, actions: pa.ChunkedArray) -> None:
    """CSV or Parquet, one batch of rows at a time."""
    classes = pa.array(class_names, pa.string())
    schema = pa.schema([*(pa.field(n, pa.float32()) for n in feature_names), pa.field(label_column, pa.string()),
                        pa.field(ACTION_COLUMN, pa.string())])
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


def _write_table_rows(tmp: Path, fmt: str, uploaded: Path, y: np.ndarray, class_names: list[str],
                      label_column: str, actions: pa.ChunkedArray) -> None:
    """A table's columns as read at upload (table.parquet: category text, dates, gaps as empty cells),
    the label column replaced by the corrected class names and `curate_action` last, one batch at a
    time: the file uploads again to the same roles. Nested values (JSON Lines lists and objects) are
    written to a CSV as JSON text."""
    source = pq.ParquetFile(uploaded)
    fields = [f for f in source.schema_arrow if f.name not in (label_column, ACTION_COLUMN)]
    label_type = source.schema_arrow.field(label_column).type if label_column in source.schema_arrow.names \
        else pa.string()
    if fmt == "csv":
        fields = [pa.field(f.name, pa.string()) if _is_nested(f.type) else f for f in fields]
    label_type = labels_as(class_names, y[:0], label_type).type  # integer labels stay integers, else text
    schema = pa.schema([*fields, pa.field(label_column, label_type), pa.field(ACTION_COLUMN, pa.string())])
    writer = pacsv.CSVWriter(tmp, schema) if fmt == "csv" else pq.ParquetWriter(tmp, schema)
    start = 0
    try:
        for batch in source.iter_batches(batch_size=_BATCH):
            rows = len(batch)
            columns = [_as_json(batch.column(f.name)) if _is_nested(batch.schema.field(f.name).type)
                       and fmt == "csv" else batch.column(f.name) for f in fields]
            columns += [labels_as(class_names, y[start:start + rows], label_type),
                        actions.slice(start, rows).combine_chunks().cast(pa.string())]
            table = pa.Table.from_arrays(columns, schema=schema)
            writer.write_table(neutralise_formulas(table) if fmt == "csv" else table)
            start += rows
    finally:
        writer.close()
        source.close()


def _is_nested(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or \
        pa.types.is_struct(t) or pa.types.is_map(t)


def _as_json(col: pa.Array) -> pa.Array:
    return pa.array([None if v is None else json.dumps(v) for v in col.to_pylist()], pa.string())


def _write_text_rows(tmp: Path, fmt: str, texts: list[str], y: np.ndarray, class_names: list[str],
                     label_column: str, actions: pa.ChunkedArray) -> None:
    """CSV or Parquet of the texts: `text`, the label column by class name, `curate_action`."""
    table = pa.table({"text": pa.array(texts, pa.large_string()),
                      label_column: pa.array(class_names, pa.string()).take(pa.array(np.asarray(y, np.int64))),
                      "curate_action": actions.combine_chunks().cast(pa.string())})
    if fmt == "csv":
        pacsv.write_csv(neutralise_formulas(table), tmp)
    else:
        pq.write_table(table, tmp)


def _write_text_zip(tmp: Path, texts: list[str], y: np.ndarray, class_names: list[str], sources: list[str]) -> None:
    """Each text as UTF-8 at <class>/<its path below its old class folder> (the upload's layout)."""
    folders = [_safe_part(c) for c in class_names]
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, (text, source) in enumerate(zip(texts, sources, strict=True)):
            zf.writestr(f"{folders[int(y[i])]}/{_below_class(source, i, '.txt')}", text.encode("utf-8"))


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
            zf.writestr(f"{folders[int(y[i])]}/{_below_class(source, i, '.png')}", buf.getvalue())


def _below_class(source: str, i: int, suffix: str) -> str:
    """'cat/sub/001.jpg' -> 'sub/001.png' (suffix '.png': the bytes written are PNG); 'index 7' -> 'index_7.png'."""
    parts = PurePosixPath(source).parts
    if source.startswith("index ") or len(parts) < 2:
        return f"{_safe_part(source.replace(' ', '_')) or f'example_{i}'}{suffix}"
    rel = PurePosixPath(*(_safe_part(p) for p in parts[1:]))
    return str(rel if rel.suffix.lower() == suffix else rel.with_suffix(suffix))


def _safe_part(name: str) -> str:
    cleaned = re.sub(r"[/\\\x00]", "_", name)
    return "_" if cleaned in ("", ".", "..") else cleaned


def export_name(ds: DatasetOut, fmt: str | None) -> str:
    """The download's file name: <name>-v<version>.<format>."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", PurePosixPath(ds.name).stem) or ds.dataset_id
    return f"{stem}-v{ds.version}.{fmt or _UPLOADED_AS[ds.source_format]}"

