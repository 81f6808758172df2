"""Consistency, accessibility, first-learned epoch and splits on hand-built prediction arrays."""

import numpy as np
import pytest

from scoring.consistency import NEVER, compute_accessibility, compute_consistency, compute_first_learned_epoch
from scoring.splits import EASY, HARD, INTERMEDIATE, SPLITS, compute_splits

N_CASES = 200


def _random_preds(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(preds (M, E, n), given (n,), K) with small random sizes; labels often agree with `given`."""
    rng = np.random.default_rng(seed)
    m, e, n, k = rng.integers(1, 8), rng.integers(1, 5), rng.integers(1, 12), rng.integers(2, 6)
    given = rng.integers(0, k, n)
    preds = rng.integers(0, k, (m, e, n))
    agree = rng.random((m, e, n)) < rng.random()  # a random share of predictions copy the given label
    preds = np.where(agree, given[None, None, :], preds)
    return preds, given, int(k)


# ---------------------------------------------------------------- consistency


def test_consistency_by_hand():
    # 3 members x 2 epochs x 4 examples, given labels [0, 1, 2, 0]
    preds = np.array([
        [[0, 1, 2, 1], [0, 1, 2, 0]],
        [[0, 0, 2, 1], [0, 1, 1, 0]],
        [[1, 0, 2, 1], [0, 1, 0, 0]],
    ])
    given = np.array([0, 1, 2, 0])
    c = compute_consistency(preds, given)
    assert c.shape == (2, 4)
    assert c.dtype == np.float64
    np.testing.assert_allclose(c, [[2 / 3, 1 / 3, 1.0, 0.0], [1.0, 1.0, 1 / 3, 1.0]])


def test_consistency_takes_values_k_over_n():
    for seed in range(N_CASES):
        preds, given, _ = _random_preds(seed)
        n_members = preds.shape[0]
        c = compute_consistency(preds, given)
        assert c.shape == preds.shape[1:], seed
        assert ((c >= 0) & (c <= 1)).all(), seed
        np.testing.assert_allclose(c * n_members, np.round(c * n_members), atol=1e-12, err_msg=str(seed))
        # brute force: count members one by one
        expected = sum((preds[m] == given[None, :]).astype(float) for m in range(n_members)) / n_members
        np.testing.assert_allclose(c, expected, err_msg=str(seed))


def test_consistency_member_mask_counts_selected_members_only_and_nan_where_none():
    preds = np.array([[[0, 1, 2]], [[0, 0, 2]], [[1, 0, 0]]])  # (3, 1, 3)
    given = np.array([0, 1, 2])
    mask = np.array([[True, False, False], [True, True, False], [False, True, False]])
    c = compute_consistency(preds, given, mask)
    # example 0: members 0, 1 -> both right; example 1: members 1, 2 -> both wrong; example 2: nobody
    assert c[0, 0] == 1.0
    assert c[0, 1] == 0.0
    assert np.isnan(c[0, 2])


def test_consistency_all_true_mask_equals_unmasked_and_masked_matches_brute_force():
    n_nan = 0
    for seed in range(N_CASES):
        preds, given, _ = _random_preds(seed)
        rng = np.random.default_rng(1000 + seed)
        full = np.ones((preds.shape[0], preds.shape[2]), dtype=bool)
        np.testing.assert_allclose(compute_consistency(preds, given, full), compute_consistency(preds, given))
        mask = rng.random(full.shape) < 0.5
        c = compute_consistency(preds, given, mask)
        for i in range(preds.shape[2]):
            chosen = np.flatnonzero(mask[:, i])
            if chosen.size == 0:
                assert np.isnan(c[:, i]).all(), seed
                n_nan += 1
            else:
                np.testing.assert_allclose(c[:, i], (preds[chosen, :, i] == given[i]).mean(axis=0), err_msg=str(seed))
    assert n_nan > 0  # the empty-mask case was exercised


@pytest.mark.parametrize(
    "preds_shape, given_shape, mask_shape",
    [((3, 4), (4,), None), ((2, 3, 4), (5,), None), ((2, 3, 4), (4,), (3, 4)), ((2, 3, 4), (4,), (2, 3))],
)
def test_consistency_rejects_bad_shapes(preds_shape, given_shape, mask_shape):
    mask = None if mask_shape is None else np.ones(mask_shape, dtype=bool)
    with pytest.raises(ValueError):
        compute_consistency(np.zeros(preds_shape, dtype=int), np.zeros(given_shape, dtype=int), mask)


# ---------------------------------------------------------------- accessibility


def test_accessibility_excludes_epoch_zero():
    c = np.array([[1.0, 1.0, 0.0], [0.0, 0.5, 1.0], [0.0, 1.0, 1.0]])  # (3 epochs, 3 examples)
    np.testing.assert_allclose(compute_accessibility(c), [0.0, 0.75, 1.0])
    np.testing.assert_allclose(compute_accessibility(c, first_epoch=0), [1 / 3, 2.5 / 3, 2 / 3])
    np.testing.assert_allclose(compute_accessibility(c, first_epoch=2), [0.0, 1.0, 1.0])


def test_accessibility_needs_a_trained_epoch():
    with pytest.raises(ValueError):
        compute_accessibility(np.ones((1, 4)))  # epoch 0 only
    with pytest.raises(ValueError):
        compute_accessibility(np.ones(4))
    with pytest.raises(ValueError):
        compute_accessibility(np.ones((3, 4)), first_epoch=3)


def test_accessibility_is_the_mean_of_trained_epochs():
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        c = rng.integers(0, 5, (rng.integers(2, 8), rng.integers(1, 10))) / 4
        a = compute_accessibility(c)
        assert a.shape == (c.shape[1],)
        assert ((a >= c[1:].min(axis=0) - 1e-12) & (a <= c[1:].max(axis=0) + 1e-12)).all(), seed
        np.testing.assert_allclose(a, [np.mean(c[1:, i]) for i in range(c.shape[1])], err_msg=str(seed))


# ---------------------------------------------------------------- first learned epoch


@pytest.mark.parametrize(
    "curve, expected",
    [
        ([0.0, 0.5, 1.0, 1.0], 1),  # threshold is inclusive
        ([0.0, 0.25, 0.75, 1.0], 2),
        ([0.6, 0.7, 1.0], 0),  # "learned" at init already
        ([0.0, 1.0, 1.0, 0.0], NEVER),  # learned then forgotten: never learned for good
        ([0.0, 1.0, 0.0, 1.0, 1.0], 3),  # learned, forgotten, relearned: counts from the relearning
        ([0.0, 0.0, 0.0], NEVER),
        ([0.0, 0.0, 0.5], 2),  # learned at the last epoch only
        ([0.49, 0.49, 0.49], NEVER),
    ],
)
def test_first_learned_epoch_cases(curve, expected):
    out = compute_first_learned_epoch(np.array(curve)[:, None])
    assert out.dtype == np.int64
    assert out.tolist() == [expected]
    assert NEVER == -1


def test_first_learned_epoch_threshold_parameter():
    c = np.array([[0.0], [0.6], [0.8], [0.9]])
    assert compute_first_learned_epoch(c, threshold=0.5).tolist() == [1]
    assert compute_first_learned_epoch(c, threshold=0.75).tolist() == [2]
    assert compute_first_learned_epoch(c, threshold=0.95).tolist() == [NEVER]


def test_first_learned_epoch_nan_is_not_learned():
    c = np.array([[1.0, 1.0], [np.nan, 1.0], [1.0, np.nan]])
    assert compute_first_learned_epoch(c).tolist() == [2, NEVER]


def _first_learned_reference(curve: np.ndarray, threshold: float) -> int:
    for e in range(len(curve)):
        if all(v >= threshold for v in curve[e:]):
            return e
    return NEVER


def test_first_learned_epoch_matches_brute_force():
    seen = set()
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        n_members = rng.integers(1, 6)
        c = rng.integers(0, n_members + 1, (rng.integers(1, 8), rng.integers(1, 10))) / n_members
        threshold = float(rng.choice([0.5, 0.3, 0.8, 1.0]))
        out = compute_first_learned_epoch(c, threshold)
        expected = [_first_learned_reference(c[:, i], threshold) for i in range(c.shape[1])]
        assert out.shape == (c.shape[1],), seed
        assert out.tolist() == expected, seed
        seen.update(expected)
    assert NEVER in seen and 0 in seen and max(seen) >= 3  # never, at init, and late were all exercised


def test_first_learned_epoch_rejects_bad_shape():
    with pytest.raises(ValueError):
        compute_first_learned_epoch(np.ones(3))


# ---------------------------------------------------------------- splits


def test_splits_thresholds():
    a = np.array([0.0, 0.29, 0.3, 0.5, 0.79, 0.8, 1.0])
    out = compute_splits(a)
    assert out.tolist() == [HARD, HARD, INTERMEDIATE, INTERMEDIATE, INTERMEDIATE, EASY, EASY]
    assert set(SPLITS) == {"easy", "intermediate", "hard"}


def test_splits_custom_thresholds_and_no_intermediate_when_equal():
    a = np.array([0.1, 0.49, 0.5, 0.9])
    assert compute_splits(a, easy_at_least=0.5, hard_below=0.5).tolist() == [HARD, HARD, EASY, EASY]
    assert compute_splits(a, easy_at_least=0.95, hard_below=0.05).tolist() == [INTERMEDIATE] * 4


@pytest.mark.parametrize("easy, hard", [(0.3, 0.8), (1.1, 0.3), (0.8, -0.1)])
def test_splits_reject_bad_thresholds(easy, hard):
    with pytest.raises(ValueError):
        compute_splits(np.array([0.5]), easy_at_least=easy, hard_below=hard)


def test_splits_reject_bad_shape():
    with pytest.raises(ValueError):
        compute_splits(np.ones((2, 2)))


def test_splits_are_monotone_in_accessibility():
    rank = {HARD: 0, INTERMEDIATE: 1, EASY: 2}
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        a = np.sort(rng.random(30))
        out = [rank[s] for s in compute_splits(a)]
        assert out == sorted(out), seed
