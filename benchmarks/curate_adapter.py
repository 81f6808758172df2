"""Curate's side of benchmarks/detection.py: the real pipeline (ingest -> DuckDB -> train -> score).

Tables go in as an NPZ; images as a zipped image folder (one PNG per example in its *noisy* class
folder), so the image form runs exactly what a user's upload runs: image ingestion, the model
`auto` picks for images, the same scoring.
"""

import io
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.spec import AdaBoostSpec, TrainSpec
from service.engine.engine import Engine
from service.read import queries
from service.settings import Settings


@dataclass(frozen=True)
class CurateOutput:
    mislabel_score: np.ndarray  # (n,) in the caller's example order
    is_flagged: np.ndarray  # (n,) bool
    estimated_n_errors: int
    seconds: float
    summary: dict  # the job's stored summary (estimated precision at the cut, the model used, ...)


def write_npz(path: Path, X: np.ndarray, y: np.ndarray, n_classes: int) -> Path:
    np.savez(path, X=np.asarray(X, dtype=np.float32), y=np.asarray(y),
             class_names=np.array([str(i) for i in range(n_classes)]))
    return path


def write_image_zip(path: Path, images: np.ndarray, y: np.ndarray) -> Path:
    """images (n, H, W) uint8 -> a zip of `<label>/<index>.png`; the index maps rows back."""
    with zipfile.ZipFile(path, "w") as archive:
        for i, (image, label) in enumerate(zip(images, y)):
            buffer = io.BytesIO()
            Image.fromarray(image, mode="L").save(buffer, format="PNG")
            archive.writestr(f"{int(label):02d}/{i:06d}.png", buffer.getvalue())
    return path


def run_curate(X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int = 0,
               images: np.ndarray | None = None, **spec: object) -> CurateOutput:
    """Score one noisy dataset end to end with the default TrainSpec (overridable) and no AdaBoost.

    With `images` ((n, H, W) uint8) the dataset is uploaded as an image folder instead of X."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if images is None:
            path = write_npz(Path(tmp) / "data.npz", X, y_noisy, n_classes)
        else:
            path = write_image_zip(Path(tmp) / "images.zip", images, y_noisy)
        # detection only: no explanations (explain_max_examples=0), so the wall time is training + scoring
        engine = Engine(Settings(data_dir=Path(tmp) / "curate", explain_max_examples=0))
        try:
            manifest = engine.add_dataset(path)
            job_id = engine.submit(manifest.dataset_id, TrainSpec(random_state=random_state, **spec),  # type: ignore[arg-type]
                                   AdaBoostSpec(enabled=False))
            job = engine.run(job_id)
            if job.status != "succeeded":
                raise RuntimeError(f"curate job {job_id} {job.status}: {job.error}")
            rows = queries.score_rows(engine.store, job_id)
        finally:
            engine.close()
    score = rows.column("mislabel_score").to_numpy().astype(np.float64)
    flagged = rows.column("is_suspected_mislabel").to_numpy(zero_copy_only=False).astype(bool)
    if images is not None:  # example ids follow the sorted class folders: map back by file name
        order = np.array([int(Path(s).stem) for s in rows.column("source").to_pylist()])
        score, flagged = score[np.argsort(order)], flagged[np.argsort(order)]
    return CurateOutput(mislabel_score=score, is_flagged=flagged,
                        estimated_n_errors=int(job.estimated_n_errors or 0),
                        seconds=time.perf_counter() - started, summary=dict(job.summary or {}))
