"""AdaBoost baseline: stage records, early-stop padding, and agreement with another family."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from models.adaboost import AdaBoostBaseline, boosting_features
from models.predictions import EpochRecord, PredictionRecord
from models.stumps import MAX_BINS, bin_features
from scoring.agreement import (
    check_curves_ordered,
    compute_boosting_accessibility,
    compute_difficulty_correlation,
    compute_family_agreement,
    compute_stage_accuracy_by_group,
)
from tests.conftest import imported_by


def _toy(n_per_class: int = 20, n_classes: int = 3, random_state: int = 0):
    """Overlapping Gaussian blobs: boosting runs every round without stopping."""
    rng = np.random.default_rng(random_state)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(size=(y.size, 4)) + y[:, None] * 0.8
    return X, y


# ---------------------------------------------------------------- early stopping and padding


@pytest.mark.parametrize("n_classes, max_depth", [(2, 1), (3, 3)])
def test_early_stop_is_padded_with_last_stage(n_classes, max_depth):
    # Perfectly separable on one feature: the first tree has zero training error, and
    # scikit-learn 1.9 stops boosting right after it (one stage yielded).
    X = np.arange(2.0 * n_classes)[:, None]
    y = np.repeat(np.arange(n_classes), 2)
    model = AdaBoostBaseline(n_rounds=10, max_depth=max_depth, random_state=0).fit(X, y)
    assert model.n_stages_fitted_ < 10
    fitted = model.stumps_ if max_depth == 1 else model.classifier_.estimators_
    assert model.n_stages_fitted_ == len(fitted) == len(model.stage_weights_) == 1
    assert model.stage_weights_[0] == 1.0  # a perfect learner votes with weight 1, as in sklearn
    assert model.predicted_label_.shape == (10, y.size)
    assert model.stage_proba_.shape == (10, y.size, n_classes)
    last = model.n_stages_fitted_ - 1
    for t in range(model.n_stages_fitted_, 10):
        np.testing.assert_array_equal(model.predicted_label_[t], model.predicted_label_[last])
        np.testing.assert_array_equal(model.stage_proba_[t], model.stage_proba_[last])
        np.testing.assert_array_equal(model.margin_[t], model.margin_[last])
    np.testing.assert_array_equal(model.predicted_label_[-1], y)  # the one stage is perfect
    assert (model.margin_ > 0).all()


def test_full_run_is_not_padded():
    X, y = _toy()
    model = AdaBoostBaseline(n_rounds=15, max_depth=1, random_state=0).fit(X, y)
    assert model.n_stages_fitted_ == 15
    assert model.predicted_label_.shape == (15, y.size)
    # Stages differ: boosting is still changing its predictions.
    assert not np.array_equal(model.stage_proba_[0], model.stage_proba_[-1])


# ---------------------------------------------------------------- fitted arrays and records


def test_fitted_arrays_dtypes_and_consistency():
    X, y = _toy()
    model = AdaBoostBaseline(n_rounds=8, max_depth=1, random_state=0).fit(X, y)
    assert model.predicted_label_.dtype == np.int16
    assert model.label_prob_.dtype == np.float32
    assert model.margin_.dtype == np.float32
    idx = np.arange(y.size)
    np.testing.assert_allclose(model.label_prob_, model.stage_proba_[:, idx, y], rtol=1e-6)
    # Margin computed independently: log p_y minus the largest other log prob.
    logp = np.log(np.clip(model.stage_proba_.astype(np.float64), 1e-7, 1.0))
    other = np.where(np.arange(3)[None, None, :] == y[None, :, None], -np.inf, logp).max(axis=2)
    np.testing.assert_allclose(model.margin_, logp[:, idx, y] - other, rtol=1e-5, atol=1e-6)
    # staged_predict agrees with the argmax of staged_predict_proba.
    np.testing.assert_array_equal(model.predicted_label_, model.stage_proba_.argmax(axis=2))
    # A positive margin means the stage predicts the given label.
    pos = model.margin_ > 1e-6
    assert (model.predicted_label_[pos] == np.broadcast_to(y, pos.shape)[pos]).all()


def test_stage_records_are_valid_epoch_records():
    X, y = _toy()
    T = 6
    model = AdaBoostBaseline(n_rounds=T, max_depth=1, random_state=0).fit(X, y)
    records = model.stage_records(y, member=3, group=2)
    assert [r.epoch for r in records] == list(range(T + 1))
    n = y.size
    for r in records:
        assert isinstance(r, EpochRecord)
        assert r.group == 2 and r.members == (3,)
        assert r.predicted_label.shape == (1, n) and r.predicted_label.dtype == np.int16
        assert r.label_prob.shape == (1, n) and r.label_prob.dtype == np.float32
        assert r.margin.shape == (1, n) and r.margin.dtype == np.float32
        assert r.held_out.shape == (1, n) and r.held_out.dtype == np.bool_ and not r.held_out.any()
        assert r.prob_sum.shape == (n, 3) and r.prob_sum.dtype == np.float32
        np.testing.assert_allclose(r.prob_sum.sum(axis=1), 1.0, rtol=1e-5)
        assert r.heldout_prob_sum.shape == (n, 3) and not r.heldout_prob_sum.any()
        assert np.isnan(r.train_loss) and r.seconds == 0.0
        np.testing.assert_allclose(r.label_prob[0], r.prob_sum[np.arange(n), y], rtol=1e-6)
    # Epoch 0: majority class (tie -> smallest index), uniform probabilities, zero margin.
    first = records[0]
    assert (first.predicted_label == 0).all()
    np.testing.assert_allclose(first.prob_sum, 1 / 3)
    np.testing.assert_allclose(first.label_prob, 1 / 3)
    np.testing.assert_allclose(first.margin, 0.0, atol=1e-7)
    # Epoch t is stage t.
    np.testing.assert_array_equal(records[T].predicted_label[0], model.predicted_label_[T - 1])
    # Stacks like ensemble epochs: two boosting "members" in two groups.
    both = model.stage_records(y, member=0, group=0) + model.stage_records(y, member=1, group=1)
    stacked = PredictionRecord.from_epochs(both, n_members=2)
    assert stacked.predicted_label.shape == (2, T + 1, n)
    np.testing.assert_allclose(stacked.prob_sum.sum(axis=2), 2.0, rtol=1e-5)
    # record_ is the same dynamics for a one-member run.
    assert model.record_.predicted_label.shape == (1, T + 1, n)
    np.testing.assert_array_equal(model.record_.predicted_label[0, 1:], model.predicted_label_)


def test_epoch_zero_predicts_majority_class():
    X, y = _toy()
    y = y.copy()
    y[:3] = 2  # class 2 now the majority
    model = AdaBoostBaseline(n_rounds=3, random_state=0).fit(X, y)
    assert (model.stage_records(y)[0].predicted_label == 2).all()


def test_missing_class_keeps_label_indexed_columns():
    X, y = _toy(n_classes=3)
    y = np.where(y == 1, 2, y)  # labels {0, 2}; class 1 absent
    model = AdaBoostBaseline(n_rounds=5, random_state=0).fit(X, y)
    assert model.stage_proba_.shape[2] == 3
    assert not model.stage_proba_[:, :, 1].any()
    assert set(np.unique(model.predicted_label_)) <= {0, 2}
    assert np.isfinite(model.margin_).all()


def test_images_are_flattened():
    X, y = _toy(n_per_class=10)
    images = X.reshape(-1, 2, 2)
    flat = AdaBoostBaseline(n_rounds=5, random_state=0).fit(X, y)
    img = AdaBoostBaseline(n_rounds=5, random_state=0).fit(images, y)
    np.testing.assert_array_equal(flat.predicted_label_, img.predicted_label_)


def test_boosting_features_pool_images_to_at_most_8x8_per_channel():
    rng = np.random.default_rng(0)
    cifar = rng.integers(0, 256, (4, 3, 32, 32)).astype(np.uint8)
    pooled = boosting_features(cifar)
    assert pooled.shape == (4, 3 * 8 * 8) and pooled.dtype == np.float32
    # feature (c, i, j) is the mean of the 4 x 4 block at rows 4i.., columns 4j.. of channel c
    assert pooled[2, 1 * 64 + 3 * 8 + 5] == pytest.approx(cifar[2, 1, 12:16, 20:24].mean(), rel=1e-6)
    odd = rng.integers(0, 256, (2, 1, 30, 17)).astype(np.uint8)  # blocks of 4 x 3: 7 x 5, remainder cropped
    assert boosting_features(odd).shape == (2, 7 * 5)
    assert boosting_features(odd)[1, 6 * 5 + 4] == pytest.approx(odd[1, 0, 24:28, 12:15].mean(), rel=1e-6)
    digits = rng.integers(0, 17, (3, 1, 8, 8)).astype(np.uint8)  # already small: only flattened
    np.testing.assert_array_equal(boosting_features(digits), digits.reshape(3, 64).astype(np.float32))
    table = rng.normal(size=(5, 7))
    np.testing.assert_array_equal(boosting_features(table), table.astype(np.float32))


def test_input_validation():
    X, y = _toy()
    with pytest.raises(ValueError, match=r"\(59,\)"):
        AdaBoostBaseline(n_rounds=3).fit(X, y[:-1])
    with pytest.raises(ValueError, match="two classes"):
        AdaBoostBaseline(n_rounds=3).fit(X, np.zeros_like(y))
    with pytest.raises(ValueError, match="n_rounds"):
        AdaBoostBaseline(n_rounds=0).fit(X, y)
    with pytest.raises(ValueError, match="not fitted"):
        AdaBoostBaseline().stage_records(y)
    with pytest.raises(ValueError, match="learning_rate"):
        AdaBoostBaseline(learning_rate=0.0).fit(X, y)
    with pytest.raises(ValueError, match="finite"):
        AdaBoostBaseline(n_rounds=3).fit(np.where(X > 1, np.nan, X), y)
    model = AdaBoostBaseline(n_rounds=3).fit(X, y)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        model.stage_records(y[:5])
    with pytest.raises(ValueError, match="3 features, expected 4"):
        model.predict(X[:, :3])


# ---------------------------------------------------------------- histogram stumps vs scikit-learn


def _sklearn_stumps(X, y, n_rounds, learning_rate=1.0):
    """scikit-learn's SAMME on exact stumps, the engine our histogram stumps replace."""
    return AdaBoostClassifier(
        estimator=DecisionTreeClassifier(max_depth=1), n_estimators=n_rounds,
        learning_rate=learning_rate, random_state=0,
    ).fit(X, y)


