"""Bias attribution (Wang, Zhou & Bilmes; SCIENCE.md section 3) and gradient baselines, one member at a time.

A network of affine layers and piecewise-linear activations is, at a fixed input x, one affine
map: f_c(x) = grad f_c(x) . x + b^x. `bias_backprop` splits the bias part b^x back over the input
pixels, layer by layer: each output node q of an affine layer receives
carry[q] = beta_out[q] + G[q] * b[q] (G = df_c/dz at that node) and splits it over its inputs p
with weights alpha[q, p] that sum to 1. So sum(beta) at every layer equals the bias part of f_c
from that layer up, and gradient x input + beta_input sums to the logit (completeness).

Members are first turned into a plain `PiecewiseLinearNet` (a tuple of layers with float64
parameters, eval-mode batch norm folded into the preceding conv/linear) by `extract_member`; it
accepts a member of `EnsembleMLP`/`EnsembleCNN` or a plain `nn.Sequential`. Everything runs on
a batch at once; attributions come back as numpy arrays shaped like x, in x's float dtype.
"""

from dataclasses import dataclass, fields, replace
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
import torch.nn.grad  # loaded by `import torch` already; named here so the type checker sees torch.nn.grad
from torch import Tensor, nn

from models.jumpout import Jumpout, MemberDropout
from models.nets import EnsembleCNN, EnsembleMLP, MemberConv2d

Rule = Literal["uniform", "abs_contrib", "signed_contrib"]
Method = Literal["bias", "bias_uniform", "bias_signed", "gradient_x_input",
                 "integrated_gradients_5", "integrated_gradients_10", "full"]
METHODS: tuple[str, ...] = ("bias", "bias_uniform", "bias_signed", "gradient_x_input",
                            "integrated_gradients_5", "integrated_gradients_10", "full")
# Our rule names -> the paper's ba1/ba2/ba3. [check]: the paper's formulas were not verified.
PAPER_NAMES: dict[str, str] = {"uniform": "ba1?", "abs_contrib": "ba2?", "signed_contrib": "ba3?"}
SIGNED_EPS = 1e-2  # signed_contrib stabiliser, relative to sum_p |W[q,p] x[p]|

_NOT_PIECEWISE_LINEAR = (nn.ELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.Softplus, nn.Mish, nn.SELU,
                         nn.CELU, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink, nn.Softmax, nn.LogSoftmax,
                         nn.Hardswish, nn.Hardsigmoid)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, Jumpout, MemberDropout)


# --- layers ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Linear:
    weight: Tensor  # (out, in)
    bias: Tensor  # (out,)


@dataclass(frozen=True, eq=False)
class Conv2d:
    weight: Tensor  # (out, in, kh, kw)
    bias: Tensor  # (out,)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)


@dataclass(frozen=True, eq=False)
class ChannelAffine:
    """y = x * scale + shift along dim 1: an eval batch norm not preceded by a conv/linear."""
    scale: Tensor  # (C,)
    shift: Tensor  # (C,)


@dataclass(frozen=True)
class ReLU:
    pass


@dataclass(frozen=True)
class LeakyReLU:
    slope: float


@dataclass(frozen=True)
class MaxPool2d:
    kernel: int = 2  # stride = kernel (non-overlapping windows)


@dataclass(frozen=True)
class GlobalAvgPool:
    keepdim: bool = False  # True: (B, C, 1, 1) like nn.AdaptiveAvgPool2d(1); False: (B, C)


@dataclass(frozen=True)
class Flatten:
    pass


Layer = Linear | Conv2d | ChannelAffine | ReLU | LeakyReLU | MaxPool2d | GlobalAvgPool | Flatten
AffineLayer = Linear | Conv2d | ChannelAffine
_AFFINE = (Linear, Conv2d, ChannelAffine)


