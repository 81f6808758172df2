"""Curate's side of benchmarks/detection.py: the real pipeline (ingest -> DuckDB -> train -> score)."""

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.spec import AdaBoostSpec, TrainSpec
from service import queries
from service.engine import Engine
from service.settings import Settings


@dataclass(frozen=True)
class CurateOutput:
    mislabel_score: np.ndarray  # (n,)
    is_flagged: np.ndarray  # (n,) bool
    estimated_n_errors: int
    seconds: float


def run_curate(X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int = 0,
               **spec: object) -> CurateOutput:
    """Score one noisy dataset end to end with the default TrainSpec (overridable) and no AdaBoost."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, X=np.asarray(X, dtype=np.float32), y=np.asarray(y_noisy),
                 class_names=np.array([str(i) for i in range(n_classes)]))
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
    return CurateOutput(mislabel_score=rows.column("mislabel_score").to_numpy().astype(np.float64),
                        is_flagged=rows.column("is_suspected_mislabel").to_numpy(zero_copy_only=False).astype(bool),
                        estimated_n_errors=int(job.estimated_n_errors or 0),
                        seconds=time.perf_counter() - started)
