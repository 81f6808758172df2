"""Attributions of a finished job's ensemble, averaged over all its members (issue 6, item 3).

Runs in a spawned process (service/engine/explain.py calls it through `models.worker.run_explain`) and
never touches DuckDB. The engine keeps each member group's final weights as
`<job_dir>/model/ensemble-group-<g>.pt`; here each group's network is rebuilt exactly as
`train_group` built it (`resolve_model`, `build_ensemble`), loaded, put in eval mode and split into
members (`extract_member`), and every member explains every example for every target label.

Inputs are attributed as the network sees them: **normalised**, i.e. tables standardised per
feature and images scaled to [0, 1] and normalised per channel over the whole dataset
(`models.ensemble.normalised_inputs`). A map value is therefore the relevance of the normalised
feature or pixel, and gradient_term + bias_term equals the logit exactly (SCIENCE.md section 3).
"""

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.attribution import METHODS, PiecewiseLinearNet, bias_backprop, explain, extract_member, gradient_x_input
from models.ensemble import normalised_inputs, resolve_device, resolve_model
from models.nets import build_ensemble
from models.spec import TrainSpec

CHUNK = 256  # examples per attribution pass on the CPU (integrated gradients multiplies it by its steps)
CHUNK_CUDA = 1024  # on a GPU (float64 activations of a 2M-parameter CNN: a few GB)
DECOMPOSITION = ("logit", "gradient_term", "bias_term", "per_layer_bias_share")


def model_path(job_dir: str | Path, group: int) -> Path:
    return Path(job_dir) / "model" / f"ensemble-group-{group}.pt"


def load_group_net(job_dir: str | Path, spec: TrainSpec, group: int, members: list[int], kind: str,
                   x_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Group `group`'s trained network in eval mode. The engine moves the final training checkpoint
    to `model_path` without torch; the first load keeps only its weights ({"net": state_dict})."""
    path = model_path(job_dir, group)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if set(state) != {"net"}:
        state = {"net": state["net"]}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
    net = build_ensemble(kind, members, x_shape, n_classes, spec)  # type: ignore[arg-type]
    net.load_state_dict(state["net"])
    return net.eval()


def explain_device(name: str) -> torch.device:
    """Where the job trained if this machine has that device, else the CPU (a Ray job can train on
    a GPU node and be explained on a head without one)."""
    try:
        return resolve_device(name)
    except ValueError:
        return torch.device("cpu")


def explain_examples(
    job_dir: str,
    spec_json: str,  # the job's TrainSpec as JSON
    members_by_group: list[list[int]],  # TrainSpec.member_groups()
    x_path: str,  # X.npy of the dataset: (n, d) float32 or (n, C, H, W) uint8
    y_path: str,  # y.npy (only checked against X)
    n_classes: int,
    example_ids: list[int],  # (B,)
    targets: dict[str, list[int]],  # target name ("given", "suggested") -> (B,) class per example
    methods: list[str],  # names of models.attribution.METHODS
) -> dict[str, dict[str, np.ndarray]]:
    """Attribution maps and logit decompositions, averaged over every member of every group.

    Returns, for each target name, float64 arrays over the B examples:
      logit, gradient_term, bias_term: (B,) with logit = gradient_term + bias_term (completeness);
      per_layer_bias_share: (B, A), each affine layer's part of bias_term (logit units; sums to it);
      <method>: (B, *X.shape[1:]) the map of each method, w.r.t. the normalised input.
    The decomposition comes from bias back-propagation and does not depend on the method.
    """
    bad = sorted(set(methods) - set(METHODS))
    if bad:
        raise ValueError(f"unknown methods {bad}; expected some of {METHODS}")
    X = np.load(x_path, mmap_mode="r")
    if len(np.load(y_path, mmap_mode="r")) != len(X):
        raise ValueError(f"{x_path} and {y_path} disagree on the number of examples")
    ids = np.asarray(example_ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= len(X)):
        raise ValueError(f"example ids must lie in 0..{len(X) - 1}")
    for name, labels in targets.items():
        if len(labels) != len(ids):
            raise ValueError(f"target {name!r} has {len(labels)} labels for {len(ids)} examples")
    spec = TrainSpec.model_validate_json(spec_json)
    kind = resolve_model(spec, X)
    device = explain_device(spec.device)
    x = normalised_inputs(X, kind, ids, spec.table_inputs).to(device, torch.float64)  # (B, ...) as the networks see it
    totals: dict[str, dict[str, np.ndarray]] = {name: {} for name in targets}
    n_members = 0
    for group, members in enumerate(members_by_group):
        net = load_group_net(job_dir, spec, group, members, kind, tuple(X.shape[1:]), n_classes)
        for m in range(len(members)):
            member = extract_member(net, m).to(device)
            for name, labels in targets.items():
                _add(totals[name], _explain_member(member, x, np.asarray(labels, dtype=np.int64), methods))
            n_members += 1
    shape = (len(ids), *X.shape[1:])
    return {name: {key: (v / n_members).reshape(shape) if key in methods else v / n_members
                   for key, v in parts.items()} for name, parts in totals.items()}


def _explain_member(member: PiecewiseLinearNet, x: torch.Tensor, labels: npt.NDArray[np.int64],
                    methods: list[str]) -> dict[str, np.ndarray]:
    """One member's decomposition and maps for all examples, CHUNK at a time."""
    parts: list[dict[str, np.ndarray]] = []
    chunk = CHUNK_CUDA if x.device.type == "cuda" else CHUNK
    for start in range(0, len(x), chunk):
        xs, ts = x[start:start + chunk], labels[start:start + chunk]
        ba = bias_backprop(member, xs, ts, "abs_contrib")
        part = {"logit": ba.logit, "gradient_term": ba.gradient_term, "bias_term": ba.bias_term,
                "per_layer_bias_share": ba.per_layer_bias_share}
        for method in methods:
            if method == "bias":
                part[method] = ba.input_attribution
            elif method == "full":
                part[method] = ba.input_attribution + gradient_x_input(member, xs, ts)
            else:
                part[method] = explain(member, xs, ts, method)  # type: ignore[arg-type]
        parts.append(part)
    if not parts:
        return {key: np.zeros((0,)) for key in [*DECOMPOSITION, *methods]}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _add(total: dict[str, np.ndarray], part: dict[str, np.ndarray]) -> None:
    for key, value in part.items():
        total[key] = total[key] + value if key in total else value.astype(np.float64)