@dataclass(frozen=True, eq=False)
class PiecewiseLinearNet:
    """One network as a sequence of layers; parameters float64, cast to the input's dtype on use."""
    layers: tuple[Layer, ...]

    def logits(self, x: Tensor) -> Tensor:  # (B, *input) -> (B, K)
        return _forward(self, _as_input(x))[0][-1]

    def to(self, device: torch.device | str) -> "PiecewiseLinearNet":
        """The same network with its parameters on `device`; inputs on that device are explained there."""
        def move(layer: Layer) -> Layer:
            moved = {f.name: getattr(layer, f.name).to(device) for f in fields(layer)
                     if isinstance(getattr(layer, f.name), Tensor)}
            return replace(layer, **moved) if moved else layer
        return PiecewiseLinearNet(tuple(move(layer) for layer in self.layers))


@dataclass(frozen=True)
class BiasAttribution:
    """Bias back-propagation for a batch; B inputs, L layers, A affine layers."""
    input_attribution: npt.NDArray[np.floating]  # (B, *input): beta at the input; sums to bias_term
    per_layer_bias_share: npt.NDArray[np.floating]  # (B, A): sum over each affine layer's outputs of G*b
    bias_term: npt.NDArray[np.floating]  # (B,): b^x, the bias part of the logit
    gradient_term: npt.NDArray[np.floating]  # (B,): grad f . x
    logit: npt.NDArray[np.floating]  # (B,): gradient_term + bias_term
    layer_beta_sum: npt.NDArray[np.floating]  # (B, L + 1): sum of beta at each layer's input (L: logits)
    layer_gradient_term: npt.NDArray[np.floating]  # (B, L + 1): G . a at each layer's input


# --- extraction --------------------------------------------------------------------------------

def extract_member(net: nn.Module, m: int = 0, fold_bn: bool = True) -> PiecewiseLinearNet:
    """Member m of an EnsembleMLP/EnsembleCNN, or a plain nn.Sequential (m ignored), in eval mode.

    Batch norm is folded into the preceding conv/linear (W' = W s, b' = (b - mu) s + beta,
    s = gamma / sqrt(var + eps)); with fold_bn=False, or with nothing to fold into, it stays a
    ChannelAffine layer. Raises ValueError for train mode and non-piecewise-linear layers.
    """
    if net.training:
        raise ValueError(f"{type(net).__name__} is in train mode; call .eval()")
    for name, mod in net.named_modules():
        if mod.training and isinstance(mod, (nn.modules.batchnorm._BatchNorm, *_DROPOUTS)):
            raise ValueError(f"{name} ({type(mod).__name__}) is in train mode; call .eval()")
    if isinstance(net, (EnsembleMLP, EnsembleCNN)):
        if not 0 <= m < net.n_members:
            raise ValueError(f"member {m} out of range for {net.n_members} members")
        layers = _mlp_layers(net, m) if isinstance(net, EnsembleMLP) else _cnn_layers(net, m, fold_bn)
    elif isinstance(net, nn.Sequential):
        layers = _sequential_layers(net, fold_bn)
    else:
        raise ValueError(f"cannot extract {type(net).__name__}: expected EnsembleMLP, EnsembleCNN or nn.Sequential")
    return PiecewiseLinearNet(tuple(layers))


def _p(t: Tensor) -> Tensor:
    return t.detach().to("cpu", torch.float64).clone()


def _mlp_layers(net: EnsembleMLP, m: int) -> list[Layer]:
    layers: list[Layer] = []
    for lin in net.linear_layers()[:-1]:  # net.hidden, typed (an nn.ModuleList yields plain Modules)
        layers += [Linear(_p(lin.weight[m]).T.contiguous(), _p(lin.bias[m, 0])), ReLU()]
    return layers + [Linear(_p(net.head.weight[m]).T.contiguous(), _p(net.head.bias[m, 0]))]