def _integer_blobs(n_classes, n=600, n_features=6, random_state=0):
    """Integer features (under 20 distinct values each) shifted by class: exact-split territory."""
    rng = np.random.default_rng(random_state)
    y = rng.integers(0, n_classes, n)
    X = rng.integers(0, 12, (n, n_features)) + y[:, None] * rng.integers(0, 3, n_features)
    return X, y


def _few_valued(name):
    if name == "digits":
        return load_digits(return_X_y=True)
    X, y = _integer_blobs(n_classes=2 if name == "two classes" else 3)
    if name == "class 1 missing":
        y = np.where(y == 1, 2, y)
    if name == "constant features":
        X = np.column_stack([np.full(len(y), 7), X[:, :3], np.zeros(len(y)), X[:, 3:]])
    return X, y


@pytest.mark.parametrize(
    "name, n_rounds, learning_rate",
    [("digits", 60, 0.5), ("three classes", 40, 1.0), ("two classes", 40, 1.0),
     ("class 1 missing", 30, 1.0), ("constant features", 30, 1.0)],
)
def test_stumps_match_sklearn_where_splits_are_exact(name, n_rounds, learning_rate):
    # At most 256 distinct values per feature: the histogram sees every split the exact tree
    # sees, so stages match sklearn's up to ties between equally good splits (none here: on
    # digits the largest probability gap is 4e-9, the float32 rounding of stage_proba_).
    X, y = _few_valued(name)
    model = AdaBoostBaseline(n_rounds=n_rounds, learning_rate=learning_rate).fit(X, y)
    clf = _sklearn_stumps(X, y, n_rounds, learning_rate)
    n_stages = len(clf.estimators_)
    assert model.n_stages_fitted_ == n_stages
    np.testing.assert_allclose(model.stage_weights_, clf.estimator_weights_[:n_stages], rtol=1e-9)
    labels = np.stack(list(clf.staged_predict(X)))
    assert (model.predicted_label_[:n_stages] == labels).mean() >= 0.99
    proba = np.stack(list(clf.staged_predict_proba(X)))  # columns: clf.classes_
    np.testing.assert_allclose(model.stage_proba_[:n_stages][:, :, clf.classes_], proba, atol=1e-6)
    if name == "constant features":
        assert not {f for f, *_ in model.stumps_} & {0, 4}


