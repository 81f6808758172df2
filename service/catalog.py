"""Datasets in the store: ingest a path, save its files, then record its rows (file first, then row)."""

import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from service.cache import forget_job
from service.datasets import DatasetManifest, save_dataset, source_format_of
from service.errors import Conflict, NotFound
from service.ingest import IngestLimits, load_dataset
from service.settings import Settings
from service.store import JOB_TABLES, Store, insert_arrow, to_json


def ingest_limits(settings: Settings) -> IngestLimits:
    return IngestLimits(max_archive_bytes=settings.max_archive_bytes, max_files=settings.max_files)


def add_dataset(store: Store, settings: Settings, path: Path, *, name: str | None = None,
                label_column: str = "label", resize: tuple[int, int] | None = None,
                owner: str | None = None) -> DatasetManifest:
    """Validate and store a dataset; on any error nothing is left behind."""
    loaded = load_dataset(path, label_column=label_column, resize=resize, limits=ingest_limits(settings))
    dataset_id = uuid.uuid4().hex[:12]
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    manifest = save_dataset(loaded, settings.datasets_dir, dataset_id, name or path.name, source_format_of(path))
    try:
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
                [dataset_id, manifest.name, manifest.kind, manifest.source_format, manifest.n_examples,
                 manifest.n_classes, to_json(manifest.class_names), to_json(manifest.feature_names),
                 to_json(manifest.x_shape), manifest.sha256, owner])
            rows = pa.table({"example_id": np.arange(manifest.n_examples, dtype=np.int32),
                             "source": pa.array(loaded.sources, pa.string()),
                             "given_label": loaded.y.astype(np.int32)})
            insert_arrow(cur, "examples", rows, {"dataset_id": dataset_id})
    except BaseException:
        shutil.rmtree(settings.datasets_dir / dataset_id, ignore_errors=True)
        raise
    return manifest


def delete_dataset(store: Store, settings: Settings, dataset_id: str, owner: str | None = None) -> None:
    """Remove a dataset that no unfinished job uses, with its finished jobs and all their results
    (rows first, in one transaction; then files and cached answers)."""
    with store.transaction() as cur:
        found = cur.execute("SELECT 1 FROM datasets WHERE dataset_id = ? AND owner IS NOT DISTINCT FROM ?",
                            [dataset_id, owner]).fetchone()
        if not found:
            raise NotFound(f"dataset {dataset_id} not found")
        busy = cur.execute("SELECT job_id FROM jobs WHERE dataset_id = ? AND status IN "
                           "('queued', 'running', 'cancelling')", [dataset_id]).fetchone()
        if busy:
            raise Conflict(f"dataset {dataset_id} is used by unfinished job {busy[0]}")
        job_ids = [r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE dataset_id = ?", [dataset_id]).fetchall()]
        for table in JOB_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE job_id IN (SELECT unnest(?::VARCHAR[]))", [job_ids])
        cur.execute("DELETE FROM jobs WHERE dataset_id = ?", [dataset_id])
        cur.execute("DELETE FROM examples WHERE dataset_id = ?", [dataset_id])
        cur.execute("DELETE FROM datasets WHERE dataset_id = ?", [dataset_id])
    for job_id in job_ids:
        forget_job(store, job_id)
        shutil.rmtree(settings.jobs_dir / job_id, ignore_errors=True)
    shutil.rmtree(settings.datasets_dir / dataset_id, ignore_errors=True)


def clean_orphans(store: Store, settings: Settings) -> list[Path]:
    """Delete dataset folders without a row and unfinished temp folders (crash leftovers)."""
    if not settings.datasets_dir.exists():
        return []
    with store.reader() as cur:
        known = {r[0] for r in cur.execute("SELECT dataset_id FROM datasets").fetchall()}
    removed = []
    for path in settings.datasets_dir.iterdir():
        if path.is_dir() and path.name not in known:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