def _cnn_layers(net: EnsembleCNN, m: int, fold_bn: bool) -> list[Layer]:
    layers: list[Layer] = []
    for conv, norm, pool in zip(net.convs, net.norms, net.pool_after):
        # an nn.ModuleList yields plain Modules; EnsembleCNN fills these with exactly these types
        conv, norm = cast(MemberConv2d, conv), cast(nn.BatchNorm2d, norm)
        rows = slice(m * conv.per_member_out, (m + 1) * conv.per_member_out)
        layer = Conv2d(_p(conv.weight[rows]), _p(conv.bias[rows]), *_pairs(conv))
        scale, shift = _bn_scale_shift(norm, "BatchNorm2d")
        layers += _with_bn(layer, scale[rows], shift[rows], fold_bn) + [ReLU()]
        if pool:
            layers.append(MaxPool2d(2))
    return layers + [GlobalAvgPool(), Linear(_p(net.head.weight[m]).T.contiguous(), _p(net.head.bias[m, 0]))]


def _bn_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d, name: str) -> tuple[Tensor, Tensor]:
    if bn.running_mean is None or bn.running_var is None:  # torch keeps both or neither
        raise ValueError(f"{name} keeps no running statistics, so eval mode still uses batch statistics")
    scale = 1.0 / torch.sqrt(_p(bn.running_var) + bn.eps)
    if bn.weight is not None:
        scale = scale * _p(bn.weight)
    shift = -_p(bn.running_mean) * scale + (_p(bn.bias) if bn.bias is not None else 0.0)
    return scale, shift


def _with_bn(layer: Linear | Conv2d, scale: Tensor, shift: Tensor, fold: bool) -> list[Layer]:
    if not fold:
        return [layer, ChannelAffine(scale, shift)]
    w_scale = scale.view(-1, *([1] * (layer.weight.ndim - 1)))
    if isinstance(layer, Linear):
        return [Linear(layer.weight * w_scale, layer.bias * scale + shift)]
    return [Conv2d(layer.weight * w_scale, layer.bias * scale + shift, layer.stride, layer.padding)]


def _flat_modules(seq: nn.Sequential) -> list[nn.Module]:
    out: list[nn.Module] = []
    for mod in seq:
        out += _flat_modules(mod) if isinstance(mod, nn.Sequential) else [mod]
    return out


def _sequential_layers(seq: nn.Sequential, fold_bn: bool) -> list[Layer]:
    layers: list[Layer] = []
    for i, mod in enumerate(_flat_modules(seq)):
        name = f"layer {i} ({type(mod).__name__})"
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            layers.append(_affine_from_module(mod, name))
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            scale, shift = _bn_scale_shift(mod, name)
            prev = layers[-1] if layers else None
            if isinstance(prev, (Linear, Conv2d)) and prev.weight.shape[0] == scale.shape[0]:
                layers[-1:] = _with_bn(prev, scale, shift, fold_bn)
            else:
                layers.append(ChannelAffine(scale, shift))
        elif isinstance(mod, nn.ReLU):
            layers.append(ReLU())
        elif isinstance(mod, nn.LeakyReLU):
            layers.append(LeakyReLU(float(mod.negative_slope)))
        elif isinstance(mod, nn.MaxPool2d):
            layers.append(_maxpool_from_module(mod, name))
        elif isinstance(mod, nn.AdaptiveAvgPool2d) and mod.output_size in (1, (1, 1)):
            layers.append(GlobalAvgPool(keepdim=True))
        elif isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1:
            layers.append(Flatten())
        elif isinstance(mod, (nn.Identity, *_DROPOUTS)):
            continue  # identity in eval mode (train mode was refused above)
        elif isinstance(mod, _NOT_PIECEWISE_LINEAR):
            raise ValueError(f"{name} is not piecewise linear; bias attribution is exact only with "
                             "ReLU, LeakyReLU, max-pool and affine layers")
        else:
            raise ValueError(f"{name} is not supported by bias attribution")
    return layers


def _affine_from_module(mod: nn.Linear | nn.Conv2d, name: str) -> Linear | Conv2d:
    bias = _p(mod.bias) if mod.bias is not None else torch.zeros(mod.weight.shape[0], dtype=torch.float64)
    if isinstance(mod, nn.Linear):
        return Linear(_p(mod.weight), bias)
    if mod.groups != 1 or mod.dilation != (1, 1) or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
        raise ValueError(f"{name}: only groups=1, dilation=1 and numeric zero padding are supported")
    return Conv2d(_p(mod.weight), bias, *_pairs(mod))


