"""Bias attribution (SCIENCE.md section 3) in float64: completeness at every layer for an MLP and a
CNN with batch norm and max-pool under all three rules, the special cases the science names
(zero biases, one affine layer, BN folded or not, dead units), refusals (train mode, GELU/ELU),
integrated gradients' completeness, and extraction of ensemble members."""

import numpy as np
import pytest
import torch
from torch import nn

from models.attribution import (
    METHODS,
    PAPER_NAMES,
    ChannelAffine,
    Conv2d,
    bias_backprop,
    explain,
    explain_ensemble,
    extract_member,
    gradient_x_input,
    integrated_gradients,
)
from models.nets import build_ensemble
from models.spec import TrainSpec

RULES = ("uniform", "abs_contrib", "signed_contrib")
TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny nets: one intra-op thread is as fast, and two spin-wait on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise_bn(net: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial eval statistics so that folding batch norm actually changes the weights."""
    for mod in net.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            n = mod.num_features
            with torch.no_grad():
                mod.running_mean.copy_(torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1)
                mod.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                mod.bias.copy_(torch.rand(n, generator=gen, dtype=torch.float64) - 0.5)


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 12), nn.BatchNorm1d(12),
                        nn.LeakyReLU(0.1), nn.Linear(12, 5)).double()
    _randomise_bn(net, torch.Generator().manual_seed(1))
    return net.eval()


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 3, stride=2, padding=1), nn.BatchNorm2d(5), nn.LeakyReLU(0.2), nn.Dropout2d(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4),
    ).double()
    _randomise_bn(net, torch.Generator().manual_seed(2))
    return net.eval()


def _inputs(shape: tuple[int, ...], seed: int = 3) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CASES = {"mlp": (_mlp, (7, 10)), "cnn": (_cnn, (6, 2, 8, 8))}


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("kind", sorted(CASES))
def test_completeness_at_every_layer(kind, rule):
    make, shape = CASES[kind]
    net, x = make(), _inputs(shape)
    pl = extract_member(net)
    target = np.arange(shape[0]) % 4
    res = bias_backprop(pl, x, target, rule)
    logits = net(x).detach().numpy()
    np.testing.assert_allclose(res.logit, logits[np.arange(shape[0]), target], **TOL)
    # the input: gradient x input + beta = logit, and beta sums to the bias term
    assert res.input_attribution.shape == x.shape
    np.testing.assert_allclose(res.gradient_term + res.input_attribution.reshape(shape[0], -1).sum(1),
                               res.logit, **TOL)
    np.testing.assert_allclose(res.input_attribution.reshape(shape[0], -1).sum(1), res.bias_term, **TOL)
    # every layer: sum(beta_l) + G_l . a_l = logit, and sum(beta_l) = the bias shares of the layers above l
    per_layer = res.layer_beta_sum + res.layer_gradient_term  # (B, L + 1)
    np.testing.assert_allclose(per_layer, np.broadcast_to(res.logit[:, None], per_layer.shape), **TOL)
    affine = [i for i, layer in enumerate(pl.layers) if hasattr(layer, "bias") or isinstance(layer, ChannelAffine)]
    assert res.per_layer_bias_share.shape == (shape[0], len(affine))
    for col in range(len(pl.layers) + 1):
        above = [k for k, i in enumerate(affine) if i >= col]
        np.testing.assert_allclose(res.layer_beta_sum[:, col], res.per_layer_bias_share[:, above].sum(1), **TOL)
    assert np.abs(res.bias_term).max() > 1e-3  # the biases are not trivially zero here


@pytest.mark.parametrize("kind", sorted(CASES))
def test_gradient_term_matches_autograd(kind):
    make, shape = CASES[kind]
    net, x = make(), _inputs(shape).requires_grad_()
    net(x)[:, 2].sum().backward()
    expected = (x.grad * x).detach().numpy()
    np.testing.assert_allclose(gradient_x_input(extract_member(net), x.detach(), 2), expected, **TOL)


@pytest.mark.parametrize("rule", RULES)
def test_zero_biases_give_zero_beta(rule):
    net = _cnn()
    for mod in net.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            nn.init.zeros_(mod.bias)
        if isinstance(mod, nn.BatchNorm2d):
            nn.init.zeros_(mod.bias)
            nn.init.zeros_(mod.running_mean)
    x = _inputs((4, 2, 8, 8))
    res = bias_backprop(extract_member(net), x, 1, rule)
    assert np.all(res.input_attribution == 0) and np.all(res.bias_term == 0)
    np.testing.assert_allclose(res.gradient_term, res.logit, **TOL)


@pytest.mark.parametrize("rule", RULES)
def test_one_affine_layer_beta_sums_to_its_bias(rule):
    torch.manual_seed(0)
    lin = nn.Linear(5, 3).double()
    x = _inputs((4, 5))
    beta = bias_backprop(extract_member(nn.Sequential(lin).eval()), x, 2, rule).input_attribution
    b = lin.bias[2].item()
    np.testing.assert_allclose(beta.sum(1), np.full(4, b), **TOL)
    contrib = (lin.weight[2] * x).detach().numpy()  # (4, 5): W[q, p] x[p] for the target row
    expected = {"uniform": np.full((4, 5), b / 5),
                "abs_contrib": b * np.abs(contrib) / np.abs(contrib).sum(1, keepdims=True)}
    if rule in expected:
        np.testing.assert_allclose(beta, expected[rule], **TOL)


def test_signed_rule_stays_finite_when_contributions_cancel():
    lin = nn.Linear(2, 1).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0]]))
        lin.bias.fill_(2.0)
    net, x = nn.Sequential(lin).eval(), torch.ones(1, 2, dtype=torch.float64)
    signed = bias_backprop(net, x, 0, "signed_contrib").input_attribution
    # c = (1, -1) sums to 0: alpha = (c + eps|c|) / (0 + eps * 2) = (50.5, -49.5) with eps = 0.01
    np.testing.assert_allclose(signed, [[2 * 50.5, 2 * -49.5]], **TOL)
    np.testing.assert_allclose(bias_backprop(net, x, 0, "abs_contrib").input_attribution, [[1.0, 1.0]], **TOL)


@pytest.mark.parametrize("rule", RULES)
def test_batch_norm_as_a_layer_and_folded_give_the_same_beta(rule):
    net, x = _cnn(), _inputs((5, 2, 8, 8))
    folded, unfolded = extract_member(net, fold_bn=True), extract_member(net, fold_bn=False)
    assert sum(isinstance(layer, ChannelAffine) for layer in unfolded.layers) == 2
    assert not any(isinstance(layer, ChannelAffine) for layer in folded.layers)
    a, b = bias_backprop(folded, x, 3, rule), bias_backprop(unfolded, x, 3, rule)
    np.testing.assert_allclose(a.input_attribution, b.input_attribution, **TOL)
    np.testing.assert_allclose(a.bias_term, b.bias_term, **TOL)
    # and by hand: the first conv with its batch norm folded into the weights, as a plain Sequential
    conv, bn = net[0], net[1]
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    manual = nn.Conv2d(2, 4, 3, padding=1).double()
    with torch.no_grad():
        manual.weight.copy_(conv.weight * s.view(-1, 1, 1, 1))
        manual.bias.copy_((conv.bias - bn.running_mean) * s + bn.bias)
    by_hand = nn.Sequential(manual, *list(net)[2:]).eval()
    c = bias_backprop(extract_member(by_hand), x, 3, rule)
    np.testing.assert_allclose(c.input_attribution, a.input_attribution, **TOL)


def _two_unit_net(b1: tuple[float, float]) -> nn.Sequential:
    first, second = nn.Linear(2, 2).double(), nn.Linear(2, 1).double()
    with torch.no_grad():
        first.weight.copy_(torch.eye(2))
        first.bias.copy_(torch.tensor(b1))
        second.weight.copy_(torch.tensor([[2.0, 3.0]]))
        second.bias.fill_(0.7)
    return nn.Sequential(first, nn.ReLU(), second).eval()


@pytest.mark.parametrize("rule", RULES)
def test_dead_units_pass_nothing(rule):
    x = torch.ones(1, 2, dtype=torch.float64)
    res = bias_backprop(_two_unit_net((-5.0, 0.5)), x, 0, rule)  # unit 0 dead (-4), unit 1 alive (1.5)
    # x[0] only feeds the dead unit: no beta, and the dead unit's bias -5 is not part of b^x
    np.testing.assert_allclose(res.input_attribution, [[0.0, 3 * 0.5 + 0.7]], **TOL)
    np.testing.assert_allclose(res.per_layer_bias_share, [[1.5, 0.7]], **TOL)
    # every unit dead: f is the constant 0.7, G = 0, and the whole logit still reaches the input
    res = bias_backprop(_two_unit_net((-5.0, -5.0)), x, 0, rule)
    assert res.gradient_term[0] == 0.0
    np.testing.assert_allclose(res.input_attribution.sum(), 0.7, **TOL)


@pytest.mark.parametrize("rule", RULES)
def test_all_zero_input_falls_back_to_the_receptive_field(rule):
    net = _cnn()
    x = torch.zeros(2, 2, 8, 8, dtype=torch.float64)
    res = bias_backprop(extract_member(net), x, 0, rule)
    np.testing.assert_allclose(res.input_attribution.reshape(2, -1).sum(1), res.logit, **TOL)
    np.testing.assert_allclose(res.logit, net(x)[:, 0].detach().numpy(), **TOL)
    assert np.count_nonzero(res.input_attribution) == x.numel()  # every pixel lies in some field


def test_train_mode_raises():
    net = _cnn()
    net[1].train()
    with pytest.raises(ValueError, match=r"BatchNorm2d\) is in train mode; call .eval\(\)"):
        extract_member(net)
    net = _mlp()
    net[2].train()
    with pytest.raises(ValueError, match=r"Dropout\) is in train mode; call .eval\(\)"):
        extract_member(net)
    with pytest.raises(ValueError, match="Sequential is in train mode; call .eval()"):
        extract_member(_mlp().train())


@pytest.mark.parametrize("activation", [nn.GELU(), nn.ELU(), nn.Sigmoid(), nn.SiLU()])
def test_non_piecewise_linear_activations_are_refused(activation):
    net = nn.Sequential(nn.Linear(3, 4), activation, nn.Linear(4, 2)).eval()
    name = type(activation).__name__
    with pytest.raises(ValueError, match=rf"layer 1 \({name}\) is not piecewise linear"):
        extract_member(net)


def test_unsupported_layers_are_refused():
    with pytest.raises(ValueError, match="groups=1"):
        extract_member(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2)).eval())
    with pytest.raises(ValueError, match="non-overlapping"):
        extract_member(nn.Sequential(nn.MaxPool2d(3, stride=2)).eval())
    with pytest.raises(ValueError, match="layer 0 \\(Embedding\\) is not supported"):
        extract_member(nn.Sequential(nn.Embedding(3, 2)).eval())


@pytest.mark.parametrize("kind", sorted(CASES))
def test_integrated_gradients_sum_to_f_x_minus_f_0(kind):
    make, shape = CASES[kind]
    net, x = make(), _inputs(shape)
    expected = (net(x) - net(torch.zeros_like(x)))[:, 1].detach().numpy()
    ig = integrated_gradients(extract_member(net), x, 1, n_steps=2000).reshape(shape[0], -1).sum(1)
    np.testing.assert_allclose(ig, expected, rtol=0, atol=2e-3 * np.abs(expected).max())
    # one midpoint step is the gradient at x/2 times x
    xh = (x / 2).requires_grad_()
    net(xh)[:, 1].sum().backward()
    np.testing.assert_allclose(integrated_gradients(extract_member(net), x, 1, 1), (xh.grad * x).numpy(), **TOL)


def test_explain_methods():
    net, x = _cnn(), _inputs((3, 2, 8, 8))
    pl = extract_member(net)
    logit = net(x)[:, 2].detach().numpy()
    for method in METHODS:
        assert explain(pl, x, 2, method).shape == x.shape
    np.testing.assert_allclose(explain(pl, x, 2, "full").reshape(3, -1).sum(1), logit, **TOL)
    np.testing.assert_allclose(explain(net, x, 2, "bias"),
                               bias_backprop(pl, x, 2, "abs_contrib").input_attribution, **TOL)
    assert not np.allclose(explain(pl, x, 2, "bias_uniform"), explain(pl, x, 2, "bias_signed"))
    assert set(PAPER_NAMES) == set(RULES)
    with pytest.raises(ValueError, match="method must be one of"):
        explain(pl, x, 2, "integrated_gradients_7")
    with pytest.raises(ValueError, match="target must lie in 0..3"):
        explain(pl, x, 4, "bias")


def test_float32_inputs_stay_float32():
    pl = extract_member(_cnn())
    x = _inputs((3, 2, 8, 8)).float()
    res = bias_backprop(pl, x, 0)
    assert res.input_attribution.dtype == np.float32
    np.testing.assert_allclose(res.gradient_term + res.input_attribution.reshape(3, -1).sum(1), res.logit,
                               rtol=1e-4, atol=1e-4)


def _spec(**params) -> TrainSpec:
    return TrainSpec(**{**dict(device="cpu", hidden_units=16, n_hidden_layers=2, cnn_width=4,
                               dropout="dropout", random_state=0), **params})


def test_extract_member_matches_the_vectorised_mlp():
    net = build_ensemble("mlp", [0, 1, 2], (12,), 5, _spec()).double().eval()
    x = _inputs((6, 12))
    logits = net(net.stack_input(x)).detach()  # (M, B, K)
    for m in range(3):
        np.testing.assert_allclose(extract_member(net, m).logits(x), logits[m], **TOL)
    assert not torch.allclose(logits[0], logits[1])  # the members differ, so m is really picked
    with pytest.raises(ValueError, match="member 3 out of range"):
        extract_member(net, 3)
    with pytest.raises(ValueError, match="EnsembleMLP is in train mode"):
        extract_member(net.train(), 0)


def test_extract_member_matches_the_vectorised_cnn_and_ensemble_mean():
    net = build_ensemble("cnn", [0, 1], (1, 8, 8), 4, _spec()).double()
    _randomise_bn(net, torch.Generator().manual_seed(5))
    net.eval()
    x = _inputs((5, 1, 8, 8))
    logits = net(net.stack_input(x)).detach()  # (M, B, K)
    members = [extract_member(net, m) for m in range(2)]
    assert isinstance(members[1].layers[0], Conv2d) and members[1].layers[0].weight.shape == (4, 1, 3, 3)
    for m in range(2):
        np.testing.assert_allclose(members[m].logits(x), logits[m], **TOL)
    full = explain_ensemble(net, None, x, 3, "full")
    np.testing.assert_allclose(full.reshape(5, -1).sum(1), logits[:, :, 3].mean(0).numpy(), **TOL)
    one = explain_ensemble(net, 1, x, 3, "bias")
    np.testing.assert_allclose(one, explain(members[0], x, 3, "bias"), **TOL)
    with pytest.raises(ValueError, match="pass extract_member"):
        explain(net, x, 3, "bias")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", sorted(CASES))
def test_attributions_on_cuda_match_the_cpu(kind):
    """The explain worker runs a GPU-trained job's attributions on the GPU (float64 there too)."""
    make, shape = CASES[kind]
    pl, x = extract_member(make()), _inputs(shape)
    on_gpu = pl.to("cuda")
    assert all(t.is_cuda for layer in on_gpu.layers for t in vars(layer).values() if isinstance(t, torch.Tensor))
    for method in METHODS:
        np.testing.assert_allclose(explain(on_gpu, x.cuda(), 1, method), explain(pl, x, 1, method),
                                   rtol=1e-9, atol=1e-9, err_msg=method)
    gpu, cpu = bias_backprop(on_gpu, x.cuda(), 1), bias_backprop(pl, x, 1)
    np.testing.assert_allclose(gpu.bias_term, cpu.bias_term, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gpu.logit, cpu.logit, rtol=1e-9, atol=1e-9)


def test_explanations_fall_back_to_the_cpu_without_the_jobs_device(monkeypatch):
    from models.explain_worker import explain_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert explain_device("cuda") == torch.device("cpu")
    assert explain_device("cuda:1") == torch.device("cpu")
    assert explain_device("auto") == torch.device("cpu")
    assert explain_device("cpu") == torch.device("cpu")
