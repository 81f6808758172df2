"""Datasets in the store: ingest a path, save its files, then record its rows (file first, then row)."""

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from service.errors import Conflict, HasVersions, NotFound
from service.ingest.features import plan_features
from service.ingest.files import DatasetManifest, load_manifest, save_dataset, source_format_of
from service.ingest.formats import IngestLimits, load_dataset
from service.ingest.options import IngestOptions
from service.schemas import DatasetOut
from service.settings import Settings
from service.store.db import JOB_TABLES, Store, insert_arrow, to_json
from service.store.jobs import UNFINISHED
from service.vocab import DECIDED


def ingest_limits(settings: Settings) -> IngestLimits:
    return IngestLimits(max_archive_bytes=settings.max_archive_bytes, max_files=settings.max_files,
                        max_decoded_bytes=settings.max_decoded_bytes, max_image_pixels=settings.max_image_pixels)


DATASET_COLUMNS = ("dataset_id, name, kind, source_format, n_examples, n_classes, class_names, feature_names, "
                   "x_shape, sha256, owner, created_at, parent_id, version, root_id, applied, upload_sha256, "
                   "label_column, resize, ingest_options, ingest_report")


def add_dataset(store: Store, settings: Settings, path: Path, options: IngestOptions = IngestOptions(), *,
                name: str | None = None, owner: str | None = None) -> DatasetManifest:
    """Validate and store a dataset (or find the same upload stored already); on any error nothing is left behind."""
    return ingest(store, settings, path, options, name=name, owner=owner)[0]


def ingest(store: Store, settings: Settings, path: Path, options: IngestOptions = IngestOptions(), *,
           name: str | None = None, owner: str | None = None) -> tuple[DatasetManifest, bool]:
    """(manifest, reused): an upload whose bytes (sha256) and ingest options match a dataset this
    owner uploaded before reuses that dataset instead of storing a duplicate."""
    upload_sha = upload_sha256(path) if path.exists() else None
    key = (upload_sha, options.label_column, options.resize_text(), options_key(path, options), owner)
    with store.reader() as cur:
        found = _stored_upload(cur, *key)
    if found:
        return load_manifest(settings.datasets_dir, found), True
    loaded = load_dataset(path, options, ingest_limits(settings))
    dataset_id = uuid.uuid4().hex[:12]
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    manifest = save_dataset(loaded, settings.datasets_dir, dataset_id, name or path.name, source_format_of(path))
    try:
        with store.transaction() as cur:
            found = _stored_upload(cur, *key)  # the same file uploaded at the same time
            if not found:
                insert_dataset_row(cur, manifest, owner, upload_sha256=upload_sha, label_column=options.label_column,
                                   resize=options.resize_text(), ingest_options=key[3])
                rows = pa.table({"example_id": np.arange(manifest.n_examples, dtype=np.int32),
                                 "source": pa.array(loaded.sources, pa.string()),
                                 "given_label": loaded.y.astype(np.int32)})
                insert_arrow(cur, "examples", rows, {"dataset_id": dataset_id})
    except BaseException:
        shutil.rmtree(settings.datasets_dir / dataset_id, ignore_errors=True)
        raise
    if found:
        shutil.rmtree(settings.datasets_dir / dataset_id, ignore_errors=True)
        return load_manifest(settings.datasets_dir, found), True
    return manifest, False


def get_dataset(store: Store, dataset_id: str, owner: str | None = None) -> DatasetOut:
    """A dataset with its lineage (parent_id, version, root_id, applied decision counts)."""
    with store.reader() as cur:
        cur.execute("SELECT dataset_id, name, kind, source_format, n_examples, n_classes, class_names, x_shape, "
                    "sha256, parent_id, version, coalesce(root_id, dataset_id) AS root_id, applied, ingest_report FROM datasets "
                    "WHERE dataset_id = ? AND owner IS NOT DISTINCT FROM ?", [dataset_id, owner])
        row = cur.fetchone()
        keys = [d[0] for d in cur.description]
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found")
    values = dict(zip(keys, row))
    values["ingest_report"] = json.loads(values["ingest_report"]) if values["ingest_report"] else {}
    for key in ("class_names", "x_shape", "applied"):
        values[key] = json.loads(values[key]) if values[key] is not None else None
    values["version"] = values["version"] or 0
    if values["applied"] is not None:  # stored with sorted keys: back in the vocabulary's order
        values["applied"] = {a: values["applied"].get(a, 0) for a in DECIDED}
    return DatasetOut(**values)


