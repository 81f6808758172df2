"""Every read that the CLI, the API and the web pages show; they all go through here."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from service.errors import InvalidQuery, NotFound
from service.ingest.text import load_texts
from service.read.cache import CachedJob, ScoreIndex, build_score_index
from service.result_cache import ResultCache
from service.schemas import AdaBoostOut, DynamicsOut, ExampleOut, ExamplePage
from service.store import jobs, reviews
from service.store.attributions import attribution_row  # noqa: F401  (a read the API shows)
from service.store.catalog import get_dataset, list_datasets  # noqa: F401  (reads the API shows)
from service.store.db import Store
from service.store.jobs import finished_job
from service.store.reviews import CURRENT_SQL
from service.vocab import DECIDED, EXPORT_KINDS, ORDERS, SPLITS, order_by_sql

SCORE_COLUMNS = ("example_id", "source", "given_label", "consistency", "consensus", "consensus_label",
                 "heldout_consistency", "accessibility", "first_learned_epoch", "mean_label_prob", "split",
                 "mislabel_score", "is_suspected_mislabel", "suggested_label", "adaboost_accessibility",
                 "family_agreement", "decision", "decided_label")


def decision_counts(store: Store, job_id: str) -> dict[str, int]:
    """{"relabel", "keep", "exclude"} -> how many examples of the job have that current decision."""
    with store.reader() as cur:
        return reviews.decision_counts(cur, job_id)


@dataclass(frozen=True)
class RowFilter:
    """Filters of a review page on top of split / suspected: classes by name; decision none|relabel|keep|exclude."""

    given_label: str | None = None
    suggested_label: str | None = None
    decision: str | None = None  # "none": no current decision

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.given_label, self.suggested_label, self.decision))


DECISION_FILTERS = ("none", *DECIDED)


def score_page(store: Store, job_id: str, *, owner: str | None = None, split: str | None = None,
               suspected_only: bool = False, order: str = "example_id", limit: int | None = None,
               offset: int = 0, filters: RowFilter = RowFilter()) -> tuple[pa.Table, int]:
    """One page of per-example scores with source and class names (SCORE_COLUMNS), and the
    number of rows matching the filters. The page is cut first and joined after, so a page
    costs the same whatever the data set's size."""
    job = finished_job(store, job_id, owner)
    _check_page(split, order, limit, offset)
    where = f"""
            FROM example_scores s LEFT JOIN ({CURRENT_SQL}) d ON d.example_id = s.example_id
            WHERE s.job_id = $job AND ($split IS NULL OR s.split = $split)
              AND (NOT $suspected OR s.is_suspected_mislabel)
              AND ($given IS NULL OR s.given_label = $given) AND ($suggested IS NULL OR s.suggested_label = $suggested)
              AND ($decision IS NULL OR coalesce(d.action, 'none') = $decision)"""
    sql = f"""
        WITH page AS (
            SELECT s.*, d.action AS decision_, d.label AS decided_, count(*) OVER () AS total_ {where}
            ORDER BY {order_by_sql(order)} LIMIT $limit OFFSET $offset)
        SELECT s.example_id, e.source, $names[s.given_label + 1] AS given_label, s.consistency, s.consensus,
               $names[s.consensus_label + 1] AS consensus_label, s.heldout_consistency, s.accessibility,
               s.first_learned_epoch, s.mean_label_prob, s.split, s.mislabel_score, s.is_suspected_mislabel,
               $names[s.suggested_label + 1] AS suggested_label, s.adaboost_accessibility, s.family_agreement,
               s.decision_ AS decision, $names[s.decided_ + 1] AS decided_label, s.total_
        FROM page s JOIN examples e ON e.dataset_id = $dataset AND e.example_id = s.example_id
        ORDER BY {order_by_sql(order)}"""
    with store.reader() as cur:
        names = json.loads(cur.execute("SELECT class_names FROM datasets WHERE dataset_id = ?",
                                       [job.dataset_id]).fetchall()[0][0])
        params = {"dataset": job.dataset_id, "job": job_id, "split": split, "suspected": suspected_only,
                  "limit": limit if limit is not None else 2**62, "offset": offset, "names": names,
                  **_filter_params(filters, names)}
        table = cur.sql(sql, params=params).to_arrow_table()
        if not table.num_rows:  # an empty page (offset past the end) still reports the total
            count_params = {k: v for k, v in params.items() if k not in ("limit", "offset", "names", "dataset")}
            total = cur.execute(f"SELECT count(*) {where}", count_params).fetchone()[0]
    if table.num_rows:
        total = table.column("total_")[0].as_py()
    return table.drop_columns(["total_"]), int(total)