def _pairs(conv: nn.Conv2d) -> tuple[tuple[int, int], tuple[int, int]]:
    """(stride, padding) of a conv with numeric padding: nn.Conv2d stores both as 2-tuples, which
    torch types tuple[int, ...] (shared with Conv1d/3d) and padding also str (checked by callers)."""
    return cast("tuple[int, int]", tuple(conv.stride)), cast("tuple[int, int]", tuple(conv.padding))


def _maxpool_from_module(mod: nn.MaxPool2d, name: str) -> MaxPool2d:
    k = mod.kernel_size if isinstance(mod.kernel_size, int) else mod.kernel_size[0]
    same = all(v in (k, (k, k)) for v in (mod.kernel_size, mod.stride))
    if not same or mod.padding not in (0, (0, 0)) or mod.dilation not in (1, (1, 1)) or mod.ceil_mode:
        raise ValueError(f"{name}: only non-overlapping max-pooling (stride = kernel, no padding) is supported")
    return MaxPool2d(int(k))


# --- forward / backward ------------------------------------------------------------------------

def _as_input(x: npt.ArrayLike | Tensor) -> Tensor:
    t = torch.as_tensor(x).detach()  # a tensor stays on its device (the network's parameters follow it)
    return t if t.is_floating_point() else t.to(torch.float64)


def _as_plnet(net: "PiecewiseLinearNet | nn.Module") -> PiecewiseLinearNet:
    if isinstance(net, PiecewiseLinearNet):
        return net
    if isinstance(net, (EnsembleMLP, EnsembleCNN)):
        raise ValueError(f"{type(net).__name__} holds several members: pass extract_member(net, m) "
                         "or use explain_ensemble")
    return extract_member(net)


def _cast(t: Tensor, like: Tensor) -> Tensor:
    return t.to(device=like.device, dtype=like.dtype)


def _affine_op(layer: Layer, a: Tensor, w: Tensor) -> Tensor:
    """The linear part of an affine layer, with weight w in place of its own."""
    if isinstance(layer, Linear):
        return a @ w.T
    if isinstance(layer, Conv2d):
        return F.conv2d(a, w, None, layer.stride, layer.padding)
    return a * w.view(1, -1, *([1] * (a.ndim - 2)))


def _affine_op_t(layer: Layer, g: Tensor, w: Tensor, in_shape: torch.Size) -> Tensor:
    """The transpose of `_affine_op` (what backprop of g through it gives at the input)."""
    if isinstance(layer, Linear):
        return g @ w
    if isinstance(layer, Conv2d):
        grad_input: Tensor = torch.nn.grad.conv2d_input(  # type: ignore[no-untyped-call]  # unannotated in torch
            in_shape, w, g, layer.stride, layer.padding)
        return grad_input
    return g * w.view(1, -1, *([1] * (g.ndim - 2)))


def _bias_of(layer: AffineLayer) -> Tensor:
    return layer.shift if isinstance(layer, ChannelAffine) else layer.bias


def _weight_of(layer: AffineLayer) -> Tensor:
    return layer.scale if isinstance(layer, ChannelAffine) else layer.weight