def list_datasets(store: Store, owner: str | None = None) -> list[DatasetOut]:
    with store.reader() as cur:
        ids = [r[0] for r in cur.execute("SELECT dataset_id FROM datasets WHERE owner IS NOT DISTINCT FROM ? "
                                         "ORDER BY created_at DESC", [owner]).fetchall()]
    return [get_dataset(store, i, owner) for i in ids]


def dataset_size(store: Store, dataset_id: str) -> tuple[int, int]:
    """(n_examples, n_classes) of a stored dataset."""
    with store.reader() as cur:
        n_examples, n_classes = cur.execute("SELECT n_examples, n_classes FROM datasets WHERE dataset_id = ?",
                                            [dataset_id]).fetchone()
    return int(n_examples), int(n_classes)


def given_labels(store: Store, dataset_id: str) -> np.ndarray:
    """Every example's given label (class index), (n_examples,) int64 in example_id order."""
    with store.reader() as cur:
        return cur.execute("SELECT given_label FROM examples WHERE dataset_id = ? ORDER BY example_id",
                           [dataset_id]).fetchnumpy()["given_label"].astype(np.int64)


def insert_dataset_row(cur: duckdb.DuckDBPyConnection, manifest: DatasetManifest, owner: str | None,
                       **lineage: object) -> None:
    """The `datasets` row of a manifest whose files are in place; `lineage` fills parent_id, version,
    root_id, applied (JSON text), upload_sha256, label_column, resize, ingest_options (JSON text)."""
    extra = {"parent_id": None, "version": 0, "root_id": None, "applied": None, "upload_sha256": None,
             "label_column": None, "resize": None, "ingest_options": None, **lineage}
    cur.execute(f"INSERT INTO datasets ({DATASET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), "
                "?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [manifest.dataset_id, manifest.name, manifest.kind, manifest.source_format, manifest.n_examples,
                 manifest.n_classes, to_json(manifest.class_names), to_json(manifest.feature_names),
                 to_json(manifest.x_shape), manifest.sha256, owner, extra["parent_id"], extra["version"],
                 extra["root_id"], extra["applied"], extra["upload_sha256"], extra["label_column"], extra["resize"],
                 extra["ingest_options"], to_json(manifest.ingest_report) if manifest.ingest_report else None])


