"""What the read stage keeps in the Engine's result cache (service/result_cache.py) for a
succeeded job: its JobOut (CachedJob) and its per-example rows as JSON with every page order
precomputed (ScoreIndex). Jobs in any other status are never cached: they read DuckDB on every
request, so progress stays live.
"""

from dataclasses import dataclass
from typing import get_args

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pydantic_core
from pydantic import TypeAdapter

from service.schemas import ExampleOut
from service.store.jobs import Job
from service.vocab import ORDERS, SPLITS

PAGE_SPLITS = (None, *SPLITS)  # a page lists every split (None) or one
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
    renders it, and the positions sorted as vocab.order_by_sql sorts in SQL."""
    table = table.sort_by("example_id")
    missing = [c for c in table.column_names if c not in _NULLABLE and table.column(c).null_count]
    if missing:  # what validating ExampleOut would refuse; the columns' types are the model's already
        raise ValueError(f"scores without {', '.join(missing)}: not an ExampleOut")
    rows = [pydantic_core.to_json(r, inf_nan_mode="null") for r in table.to_pylist()]  # as ExampleOut's serializer
    ids = table.column("example_id").to_numpy()
    split = table.column("split").to_numpy(zero_copy_only=False)
    suspected = table.column("is_suspected_mislabel").to_numpy(zero_copy_only=False)
    positions: dict[PageKey, npt.NDArray[np.int32]] = {}
    for order, descending in ORDERS.items():
        values = table.column(order).to_numpy()
        ordered = np.lexsort((ids, -values if descending else values)).astype(np.int32)
        for name in PAGE_SPLITS:
            in_split = ordered if name is None else ordered[split[ordered] == name]
            positions[(order, name, False)] = in_split
            positions[(order, name, True)] = in_split[suspected[in_split]]
    return ScoreIndex(rows, positions)
