"""TrainSpec's by-data Jumpout defaults: filled in from the examples per input feature, never over a
value the user set, and refused with a clear message when the filled-in rates cannot hold."""

import pytest

from models.spec import (
    CPU_NARROW_CNN_FROM,
    JUMPOUT_BY_RATIO,
    LOW_NOISE_PASS_BELOW,
    MLP_DEEP_FROM,
    MLP_DEEP_LAYERS,
    MLP_SHALLOW_LAYERS,
    NARROW_CNN,
    PAPER_JUMPOUT,
    WIDE_CNN,
    TrainSpec,
    cpu_has_native_bf16,
    jumpout_for_data,
    mlp_layers_for,
    weaker_jumpout,
)


def test_rows_are_ordered_and_get_weaker_as_examples_per_feature_grow() -> None:
    starts = [row[0] for row in JUMPOUT_BY_RATIO]
    assert starts == sorted(starts) and starts[0] == 0
    expected_rates = [row[2] for row in JUMPOUT_BY_RATIO]  # p_min
    assert expected_rates == sorted(expected_rates, reverse=True)


@pytest.mark.parametrize("n,d", [(178, 13), (1797, 64), (150, 4), (50_000, 3 * 32 * 32), (10, 0)])
def test_the_row_is_the_last_one_whose_ratio_is_reached(n: int, d: int) -> None:
    ratio = n / max(d, 1)
    row = [r for r in JUMPOUT_BY_RATIO if ratio >= r[0]][-1]
    assert jumpout_for_data(n, d) == row[1:]
    spec = TrainSpec().resolved(n, d)
    assert (spec.jumpout_sigma, spec.jumpout_p_min, spec.jumpout_p_max) == row[1:]


def test_a_value_the_user_set_is_kept_and_resolving_twice_changes_nothing() -> None:
    spec = TrainSpec(jumpout_sigma=0.05).resolved(150, 4)
    assert spec.jumpout_sigma == 0.05 and spec.jumpout_p_min is not None
    assert spec.resolved(10, 1000) == spec
    full = TrainSpec(jumpout_sigma=0.2, jumpout_p_min=0.1, jumpout_p_max=0.3, cnn_width=8, precision="fp32",
                     n_hidden_layers=2)
    assert full.resolved(5, 5) is full


def test_a_filled_in_p_min_above_the_users_p_max_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match=r"jumpout_p_min 0.2 exceeds jumpout_p_max 0.15 .*set both"):
        TrainSpec(jumpout_p_max=0.15).resolved(100, 10)  # 10 examples a feature: the strong row
    with pytest.raises(ValueError, match="exceeds"):
        TrainSpec(jumpout_p_min=0.5, jumpout_p_max=0.4)  # both set: refused at once


@pytest.mark.parametrize("n,d,on_gpu,width", [
    (1797, 64, False, WIDE_CNN),  # digits as 8x8 images on a CPU: the width detection was measured with
    (10_000, 28 * 28, False, NARROW_CNN),  # 7.8M pixel values: the faster width on a CPU
    (10_000, 28 * 28, True, WIDE_CNN),  # a GPU always gets the wide one
    (CPU_NARROW_CNN_FROM - 1, 1, False, WIDE_CNN), (CPU_NARROW_CNN_FROM, 1, False, NARROW_CNN)])
def test_the_cnn_width_follows_device_and_size_unless_set(n: int, d: int, on_gpu: bool, width: int) -> None:
    assert TrainSpec().resolved(n, d, on_gpu=on_gpu).cnn_width == width
    assert TrainSpec(cnn_width=24).resolved(n, d, on_gpu=on_gpu).cnn_width == 24
    assert TrainSpec().cnn_width is None  # unset until a job is created for its data


