"""Pretrained image features: `--features torchvision:resnet18` turns every image into the pooled
feature vector of a frozen, pretrained backbone, and the ensemble trains on those vectors (a
float32 table) instead of the pixels (issue 16, item 4).

At ingest, not per job: a backbone's pass over the images costs far more than one epoch of the
ensemble's MLP on its output, and every job of the dataset (other specs, re-scores, AdaBoost)
reads the same X.npy; the dataset stores the embeddings as X (kind "tabular", features
`resnet18[0]` ..) and keeps the decoded pixels as pixels.npy for the gallery's thumbnails.

The backbone runs in `models/features_worker.py`, a process of its own, so the service process
never imports torch. Weights are never downloaded: `--weights PATH` (a state_dict file) or the
file torchvision itself would have cached, `<torch hub dir>/checkpoints/<name from the weights
enum>`; neither found is a refusal naming the backbone and the paths looked at.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.errors import InvalidDataset


@dataclass(frozen=True)
class Backbone:
    name: str  # torchvision's builder, e.g. "resnet18"
    weights_file: str  # the file name of its DEFAULT weights in torchvision's cache (the URL's last part)
    dims: int  # length of the pooled feature vector the classifier head reads


# torchvision 0.29's DEFAULT weights; tests/service/test_features.py checks the names against the enums
BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("resnet18", "resnet18-f37072fd.pth", 512),
    Backbone("resnet50", "resnet50-11ad3fa6.pth", 2048),
    Backbone("mobilenet_v3_small", "mobilenet_v3_small-047dcff4.pth", 576),
    Backbone("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth", 1280),
)}
PREFIX = "torchvision:"


def parse_features(name: str, features: str) -> Backbone:
    """"torchvision:resnet18" (or just "resnet18") -> its Backbone; anything else is refused with the list."""
    text = features.strip()
    key = text[len(PREFIX):] if text.lower().startswith(PREFIX) else text
    if key.lower() in BACKBONES:
        return BACKBONES[key.lower()]
    supported = ", ".join(PREFIX + b for b in BACKBONES)
    raise InvalidDataset(f"{name}: --features {features!r} is not a supported backbone; supported: {supported}")


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub,
    else ~/.cache/torch/hub."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return Path(os.path.expanduser(home)) / "hub"


def find_weights(name: str, backbone: Backbone, weights: str | None) -> Path:
    """The weights file to load: the one given, else torchvision's cached one; refused when missing."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InvalidDataset(f"{name}: --weights {weights}: no such file (weights for {PREFIX}{backbone.name})")
        return path
    cached = torch_hub_dir() / "checkpoints" / backbone.weights_file
    if cached.is_file():
        return cached
    raise InvalidDataset(
        f"{name}: no weights for {PREFIX}{backbone.name}: none given (--weights PATH, a state_dict file) and "
        f"none in torchvision's cache (looked at {cached}); Curate never downloads: fetch them once with "
        f"torchvision.models.{backbone.name}(weights='DEFAULT') on a machine online, or pass --weights")


@dataclass(frozen=True)
class FeaturePlan:
    backbone: Backbone
    weights_path: Path  # exists


def plan_features(name: str, features: str, weights: str | None) -> FeaturePlan:
    """The backbone and its weights file, checked before a single image is decoded."""
    backbone = parse_features(name, features)
    return FeaturePlan(backbone, find_weights(name, backbone, weights))


def embed_images(name: str, pixels: np.ndarray,
                 plan: FeaturePlan) -> tuple[np.ndarray, list[str], dict[str, object]]:
    """(n, C, H, W) uint8 -> (n, d) float32 embeddings, their feature names and the report
    (backbone, weights file and sha256, dims, device, seconds), from a worker process."""
    backbone, path = plan.backbone, plan.weights_path
    sha256 = _sha256(path)
    with tempfile.TemporaryDirectory(prefix="curate-features-") as tmp:
        folder = Path(tmp)
        request = {"backbone": backbone.name, "weights_path": str(path.resolve()), "parent_pid": os.getpid(),
                   "pixels_path": str(folder / "pixels.npy"), "embeddings_path": str(folder / "embeddings.npy"),
                   "result_path": str(folder / "result.json")}
        np.save(folder / "pixels.npy", np.ascontiguousarray(pixels), allow_pickle=False)
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "models.features_worker", str(folder / "request.json")],
                              capture_output=True, text=True, check=False, env=_worker_env())
        result_file = folder / "result.json"
        result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.is_file() else {}
        if "error" in result:
            raise InvalidDataset(f"{name}: {result['error']}")
        if done.returncode != 0 or "dims" not in result:
            tail = result.get("crash") or done.stderr[-4000:]
            raise RuntimeError(f"the features worker for {backbone.name} failed (exit {done.returncode}): {tail}")
        X = np.load(folder / "embeddings.npy")
    if X.shape != (len(pixels), backbone.dims) or not np.isfinite(X).all():
        raise RuntimeError(f"the features worker for {backbone.name} returned {X.shape} embeddings "
                           f"(expected {(len(pixels), backbone.dims)}, all finite)")
    report = {"backbone": PREFIX + backbone.name, "weights_file": str(path.resolve()), "weights_sha256": sha256,
              **{k: result[k] for k in ("dims", "device", "input_size", "batch_size", "seconds", "embed_seconds")}}
    return X, [f"{backbone.name}[{j}]" for j in range(backbone.dims)], report


def _worker_env() -> dict[str, str]:
    """This environment with the folder holding `models/` first on PYTHONPATH, so the worker finds
    the same code from any working directory (a server started elsewhere, an uninstalled checkout)."""
    import models.lifeline  # torch-free: only its location is wanted

    root = str(Path(models.lifeline.__file__).resolve().parents[1])
    paths = [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
