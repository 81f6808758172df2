"""`curate demo`: scikit-learn's digits with planted label noise, scored end to end."""

from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from sklearn.datasets import load_digits

from models.spec import AdaBoostSpec, TrainSpec
from service.cli.backends import LocalBackend, RemoteBackend
from service.schemas import JobOut
from service.settings import Settings

Backend = LocalBackend | RemoteBackend


def plant_noise(y: np.ndarray, rate: float, n_classes: int, random_state: int) -> np.ndarray:
    """Flip round(rate * n) labels, chosen uniformly, each to a different class chosen uniformly."""
    rng = np.random.default_rng(random_state)
    flipped = rng.choice(len(y), size=int(round(rate * len(y))), replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy


def run_demo(backend: Backend, settings: Settings, *, noise: float, members: int, epochs: int, seed: int,
             console: Console, wait: Callable[[Backend, str], JobOut],
             summary: Callable[[Backend, JobOut], Any]) -> None:
    if not 0.0 <= noise < 0.9:
        raise ValueError(f"--noise must be in [0, 0.9), got {noise}")
    X, y = load_digits(return_X_y=True)
    noisy = plant_noise(y, noise, 10, seed)
    path = settings.demo_dir / f"digits-noise{noise:g}-seed{seed}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=X.astype(np.float32), y=noisy, class_names=np.array([str(i) for i in range(10)]))
    ds = backend.add_dataset(path, name="digits (demo)")
    job_id = backend.submit(ds.dataset_id, TrainSpec(n_members=members, n_epochs=epochs, random_state=seed),
                            AdaBoostSpec())
    job = wait(backend, job_id)
    summary(backend, job)
    flagged = np.array([r.example_id for r in backend.examples(job_id, suspected_only=True)], dtype=np.int64)
    truth = np.flatnonzero(noisy != y)
    hits = np.intersect1d(flagged, truth).size
    precision = hits / max(len(flagged), 1)
    recall = hits / max(len(truth), 1)
    console.print(f"planted {len(truth)} flips ({noise:.0%}); flagged {len(flagged)}; "
                  f"precision {precision:.3f}, recall {recall:.3f}")
