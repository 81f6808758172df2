"""Review decisions on a job's examples: an append-only history in `reviews`, latest row per
(job_id, example_id) wins, `clear` as the latest row means no decision.

Every request is validated whole (numpy over the request's arrays, not a loop of queries) and
written in one `store.transaction()`: all of its decisions are stored, or none. Labels are class
names at the edge and class indices in the table. The Engine drops the job's cached answers after
a decision is written (Engine.record_decisions), so the next read shows it.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from service.errors import InvalidReview
from service.schemas import AcceptSuggested, DecisionIn, ReviewOut, ReviewPage, ReviewResult
from service.store.db import Store, insert_arrow
from service.store.jobs import finished_job
from service.vocab import DECIDED

# the current review decision of each example of job $job: latest row wins, a latest `clear` = none
CURRENT_SQL = """
    SELECT * FROM (
        SELECT example_id, action, label, note, decided_by, decided_at FROM reviews WHERE job_id = $job
        QUALIFY row_number() OVER (PARTITION BY example_id ORDER BY seq DESC) = 1)
    WHERE action <> 'clear'"""
LOCAL = "local"  # decided_by without API keys, or in-process


@dataclass(frozen=True)
class Decisions:
    """The current decisions of one job, in example_id order."""

    example_id: npt.NDArray[np.int64]  # (n_decided,)
    action: npt.NDArray[np.str_]  # (n_decided,) relabel | keep | exclude
    label: npt.NDArray[np.int64]  # (n_decided,) class index of a relabel, -1 otherwise


def record_decisions(store: Store, job_id: str, decisions: list[DecisionIn], owner: str | None = None,
                     decided_by: str = LOCAL) -> ReviewResult:
    """Validate every decision, then store them all in one transaction (422 names the first bad one)."""
    job = finished_job(store, job_id, owner)
    if not decisions:
        raise InvalidReview("no decisions given")
    class_names, given = _dataset_labels(store, job.dataset_id)
    n = len(decisions)
    ids = np.fromiter((d.example_id for d in decisions), np.int64, n)
    actions = np.array([d.action for d in decisions], dtype=object)
    names = [d.label for d in decisions]
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.fromiter((-1 if s is None else index.get(s, -2) for s in names), np.int64, n)
    _check(job_id, job.dataset_id, ids, actions, labels, names, class_names, given)
    rows = pa.table({"example_id": pa.array(ids, pa.int32()), "action": pa.array(actions, pa.string()),
                     "label": pa.array(labels, pa.int16(), mask=labels < 0),
                     "note": pa.array([d.note for d in decisions], pa.string())})
    with store.transaction() as cur:
        base = _next_seq(cur, job_id)
        rows = rows.append_column("seq", pa.array(np.arange(base, base + n, dtype=np.int64)))
        insert_arrow(cur, "reviews", rows, {"job_id": job_id, "decided_by": decided_by, "decided_at": _now()})
        counts = decision_counts(cur, job_id)
    return ReviewResult(job_id=job_id, n_applied=n, counts=counts)


def accept_suggested(store: Store, job_id: str, accept: AcceptSuggested, owner: str | None = None,
                     decided_by: str = LOCAL) -> ReviewResult:
    """Relabel to the suggested label the `top` worst flagged examples, or every flagged one with
    mislabel_score >= `min_score`; examples that already have a decision keep it."""
    finished_job(store, job_id, owner)
    sql = f"""
        INSERT INTO reviews (job_id, seq, example_id, action, label, note, decided_by, decided_at)
        SELECT $job, $base + row_number() OVER (ORDER BY mislabel_score DESC, example_id), example_id, 'relabel',
               suggested_label, 'accepted suggestion', $by, $at
        FROM (SELECT * FROM example_scores WHERE job_id = $job AND is_suspected_mislabel
                AND suggested_label <> given_label AND ($min IS NULL OR mislabel_score >= $min)
              ORDER BY mislabel_score DESC, example_id LIMIT $top) s
        WHERE example_id NOT IN (SELECT example_id FROM ({CURRENT_SQL}))"""
    with store.transaction() as cur:
        params = {"job": job_id, "base": _next_seq(cur, job_id), "by": decided_by, "at": _now(),
                  "min": accept.min_score, "top": accept.top if accept.top is not None else 2**62}
        n = cur.execute(sql, params).fetchone()[0]
        counts = decision_counts(cur, job_id)
    return ReviewResult(job_id=job_id, n_applied=int(n), counts=counts)


def review_page(store: Store, job_id: str, *, action: str | None = None, limit: int = 100, offset: int = 0,
                owner: str | None = None) -> ReviewPage:
    """The examples with a current decision (optionally one action), by example_id."""
    job = finished_job(store, job_id, owner)
    if action is not None and action not in DECIDED:
        raise InvalidReview(f"action must be one of {', '.join(DECIDED)}, got {action!r}")
    sql = f"""
        SELECT c.example_id, e.source, $names[e.given_label + 1] AS given_label,
               $names[s.suggested_label + 1] AS suggested_label, s.mislabel_score, c.action,
               $names[c.label + 1] AS label, c.note, c.decided_by, c.decided_at
        FROM ({CURRENT_SQL}) c
        JOIN examples e ON e.dataset_id = $dataset AND e.example_id = c.example_id
        JOIN example_scores s ON s.job_id = $job AND s.example_id = c.example_id
        WHERE $action IS NULL OR c.action = $action
        ORDER BY c.example_id LIMIT $limit OFFSET $offset"""
    with store.reader() as cur:
        names = _class_names(cur, job.dataset_id)
        cur.execute(sql, {"job": job_id, "dataset": job.dataset_id, "names": names, "action": action,
                          "limit": limit, "offset": offset})
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, r)) for r in cur.fetchall()]
        counts = decision_counts(cur, job_id)
    for row in rows:
        row["decided_at"] = row["decided_at"].replace(tzinfo=UTC)
    total = counts[action] if action is not None else sum(counts.values())
    return ReviewPage(job_id=job_id, total=total, limit=limit, offset=offset, counts=counts,
                      items=[ReviewOut(**r) for r in rows])


def current_decisions(store: Store, job_id: str, owner: str | None = None) -> Decisions:
    """The job's current decisions as arrays (what a version applies)."""
    finished_job(store, job_id, owner)
    with store.reader() as cur:
        cols = cur.execute(f"SELECT example_id, action, coalesce(label, -1) AS label FROM ({CURRENT_SQL}) "
                           "ORDER BY example_id", {"job": job_id}).fetchnumpy()
    return Decisions(np.asarray(cols["example_id"], np.int64), np.asarray(cols["action"], dtype=str),
                     np.asarray(cols["label"], np.int64))


