"""Vectorised ensemble networks: M members' weights stacked, one forward pass for all of them.

Layout: activations carry a leading member axis, (n_members, batch, ...). MLP layers use batched
matrix products (baddbmm); CNN layers are grouped convolutions with groups = n_members, so each
member only sees its own channels. Each member's initial weights come from its own seed, so a
member starts the same whichever group it is trained in.
"""

import math
from typing import Literal

import torch
from torch import Tensor, nn

from models.jumpout import make_dropout
from models.spec import TrainSpec


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

    def __init__(self, n_members: int, in_channels: int, out_channels: int) -> None:
        super().__init__(n_members * in_channels, n_members * out_channels, 3, padding=1, groups=n_members)
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
        widths = [n_features] + [spec.hidden_units] * spec.n_hidden_layers
        self.hidden = nn.ModuleList(MemberLinear(n_members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.drops = nn.ModuleList(_dropout(spec, generator) for _ in self.hidden)
        self.head = MemberLinear(n_members, widths[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (M, B, d) -> logits (M, B, K)
        for layer, drop in zip(self.hidden, self.drops):
            x = drop(torch.relu(layer(x)))
        return self.head(x)

    def stack_input(self, x: Tensor) -> Tensor:
        """One batch seen by every member: (B, d) -> (M, B, d), without copying."""
        return x.unsqueeze(0).expand(self.n_members, *x.shape)

    def linear_layers(self) -> list[MemberLinear]:
        return [*self.hidden, self.head]


class EnsembleCNN(nn.Module):
    """M independent small CNNs as grouped convolutions.

    Three stages of conv3x3 -> BN -> ReLU -> (2x2 max-pool while the map is >= 4 px) -> dropout,
    widths w, 2w, 4w, then global average pooling and a linear head per member.
    """

    def __init__(self, n_members: int, in_channels: int, image_size: tuple[int, int], n_classes: int,
                 spec: TrainSpec, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.n_members, self.in_channels = n_members, in_channels
        widths = [in_channels, spec.cnn_width, 2 * spec.cnn_width, 4 * spec.cnn_width]
        self.convs = nn.ModuleList(MemberConv2d(n_members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(n_members * b) for b in widths[1:])
        self.drops = nn.ModuleList(_dropout(spec, generator, member_dim=1) for _ in self.convs)
        size, self.pool_after = min(image_size), []
        for _ in self.convs:
            self.pool_after.append(size >= 4)
            size = size // 2 if size >= 4 else size
        self.head = MemberLinear(n_members, widths[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, M*C, H, W) -> logits (M, B, K)
        m = self.n_members
        for conv, norm, drop, pool in zip(self.convs, self.norms, self.drops, self.pool_after):
            x = torch.relu(norm(conv(x)))
            if pool:
                x = torch.max_pool2d(x, 2)
            if not isinstance(drop, nn.Identity):  # on a (B, M, C, H, W) view: per-member statistics, no copy
                x = drop(x.unflatten(1, (m, -1))).flatten(1, 2)
        x = x.mean(dim=(2, 3))  # (B, M*F)
        return self.head(x.view(x.shape[0], m, -1).transpose(0, 1))

    def stack_input(self, x: Tensor) -> Tensor:
        """One batch seen by every member: (B, C, H, W) -> (B, M*C, H, W)."""
        return x.repeat(1, self.n_members, 1, 1)

    def member_batches(self, x: Tensor) -> Tensor:
        """Each member its own batch: (M, B, C, H, W) -> (B, M*C, H, W)."""
        m, b, c, h, w = x.shape
        return x.transpose(0, 1).reshape(b, m * c, h, w)


def _dropout(spec: TrainSpec, generator: torch.Generator | None, member_dim: int = 0) -> nn.Module:
    return make_dropout(spec.dropout, rate=spec.dropout_rate, sigma=spec.jumpout_sigma, p_min=spec.jumpout_p_min,
                        p_max=spec.jumpout_p_max, exponent=spec.jumpout_exponent, generator=generator,
                        member_dim=member_dim)


def build_ensemble(kind: Literal["mlp", "cnn"], members: list[int], x_shape: tuple[int, ...], n_classes: int,
                   spec: TrainSpec, generator: torch.Generator | None = None) -> nn.Module:
    """Networks for `members`, each initialised from its own seed (member_seed(random_state, member))."""
    n = len(members)
    if kind == "mlp":
        net: nn.Module = EnsembleMLP(n, int(math.prod(x_shape)), n_classes, spec, generator)
        init_layers = net.linear_layers()
    else:
        if len(x_shape) != 3:
            raise ValueError(f"cnn needs images shaped (C, H, W), got example shape {x_shape}")
        net = EnsembleCNN(n, x_shape[0], (x_shape[1], x_shape[2]), n_classes, spec, generator)
        init_layers = [*net.convs, net.head]
    for i, member in enumerate(members):
        g = torch.Generator().manual_seed(member_seed(spec.random_state, member))
        for layer in init_layers:
            layer.init_member_(i, g)
    return net
