"""Jumpout (Wang, Zhou & Bilmes, ICML 2019) and plain dropout for member-vectorised ensembles.

Activations carry a leading member axis: ``h`` is shaped ``(n_members, *rest)``, e.g.
``(M, B, F)`` after an MLP layer or ``(M, B, C, H, W)`` after a conv layer (possibly a
non-contiguous transposed view). Every member is treated independently: its own rate, its own
active fraction, its own mask. See SCIENCE.md section 2 for the spec and the tags on each step.
"""

import math
from collections.abc import Callable
from typing import Literal, ParamSpec, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.spec import PAPER_JUMPOUT

DropoutKind = Literal["jumpout", "dropout", "none"]
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _eager(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """torch.compiler.disable(fn): fn runs eagerly under torch.compile. Here so that fn keeps its
    signature for the type checker: torch 2.14 leaves torch.compiler.disable unannotated."""
    eager: Callable[_P, _R] = torch.compiler.disable(fn)  # type: ignore[no-untyped-call]  # unannotated in torch
    return eager


def expected_rate(sigma: float, p_min: float, p_max: float) -> float:
    """Mean of the Jumpout rate p = min(p_min + sigma*|z|, p_max), z ~ N(0, 1).

    With a = p_max - p_min, p = p_min + min(sigma*|z|, a), and |z| is half-normal (density
    2*phi), so E[min(sigma|z|, a)] = 2*sigma*(phi(0) - phi(a/sigma)) + a*P(|z| > a/sigma), i.e.

        E[p] = p_min + sigma*sqrt(2/pi)*(1 - exp(-a^2 / (2 sigma^2))) + 2a*(1 - Phi(a/sigma)).

    This derivation confirms the formula in SCIENCE.md section 2.
    """
    if sigma < 0.0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if not 0.0 <= p_min <= p_max:
        raise ValueError(f"need 0 <= p_min <= p_max, got p_min={p_min}, p_max={p_max}")
    a = p_max - p_min
    if sigma == 0.0 or a == 0.0:
        return p_min
    t = a / sigma
    upper_tail = 0.5 * math.erfc(t / math.sqrt(2.0))  # 1 - Phi(t), accurate for large t
    return p_min + sigma * math.sqrt(2.0 / math.pi) * (1.0 - math.exp(-0.5 * t * t)) + 2.0 * a * upper_tail


def _member_view(x: Tensor, ndim: int, dim: int = 0) -> Tensor:
    """(M,) -> (1, .., M, .., 1) with `ndim` dimensions, M at `dim`, for broadcasting per-member scalars."""
    shape = [1] * ndim
    shape[dim] = x.shape[0]
    return x.view(shape)


def _check_members(h: Tensor, dim: int = 0) -> None:
    if h.ndim < 2 or h.ndim <= dim:
        raise ValueError(f"expected h with the member axis at dim {dim} and at least 2 dims, got {tuple(h.shape)}")


def _draws(generator: torch.Generator | None, n_members: int, like: Tensor,
           dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Jumpout's random numbers: z (n_members,), then u shaped and laid out like `like` (so the
    mask pass reads it in h's own memory order, channels_last included).

    Without a generator the draws come from torch's default stream and torch.compile traces them:
    inductor generates them inside the fused kernel (no u in memory, no graph break). With a
    generator they run eagerly (torch.compile cannot trace a torch.Generator): the stream is
    reproducible draw for draw, at one graph break per layer under compile.
    """
    if generator is None:
        z = torch.randn(n_members, device=like.device, dtype=dtype)
        return z, torch.rand_like(like, dtype=dtype)
    return _seeded_draws(generator, n_members, like, dtype)


@_eager
def _seeded_draws(generator: torch.Generator, n_members: int, like: Tensor,
                  dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    z = torch.randn(n_members, generator=generator, device=like.device, dtype=dtype)
    u = torch.empty_like(like, dtype=dtype).uniform_(generator=generator)
    return z, u


class Jumpout(nn.Module):
    """Jumpout after a ReLU, one rate per member per call (= per layer per mini-batch).

    Training mode, for each member m:
      1. p = min(p_min + sigma*|z|, p_max), z ~ N(0, 1)  (monotone decreasing density on [p_min, p_max]);
      2. q+ = mean(h[m] > 0); p' = min(p / q+, max_rate), so about a share p of the layer's
         units are active-and-dropped; if q+ == 0 the member passes unchanged (p' = 0);
      3. each element is dropped with probability p'; kept ones are scaled by (1 - p')^(-exponent).
    The member axis is ``member_dim`` (0 for ``(M, B, F)``; the CNN passes 1 for its
    ``(B, M, C, H, W)`` view of grouped channels, so no transposed copy is made).
    Eval mode returns ``h`` itself. p' and q+ carry no gradient; the gradient at kept units is the
    same scale, 0 at dropped ones. After each training call ``last_rate_`` (p) and
    ``last_effective_rate_`` (p') hold detached ``(n_members,)`` tensors on h's device (float32,
    float64 for float64 input; p' = 0 for a member with q+ = 0).

    exponent 1 preserves the mean, 0.5 the second moment; 0.75 [check] sits between them, so the
    train/test mean ratio is (1-p')^(1-exponent) and the second-moment ratio (1-p')^(1-2*exponent).
    """

    last_rate_: Tensor | None
    last_effective_rate_: Tensor | None

    def __init__(
        self,
        sigma: float = PAPER_JUMPOUT[0],  # the values live in models/spec.py; a job's come from its TrainSpec
        p_min: float = PAPER_JUMPOUT[1],
        p_max: float = PAPER_JUMPOUT[2],
        exponent: float = 0.75,
        max_rate: float = 0.9,
        generator: torch.Generator | None = None,
        member_dim: int = 0,
    ) -> None:
        super().__init__()
        if sigma < 0.0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if not 0.0 <= p_min <= p_max < 1.0:
            raise ValueError(f"need 0 <= p_min <= p_max < 1, got p_min={p_min}, p_max={p_max}")
        if not 0.0 <= max_rate < 1.0:
            raise ValueError(f"max_rate must lie in [0, 1), got {max_rate}")
        self.sigma = sigma
        self.p_min = p_min
        self.p_max = p_max
        self.exponent = exponent
        self.max_rate = max_rate
        self.generator = generator
        self.member_dim = member_dim
        self.last_rate_ = None
        self.last_effective_rate_ = None

    def extra_repr(self) -> str:
        return (
            f"sigma={self.sigma}, p_min={self.p_min}, p_max={self.p_max}, "
            f"exponent={self.exponent}, max_rate={self.max_rate}, member_dim={self.member_dim}"
        )

    def forward(self, h: Tensor) -> Tensor:  # h: members at member_dim, e.g. (M, B, F) or (B, M, C, H, W)
        if not self.training:
            return h
        dim = self.member_dim
        _check_members(h, dim)
        n_members, ndim = h.shape[dim], h.ndim
        # Rates, active fractions and scales in at least float32 (bfloat16 is too coarse for them).
        work_dtype = torch.promote_types(h.dtype, torch.float32)
        z, u = _draws(self.generator, n_members, h, work_dtype)
        with torch.no_grad():
            rate = (self.p_min + self.sigma * z.abs()).clamp_(max=self.p_max)  # (M,)
            n_per_member = h.numel() // max(n_members, 1)
            others = tuple(d for d in range(ndim) if d != dim)
            active = (h.detach() > 0).sum(dim=others).to(work_dtype)  # (M,) exact int count
            q_plus = active / max(n_per_member, 1)
            effective = torch.where(
                q_plus > 0, (rate / q_plus).clamp(max=self.max_rate), torch.zeros_like(rate)
            )  # (M,), p' = 0 passes the member unchanged
            scale = (1.0 - effective).pow(-self.exponent)
            # One uniform draw per unit: kept where u >= p', then scaled by (1-p')^(-exponent).
            keep = u >= _member_view(effective, ndim, dim)
        if not torch.compiler.is_compiling():  # compiled graphs keep no Python state
            self.last_rate_ = rate
            self.last_effective_rate_ = effective
        return h * (keep * _member_view(scale, ndim, dim).to(h.dtype))  # 0 or the scale, rounded to h's dtype


class MemberDropout(nn.Module):
    """Plain (inverted) dropout with a fixed rate on the (n_members, *rest) layout.

    Element-wise, so the member axis needs no special care. With a ``generator`` the mask comes
    from it (reproducible); without one ``F.dropout`` draws from torch's default stream.
    """

    def __init__(self, rate: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must lie in [0, 1), got {rate}")
        self.rate = rate
        self.generator = generator

    def extra_repr(self) -> str:
        return f"rate={self.rate}"

    def forward(self, h: Tensor) -> Tensor:  # h: (n_members, *rest)
        if not self.training or self.rate == 0.0:
            return h
        if self.generator is None:
            return F.dropout(h, p=self.rate, training=True)
        work_dtype = torch.promote_types(h.dtype, torch.float32)
        u = _uniform(self.generator, h, work_dtype)
        with torch.no_grad():
            multiplier = u.ge(self.rate).to(work_dtype).mul_(1.0 / (1.0 - self.rate))
        return h * multiplier.to(h.dtype)


@_eager
def _uniform(generator: torch.Generator, like: Tensor, dtype: torch.dtype) -> Tensor:
    """Dropout's mask draw, laid out like `like`, eager under torch.compile as Jumpout's (see _draws)."""
    return torch.empty_like(like, dtype=dtype).uniform_(generator=generator)


def make_dropout(
    kind: DropoutKind,
    *,
    rate: float = 0.5,
    sigma: float = PAPER_JUMPOUT[0],
    p_min: float = PAPER_JUMPOUT[1],
    p_max: float = PAPER_JUMPOUT[2],
    exponent: float = 0.75,
    max_rate: float = 0.9,
    generator: torch.Generator | None = None,
    member_dim: int = 0,
) -> nn.Module:
    """The regulariser placed after each hidden ReLU: Jumpout, MemberDropout(rate) or Identity."""
    if kind == "jumpout":
        return Jumpout(sigma=sigma, p_min=p_min, p_max=p_max, exponent=exponent,
                       max_rate=max_rate, generator=generator, member_dim=member_dim)
    if kind == "dropout":
        return MemberDropout(rate=rate, generator=generator)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"dropout kind must be 'jumpout', 'dropout' or 'none', got {kind!r}")
