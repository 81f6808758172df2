"""Attributions of a finished job: why the ensemble gives an example its given label, and what
speaks for the suggested one (issue 6, item 3; SCIENCE.md section 3).

After scoring, `run_job` keeps the trained ensemble (`keep_model`) and explains every suspected
mislabel and every hard example (`explain_job`, worst first, at most `explain_max_examples`);
`curate explain` and GET /jobs/{id}/examples/{example_id}/attribution explain any other example on
demand (`explain_example`). The torch work runs in a worker process (`models.worker.run_explain`);
this module writes each map to `jobs/<job_id>/attributions/<example_id>-<target>-<method>.npy`
(plus a PNG heatmap for images), then the summaries into the `attributions` table: file first,
then row. Maps are averaged over all members and taken w.r.t. the normalised input the network
sees (standardised tables, per-channel normalised images).
"""

import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from service.engine.executors.local import worker_context
from service.errors import InvalidQuery, ModelNotKept
from service.fsutil import atomic_path
from service.ingest.columns import sum_by_column
from service.ingest.files import load_columns
from service.limits import WorkQueue
from service.schemas import AttributionOut
from service.settings import Settings
from service.store import attributions, jobs
from service.store.db import Store, to_json
from service.vocab import ATTRIBUTION_METHODS, ATTRIBUTION_TARGETS, DEFAULT_METHODS

TARGETS = ATTRIBUTION_TARGETS
METHODS = ATTRIBUTION_METHODS  # models.attribution.METHODS, repeated in vocab (a test keeps them equal)
N_TOP_FEATURES = 10
HEATMAP_PX = 128  # heatmaps are scaled up (nearest neighbour) to about this height


def model_path(settings: Settings, job_id: str, group: int) -> Path:
    return settings.model_path(job_id, group)


def keep_model(settings: Settings, job: jobs.Job) -> bool:
    """Keep each ensemble group's final checkpoint as jobs/<job_id>/model/ensemble-group-<g>.pt and
    delete the rest of the job's folder (the other checkpoints were only for resuming). Torch-free:
    the explain worker drops the optimizer state the first time it loads the file. False when a
    group's final checkpoint is not here (Ray on several machines without shared storage leaves it on
    the worker's node; with ray_shared_dir the executor moves it here first); then nothing can be explained."""
    job_dir = settings.job_dir(job.job_id)
    kept = True
    for group in range(len(job.spec.member_groups())):
        final = settings.checkpoint_dir(job.job_id, "ensemble", group) / f"epoch-{job.spec.n_epochs}.pt"
        dest = model_path(settings, job.job_id, group)
        if final.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            final.replace(dest)
        kept = kept and dest.exists()
    leftovers = [p for p in job_dir.iterdir() if p.name not in ("model", "attributions")] if job_dir.exists() else []
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return kept


def explain_job(store: Store, settings: Settings, job: jobs.Job) -> None:
    """Explain the suspected mislabels (worst first), then the hard examples (hardest first), at
    most `explain_max_examples`, for both targets with DEFAULT_METHODS; the job's summary says how
    many under "attributions". A failure is recorded there and in the events, never fails the job:
    its scores are already stored."""
    started = time.perf_counter()
    ids = attributions.explain_candidates(store, job.job_id)
    chosen = sorted(ids[:settings.explain_max_examples])
    info: dict[str, object] = {"n_candidates": len(ids), "n_explained": len(chosen), "targets": list(TARGETS),
                               "methods": list(DEFAULT_METHODS)}
    try:
        if chosen:
            info["parts_seconds"] = compute_attributions(store, settings, job, chosen, DEFAULT_METHODS)
    except Exception as exc:  # attributions are extras: record why they are missing, keep the scores
        info.update(n_explained=0, error=f"{type(exc).__name__}: {exc}")
    info["seconds"] = round(time.perf_counter() - started, 2)
    with store.transaction() as cur:
        jobs.update_summary(cur, job.job_id, {"attributions": info})
        done = f"{len(chosen)} of {len(ids)} flagged or hard examples explained in {info['seconds']} s"
        jobs.add_event(cur, job.job_id, "explained", str(info.get("error", done)))


_QUEUES: dict[tuple[int, int], WorkQueue] = {}


def attribution_queue(settings: Settings) -> WorkQueue:
    """The on-demand attributions' queue of this process (one per attribution_workers, _queue setting)."""
    key = (settings.attribution_workers, settings.attribution_queue)
    if key not in _QUEUES:
        _QUEUES[key] = WorkQueue("attributions", *key)
    return _QUEUES[key]