def label_pairs(store: Store, job_id: str, *, owner: str | None = None, split: str | None = None,
                suspected_only: bool = False, limit: int = 12) -> list[tuple[str, str, int]]:
    """The most frequent (given_label, suggested_label) pairs by class name among the job's rows of
    `split` (and flagged ones only), most frequent first: the review page's pair filter."""
    job = finished_job(store, job_id, owner)
    _check_page(split, "example_id", limit, 0)
    with store.reader() as cur:
        names = json.loads(cur.execute("SELECT class_names FROM datasets WHERE dataset_id = ?",
                                       [job.dataset_id]).fetchone()[0])
        rows = cur.execute("SELECT given_label, suggested_label, count(*) AS n FROM example_scores WHERE job_id = ? "
                           "AND (? IS NULL OR split = ?) AND (NOT ? OR is_suspected_mislabel) GROUP BY ALL "
                           "ORDER BY n DESC, given_label, suggested_label LIMIT ?",
                           [job_id, split, split, suspected_only, limit]).fetchall()
    return [(names[g], names[s], int(n)) for g, s, n in rows]


def _filter_params(filters: RowFilter, names: list[str]) -> dict[str, object]:
    """SQL parameters of a RowFilter: class names as indices (422 naming an unknown class)."""
    index = {name: i for i, name in enumerate(names)}
    params: dict[str, object] = {}
    for key, name in (("given", filters.given_label), ("suggested", filters.suggested_label)):
        if name is not None and name not in index:
            raise InvalidQuery(f"{key}_label {name!r} is not a class of this job's dataset "
                               f"(classes: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''})")
        params[key] = None if name is None else index[name]
    if filters.decision is not None and filters.decision not in DECISION_FILTERS:
        raise InvalidQuery(f"decision must be one of {', '.join(DECISION_FILTERS)}, got {filters.decision!r}")
    params["decision"] = filters.decision
    return params