def decision_counts(cur: duckdb.DuckDBPyConnection, job_id: str) -> dict[str, int]:
    """{"relabel", "keep", "exclude"} -> current decisions of the job."""
    found = dict(cur.execute(f"SELECT action, count(*) FROM ({CURRENT_SQL}) GROUP BY action",
                             {"job": job_id}).fetchall())
    return {a: int(found.get(a, 0)) for a in DECIDED}


def _check(job_id: str, dataset_id: str, ids: np.ndarray, actions: np.ndarray, labels: np.ndarray,
           names: list[str | None], class_names: list[str], given: np.ndarray) -> None:
    """Raise InvalidReview for the first decision (in request order) the dataset cannot take."""
    n_examples = len(given)
    relabel = actions == "relabel"
    unknown = (ids < 0) | (ids >= n_examples)
    if unknown.any():
        raise InvalidReview(f"example {ids[unknown.argmax()]} not found in job {job_id} "
                            f"(its dataset {dataset_id} has examples 0..{n_examples - 1})")
    bad = relabel & (labels == -1)
    if bad.any():
        raise InvalidReview(f"example {ids[bad.argmax()]}: relabel needs a label (one of the dataset's classes)")
    bad = ~relabel & (labels != -1)
    if bad.any():
        i = bad.argmax()
        raise InvalidReview(f"example {ids[i]}: {actions[i]} takes no label (got {names[i]!r}); only relabel does")
    bad = labels == -2
    if bad.any():
        i = bad.argmax()
        shown = ", ".join(class_names[:20]) + (", ..." if len(class_names) > 20 else "")
        raise InvalidReview(f"example {ids[i]}: label {names[i]!r} is not a class of dataset {dataset_id} "
                            f"(classes: {shown})")
    bad = relabel & (labels == given[ids])
    if bad.any():
        i = bad.argmax()
        raise InvalidReview(f"example {ids[i]}: relabel to {names[i]!r} is its given label already "
                            "(use keep to confirm a label)")


def _dataset_labels(store: Store, dataset_id: str) -> tuple[list[str], np.ndarray]:
    """Class names and every example's given label (index by example_id)."""
    with store.reader() as cur:
        names = _class_names(cur, dataset_id)
        cols = cur.execute("SELECT given_label FROM examples WHERE dataset_id = ? ORDER BY example_id",
                           [dataset_id]).fetchnumpy()
    return names, np.asarray(cols["given_label"], np.int64)


def _class_names(cur: duckdb.DuckDBPyConnection, dataset_id: str) -> list[str]:
    row = cur.execute("SELECT class_names FROM datasets WHERE dataset_id = ?", [dataset_id]).fetchone()
    return json.loads(row[0])


def _next_seq(cur: duckdb.DuckDBPyConnection, job_id: str) -> int:
    return int(cur.execute("SELECT coalesce(max(seq), 0) + 1 FROM reviews WHERE job_id = ?",
                           [job_id]).fetchone()[0])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # stored in UTC, as every timestamp
