"""The dataset store: each ingested dataset lives in `<datasets_dir>/<dataset_id>/` as

    X.npy          (n, d) float32 or (n, C, H, W) uint8
    y.npy          (n,) int64, index into manifest.class_names
    sources.json   per example: "cat/001.png", "row N" or "index N"
    manifest.json  DatasetManifest.to_json()
    columns.json   a table only: column roles, fitted encoding, feature -> column (ingest/columns.py)
    table.parquet  a table only: its columns as read, before encoding (exports in the uploaded form)
    pixels.npy     pretrained features only: (n, C, H, W) uint8, the images X was embedded from (thumbnails)
    lineage.json   a version only: parent_id, version, root_id, from_job, applied, parent_example_id

A dataset is written into `<dataset_id>.tmp-XXXX`, fsynced, then renamed into place, so a
directory named like a dataset id is always complete. Leftover `*.tmp-*` directories are crashes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from service.errors import NotFound
from service.ingest.formats import LoadedDataset, detect_format
from service.ingest.text import save_texts

SOURCE_FORMATS = ("image_folder", "zip", "csv", "parquet", "npz", "jsonl")
COLUMNS_FILE = "columns.json"  # a table's column roles, fitted encoding and feature -> column map
TABLE_FILE = "table.parquet"  # a table's columns as read from the upload, before encoding
TABLE_ROW_GROUP = 16_384  # rows per row group: a review page's cards decode only the groups of its rows
PIXELS_FILE = "pixels.npy"  # a pretrained-features dataset's decoded images (X holds their embeddings)
_DATASET_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class DatasetManifest:
    dataset_id: str
    name: str
    kind: str  # "tabular" | "image"
    n_examples: int
    n_classes: int
    class_names: list[str]  # (n_classes,)
    feature_names: list[str] | None  # (d,) for tabular; None for images
    x_shape: list[int]  # X.shape
    x_dtype: str  # "float32" | "uint8"
    sha256: str  # hex digest of the bytes of X.npy followed by the bytes of y.npy, as stored
    source_format: str  # "image_folder" | "zip" | "csv" | "parquet" | "npz" | "jsonl"
    ingest_report: dict[str, object] = dataclasses.field(default_factory=dict)  # LoadedDataset.report

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, object]) -> DatasetManifest:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in d]
        if missing:
            raise ValueError(f"dataset manifest lacks {', '.join(missing)}")
        feature_names = d["feature_names"]
        return cls(
            dataset_id=str(d["dataset_id"]),
            name=str(d["name"]),
            kind=str(d["kind"]),
            n_examples=_as_int(d["n_examples"]),
            n_classes=_as_int(d["n_classes"]),
            class_names=[str(c) for c in _as_list(d["class_names"])],
            feature_names=None if feature_names is None else [str(c) for c in _as_list(feature_names)],
            x_shape=[_as_int(s) for s in _as_list(d["x_shape"])],
            x_dtype=str(d["x_dtype"]),
            sha256=str(d["sha256"]),
            source_format=str(d["source_format"]),
            ingest_report=dict(d.get("ingest_report") or {}),  # type: ignore[call-overload]  # older manifests lack it
        )


def _as_int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"dataset manifest: expected an integer, got {value!r}")
    return value


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError(f"dataset manifest: expected a list, got {value!r}")
    return value


def source_format_of(path: Path) -> str:
    """"image_folder" for a directory, else by suffix; raises UnsupportedFormat for other files."""
    return detect_format(path)


def save_dataset(
    loaded: LoadedDataset, datasets_dir: Path, dataset_id: str, name: str, source_format: str,
    extra_json: Mapping[str, object] | None = None,
) -> DatasetManifest:
    """Write the dataset atomically; FileExistsError if `dataset_id` is taken. Nothing is left on failure.
    `extra_json` adds files (name -> JSON value) to the folder, e.g. a version's lineage.json."""
    _check_id(dataset_id)
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"source_format must be one of {', '.join(SOURCE_FORMATS)}, got {source_format!r}")
    n = len(loaded.y)
    if loaded.X.shape[0] != n or len(loaded.sources) != n:
        raise ValueError(f"X has {loaded.X.shape[0]} rows, y {n}, sources {len(loaded.sources)}; they must match")
    datasets_dir.mkdir(parents=True, exist_ok=True)
    final = datasets_dir / dataset_id
    if final.exists():
        raise FileExistsError(f"dataset {dataset_id!r} already exists in {datasets_dir}")
    tmp = Path(tempfile.mkdtemp(prefix=f"{dataset_id}.tmp-", dir=datasets_dir))
    try:
        _write_npy(tmp / "X.npy", loaded.X)
        _write_npy(tmp / "y.npy", np.asarray(loaded.y, dtype=np.int64))
        manifest = DatasetManifest(
            dataset_id=dataset_id,
            name=name,
            kind=loaded.kind,
            n_examples=n,
            n_classes=len(loaded.class_names),
            class_names=list(loaded.class_names),
            feature_names=None if loaded.feature_names is None else list(loaded.feature_names),
            x_shape=[int(s) for s in loaded.X.shape],
            x_dtype=str(loaded.X.dtype),
            sha256=_sha256_of(tmp / "X.npy", tmp / "y.npy"),
            source_format=source_format,
            ingest_report=dict(loaded.report),
        )
        _write_json(tmp / "sources.json", list(loaded.sources))
        if loaded.texts is not None:  # a text dataset keeps its texts for the gallery and exports
            save_texts(tmp, loaded.texts)
        if loaded.columns is not None:  # a table keeps how its columns became features
            _write_json(tmp / COLUMNS_FILE, loaded.columns)
        if loaded.table is not None:  # ... and its columns as read, for exports in the uploaded form
            pq.write_table(loaded.table, tmp / TABLE_FILE, row_group_size=TABLE_ROW_GROUP)
        if loaded.pixels is not None:  # pretrained features: the images behind X, for the gallery
            _write_npy(tmp / PIXELS_FILE, loaded.pixels)
        for file_name, value in (extra_json or {}).items():
            _write_json(tmp / Path(file_name).name, value)
        _write_json(tmp / "manifest.json", manifest.to_json())
        _fsync_dir(tmp)
        if final.exists():  # os.rename would silently replace an empty directory
            raise FileExistsError(f"dataset {dataset_id!r} already exists in {datasets_dir}")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(datasets_dir)
    return manifest


