"""Finished jobs' results in memory, for the read endpoints: an LRU under a byte budget per store.

A succeeded job never changes again (retry refuses it, cancel leaves it as it is), so its JobOut,
its per-example rows and its dynamics and AdaBoost payloads are read from DuckDB once, rendered
to JSON once and then served from memory. Jobs in any other status are never cached: they read
DuckDB on every request, so progress stays live. Whatever removes or rewrites a succeeded job's
rows must call `forget_job` (deleting its dataset does: service.store.catalog.delete_dataset; a review
decision does too, as its rows carry `decision`: service.store.reviews).
"""

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import get_args

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pydantic_core
from pydantic import TypeAdapter

from service.store.jobs import Job
from service.schemas import ExampleOut
from service.store.db import Store

SPLITS = (None, "easy", "intermediate", "hard")
ORDER_KEYS = {"example_id": ("example_id", False), "mislabel_score": ("mislabel_score", True),
              "accessibility": ("accessibility", False), "consistency": ("consistency", False)}
# (sort column, descending) of each `order`, ties by example_id: as queries.ORDERS sorts in SQL
PageKey = tuple[str, str | None, bool]  # (order, split, suspected_only)
_NULLABLE = {name for name, field in ExampleOut.model_fields.items() if type(None) in get_args(field.annotation)}
_STR = TypeAdapter(str)


@dataclass(frozen=True)
class CachedJob:
    job: Job  # a succeeded job's row: its owner is checked on every hit
    json: bytes  # its JobOut


@dataclass(frozen=True)
class ScoreIndex:
    """Every example's row as ExampleOut JSON (in example_id order) and, per (order, split,
    suspected_only), the positions of the matching rows in that order."""

    rows: list[bytes]
    positions: dict[PageKey, npt.NDArray[np.int32]]

    @property
    def nbytes(self) -> int:  # the JSON, a bytes object's header and its list slot; the position arrays
        return sum(map(len, self.rows)) + 41 * len(self.rows) + sum(p.nbytes for p in self.positions.values())

    def page_json(self, job_id: str, key: PageKey, limit: int, offset: int) -> bytes:
        """One page as ExamplePage JSON."""
        positions = self.positions[key]
        items = b",".join([self.rows[i] for i in positions[offset:offset + limit].tolist()])
        head = b'{"job_id":%b,"total":%d,"limit":%d,"offset":%d,"items":[' % (
            _STR.dump_json(job_id), len(positions), limit, offset)  # ExamplePage's fields, in its order
        return head + items + b"]}"


def build_score_index(table: pa.Table) -> ScoreIndex:
    """From every row of a job (queries.SCORE_COLUMNS, any order): each row rendered as ExampleOut
    renders it, and the positions sorted as queries.ORDERS sorts in SQL."""
    table = table.sort_by("example_id")
    missing = [c for c in table.column_names if c not in _NULLABLE and table.column(c).null_count]
    if missing:  # what validating ExampleOut would refuse; the columns' types are the model's already
        raise ValueError(f"scores without {', '.join(missing)}: not an ExampleOut")
    rows = [pydantic_core.to_json(r, inf_nan_mode="null") for r in table.to_pylist()]  # as ExampleOut's serializer
    ids = table.column("example_id").to_numpy()
    split = table.column("split").to_numpy(zero_copy_only=False)
    suspected = table.column("is_suspected_mislabel").to_numpy(zero_copy_only=False)
    positions: dict[PageKey, npt.NDArray[np.int32]] = {}
    for order, (column, descending) in ORDER_KEYS.items():
        values = table.column(column).to_numpy()
        ordered = np.lexsort((ids, -values if descending else values)).astype(np.int32)
        for name in SPLITS:
            in_split = ordered if name is None else ordered[split[ordered] == name]
            positions[(order, name, False)] = in_split
            positions[(order, name, True)] = in_split[suspected[in_split]]
    return ScoreIndex(rows, positions)


class ResultCache:
    """LRU of (job_id, what) -> value under a byte budget; each value is built once even when many
    threads ask at the same time. A value larger than the whole budget is not kept: `fetch`
    answers None for it from then on, and the caller reads DuckDB instead."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[tuple[str, Hashable], tuple[object, int]] = OrderedDict()
        self._too_big: set[tuple[str, Hashable]] = set()
        self._building: dict[tuple[str, Hashable], threading.Lock] = {}
        self._generation: dict[str, int] = {}  # job_id -> forget_job calls: a build that began before one is not kept
        self._lock = threading.Lock()

    def get(self, key: tuple[str, Hashable]) -> object | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: tuple[str, Hashable], value: object, nbytes: int) -> bool:
        """Keep `value`, evicting the least recently used; False if it alone exceeds the budget."""
        with self._lock:
            self._drop(key)
            if nbytes > self.max_bytes:
                self._too_big.add(key)
                return False
            while self._items and self.nbytes + nbytes > self.max_bytes:
                self._drop(next(iter(self._items)))
            self._items[key] = (value, nbytes)
            self.nbytes += nbytes
            return True

    def fetch(self, key: tuple[str, Hashable], build: Callable[[], tuple[object, int]]) -> object | None:
        """The cached value, else `build()` -> (value, nbytes) once (other callers wait for it)."""
        if key in self._too_big:
            return None
        hit = self.get(key)
        if hit is not None:
            return hit
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            hit = self.get(key)
            if hit is None and key not in self._too_big:
                generation = self._generation.get(key[0], 0)
                value, nbytes = build()
                with self._lock:
                    current = self._generation.get(key[0], 0) == generation
                # forgotten while this built (a review decision committed): keep nothing stale; None
                # sends the caller to DuckDB
                hit = value if current and self.put(key, value, nbytes) else None
            with self._lock:
                self._building.pop(key, None)
        return hit

    def forget_job(self, job_id: str) -> None:
        with self._lock:
            self._generation[job_id] = self._generation.get(job_id, 0) + 1
            for key in [k for k in self._items if k[0] == job_id]:
                self._drop(key)
            self._too_big = {k for k in self._too_big if k[0] != job_id}

    def _drop(self, key: tuple[str, Hashable]) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]


_CACHES: "weakref.WeakKeyDictionary[Store, ResultCache]" = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def result_cache(store: Store, max_mb: float) -> ResultCache:
    """The cache of this store (one per open store; the first caller sets its budget)."""
    cache = _CACHES.get(store)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.setdefault(store, ResultCache(int(max_mb * 1024**2)))
    return cache


def forget_job(store: Store, job_id: str) -> None:
    """Drop a job's cached results (call it wherever a succeeded job is deleted or rewritten)."""
    cache = _CACHES.get(store)
    if cache is not None:
        cache.forget_job(job_id)