def explain_example(store: Store, settings: Settings, job_id: str, example_id: int, method: str = "bias",
                    target: str = "given", owner: str | None = None) -> AttributionOut:
    """One example's attribution with its full map; computed (both targets) and stored first if missing."""
    if method not in METHODS:
        raise InvalidQuery(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if target not in TARGETS:
        raise InvalidQuery(f"target must be given or suggested, got {target!r}")
    row = attributions.attribution_row(store, job_id, example_id, target, method, owner)
    if row is None or not (settings.data_dir / row["map_path"]).exists():
        with attribution_queue(settings).slot():  # bounded: 429 with Retry-After past the queue
            compute_attributions(store, settings, jobs.get_job(store, job_id, owner), [example_id], [method])
        row = attributions.attribution_row(store, job_id, example_id, target, method, owner)
    values = np.load(settings.data_dir / row["map_path"])  # type: ignore[index]
    by_column = column_attribution(settings, jobs.get_job(store, job_id, owner).dataset_id, values)
    return AttributionOut(**row, map_shape=list(values.shape), map=values.ravel().tolist(),  # type: ignore[arg-type]
                          by_column=by_column)


def column_attribution(settings: Settings, dataset_id: str, values: np.ndarray) -> list[dict] | None:
    """A table's map said in the user's columns: per original column (columns.json), the attribution
    summed over its features, largest |value| first. None without columns.json (images, NPZ, tables
    stored before it) or for a map that is not one value per feature."""
    columns = load_columns(settings.datasets_dir, dataset_id)
    feature_column = (columns or {}).get("feature_column")
    if not feature_column or values.size != len(feature_column):
        return None
    sums = sum_by_column(values.ravel(), feature_column)
    return [{"column": c, "value": v} for c, v in sorted(sums.items(), key=lambda item: -abs(item[1]))]


def compute_attributions(store: Store, settings: Settings, job: jobs.Job, example_ids: Sequence[int],
                         methods: Sequence[str]) -> dict[str, float]:
    """Explain these examples for both targets with each method in a worker process (on the job's
    device), write the maps (and heatmaps), then replace their rows in one transaction. Returns the
    seconds of each part: {"worker": ..., "files": ..., "rows": ...}."""
    kind, n_classes, names, labels = attributions.explain_inputs(store, job.job_id, job.dataset_id, list(example_ids))
    groups = job.spec.member_groups()
    missing = [g for g in range(len(groups)) if not model_path(settings, job.job_id, g).exists()]
    if missing:
        raise ModelNotKept(f"job {job.job_id} kept no trained model for member groups {missing}: it finished "
                           "before models were kept, or it ran on Ray workers without shared storage (its final "
                           "weights stayed on their nodes; see docs/ray.md)")
    ids = labels["example_id"].astype(np.int64)
    targets = {"given": labels["given_label"].astype(int).tolist(),
               "suggested": labels["suggested_label"].astype(int).tolist()}
    ds = settings.datasets_dir / job.dataset_id
    started = time.perf_counter()
    result = _run_worker(job_dir=str(settings.job_dir(job.job_id)), spec_json=job.spec.model_dump_json(),
                         members_by_group=groups, x_path=str(ds / "X.npy"), y_path=str(ds / "y.npy"),
                         n_classes=n_classes, example_ids=ids.tolist(), targets=targets, methods=list(methods),
                         n_threads=settings.threads_per_worker(cnn=kind == "image" and job.spec.model != "mlp"))
    worker_done = time.perf_counter()
    images = np.load(ds / "X.npy", mmap_mode="r") if kind == "image" else None
    rows = _save_maps(settings, job.job_id, ids, targets, methods, result, images, names)
    files_done = time.perf_counter()
    attributions.replace_attributions(store, job.job_id, ids.tolist(), list(methods), rows)
    return {"worker": round(worker_done - started, 2), "files": round(files_done - worker_done, 2),
            "rows": round(time.perf_counter() - files_done, 2)}


def _run_worker(**kwargs: object) -> dict[str, dict[str, np.ndarray]]:
    from models.worker import run_explain  # torch-free module: the child imports torch itself

    with ProcessPoolExecutor(max_workers=1, mp_context=worker_context()) as pool:
        return pool.submit(run_explain, **kwargs, parent_pid=os.getpid()).result()


def _save_maps(settings: Settings, job_id: str, ids: np.ndarray, targets: dict[str, list[int]],
               methods: Sequence[str], result: dict[str, dict[str, np.ndarray]], images: np.ndarray | None,
               feature_names: list[str] | None) -> pa.Table:
    """Write every map (.npy, and a heatmap for images); return their rows. Files are written by a
    few threads (PNG compression and file writes release the GIL): 2,000 examples make 8,000 maps."""
    folder = settings.attributions_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)

    def one(target: str, i: int, example_id: int) -> list[dict[str, object]]:
        parts = result[target]
        g, b = float(parts["gradient_term"][i]), float(parts["bias_term"][i])
        rows = []
        for method in methods:
            values = parts[method][i].astype(np.float32)
            path = folder / f"{example_id}-{target}-{method}.npy"
            _save_npy(path, values)
            heatmap = None
            if images is not None:
                heatmap = save_heatmap(np.asarray(images[example_id]), values, path.with_suffix(".png"))
            rows.append({"example_id": example_id, "target": target, "target_label": targets[target][i],
                         "method": method, "logit": float(parts["logit"][i]), "gradient_term": g, "bias_term": b,
                         "bias_share": abs(b) / (abs(g) + abs(b)) if g or b else 0.0,
                         "per_layer_bias_share": to_json(parts["per_layer_bias_share"][i].tolist()),
                         "top_features": to_json(top_features(values, feature_names)),
                         "map_path": path.relative_to(settings.data_dir).as_posix(),
                         "heatmap_path": heatmap.relative_to(settings.data_dir).as_posix() if heatmap else None})
        return rows

    work = [(target, i, example_id) for target in result for i, example_id in enumerate(ids.tolist())]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        rows = [row for part in pool.map(lambda w: one(*w), work) for row in part]
    cols = {k: [r[k] for r in rows] for k in ("example_id", "target", "target_label", "method", "logit",
                                              "gradient_term", "bias_term", "bias_share", "per_layer_bias_share",
                                              "top_features", "map_path", "heatmap_path")}
    return pa.table({**cols, "example_id": pa.array(cols["example_id"], pa.int32()),
                     "heatmap_path": pa.array(cols["heatmap_path"], pa.string())})