@pytest.mark.parametrize("n,d", [(3000, 784), (10_000, 784), (50_000, 3 * 32 * 32)])
def test_a_cnn_never_takes_the_strong_row(n: int, d: int) -> None:
    cnn = TrainSpec().resolved(n, d, cnn=True)
    assert (cnn.jumpout_sigma, cnn.jumpout_p_min, cnn.jumpout_p_max) == PAPER_JUMPOUT
    assert TrainSpec().resolved(1797, 64, cnn=True).jumpout_sigma == JUMPOUT_BY_RATIO[1][1]  # 8x8 digits: middle
    assert TrainSpec().resolved(3000, 784).jumpout_sigma == JUMPOUT_BY_RATIO[0][1]  # an MLP on the pixels: by ratio
    assert TrainSpec(jumpout_sigma=0.3).resolved(n, d, cnn=True).jumpout_sigma == 0.3  # set: kept


@pytest.mark.parametrize("on_gpu,cnn,cpu_bf16,precision", [
    (True, False, False, "bf16"), (True, True, False, "bf16"),  # a GPU: bf16 autocast, as before
    (False, True, True, "bf16"),  # a CNN on a CPU with native bf16: 1.3-1.4x, same AP (measured)
    (False, True, False, "fp32"),  # emulated bf16 is slower than fp32
    (False, False, True, "fp32")])  # an MLP gained nothing from it
