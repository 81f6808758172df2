"""Mislabel score, confident-learning count, flags and suggested labels on synthetic probabilities."""

import numpy as np
import pytest

from scoring.mislabel import (
    MISLABEL_METHODS,
    compute_confident_joint,
    compute_mislabel_score,
    compute_prob_margin,
    compute_rank_score,
    compute_suggested_label,
    estimate_flag_precision,
    estimate_n_errors_by_margin,
    estimate_n_label_errors,
    flag_suspected_mislabels,
)

N_CASES = 200


def _noisy_probs(n: int, k: int, noise_rate: float, seed: int):
    """Probabilities of a decent classifier on the *true* labels, and given labels with planted flips.

    Returns (probs (n, k), true (n,), given (n,), flipped indices)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    confidence = rng.uniform(0.6, 0.95, n)
    rest = rng.dirichlet(np.ones(k), n) * (1.0 - confidence)[:, None]
    probs = rest
    probs[np.arange(n), true] += confidence
    flipped = rng.choice(n, size=int(round(noise_rate * n)), replace=False)
    given = true.copy()
    given[flipped] = (given[flipped] + 1 + rng.integers(0, k - 1, flipped.size)) % k  # any other class
    return probs, true, given, flipped


# ---------------------------------------------------------------- rank score


def test_rank_score_scales_ranks_to_unit_interval_with_average_ties():
    np.testing.assert_allclose(compute_rank_score(np.array([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])
    np.testing.assert_allclose(compute_rank_score(np.array([1.0, 2.0, 2.0, 5.0])), [0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(compute_rank_score(np.array([7.0])), [1.0])


# ---------------------------------------------------------------- mislabel score


def test_mislabel_score_prob_is_one_minus_mean_trained_prob():
    label_prob = np.array([[0.0, 0.0, 0.0], [0.9, 0.2, 0.5], [0.7, 0.4, 0.5]])  # epoch 0 ignored
    margin = np.zeros_like(label_prob)
    np.testing.assert_allclose(compute_mislabel_score(label_prob, margin, method="prob"), [0.2, 0.7, 0.5])
    np.testing.assert_allclose(compute_mislabel_score(label_prob, margin, first_epoch=0, method="prob"),
                               [1 - 1.6 / 3, 1 - 0.6 / 3, 1 - 1.0 / 3])


def test_mislabel_score_margin_and_default_methods():
    label_prob = np.array([[0.1, 0.1, 0.1, 0.1], [0.9, 0.2, 0.6, 0.4]])
    margin = np.array([[9.0, 9.0, 9.0, 9.0], [3.0, -1.0, 2.0, 0.5]])
    # low margin = suspect: ranks of -margin -> [0, 1, 1/3, 2/3]
    np.testing.assert_allclose(compute_mislabel_score(label_prob, margin, method="margin"), [0, 1, 1 / 3, 2 / 3])
    # when they disagree, prob_margin is the mean of the two ranks
    margin2 = np.array([[0.0] * 4, [-1.0, 3.0, 2.0, 0.5]])
    # prob ranks [0, 1, 1/3, 2/3], margin ranks [1, 0, 1/3, 2/3]
    np.testing.assert_allclose(compute_mislabel_score(label_prob, margin2, method="prob_margin"),
                               [0.5, 0.5, 1 / 3, 2 / 3])


def test_consistency_margin_is_the_mean_of_the_consistency_and_margin_ranks():
    label_prob = np.zeros((2, 4))
    margin = np.array([[0.0] * 4, [-1.0, 3.0, 2.0, 0.5]])  # margin ranks [1, 0, 1/3, 2/3]
    consistency = np.array([[0.0] * 4, [0.1, 0.2, 0.9, 0.3]])  # consistency ranks [1, 2/3, 0, 1/3]
    np.testing.assert_allclose(compute_mislabel_score(label_prob, margin, method="consistency", consistency=consistency),
                               [1, 2 / 3, 0, 1 / 3])
    both = compute_mislabel_score(label_prob, margin, method="consistency_margin", consistency=consistency)
    np.testing.assert_allclose(both, [1, 1 / 3, 1 / 6, 1 / 2])
    with pytest.raises(ValueError, match="needs consistency"):
        compute_mislabel_score(label_prob, margin)  # the default needs the consistency curve
    with pytest.raises(ValueError, match="needs prob_margin"):
        compute_mislabel_score(label_prob, margin, consistency=consistency)  # and the softmax margin


def test_prob_margin_is_the_ensemble_mean_softmax_of_the_label_minus_the_best_other():
    prob_sum = np.array([[1.2, 0.6, 0.2], [0.3, 1.5, 0.2], [0.0, 0.0, 0.0]])  # softmax sums over 2, 2, 0 members
    got = compute_prob_margin(prob_sum, np.array([2, 2, 0]), np.array([0, 0, 1]))
    np.testing.assert_allclose(got[:2], [0.6 - 0.3, 0.15 - 0.75])
    assert np.isnan(got[2])  # no member trained on it: no margin
    rng = np.random.default_rng(0)
    for _ in range(50):  # on any ensemble: in [-1, 1], positive exactly when the label is the mean's argmax
        members, n, k = int(rng.integers(1, 6)), int(rng.integers(1, 20)), int(rng.integers(2, 6))
        softmax = rng.dirichlet(np.ones(k), (members, n))
        given = rng.integers(0, k, n)
        margin = compute_prob_margin(softmax.sum(axis=0), np.full(n, members), given)
        assert ((margin >= -1) & (margin <= 1)).all()
        mean = softmax.mean(axis=0)
        top = mean.argmax(axis=1)
        assert ((margin > 0) == ((top == given) & (np.sort(mean, axis=1)[:, -2] < mean[np.arange(n), given]))).all()
    with pytest.raises(ValueError, match="must be"):
        compute_prob_margin(prob_sum, np.array([2, 2]), np.array([0, 0, 1]))


def test_consistency_prob_margin_is_the_mean_of_the_consistency_and_prob_margin_ranks():
    label_prob = np.zeros((2, 4))
    margin = np.array([[0.0] * 4, [5.0, -2.0, 1.0, 0.0]])  # the logit margin plays no part in this method
    prob_margin = np.array([[0.0] * 4, [-0.5, 0.9, 0.2, 0.1]])  # ranks [1, 0, 1/3, 2/3]
    consistency = np.array([[0.0] * 4, [0.1, 0.2, 0.9, 0.3]])  # ranks [1, 2/3, 0, 1/3]
    got = compute_mislabel_score(label_prob, margin, method="consistency_prob_margin", consistency=consistency,
                                 prob_margin=prob_margin)
    np.testing.assert_allclose(got, [1, 1 / 3, 1 / 6, 1 / 2])
    never_trained = prob_margin.copy()
    never_trained[:, 3] = np.nan  # NaN at every epoch: its prob-margin rank is NaN, so is its score
    assert np.isnan(compute_mislabel_score(label_prob, margin, method="consistency_prob_margin",
                                           consistency=consistency, prob_margin=never_trained)[3])
    with pytest.raises(ValueError, match="needs prob_margin"):
        compute_mislabel_score(label_prob, margin, method="consistency_prob_margin", consistency=consistency)


def test_margin_count_is_the_examples_the_ensemble_on_average_prefers_another_class_for():
    margin = np.array([[9.0, 9.0, 9.0, np.nan], [-1.0, 0.5, -3.0, np.nan], [0.5, 0.4, 2.0, np.nan]])
    # trained-epoch means (epoch 0 ignored): -0.25, 0.45, -0.5, NaN (never counted)
    assert estimate_n_errors_by_margin(margin) == 2
    assert estimate_n_errors_by_margin(margin, first_epoch=0) == 0


def test_estimated_precision_is_the_share_of_votes_against_the_flagged_labels():
    accessibility = np.array([0.1, 0.3, 0.9, np.nan])  # share of member-epochs that voted the given label
    assert estimate_flag_precision(accessibility, np.array([True, True, False, False])) == pytest.approx(0.8)
    assert estimate_flag_precision(accessibility, np.zeros(4, dtype=bool)) is None
    assert estimate_flag_precision(accessibility, np.array([False, False, False, True])) is None  # NaN only
    # the more the ensemble voted for the given labels of the flagged, the lower the estimate
    assert estimate_flag_precision(accessibility, np.array([True, True, True, False])) < 0.8
    assert estimate_flag_precision(accessibility, np.array([True, True, True, True])) == pytest.approx(
        estimate_flag_precision(accessibility, np.array([True, True, True, False])))


def test_mislabel_score_properties_on_random_curves():
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        e, n = rng.integers(2, 6), rng.integers(2, 30)
        label_prob = rng.random((e, n))
        margin = rng.normal(size=(e, n))
        consistency = rng.random((e, n))
        prob_margin = rng.uniform(-1, 1, (e, n))
        for method in MISLABEL_METHODS:
            s = compute_mislabel_score(label_prob, margin, method=method, consistency=consistency,
                                       prob_margin=prob_margin)
            assert s.shape == (n,), seed
            assert ((s >= 0) & (s <= 1)).all(), (seed, method)
        # monotone: lowering one example's probability and margin at every trained epoch cannot lower its score
        i = rng.integers(n)
        worse_p, worse_m = label_prob.copy(), margin.copy()
        worse_p[1:, i] *= 0.5
        worse_m[1:, i] -= 1.0
        worse_c = consistency.copy()
        worse_c[1:, i] *= 0.5
        worse_pm = prob_margin.copy()
        worse_pm[1:, i] -= 0.5
        for method in MISLABEL_METHODS:
            before = compute_mislabel_score(label_prob, margin, method=method, consistency=consistency,
                                            prob_margin=prob_margin)[i]
            after = compute_mislabel_score(worse_p, worse_m, method=method, consistency=worse_c,
                                           prob_margin=worse_pm)[i]
            assert after >= before - 1e-12, (seed, method)


def test_mislabel_score_rejects_bad_input():
    with pytest.raises(ValueError):
        compute_mislabel_score(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError):
        compute_mislabel_score(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="unknown"):
        compute_mislabel_score(np.ones((3, 4)), np.ones((3, 4)), method="aum")


# ---------------------------------------------------------------- confident joint and the count


def test_confident_joint_of_perfect_probs_is_the_diagonal_of_class_priors():
    given = np.array([0, 0, 1, 2, 2, 2, 1, 0, 0, 2])
    probs = np.eye(3)[given]
    joint = compute_confident_joint(probs, given)
    np.testing.assert_allclose(joint, np.diag(np.bincount(given) / len(given)))
    assert estimate_n_label_errors(probs, given) == 0


def test_confident_joint_sums_to_one_on_random_probs():
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        n, k = rng.integers(5, 60), rng.integers(2, 6)
        probs = rng.dirichlet(np.ones(k) * rng.uniform(0.2, 3.0), n)
        given = rng.integers(0, k, n)
        joint = compute_confident_joint(probs, given)
        assert joint.shape == (k, k), seed
        assert (joint >= 0).all(), seed
        np.testing.assert_allclose(joint.sum(), 1.0, err_msg=str(seed))
        n_errors = estimate_n_label_errors(probs, given)
        assert isinstance(n_errors, int)
        assert 0 <= n_errors <= n, seed


def test_confident_joint_rows_are_calibrated_to_label_counts():
    probs, _, given, _ = _noisy_probs(400, 4, 0.1, seed=3)
    joint = compute_confident_joint(probs, given)
    np.testing.assert_allclose(joint.sum(axis=1), np.bincount(given, minlength=4) / len(given), atol=1e-12)


@pytest.mark.parametrize("noise_rate", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_finds_planted_errors(noise_rate, seed):
    n, k = 1000, 5
    probs, true, given, flipped = _noisy_probs(n, k, noise_rate, seed)
    n_errors = estimate_n_label_errors(probs, given)
    assert abs(n_errors - flipped.size) <= 0.02 * n, (n_errors, flipped.size)
    # the off-diagonal mass sits where the flips went: Q[given, true]
    joint = compute_confident_joint(probs, given)
    planted = np.zeros((k, k))
    np.add.at(planted, (given[flipped], true[flipped]), 1.0 / n)
    off = ~np.eye(k, dtype=bool)
    np.testing.assert_allclose(joint[off], planted[off], atol=0.01)


def test_count_is_zero_for_clean_labels_on_noisy_probs():
    probs, _, given, _ = _noisy_probs(1000, 5, 0.0, seed=4)
    assert estimate_n_label_errors(probs, given) <= 5


def test_confident_joint_rejects_mismatched_labels():
    with pytest.raises(ValueError):
        compute_confident_joint(np.full((4, 2), 0.5), np.zeros(5, dtype=int))


# ---------------------------------------------------------------- flags


def test_flags_pick_exactly_n_highest():
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        score = rng.random(rng.integers(1, 50))
        n_errors = int(rng.integers(0, len(score) + 1))
        flags = flag_suspected_mislabels(score, n_errors)
        assert flags.dtype == np.bool_ and flags.shape == score.shape, seed
        assert flags.sum() == n_errors, seed
        if 0 < n_errors < len(score):
            assert score[flags].min() >= score[~flags].max(), seed


def test_flags_edge_counts_and_ties():
    score = np.array([0.5, 0.9, 0.5, 0.1, 0.5])
    assert not flag_suspected_mislabels(score, 0).any()
    assert not flag_suspected_mislabels(score, -3).any()
    assert flag_suspected_mislabels(score, 99).all()
    # ties broken by example order: of the three 0.5s the first one wins
    assert flag_suspected_mislabels(score, 2).tolist() == [True, True, False, False, False]
    assert flag_suspected_mislabels(score, 3).tolist() == [True, True, True, False, False]


# ---------------------------------------------------------------- suggested label


def test_suggested_label_is_the_best_other_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.1, 0.45, 0.45]])
    given = np.array([0, 1, 0])
    assert compute_suggested_label(probs, given).tolist() == [1, 0, 1]  # tie -> smaller class


def test_suggested_label_is_never_the_given_label():
    for seed in range(N_CASES):
        rng = np.random.default_rng(seed)
        n, k = rng.integers(1, 40), rng.integers(2, 7)
        probs = rng.dirichlet(np.ones(k), n)
        given = rng.integers(0, k, n)
        probs[: n // 2, :] = 0.0
        probs[np.arange(n // 2), given[: n // 2]] = 1.0  # confident on the given label
        suggested = compute_suggested_label(probs, given)
        assert suggested.dtype == np.int64, seed
        assert (suggested != given).all(), seed
        assert ((suggested >= 0) & (suggested < k)).all(), seed
        others = np.where(np.arange(k)[None, :] == given[:, None], -1.0, probs)
        np.testing.assert_array_equal(probs[np.arange(n), suggested], others.max(axis=1))
    # the input is not modified
    probs = np.array([[0.6, 0.4]])
    compute_suggested_label(probs, np.array([0]))
    assert probs.tolist() == [[0.6, 0.4]]


def test_suggested_label_finds_the_true_class_of_planted_flips():
    probs, true, given, flipped = _noisy_probs(500, 4, 0.1, seed=5)
    suggested = compute_suggested_label(probs, given)
    np.testing.assert_array_equal(suggested[flipped], true[flipped])