def _forward(net: PiecewiseLinearNet, x: Tensor) -> tuple[list[Tensor], list[Tensor | None]]:
    """Activations a_0 = x, ..., a_L = logits, and the max-pool indices."""
    acts: list[Tensor] = [x]
    idx: list[Tensor | None] = []  # max-pool indices, None for the other layers
    for layer in net.layers:
        a, ix = acts[-1], None
        if isinstance(layer, _AFFINE):
            b = _cast(_bias_of(layer), a)
            z = _affine_op(layer, a, _cast(_weight_of(layer), a)) + b.view(1, -1, *([1] * (a.ndim - 2)))
        elif isinstance(layer, ReLU):
            z = a.clamp_min(0)
        elif isinstance(layer, LeakyReLU):
            z = F.leaky_relu(a, layer.slope)
        elif isinstance(layer, MaxPool2d):
            z, ix = F.max_pool2d(a, layer.kernel, layer.kernel, return_indices=True)
        elif isinstance(layer, GlobalAvgPool):
            z = a.mean(dim=(2, 3), keepdim=layer.keepdim)
        else:
            z = a.flatten(1)
        acts.append(z)
        idx.append(ix)
    return acts, idx


def _route(layer: Layer, g: Tensor, a: Tensor, ix: Tensor | None) -> Tensor:
    """Carry g at a non-affine layer's output back to its input (the gradient rule for G, and the
    beta rule too: max-pool routes to the argmax, global average pool splits evenly)."""
    if isinstance(layer, ReLU):
        return g * (a > 0)
    if isinstance(layer, LeakyReLU):
        return g * torch.where(a > 0, torch.ones_like(g), torch.full_like(g, layer.slope))
    if isinstance(layer, MaxPool2d):
        assert ix is not None  # _forward keeps the indices of every max-pool
        # int kernel and stride work as documented; torch's annotation (BroadcastingList2) says sequences only
        return F.max_unpool2d(g, ix, layer.kernel, layer.kernel, output_size=a.shape[-2:])  # type: ignore[arg-type]
    if isinstance(layer, GlobalAvgPool):
        return (g.view(*g.shape[:2], 1, 1) / (a.shape[2] * a.shape[3])).expand(a.shape).contiguous()
    return g.reshape(a.shape)  # Flatten


def _gradients(net: PiecewiseLinearNet, acts: list[Tensor], idx: list[Tensor | None], target: Tensor) -> list[Tensor]:
    """G_l = d logit_target / d a_l for every layer input l = 0..L (G_L is one-hot)."""
    grads = [F.one_hot(target, acts[-1].shape[1]).to(acts[-1].dtype)]
    for layer, a, ix in zip(reversed(net.layers), reversed(acts[:-1]), reversed(idx)):
        g = grads[0]
        if isinstance(layer, _AFFINE):
            g = _affine_op_t(layer, g, _cast(_weight_of(layer), a), a.shape)
        else:
            g = _route(layer, g, a, ix)
        grads.insert(0, g)
    return grads


def _targets(target: int | npt.ArrayLike, n: int, n_classes: int) -> Tensor:
    t = torch.as_tensor(np.broadcast_to(np.asarray(target), (n,)).astype(np.int64))
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise ValueError(f"target must lie in 0..{n_classes - 1}, got {np.unique(t.numpy()).tolist()}")
    return t


def _prepare(
    net: "PiecewiseLinearNet | nn.Module", x: npt.ArrayLike | Tensor, target: int | npt.ArrayLike,
) -> tuple[PiecewiseLinearNet, Tensor, list[Tensor], list[Tensor | None], Tensor]:  # net, x, acts, idx, target
    pl, xt = _as_plnet(net), _as_input(x)
    with torch.no_grad():
        acts, idx = _forward(pl, xt)
    if acts[-1].ndim != 2:
        raise ValueError(f"the network must end in logits shaped (B, K), got {tuple(acts[-1].shape)}")
    return pl, xt, acts, idx, _targets(target, xt.shape[0], acts[-1].shape[1]).to(xt.device)


# --- attributions ------------------------------------------------------------------------------

@torch.no_grad()
def gradient_x_input(net: "PiecewiseLinearNet | nn.Module", x: npt.ArrayLike | Tensor,
                     target: int | npt.ArrayLike) -> np.ndarray:
    """grad logit_target(x) * x, shaped like x (B, ...)."""
    pl, xt, acts, idx, t = _prepare(net, x, target)
    return (_gradients(pl, acts, idx, t)[0] * xt).cpu().numpy()


