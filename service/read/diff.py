"""Two jobs compared example by example: job b scored a version derived (directly or through other
versions) from job a's dataset, or the same dataset. Examples are matched by lineage, the row of
the original upload they come from, never by example_id (excluded rows shift the ids)."""

from collections import Counter

from service.errors import NotDerived
from service.read import queries
from service.schemas import ClassDiff, DiffOut, SuspectCounts
from service.store.db import Store
from service.vocab import SPLITS

# one row per (labels, splits, suspect flags) combination over a FULL JOIN on the root example
_DIFF_SQL = """
    WITH a AS (
        SELECT coalesce(e.root_example_id, e.example_id) AS root, e.given_label, s.split, s.is_suspected_mislabel AS sus
        FROM examples e JOIN example_scores s ON s.job_id = $job_a AND s.example_id = e.example_id
        WHERE e.dataset_id = $dataset_a),
    b AS (
        SELECT coalesce(e.root_example_id, e.example_id) AS root, e.given_label, s.split, s.is_suspected_mislabel AS sus
        FROM examples e JOIN example_scores s ON s.job_id = $job_b AND s.example_id = e.example_id
        WHERE e.dataset_id = $dataset_b)
    SELECT a.given_label, b.given_label, a.split, b.split, a.sus, b.sus, count(*)
    FROM a FULL OUTER JOIN b ON a.root = b.root
    GROUP BY ALL"""


def diff_jobs(store: Store, job_a: str, job_b: str, owner: str | None = None) -> DiffOut:
    """Estimated errors before/after, split transitions, suspects resolved/still/new, per class."""
    a, b = queries.finished_job(store, job_a, owner), queries.finished_job(store, job_b, owner)
    chain = _ancestry(store, b.dataset_id)
    if a.dataset_id not in chain:
        raise NotDerived(f"job {job_b} scored dataset {b.dataset_id}, which is not derived from dataset "
                         f"{a.dataset_id} of job {job_a} (its lineage: {' <- '.join(chain)})")
    class_names = queries.get_dataset(store, a.dataset_id, owner).class_names
    with store.reader() as cur:
        groups = cur.execute(_DIFF_SQL, {"job_a": job_a, "job_b": job_b, "dataset_a": a.dataset_id,
                                         "dataset_b": b.dataset_id}).fetchall()
    splits = {s: {t: 0 for t in SPLITS} for s in SPLITS}
    suspects: Counter[str] = Counter()
    per_class: dict[str, Counter[str]] = {c: Counter() for c in class_names}
    excluded = relabelled = 0
    for label_a, label_b, split_a, split_b, sus_a, sus_b, n in groups:
        if label_a is not None and sus_a:
            per_class[class_names[label_a]]["suspects_a"] += n
        if label_b is not None and sus_b:
            per_class[class_names[label_b]]["suspects_b"] += n
        if label_b is None:  # a row of a that the version dropped
            excluded += n
            continue
        if label_a is None:
            continue  # cannot happen for a version of a's dataset: versions only drop rows
        splits[split_a][split_b] += n
        relabelled += n if label_a != label_b else 0
        kind = ("still_suspect" if sus_b else "resolved") if sus_a else ("new" if sus_b else None)
        if kind:
            suspects[kind] += n
            if kind != "still_suspect":
                per_class[class_names[label_a if kind == "resolved" else label_b]][kind] += n
    return DiffOut(job_a=job_a, job_b=job_b, dataset_a=a.dataset_id, dataset_b=b.dataset_id,
                   estimated_errors={"a": a.estimated_n_errors, "b": b.estimated_n_errors}, splits=splits,
                   suspects=SuspectCounts(**{k: suspects[k] for k in ("resolved", "still_suspect", "new")}),
                   per_class=[ClassDiff(class_=c, **{k: counts[k] for k in ("suspects_a", "suspects_b", "resolved",
                                                                             "new")})
                              for c, counts in per_class.items()],
                   excluded=excluded, relabelled=relabelled)


def _ancestry(store: Store, dataset_id: str) -> list[str]:
    """The dataset, its parent, the parent's parent, ... up to the original upload."""
    with store.reader() as cur:
        rows = cur.execute("WITH RECURSIVE up(dataset_id, parent_id, depth) AS ("
                           "SELECT dataset_id, parent_id, 0 FROM datasets WHERE dataset_id = ? UNION ALL "
                           "SELECT d.dataset_id, d.parent_id, u.depth + 1 FROM datasets d "
                           "JOIN up u ON d.dataset_id = u.parent_id) SELECT dataset_id FROM up ORDER BY depth",
                           [dataset_id]).fetchall()
    return [r[0] for r in rows]
