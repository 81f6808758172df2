"""The CPU image defaults (issue 17, item 1): a strided stem on larger images and channels_last on
the CPU change how fast a CNN runs, never which function it computes or which member sees what."""

import pytest
import torch

from models.ensemble import to_device
from models.nets import build_ensemble, stem_stride
from models.spec import TrainSpec

N_CLASSES = 3


def _spec(**kw: object) -> TrainSpec:
    return TrainSpec(n_members=3, dropout="none", cnn_width=4, **kw)  # type: ignore[arg-type]


def test_the_stem_strides_from_16_px_a_side_unless_the_spec_says() -> None:
    spec = _spec()
    assert [stem_stride(spec, (s, s)) for s in (8, 15, 16, 28)] == [1, 1, 2, 2]
    assert stem_stride(spec, (32, 8)) == 1  # the shorter side decides
    assert stem_stride(_spec(cnn_stem_stride=1), (28, 28)) == 1
    assert stem_stride(_spec(cnn_stem_stride=3), (8, 8)) == 3
    with pytest.raises(ValueError, match="cnn_stem_stride"):
        TrainSpec(cnn_stem_stride=-1)


def test_a_strided_28px_cnn_pools_its_smaller_maps_and_gives_logits_per_member() -> None:
    net = build_ensemble("cnn", [0, 1, 2], (1, 28, 28), N_CLASSES, _spec())
    assert net.stride == 2 and net.pool_after == [True, True, False]  # 14 -> 7 -> 3 px: no pool below 4
    out = net(net.stack_input(torch.randn(5, 1, 28, 28)))
    assert out.shape == (3, 5, N_CLASSES)
    plain = build_ensemble("cnn", [0, 1, 2], (1, 8, 8), N_CLASSES, _spec())
    assert plain.stride == 1 and plain.pool_after == [True, True, False]  # 8 -> 4 -> 2


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 20, 20)])
def test_channels_last_on_the_cpu_computes_the_same_logits_and_gradients(shape: tuple[int, int, int]) -> None:
    nchw = to_device(build_ensemble("cnn", [0, 1, 2], shape, N_CLASSES, _spec()), torch.device("cpu"),
                     channels_last=False)
    last = to_device(build_ensemble("cnn", [0, 1, 2], shape, N_CLASSES, _spec()), torch.device("cpu"))
    assert last.convs[-1].weight.is_contiguous(memory_format=torch.channels_last)  # CPU_CHANNELS_LAST
    assert not nchw.convs[-1].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 6, *shape, generator=torch.Generator().manual_seed(1))  # (M, B, C, H, W)
    out_a, out_b = nchw(nchw.member_batches(x)), last(last.member_batches(x))
    torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-5)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    for (name, a), b in zip(nchw.named_parameters(), last.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_a_member_never_sees_another_members_image_with_a_strided_stem() -> None:
    net = build_ensemble("cnn", [0, 1, 2], (1, 16, 16), N_CLASSES, _spec()).eval()
    x = torch.randn(3, 4, 1, 16, 16)
    before = net(net.member_batches(x))
    x[1] += 5.0  # only member 1's images change
    after = net(net.member_batches(x))
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    assert not torch.allclose(after[1], before[1])


def test_the_per_member_layout_strides_its_stem_like_the_grouped_one() -> None:
    grouped = build_ensemble("cnn", [0, 1], (1, 16, 16), N_CLASSES, _spec(), per_member_convs=False).eval()
    member = build_ensemble("cnn", [0, 1], (1, 16, 16), N_CLASSES, _spec(), per_member_convs=True).eval()
    member.load_state_dict(grouped.state_dict())
    x = torch.randn(2, 3, 1, 16, 16)
    torch.testing.assert_close(member(member.member_batches(x)), grouped(grouped.member_batches(x)),
                               rtol=1e-5, atol=1e-5)
