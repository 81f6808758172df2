"""The result cache: an LRU of (job_id, what) -> value under a byte budget, owned by the Engine.

A succeeded job never changes again (retry refuses it, cancel leaves it as it is), so the read
stage (service/read/queries.py) renders its JobOut, its per-example rows and its dynamics and
AdaBoost payloads once and keeps them here. Whatever removes or rewrites a succeeded job's rows
calls `forget_job`: the Engine does, for a dataset deleted and for a review decision (its rows
carry `decision`). Our own code, not functools.lru_cache or cachetools: entries are sized in bytes
(a 100k-example index is ~30 MB, a job's JSON a few KB), each value is built once however many
threads ask, and a build that began before a `forget_job` is not kept (test_result_cache.py).
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


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
