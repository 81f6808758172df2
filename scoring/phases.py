"""Bimodality and the four learning phases of Hacohen et al. (SCIENCE.md §1).

Input everywhere is a consistency curve, (n_epochs, n_examples) with values in [0, 1]
(epoch 0 = the untrained networks; high = easy). NaN entries (an example with no member to
count, e.g. no held-out member under cross-fitting) are ignored epoch by epoch.

Agreement index A [ours]: with p̄ the mean consistency of an epoch and N members,

    A = (Var[c] - p̄(1-p̄)/N) / (p̄(1-p̄) - p̄(1-p̄)/N)

Var[c] is the population variance over examples. A ≈ 0 when members are independent coins
(binomial histogram), A = 1 when every example is right for all or for none of the members
(the bimodal histogram of the paper). Its range is [-1/(N-1), 1].

Phases [paper, figure only; every boundary below is ours]: 1 init, 2 a block of easy examples
jumps to c ≈ 1 and the histogram turns bimodal, 3 mass moves from the 0-peak to the 1-peak,
4 train memorised / held-out frozen. Pure numpy; imports nothing of ours.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PHASES = (1, 2, 3, 4)
_NEVER = np.iinfo(np.int64).max  # start epoch of a phase that is never reached


@dataclass(frozen=True)
class PhaseThresholds:
    """Documented boundaries of the phase detector; all [ours], tune on data, not on the paper.

    Per epoch the detector looks at f_lo = share of examples with c <= low (the 0-peak),
    f_hi = share with c >= high (the 1-peak), the mean p̄ of c and the agreement index A.
    """

    low: float = 0.1  # c at or below -> in the 0-peak (with N = 8 this means c = 0)
    high: float = 0.9  # c at or above -> in the 1-peak (with N = 8 this means c = 1)
    bimodal_A: float = 0.5  # A at or above -> the histogram counts as bimodal
    init_band: float = 0.1  # |p̄ - 1/K| within this (and no block at c ≈ 1) -> still at chance level
    jump_fraction: float = 0.05  # f_hi at or above -> "a block has jumped to c ≈ 1"
    move_fraction: float = 0.02  # f_lo this far below its peak since phase 2 -> mass is moving (phase 3)
    memorised_fraction: float = 0.95  # train: f_hi at or above -> memorised (phase 4)
    frozen_tol: float = 0.01  # held-out: f_lo and f_hi vary by at most this to the end -> frozen
    frozen_epochs: int = 3  # held-out: the frozen stretch must span at least this many epochs

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high <= 1.0:
            raise ValueError(f"need 0 <= low < high <= 1, got low={self.low}, high={self.high}")
        for name in ("bimodal_A", "init_band", "jump_fraction", "move_fraction", "memorised_fraction", "frozen_tol"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.frozen_epochs < 1:
            raise ValueError(f"frozen_epochs must be >= 1, got {self.frozen_epochs}")


def compute_agreement_index(
    consistency: npt.NDArray[np.floating],  # (n_epochs, n_examples), values in [0, 1] or NaN
    n_members: int,  # N: members behind each consistency value (held-out: members per example)
) -> npt.NDArray[np.float64]:
    """Agreement index A per epoch, (n_epochs,) in [-1/(N-1), 1]; high = bimodal (all-or-none).

    ~0 for independent members (binomial histogram), 1 when each example is right for all
    members or for none. NaN when N == 1, when p̄ is 0 or 1 (no spread to measure), or when an
    epoch has no finite value.
    """
    c = _check_consistency(consistency)
    if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 1:
        raise ValueError(f"n_members must be an int >= 1, got {n_members!r}")
    n_epochs = c.shape[0]
    if n_members == 1:
        return np.full(n_epochs, np.nan)
    finite = np.isfinite(c)
    count = finite.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, c, 0.0).sum(axis=1) / count
        var = np.where(finite, (c - mean[:, None]) ** 2, 0.0).sum(axis=1) / count
        bernoulli = mean * (1.0 - mean)
        binomial = bernoulli / n_members
        a = (var - binomial) / (bernoulli - binomial)
    degenerate = (count == 0) | np.isclose(bernoulli, 0.0, rtol=0.0, atol=1e-12)
    return np.where(degenerate, np.nan, a)


def detect_phases(
    consistency: npt.NDArray[np.floating],  # (n_epochs, n_examples), values in [0, 1] or NaN
    n_members: int,  # N behind each value (held-out curve: members holding each example out)
    n_classes: int,  # K; chance-level consistency is 1/K
    is_heldout: bool = False,  # True: held-out curve, phase 4 = frozen instead of memorised
    thresholds: PhaseThresholds = PhaseThresholds(),
) -> npt.NDArray[np.int8]:
    """Learning phase per epoch, (n_epochs,) int8 in 1..4, never decreasing.

    Each phase k >= 2 has a start epoch e_k (the first epoch meeting its rule, or never) and an
    epoch's phase is the largest k with e_k <= epoch, so phases never go backwards (they may
    skip one, e.g. 2 -> 4 when training memorises within an epoch). Rules (`t` = thresholds):

    1. init: every epoch before e_2 (c near 1/K, no block at c ≈ 1, or not bimodal).
    2. e_2 = first epoch that has left chance level (|p̄ - 1/K| > t.init_band or
       f_hi >= t.jump_fraction), has a block at c ≈ 1 (f_hi >= t.jump_fraction) and is bimodal
       (A >= t.bimodal_A).
    3. e_3 = first epoch after e_2 where f_lo has fallen t.move_fraction below its maximum over
       e_2..epoch while f_hi is above its value at e_2 (mass flows from the 0- to the 1-peak).
    4. train: e_4 = first epoch >= e_2 with f_hi >= t.memorised_fraction (memorised).
       held-out: e_4 = first epoch >= e_2 from which f_lo and f_hi each stay within t.frozen_tol
       (max - min) to the last epoch, over a stretch of at least t.frozen_epochs epochs (frozen).
    """
    c = _check_consistency(consistency)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    t = thresholds
    a = compute_agreement_index(c, n_members)  # validates n_members
    f_lo, f_hi, mean = _peak_fractions(c, t)
    n_epochs = c.shape[0]

    left_chance = (np.abs(mean - 1.0 / n_classes) > t.init_band) | (f_hi >= t.jump_fraction)
    is_jump = left_chance & (f_hi >= t.jump_fraction) & (a >= t.bimodal_A)
    e2 = _first(is_jump)
    e3 = e4 = _NEVER
    if e2 != _NEVER:
        lo_peak = np.maximum.accumulate(np.nan_to_num(f_lo[e2:], nan=-np.inf))
        moving = (f_lo[e2:] <= lo_peak - t.move_fraction) & (f_hi[e2:] > f_hi[e2])
        e3 = e2 + _first(moving) if moving.any() else _NEVER
        later = _frozen_from(f_lo[e2:], f_hi[e2:], t) if is_heldout else _first(f_hi[e2:] >= t.memorised_fraction)
        e4 = e2 + later if later != _NEVER else _NEVER

    epochs = np.arange(n_epochs)
    phase = 1 + (epochs >= e2).astype(np.int8)
    phase = np.where(epochs >= e3, 3, phase)
    phase = np.where(epochs >= e4, 4, phase)
    return np.maximum.accumulate(phase).astype(np.int8)


# ---------------------------------------------------------------- helpers (trust their input)


def _check_consistency(consistency: npt.NDArray[np.floating]) -> np.ndarray:
    c = np.asarray(consistency, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"consistency must be (n_epochs >= 1, n_examples >= 1), got shape {c.shape}")
    finite = c[np.isfinite(c)]
    if np.isinf(c).any() or (finite.size and (finite.min() < 0.0 or finite.max() > 1.0)):
        raise ValueError("consistency values must lie in [0, 1] (NaN allowed for 'no member to count')")
    return c


def _peak_fractions(c: np.ndarray, t: PhaseThresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(f_lo, f_hi, p̄), each (n_epochs,), over the finite entries of each epoch (NaN if none)."""
    finite = np.isfinite(c)
    count = finite.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f_lo = (finite & (np.nan_to_num(c, nan=2.0) <= t.low)).sum(axis=1) / count
        f_hi = (finite & (np.nan_to_num(c, nan=-1.0) >= t.high)).sum(axis=1) / count
        mean = np.where(finite, c, 0.0).sum(axis=1) / count
    return f_lo, f_hi, mean


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask)) if mask.any() else _NEVER


def _frozen_from(f_lo: np.ndarray, f_hi: np.ndarray, t: PhaseThresholds) -> int:
    """First index from which both fractions stay within frozen_tol to the end, stretch long enough."""
    def suffix_range(f: np.ndarray) -> np.ndarray:
        rev = np.nan_to_num(f[::-1], nan=np.inf)
        return (np.maximum.accumulate(rev) - np.minimum.accumulate(rev))[::-1]

    n = len(f_lo)
    long_enough = (n - np.arange(n)) >= t.frozen_epochs
    frozen = (suffix_range(f_lo) <= t.frozen_tol) & (suffix_range(f_hi) <= t.frozen_tol) & long_enough
    return _first(frozen)
