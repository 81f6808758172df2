"""Image data sets made offline from what scikit-learn ships (nothing downloads)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


def synthetic_digits(n: int = 10_000, side: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n digit-like (side x side) uint8 images: scikit-learn's 8x8 digits upscaled to 20x20, placed
    at a random offset of up to 4 px, with a random contrast and a little pixel noise; (n, side, side), labels."""
    from PIL import Image

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(y), size=n)
    big = np.stack([np.asarray(Image.fromarray((x.reshape(8, 8) * 255 / 16).astype(np.uint8)).resize((20, 20),
                                                                                                    Image.BILINEAR))
                    for x in X])
    out = np.zeros((n, side, side), dtype=np.float32)
    offsets = rng.integers(0, side - 20 + 1, size=(n, 2))
    for i, (p, (dy, dx)) in enumerate(zip(picks, offsets)):
        out[i, dy:dy + 20, dx:dx + 20] = big[p] * rng.uniform(0.7, 1.0)
    out += rng.normal(0, 8, size=out.shape)
    return np.clip(out, 0, 255).astype(np.uint8), y[picks]
