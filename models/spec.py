"""TrainSpec: every training knob of a job, saved with the job so each score traces back to its run.

Torch-free: the service imports this module, workers receive it.
"""

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelName = Literal["auto", "mlp", "cnn"]
DropoutName = Literal["jumpout", "dropout", "none"]

# Jumpout by examples per input feature [ours, chosen by benchmarks/detection_variants.py on
# selection seeds 0-2]: (from n_examples / n_features, sigma, p_min, p_max). Regularisation is the
# largest single lever for detection: it slows the memorisation of wrong labels, and a network
# memorises fastest where there are few examples per input dimension (points in many dimensions are
# easy to tell apart one by one). Strong Jumpout ranked best on wine and breast cancer (14 and 19
# examples a feature), the middle row on digits (28), the paper-style sigma = 0.1 on iris (37) and
# image segments (128), where strong Jumpout lost 0.05-0.13 AP. Phishing (139, 9 ternary features,
# half its rows duplicates) is the exception: strong Jumpout beat sigma = 0.1 there by 0.015-0.025.
# The boundaries sit between the measured ratios: a guess from six tables, not a law.
JUMPOUT_BY_RATIO: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.3, 0.2, 0.7),
    (23.0, 0.2, 0.1, 0.6),
    (32.0, 0.1, 0.01, 0.6),
)
_PAPER_ROW = JUMPOUT_BY_RATIO[-1]
PAPER_JUMPOUT: tuple[float, float, float] = (_PAPER_ROW[1], _PAPER_ROW[2], _PAPER_ROW[3])  # (sigma, p_min, p_max)

# The low-noise pass [ours, chosen by benchmarks/low_noise_pass.py on selection seeds 0-2]: where the
# first pass estimates fewer label errors than LOW_NOISE_PASS_BELOW of the examples, an ensemble of half
# the members trains half the epochs again under the next weaker Jumpout row, and the ranking and flags
# come from it (the count: the mean of both passes'). At 2-5 % noise (what real data has) a weaker row
# ranks better: with few wrong labels there is little to memorise, and the weaker brake lets the members
# learn the hard right examples that the by-data row leaves unlearned and that crowd the flags. At 10-40 %
# it ranks worse. Test seeds 100-102, the six tables: 2-5 % mean AP 0.878 -> 0.886, F1 0.742 -> 0.753
# (digits 0.942 -> 0.963, wine 0.952 -> 0.974, breast cancer 0.893 -> 0.899; iris, segment and phishing
# already train under the weakest row); 10-40 % 0.9332 -> 0.9333 (2 of 162 runs take it; every run taking
# it: 0.9328). On those three tables the first pass's estimate separates the two ranges: at most 7.2 % on
# the 2-5 % cases, over 10 % on every 10-40 % case but ambiguous10 (7.4-9.6 %: the count under-counts
# ambiguous noise). Thresholds 0.07-0.12 were within 0.0006 AP of each other on the selection seeds.
# Only the MLP from MLP_DEEP_FROM examples a feature takes it (the tables it was measured on have 14 to
# 28), and only where the row comes from the data and is not the weakest.
LOW_NOISE_PASS_BELOW = 0.08  # share of the examples


# The CNN's width by device and data size [ours]. 32 is the width detection was measured with
# (benchmarks/results/detection.md); on a CPU, 16 trains ~2.4x faster and ranked digits-as-images
# flips 0.006-0.019 AP lower (benchmarks/results/cpu_images-width16.md). So a CPU keeps 32 while the
# job is small (digits as images: 1,797 x 64 = 115k pixel-examples, ~40 s of training) and takes 16
# past CPU_NARROW_CNN_FROM pixel-examples, where 32 no longer fits minutes (10,000 28x28 images,
# 7.8M: 16 scores them end to end in ~4 minutes on 2 cores; benchmarks/results/cpu_images.md
# measures both widths there). A GPU always gets 32.
WIDE_CNN, NARROW_CNN = 32, 16
CPU_NARROW_CNN_FROM = 1_000_000  # examples x input values (C x H x W) [ours]


