"""Attributions in the store: which examples to explain after a job, the inputs an explanation
needs, the rows of computed maps (the maps themselves are .npy files under the job's folder)."""

import json

import numpy as np
import pyarrow as pa

from service.errors import NotFound
from service.store.db import Store, insert_arrow
from service.store.jobs import finished_job


def explain_candidates(store: Store, job_id: str) -> list[int]:
    """The suspected mislabels (worst first), then the hard examples (hardest first)."""
    with store.reader() as cur:
        return [r[0] for r in cur.execute(
            "SELECT example_id FROM example_scores WHERE job_id = ? AND (is_suspected_mislabel OR split = 'hard') "
            "ORDER BY is_suspected_mislabel DESC, CASE WHEN is_suspected_mislabel THEN -mislabel_score "
            "ELSE accessibility END, example_id", [job_id]).fetchall()]


def explain_inputs(store: Store, job_id: str, dataset_id: str, example_ids: list[int]
                   ) -> tuple[str, int, list[str] | None, dict[str, np.ndarray]]:
    """(dataset kind, n_classes, feature names, {example_id, given_label, suggested_label} arrays
    in example_id order) for explaining these examples."""
    with store.reader() as cur:
        kind, n_classes, feature_names = cur.execute(
            "SELECT kind, n_classes, feature_names FROM datasets WHERE dataset_id = ?", [dataset_id]).fetchone()
        labels = cur.execute("SELECT example_id, given_label, suggested_label FROM example_scores WHERE job_id = ? "
                             "AND example_id IN (SELECT unnest(?::INTEGER[])) ORDER BY example_id",
                             [job_id, example_ids]).fetchnumpy()
    return kind, int(n_classes), json.loads(feature_names) if feature_names else None, labels


def replace_attributions(store: Store, job_id: str, example_ids: list[int], methods: list[str],
                         rows: pa.Table) -> None:
    """These examples' rows of these methods, replaced in one transaction."""
    with store.transaction() as cur:
        cur.execute("DELETE FROM attributions WHERE job_id = ? AND example_id IN (SELECT unnest(?::INTEGER[])) "
                    "AND method IN (SELECT unnest(?::VARCHAR[]))", [job_id, example_ids, methods])
        insert_arrow(cur, "attributions", rows, {"job_id": job_id})


def attribution_row(store: Store, job_id: str, example_id: int, target: str, method: str,
                    owner: str | None = None) -> dict | None:
    """One stored attribution summary (target_label by class name), or None if not computed yet.
    Raises NotFound for an example outside the job's dataset, JobNotFinished before success."""
    job = finished_job(store, job_id, owner)
    with store.reader() as cur:
        if not cur.execute("SELECT 1 FROM example_scores WHERE job_id = ? AND example_id = ?",
                           [job_id, example_id]).fetchone():
            raise NotFound(f"example {example_id} not found in job {job_id}")
        cur.execute("SELECT a.*, json_extract_string(d.class_names, '$[' || a.target_label || ']') AS label_name "
                    "FROM attributions a JOIN datasets d ON d.dataset_id = ? WHERE a.job_id = ? "
                    "AND a.example_id = ? AND a.target = ? AND a.method = ?",
                    [job.dataset_id, job_id, example_id, target, method])
        row = cur.fetchone()
        columns = [d[0] for d in cur.description]
    if row is None:
        return None
    out = dict(zip(columns, row))
    out["target_label"] = out.pop("label_name")
    out["per_layer_bias_share"] = json.loads(out["per_layer_bias_share"])
    out["top_features"] = json.loads(out["top_features"])
    return out
