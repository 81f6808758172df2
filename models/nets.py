"""Vectorised ensemble networks: M members' weights stacked, one forward pass for all of them.

Layout: activations carry a leading member axis, (n_members, batch, ...). MLP layers use batched
matrix products (baddbmm); CNN layers are grouped convolutions with groups = n_members, so each
member only sees its own channels. Each member's initial weights come from its own seed, so a
member starts the same whichever group it is trained in.
"""

import math
from collections.abc import Sequence
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.jumpout import make_dropout
from models.spec import WIDE_CNN, TrainSpec


def member_seed(random_state: int, *keys: int) -> int:
    """A 63-bit seed for (random_state, *keys), independent across keys."""
    import numpy as np

    return int(np.random.SeedSequence([random_state, *keys]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _uniform_(t: Tensor, bound: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        t.copy_(torch.rand(t.shape, generator=generator, dtype=t.dtype) * (2 * bound) - bound)


class MemberLinear(nn.Module):
    """y[m] = x[m] @ W[m] + b[m] for every member m; x: (M, B, in) -> (M, B, out)."""

    def __init__(self, n_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))

    def init_member_(self, m: int, generator: torch.Generator) -> None:
        bound = 1.0 / math.sqrt(self.in_features)  # nn.Linear's default init
        _uniform_(self.weight.data[m], bound, generator)
        _uniform_(self.bias.data[m], bound, generator)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class MemberConv2d(nn.Conv2d):
    """A grouped 3x3 convolution: member m maps channels [m*Cin, (m+1)*Cin) to [m*Cout, (m+1)*Cout)."""

    bias: Tensor  # never None: built with nn.Conv2d's default bias=True (nn.Conv2d types it Tensor | None)

    def __init__(self, n_members: int, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(n_members * in_channels, n_members * out_channels, 3, stride=stride, padding=1,
                         groups=n_members)
        self.per_member_out = out_channels

    def init_member_(self, m: int, generator: torch.Generator) -> None:
        rows = slice(m * self.per_member_out, (m + 1) * self.per_member_out)
        fan_in = self.weight.shape[1] * 9
        bound = 1.0 / math.sqrt(fan_in)
        _uniform_(self.weight.data[rows], bound, generator)
        _uniform_(self.bias.data[rows], bound, generator)


class EnsembleMLP(nn.Module):
    """M independent MLPs: Linear -> ReLU -> dropout, n_hidden_layers times, then a Linear head."""

    def __init__(self, n_members: int, n_features: int, n_classes: int, spec: TrainSpec,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_members = n_members
        # train_group resolves the depth by the data first; a network built without a data set
        # (tests, eval-only loads) gets the shallow default, as _dropout gets the first Jumpout row
        depth = spec.n_hidden_layers if spec.n_hidden_layers is not None else spec.resolved(0, 1).n_hidden_layers
        assert depth is not None  # resolved() fills it
        widths = [n_features] + [spec.hidden_units] * depth
        self.hidden = nn.ModuleList(MemberLinear(n_members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.drops = nn.ModuleList(_dropout(spec, generator) for _ in self.hidden)
        self.head = MemberLinear(n_members, widths[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (M, B, d) -> logits (M, B, K)
        for layer, drop in zip(self.hidden, self.drops):
            x = drop(torch.relu(layer(x)))
        logits: Tensor = self.head(x)  # calling an nn.Module is Any in torch's stubs
        return logits

    def stack_input(self, x: Tensor) -> Tensor:
        """One batch seen by every member: (B, d) -> (M, B, d), without copying."""
        return x.unsqueeze(0).expand(self.n_members, *x.shape)

    def linear_layers(self) -> list[MemberLinear]:
        return [*self.hidden, self.head]


CNN_PER_MEMBER_CONVS = False  # EnsembleCNN's default layout (see its docstring); not yet measured on a GPU
STEM_STRIDE_FROM_PX = 16  # cnn_stem_stride auto: stride 2 from this shorter image side on


def stem_stride(spec: TrainSpec, image_size: tuple[int, int]) -> int:
    """The first convolution's stride: the spec's, or auto (0): 2 for images of STEM_STRIDE_FROM_PX
    or more a side, else 1. Why: on a CPU the convolutions are the job, and their work is the map's
    area; a strided stem quarters every later block's, while 8x8 digits keep all their pixels. Its
    effect on detection is not measured yet (the detection benchmark's images are 8x8); 10,000 28x28
    digit-like images took 221 s end to end with it at width 16 (benchmarks/results/cpu_images-width16.md)."""
    if spec.cnn_stem_stride:
        return spec.cnn_stem_stride
    return 2 if min(image_size) >= STEM_STRIDE_FROM_PX else 1


class EnsembleCNN(nn.Module):
    """M independent small CNNs as grouped convolutions.

    Three stages of conv3x3 -> BN -> ReLU -> (2x2 max-pool while the map is >= 4 px) -> dropout,
    widths w, 2w, 4w, then global average pooling and a linear head per member. The first
    convolution has stride `stem_stride` (2 on images of 16 px a side or more).

    Two layouts of the same parameters (state dicts are interchangeable):
      - grouped (default): activations (B, M*C, H, W), one grouped convolution per stage. On an
        H200 cuDNN spends 28 % of a ~2M-parameter step slicing each member's channels out of
        channels_last activations (benchmarks/results/gpu/README.md).
      - per_member_convs: activations member-major, (M, B, C, H, W) with each member's slice a
        plain (channels_last on a GPU) batch, and one ordinary convolution per member and stage:
        no channel slicing, M times the launches. An experiment for the next GPU run
        (benchmarks/throughput.py section 4b); equal to the grouped layout to float rounding (tested).
    """

    def __init__(self, n_members: int, in_channels: int, image_size: tuple[int, int], n_classes: int,
                 spec: TrainSpec, generator: torch.Generator | None = None,
                 per_member_convs: bool | None = None) -> None:
        super().__init__()
        self.n_members, self.in_channels = n_members, in_channels
        self.per_member_convs = CNN_PER_MEMBER_CONVS if per_member_convs is None else per_member_convs
        width = spec.cnn_width or WIDE_CNN  # a job's spec is resolved; a bare TrainSpec() builds the wide one
        widths = [in_channels, width, 2 * width, 4 * width]
        self.stride = stem_stride(spec, image_size)
        self.convs = nn.ModuleList(MemberConv2d(n_members, a, b, self.stride if i == 0 else 1)
                                   for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))
        self.norms = nn.ModuleList(nn.BatchNorm2d(n_members * b) for b in widths[1:])
        self.drops = nn.ModuleList(_dropout(spec, generator, member_dim=1) for _ in self.convs)
        size, self.pool_after = (min(image_size) - 1) // self.stride + 1, []  # the stem's output side
        for _ in self.convs:
            self.pool_after.append(size >= 4)
            size = size // 2 if size >= 4 else size
        self.head = MemberLinear(n_members, widths[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, M*C, H, W), or (M, B, C, H, W) per member -> (M, B, K)
        if self.per_member_convs:
            return self._forward_per_member(x)
        m = self.n_members
        # to_device chose the layout (asked of the last convolution: a 1-channel stem's weight is both)
        if cast(MemberConv2d, self.convs[-1]).weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # a no-op for a batch already in it
        for conv, norm, drop, pool in zip(self.convs, self.norms, self.drops, self.pool_after):
            x = torch.relu(norm(conv(x)))
            if pool:
                x = torch.max_pool2d(x, 2)
            if not isinstance(drop, nn.Identity):  # on a (B, M, C, H, W) view: per-member statistics, no copy
                x = drop(x.unflatten(1, (m, -1))).flatten(1, 2)  # type: ignore[no-untyped-call]  # unannotated in torch
        x = x.mean(dim=(2, 3))  # (B, M*F)
        logits: Tensor = self.head(x.view(x.shape[0], m, -1).transpose(0, 1))  # nn.Module calls are Any
        return logits

    def _forward_per_member(self, x: Tensor) -> Tensor:  # x: (M, B, C, H, W) -> logits (M, B, K)
        m = self.n_members
        for conv, norm, drop, pool in zip(self.convs, self.norms, self.drops, self.pool_after):
            # nn.ModuleList yields plain Modules; __init__ filled these two with exactly these types
            conv, norm = cast(MemberConv2d, conv), cast(nn.BatchNorm2d, norm)
            x = torch.relu(_member_batch_norm(norm, _member_convs(conv, x, m), m))
            if pool:
                x = torch.max_pool2d(x.flatten(0, 1), 2).unflatten(0, (m, -1))  # type: ignore[no-untyped-call]
            if not isinstance(drop, nn.Identity):  # its member axis is dim 1: a transposed view
                x = drop(x.transpose(0, 1)).transpose(0, 1)
        logits: Tensor = self.head(x.mean(dim=(3, 4)))  # (M, B, F) -> (M, B, K); nn.Module calls are Any
        return logits

    def stack_input(self, x: Tensor) -> Tensor:
        """One batch seen by every member: (B, C, H, W) -> (B, M*C, H, W), or an (M, B, C, H, W)
        view per member."""
        if self.per_member_convs:
            return x.unsqueeze(0).expand(self.n_members, *x.shape)
        return x.repeat(1, self.n_members, 1, 1)

    def member_batches(self, x: Tensor) -> Tensor:
        """Each member its own batch: (M, B, C, H, W) -> (B, M*C, H, W), or as it is per member."""
        if self.per_member_convs:
            return x
        m, b, c, h, w = x.shape
        return x.transpose(0, 1).reshape(b, m * c, h, w)


EnsembleNet = EnsembleMLP | EnsembleCNN  # what build_ensemble returns: both have stack_input and n_members


def _member_convs(conv: MemberConv2d, x: Tensor, m: int) -> Tensor:
    """One plain convolution per member: x (M, B, Cin, H, W) -> (M, B, Cout, H, W); each member's
    output stays channels_last when cuDNN returns it so (stacked as (M, B, H, W, C) memory)."""
    weight = conv.weight.view(m, -1, *conv.weight.shape[1:])
    bias = conv.bias.view(m, -1)
    outs = [F.conv2d(x[i], weight[i], bias[i], stride=conv.stride, padding=1) for i in range(m)]
    if outs[0].dim() == 4 and not outs[0].is_contiguous() and outs[0].is_contiguous(memory_format=torch.channels_last):
        return torch.stack([o.permute(0, 2, 3, 1) for o in outs]).permute(0, 1, 4, 2, 3)
    return torch.stack(outs)


def _member_batch_norm(norm: nn.BatchNorm2d, x: Tensor, m: int) -> Tensor:
    """nn.BatchNorm2d over the grouped channels (member i's channels are [i*C, (i+1)*C)), applied to
    member-major x (M, B, C, H, W): statistics per member and channel over (B, H, W), in float32."""
    c = x.shape[2]
    # BatchNorm2d types its buffers Tensor | None (None without running statistics); the CNN's keep them
    assert norm.running_mean is not None and norm.running_var is not None and norm.num_batches_tracked is not None
    if norm.training:
        mean = x.mean(dim=(1, 3, 4), dtype=torch.float32)  # (M, C)
        var = (x.float() - mean[:, None, :, None, None]).square().mean(dim=(1, 3, 4))
        with torch.no_grad():  # running statistics as BatchNorm2d keeps them (unbiased variance)
            n = x.numel() // (m * c)
            momentum = norm.momentum if norm.momentum is not None else 0.1
            norm.running_mean.lerp_(mean.flatten().to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_((var * n / max(n - 1, 1)).flatten().to(norm.running_var.dtype), momentum)
            norm.num_batches_tracked.add_(1)
    else:
        mean, var = norm.running_mean.view(m, c).float(), norm.running_var.view(m, c).float()
    scale = norm.weight.view(m, c) * torch.rsqrt(var + norm.eps)
    shift = norm.bias.view(m, c) - mean * scale
    return (x * scale[:, None, :, None, None].to(x.dtype) + shift[:, None, :, None, None].to(x.dtype))


def _dropout(spec: TrainSpec, generator: torch.Generator | None, member_dim: int = 0) -> nn.Module:
    # train_group resolves the by-data-size Jumpout rates first; a caller that builds a network
    # without a data set (tests, benchmarks, eval-only loads) gets the first row (the old default)
    spec = spec.resolved(0, 1)
    sigma, p_min, p_max = spec.jumpout_sigma, spec.jumpout_p_min, spec.jumpout_p_max
    assert sigma is not None and p_min is not None and p_max is not None  # resolved() fills every unset one
    return make_dropout(spec.dropout, rate=spec.dropout_rate, sigma=sigma, p_min=p_min, p_max=p_max,
                        exponent=spec.jumpout_exponent, generator=generator, member_dim=member_dim)


def build_ensemble(kind: Literal["mlp", "cnn"], members: list[int], x_shape: tuple[int, ...], n_classes: int,
                   spec: TrainSpec, generator: torch.Generator | None = None,
                   per_member_convs: bool | None = None) -> EnsembleNet:
    """Networks for `members`, each initialised from its own seed (member_seed(random_state, member));
    `per_member_convs`: the CNN's layout (None: CNN_PER_MEMBER_CONVS)."""
    n = len(members)
    net: EnsembleNet
    init_layers: Sequence[MemberLinear | MemberConv2d]
    if kind == "mlp":
        net = EnsembleMLP(n, int(math.prod(x_shape)), n_classes, spec, generator)
        init_layers = net.linear_layers()
    else:
        if len(x_shape) != 3:
            raise ValueError(f"cnn needs images shaped (C, H, W), got example shape {x_shape}")
        net = EnsembleCNN(n, x_shape[0], (x_shape[1], x_shape[2]), n_classes, spec, generator, per_member_convs)
        init_layers = [*net.convs, net.head]
    for i, member in enumerate(members):
        g = torch.Generator().manual_seed(member_seed(spec.random_state, member))
        for layer in init_layers:
            layer.init_member_(i, g)
    return net