# Label smoothing of the training loss [ours, chosen by benchmarks/label_smoothing.py on selection
# seeds 0-2 among 0, 0.2, 0.4, 0.6, 0.8]: a network is never pushed to certainty on a label, so it
# memorises the wrong ones more slowly (as Lukasik et al. 2020 found for label noise). Mean AP over
# the six tables x 9 noise kinds rose 0.9272 -> 0.9301 / 0.9312 / 0.9323 / 0.9320; at 0.6 the
# realistic cases' flagged-set F1 0.813 -> 0.822, digits as images 0.986 -> 0.989. Test seeds
# 100-102: 0.9252 -> 0.9286, F1 0.812 -> 0.820, images 0.988 -> 0.989; pair30 +0.015, confusion40
# +0.009, ambiguous10/20 -0.002/-0.001, iris -0.003 (benchmarks/results/label_smoothing-*.md).
LABEL_SMOOTHING = 0.6

# The MLP's depth by examples per input feature [ours, chosen by benchmarks/label_smoothing.py --knob
# n_hidden_layers on selection seeds 0-2 among 1, 2, 3, 4 layers of 256]: on the six tables (14 to
# 139 examples a feature) mean AP over 9 noise kinds 0.9186 / 0.9323 / 0.9359 / 0.9180, realistic F1
# 0.806 / 0.822 / 0.829 / 0.805; a fourth Jumpout layer under-fits the smallest table (wine 0.974 ->
# 0.882). Test seeds 100-102: 0.9286 -> 0.9332, F1 0.820 -> 0.828, most on similar-class noise
# (confusion40 0.881 -> 0.908). Training takes ~1.7x the two-layer MLP's. Below MLP_DEEP_FROM
# examples a feature the MLP keeps 2 layers: text embeddings (1,000 docstrings as 384 MiniLM dims,
# 2.6 a feature) ranked worse with 3 (benchmarks/real_data.py, seeds 100-101: confusion20 AP 0.696 ->
# 0.627, ambiguous20 0.646 -> 0.601). The boundary sits between the measured ratios: a guess from
# seven data sets, not a law. Width, weight decay and step size were swept too and stay
# (benchmarks/results/label_smoothing-{width,weight_decay,learning_rate}-selection.md). An MLP on
# raw pixels (model=mlp on an image set) keeps 2 layers whatever its ratio: 10,000 synthetic 28x28
# digits (12.8 a pixel, the strong Jumpout row), 20 % noise, seed 0: AP 0.443 -> 0.164 (confusion),
# 0.451 -> 0.330 (ambiguous) with the third layer; seed 100 confusion 0.435 -> 0.153
# (benchmarks/results/cpu_images-mlp-depth.md).
MLP_DEEP_LAYERS, MLP_SHALLOW_LAYERS = 3, 2
MLP_DEEP_FROM = 8.0  # examples per input feature


def mlp_layers_for(n_examples: int, n_features: int, pixels: bool = False) -> int:
    """The MLP's hidden layers for n_examples of n_features inputs: 3 from MLP_DEEP_FROM examples a
    feature, else 2; 2 for raw pixels (images shaped (n, C, H, W) fed to the MLP)."""
    if pixels:
        return MLP_SHALLOW_LAYERS
    return MLP_DEEP_LAYERS if n_examples / max(n_features, 1) >= MLP_DEEP_FROM else MLP_SHALLOW_LAYERS


def cnn_width_for(n_examples: int, n_features: int, on_gpu: bool) -> int:
    """The CNN width for n_examples images of n_features values each, on a GPU or a CPU."""
    return WIDE_CNN if on_gpu or n_examples * n_features < CPU_NARROW_CNN_FROM else NARROW_CNN


# CPU flags of native bf16 arithmetic, which oneDNN's bf16 convolutions use. With them a CNN's
# training under bf16 autocast took 13.6 s against 16.7 s in fp32 (digits as 8x8 images, 8 x 20,
# 2 threads, AMD EPYC with avx512_bf16, median of 3: benchmarks/results/cpu_images-bf16-training.md;
# end to end 21.7 vs 24.0 s, cpu_images.md), with the same detection AP (selection seeds 0-2,
# cpu_images-bf16-selection.md); the MLP gained nothing (2.69 vs 2.76 s), and CPUs without them
# emulate bf16 and run slower than fp32.
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU does bf16 arithmetic natively (Linux: its flags; elsewhere False)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return not CPU_BF16_FLAGS.isdisjoint(line.split(":", 1)[1].split())
    except OSError:
        pass
    return False


