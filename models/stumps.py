"""SAMME on histogram stumps: the engine of `models.adaboost.AdaBoostBaseline` for depth-1 trees.

Features are binned once (`bin_features`); each round histograms the sample weights per feature,
bin and class with one `np.bincount`, picks the stump with scikit-learn's weighted-Gini proxy
(`_best_stump`), and reweights as scikit-learn's discrete SAMME does (`boost_stumps`);
`staged_samme` turns the stumps' predictions into scikit-learn's staged probabilities and labels.
On features with at most MAX_BINS distinct values the candidate splits are exactly an exact
tree's, so the stages equal scikit-learn's up to ties between equally good splits (tested).
"""

import warnings
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

MAX_BINS = 256  # histogram bins per feature; up to this many distinct values are split exactly [ours]
WORSE_THAN_RANDOM = (  # scikit-learn's message, so both engines fail alike
    "BaseClassifier in AdaBoostClassifier ensemble is worse than random, ensemble can not be fit."
)


def bin_features(
    X: npt.NDArray[np.float32],  # (n, F), finite
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """Bin every feature once, so that each round a stump is a cut between two bins.

    Returns bins (F, n) uint8 and thresholds (F, B - 1) float64, padded with +inf, such that
    x[i, f] <= thresholds[f, j] iff bins[f, i] <= j. Thresholds lie halfway between neighbouring
    distinct values, as an exact tree's do. A feature with at most MAX_BINS distinct values is
    cut between every pair, so stumps choose among exactly the partitions sklearn's tree sees; a
    feature with more is cut after the values at MAX_BINS - 1 evenly spaced ranks (quantiles),
    so each bin holds about n / MAX_BINS examples.
    """
    n, F = X.shape
    Xt = np.ascontiguousarray(X.T)  # (F, n): each feature contiguous
    order = np.argsort(Xt, axis=1)
    ranked = np.take_along_axis(Xt, order, axis=1)  # each feature sorted
    change = ranked[:, 1:] != ranked[:, :-1]  # (F, n - 1): a new value starts at position p + 1
    cut = change.copy()  # where thresholds go
    many = np.flatnonzero(change.sum(axis=1) >= MAX_BINS)  # features with > MAX_BINS values
    if many.size:
        # Last position of each quantile (at most n - 2 since n > MAX_BINS here), then the
        # first change at or after it, so tied values never straddle a cut.
        ranks = -(-np.arange(1, MAX_BINS) * n // MAX_BINS) - 1
        at = np.where(change[many], np.arange(n - 1, dtype=np.int32), np.int32(n - 1))
        next_change = np.minimum.accumulate(at[:, ::-1], axis=1)[:, ::-1][:, ranks]
        rows = np.broadcast_to(many[:, None], next_change.shape)
        inside = next_change < n - 1  # a rank inside the top value's run has no cut after it
        cut[many] = False
        cut[rows[inside], next_change[inside]] = True
    bin_ranked = np.zeros((F, n), dtype=np.uint8)
    np.cumsum(cut, axis=1, dtype=np.uint8, out=bin_ranked[:, 1:])  # at most 255 cuts a feature
    bins = np.empty_like(bin_ranked)
    np.put_along_axis(bins, order, bin_ranked, axis=1)

    f, p = np.nonzero(cut)
    thresholds = np.full((F, int(bin_ranked[:, -1].max())), np.inf)
    # The midpoint in float64 of two float32 values, exactly as sklearn's splitter computes it.
    low, high = ranked[f, p].astype(np.float64), ranked[f, p + 1].astype(np.float64)
    thresholds[f, bin_ranked[f, p + 1] - 1] = low / 2.0 + high / 2.0
    return bins, thresholds


def boost_stumps(
    bins: npt.NDArray[np.uint8],  # (F, n) from bin_features
    y: npt.NDArray[np.intp],  # (n,) class index 0..K-1
    n_classes: int,  # K, classes present in y
    n_rounds: int,
    learning_rate: float,
) -> tuple[list[tuple[int, int, int, int]], list[float], list[npt.NDArray[np.intp]]]:
    """SAMME with stumps, step for step as sklearn's AdaBoostClassifier.fit and _boost.

    Same epsilon clip, weighted error, early stops, alpha, reweighting and renormalising, so
    stopping and weights match an exact tree's run whenever the stumps match. Returns, per
    fitted stage, the stump (feature, cut j: left is bin <= j, left class, right class), its
    weight alpha and its class-index prediction for every example.
    """
    F, n = bins.shape
    K, B = n_classes, int(bins.max()) + 1
    cell = np.arange(F)[:, None] * B + bins  # (F, n) histogram cell (feature, bin), intp
    n_left = np.cumsum(np.bincount(cell.ravel(), minlength=F * B).reshape(F, B), axis=1)
    valid = (n_left > 0) & (n_left < n)  # (F, B): both sides hold an example (counts, not weights)
    # Cell (feature, bin, class) of every (feature, example). intp, since np.bincount would
    # otherwise copy it to intp every round.
    flat = (cell * K + y).ravel()
    del cell
    w = np.full(n, 1.0 / n)
    eps = np.finfo(np.float64).eps
    stumps: list[tuple[int, int, int, int]] = []  # (feature, cut j, left class, right class)
    alphas: list[float] = []
    preds: list[npt.NDArray[np.intp]] = []  # per stage (n,)
    for t in range(n_rounds):
        w = np.clip(w, eps, None)  # as sklearn (its issue #20320): no vanishing weights
        # float64 weight sums; numpy's stubs (2.4) type bincount as intp even with weights: the ignore below
        hist = np.bincount(flat, weights=np.tile(w, F), minlength=F * B * K).reshape(F, B, K)
        stump = _best_stump(hist, valid)  # type: ignore[arg-type]
        f, j, left, right = stump
        pred = np.where(bins[f] <= j, left, right) if f >= 0 else np.full(n, left)
        incorrect = pred != y
        err = np.average(incorrect, weights=w)
        if err <= 0:  # perfect: kept with weight 1, and boosting stops
            alpha = 1.0
        elif err >= 1.0 - 1.0 / K:  # no better than chance: dropped, and boosting stops
            if not stumps:
                raise ValueError(WORSE_THAN_RANDOM)
            break
        else:
            alpha = float(learning_rate * (np.log((1.0 - err) / err) + np.log(K - 1.0)))
        stumps.append(stump)
        alphas.append(alpha)
        preds.append(pred)
        if err <= 0 or t == n_rounds - 1:
            break
        w = np.exp(np.log(w) + alpha * incorrect * (w > 0))
        total = w.sum()
        if not np.isfinite(total):
            warnings.warn(f"Sample weights overflowed at round {t}; boosting stopped. "
                          "Try a lower learning rate.", stacklevel=4)
            break
        if total <= 0:
            break
        w /= total
    return stumps, alphas, preds


def _best_stump(
    hist: npt.NDArray[np.float64],  # (F, B, K) weight per (feature, bin, class)
    valid: npt.NDArray[np.bool_],  # (F, B) cut after bin j leaves examples on both sides
) -> tuple[int, int, int, int]:
    """(feature, cut j, left class, right class) of the stump of least weighted Gini impurity.

    Maximises sklearn's proxy sum_k L_k^2 / W_L + sum_k R_k^2 / W_R, taking the first
    (feature, cut) on ties (sklearn takes the first in a random order of features). Each leaf
    predicts its heaviest class, the first on ties. Every feature constant: (-1, -1, c, c), c
    the heaviest class overall.
    """
    left = np.cumsum(hist, axis=1)  # class weights with bin <= j
    right = left[:, -1:] - left
    with np.errstate(divide="ignore", invalid="ignore"):
        proxy = (left * left).sum(axis=2) / left.sum(axis=2)
        proxy += (right * right).sum(axis=2) / right.sum(axis=2)
    proxy[~(valid & np.isfinite(proxy))] = -np.inf
    f, j = np.unravel_index(np.argmax(proxy), proxy.shape)
    if proxy[f, j] == -np.inf:
        heaviest = int(np.argmax(left[0, -1]))
        return -1, -1, heaviest, heaviest
    return int(f), int(j), int(np.argmax(left[f, j])), int(np.argmax(right[f, j]))


def staged_samme(
    preds: list[npt.NDArray[np.intp]],  # per stage (n,) class index each weak learner predicts
    alphas: "list[float] | np.ndarray",  # per stage weight
    n_classes: int,  # K, classes present
) -> Iterator[tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]]:
    """(proba (n, K), predicted class index (n,)) after each stage.

    The same arithmetic as sklearn's staged_decision_function, _compute_proba_from_decision and
    staged_predict, so probabilities agree to rounding when the stumps agree.
    """
    K = n_classes
    vote = None
    norm = 0.0
    for pred, alpha in zip(preds, alphas):
        norm += alpha
        current = np.where(pred[:, None] == np.arange(K), alpha, -1 / (K - 1) * alpha)
        vote = current if vote is None else vote + current
        if K == 2:
            signed = vote.copy()
            signed[:, 0] *= -1
            decision = (signed / norm).sum(axis=1)  # > 0: the second class
            yield _softmax(np.vstack([-decision, decision]).T / 2), (decision > 0).astype(np.intp)
        else:
            decision = vote / norm
            yield _softmax(decision / (K - 1)), np.argmax(decision, axis=1)


def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Row-wise softmax of (n, K), the same steps as sklearn.utils.extmath.softmax."""
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z
