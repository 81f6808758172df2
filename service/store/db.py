"""The only module that opens DuckDB. One process holds the file; writes are serialised.

DuckDB lets one process hold a database file read-write, and each thread needs its own
cursor. So the engine opens the file once, every write goes through `transaction()` (one lock,
one transaction) and readers take a cursor each with `reader()`. Bulk rows go in as Arrow
tables, never executemany.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from service.errors import StoreLocked

SCHEMA_VERSION = 5  # 2: reviews, dataset lineage (parent_id, version, root_id, applied), upload reuse;
# 3: jobs.run_by (who ran the job's last attempt: server | cli), api_keys.key_id (owners by stable id)
# 4: jobs.estimate (the job's estimated training time and its note: service/engine/estimate.py)
# 5: datasets.ingest_options (column roles, text embedder, image features: service/ingest/options.py)
#    and datasets.ingest_report (how the file was read: LoadedDataset.report)

# every table keyed by job_id besides `jobs` itself: what deleting a job removes
JOB_TABLES = ("job_groups", "predictions", "group_probs", "epoch_metrics", "example_epoch_stats", "example_scores",
              "adaboost_curves", "events", "attributions", "reviews")

SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    source_format VARCHAR NOT NULL, n_examples INTEGER NOT NULL, n_classes INTEGER NOT NULL,
    class_names JSON NOT NULL, feature_names JSON, x_shape JSON NOT NULL, sha256 VARCHAR NOT NULL,
    owner VARCHAR, created_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS examples (
    dataset_id VARCHAR NOT NULL, example_id INTEGER NOT NULL, source VARCHAR NOT NULL,
    given_label INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id VARCHAR PRIMARY KEY, dataset_id VARCHAR NOT NULL, spec JSON NOT NULL, scoring JSON NOT NULL,
    adaboost JSON, status VARCHAR NOT NULL, attempt INTEGER NOT NULL, epochs_done INTEGER NOT NULL,
    epochs_total INTEGER NOT NULL, estimated_n_errors INTEGER, summary JSON, error VARCHAR, owner VARCHAR,
    created_at TIMESTAMP NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS job_groups (
    job_id VARCHAR NOT NULL, model VARCHAR NOT NULL, group_id INTEGER NOT NULL, members JSON NOT NULL,
    last_epoch INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    job_id VARCHAR NOT NULL, model VARCHAR NOT NULL, member SMALLINT NOT NULL, epoch SMALLINT NOT NULL,
    example_id INTEGER NOT NULL, predicted_label SMALLINT NOT NULL, label_prob REAL NOT NULL,
    margin REAL NOT NULL, held_out BOOLEAN NOT NULL);
CREATE TABLE IF NOT EXISTS group_probs (
    job_id VARCHAR NOT NULL, model VARCHAR NOT NULL, group_id INTEGER NOT NULL, epoch SMALLINT NOT NULL,
    example_id INTEGER NOT NULL, prob_sum REAL[] NOT NULL, heldout_prob_sum REAL[] NOT NULL);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    job_id VARCHAR NOT NULL, model VARCHAR NOT NULL, group_id INTEGER NOT NULL, epoch SMALLINT NOT NULL,
    train_loss DOUBLE, seconds DOUBLE NOT NULL, committed_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS example_epoch_stats (
    job_id VARCHAR NOT NULL, epoch SMALLINT NOT NULL, example_id INTEGER NOT NULL,
    consistency REAL NOT NULL, consensus REAL NOT NULL, consensus_label SMALLINT NOT NULL,
    heldout_consistency REAL);
CREATE TABLE IF NOT EXISTS example_scores (
    job_id VARCHAR NOT NULL, example_id INTEGER NOT NULL, given_label SMALLINT NOT NULL,
    consistency REAL NOT NULL, consensus REAL NOT NULL, consensus_label SMALLINT NOT NULL,
    heldout_consistency REAL, accessibility REAL NOT NULL, first_learned_epoch SMALLINT NOT NULL,
    mean_label_prob REAL NOT NULL, split VARCHAR NOT NULL, mislabel_score REAL NOT NULL,
    is_suspected_mislabel BOOLEAN NOT NULL, suggested_label SMALLINT NOT NULL,
    adaboost_accessibility REAL, family_agreement VARCHAR);
CREATE TABLE IF NOT EXISTS adaboost_curves (
    job_id VARCHAR NOT NULL, stage INTEGER NOT NULL, split VARCHAR NOT NULL, accuracy REAL);
CREATE TABLE IF NOT EXISTS api_keys (
    name VARCHAR PRIMARY KEY, key_sha256 VARCHAR NOT NULL UNIQUE, created_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    job_id VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, kind VARCHAR NOT NULL, message VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS attributions (
    job_id VARCHAR NOT NULL, example_id INTEGER NOT NULL, target VARCHAR NOT NULL, target_label SMALLINT NOT NULL,
    method VARCHAR NOT NULL, logit DOUBLE NOT NULL, gradient_term DOUBLE NOT NULL, bias_term DOUBLE NOT NULL,
    bias_share DOUBLE NOT NULL, per_layer_bias_share JSON NOT NULL, top_features JSON NOT NULL,
    map_path VARCHAR NOT NULL, heatmap_path VARCHAR);
CREATE TABLE IF NOT EXISTS reviews (
    job_id VARCHAR NOT NULL, seq BIGINT NOT NULL, example_id INTEGER NOT NULL, action VARCHAR NOT NULL,
    label SMALLINT, note VARCHAR, decided_by VARCHAR NOT NULL, decided_at TIMESTAMP NOT NULL);
"""