def precision_for(on_gpu: bool, cnn: bool, cpu_bf16: bool) -> Literal["fp32", "bf16"]:
    """precision=auto: bf16 autocast on a GPU, and for a CNN on a CPU with native bf16; else fp32."""
    return "bf16" if on_gpu or (cnn and cpu_bf16) else "fp32"


def jumpout_for_data(n_examples: int, n_features: int) -> tuple[float, float, float]:
    """(sigma, p_min, p_max) of JUMPOUT_BY_RATIO for n_examples of n_features inputs each (pixels
    count as features)."""
    ratio = n_examples / max(n_features, 1)
    row = [r for r in JUMPOUT_BY_RATIO if ratio >= r[0]][-1]
    return row[1], row[2], row[3]


def weaker_jumpout(row: tuple[float, float, float]) -> tuple[float, float, float] | None:
    """The JUMPOUT_BY_RATIO row after `row` (sigma, p_min, p_max), None after the last or for a row
    not in the table."""
    rows = [r[1:] for r in JUMPOUT_BY_RATIO]
    if row not in rows or row == rows[-1]:
        return None
    return rows[rows.index(row) + 1]


class TrainSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    n_members: int = Field(8, ge=1, le=512, description="ensemble size N")
    n_epochs: int = Field(20, ge=1, le=1000, description="training epochs; epoch 0 (init) is recorded too")
    model: ModelName = Field("auto", description="auto: cnn for images, mlp for tables")
    dropout: DropoutName = "jumpout"
    dropout_rate: float = Field(0.5, ge=0.0, lt=1.0, description="rate of plain dropout")
    # Jumpout: None = by examples per feature (JUMPOUT_BY_RATIO), filled in when the job is created
    jumpout_sigma: float | None = Field(None, gt=0.0, le=1.0, description="half-normal scale of the Jumpout "
                                        "rate; default by examples per input feature: 0.3 under 23, 0.2 under 32, "
                                        "then 0.1")
    jumpout_p_min: float | None = Field(None, ge=0.0, lt=1.0, description="default by examples per feature: "
                                        "0.2, 0.1, 0.01")
    jumpout_p_max: float | None = Field(None, gt=0.0, lt=1.0, description="default by examples per feature: "
                                        "0.7, 0.6, 0.6")
    jumpout_exponent: float = Field(0.75, ge=0.0, le=1.0, description="kept units scaled by (1-p')^-exponent")
    n_folds: int = Field(0, ge=0, le=20, description="cross-fitting folds; 0 = every member sees all examples")
    rounds: int = Field(1, ge=1, le=2, description="2: after training, train the ensemble again from new seeds "
                        "with the suspected mislabels held out by every member, and take the suspects, count "
                        "and suggested labels from that second round (twice the training time; the splits "
                        "and curves stay the first round's)")
    low_noise_pass_below: float = Field(
        LOW_NOISE_PASS_BELOW, ge=0.0, le=1.0, description="if the trained ensemble estimates fewer label "
        "errors than this share of the examples and low_noise_jumpout is set, train it again from new seeds "
        "with half the members for half the epochs under low_noise_jumpout and take the ranking, suggested "
        "labels and flags from that pass (the count: the mean of both passes'; the splits and curves stay the "
        "first pass's); about 1.25x the training time then. 0 = never")
    low_noise_jumpout: tuple[float, float, float] | None = Field(
        None, description="Jumpout (sigma, p_min, p_max) of the low-noise pass; filled in when the job is "
        "created: the next weaker row of the by-data rule, for an MLP with Jumpout by the data from 8 examples "
        "a feature and one round without cross-fitting; None = no low-noise pass")
    hidden_units: int = Field(256, ge=4, le=8192, description="MLP width")
    # None = by examples per input feature (mlp_layers_for), filled in when the job is created
    n_hidden_layers: int | None = Field(None, ge=1, le=8, description="MLP depth; default by examples per "
                                        "input feature: 3 from 8 a feature, else 2 (text embeddings), and 2 "
                                        "on raw pixels")
    # None = by device and data size (cnn_width_for), filled in when the job is created
    cnn_width: int | None = Field(None, ge=4, le=512, description="CNN channels of the first block; default 32, "
                                  "or 16 on a CPU for images of 1,000,000 pixel values in all or more (2.4x faster)")
    cnn_stem_stride: int = Field(0, ge=0, le=4, description="stride of the first convolution; 0 = auto: 2 for "
                                 "images of 16 px or more a side (a quarter of the work of every later block), "
                                 "else 1")
    batch_size: int = Field(0, ge=0, le=65536, description="0 = auto: n_examples // 60, clipped to 8..256")
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0, description="Adam step size")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="AdamW decoupled weight decay")
    label_smoothing: float = Field(
        LABEL_SMOOTHING, ge=0.0, lt=1.0, description="cross-entropy label smoothing: the target puts this share "
        "of its mass evenly on every class, so a network is never pushed to certainty on any label and "
        "memorises wrong ones more slowly")
    gce_q: float = Field(
        0.0, ge=0.0, le=1.0, description="generalized cross-entropy (Zhang & Sabuncu 2018): the loss of "
        "target t is sum_c t_c (1 - p_c^q) / q, which weighs each example's gradient by p^q, so examples the "
        "network gives a low probability (wrong labels, mostly) pull less; 0 = plain cross-entropy (its limit), "
        "1 = the mean absolute error. The target is the label-smoothed one either way. Off by default: it "
        "ranked wrong labels no better (tables mean AP 0.9323 -> 0.9319 / 0.9308 at q 0.3 / 0.7, realistic F1 "
        "0.822 -> 0.819 / 0.811; benchmarks/results/label_smoothing-gce-selection.md)")
    mixup_alpha: float = Field(
        0.0, ge=0.0, le=10.0, description="mixup (Zhang et al. 2018): each training input is mixed with "
        "another of its member's batch, weight lam ~ Beta(alpha, alpha), and so is the loss of their two "
        "labels; 0 = off. Predictions are recorded on the unmixed examples. Off by default: it ranked wrong "
        "labels worse (tables mean AP 0.9323 -> 0.9303 / 0.9293 / 0.9244 at alpha 0.2 / 0.4 / 1; "
        "benchmarks/results/label_smoothing-mixup-selection.md)")
    small_loss_forget: float = Field(
        0.0, ge=0.0, le=0.5, description="the small-loss trick (Han et al. 2018, co-teaching's selection, "
        "each member on its own): every step a member leaves out this share of its batch, the examples of "
        "its largest losses, so it never fits the labels it finds least plausible; the share ramps up "
        "linearly over the first quarter of the epochs. Predictions are still recorded on every example. "
        "0 = off. Off by default: it ranked wrong labels worse (tables mean AP 0.9359 -> 0.9317 / 0.9249 at "
        "0.1 / 0.2; benchmarks/results/label_smoothing-smallloss-selection.md)")
    input_noise: float = Field(
        0.0, ge=0.0, le=2.0, description="Gaussian noise of this standard deviation added to every training "
        "input (the network's own input: standardised table features, or pixels), drawn anew at every "
        "step, so a member cannot carve a pocket around one example's exact features; predictions are "
        "recorded on the clean inputs. 0 = off. Off by default: it ranked wrong labels no better (tables "
        "mean AP 0.9359 -> 0.9359 / 0.9342 at 0.1 / 0.3, phishing 0.833 -> 0.842 at 0.3, segment 0.935 -> "
        "0.923; benchmarks/results/label_smoothing-inputnoise-selection.md)")
    table_inputs: Literal["standard", "quantile"] = Field(
        "standard", description="how the MLP sees table features: standard = standardised per feature; "
        "quantile = each feature's rank mapped onto a normal's quantiles first (ties share a value), which "
        "tames skewed and heavy-tailed features. standard by default: quantile ranked wrong labels a little "
        "worse (tables mean AP 0.9359 -> 0.9333; benchmarks/results/label_smoothing-quantile-selection.md)")
    augment: Literal["none", "shift", "shift_flip"] = Field(
        "none", description="images only: random shifts by up to 1/8 of the image side (zero padding "
        "after normalisation, i.e. the channel mean), shift_flip adds horizontal flips; drawn per member "
        "and epoch, applied on the device")
    members_per_group: int = Field(0, ge=0, le=512, description="members trained together; 0 = all in one group")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA and for a CNN on a CPU with native bf16 "
        "(avx512_bf16 or amx_bf16: 1.2x training, 1.1x end to end, same detection AP), else fp32; bf16 on "
        "other CPUs is slow")
    compile: Literal["off", "default", "reduce-overhead"] = Field(
        "off", description="torch.compile the training forward with this mode (reduce-overhead adds CUDA "
        "graphs) and the record pass (default mode); the first calls pay the compile time, and a failed "
        "compile falls back to eager. Jumpout then draws in-graph from torch's default stream (reproducible, "
        "other numbers than eager). Off by default: on an H200 it paid 1.28x for a ~2M-parameter CNN, but "
        "the default width-32 job saved 7 s for 14 s of compiling (benchmarks/results/gpu)")
    random_state: int = Field(0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _check(self) -> "TrainSpec":
        p_min, p_max = self.jumpout_p_min, self.jumpout_p_max
        if p_min is not None and p_max is not None and p_min > p_max:
            raise ValueError(f"jumpout_p_min {p_min} exceeds jumpout_p_max {p_max}")
        if self.n_folds == 1:
            raise ValueError("n_folds must be 0 (no cross-fitting) or at least 2")
        if self.rounds == 2 and self.n_folds:
            raise ValueError("rounds=2 holds the first round's suspects out of the second; it does not combine "
                             "with cross-fitting (n_folds): use one or the other")
        if self.low_noise_jumpout is not None:
            low_sigma, low_min, low_max = self.low_noise_jumpout
            if self.rounds == 2 or self.n_folds:
                raise ValueError("the low-noise pass (low_noise_jumpout) is a second training of the whole "
                                 "ensemble: it does not combine with rounds=2 or cross-fitting (n_folds)")
            if self.dropout != "jumpout":
                raise ValueError(f"low_noise_jumpout needs dropout=jumpout, got dropout={self.dropout}")
            if not (0.0 < low_sigma <= 1.0 and 0.0 <= low_min <= low_max < 1.0 and low_max > 0.0):
                raise ValueError(f"low_noise_jumpout {self.low_noise_jumpout} must be (sigma in (0, 1], "
                                 "p_min <= p_max in [0, 1)) like the jumpout_* fields")
        if self.n_folds and self.n_members < self.n_folds:
            raise ValueError(f"cross-fitting needs n_members >= n_folds ({self.n_members} < {self.n_folds}): "
                             "member m holds out fold m % n_folds, so every fold must be held out by someone")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self

    def resolved(self, n_examples: int, n_features: int, on_gpu: bool = False, cnn: bool = False,
                 cpu_bf16: bool = False, pixels: bool = False) -> "TrainSpec":
        """This spec with every by-data default filled in for n_examples of n_features inputs, to
        train on a GPU or not, as a CNN or an MLP, on a CPU with native bf16 or not, on raw pixels
        (images shaped (n, C, H, W)) or not (a field the user set stays as set). Raises ValueError
        if a filled-in p_min exceeds a user's p_max.

        A CNN never takes the strong row (below 23 examples a pixel): it gets the paper's Jumpout
        there. The rows were chosen on tables; a 28x28 image set has few examples per pixel, and
        under the strong row the CNN learned next to nothing: 3,000 synthetic 28x28 digits, 20 %
        confusion noise, AP 0.20 (seed 100); the middle row 0.77, the paper's 0.98 (selection seed
        0). Digits as 8x8 images (28 a pixel) keep the middle row: the paper's lost there
        (ambiguous20 seed 0: AP 0.974 -> 0.968, F1 0.90 -> 0.77)."""
        sigma, p_min, p_max = jumpout_for_data(n_examples, n_features)
        if cnn and (sigma, p_min, p_max) == JUMPOUT_BY_RATIO[0][1:]:
            sigma, p_min, p_max = PAPER_JUMPOUT
        filled: dict[str, float | int | str | tuple[float, float, float]] = {
            name: value for name, value in (("jumpout_sigma", sigma), ("jumpout_p_min", p_min),
                                            ("jumpout_p_max", p_max)) if getattr(self, name) is None}
        if self.cnn_width is None:
            filled["cnn_width"] = cnn_width_for(n_examples, n_features, on_gpu)
        if self.n_hidden_layers is None:
            filled["n_hidden_layers"] = mlp_layers_for(n_examples, n_features, pixels)
        if self.precision == "auto":
            filled["precision"] = precision_for(on_gpu, cnn, cpu_bf16)
        by_data_row = all(getattr(self, name) is None for name in ("jumpout_sigma", "jumpout_p_min", "jumpout_p_max"))
        if (self.low_noise_jumpout is None and by_data_row and self.low_noise_pass_below > 0
                and self.dropout == "jumpout" and self.rounds == 1 and not self.n_folds and not cnn
                and not pixels and self.model != "cnn" and n_examples / max(n_features, 1) >= MLP_DEEP_FROM):
            weaker = weaker_jumpout((sigma, p_min, p_max))
            if weaker is not None:
                filled["low_noise_jumpout"] = weaker
        if not filled:
            return self
        # the user's value where set, else the data's (the same values `filled` holds)
        p_min = p_min if self.jumpout_p_min is None else self.jumpout_p_min
        p_max = p_max if self.jumpout_p_max is None else self.jumpout_p_max
        if p_min > p_max:
            raise ValueError(f"jumpout_p_min {p_min} exceeds jumpout_p_max {p_max} (the unset one comes from the "
                             f"data: {n_examples} examples of {n_features} features): set both")
        return self.model_copy(update=filled)

    def wants_low_noise_pass(self, estimated_n_errors: int, n_examples: int) -> bool:
        """Whether a job whose first pass estimated estimated_n_errors of n_examples trains the low-noise
        pass (LOW_NOISE_PASS_BELOW; the validator keeps low_noise_jumpout from rounds=2 and n_folds)."""
        return self.low_noise_jumpout is not None and estimated_n_errors < self.low_noise_pass_below * n_examples

    def low_noise_spec(self) -> "TrainSpec":
        """The low-noise pass's spec: this one under low_noise_jumpout, half the members and half the
        epochs (at least 1 each), from the second round's seeds. On the selection seeds' 2-5 % cases
        that take it, the pass's members and epochs hardly matter: AP 0.934 (the first pass alone) ->
        0.947 (8 x 20), 0.943 (8 x 10), 0.944 (4 x 10); so it costs about a quarter of the first pass's
        training (benchmarks/results/low_noise_pass-*.md)."""
        if self.low_noise_jumpout is None:
            raise ValueError("this spec has no low-noise pass (low_noise_jumpout is None)")
        sigma, p_min, p_max = self.low_noise_jumpout
        return self.model_copy(update={"jumpout_sigma": sigma, "jumpout_p_min": p_min, "jumpout_p_max": p_max,
                                       "n_members": max(1, self.n_members // 2),
                                       "n_epochs": max(1, self.n_epochs // 2), "low_noise_jumpout": None,
                                       "random_state": self.round2_seed()})

    def round2_seed(self) -> int:
        """The second round's random_state: other initial weights and batches than the first's."""
        return self.random_state ^ 0x2D2D2D2D

    def trains_cnn(self, x_ndim: int) -> bool:
        """Whether data of `x_ndim` dimensions trains a CNN: model=auto gives one to images (n, C, H, W)
        and an MLP to tables (n, d)."""
        return self.model == "cnn" or (self.model == "auto" and x_ndim == 4)

    def member_groups(self) -> list[list[int]]:
        """Members split into groups trained together on one device."""
        size = self.members_per_group or self.n_members
        return [list(range(i, min(i + size, self.n_members))) for i in range(0, self.n_members, size)]


class AdaBoostSpec(BaseModel):
    """The boosting baseline run beside the ensemble (stage t plays the role of epoch t)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    n_rounds: int = Field(100, ge=1, le=5000, description="weak learners T")
    max_depth: int = Field(1, ge=1, le=16, description="depth of each tree; 1 = stumps as in the paper")
    learning_rate: float = Field(0.5, gt=0.0, le=10.0)


class GroupTask(BaseModel):
    """One unit of work sent to a worker process: a member group, or the AdaBoost baseline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    attempt: int
    # round2: the second round of a rounds=2 job, or a job's low-noise pass (TrainSpec.low_noise_jumpout)
    model: Literal["ensemble", "round2", "adaboost"]
    group: int
    members: tuple[int, ...]
    spec: TrainSpec
    adaboost: AdaBoostSpec
    x_path: str  # X.npy of the normalised dataset
    y_path: str  # y.npy
    n_classes: int
    checkpoint_dir: str | None = None
    resume_after: int | None = None  # last committed epoch; None = start from scratch
    n_threads: int = 0  # torch CPU threads for this task; 0 = torch's default
    # newest checkpoints the worker itself keeps; 0 = all, the engine prunes them as epochs commit
    # (RayExecutor sets it where the engine may not see the worker's disk: models/checkpoints.py)
    keep_checkpoints: int = 0
    exclude: tuple[int, ...] = ()  # round2: the example ids every member holds out (the first round's suspects)
