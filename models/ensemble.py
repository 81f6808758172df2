"""Train a group of ensemble members together and record their predictions after every epoch.

`train_group` is the unit of work (a member group): it yields one EpochRecord for epoch 0
(before training) and one after every epoch, writing a checkpoint before each yield so a
restarted job resumes from the last recorded epoch. `Ensemble` is the scikit-learn-style
wrapper used by tests, benchmarks and notebooks.
"""

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from models.checkpoints import checkpoint_epochs, checkpoint_path
from models.nets import EnsembleCNN, EnsembleNet, build_ensemble, member_seed
from models.predictions import EpochRecord, PredictionRecord
from models.spec import TrainSpec, cpu_has_native_bf16

log = logging.getLogger("curate.training")
RECORD_CHUNK = 4096  # examples x members per forward pass of the record pass on the CPU (cache-sized)
RECORD_CHUNK_CUDA = 8192  # on a GPU: the fastest of 2,048 to 65,536 over two H200 runs (benchmarks/results/gpu)
Net = TypeVar("Net", bound=nn.Module)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def autocast(spec: TrainSpec, device: torch.device) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast for forward passes (losses and recorded values stay fp32); a resolved spec
    says bf16 or fp32, an unresolved "auto" means bf16 on CUDA."""
    bf16 = spec.precision == "bf16" or (spec.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def resolve_model(spec: TrainSpec, X: np.ndarray) -> Literal["mlp", "cnn"]:
    """auto: a CNN for images (n, C, H, W), an MLP for tables (n, d) (TrainSpec.trains_cnn)."""
    return "cnn" if spec.trains_cnn(X.ndim) else "mlp"


def resolve_batch_size(spec: TrainSpec, n_examples: int) -> int:
    """The spec's batch size, or auto: about 60 steps per epoch, so small data sets get enough
    updates and large ones big enough batches (clipped to 8..256). 60 rather than 30 steps: on
    digits the later-learned wrong labels separated better (benchmarks/detection_variants.py)."""
    if spec.batch_size:
        return spec.batch_size
    return int(np.clip(n_examples // 60, 8, 256))


def assign_folds(y: npt.NDArray[np.int64], n_folds: int, random_state: int) -> npt.NDArray[np.int64]:
    """Stratified fold of every example, (n_examples,) in 0..n_folds-1: each class dealt round-robin
    after a seeded shuffle. n_folds = 0 gives all zeros (no cross-fitting)."""
    folds = np.zeros(len(y), dtype=np.int64)
    if n_folds == 0:
        return folds
    rng = np.random.default_rng(member_seed(random_state, 0xF01D))
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        folds[idx] = (np.arange(len(idx)) + offset) % n_folds
        offset += len(idx)
    return folds


@dataclass
class _Data:
    """The dataset on the device, normalised once."""

    X: Tensor  # tabular (n, d) float32 standardised; images (n, C, H, W) uint8
    y: Tensor  # (n,) int64
    mean: Tensor | None  # images: per-channel mean of X/255, shaped (1, C, 1, 1)
    std: Tensor | None

    def batch(self, idx: Tensor) -> Tensor:
        x = self.X[idx]
        if self.mean is None:
            return x
        assert self.std is not None  # _prepare sets mean and std together
        return (x.float() / 255.0 - self.mean) / self.std


def _prepare(X: np.ndarray, y: np.ndarray, kind: str, device: torch.device,
             table_inputs: str = "standard") -> _Data:
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
    if kind == "mlp":
        Xf = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        if X.dtype == np.uint8:
            Xf = Xf / 255.0
        if table_inputs == "quantile":  # each feature by its rank, mapped onto a normal's quantiles
            Xf = quantile_normal(Xf)
        mu, sd = Xf.mean(axis=0), Xf.std(axis=0)
        sd[sd < 1e-8] = 1.0  # constant features stay at 0
        return _Data(torch.as_tensor((Xf - mu) / sd, device=device), yt, None, None)
    if X.dtype != np.uint8:
        raise ValueError(f"cnn input must be uint8 images shaped (n, C, H, W), got dtype {X.dtype}")
    with warnings.catch_warnings():  # a read-only memmap: copied to a GPU, shared read-only on the CPU
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        Xt = torch.as_tensor(np.ascontiguousarray(X), device=device)
    scaled = Xt.float() / 255.0
    mean = scaled.mean(dim=(0, 2, 3), keepdim=True)
    std = scaled.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    return _Data(Xt, yt, mean, std)


def quantile_normal(X: np.ndarray) -> np.ndarray:
    """Each column replaced by the normal quantile of its values' mid-rank (ties share a value), so
    skewed or heavy-tailed features reach the network on the same scale as the others."""
    from scipy.stats import norm, rankdata

    ranks = rankdata(X, axis=0, method="average")
    return np.asarray(norm.ppf((ranks - 0.5) / len(X)), dtype=np.float32)


def normalised_inputs(X: np.ndarray, kind: Literal["mlp", "cnn"], example_ids: npt.NDArray[np.int64],
                      table_inputs: str = "standard") -> Tensor:
    """What the networks of `kind` see for these examples, float32 on the CPU, normalised as in
    training (statistics over the whole dataset): tables standardised per feature, (b, d); images
    scaled to [0, 1] and normalised per channel, (b, C, H, W) for a CNN, flattened for an MLP."""
    data = _prepare(X, np.zeros(len(X), dtype=np.int64), kind, torch.device("cpu"), table_inputs)
    return data.batch(torch.as_tensor(np.asarray(example_ids, dtype=np.int64)))


def _member_train_indices(folds: np.ndarray, members: list[int], n_folds: int,
                          exclude: npt.NDArray[np.int64] | None = None) -> list[np.ndarray]:
    """Each member's training examples: all, or all but its fold, and never the excluded ones."""
    if n_folds == 0:
        idx = [np.arange(len(folds)) for _ in members]
    else:
        idx = [np.flatnonzero(folds != m % n_folds) for m in members]
    if exclude is not None and len(exclude):
        keep = np.ones(len(folds), dtype=bool)
        keep[exclude] = False
        idx = [i[keep[i]] for i in idx]
    return idx