def upload_sha256(path: Path) -> str:
    """sha256 of a file's bytes; of a folder: every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def options_key(path: Path, options: IngestOptions) -> str | None:
    """The upload-reuse key of the ingest options; pretrained features name their weights file by
    its sha256 (the plan also refuses a missing file before anything is hashed or decoded)."""
    if options.features is None:
        return options.reuse_key()
    plan = plan_features(path.name, options.features, options.weights)
    return options.reuse_key(weights_sha256=upload_sha256(plan.weights_path))


def _stored_upload(cur: duckdb.DuckDBPyConnection, upload_sha: str | None, label_column: str, resize: str | None,
                   ingest_options: str | None, owner: str | None) -> str | None:
    if upload_sha is None:
        return None
    row = cur.execute("SELECT dataset_id FROM datasets WHERE upload_sha256 = ? AND label_column = ? AND "
                      "resize IS NOT DISTINCT FROM ? AND ingest_options IS NOT DISTINCT FROM ? AND "
                      "owner IS NOT DISTINCT FROM ? AND parent_id IS NULL ORDER BY created_at LIMIT 1",
                      [upload_sha, label_column, resize, ingest_options, owner]).fetchone()
    return row[0] if row else None


def delete_dataset(store: Store, settings: Settings, dataset_id: str, owner: str | None = None,
                   tree: bool = False, on_job_removed: Callable[[str], None] | None = None) -> list[str]:
    """Remove a dataset that no unfinished job uses, with its finished jobs and all their results
    (rows first, in one transaction; then files; `on_job_removed(job_id)` for each removed job, the
    Engine's cache drop). A dataset that versions were made from is refused (409 has_versions)
    unless `tree`, which removes those versions too. Its parent, and the parent's jobs, are never
    touched. Returns the removed dataset ids."""
    with store.transaction() as cur:
        found = cur.execute("SELECT 1 FROM datasets WHERE dataset_id = ? AND owner IS NOT DISTINCT FROM ?",
                            [dataset_id, owner]).fetchone()
        if not found:
            raise NotFound(f"dataset {dataset_id} not found")
        tree_ids = _with_descendants(cur, dataset_id)
        if len(tree_ids) > 1 and not tree:
            raise HasVersions(f"dataset {dataset_id} has {len(tree_ids) - 1} version(s) made from it "
                              f"({', '.join(tree_ids[1:6])}{', ...' if len(tree_ids) > 6 else ''}): delete them "
                              "first, or delete the whole tree (?tree=true, curate datasets rm --tree)")
        busy = cur.execute("SELECT job_id, dataset_id FROM jobs WHERE list_contains(?, dataset_id) AND status IN "
                           "(SELECT unnest(?::VARCHAR[]))", [tree_ids, list(UNFINISHED)]).fetchone()
        if busy:
            raise Conflict(f"dataset {busy[1]} is used by unfinished job {busy[0]}")
        job_ids = [r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE list_contains(?, dataset_id)",
                                             [tree_ids]).fetchall()]
        for table in JOB_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE job_id IN (SELECT unnest(?::VARCHAR[]))", [job_ids])
        for table in ("jobs", "examples", "datasets"):
            cur.execute(f"DELETE FROM {table} WHERE list_contains(?, dataset_id)", [tree_ids])
    for job_id in job_ids:
        if on_job_removed is not None:
            on_job_removed(job_id)
        shutil.rmtree(settings.jobs_dir / job_id, ignore_errors=True)
        for plot in _plot_files(settings, job_id):
            plot.unlink(missing_ok=True)
    for removed in tree_ids:
        shutil.rmtree(settings.datasets_dir / removed, ignore_errors=True)
    return tree_ids


def _with_descendants(cur: duckdb.DuckDBPyConnection, dataset_id: str) -> list[str]:
    """The dataset first, then every version made from it, directly or through other versions."""
    rows = cur.execute("WITH RECURSIVE tree(dataset_id, depth) AS (SELECT ?, 0 UNION ALL SELECT d.dataset_id, "
                       "t.depth + 1 FROM datasets d JOIN tree t ON d.parent_id = t.dataset_id) "
                       "SELECT dataset_id FROM tree ORDER BY depth, dataset_id", [dataset_id]).fetchall()
    return [r[0] for r in rows]


def _plot_files(settings: Settings, job_id: str | None = None) -> list[Path]:
    """The plot PNGs of one job (all jobs: None), with any .tmp a crash left mid-write."""
    if not settings.plots_dir.is_dir():
        return []
    return [p for p in settings.plots_dir.iterdir() if p.is_file() and (job_id is None or _plot_job(p) == job_id)]


def _plot_job(path: Path) -> str:
    return path.name.partition("-")[0]  # <job_id>-<plot>.png[.tmp]; job ids are hex


def clean_orphans(store: Store, settings: Settings) -> list[Path]:
    """At start-up, delete what a crash (kill -9 mid-upload or mid-delete) can leave: dataset folders
    and job folders without a row, plot files of jobs without a row, download folders of exports
    that were being sent. Only one process opens the data dir, so nothing here is in use."""
    with store.reader() as cur:
        datasets = {r[0] for r in cur.execute("SELECT dataset_id FROM datasets").fetchall()}
        jobs = {r[0] for r in cur.execute("SELECT job_id FROM jobs").fetchall()}
    removed = [*_orphan_folders(settings.datasets_dir, datasets), *_orphan_folders(settings.jobs_dir, jobs)]
    if settings.exports_dir.is_dir():
        removed += [p for p in settings.exports_dir.glob("tmp*") if p.is_dir()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    for plot in _plot_files(settings):
        if _plot_job(plot) not in jobs:
            plot.unlink(missing_ok=True)
            removed.append(plot)
    return removed


def _orphan_folders(root: Path, known: set[str]) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and p.name not in known] if root.is_dir() else []
