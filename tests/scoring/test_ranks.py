"""scoring/ranks.py against scipy.stats (which scoring no longer imports): ranks with ties, and
Pearson and Spearman r with their p-values, on tied and untied data of several sizes."""

import numpy as np
import pytest
from scipy import stats

from scoring.ranks import average_ranks, pearson, spearman
from tests.conftest import imported_by


@pytest.mark.parametrize("n", [3, 4, 7, 60, 5000])
@pytest.mark.parametrize("tied", [False, True])
def test_ranks_and_correlations_match_scipy(n: int, tied: bool) -> None:
    rng = np.random.default_rng(n)
    a = rng.random(n)
    b = 0.4 * a + rng.random(n)
    if tied:  # accessibilities are shares of m members: many ties
        a, b = np.round(a * 4) / 4, np.round(b * 3) / 3
    a[:3], b[:3] = [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]  # never constant
    np.testing.assert_allclose(average_ranks(a), stats.rankdata(a, method="average"))
    for ours, theirs in ((pearson(a, b), stats.pearsonr(a, b)), (spearman(a, b), stats.spearmanr(a, b))):
        assert ours[0] == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours[1] == pytest.approx(theirs.pvalue, rel=1e-6, abs=1e-300)


def test_a_perfect_correlation_has_p_zero_and_ranks_run_one_to_n() -> None:
    x = np.array([3.0, 1.0, 2.0, 2.0])
    assert average_ranks(x).tolist() == [4.0, 1.0, 2.5, 2.5]
    assert pearson(x, 2 * x + 1) == (1.0, 0.0)
    assert spearman(x, -x)[0] == pytest.approx(-1.0)


def test_scoring_a_job_leaves_scipy_stats_unimported() -> None:
    code = ("import numpy as np\n"
            "from scoring.agreement import compute_difficulty_correlation\n"
            "from scoring.mislabel import compute_rank_score\n"
            "rng = np.random.default_rng(0)\n"
            "compute_difficulty_correlation(rng.random(50), rng.random(50)); compute_rank_score(rng.random(50))\n")
    assert imported_by(code, ("scipy.stats",)) == [False]