def test_stumps_on_continuous_features_train_as_well_as_sklearn():
    # Thousands of distinct values per feature: quantile bins, so a stump may cut elsewhere than
    # the exact tree, but boosting should fit the training set as well.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    X = rng.normal(size=(3000, 8)) + 0.3 * y[:, None]
    model = AdaBoostBaseline(n_rounds=40).fit(X, y)
    clf = _sklearn_stumps(X, y, 40)
    assert model.n_stages_fitted_ == len(clf.estimators_) == 40
    ours, theirs = (model.predicted_label_[-1] == y).mean(), (clf.predict(X) == y).mean()
    assert abs(ours - theirs) <= 0.02
    np.testing.assert_array_equal(model.predict(X), model.predicted_label_[-1])


def test_bins_split_where_thresholds_say():
    rng = np.random.default_rng(0)
    n = 3000
    X = np.column_stack([
        rng.normal(size=n),  # continuous: quantile bins
        rng.integers(0, 5, n),  # few values: every midpoint
        np.full(n, 3.0),  # constant: no threshold
        np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n)),  # half tied at 0
        np.minimum(rng.normal(size=n), 0.5),  # a third tied at the top value
    ]).astype(np.float32)
    bins, thresholds = bin_features(X)
    assert bins.shape == (5, n) and bins.dtype == np.uint8
    cuts = [row[np.isfinite(row)] for row in thresholds]  # +inf pads the rows
    for f in range(X.shape[1]):
        assert (np.diff(cuts[f]) > 0).all() and cuts[f].size < MAX_BINS
        np.testing.assert_array_equal(bins[f], np.searchsorted(cuts[f], X[:, f], side="left"))
        assert (np.bincount(bins[f]) > 0).all()  # no empty bin, so every cut is a real split
    assert cuts[0].size == MAX_BINS - 1
    assert np.bincount(bins[0]).max() < 2 * n / MAX_BINS  # quantiles: bins of about n / 256
    np.testing.assert_array_equal(cuts[1], [0.5, 1.5, 2.5, 3.5])
    assert cuts[2].size == 0
    assert 0 <= np.bincount(bins[3]).max() - (X[:, 3] == 0).sum() < 2 * n / MAX_BINS  # 0s in one bin
    assert cuts[4].size < MAX_BINS - 60 and cuts[4].max() < 0.5  # none at or above the top value


