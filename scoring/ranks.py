"""Ranks and rank correlations in numpy, so that scoring a job never imports scipy.stats.

scipy.stats costs 0.5-0.7 s of CPU to import, paid by every process that scores a job (each
server, each `curate score`); these are the three of its functions the scoring used. The one
scipy function kept, the regularised incomplete beta for the p-values, lives in scipy.special
(0.15 s to import). Tested against scipy.stats (tests/scoring/test_ranks.py).
"""

import math

import numpy as np
import numpy.typing as npt


def average_ranks(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:  # (n,) -> (n,) in 1..n
    """scipy.stats.rankdata(values, method="average"): 1 = the smallest; tied values share the
    mean of the ranks they span. NaN is not handled (callers drop it first)."""
    x = np.asarray(values).ravel()
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])  # where each run of ties begins
    mean_rank = (starts[:-1] + starts[1:] + 1) / 2.0  # ranks start..end-1, counted from 1
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, np.diff(starts))
    return ranks


def correlation_p_value(r: float, n: int) -> float:
    """Two-sided p-value of a correlation r over n pairs under independence: the t-test with n - 2
    degrees of freedom, as scipy.stats.pearsonr (exact for normal data) and spearmanr give it.
    P(|T| >= |t|) with t^2 = r^2 (n - 2) / (1 - r^2) is the regularised incomplete beta
    I_x((n - 2) / 2, 1 / 2) at x = (n - 2) / (n - 2 + t^2) = 1 - r^2."""
    from scipy.special import betainc

    df = n - 2
    x = max(0.0, 1.0 - r * r)
    return float(betainc(df / 2.0, 0.5, x)) if x > 0.0 else 0.0


def pearson(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> tuple[float, float]:
    """(r, two-sided p) of two (n,) arrays, n >= 3, neither constant."""
    da, db = a - a.mean(), b - b.mean()
    r = float(np.dot(da, db) / math.sqrt(float(np.dot(da, da)) * float(np.dot(db, db))))
    r = min(1.0, max(-1.0, r))
    return r, correlation_p_value(r, len(a))


def spearman(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> tuple[float, float]:
    """(rho, two-sided p): Pearson's r of the average ranks."""
    return pearson(average_ranks(a), average_ranks(b))