@torch.no_grad()
def integrated_gradients(net: "PiecewiseLinearNet | nn.Module", x: npt.ArrayLike | Tensor,
                         target: int | npt.ArrayLike, n_steps: int = 10) -> np.ndarray:
    """x * mean_k grad logit_target(((k + 1/2) / n) x), k = 0..n-1: midpoint Riemann sum with a zero
    reference (not Captum's default Gauss-Legendre). Sums to about f(x) - f(0)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    pl, xt, _, _, t = _prepare(net, x, target)
    alphas = (torch.arange(n_steps, dtype=xt.dtype, device=xt.device) + 0.5) / n_steps
    xs = (alphas.view(-1, *([1] * xt.ndim)) * xt).reshape(-1, *xt.shape[1:])  # (n*B, ...)
    acts, idx = _forward(pl, xs)
    grads = _gradients(pl, acts, idx, t.repeat(n_steps))[0].view(n_steps, *xt.shape)
    return (grads.mean(dim=0) * xt).cpu().numpy()


def _split(layer: AffineLayer, a: Tensor, carry: Tensor, rule: Rule, eps: float) -> Tensor:
    """Split carry[q] over layer inputs p with weights alpha[q, p] summing to 1 (see bias_backprop)."""
    if isinstance(layer, ChannelAffine):
        return carry  # one input per output: alpha = 1
    w = _cast(layer.weight, a)

    def op(inp: Tensor, ww: Tensor) -> Tensor:
        return _affine_op(layer, inp, ww)

    def op_t(g: Tensor, ww: Tensor) -> Tensor:
        return _affine_op_t(layer, g, ww, a.shape)

    if rule == "uniform":
        live_a, live_w = (a != 0).to(a.dtype), (w != 0).to(a.dtype)
        count = op(live_a, live_w)  # inputs with a non-zero contribution W[q,p] a[p]
        has = count > 0
        beta = live_a * op_t(torch.where(has, carry / torch.where(has, count, 1.0), 0.0), live_w)
    else:
        abs_a, abs_w = a.abs(), w.abs()
        total_abs = op(abs_a, abs_w)
        has = total_abs > 0
        if rule == "abs_contrib":
            beta = abs_a * op_t(torch.where(has, carry / torch.where(has, total_abs, 1.0), 0.0), abs_w)
        else:
            signed = op(a, w)
            sign = torch.where(signed >= 0, 1.0, -1.0).to(a.dtype)
            den = signed + eps * sign * total_abs  # |den| = |signed| + eps * total_abs > 0
            ratio = torch.where(has, carry / torch.where(has, den, 1.0), 0.0)
            beta = a * op_t(ratio, w) + eps * abs_a * op_t(ratio * sign, abs_w)
    stuck = torch.where(has, 0.0, carry)  # nodes whose every contribution is zero
    if bool((stuck != 0).any()):
        ones_a, ones_w = torch.ones_like(a), torch.ones_like(w)
        field = op(ones_a, ones_w).clamp_min(1.0)  # inputs in each node's receptive field
        beta = beta + op_t(stuck / field, ones_w)
    return beta


@torch.no_grad()
def bias_backprop(net: "PiecewiseLinearNet | nn.Module", x: npt.ArrayLike | Tensor, target: int | npt.ArrayLike,
                  rule: Rule = "abs_contrib", eps: float = SIGNED_EPS) -> BiasAttribution:
    """Back-propagate the bias part of logit_target to the input (SCIENCE.md section 3).

    Affine layer, output node q: carry[q] = beta_out[q] + G[q] b[q], split over inputs p by
      uniform:        evenly over the inputs with W[q,p] a[p] != 0;
      abs_contrib:    alpha ∝ |W[q,p] a[p]|;
      signed_contrib: alpha = (c + eps s |c|) / (sum_p c + eps s sum_p |c|), c = W[q,p] a[p],
                      s = sign(sum_p c): signed shares, kept finite when the contributions cancel
                      (|denominator| >= eps sum_p |c|) and still summing to 1 exactly.
    A node whose contributions are all zero splits evenly over its receptive field. ReLU passes beta
    on unchanged: a dead unit's output is 0, so no rule gives it any beta (it passes nothing); the
    one exception is carry from such an all-zero node, which goes through so none is lost.
    Max-pool routes beta to the argmax input, global average pooling splits it evenly.
    """
    if rule not in PAPER_NAMES:
        raise ValueError(f"rule must be one of {sorted(PAPER_NAMES)}, got {rule!r}")
    pl, xt, acts, idx, t = _prepare(net, x, target)
    grads = _gradients(pl, acts, idx, t)
    beta = torch.zeros_like(acts[-1])
    shares: list[Tensor] = []  # (B,) per affine layer, input first
    beta_sums = [beta.sum(dim=1)]
    for i in range(len(pl.layers) - 1, -1, -1):
        layer, a = pl.layers[i], acts[i]
        if isinstance(layer, _AFFINE):
            b = _cast(_bias_of(layer), a).view(1, -1, *([1] * (beta.ndim - 2)))
            gb = grads[i + 1] * b
            shares.insert(0, gb.flatten(1).sum(dim=1))
            beta = _split(layer, a, beta + gb, rule, eps)
        elif isinstance(layer, (ReLU, LeakyReLU)):
            pass  # see the docstring
        else:
            beta = _route(layer, beta, a, idx[i])
        beta_sums.insert(0, beta.flatten(1).sum(dim=1))
    grad_terms = torch.stack([(g * a).flatten(1).sum(dim=1) for g, a in zip(grads, acts)], dim=1)
    share = torch.stack(shares, dim=1) if shares else torch.zeros(xt.shape[0], 0, dtype=xt.dtype, device=xt.device)
    return BiasAttribution(
        input_attribution=beta.cpu().numpy(), per_layer_bias_share=share.cpu().numpy(),
        bias_term=share.sum(dim=1).cpu().numpy(), gradient_term=grad_terms[:, 0].cpu().numpy(),
        logit=acts[-1].gather(1, t.view(-1, 1)).squeeze(1).cpu().numpy(),
        layer_beta_sum=torch.stack(beta_sums, dim=1).cpu().numpy(), layer_gradient_term=grad_terms.cpu().numpy(),
    )


def explain(net: "PiecewiseLinearNet | nn.Module", x: npt.ArrayLike | Tensor, target: int | npt.ArrayLike,
            method: Method = "bias") -> np.ndarray:
    """Per-input-element scores shaped like x. "bias": abs_contrib beta; "bias_uniform",
    "bias_signed": the other rules; "integrated_gradients_<n>": n midpoint steps; "full":
    gradient x input + abs_contrib beta, which sums to the logit."""
    if method == "gradient_x_input":
        return gradient_x_input(net, x, target)
    if method.startswith("integrated_gradients_") and method in METHODS:
        return integrated_gradients(net, x, target, int(method.rsplit("_", 1)[1]))
    rules: dict[str, Rule] = {"bias": "abs_contrib", "bias_uniform": "uniform", "bias_signed": "signed_contrib",
                              "full": "abs_contrib"}
    if method not in rules:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    beta = bias_backprop(net, x, target, rules[method]).input_attribution
    return beta + gradient_x_input(net, x, target) if method == "full" else beta


def explain_ensemble(net: EnsembleMLP | EnsembleCNN, n_members: int | None, x: npt.ArrayLike | Tensor,
                     target: int | npt.ArrayLike, method: Method = "bias") -> np.ndarray:
    """Mean over members 0..n_members-1 (None: all) of `explain` on each member; shaped like x."""
    n = net.n_members if n_members is None else n_members
    if not 1 <= n <= net.n_members:
        raise ValueError(f"n_members must lie in 1..{net.n_members}, got {n_members}")
    total = explain(extract_member(net, 0), x, target, method)
    for m in range(1, n):
        total = total + explain(extract_member(net, m), x, target, method)
    return total / n