@pytest.mark.parametrize("max_depth", [1, 3])
def test_worse_than_chance_stops_boosting(max_depth):
    # Constant feature: round 1 predicts class 0 (err 1/4); reweighting then gives both classes
    # the same weight, so no learner beats chance (err 1/2): the second is dropped and boosting
    # stops after one stage, as in sklearn.
    X, y = np.zeros((4, 1)), np.array([0, 0, 0, 1])
    model = AdaBoostBaseline(n_rounds=5, max_depth=max_depth, random_state=0).fit(X, y)
    assert model.n_stages_fitted_ == len(_sklearn_stumps(X, y, 5).estimators_) == 1
    np.testing.assert_array_equal(model.predicted_label_, np.zeros((5, 4)))
    np.testing.assert_array_equal(model.stage_proba_[1:], model.stage_proba_[:-1])
    if max_depth == 1:
        assert model.stumps_ == [(-1, np.inf, 0, 0)]
    # Balanced classes: the very first learner is no better than chance.
    with pytest.raises(ValueError, match="worse than random"):
        AdaBoostBaseline(n_rounds=5, max_depth=max_depth, random_state=0).fit(X, [0, 0, 1, 1])


# ---------------------------------------------------------------- end to end on digits


def _sgd_accessibility(X, y, n_seeds=3, n_epochs=5):
    """A second model family's accessibility: linear SGD members, correctness per epoch.

    Stand-in for network dynamics without torch: N members (seeds) x epochs of partial_fit,
    in-sample correctness averaged over both, as in Hacohen et al.'s accessibility.
    """
    Xs = StandardScaler().fit_transform(X)
    correct = np.zeros((n_seeds, n_epochs, y.size))
    for seed in range(n_seeds):
        clf = SGDClassifier(
            loss="log_loss", alpha=1e-3, learning_rate="constant", eta0=1e-3, random_state=seed
        )
        for epoch in range(n_epochs):
            clf.partial_fit(Xs, y, classes=np.arange(10))
            correct[seed, epoch] = clf.predict(Xs) == y
    return correct.mean(axis=(0, 1))


