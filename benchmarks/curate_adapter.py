"""TEMPORARY placeholder: the lead engineer replaces this with Curate's adapter.

`run_curate(X, y_noisy, n_classes, random_state)` must return an object with
`mislabel_score` (n_examples,) float, `is_flagged` (n_examples,) bool,
`estimated_n_errors` int and `seconds` float. Until then `benchmarks/detection.py`
catches the NotImplementedError and records Curate as "n/a".
"""

from __future__ import annotations

import numpy as np


def run_curate(X: np.ndarray, y_noisy: np.ndarray, n_classes: int, random_state: int) -> object:
    raise NotImplementedError("benchmarks/curate_adapter.py is a placeholder")
