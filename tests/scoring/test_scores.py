"""compute_example_scores on synthetic learning dynamics: shapes, ranges, cross-fitting and errors."""

import warnings

import numpy as np
import pytest

from scoring.consistency import NEVER, compute_accessibility, compute_consistency
from scoring.mislabel import compute_rank_score
from scoring.scores import ExampleScores, ScoringOptions, compute_example_scores, take_low_noise_pass
from scoring.splits import SPLITS


def _record(logits: np.ndarray, given: np.ndarray, held_out: np.ndarray | None = None) -> dict:
    """The arrays of a prediction record, computed from logits (M, E, n, K) as the trainer does."""
    m, e, n, k = logits.shape
    held = np.zeros((m, n), dtype=bool) if held_out is None else held_out
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    idx = np.broadcast_to(given[None, None, :, None], (m, e, n, 1))
    given_logit = np.take_along_axis(logits, idx, axis=-1)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    h = held[:, None, :, None]
    return dict(
        predicted_label=logits.argmax(axis=-1).astype(np.int16),
        label_prob=np.take_along_axis(probs, idx, axis=-1)[..., 0].astype(np.float32),
        margin=(given_logit - others.max(axis=-1)).astype(np.float32),
        held_out=held,
        prob_sum=(probs * ~h).sum(axis=0).astype(np.float32),
        heldout_prob_sum=(probs * h).sum(axis=0).astype(np.float32),
        given_labels=given,
    )


def _random_record(seed: int, m: int = 4, e: int = 5, n: int = 30, k: int = 3, held_out=None) -> dict:
    rng = np.random.default_rng(seed)
    given = rng.integers(0, k, n)
    logits = rng.normal(size=(m, e, n, k))
    logits[..., :, :] += 2.0 * np.eye(k)[given] * rng.random(n)[:, None]  # some examples lean to the given label
    return _record(logits, given, held_out)


