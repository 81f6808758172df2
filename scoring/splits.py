"""Easy / intermediate / hard splits from accessibility (mean consistency over training).

Defaults [ours]: easy when accessibility >= 0.8 (every member gets it right for most of
training), hard when accessibility < 0.3 (most members get it wrong most of the time),
intermediate in between. Both thresholds are settings and are stored with each job.
"""

import numpy as np
import numpy.typing as npt

EASY, INTERMEDIATE, HARD = "easy", "intermediate", "hard"
SPLITS = (EASY, INTERMEDIATE, HARD)


def compute_splits(
    accessibility: npt.NDArray[np.float64],  # (n_examples,) in [0, 1]
    easy_at_least: float = 0.8,
    hard_below: float = 0.3,
) -> npt.NDArray[np.str_]:
    """Split name per example, (n_examples,) of "easy" / "intermediate" / "hard"."""
    if not 0.0 <= hard_below <= easy_at_least <= 1.0:
        raise ValueError(f"need 0 <= hard_below ({hard_below}) <= easy_at_least ({easy_at_least}) <= 1")
    if accessibility.ndim != 1:
        raise ValueError(f"accessibility must be (n_examples,), got shape {accessibility.shape}")
    out = np.full(accessibility.shape, INTERMEDIATE, dtype=object)
    out[accessibility >= easy_at_least] = EASY
    out[accessibility < hard_below] = HARD
    return out.astype(str)