def top_features(values: np.ndarray, feature_names: list[str] | None = None) -> list[dict[str, object]]:
    """The N_TOP_FEATURES largest |values|, largest first: a table's feature name, or "pixel (c, y, x)"."""
    flat = values.ravel()
    order = np.argsort(-np.abs(flat), kind="stable")[:N_TOP_FEATURES]
    out: list[dict[str, object]] = []
    for i in order.tolist():
        index = [int(v) for v in np.unravel_index(i, values.shape)]
        name = feature_names[i] if feature_names and values.ndim == 1 else f"pixel ({', '.join(map(str, index))})"
        out.append({"feature": name, "index": index, "value": float(flat[i])})
    return out


def save_heatmap(image: np.ndarray, values: np.ndarray, path: Path) -> Path:
    """The image ((C, H, W) uint8, grey or RGB) and the map summed over channels (blue < 0 < red,
    symmetric around 0) side by side, scaled up with nearest neighbours; written atomically.
    PIL with a matplotlib colour map: about 1 ms a file (a matplotlib figure takes ~27 ms)."""
    from matplotlib import colormaps
    from PIL import Image

    c, h, w = image.shape
    rgb = np.repeat(image, 3, axis=0) if c == 1 else image[:3]
    heat = values.reshape(image.shape).sum(axis=0)
    peak = float(np.abs(heat).max()) or 1.0
    coloured = (colormaps["RdBu_r"](0.5 + 0.5 * heat / peak)[..., :3] * 255).astype(np.uint8)
    gap = np.full((h, max(1, w // 8), 3), 255, dtype=np.uint8)
    both = np.concatenate([rgb.transpose(1, 2, 0), gap, coloured], axis=1)
    k = max(1, HEATMAP_PX // h)
    with atomic_path(path, fsync=False) as tmp:  # thousands of maps: the row commits after them all
        Image.fromarray(both).resize((both.shape[1] * k, h * k), Image.Resampling.NEAREST).save(tmp, format="PNG")
    return path


def _save_npy(path: Path, values: np.ndarray) -> None:
    with atomic_path(path, fsync=False) as tmp, tmp.open("wb") as f:
        np.save(f, values)
