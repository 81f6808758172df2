"""Pretrained image features (issue 16, item 4): every image through a frozen torchvision backbone,
once, in a process of its own.

service/ingest/features.py starts it as `python -m models.features_worker REQUEST.json` so the
service process never imports torch; the request names the backbone, the weights file (already
found and checked to exist by the service: nothing here downloads), the decoded pixels (a .npy of
(n, C, H, W) uint8) and where to write the embeddings ((n, d) float32 .npy) and the result JSON.
A problem the user can fix (weights of another architecture, a file torch cannot read) comes back
as {"error": "..."} in the result and exit status 2; anything else is a crash with a traceback.

The backbone runs in eval mode without gradients, batched, on the GPU when there is one
(`models.ensemble.resolve_device("auto")`), with its weights' own preprocessing: resized to the
weights' crop size (224) with their interpolation and normalised by the ImageNet mean and std.
The images are already decoded to the dataset's size, so they are resized whole (no centre crop:
a thumbnail-sized image has no margin to spare). The classifier head is replaced by identity, so an
embedding is the pooled feature vector the head would have read (512 for resnet18).
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.lifeline import die_with

if TYPE_CHECKING:  # torch is imported inside the functions: this module starts fast
    from torch import nn

# backbone -> (torchvision builder, weights enum, the head replaced by identity)
_BACKBONES = {
    "resnet18": ("resnet18", "ResNet18_Weights", "fc"),
    "resnet50": ("resnet50", "ResNet50_Weights", "fc"),
    "mobilenet_v3_small": ("mobilenet_v3_small", "MobileNet_V3_Small_Weights", "classifier"),
    "efficientnet_b0": ("efficientnet_b0", "EfficientNet_B0_Weights", "classifier"),
}
BATCH_CPU = 64  # images per forward pass on the CPU
BATCH_CUDA = 256  # on a GPU


class WeightsMismatch(ValueError):
    """The weights file is not a state_dict of this backbone: a message for the user."""


def build_backbone(backbone: str, weights_path: str) -> tuple["nn.Module", Any]:  # Any: ImageClassification
    """(the model in eval mode, the weights' transforms): the torchvision model built with
    weights=None, the file's state_dict loaded strictly (a file of another architecture is refused
    by name), the head replaced by identity."""
    import torch
    import torchvision.models as tvm
    from torch import nn

    builder, enum_name, head = _BACKBONES[backbone]
    model = getattr(tvm, builder)(weights=None)
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, a pickle of objects, truncated
        raise WeightsMismatch(f"cannot read weights file {weights_path} for {backbone} ({type(e).__name__}: "
                              f"{str(e)[:200]})") from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the state_dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsMismatch(f"weights file {weights_path} does not hold a state_dict (a dict of tensors) for "
                              f"{backbone}; save one with torch.save(model.state_dict(), path)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        detail = (f"{len(missing)} of its {len(expected)} tensors missing (e.g. {missing[:3]}), "
                  f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if missing or unexpected
                  else str(e).splitlines()[1 if len(str(e).splitlines()) > 1 else 0].strip()[:300])
        raise WeightsMismatch(f"weights file {weights_path} is not a {backbone} state_dict: {detail}") from e
    setattr(model, head, nn.Identity())
    return model.eval(), getattr(tvm, enum_name).DEFAULT.transforms()


def embed_pixels(pixels: np.ndarray, backbone: str, weights_path: str) -> tuple[np.ndarray, dict[str, object]]:
    """(n, C, H, W) uint8 -> (n, d) float32 embeddings and {"dims", "device", "input_size", "batch_size",
    "embed_seconds" (the batches only, without loading torch and the backbone)}."""
    import torch
    import torch.nn.functional as F

    from models.ensemble import resolve_device

    model, transforms = build_backbone(backbone, weights_path)
    device = resolve_device("auto")
    model = model.to(device)
    size = int(transforms.crop_size[0])
    mode = transforms.interpolation.value  # "bilinear" | "bicubic"
    mean = torch.tensor(transforms.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(transforms.std, device=device).view(1, 3, 1, 1)
    batch = BATCH_CUDA if device.type == "cuda" else BATCH_CPU
    parts: list[np.ndarray] = []
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(pixels), batch):
            x = torch.from_numpy(np.ascontiguousarray(pixels[start:start + batch])).to(device).float() / 255.0
            if x.shape[1] == 1:  # grey: the same plane in R, G and B, as PIL's convert("RGB") does
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode=mode, align_corners=False,
                                  antialias=min(x.shape[-2:]) > size).clamp_(0.0, 1.0)
            parts.append(model((x - mean) / std).float().cpu().numpy())
    X = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
    return X.astype(np.float32, copy=False), {"dims": int(X.shape[1]), "device": str(device),
                                             "input_size": [size, size], "batch_size": batch,
                                             "embed_seconds": round(time.perf_counter() - started, 3)}


def main(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    die_with(request.get("parent_pid"))  # models/lifeline.py: no orphan outlives the service
    threads = int(os.environ.get("CURATE_TORCH_THREADS") or 0)
    result_path = Path(request["result_path"])
    started = time.perf_counter()
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        pixels = np.load(request["pixels_path"], mmap_mode="r")
        X, info = embed_pixels(pixels, request["backbone"], request["weights_path"])
        np.save(request["embeddings_path"], X, allow_pickle=False)
        result: dict[str, object] = {**info, "seconds": round(time.perf_counter() - started, 3)}
        status = 0
    except WeightsMismatch as e:
        result, status = {"error": str(e)}, 2
    except Exception:
        result, status = {"crash": traceback.format_exc()[-4000:]}, 1
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