def test_precision_auto_follows_device_model_and_cpu(on_gpu: bool, cnn: bool, cpu_bf16: bool, precision: str) -> None:
    assert TrainSpec().resolved(1797, 64, on_gpu=on_gpu, cnn=cnn, cpu_bf16=cpu_bf16).precision == precision
    assert TrainSpec(precision="fp32").resolved(1797, 64, on_gpu, cnn, cpu_bf16).precision == "fp32"  # set: kept


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def probe(text: str) -> bool:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return cpu_has_native_bf16.__wrapped__(str(path))

    assert probe("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert probe("flags\t: fpu amx_tile amx_bf16 amx_int8\n")  # Intel AMX
    assert not probe("flags\t: fpu avx2 avx512f avx512_vnni\n")  # AVX-512 without bf16: emulated
    assert not probe("processor\t: 0\n")  # no flags line (another OS's layout)
    assert not cpu_has_native_bf16.__wrapped__(str(tmp_path / "missing"))  # not Linux: False


@pytest.mark.parametrize("n,d,layers", [(178, 13, 3), (1797, 64, 3), (11055, 30, 3), (1000, 384, 2), (1000, 256, 2),
                                        (80, 10, 3), (79, 10, 2), (10, 0, 3)])
def test_the_mlp_is_deep_from_its_examples_per_feature_and_a_set_depth_is_kept(n: int, d: int, layers: int) -> None:
    """Three hidden layers from MLP_DEEP_FROM examples a feature (the six tables), two below it
    (text embeddings: 1,000 texts of 384 or 256 dims); a depth the user set is never replaced."""
    assert MLP_DEEP_FROM == 8.0 and (MLP_DEEP_LAYERS, MLP_SHALLOW_LAYERS) == (3, 2)
    assert mlp_layers_for(n, d) == layers
    assert TrainSpec().n_hidden_layers is None and TrainSpec().resolved(n, d).n_hidden_layers == layers
    assert TrainSpec(n_hidden_layers=1).resolved(n, d).n_hidden_layers == 1


def test_an_mlp_on_raw_pixels_keeps_two_layers_at_any_ratio() -> None:
    """10,000 28x28 images are 12.8 examples a pixel, deep by the ratio, yet the third layer cost
    the pixel MLP most of its detection; a depth the user set is kept."""
    assert mlp_layers_for(10_000, 784) == 3 and mlp_layers_for(10_000, 784, pixels=True) == 2
    assert TrainSpec().resolved(10_000, 784, pixels=True).n_hidden_layers == 2
    assert TrainSpec().resolved(10_000, 784).n_hidden_layers == 3  # the same numbers as a table
    assert TrainSpec(n_hidden_layers=3).resolved(10_000, 784, pixels=True).n_hidden_layers == 3


@pytest.mark.parametrize("n,d,row", [(178, 13, 0), (569, 30, 0), (1797, 64, 1)])  # wine, breast cancer, digits
def test_the_low_noise_pass_gets_the_next_weaker_row_where_the_row_is_by_data(n: int, d: int, row: int) -> None:
    spec = TrainSpec().resolved(n, d)
    assert (spec.jumpout_sigma, spec.jumpout_p_min, spec.jumpout_p_max) == JUMPOUT_BY_RATIO[row][1:]
    assert spec.low_noise_jumpout == JUMPOUT_BY_RATIO[row + 1][1:]
    assert weaker_jumpout(JUMPOUT_BY_RATIO[row][1:]) == JUMPOUT_BY_RATIO[row + 1][1:]
    assert spec.resolved(n, d) == spec  # resolving the stored spec again changes nothing
    second = spec.low_noise_spec()
    assert (second.jumpout_sigma, second.jumpout_p_min, second.jumpout_p_max) == spec.low_noise_jumpout
    assert second.random_state == spec.round2_seed() != spec.random_state
    assert second.low_noise_jumpout is None  # the pass has no pass of its own
    assert (second.n_members, second.n_epochs) == (spec.n_members // 2, spec.n_epochs // 2)
    tiny = TrainSpec(n_members=1, n_epochs=1).resolved(n, d).low_noise_spec()
    assert (tiny.n_members, tiny.n_epochs) == (1, 1)
    assert second.model_copy(update={k: getattr(spec, k) for k in (
        "jumpout_sigma", "jumpout_p_min", "jumpout_p_max", "random_state", "low_noise_jumpout", "n_epochs",
        "n_members")}) == spec


@pytest.mark.parametrize("spec,n,d,cnn,pixels", [
    (TrainSpec(), 150, 4, False, False),  # iris: already the weakest row
    (TrainSpec(), 1000, 384, False, False),  # 2.6 a feature (text embeddings): below MLP_DEEP_FROM, unmeasured
    (TrainSpec(), 1797, 64, True, False),  # digits as images: the CNN
    (TrainSpec(), 3000, 784, False, True),  # an MLP on raw pixels
    (TrainSpec(jumpout_sigma=0.3), 178, 13, False, False),  # the user chose the Jumpout
    (TrainSpec(dropout="dropout"), 178, 13, False, False),
    (TrainSpec(rounds=2), 178, 13, False, False),
    (TrainSpec(n_folds=4), 178, 13, False, False),
    (TrainSpec(low_noise_pass_below=0.0), 178, 13, False, False),  # switched off
])
def test_no_low_noise_pass_outside_where_it_was_measured(spec: TrainSpec, n: int, d: int, cnn: bool,
                                                         pixels: bool) -> None:
    resolved = spec.resolved(n, d, cnn=cnn, pixels=pixels)
    assert resolved.low_noise_jumpout is None
    assert not resolved.wants_low_noise_pass(0, n)
    with pytest.raises(ValueError, match="no low-noise pass"):
        resolved.low_noise_spec()


def test_the_pass_is_wanted_strictly_under_the_threshold_and_bad_rows_are_refused() -> None:
    spec = TrainSpec().resolved(178, 13)
    assert spec.low_noise_pass_below == LOW_NOISE_PASS_BELOW
    limit = LOW_NOISE_PASS_BELOW * 1000
    assert spec.wants_low_noise_pass(int(limit) - 1, 1000) and not spec.wants_low_noise_pass(int(limit), 1000)
    assert TrainSpec(low_noise_jumpout=(0.1, 0.01, 0.6)).resolved(150, 4).low_noise_jumpout == (0.1, 0.01, 0.6)
    with pytest.raises(ValueError, match="does not combine with rounds=2 or cross-fitting"):
        TrainSpec(low_noise_jumpout=(0.1, 0.01, 0.6), rounds=2)
    with pytest.raises(ValueError, match="needs dropout=jumpout"):
        TrainSpec(low_noise_jumpout=(0.1, 0.01, 0.6), dropout="none")
    with pytest.raises(ValueError, match=r"low_noise_jumpout \(0.1, 0.7, 0.6\) must be"):
        TrainSpec(low_noise_jumpout=(0.1, 0.7, 0.6))
    assert weaker_jumpout(JUMPOUT_BY_RATIO[-1][1:]) is None and weaker_jumpout((0.5, 0.5, 0.5)) is None