def _check_page(split: str | None, order: str, limit: int | None, offset: int) -> None:
    if split is not None and split not in SPLITS:
        raise InvalidQuery(f"split must be easy, intermediate or hard, got {split!r}")
    if order not in ORDERS:
        raise InvalidQuery(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if offset < 0 or (limit is not None and limit < 0):
        raise InvalidQuery("limit and offset must not be negative")


def score_rows(store: Store, job_id: str, *, owner: str | None = None, split: str | None = None,
               suspected_only: bool = False, order: str = "example_id", limit: int | None = None,
               offset: int = 0) -> pa.Table:
    """Per-example scores with source and class names, as an Arrow table (SCORE_COLUMNS)."""
    return score_page(store, job_id, owner=owner, split=split, suspected_only=suspected_only, order=order,
                      limit=limit, offset=offset)[0]


def export_rows(store: Store, job_id: str, what: str, owner: str | None = None,
                datasets_dir: Path | None = None) -> pa.Table:
    """scores: every example; easy/intermediate/hard: that split; mislabeled: flagged, worst first.
    With `datasets_dir`, a text dataset's rows end with a `text` column (the stored texts)."""
    if what not in EXPORT_KINDS:
        raise InvalidQuery(f"what must be one of {', '.join(EXPORT_KINDS)}, got {what!r}")
    if what == "scores":
        rows = score_rows(store, job_id, owner=owner)
    elif what == "mislabeled":
        rows = score_rows(store, job_id, owner=owner, suspected_only=True, order="mislabel_score")
    else:
        rows = score_rows(store, job_id, owner=owner, split=what, order="accessibility")
    return rows if datasets_dir is None else _with_texts(store, rows, job_id, owner, datasets_dir)


def _with_texts(store: Store, rows: pa.Table, job_id: str, owner: str | None, datasets_dir: Path) -> pa.Table:
    texts = load_texts(datasets_dir, finished_job(store, job_id, owner).dataset_id, rows.column("example_id").to_pylist())
    return rows if texts is None else rows.append_column("text", pa.array(texts, pa.large_string()))


def adaboost_curves(store: Store, job_id: str, owner: str | None = None) -> dict[str, list[float | None]]:
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        rows = cur.execute("SELECT split, stage, accuracy FROM adaboost_curves WHERE job_id = ? ORDER BY split, stage",
                           [job_id]).fetchall()
    curves: dict[str, list[float | None]] = {}
    for split, _, acc in rows:
        curves.setdefault(split, []).append(None if acc != acc else acc)
    return curves


def dynamics_histograms(store: Store, job_id: str, n_bins: int = 20, owner: str | None = None) -> list[dict]:
    """Per epoch, histograms of consistency and consensus over examples (bins of width 1/n_bins).
    The two GROUP BYs scan epochs x examples rows (the API load benchmark found them the costliest
    read): the API serves them from the result cache (dynamics_json), the dashboard draws them into
    a PNG once."""
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        rows = cur.execute(
            "SELECT epoch, least(floor(consistency * ?), ? - 1)::INT AS b, count(*) FROM example_epoch_stats "
            "WHERE job_id = ? GROUP BY ALL ORDER BY ALL", [n_bins, n_bins, job_id]).fetchall()
        rows2 = cur.execute(
            "SELECT epoch, least(floor(consensus * ?), ? - 1)::INT AS b, count(*) FROM example_epoch_stats "
            "WHERE job_id = ? GROUP BY ALL ORDER BY ALL", [n_bins, n_bins, job_id]).fetchall()
    out: dict[int, dict] = {}
    for metric, data in (("consistency", rows), ("consensus", rows2)):
        for epoch, b, count in data:
            entry = out.setdefault(epoch, {"epoch": epoch, "consistency": [0] * n_bins, "consensus": [0] * n_bins})
            entry[metric][b] = count
    return [out[e] for e in sorted(out)]


def count_rows(store: Store, job_id: str, *, owner: str | None = None, split: str | None = None,
               suspected_only: bool = False) -> int:
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        return cur.execute("SELECT count(*) FROM example_scores WHERE job_id = ? AND (? IS NULL OR split = ?) "
                           "AND (NOT ? OR is_suspected_mislabel)",
                           [job_id, split, split, suspected_only]).fetchone()[0]


def adaboost_comparison(store: Store, job_id: str, owner: str | None = None) -> AdaBoostOut:
    """The AdaBoost comparison of a finished job (409 if the job ran without AdaBoost)."""
    job = finished_job(store, job_id, owner)
    _check_adaboost(job)
    return AdaBoostOut(job_id=job_id, correlation=(job.summary or {}).get("adaboost", {}),
                       curves=adaboost_curves(store, job_id, owner))


def _check_adaboost(job: jobs.Job) -> None:
    if not job.adaboost.enabled:
        raise InvalidQuery(f"job {job.job_id} ran without the AdaBoost baseline")


def dataset_feature_names(store: Store, dataset_id: str, owner: str | None = None) -> list[str] | None:
    """Feature names of a tabular dataset (None for images)."""
    with store.reader() as cur:
        row = cur.execute("SELECT feature_names FROM datasets WHERE dataset_id = ? AND owner IS NOT DISTINCT FROM ?",
                          [dataset_id, owner]).fetchone()
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return json.loads(row[0]) if row[0] else None


def attribution_heatmaps(store: Store, job_id: str, example_ids: list[int],
                         owner: str | None = None) -> dict[int, str | None]:
    """For the examples among `example_ids` with a stored attribution of the given label: its
    heatmap PNG path (relative to the data directory; None for tables). bias method first."""
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        rows = cur.execute("SELECT example_id, heatmap_path FROM attributions WHERE job_id = ? AND target = 'given' "
                           "AND list_contains(?, example_id) ORDER BY method = 'bias'",
                           [job_id, [int(i) for i in example_ids]]).fetchall()
    return {int(example_id): path for example_id, path in rows}  # the bias row, sorted last, wins


def attribution_maps(store: Store, job_id: str, example_ids: list[int],
                     owner: str | None = None) -> dict[int, tuple[str, str]]:
    """For the examples among `example_ids` with a stored attribution: (target, map path relative to
    the data directory) of the suggested label if there is one, else of the given label; bias method
    first. What a review card ranks a table's columns by."""
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        rows = cur.execute("SELECT example_id, target, map_path FROM attributions WHERE job_id = ? "
                           "AND list_contains(?, example_id) ORDER BY target = 'suggested', method = 'bias'",
                           [job_id, [int(i) for i in example_ids]]).fetchall()
    return {int(example_id): (target, path) for example_id, target, path in rows}  # sorted last wins


def epoch_consistency(store: Store, job_id: str, owner: str | None = None) -> np.ndarray:  # (n_epochs + 1, n_examples)
    """Consistency per epoch and example, (n_epochs + 1, n_examples) float32, epoch 0 first."""
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        cols = cur.execute("SELECT epoch, example_id, consistency FROM example_epoch_stats WHERE job_id = ?",
                           [job_id]).fetchnumpy()  # any order: placed by searchsorted
    epochs, ids = np.unique(cols["epoch"]), np.unique(cols["example_id"])
    out = np.zeros((epochs.size, ids.size), dtype=np.float32)
    out[np.searchsorted(epochs, cols["epoch"]), np.searchsorted(ids, cols["example_id"])] = cols["consistency"]
    return out


# --- the REST reads as JSON bytes: a succeeded job's from the ResultCache (it never changes) ---------
# memory_only=True answers None instead of reading DuckDB, so that a route can answer a cache hit on
# the event loop and send everything else to a worker thread.

def job_json(store: Store, cache: ResultCache, job_id: str, owner: str | None = None,
             memory_only: bool = False) -> bytes | None:
    """JobOut JSON. A succeeded job's is rendered once; any other job is read live (progress)."""
    hit = _cached_job(cache, job_id, owner)
    if hit is not None or memory_only:
        return hit.json if hit is not None else None
    job = jobs.get_job(store, job_id, owner)
    cached = _remember(cache, job)
    return cached.json if cached is not None else jobs.job_out(job).model_dump_json().encode()


def example_page_json(store: Store, cache: ResultCache, job_id: str, *, owner: str | None = None,
                      split: str | None = None, suspected_only: bool = False, order: str = "example_id",
                      limit: int = 100, offset: int = 0, memory_only: bool = False,
                      filters: RowFilter = RowFilter()) -> bytes | None:
    """ExamplePage JSON: a slice of the job's rows in memory (all of them read and sorted once);
    from DuckDB (score_page) only when they would not fit in the cache at all, or with RowFilters."""
    if not _succeeded(store, cache, job_id, owner, memory_only):
        return None
    _check_page(split, order, limit, offset)
    if filters:
        return None if memory_only else _page_from_duckdb(store, job_id, owner, split, suspected_only, order, limit,
                                                          offset, filters)
    if memory_only:
        index = cache.get((job_id, "scores"))
    else:
        index = cache.fetch((job_id, "scores"),
                            lambda: _sized(build_score_index(score_rows(store, job_id, owner=owner))))
    if isinstance(index, ScoreIndex):
        return index.page_json(job_id, (order, split, suspected_only), limit, offset)
    if memory_only:
        return None
    return _page_from_duckdb(store, job_id, owner, split, suspected_only, order, limit, offset, RowFilter())


def _page_from_duckdb(store: Store, job_id: str, owner: str | None, split: str | None, suspected_only: bool,
                      order: str, limit: int, offset: int, filters: RowFilter) -> bytes:
    rows, total = score_page(store, job_id, owner=owner, split=split, suspected_only=suspected_only, order=order,
                             limit=limit, offset=offset, filters=filters)
    return ExamplePage(job_id=job_id, total=total, limit=limit, offset=offset,
                       items=[ExampleOut(**r) for r in rows.to_pylist()]).model_dump_json().encode()


def dynamics_json(store: Store, cache: ResultCache, job_id: str, n_bins: int = 20, owner: str | None = None,
                  memory_only: bool = False) -> bytes | None:
    """DynamicsOut JSON, rendered once per (job, n_bins)."""
    if not _succeeded(store, cache, job_id, owner, memory_only):
        return None
    return _cached_json(cache, (job_id, ("dynamics", n_bins)), memory_only, lambda: DynamicsOut(
        job_id=job_id, n_bins=n_bins, epochs=dynamics_histograms(store, job_id, n_bins, owner)).model_dump_json())


def adaboost_json(store: Store, cache: ResultCache, job_id: str, owner: str | None = None,
                  memory_only: bool = False) -> bytes | None:
    """AdaBoostOut JSON, rendered once per job."""
    job = _succeeded(store, cache, job_id, owner, memory_only)
    if job is None:
        return None
    _check_adaboost(job)
    return _cached_json(cache, (job_id, "adaboost"), memory_only,
                        lambda: adaboost_comparison(store, job_id, owner).model_dump_json())


def warm_cache(store: Store, cache: ResultCache, job: jobs.Job) -> None:
    """Fill the cache for a job that just succeeded, so its first readers do not wait for the
    sort (about 0.35 s for 100k examples) and many first readers do not queue behind it."""
    if job.status != "succeeded":
        return
    job_json(store, cache, job.job_id, job.owner)
    example_page_json(store, cache, job.job_id, owner=job.owner, limit=1)
    dynamics_json(store, cache, job.job_id, owner=job.owner)
    if job.adaboost.enabled:
        adaboost_json(store, cache, job.job_id, owner=job.owner)


def _cached_job(cache: ResultCache, job_id: str, owner: str | None) -> CachedJob | None:
    """The cached succeeded job, after the owner check (another owner's job is not found)."""
    hit = cache.get((job_id, "job"))
    if not isinstance(hit, CachedJob):
        return None
    if hit.job.owner != owner:
        raise NotFound(f"job {job_id} not found")
    return hit


def _succeeded(store: Store, cache: ResultCache, job_id: str, owner: str | None,
               memory_only: bool = False) -> jobs.Job | None:
    """finished_job, answered from the cache once the job is known to have succeeded."""
    hit = _cached_job(cache, job_id, owner)
    if hit is not None or memory_only:
        return hit.job if hit is not None else None
    job = finished_job(store, job_id, owner)
    _remember(cache, job)
    return job


def _remember(cache: ResultCache, job: jobs.Job) -> CachedJob | None:
    if job.status != "succeeded":
        return None
    cached = CachedJob(job, jobs.job_out(job).model_dump_json().encode())
    cache.put((job.job_id, "job"), cached, 4096 + len(cached.json))  # the Job's objects: a few KB
    return cached


def _sized(index: ScoreIndex) -> tuple[ScoreIndex, int]:
    return index, index.nbytes


def _cached_json(cache: ResultCache, key: tuple, memory_only: bool, render: Callable[[], str]) -> bytes | None:
    if memory_only:
        hit = cache.get(key)
        return hit if isinstance(hit, bytes) else None

    def build() -> tuple[bytes, int]:
        data = render().encode()
        return data, len(data)

    hit = cache.fetch(key, build)
    return hit if isinstance(hit, bytes) else build()[0]
