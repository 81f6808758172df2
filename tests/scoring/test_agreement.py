"""Agreement between model families, on hand-made stage predictions with known answers."""

import warnings

import numpy as np
import pytest
from scipy import stats

from scoring.agreement import (
    Correlation,
    check_curves_ordered,
    compute_boosting_accessibility,
    compute_difficulty_correlation,
    compute_family_agreement,
    compute_stage_accuracy_by_group,
)

# 3 stages x 4 examples. Correct (== GIVEN) per stage:
#   stage 0: [1, 0, 0, 0]   stage 1: [1, 1, 1, 1]   stage 2: [1, 1, 1, 0]
PRED = np.array([[0, 1, 1, 0], [0, 0, 2, 1], [0, 0, 2, 2]])
GIVEN = np.array([0, 0, 2, 1])
SPLIT = np.array(["easy", "intermediate", "intermediate", "hard"])


def test_boosting_accessibility_is_mean_correctness_over_stages():
    access = compute_boosting_accessibility(PRED, GIVEN)
    np.testing.assert_allclose(access, [1.0, 2 / 3, 2 / 3, 1 / 3])
    assert access.dtype == np.float64


def test_stage_accuracy_by_group_hand_computed():
    curves = compute_stage_accuracy_by_group(PRED, GIVEN, SPLIT)
    assert set(curves) == {"easy", "intermediate", "hard"}
    np.testing.assert_allclose(curves["easy"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(curves["intermediate"], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(curves["hard"], [0.0, 1.0, 0.0])
    assert check_curves_ordered(curves) == 1.0


def test_empty_group_maps_to_nan_curve():
    split = np.array(["easy", "easy", "intermediate", "intermediate"])
    curves = compute_stage_accuracy_by_group(PRED, GIVEN, split)
    assert curves["hard"].shape == (3,)
    assert np.isnan(curves["hard"]).all()
    np.testing.assert_allclose(curves["easy"], [0.5, 1.0, 1.0])  # examples 0, 1
    np.testing.assert_allclose(curves["intermediate"], [0.0, 1.0, 0.5])  # examples 2, 3


def test_check_curves_ordered_counts_stages():
    curves = {
        "easy": np.array([1.0, 0.5, 0.9]),
        "intermediate": np.array([0.5, 0.6, 0.5]),  # above easy at stage 1
        "hard": np.array([0.2, 0.1, 0.7]),  # above intermediate at stage 2
    }
    assert check_curves_ordered(curves) == pytest.approx(1 / 3)
    # Without the intermediate group, easy >= hard at every stage.
    curves["intermediate"] = np.full(3, np.nan)
    assert check_curves_ordered(curves) == 1.0
    # One group left: nothing to order.
    curves["hard"] = np.full(3, np.nan)
    assert np.isnan(check_curves_ordered(curves))


def test_check_curves_ordered_rejects_bad_curves():
    with pytest.raises(ValueError, match="lacks groups"):
        check_curves_ordered({"easy": np.ones(3), "hard": np.ones(3)})
    with pytest.raises(ValueError, match="shapes"):
        check_curves_ordered({"easy": np.ones(3), "intermediate": np.ones(2), "hard": np.ones(3)})


def test_correlation_hand_computed():
    # Deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5) in units of 0.25:
    # cov = 4, var = 5 each -> r = 0.8; ranks are the same, so rho = 0.8.
    # With n = 4 (df = 2) the two-sided t-test p-value is exactly 1 - |r| = 0.2.
    a = np.array([0.25, 0.5, 0.75, 1.0])
    b = np.array([0.25, 0.75, 0.5, 1.0])
    corr = compute_difficulty_correlation(a, b)
    assert isinstance(corr, Correlation)
    assert corr.pearson_r == pytest.approx(0.8)
    assert corr.spearman_r == pytest.approx(0.8)
    assert corr.pearson_p == pytest.approx(0.2)
    assert corr.spearman_p == pytest.approx(0.2)
    assert corr.n_examples == 4
    assert corr.reason is None
    # Second check against scipy directly.
    assert corr.pearson_r == pytest.approx(stats.pearsonr(a, b).statistic)
    assert corr.spearman_p == pytest.approx(stats.spearmanr(a, b).pvalue)


def test_spearman_sees_monotone_relation_pearson_does_not_fully():
    a = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    corr = compute_difficulty_correlation(a, a**2)
    assert corr.spearman_r == pytest.approx(1.0)
    assert 0.9 < corr.pearson_r < 1.0
    anti = compute_difficulty_correlation(a, 1.0 - a)
    assert anti.pearson_r == pytest.approx(-1.0)


@pytest.mark.parametrize("which", ["ensemble", "boosting"])
def test_constant_input_gives_nan_with_reason(which):
    varied = np.array([0.1, 0.5, 0.9, 0.3])
    const = np.full(4, 1.0)
    args = (const, varied) if which == "ensemble" else (varied, const)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy ConstantInputWarning either
        corr = compute_difficulty_correlation(*args)
    assert np.isnan([corr.pearson_r, corr.pearson_p, corr.spearman_r, corr.spearman_p]).all()
    assert corr.n_examples == 4
    assert corr.reason is not None and which in corr.reason and "constant" in corr.reason


def test_too_few_examples_gives_nan():
    corr = compute_difficulty_correlation(np.array([0.1, 0.9]), np.array([0.2, 0.8]))
    assert np.isnan(corr.pearson_r) and "fewer than 3" in corr.reason


def test_family_agreement_categories():
    ens = np.array([0.9, 0.1, 0.2, 0.8, 0.5])
    boost = np.array([0.7, 0.3, 0.9, 0.1, 0.5])  # last: both exactly at threshold -> easy
    out = compute_family_agreement(ens, boost)
    assert out.tolist() == [
        "both_easy",
        "both_hard",
        "hard_for_ensemble_only",
        "hard_for_boosting_only",
        "both_easy",
    ]
    stricter = compute_family_agreement(ens, boost, threshold=0.75)
    assert stricter.tolist() == [
        "hard_for_boosting_only",
        "both_hard",
        "hard_for_ensemble_only",
        "hard_for_boosting_only",
        "both_hard",
    ]


def test_shape_mismatch_raises_naming_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        compute_difficulty_correlation(np.ones(3) * 0.5, np.linspace(0, 1, 4))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        compute_family_agreement(np.ones(3) * 0.5, np.linspace(0, 1, 4))
    with pytest.raises(ValueError, match=r"\(5,\).*\(3, 4\)"):
        compute_boosting_accessibility(PRED, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        compute_stage_accuracy_by_group(PRED, GIVEN, SPLIT[:3])
    with pytest.raises(ValueError, match=r"\(4,\)"):
        compute_boosting_accessibility(PRED[0], GIVEN)


def test_invalid_values_raise():
    with pytest.raises(ValueError, match="split values"):
        compute_stage_accuracy_by_group(PRED, GIVEN, np.array(["easy", "medium", "hard", "hard"]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_family_agreement(np.array([0.5, 1.5]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="threshold"):
        compute_family_agreement(np.array([0.5, 0.5]), np.array([0.5, 0.5]), threshold=2.0)
    with pytest.raises(ValueError, match="finite"):
        compute_difficulty_correlation(np.array([0.1, np.nan, 0.3]), np.array([0.1, 0.2, 0.3]))
