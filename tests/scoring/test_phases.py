"""Agreement index and phase detector on hand-built consistency curves."""

import numpy as np
import pytest

from scoring.phases import PhaseThresholds, compute_agreement_index, detect_phases

N, K, N_EXAMPLES = 8, 10, 1000


def _block(shares_at_one: list[float], rng: np.random.Generator, chance_epochs: int = 2) -> np.ndarray:
    """(n_epochs, n_examples): `chance_epochs` binomial(N, 1/K) epochs, then for each share s the
    first s * n examples (a shared order) at c = 1 and the rest at c = 0; in the first of these
    epochs the next 10 % still sit at c = 0.5 (the middle empties into both peaks)."""
    init = rng.binomial(N, 1 / K, (chance_epochs, N_EXAMPLES)) / N
    order = np.arange(N_EXAMPLES)
    later = np.array([(order < s * N_EXAMPLES).astype(float) for s in shares_at_one])
    first = shares_at_one[0] * N_EXAMPLES
    later[0, (order >= first) & (order < first + 0.1 * N_EXAMPLES)] = 0.5
    return np.vstack([init, later])


# ---------------------------------------------------------------- agreement index


def test_agreement_near_zero_for_independent_members():
    rng = np.random.default_rng(0)
    for p in (0.1, 0.5, 0.8):
        hits = rng.random((N, 20_000)) < p  # members right independently with the same p
        a = compute_agreement_index(hits.mean(axis=0)[None, :], N)
        assert abs(a[0]) < 0.02, (p, a)


def test_agreement_is_one_for_all_or_none():
    rng = np.random.default_rng(1)
    c = (rng.random((4, 500)) < np.array([[0.1], [0.4], [0.7], [0.95]])).astype(float)
    np.testing.assert_allclose(compute_agreement_index(c, N), 1.0)


def test_agreement_by_hand_and_lower_bound():
    # c = [0, 0.5, 1, 0.5], N = 2: p̄ = 0.5, Var = 0.125, binomial var 0.125 -> A = 0
    assert compute_agreement_index(np.array([[0.0, 0.5, 1.0, 0.5]]), 2)[0] == pytest.approx(0.0)
    # every example at c = 0.5: Var = 0 -> A = -1 / (N - 1), the minimum
    assert compute_agreement_index(np.full((1, 10), 0.5), N)[0] == pytest.approx(-1 / (N - 1))


def test_agreement_nan_cases():
    c = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [np.nan, np.nan, np.nan], [0.0, 1.0, 0.5]])
    a = compute_agreement_index(c, N)
    assert a.shape == (4,) and a.dtype == np.float64
    assert np.isnan(a[:3]).all() and np.isfinite(a[3])
    assert np.isnan(compute_agreement_index(np.array([[0.0, 1.0, 1.0]]), 1)).all()  # N == 1


def test_agreement_ignores_nan_examples():
    c = np.array([[0.0, 1.0, 0.25, 1.0]])
    with_nan = np.hstack([c, [[np.nan]]])
    np.testing.assert_allclose(compute_agreement_index(with_nan, 4), compute_agreement_index(c, 4))


# ---------------------------------------------------------------- phases


def test_phases_on_a_synthetic_train_trajectory():
    # init, init, block jumps (0-peak still growing), block, mass moves, ..., memorised
    c = _block([0.2, 0.25, 0.4, 0.6, 0.8, 0.9, 0.97, 1.0], np.random.default_rng(2))
    phases = detect_phases(c, N, K)
    assert phases.dtype == np.int8 and phases.shape == (10,)
    np.testing.assert_array_equal(phases, [1, 1, 2, 2, 3, 3, 3, 3, 4, 4])


def test_phases_on_a_synthetic_heldout_trajectory():
    # held-out: learning stops at 70 % and the histogram freezes from epoch 6
    c = _block([0.2, 0.25, 0.4, 0.6, 0.7, 0.7, 0.7, 0.7], np.random.default_rng(3))
    np.testing.assert_array_equal(detect_phases(c, N, K, is_heldout=True), [1, 1, 2, 2, 3, 3, 4, 4, 4, 4])
    # the same curve read as train never memorises, so it stays in phase 3
    np.testing.assert_array_equal(detect_phases(c, N, K), [1, 1, 2, 2, 3, 3, 3, 3, 3, 3])


def test_frozen_stretch_must_be_long_enough():
    c = _block([0.2, 0.25, 0.4, 0.7, 0.7], np.random.default_rng(4))  # frozen for the last 2 epochs only
    assert detect_phases(c, N, K, is_heldout=True).max() == 3
    loose = PhaseThresholds(frozen_epochs=2)
    assert detect_phases(c, N, K, is_heldout=True, thresholds=loose)[-1] == 4


def test_phases_may_skip_but_never_go_back():
    # memorised one epoch after the jump: 2 -> 4 with no phase 3; a later dip does not undo it
    c = _block([0.3, 0.99, 0.5], np.random.default_rng(5))
    np.testing.assert_array_equal(detect_phases(c, N, K), [1, 1, 2, 4, 4])


def test_independent_members_never_leave_phase_one():
    # random-label-like control: members learn independently, the histogram stays binomial
    rng = np.random.default_rng(6)
    p = np.linspace(0.1, 0.99, 12)[:, None]
    c = rng.binomial(N, p, (12, N_EXAMPLES)) / N
    assert (compute_agreement_index(c, N)[1:] < 0.1).all()
    np.testing.assert_array_equal(detect_phases(c, N, K), np.ones(12))


@pytest.mark.parametrize("seed", range(20))
def test_phases_monotone_on_random_curves(seed):
    rng = np.random.default_rng(seed)
    n_epochs = int(rng.integers(1, 15))
    c = rng.integers(0, N + 1, (n_epochs, 50)) / N
    c[rng.random(c.shape) < 0.1] = np.nan
    for heldout in (False, True):
        phases = detect_phases(c, N, K, is_heldout=heldout)
        assert phases.shape == (n_epochs,)
        assert set(phases.tolist()) <= {1, 2, 3, 4}
        assert (np.diff(phases) >= 0).all()


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 3, 4)), np.zeros((0, 3)), np.zeros((3, 0)),
                                 np.array([[0.5, 1.2]]), np.array([[-0.1, 0.5]]), np.array([[np.inf, 0.5]])])
def test_bad_consistency_is_rejected(bad):
    with pytest.raises(ValueError, match="consistency"):
        compute_agreement_index(bad, N)
    with pytest.raises(ValueError, match="consistency"):
        detect_phases(bad, N, K)


def test_bad_counts_are_rejected():
    c = np.full((2, 3), 0.5)
    for n_members in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n_members"):
            compute_agreement_index(c, n_members)
    for n_classes in (1, 0, 3.0):
        with pytest.raises(ValueError, match="n_classes"):
            detect_phases(c, N, n_classes)


@pytest.mark.parametrize("kwargs", [dict(low=0.9, high=0.1), dict(low=0.5, high=0.5), dict(high=1.5),
                                    dict(bimodal_A=2.0), dict(memorised_fraction=-0.1), dict(frozen_epochs=0)])
def test_bad_thresholds_are_rejected(kwargs):
    with pytest.raises(ValueError):
        PhaseThresholds(**kwargs)
