"""Jumpout and member dropout: the test oracles of SCIENCE.md section 2."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from models.jumpout import Jumpout, MemberDropout, expected_rate, make_dropout


def _gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _relu_input(shape: tuple[int, ...], seed: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """ReLU output: about half the units exactly 0, the rest positive."""
    return torch.randn(shape, generator=_gen(seed), dtype=torch.float64).relu().to(dtype)


def _with_active_fraction(fractions: list[float], n: int, seed: int = 2) -> torch.Tensor:
    """(M, n) with exactly round(f*n) positive entries per member, the rest 0, shuffled."""
    g = _gen(seed)
    rows = []
    for f in fractions:
        k = round(f * n)
        row = torch.zeros(n, dtype=torch.float64)
        row[torch.randperm(n, generator=g)[:k]] = torch.rand(k, generator=g, dtype=torch.float64) + 0.5
        rows.append(row)
    return torch.stack(rows)


# --- expected rate -------------------------------------------------------------------------

@pytest.mark.parametrize(("sigma", "p_min", "p_max"), [(0.1, 0.01, 0.6), (0.3, 0.05, 0.4), (1.0, 0.0, 0.5)])
def test_expected_rate_matches_numerical_integral(sigma: float, p_min: float, p_max: float) -> None:
    a = p_max - p_min
    # p = p_min + min(sigma*t, a) with t = |z| half-normal, density 2*phi(t) on [0, inf)
    body, _ = integrate.quad(lambda t: (p_min + sigma * t) * 2 * stats.norm.pdf(t), 0.0, a / sigma)
    tail = p_max * 2 * stats.norm.sf(a / sigma)
    assert expected_rate(sigma, p_min, p_max) == pytest.approx(body + tail, abs=1e-10)


def test_expected_rate_limits_and_errors() -> None:
    assert expected_rate(0.0, 0.2, 0.6) == 0.2
    assert expected_rate(0.1, 0.3, 0.3) == 0.3
    assert expected_rate(1e-6, 0.01, 0.6) == pytest.approx(0.01 + 1e-6 * math.sqrt(2 / math.pi), rel=1e-9)
    assert expected_rate(100.0, 0.01, 0.6) == pytest.approx(0.6, abs=1e-2)  # almost always clamped
    with pytest.raises(ValueError, match="p_min"):
        expected_rate(0.1, 0.7, 0.6)


@pytest.mark.parametrize(("sigma", "p_min", "p_max"), [(0.1, 0.01, 0.6), (0.3, 0.05, 0.4)])
def test_sampled_rate_matches_expected_rate(sigma: float, p_min: float, p_max: float) -> None:
    n = 200_000  # one call draws one rate per member
    layer = Jumpout(sigma=sigma, p_min=p_min, p_max=p_max, generator=_gen(3))
    layer(torch.ones(n, 1))
    p = layer.last_rate_.double()
    assert p.shape == (n,)
    assert p.min() >= p_min and p.max() <= p_max + 1e-7
    tol = 5 * p.std().item() / math.sqrt(n)
    assert p.mean().item() == pytest.approx(expected_rate(sigma, p_min, p_max), abs=tol)
    share_clamped = (p >= p_max - 1e-7).double().mean().item()
    p_clamped = 2 * stats.norm.sf((p_max - p_min) / sigma)
    assert share_clamped == pytest.approx(p_clamped, abs=5 * math.sqrt(p_clamped * (1 - p_clamped) / n) + 1e-6)


# --- eval, masks and scales ---------------------------------------------------------------

def test_eval_mode_is_exact_identity() -> None:
    h = _relu_input((4, 32, 16))
    for layer in (Jumpout(generator=_gen()), MemberDropout(0.5, generator=_gen()), MemberDropout(0.5)):
        layer.eval()
        assert layer(h) is h
    layer = Jumpout(generator=_gen()).train()
    assert not torch.equal(layer(h), h)  # ... but training mode does change it


def test_dropped_share_of_active_units_matches_effective_rate() -> None:
    n = 100_000
    h = _with_active_fraction([0.5, 0.8, 0.3, 1.0], n)
    layer = Jumpout(sigma=0.2, p_min=0.05, p_max=0.6, max_rate=0.95, generator=_gen(4))
    out = layer(h)
    p = layer.last_rate_.double()
    p_eff = layer.last_effective_rate_.double()
    for m in range(h.shape[0]):
        active = h[m] > 0
        n_active = int(active.sum())
        dropped = int((out[m][active] == 0).sum())
        pe = p_eff[m].item()
        sd = math.sqrt(pe * (1 - pe) / n_active)
        assert dropped / n_active == pytest.approx(pe, abs=5 * sd)
        if pe < 0.95:  # unclamped: the dropped active units are a share p of the whole layer
            assert dropped / n == pytest.approx(p[m].item(), abs=5 * sd)


def test_inactive_units_stay_exactly_zero() -> None:
    h = _relu_input((3, 64, 128))
    out = Jumpout(sigma=0.3, generator=_gen(5))(h)
    assert (h == 0).any()
    assert torch.all(out[h == 0] == 0)
    assert torch.all(out >= 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kept_units_are_scaled_exactly(dtype: torch.dtype) -> None:
    h = _relu_input((5, 128, 64), dtype=dtype)
    layer = Jumpout(sigma=0.3, exponent=0.75, generator=_gen(6))
    out = layer(h)
    scale = (1 - layer.last_effective_rate_).pow(-0.75).to(dtype).view(-1, 1, 1)
    kept = out != 0
    assert kept.any() and ((h > 0) & ~kept).any()
    expected = (h * scale).expand_as(h)
    assert torch.equal(out[kept], expected[kept])
    assert torch.all(scale > 1)


def test_effective_rate_is_rate_over_active_fraction_clamped() -> None:
    n_members = 400
    h = _with_active_fraction([0.25] * n_members, 400)  # q+ = 0.25 exactly for every member
    layer = Jumpout(sigma=0.15, p_min=0.01, p_max=0.6, max_rate=0.9, generator=_gen(7))
    layer(h)
    p, p_eff = layer.last_rate_, layer.last_effective_rate_
    assert p.shape == p_eff.shape == (n_members,)
    torch.testing.assert_close(p_eff, (p / 0.25).clamp(max=0.9), rtol=1e-6, atol=0)
    clamped = p / 0.25 > 0.9
    assert clamped.any() and (~clamped).any()  # both branches exercised


def test_member_without_active_units_passes_unchanged() -> None:
    h = _relu_input((3, 50, 20))
    h[1] = -torch.rand(50, 20, generator=_gen(8)) * (torch.arange(20) % 2)  # q+ = 0: zeros and negatives
    layer = Jumpout(sigma=0.3, generator=_gen(9))
    out = layer(h)
    assert torch.equal(out[1], h[1])
    assert layer.last_effective_rate_[1].item() == 0.0
    assert layer.last_rate_[1].item() >= 0.01
    assert not torch.equal(out[0], h[0])  # other members are still dropped
    assert torch.equal(Jumpout(generator=_gen())(torch.zeros(2, 7)), torch.zeros(2, 7))


@pytest.mark.parametrize("alpha", [0.5, 0.75, 1.0])
def test_mean_and_second_moment_ratios_follow_exponent(alpha: float) -> None:
    p = 0.3
    h = torch.rand(4, 250_000, generator=_gen(10), dtype=torch.float64) + 0.5  # all units active
    layer = Jumpout(sigma=0.1, p_min=p, p_max=p, exponent=alpha, generator=_gen(11))
    out = layer(h)
    assert torch.allclose(layer.last_effective_rate_, torch.full((4,), p, dtype=torch.float64))
    n = out.numel()
    mean_ratio = (out.mean() / h.mean()).item()
    tol_mean = 5 * (out.std() / h.mean()).item() / math.sqrt(n)
    assert mean_ratio == pytest.approx((1 - p) ** (1 - alpha), abs=tol_mean)
    second_ratio = ((out**2).mean() / (h**2).mean()).item()
    tol_second = 5 * ((out**2).std() / (h**2).mean()).item() / math.sqrt(n)
    assert second_ratio == pytest.approx((1 - p) ** (1 - 2 * alpha), abs=tol_second)


# --- independence, determinism, gradients, layouts ----------------------------------------

def test_members_draw_independent_rates() -> None:
    layer = Jumpout(sigma=0.1, generator=_gen(12))
    h = torch.ones(64, 8)
    layer(h)
    assert torch.unique(layer.last_rate_).numel() == 64  # distinct rates within one call
    n_calls = 2000
    rates = np.empty((n_calls, 2))
    h2 = torch.ones(2, 8)
    for i in range(n_calls):
        layer(h2)
        rates[i] = layer.last_rate_.numpy()
    r = np.corrcoef(rates[:, 0], rates[:, 1])[0, 1]
    assert abs(r) < 5 / math.sqrt(n_calls)
    assert np.corrcoef(rates[:-1, 0], rates[1:, 0])[0, 1] < 5 / math.sqrt(n_calls)  # fresh draw per call
    assert rates[:, 0].std() > 0.03


def test_same_seed_gives_identical_output_and_other_seed_differs() -> None:
    h = _relu_input((4, 64, 32))
    a, b, c = (Jumpout(sigma=0.2, generator=_gen(s)) for s in (13, 13, 14))
    out_a, out_b, out_c = a(h), b(h), c(h)
    assert torch.equal(out_a, out_b)
    assert torch.equal(a.last_rate_, b.last_rate_)
    assert not torch.equal(out_a, out_c)
    assert not torch.equal(a(h), out_a)  # the stream moves on between calls


def test_gradient_is_scale_at_kept_and_zero_at_dropped_units() -> None:
    h = (_relu_input((3, 40, 30), dtype=torch.float64) + 0.1).requires_grad_(True)  # all active
    layer = Jumpout(sigma=0.3, generator=_gen(15))
    out = layer(h)
    out.sum().backward()
    assert not layer.last_rate_.requires_grad and not layer.last_effective_rate_.requires_grad
    scale = (1 - layer.last_effective_rate_).pow(-layer.exponent).view(-1, 1, 1).expand_as(h)
    kept = out.detach() != 0
    assert kept.any() and (~kept).any()
    assert torch.all(h.grad[~kept] == 0)
    assert torch.equal(h.grad[kept], scale[kept])


def test_member_axis_inside_the_cnn_layout() -> None:
    """The CNN's (B, M, C, H, W) view of grouped channels (member_dim=1) gets each member's own rate
    from its own active fraction, and the same numbers as the member-first layout of the same memory."""
    n_members, batch = 3, 8
    fractions = torch.tensor([0.25, 0.5, 1.0])
    base = torch.rand(batch, n_members, 4, 6, 6, generator=_gen(16)) + 0.5
    keep = torch.rand(n_members, batch * 4 * 6 * 6, generator=_gen(17))
    order = keep.argsort(dim=1).argsort(dim=1).float()
    active = (order < fractions.view(-1, 1) * order.shape[1]).view(n_members, batch, 4, 6, 6)
    base = base * active.transpose(0, 1)
    layer = Jumpout(sigma=0.1, p_min=0.1, p_max=0.2, generator=_gen(18), member_dim=1)
    out = layer(base)
    p, p_eff = layer.last_rate_, layer.last_effective_rate_
    torch.testing.assert_close(p_eff, (p / fractions).clamp(max=0.9), rtol=1e-6, atol=0)
    assert out.shape == base.shape and torch.all(out[base == 0] == 0)
    member_first = Jumpout(sigma=0.1, p_min=0.1, p_max=0.2, generator=_gen(18))(base.transpose(0, 1))
    assert torch.equal(member_first.transpose(0, 1), out)
    with pytest.raises(ValueError, match="member axis at dim 2"):
        Jumpout(member_dim=2, generator=_gen())(torch.ones(2, 3))


def test_low_precision_and_double_inputs_keep_dtype() -> None:
    for dtype in (torch.bfloat16, torch.float64):
        h = _relu_input((2, 256, 128), dtype=dtype)
        layer = Jumpout(sigma=0.0, p_min=0.4, p_max=0.4, generator=_gen(19))
        out = layer(h)
        assert out.dtype == dtype
        active = h > 0
        share = (out[active] == 0).double().mean().item()
        pe = layer.last_effective_rate_[0].item()
        assert share == pytest.approx(pe, abs=5 * math.sqrt(pe * (1 - pe) / int(active.sum())))
        scale = (1 - layer.last_effective_rate_).pow(-0.75).view(-1, 1, 1)
        kept = out != 0
        torch.testing.assert_close(out[kept].double(), (h.double() * scale)[kept], rtol=1e-2, atol=0)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="p_min"):
        Jumpout(p_min=0.7, p_max=0.6)
    with pytest.raises(ValueError, match="max_rate"):
        Jumpout(max_rate=1.0)
    with pytest.raises(ValueError, match="sigma"):
        Jumpout(sigma=-0.1)
    with pytest.raises(ValueError, match="member axis at dim 0"):
        Jumpout()(torch.ones(5))
    with pytest.raises(ValueError, match="rate"):
        MemberDropout(1.0)


# --- plain dropout and the factory ---------------------------------------------------------

def test_make_dropout_returns_the_right_modules() -> None:
    g = _gen(20)
    jump = make_dropout("jumpout", rate=0.5, sigma=0.2, p_min=0.02, p_max=0.5, exponent=0.6, generator=g)
    assert isinstance(jump, Jumpout)
    assert (jump.sigma, jump.p_min, jump.p_max, jump.exponent, jump.generator) == (0.2, 0.02, 0.5, 0.6, g)
    drop = make_dropout("dropout", rate=0.3, sigma=0.2, p_min=0.02, p_max=0.5, exponent=0.6, generator=g)
    assert isinstance(drop, MemberDropout) and drop.rate == 0.3 and drop.generator is g
    assert isinstance(make_dropout("none", rate=0.3, sigma=0.1, p_min=0.01, p_max=0.6, exponent=0.75,
                                   generator=None), nn.Identity)
    with pytest.raises(ValueError, match="jumpout"):
        make_dropout("gaussian", rate=0.3, sigma=0.1, p_min=0.01, p_max=0.6, exponent=0.75,  # type: ignore[arg-type]
                     generator=None)


@pytest.mark.parametrize("seeded", [True, False])
def test_member_dropout_drops_at_rate(seeded: bool) -> None:
    rate, n = 0.3, 400_000
    h = torch.ones(4, n // 4)
    layer = MemberDropout(rate, generator=_gen(21) if seeded else None)
    out = layer(h)
    dropped = (out == 0).double().mean().item()
    assert dropped == pytest.approx(rate, abs=5 * math.sqrt(rate * (1 - rate) / n))
    torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / (1 - rate)))
    if seeded:
        assert torch.equal(out, MemberDropout(rate, generator=_gen(21))(h))
    assert torch.equal(MemberDropout(0.0)(h), h)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_jumpout_on_cuda_matches_oracles() -> None:
    h = _relu_input((4, 256, 64)).cuda()
    layer = Jumpout(sigma=0.3, generator=_gen(22, device="cuda"))
    out = layer(h)
    assert out.device == h.device and layer.last_rate_.device == h.device
    assert torch.all(out[h == 0] == 0)
    scale = (1 - layer.last_effective_rate_).pow(-0.75).view(-1, 1, 1).expand_as(h)
    kept = out != 0
    assert torch.equal(out[kept], (h * scale)[kept])
    assert torch.equal(out, Jumpout(sigma=0.3, generator=_gen(22, device="cuda"))(h))