def _planted(n: int = 300, k: int = 4, m: int = 6, e: int = 10, n_folds: int = 0, seed: int = 0):
    """Dynamics with 10% planted flips. Every member predicts an example's true class with a confidence
    that grows over training; members that train on a flipped example memorise its given label in the
    last two epochs. With n_folds, member j holds out fold j % n_folds and never memorises it.

    Returns (record kwargs, true labels, flipped indices)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    flipped = rng.choice(n, size=n // 10, replace=False)
    given = true.copy()
    given[flipped] = (true[flipped] + 1) % k
    held = np.zeros((m, n), dtype=bool)
    if n_folds:
        folds = rng.integers(0, n_folds, n)
        held = np.stack([folds == j % n_folds for j in range(m)])
    ep = np.arange(e)[:, None]
    speed = rng.uniform(0.5, 1.5, n)[None, :]
    logits = rng.normal(scale=0.3, size=(m, e, n, k))
    logits[:, :, np.arange(n), true] += np.where(ep > 0, 1.0 + 0.8 * speed * ep, 0.0)
    memorise = np.zeros((m, e, n), dtype=bool)
    memorise[:, -2:, :] = True
    memorise &= ~held[:, None, :]
    mi, ei, ni = np.nonzero(memorise[:, :, flipped])
    i = flipped[ni]
    logits[mi, ei, i, given[i]] = logits[mi, ei, i, true[i]] + 3.0
    return _record(logits, given, held), true, flipped


def _scores(rec: dict, options: ScoringOptions = ScoringOptions()) -> ExampleScores:
    return compute_example_scores(**rec, options=options)


# ---------------------------------------------------------------- shapes and ranges


@pytest.mark.parametrize("seed", range(5))
def test_shapes_and_ranges_without_folds(seed):
    m, e, n, k = 4, 5, 30, 3
    rec = _random_record(seed, m, e, n, k)
    s = _scores(rec)
    for name in ("consistency_curve", "consensus_curve", "consensus_label_curve", "heldout_consistency_curve"):
        assert getattr(s, name).shape == (e, n), name
    for name in ("consistency", "consensus", "consensus_label", "heldout_consistency", "accessibility",
                 "first_learned_epoch", "mean_label_prob", "split", "mislabel_score", "is_suspected_mislabel",
                 "suggested_label"):
        assert getattr(s, name).shape == (n,), name
    assert ((s.consistency_curve >= 0) & (s.consistency_curve <= 1)).all()
    assert ((s.consensus_curve >= 1 / k - 1e-12) & (s.consensus_curve <= 1)).all()
    assert (s.consensus_curve >= s.consistency_curve - 1e-12).all()
    assert ((s.accessibility >= 0) & (s.accessibility <= 1)).all()
    assert ((s.mean_label_prob > 0) & (s.mean_label_prob < 1)).all()
    assert ((s.mislabel_score >= 0) & (s.mislabel_score <= 1)).all()
    assert ((s.first_learned_epoch >= NEVER) & (s.first_learned_epoch < e)).all()
    assert set(s.split) <= set(SPLITS)
    assert s.is_suspected_mislabel.dtype == np.bool_
    assert s.is_suspected_mislabel.sum() == s.estimated_n_errors
    assert 0 <= s.estimated_n_errors <= n
    assert (s.suggested_label != rec["given_labels"]).all()
    assert ((s.consensus_label >= 0) & (s.consensus_label < k)).all()
    # without folds there is no held-out view
    assert np.isnan(s.heldout_consistency_curve).all() and np.isnan(s.heldout_consistency).all()
    # the per-example fields are the last epoch of the curves / the documented summaries
    np.testing.assert_array_equal(s.consistency, s.consistency_curve[-1])
    np.testing.assert_array_equal(s.consensus, s.consensus_curve[-1])
    np.testing.assert_array_equal(s.consensus_label, s.consensus_label_curve[-1])
    np.testing.assert_allclose(s.consistency_curve, compute_consistency(rec["predicted_label"], rec["given_labels"]))
    np.testing.assert_allclose(s.accessibility, s.consistency_curve[1:].mean(axis=0))
    np.testing.assert_allclose(s.mean_label_prob, rec["label_prob"][:, 1:].mean(axis=(0, 1)), rtol=1e-6)
    assert s.options == ScoringOptions()


def test_options_change_splits_threshold_and_method():
    rec = _random_record(7)
    base = _scores(rec)
    everything_easy = _scores(rec, ScoringOptions(easy_at_least=0.0, hard_below=0.0))
    assert (everything_easy.split == "easy").all()
    prob_only = _scores(rec, ScoringOptions(mislabel_method="prob"))
    np.testing.assert_allclose(prob_only.mislabel_score, 1.0 - prob_only.mean_label_prob, rtol=1e-6)
    margin_only = _scores(rec, ScoringOptions(mislabel_method="margin"))
    mean_margin = rec["margin"][:, 1:].astype(np.float64).mean(axis=(0, 1))
    np.testing.assert_allclose(margin_only.mislabel_score, compute_rank_score(-mean_margin), atol=1e-9)
    by_prob_margin = _scores(rec, ScoringOptions(mislabel_method="consistency_prob_margin"))
    mean_probs = rec["prob_sum"][1:].astype(np.float64) / rec["predicted_label"].shape[0]  # (E, n, K): no folds
    given = rec["given_labels"]
    others = mean_probs.copy()
    others[:, np.arange(len(given)), given] = -np.inf
    prob_margin = (mean_probs[:, np.arange(len(given)), given] - others.max(axis=2)).mean(axis=0)
    np.testing.assert_allclose(by_prob_margin.mislabel_score,
                               0.5 * (compute_rank_score(-base.accessibility) + compute_rank_score(-prob_margin)),
                               atol=1e-6)
    strict = _scores(rec, ScoringOptions(learned_threshold=1.0))
    learned = strict.first_learned_epoch != NEVER  # learned at threshold 1 implies learned at 0.5, no earlier
    assert (base.first_learned_epoch[learned] != NEVER).all()
    assert (strict.first_learned_epoch[learned] >= base.first_learned_epoch[learned]).all()
    assert (strict.first_learned_epoch != base.first_learned_epoch).any()
    with pytest.raises(ValueError):
        _scores(rec, ScoringOptions(mislabel_method="nonsense"))


def test_single_member_has_full_consensus():
    s = _scores(_random_record(3, m=1))
    np.testing.assert_array_equal(s.consensus_curve, 1.0)
    assert set(np.unique(s.consistency_curve)) <= {0.0, 1.0}


# ---------------------------------------------------------------- planted noise


def _flipped_mask(n: int, flipped: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[flipped] = True
    return mask


@pytest.mark.parametrize("seed", range(3))
def test_planted_flips_score_highest_with_their_true_class_suggested(seed):
    rec, true, flipped = _planted(seed=seed)
    s = _scores(rec)
    is_flipped = _flipped_mask(len(true), flipped)
    e = rec["predicted_label"].shape[1]
    # every flipped example scores above every clean one
    assert s.mislabel_score[is_flipped].min() > s.mislabel_score[~is_flipped].max()
    np.testing.assert_array_equal(s.suggested_label[flipped], true[flipped])
    # memorised at the end, so final-epoch consistency says nothing; accessibility does
    np.testing.assert_array_equal(s.consistency[flipped], 1.0)
    assert s.accessibility[flipped].max() < s.accessibility[~is_flipped].min()
    assert (s.split[flipped] == "hard").all()
    assert (s.first_learned_epoch[flipped] == e - 2).all()  # learned for good only in the last two epochs
    assert (s.first_learned_epoch[~is_flipped] < e - 2).all()
    # the in-sample count cannot see memorised flips (hence the held-out count below), but what it
    # flags is the top of the score, i.e. flips only
    assert s.estimated_n_errors <= flipped.size
    assert not s.is_suspected_mislabel[~is_flipped].any()


@pytest.mark.parametrize("seed", range(3))
def test_planted_flips_are_counted_and_flagged_from_held_out_members(seed):
    rec, true, flipped = _planted(n_folds=3, seed=seed)
    s = _scores(rec)
    is_flipped = _flipped_mask(len(true), flipped)
    assert abs(s.estimated_n_errors - flipped.size) <= 3
    assert s.is_suspected_mislabel[is_flipped].mean() >= 0.9
    assert s.is_suspected_mislabel[~is_flipped].sum() <= 2
    # held-out members never memorise: zero held-out consistency on every flip, in-sample ones do (2 of 6)
    np.testing.assert_array_equal(s.heldout_consistency[flipped], 0.0)
    np.testing.assert_allclose(s.consistency[flipped], 4 / 6)
    np.testing.assert_array_equal(s.suggested_label[flipped], true[flipped])


# ---------------------------------------------------------------- cross-fitting


def _fold_mask(m: int, n: int, n_folds: int, seed: int = 0) -> np.ndarray:
    folds = np.random.default_rng(seed).integers(0, n_folds, n)
    return np.stack([folds == member % n_folds for member in range(m)])


def test_cross_fitted_scores_use_held_out_members():
    m, e, n = 6, 5, 40
    held = _fold_mask(m, n, 3)
    rec = _random_record(11, m, e, n, held_out=held)
    s = _scores(rec)
    pred, y = rec["predicted_label"], rec["given_labels"]
    assert np.isfinite(s.heldout_consistency_curve).all()  # every example is held out by two members
    np.testing.assert_allclose(s.heldout_consistency_curve, compute_consistency(pred, y, held))
    np.testing.assert_allclose(s.heldout_consistency, s.heldout_consistency_curve[-1])
    # accessibility and the mean probability are in-sample
    np.testing.assert_allclose(s.accessibility, compute_accessibility(compute_consistency(pred, y, ~held)))
    lp = rec["label_prob"][:, 1:].astype(np.float64)
    expected = np.where(~held[:, None, :], lp, 0).sum(axis=(0, 1)) / ((~held).sum(axis=0) * (e - 1))
    np.testing.assert_allclose(s.mean_label_prob, expected, rtol=1e-6)
    # the count may come from either view
    in_sample = _scores(rec, ScoringOptions(count_from="in_sample"))
    held_view = _scores(rec, ScoringOptions(count_from="held_out"))
    assert held_view.estimated_n_errors == s.estimated_n_errors  # auto = held_out with folds
    assert in_sample.is_suspected_mislabel.sum() == in_sample.estimated_n_errors


def test_examples_never_held_out_get_nan_held_out_consistency():
    m, e, n = 2, 4, 30
    held = _fold_mask(m, n, 3)  # fold 2 is held out by nobody
    rec = _random_record(12, m, e, n, held_out=held)
    s = _scores(rec)
    nobody = ~held.any(axis=0)
    assert nobody.any() and (~nobody).any()
    assert np.isnan(s.heldout_consistency[nobody]).all()
    assert np.isfinite(s.heldout_consistency[~nobody]).all()
    assert np.isfinite(s.mislabel_score).all()


def test_held_out_count_needs_folds():
    with pytest.raises(ValueError, match="held_out"):
        _scores(_random_record(0), ScoringOptions(count_from="held_out"))


def test_example_held_out_by_every_member_does_not_poison_other_scores():
    m, e, n = 3, 4, 12
    held = np.zeros((m, n), dtype=bool)
    held[:, 0] = True
    rec = _random_record(5, m, e, n, held_out=held)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice for example 0
        s = _scores(rec)
    assert np.isfinite(s.mislabel_score[1:]).all()


# ---------------------------------------------------------------- errors


def test_rejects_records_without_a_trained_epoch():
    rec = _random_record(0, e=1)
    with pytest.raises(ValueError, match="epoch"):
        _scores(rec)


@pytest.mark.parametrize("field", ["prob_sum", "heldout_prob_sum"])
def test_rejects_bad_prob_sum_shapes(field):
    rec = _random_record(0)
    for bad in (rec[field][:-1], rec[field][:, :-1], rec[field][..., :-1]):
        with pytest.raises(ValueError, match="prob_sum"):
            _scores({**rec, field: bad})


def test_rejects_prob_sum_without_a_class_axis():
    rec = _random_record(0)
    with pytest.raises(ValueError, match="prob_sum"):
        _scores({**rec, "prob_sum": rec["prob_sum"][..., 0]})


def test_rejects_given_labels_of_the_wrong_length():
    rec = _random_record(0)
    with pytest.raises(ValueError, match="given_labels"):
        _scores({**rec, "given_labels": rec["given_labels"][:-1]})


def test_rejects_predictions_that_are_not_3d():
    rec = _random_record(0)
    with pytest.raises(ValueError):
        _scores({**rec, "predicted_label": rec["predicted_label"][0]})


def test_rejects_held_out_mask_of_the_wrong_length():
    rec = _random_record(0)
    with pytest.raises(ValueError):
        _scores({**rec, "held_out": rec["held_out"][:, :-1]})


@pytest.mark.parametrize("cut", [np.s_[:1], np.s_[:, :2], np.s_[:, :, :1]], ids=["members", "epochs", "examples"])
def test_rejects_label_prob_and_margin_of_the_wrong_shape(cut):
    rec = _random_record(0)
    with pytest.raises(ValueError):
        _scores({**rec, "label_prob": rec["label_prob"][cut], "margin": rec["margin"][cut]})


@pytest.mark.parametrize("seed", [0, 1])
def test_rejects_given_labels_out_of_range(seed):
    rec = _random_record(seed, k=3)
    given = rec["given_labels"].copy()
    given[0] = 7
    with pytest.raises(ValueError, match="label"):
        _scores({**rec, "given_labels": given})


# ---------------------------------------------------------------- the low-noise pass


@pytest.mark.parametrize("seed", range(3))
def test_the_low_noise_pass_ranks_by_the_second_pass_and_counts_the_mean_of_both(seed):
    rec, _, _ = _planted(seed=seed)
    first = _scores(rec)
    second = _scores(_planted(seed=seed + 10)[0] | {"given_labels": rec["given_labels"]})
    both = take_low_noise_pass(first, second)
    n_errors = (first.estimated_n_errors + second.estimated_n_errors) // 2
    assert both.estimated_n_errors == n_errors
    assert both.is_suspected_mislabel.sum() == n_errors
    top = np.argsort(-second.mislabel_score, kind="stable")[:n_errors]  # the second pass's worst n
    assert set(np.flatnonzero(both.is_suspected_mislabel)) == set(top)
    np.testing.assert_array_equal(both.mislabel_score, second.mislabel_score)
    np.testing.assert_array_equal(both.suggested_label, second.suggested_label)
    for kept in ("split", "accessibility", "consistency", "consistency_curve"):  # the first pass's
        np.testing.assert_array_equal(getattr(both, kept), getattr(first, kept))
    flagged = both.is_suspected_mislabel
    assert both.estimated_precision == pytest.approx(float((1 - second.accessibility[flagged]).mean()))


def test_the_low_noise_pass_refuses_passes_of_other_sizes():
    first = _scores(_random_record(0, n=30))
    with pytest.raises(ValueError, match=r"passes of \(30,\) and \(31,\) examples"):
        take_low_noise_pass(first, _scores(_random_record(1, n=31)))
