"""Throughput of the pretrained-features pass (issue 16, item 4): images/s of `--features` for a
folder of small PNGs, through the service's own ingest (load_dataset -> models/features_worker.py).

    OMP_NUM_THREADS=1 CURATE_TORCH_THREADS=1 python benchmarks/features.py [--n 2000] [--backbones mobilenet_v3_small,resnet18]

Weights are random-init state_dicts made here (nothing is downloaded; throughput does not depend on
the values). The worker's own "seconds" (torch import, model build, every batch) and the whole
ingest (decode + worker + checks) are both reported. Detection quality with real ImageNet weights
is not measured by this script (no weights offline).
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from service.ingest.formats import load_dataset
from service.ingest.options import IngestOptions


def write_digits(root: Path, n: int) -> None:
    """n digits as 8-32 px RGB PNGs in class folders (mixed sizes: the default resize applies)."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        side = int(rng.integers(8, 33))
        grey = Image.fromarray((X[i % len(X)].reshape(8, 8) * 255 / 16).astype(np.uint8))
        folder = root / f"digit_{y[i % len(y)]}"
        folder.mkdir(parents=True, exist_ok=True)
        grey.resize((side, side), Image.Resampling.BILINEAR).convert("RGB").save(folder / f"{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--backbones", default="mobilenet_v3_small,resnet18")
    args = parser.parse_args()
    import torch  # this benchmark process only makes the weights files; the pass runs in the worker
    import torchvision

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "digits"
        write_digits(root, args.n)
        started = time.perf_counter()
        plain = load_dataset(root)
        decode_s = time.perf_counter() - started
        for name in args.backbones.split(","):
            weights = Path(tmp) / f"{name}.pt"
            torch.save(getattr(torchvision.models, name)().state_dict(), weights)
            started = time.perf_counter()
            ds = load_dataset(root, IngestOptions(features=f"torchvision:{name}", weights=str(weights)))
            total = time.perf_counter() - started
            report = ds.report["features"]
            results.append({"backbone": name, "n_images": len(ds.y), "pixels": list(plain.X.shape[1:]),
                            "dims": report["dims"], "device": report["device"], "worker_s": report["seconds"],
                            "ingest_s": round(total, 2),
                            "embed_s": report["embed_seconds"],
                            "images_per_s_batches": round(len(ds.y) / report["embed_seconds"], 1),
                            "images_per_s_worker": round(len(ds.y) / report["seconds"], 1),
                            "images_per_s_ingest": round(len(ds.y) / total, 1)})
    print(json.dumps({"command": "OMP_NUM_THREADS=1 CURATE_TORCH_THREADS=1 python benchmarks/features.py "
                      f"--n {args.n} --backbones {args.backbones}",
                      "torch_threads": os.environ.get("CURATE_TORCH_THREADS", "default"),
                      "decode_only_s": round(decode_s, 2), "results": results}, indent=2))


if __name__ == "__main__":
    main()