def _epoch_order(train_idx: list[np.ndarray], members: list[int], random_state: int, epoch: int,
                 batch_size: int, n_steps: int) -> np.ndarray:
    """(n_steps, M, batch_size) example indices: each member its own shuffle of its own examples;
    members with fewer examples wrap around into a second shuffle. n_steps is the same for every
    group of a job (from the largest training set of any member), so a member's updates do not
    depend on which group it is trained in."""
    need = n_steps * batch_size
    orders = []
    for idx, member in zip(train_idx, members):
        rng = np.random.default_rng(member_seed(random_state, member, epoch))
        reps = int(np.ceil(need / len(idx)))
        orders.append(np.concatenate([rng.permutation(idx) for _ in range(reps)])[:need])
    return np.stack(orders).reshape(len(members), n_steps, batch_size).transpose(1, 0, 2)


def _epoch_mixup(members: list[int], random_state: int, epoch: int, n_steps: int, batch_size: int,
                 alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Mixup draws for an epoch: partners (n_steps, M, batch_size), each a position in the same
    member's batch (a shuffle of it), and weights lam (n_steps, M, batch_size) ~ Beta(alpha, alpha),
    one per mixed example; each member its own stream per epoch (like its shuffle)."""
    partners, lams = [], []
    for member in members:
        rng = np.random.default_rng(member_seed(random_state, member, epoch, 0x31))
        partners.append(np.argsort(rng.random((n_steps, batch_size)), axis=1))
        lams.append(rng.beta(alpha, alpha, size=(n_steps, batch_size)))
    return np.stack(partners, axis=1), np.stack(lams, axis=1).astype(np.float32)


def augment_pad(image_size: tuple[int, int]) -> int:
    """Largest shift of `augment`: 1/8 of the shorter side (4 px on 32 x 32, 1 px on 8 x 8)."""
    return max(1, min(image_size) // 8)


def _epoch_augment(members: list[int], random_state: int, epoch: int, n_steps: int, batch_size: int,
                   pad: int, flip: bool) -> np.ndarray:
    """(n_steps, M, batch_size, 3) int8 draws (dy, dx, flip) for `augment`: each member its own
    stream per epoch (like its shuffle), so a member's augmentations do not depend on its group."""
    draws = []
    for member in members:
        rng = np.random.default_rng(member_seed(random_state, member, epoch, 0xA6))
        shift = rng.integers(-pad, pad + 1, size=(n_steps, batch_size, 2))
        flips = rng.integers(0, 2, size=(n_steps, batch_size, 1)) if flip else np.zeros((n_steps, batch_size, 1))
        draws.append(np.concatenate([shift, flips], axis=-1))
    return np.stack(draws, axis=1).astype(np.int8)


def shift_flip(x: Tensor, draws: Tensor, pad: int) -> Tensor:
    """Images x (M, B, C, H, W) shifted by (dy, dx) and mirrored where flip = 1, draws (M, B, 3).

    One gather on the device: pixels shifted in from outside are 0 (the channel mean, as x is
    normalised); output pixel (i, j) is input (i + dy, j' + dx) with j' = W-1-j if flipped else j.
    """
    M, B, C, H, W = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (M, B, C, H + 2p, W + 2p)
    d = draws.to(device=x.device, dtype=torch.long)
    rows = torch.arange(H, device=x.device).view(1, 1, H) + pad + d[..., 0:1]  # (M, B, H)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    cols = torch.where(d[..., 2:3] == 1, W - 1 - cols, cols) + pad + d[..., 1:2]  # (M, B, W)
    m = torch.arange(M, device=x.device).view(M, 1, 1, 1)
    b = torch.arange(B, device=x.device).view(1, B, 1, 1)
    # advanced indices around the channel slice: the result is (M, B, H, W, C)
    out = padded[m, b, :, rows.unsqueeze(-1), cols.unsqueeze(-2)]
    return out.permute(0, 1, 4, 2, 3)


CUDA_CHANNELS_LAST = True  # a CNN on a GPU in channels_last: the layout tensor cores convolve natively
# ... and on a CPU: the default digits-as-images job trained 1.3x faster in it (53.6 -> 41.1 s,
# benchmarks/results/cpu_images-width16.md); the input batches follow (EnsembleCNN.forward)
CPU_CHANNELS_LAST = True


def to_device(net: Net, device: torch.device, channels_last: bool | None = None) -> Net:
    """The network on `device`; a CNN in channels_last where `channels_last` (None: CUDA_CHANNELS_LAST
    on a GPU, CPU_CHANNELS_LAST on a CPU)."""
    net = net.to(device)
    if channels_last is None:
        channels_last = CUDA_CHANNELS_LAST if device.type == "cuda" else CPU_CHANNELS_LAST
    if isinstance(net, EnsembleCNN) and channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def _forward(net: nn.Module, data: _Data, idx: Tensor, draws: Tensor | None = None, pad: int = 0,
             call: Callable[[Tensor], Tensor] | None = None, mix: tuple[Tensor, Tensor] | None = None,
             noise: tuple[float, torch.Generator] | None = None) -> Tensor:
    """Logits (M, B, K) for per-member batches idx (M, B), augmented with `draws` (M, B, 3) if given,
    mixed by `mix` = (partner (M, B) positions in the same member's batch, lam (M, B)) if given, and
    with Gaussian noise of `noise` = (std, generator) added; `call` runs the network (default: net
    itself; a CompiledForward in train_group)."""
    x = data.batch(idx)  # (M, B, ...)
    if draws is not None:
        x = shift_flip(x, draws, pad)
    if noise is not None:
        x = x + noise[0] * torch.randn(x.shape, generator=noise[1], device=x.device, dtype=x.dtype)
    if mix is not None:
        partner, lam = mix
        shape = (*partner.shape, *([1] * (x.ndim - 2)))
        x = lam.view(shape) * x + (1.0 - lam.view(shape)) * torch.take_along_dim(x, partner.view(shape), dim=1)
    call = call if call is not None else net
    if isinstance(net, EnsembleCNN):
        return call(net.member_batches(x))
    return call(x)


class CompiledForward:
    """`net` through torch.compile(mode=...), with a clean eager fallback: if compiling or running
    the compiled graph raises, one warning names the error and every later call runs eagerly.
    `first_call_s` is the first call's time (dominated by compilation), for the logs and benchmarks."""

    def __init__(self, net: nn.Module, mode: str, what: str = "training forward") -> None:
        self.net, self.what = net, what
        self.compiled: Callable[[Tensor], Tensor] | None = torch.compile(net, mode=mode)
        self.first_call_s: float | None = None

    def __call__(self, x: Tensor) -> Tensor:
        # calling an nn.Module is Any in torch's stubs; the network returns logits
        if self.compiled is None:
            eager: Tensor = self.net(x)
            return eager
        started = time.perf_counter()
        try:
            out = self.compiled(x)
        except Exception as exc:  # noqa: BLE001 (any compiler failure: keep training, eagerly)
            warnings.warn(f"torch.compile failed ({self.what}), running it eagerly instead: "
                          f"{type(exc).__name__}: {exc}"[:500], RuntimeWarning, stacklevel=2)
            self.compiled = None
            fallback: Tensor = self.net(x)
            return fallback
        if self.first_call_s is None:
            self.first_call_s = time.perf_counter() - started
            log.info("torch.compile: first call of the %s %.1f s (compilation)", self.what, self.first_call_s)
        return out


@torch.no_grad()
def _record(net: EnsembleNet, data: _Data, held_out: np.ndarray, n_classes: int, group: int, epoch: int,
            members: list[int], train_loss: float, started: float,
            amp: contextlib.AbstractContextManager[None] | None = None,
            call: Callable[[Tensor], Tensor] | None = None) -> EpochRecord:
    """Evaluate every member on every example (eval mode, one batched pass per chunk; `call` runs
    the network, default net itself)."""
    net.eval()
    n = data.y.shape[0]
    pred, prob, marg = [], [], []
    prob_sum = torch.zeros(n, n_classes, device=data.y.device)
    held_sum = torch.zeros(n, n_classes, device=data.y.device)
    held_t = torch.as_tensor(held_out, device=data.y.device)
    per_pass = RECORD_CHUNK_CUDA if data.y.device.type == "cuda" else RECORD_CHUNK
    chunk = max(64, per_pass // len(members))  # rows x members stays cache- (and GPU-memory-) sized
    call = call if call is not None else net
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        x = data.batch(torch.arange(sl.start, sl.stop, device=data.y.device))
        with amp or contextlib.nullcontext():
            logits = call(net.stack_input(x)).float()  # (M, b, K)
        y = data.y[sl]
        logp = torch.log_softmax(logits, dim=-1)
        p = logp.exp()
        given = logits.gather(2, y.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(2)
        others = logits.scatter(2, y.view(1, -1, 1).expand(logits.shape[0], -1, 1), float("-inf"))
        pred.append(logits.argmax(dim=-1))
        prob.append(p.gather(2, y.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(2))
        marg.append(given - others.max(dim=-1).values)
        h = held_t[:, sl].unsqueeze(-1)  # (M, b, 1)
        prob_sum[sl] = (p * ~h).sum(dim=0)
        held_sum[sl] = (p * h).sum(dim=0)
    net.train()
    return EpochRecord(
        group=group, epoch=epoch, members=tuple(members),
        predicted_label=torch.cat(pred, 1).to(torch.int16).cpu().numpy(),
        label_prob=torch.cat(prob, 1).cpu().numpy().astype(np.float32),
        margin=torch.cat(marg, 1).cpu().numpy().astype(np.float32),
        held_out=held_out.copy(),
        prob_sum=prob_sum.cpu().numpy(), heldout_prob_sum=held_sum.cpu().numpy(),
        train_loss=train_loss, seconds=time.perf_counter() - started,
    )


def _rng_state(gen: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    """Every random stream training draws from: the group's generator (eager dropout) and torch's
    default generators (compiled dropout: inductor draws its seeds from them)."""
    state = {"gen": gen.get_state(), "cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    rng = state.get("rng", {"gen": state.get("gen")})  # checkpoints before 2026-11 kept only "gen"
    gen.set_state(rng["gen"])
    if "cpu" in rng:
        torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def _save_checkpoint(path: Path, epoch: int, net: nn.Module, opt: torch.optim.Optimizer,
                     rng: dict[str, Tensor], keep: int = 0) -> None:
    """Write epoch's checkpoint (`rng`: _rng_state). Older ones stay until the engine has committed
    this epoch (models/checkpoints.py), unless `keep` > 0: then only the newest `keep` stay."""
    path.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(path, epoch)
    tmp = final.with_suffix(".pt.tmp")
    torch.save({"epoch": epoch, "net": net.state_dict(), "opt": opt.state_dict(), "rng": rng}, tmp)
    tmp.replace(final)
    if keep:
        for old in checkpoint_epochs(path)[:-keep]:
            checkpoint_path(path, old).unlink(missing_ok=True)


def _load_checkpoint(path: Path | None, after_epoch: int | None) -> dict[str, Any] | None:
    """The checkpoint dict _save_checkpoint wrote after `after_epoch`, or None if there is none."""
    if path is None or after_epoch is None:
        return None
    file = checkpoint_path(path, after_epoch)
    return torch.load(file, map_location="cpu", weights_only=False) if file.exists() else None


def train_group(
    X: np.ndarray,  # (n, d) features or (n, C, H, W) uint8 images
    y: npt.NDArray[np.int64],  # (n,) given labels in 0..n_classes-1
    n_classes: int,
    spec: TrainSpec,
    members: list[int],
    group: int = 0,
    checkpoint_dir: Path | None = None,
    resume_after: int | None = None,
    keep_checkpoints: int = 0,
    exclude: npt.NDArray[np.int64] | None = None,
) -> Iterator[EpochRecord]:
    """Train `members` together; yield their predictions at epoch 0 and after every epoch.
    `exclude`: example ids no member trains on (they are recorded as held out by every member).

    With `resume_after` = e and a checkpoint of epoch e in `checkpoint_dir`, training continues
    from epoch e + 1 and yields only the later epochs; the results equal an uninterrupted run.
    Checkpoints are all kept for the engine to prune, or only the newest `keep_checkpoints`.
    """
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    device = resolve_device(spec.device)
    kind = resolve_model(spec, X)
    # a job's stored spec is resolved already
    spec = spec.resolved(len(y), int(np.prod(X.shape[1:])), on_gpu=device.type == "cuda", cnn=kind == "cnn",
                         cpu_bf16=device.type == "cpu" and cpu_has_native_bf16(), pixels=X.ndim == 4)
    if spec.augment != "none" and kind != "cnn":
        raise ValueError(f"augment={spec.augment!r} shifts images: it needs a CNN on images shaped "
                         f"(n, C, H, W), not a {kind} on data shaped {tuple(X.shape)}")
    data = _prepare(X, y, kind, device, spec.table_inputs)
    pad = augment_pad(tuple(X.shape[2:])) if spec.augment != "none" else 0
    folds = assign_folds(np.asarray(y), spec.n_folds, spec.random_state)
    if exclude is not None and len(exclude) and (int(np.min(exclude)) < 0 or int(np.max(exclude)) >= len(y)):
        raise ValueError(f"exclude holds example ids outside 0..{len(y) - 1}")
    train_idx = _member_train_indices(folds, members, spec.n_folds, exclude)
    if any(len(t) == 0 for t in train_idx):
        raise ValueError("every example is excluded or held out: nothing left to train on")
    held_out = np.stack([~np.isin(np.arange(len(y)), t) for t in train_idx])
    seed = member_seed(spec.random_state, 0xD0, group)
    gen = torch.Generator(device=device).manual_seed(seed)
    # Eager: dropout draws from the group's own generator. Compiled: from torch's default stream,
    # seeded here, so inductor generates the draws inside its fused kernels (a generator would break
    # the graph at every dropout layer); compiled runs are reproducible but draw other numbers.
    compiled_draws = spec.compile != "off"
    if compiled_draws:
        torch.manual_seed(seed)
    net = to_device(build_ensemble(kind, members, tuple(X.shape[1:]), n_classes, spec,
                                   None if compiled_draws else gen), device)
    amp = autocast(spec, device)
    if device.type == "cuda":  # every step has the same shapes: let cuDNN time its algorithms once
        torch.backends.cudnn.benchmark = True
    call = CompiledForward(net, spec.compile) if spec.compile != "off" else None
    # the record pass compiled too (eval graph, no CUDA graphs: its outputs are kept across chunks):
    # 1.4x on the H200 for the ~2M-parameter CNN (benchmarks/results/gpu/h200-run1)
    record_call = CompiledForward(net, "default", "record pass") if spec.compile != "off" else None
    # fused: one kernel for all parameters instead of a Python loop (2.0 -> 0.5 ms a step on digits)
    opt = torch.optim.AdamW(net.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay, fused=True)
    batch_size = resolve_batch_size(spec, len(y))
    largest = max(len(t) for t in _member_train_indices(folds, list(range(spec.n_members)), spec.n_folds, exclude))
    n_steps = int(np.ceil(largest / batch_size))
    start_epoch = 1
    # epochs up to `recorded` are committed already: not yielded again
    recorded = -1 if resume_after is None else resume_after
    state = _load_checkpoint(checkpoint_dir, resume_after)
    if state is not None:
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        _set_rng_state(state, gen, device)
        start_epoch = state["epoch"] + 1
    else:
        # from scratch; on a resume whose checkpoint is gone (it lived on a lost node), the same
        # seeds replay the committed epochs (bit for bit on the CPU) without yielding them
        started = time.perf_counter()
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, 0, net, opt, _rng_state(gen, device), keep_checkpoints)
        if recorded < 0:
            yield _record(net, data, held_out, n_classes, group, 0, members, float("nan"), started, amp, record_call)
    loss_fn = _loss_fn(spec.label_smoothing, spec.gce_q)
    for epoch in range(start_epoch, spec.n_epochs + 1):
        started = time.perf_counter()
        # --- train: every member steps through its own shuffle of its own training examples
        net.train()
        order = torch.as_tensor(_epoch_order(train_idx, members, spec.random_state, epoch, batch_size, n_steps),
                                device=device)
        draws = None
        if pad:
            draws = torch.as_tensor(_epoch_augment(members, spec.random_state, epoch, n_steps, batch_size, pad,
                                                   flip=spec.augment == "shift_flip"), device=device)
        partners = lams = None
        if spec.mixup_alpha > 0:
            drawn = _epoch_mixup(members, spec.random_state, epoch, n_steps, batch_size, spec.mixup_alpha)
            partners, lams = (torch.as_tensor(a, device=device) for a in drawn)
        forget_now = small_loss_share(spec.small_loss_forget, epoch, spec.n_epochs)
        noise = None
        if spec.input_noise > 0:  # seeded per epoch and group, so a resumed epoch draws the same noise
            noise_gen = torch.Generator(device=device).manual_seed(member_seed(spec.random_state, 0x4E, group, epoch))
            noise = (spec.input_noise, noise_gen)
        total = torch.zeros((), device=device)
        for step, idx in enumerate(order):  # idx: (M, B)
            mix = None if partners is None or lams is None else (partners[step], lams[step])
            with amp:
                logits = _forward(net, data, idx, None if draws is None else draws[step], pad, call, mix,
                                  noise).float()
            flat = logits.flatten(0, 1)
            per_example = loss_fn(flat, data.y[idx].flatten()).view(idx.shape)
            if mix is not None:  # the mixed input's loss: lam on its own label, 1 - lam on its partner's
                partner_y = torch.take_along_dim(data.y[idx], mix[0], dim=1)
                per_example = mix[1] * per_example + (1.0 - mix[1]) * loss_fn(flat, partner_y.flatten()).view(idx.shape)
            if forget_now > 0:  # each member keeps its batch's smallest losses only
                keep = idx.shape[1] - int(round(forget_now * idx.shape[1]))
                per_example = torch.topk(per_example, keep, dim=1, largest=False, sorted=False).values
            # sum over members of each member's mean loss: gradients stay independent per member
            loss = per_example.mean(dim=1).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += loss.detach()
        train_loss = float(total) / (len(order) * len(members))
        # --- checkpoint, then record (a resumed run restarts after the last recorded epoch)
        if checkpoint_dir is not None:
            _save_checkpoint(checkpoint_dir, epoch, net, opt, _rng_state(gen, device), keep_checkpoints)
        if epoch > recorded:
            yield _record(net, data, held_out, n_classes, group, epoch, members, train_loss, started, amp,
                          record_call)


def small_loss_share(forget: float, epoch: int, n_epochs: int) -> float:
    """The share of a batch left out at `epoch` (1-based): `forget` ramped up linearly over the first
    quarter of the epochs (co-teaching's schedule, Han et al. 2018), so the members first learn the
    easy patterns from every example before they choose which to trust."""
    ramp = max(1, n_epochs // 4)
    return forget * min(1.0, epoch / ramp)


def _loss_fn(smoothing: float, gce_q: float) -> Callable[[Tensor, Tensor], Tensor]:
    """Per-example training loss of (logits (n, K), labels (n,)): cross-entropy against the label
    smoothed by `smoothing` or, with gce_q > 0, the generalized cross-entropy against that target."""
    if gce_q == 0.0:
        return nn.CrossEntropyLoss(reduction="none", label_smoothing=smoothing)

    def gce(logits: Tensor, y: Tensor) -> Tensor:
        k = logits.shape[-1]
        target = torch.full_like(logits, smoothing / k).scatter_(1, y.view(-1, 1), 1.0 - smoothing + smoothing / k)
        p_q = torch.exp(gce_q * torch.log_softmax(logits, dim=-1))
        return (target * (1.0 - p_q)).sum(dim=-1) / gce_q

    return gce


class Ensemble:
    """N networks trained from their own seeds; `record_` holds every member's predictions per epoch."""

    def __init__(self, spec: TrainSpec | None = None, **params: object) -> None:
        self.spec = spec if spec is not None else TrainSpec(**params)  # type: ignore[arg-type, unused-ignore]

    def fit(self, X: np.ndarray, y: np.ndarray, n_classes: int | None = None,
            exclude: npt.NDArray[np.int64] | None = None) -> "Ensemble":
        """Train every member group; `exclude`: example ids no member trains on (train_group)."""
        y = np.asarray(y, dtype=np.int64)
        k = int(n_classes if n_classes is not None else y.max() + 1)
        records: list[EpochRecord] = []
        for g, members in enumerate(self.spec.member_groups()):
            records.extend(train_group(X, y, k, self.spec, members, group=g, exclude=exclude))
        self.records_ = records
        self.record_ = PredictionRecord.from_epochs(records, self.spec.n_members)
        return self
