"""Corrected dataset versions: a job's current decisions applied to its dataset as a new,
immutable dataset (relabels change y, excludes drop the row). Exporting any dataset in the form it
was uploaded in is a read: service/read/dataset_export.py.

A version is written like any ingested dataset (service.ingest.files.save_dataset: files into a temp
folder, fsynced, renamed; then its rows), with `parent_id`, `version`, `root_id` and the applied
decision counts in `datasets`, and per row the `parent_example_id`, the `root_example_id` (the
row of the original upload) and the decision applied to it. Nothing ever rewrites the parent.
"""

import shutil
import uuid

import duckdb
import numpy as np
import pyarrow as pa

from service.errors import InvalidDataset, InvalidVersion
from service.ingest.columns import label_column_of, labels_as
from service.ingest.files import (
    load_arrays,
    load_columns,
    load_manifest,
    load_pixels,
    load_sources,
    load_table,
    save_dataset,
)
from service.ingest.formats import LoadedDataset
from service.ingest.formats import _check_classes as check_classes
from service.ingest.text import load_texts
from service.schemas import DatasetOut
from service.settings import Settings
from service.store import catalog, jobs, reviews
from service.store.catalog import insert_dataset_row
from service.store.db import Store, insert_arrow, to_json


def create_version(store: Store, settings: Settings, dataset_id: str, from_job: str,
                   owner: str | None = None) -> DatasetOut:
    """A new dataset from `dataset_id` with the current decisions of `from_job` (a succeeded job on it)."""
    parent = catalog.get_dataset(store, dataset_id, owner)
    job = jobs.finished_job(store, from_job, owner)
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
                           feature_names=manifest.feature_names, report=manifest.ingest_report,
                           texts=_kept_texts(settings, dataset_id, kept),
                           columns=load_columns(settings.datasets_dir, dataset_id),
                           table=_kept_table(settings, dataset_id, kept, new_y[kept], list(parent.class_names)),
                           pixels=_kept_pixels(settings, dataset_id, kept, manifest.kind))
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
    return catalog.get_dataset(store, new_id, owner)


def _kept_pixels(settings: Settings, dataset_id: str, kept: np.ndarray, kind: str) -> np.ndarray | None:
    """A pretrained-features dataset's version keeps the images of the examples it keeps (thumbnails,
    the zip export); an image dataset's pixels are its X already."""
    pixels = load_pixels(settings.datasets_dir, dataset_id) if kind == "tabular" else None
    return None if pixels is None else np.ascontiguousarray(pixels[kept])


def _kept_texts(settings: Settings, dataset_id: str, kept: np.ndarray) -> list[str] | None:
    """A text dataset's version keeps the texts of the examples it keeps (the gallery and exports show them)."""
    return load_texts(settings.datasets_dir, dataset_id, kept.tolist())


def _kept_table(settings: Settings, dataset_id: str, kept: np.ndarray, y: np.ndarray,
                class_names: list[str]) -> pa.Table | None:
    """A table's version keeps its kept rows as read (table.parquet), with the label column holding
    the corrected labels `y` (n_kept,), so it too exports in the uploaded columns and its rows say
    what its y says."""
    table = load_table(settings.datasets_dir, dataset_id, kept.tolist())
    label = label_column_of(load_columns(settings.datasets_dir, dataset_id) or {})
    if table is None or label not in table.column_names:
        return table
    i = table.column_names.index(label)
    return table.set_column(i, label, labels_as(class_names, y, table.schema.field(label).type))


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