def test_digits_stumps_learning_curve():
    # The protocol's depth-1 stumps: weak on 10 classes, but they climb well above chance.
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    model = AdaBoostBaseline(n_rounds=200, max_depth=1, learning_rate=0.5, random_state=0)
    model.fit(Xtr, ytr)
    curve = (model.predicted_label_ == ytr).mean(axis=1)
    assert curve[0] < 0.3 and curve[-1] > 0.8
    assert (model.predict(Xte) == yte).mean() > 0.75  # chance = 0.1


def test_digits_boosting_agrees_with_linear_family():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    params = dict(n_rounds=50, max_depth=3, learning_rate=0.5, random_state=0)
    held = AdaBoostBaseline(**params).fit(Xtr, ytr)
    assert (held.predict(Xte) == yte).mean() > 0.9

    model = AdaBoostBaseline(**params).fit(X, y)
    boost = compute_boosting_accessibility(model.predicted_label_, y)
    linear = _sgd_accessibility(X, y)
    corr = compute_difficulty_correlation(linear, boost)
    assert corr.spearman_r > 0.25 and corr.spearman_p < 1e-10
    assert corr.pearson_r > 0.25
    # Control: shuffling one family's scores destroys the agreement.
    shuffled = np.random.default_rng(0).permutation(linear)
    assert abs(compute_difficulty_correlation(shuffled, boost).spearman_r) < 0.1
    # Groups cut by the linear family stay ordered along the boosting stages.
    split = np.where(linear >= 0.9, "easy", np.where(linear < 0.5, "hard", "intermediate"))
    curves = compute_stage_accuracy_by_group(model.predicted_label_, y, split)
    assert check_curves_ordered(curves) >= 0.8
    assert (curves["easy"] >= curves["hard"]).mean() >= 0.9


def test_digits_flipped_labels_are_hard_for_both_families():
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 20, replace=False)
    y[flipped] = (y[flipped] + 1) % 10
    model = AdaBoostBaseline(n_rounds=50, max_depth=3, learning_rate=0.5, random_state=0).fit(X, y)
    boost = compute_boosting_accessibility(model.predicted_label_, y)
    family = compute_family_agreement(_sgd_accessibility(X, y), boost)
    clean = np.setdiff1d(np.arange(len(y)), flipped)
    assert (family[flipped] == "both_hard").mean() > 0.8
    assert (family[clean] == "both_hard").mean() < 0.1


def test_the_stumps_path_runs_without_importing_scikit_learn() -> None:
    """Every job's AdaBoost worker fits stumps; importing scikit-learn there cost 1.5-2 s of CPU a
    job for a 0.06 s fit. Only max_depth > 1 (scikit-learn's trees) may import it."""
    setup = ("import numpy as np\n"
             "from models.adaboost import AdaBoostBaseline\n"
             "X = np.random.default_rng(0).normal(size=(60, 4)); y = np.arange(60) % 3\n")
    assert imported_by(setup + "AdaBoostBaseline(n_rounds=5).fit(X, y)", ("sklearn",)) == [False]
    assert imported_by(setup + "AdaBoostBaseline(n_rounds=5, max_depth=2).fit(X, y)", ("sklearn",)) == [True]