def load_arrays(
    datasets_dir: Path, dataset_id: str, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray]:  # X (n, d) float32 | (n, C, H, W) uint8 ; y (n,) int64
    """Read-only memory maps by default."""
    directory = _dataset_dir(datasets_dir, dataset_id)
    mode = "r" if mmap else None
    X = np.load(directory / "X.npy", mmap_mode=mode, allow_pickle=False)
    y = np.load(directory / "y.npy", mmap_mode=mode, allow_pickle=False)
    return X, y


def load_manifest(datasets_dir: Path, dataset_id: str) -> DatasetManifest:
    text = (_dataset_dir(datasets_dir, dataset_id) / "manifest.json").read_text(encoding="utf-8")
    return DatasetManifest.from_json(json.loads(text))


def load_sources(datasets_dir: Path, dataset_id: str) -> list[str]:  # (n,)
    text = (_dataset_dir(datasets_dir, dataset_id) / "sources.json").read_text(encoding="utf-8")
    return [str(s) for s in json.loads(text)]


def load_lineage(datasets_dir: Path, dataset_id: str) -> dict | None:
    """A version's lineage.json (parent_id, version, root_id, from_job, applied, ...); None for an upload."""
    path = _dataset_dir(datasets_dir, dataset_id) / "lineage.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_columns(datasets_dir: Path, dataset_id: str) -> dict | None:
    """A table's columns.json (columns: roles with their fitted encoding, feature_names, feature_column:
    the column of each feature); None for datasets without one (images, NPZ, tables stored before)."""
    path = _dataset_dir(datasets_dir, dataset_id) / COLUMNS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def table_path(datasets_dir: Path, dataset_id: str) -> Path | None:
    """table.parquet of a table dataset, for readers that go through it in batches; None without one."""
    path = _dataset_dir(datasets_dir, dataset_id) / TABLE_FILE
    return path if path.is_file() else None


def load_pixels(datasets_dir: Path, dataset_id: str) -> np.ndarray | None:  # (n, C, H, W) uint8, memory-mapped
    """The images of a dataset: X itself for images, pixels.npy for one of pretrained features (X
    holds their embeddings); None for tables and for datasets stored without pixels."""
    directory = _dataset_dir(datasets_dir, dataset_id)
    for path in (directory / PIXELS_FILE, directory / "X.npy"):
        if path.is_file():
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            if array.ndim == 4:
                return array
    return None


def load_table(datasets_dir: Path, dataset_id: str, ids: Sequence[int] | None = None) -> pa.Table | None:
    """A table's columns as read from the upload (its rows `ids`, or all); None without table.parquet
    (images, NPZ, text folders, tables stored before it existed)."""
    path = _dataset_dir(datasets_dir, dataset_id) / TABLE_FILE
    if not path.is_file():
        return None
    table = pq.read_table(path)
    return table if ids is None else table.take(pa.array(ids, pa.int64()))


def _check_id(dataset_id: str) -> None:
    if not isinstance(dataset_id, str) or not _DATASET_ID.fullmatch(dataset_id):
        raise ValueError(f"dataset_id must be 1-64 letters, digits, '_' or '-', got {dataset_id!r}")


def _dataset_dir(datasets_dir: Path, dataset_id: str) -> Path:
    _check_id(dataset_id)
    directory = datasets_dir / dataset_id
    if not directory.is_dir():
        raise NotFound(f"dataset {dataset_id!r} not found")
    return directory


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "xb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _write_json(path: Path, value: object) -> None:
    with open(path, "x", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())


def _sha256_of(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