# Explicit, idempotent migrations: (version that introduced them, statement). A file of an older
# version gets the columns appended; a new file gets the same, so both end with one layout.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS parent_id VARCHAR"),
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS version INTEGER DEFAULT 0"),
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS root_id VARCHAR"),  # NULL: the dataset is its own root
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS applied JSON"),  # decision counts of a version
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS upload_sha256 VARCHAR"),  # the uploaded file's bytes
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS label_column VARCHAR"),
    (2, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS resize VARCHAR"),  # "HxW" or NULL
    (2, "ALTER TABLE examples ADD COLUMN IF NOT EXISTS parent_example_id INTEGER"),
    (2, "ALTER TABLE examples ADD COLUMN IF NOT EXISTS root_example_id INTEGER"),  # NULL: example_id itself
    (2, "ALTER TABLE examples ADD COLUMN IF NOT EXISTS action VARCHAR"),  # decision a version row carries
    # server | cli: a restarted server resumes only its own interrupted jobs (NULL: before v3, a server's)
    (3, "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS run_by VARCHAR"),
    # the owner id of a stored key's datasets and jobs; NULL before v3, when the owner was the key's name
    (3, "ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS key_id VARCHAR"),
    # {"seconds": ..., "note": ...} from the first timed epochs (service/engine/estimate.py); NULL until then
    (4, "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS estimate JSON"),
    # the ingest options beyond label_column and resize (service.ingest.options.reuse_key), NULL: defaults
    (5, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS ingest_options VARCHAR"),
    (5, "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS ingest_report JSON"),  # how the file was read
)


class StoreClosed(RuntimeError):
    """The store was closed (the server is shutting down): not a client's error, so no CurationError."""


class Store:
    """The DuckDB file of one data directory."""

    def __init__(self, path: Path, memory_limit: str | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise StoreLocked(f"{path} is in use by another process (a running `curate serve`?): talk to that "
                              f"server with --url, or stop it first ({exc})") from None
        self._con.execute("SET TimeZone = 'UTC'")  # timestamps are stored in UTC
        if memory_limit:  # DuckDB's own default is 80 % of the machine's memory
            self._con.execute(f"SET memory_limit = '{_check_size(memory_limit)}'")
        self._lock = threading.RLock()  # the single writer
        # DuckDB refuses two calls on one connection at once, so cursor creation and close take
        # turns here, and close waits for the open readers (a job thread warming the cache while the
        # server shut down made close raise ResourceInUseException)
        self._calls = threading.Condition()
        self._open_readers = 0
        self._closed = False
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as cur:
            cur.execute(SCHEMA)
            row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] if row else None
            if current is not None and current > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path} has schema version {current}; this Curate knows up to "
                                   f"{SCHEMA_VERSION}: upgrade Curate")
            if current is None or current < SCHEMA_VERSION:
                for introduced, statement in MIGRATIONS:
                    if current is None or introduced > current:
                        cur.execute(statement)
                cur.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION])

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writer: one transaction at a time, rolled back on any exception."""
        with self._lock:
            cur = self._cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for one reading thread."""
        with self._calls:
            cur = self._cursor()
            self._open_readers += 1
        try:
            yield cur
        finally:
            cur.close()
            with self._calls:
                self._open_readers -= 1
                self._calls.notify_all()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._calls:
            if self._closed:
                raise StoreClosed(f"{self.path} is closed: the server is shutting down")
            return self._con.cursor()

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new cursors, wait up to `timeout` s for open readers, then close (after any transaction)."""
        with self._calls:
            self._closed = True
            self._calls.wait_for(lambda: self._open_readers == 0, timeout)
        with self._lock, self._calls:
            self._con.close()


def _check_size(value: str) -> str:
    """'2GB', '512MB', ... (a setting, never user input, but checked before it reaches SQL)."""
    import re

    if not re.fullmatch(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value.strip()):
        raise ValueError(f"duckdb_memory_limit must look like 2GB or 512MB, got {value!r}")
    return value.strip()


def insert_arrow(cur: duckdb.DuckDBPyConnection, table: str, rows: pa.Table, prefix: dict[str, object]) -> None:
    """INSERT INTO table SELECT <prefix params>, <rows columns> in the table's column order.

    `table` is one of our own table names, never user input; values go in as parameters.
    """
    columns = [r[0] for r in cur.execute(f"DESCRIBE {table}").fetchall()]
    select = []
    params: list[object] = []
    for col in columns:
        if col in prefix:
            select.append("?")
            params.append(prefix[col])
        elif col in rows.column_names:
            select.append(f'rows_."{col}"')
        else:
            select.append("NULL")
    name = f"rows_{threading.get_ident()}"
    cur.register(name, rows)
    try:
        cur.execute(f"INSERT INTO {table} SELECT {', '.join(select)} FROM {name} AS rows_", params)
    finally:
        cur.unregister(name)


def fixed_lists(values: np.ndarray) -> pa.FixedSizeListArray:
    """(n, k) float array -> Arrow list column of length-k rows."""
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel()),
                                             values.shape[1])


def to_json(value: object) -> str:
    return json.dumps(value, sort_keys=True)
