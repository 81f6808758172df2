"""Vote counts and consensus: the properties of SCIENCE.md section 1 on hand-built predictions."""

import numpy as np
import pytest

from scoring.consensus import compute_consensus, compute_vote_counts
from scoring.consistency import compute_consistency

N_CASES = 200


def _random_preds(seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(preds (M, E, n), given (n,), K); a random share of predictions copies the given label."""
    rng = np.random.default_rng(seed)
    m, e, n, k = rng.integers(1, 8), rng.integers(1, 5), rng.integers(1, 12), rng.integers(2, 6)
    given = rng.integers(0, k, n)
    preds = np.where(rng.random((m, e, n)) < rng.random(), given[None, None, :], rng.integers(0, k, (m, e, n)))
    return preds, given, int(k)


def test_vote_counts_by_hand():
    # 4 members x 1 epoch x 3 examples, K = 3
    preds = np.array([[[0, 2, 1]], [[0, 1, 1]], [[2, 1, 0]], [[0, 1, 2]]])
    votes = compute_vote_counts(preds, 3)
    assert votes.shape == (1, 3, 3)
    assert votes[0].tolist() == [[3, 0, 1], [0, 3, 1], [1, 2, 1]]
    share, label = compute_consensus(votes)
    np.testing.assert_allclose(share, [[0.75, 0.75, 0.5]])
    assert label.tolist() == [[0, 1, 1]]


def test_vote_counts_with_member_mask():
    preds = np.array([[[0, 2, 1]], [[0, 1, 1]], [[2, 1, 0]]])  # (3, 1, 3)
    mask = np.array([[True, False, False], [False, True, False], [True, True, False]])
    votes = compute_vote_counts(preds, 3, mask)
    assert votes[0].tolist() == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    share, label = compute_consensus(votes)
    assert share[0, 0] == 0.5
    assert label[0, 0] == 0  # tie between 0 and 2 -> smallest class
    assert share[0, 1] == 1.0 and label[0, 1] == 1
    assert np.isnan(share[0, 2])  # no member selected


def test_ties_go_to_the_smallest_class():
    preds = np.array([[[3, 2, 1, 0]], [[1, 0, 3, 2]]])  # two members, every example a 1-1 tie
    share, label = compute_consensus(compute_vote_counts(preds, 4))
    np.testing.assert_allclose(share, 0.5)
    assert label.tolist() == [[1, 0, 1, 0]]
    # three-way tie
    preds = np.array([[[2]], [[1]], [[3]]])
    share, label = compute_consensus(compute_vote_counts(preds, 4))
    assert label.tolist() == [[1]]
    np.testing.assert_allclose(share, 1 / 3)


def test_single_member_has_full_consensus_on_its_own_prediction():
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 5, (1, 6, 40))
    share, label = compute_consensus(compute_vote_counts(preds, 5))
    np.testing.assert_array_equal(share, 1.0)
    np.testing.assert_array_equal(label, preds[0])


def test_consensus_properties_on_random_predictions():
    n_majority = 0
    for seed in range(N_CASES):
        preds, given, k = _random_preds(seed)
        n_members = preds.shape[0]
        votes = compute_vote_counts(preds, k)
        assert votes.shape == (*preds.shape[1:], k), seed
        np.testing.assert_array_equal(votes.sum(axis=2), n_members)
        share, label = compute_consensus(votes)
        c = compute_consistency(preds, given)
        assert share.shape == label.shape == c.shape, seed
        # c is the vote share of the given label
        np.testing.assert_allclose(c, np.take_along_axis(votes, np.broadcast_to(given[None, :, None], (*c.shape, 1)),
                                                         axis=2)[..., 0] / n_members)
        # s in {1/N, ..., 1} and s >= max(c, 1/K)
        np.testing.assert_allclose(share * n_members, np.round(share * n_members), atol=1e-12)
        assert (share >= c - 1e-12).all(), seed
        assert (share >= 1.0 / k - 1e-12).all(), seed
        assert (share <= 1.0).all(), seed
        # the consensus label carries the most votes, and is the smallest such class
        top = votes.max(axis=2)
        assert (np.take_along_axis(votes, label[..., None], axis=2)[..., 0] == top).all(), seed
        for cls in range(k):
            assert not ((votes[..., cls] == top) & (cls < label)).any(), seed
        # a majority for the given label makes it the consensus
        major = c > 0.5
        np.testing.assert_allclose(share[major], c[major])
        np.testing.assert_array_equal(label[major], np.broadcast_to(given, c.shape)[major])
        n_majority += int(major.sum())
        if n_members == 1:
            np.testing.assert_array_equal(share, 1.0)
    assert n_majority > 100  # the majority case was exercised


def test_masked_votes_match_votes_of_the_selected_members():
    for seed in range(N_CASES):
        preds, _, k = _random_preds(seed)
        rng = np.random.default_rng(10_000 + seed)
        mask = rng.random((preds.shape[0], preds.shape[2])) < 0.5
        votes = compute_vote_counts(preds, k, mask)
        share, _ = compute_consensus(votes)
        for i in range(preds.shape[2]):
            chosen = np.flatnonzero(mask[:, i])
            expected = compute_vote_counts(preds[chosen][:, :, i:i + 1], k)[:, 0] if chosen.size else 0
            np.testing.assert_array_equal(votes[:, i], expected, err_msg=str(seed))
            assert np.isnan(share[:, i]).all() == (chosen.size == 0), seed


def test_vote_counts_reject_bad_input():
    with pytest.raises(ValueError):
        compute_vote_counts(np.zeros((2, 3), dtype=int), 3)
    with pytest.raises(ValueError):
        compute_vote_counts(np.full((2, 1, 3), 3), 3)  # label 3 with K = 3
    with pytest.raises(ValueError):
        compute_vote_counts(np.full((2, 1, 3), -1), 3)
    with pytest.raises(ValueError):
        compute_consensus(np.zeros((2, 3)))


def test_vote_counts_accept_int16_predictions():
    # the prediction record stores labels as int16
    preds = np.array([[[9, 0]], [[9, 9]]], dtype=np.int16)
    votes = compute_vote_counts(preds, 10)
    assert votes[0, 0, 9] == 2 and votes[0, 1, 0] == 1 and votes[0, 1, 9] == 1
