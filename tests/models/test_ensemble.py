"""Vectorised ensemble training on CPU: group independence, determinism, records, cross-fitting,
the CNN path, checkpoint/resume, and that it learns and finds planted label noise (digits)."""

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score

from models.checkpoints import checkpoint_epochs, prune_checkpoints
from models.ensemble import (
    Ensemble,
    _epoch_augment,
    _epoch_mixup,
    _forward,
    _loss_fn,
    _prepare,
    assign_folds,
    augment_pad,
    normalised_inputs,
    quantile_normal,
    resolve_model,
    shift_flip,
    small_loss_share,
    train_group,
)
from models.nets import build_ensemble
from models.predictions import PredictionRecord
from models.spec import TrainSpec
from scoring.scores import compute_example_scores

N_CLASSES = 10
RECORD_FIELDS = ("predicted_label", "label_prob", "margin", "held_out", "prob_sum", "heldout_prob_sum")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The nets are tiny: one intra-op thread is as fast, and on a busy machine two threads spin-wait
    on each other (we measured 10x slowdowns under load). Restored afterwards for other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X, y.astype(np.int64)


@pytest.fixture(scope="module")
def small(digits) -> tuple[np.ndarray, np.ndarray]:
    X, y = digits
    return X[:300], y[:300]


def _spec(**params) -> TrainSpec:
    # two hidden layers: the mechanisms these tests check were sized on them (the default is 3)
    defaults = dict(device="cpu", hidden_units=32, n_hidden_layers=2, batch_size=64, n_epochs=2, n_members=2,
                    random_state=0)
    return TrainSpec(**{**defaults, **params})


def _images(X: np.ndarray) -> np.ndarray:
    """Digits as 1x8x8 uint8 images (pixel values 0..16 scaled by 16, 256 clipped to 255)."""
    return (X.reshape(-1, 1, 8, 8) * 16).clip(0, 255).astype(np.uint8)


def _assert_records_equal(a, b) -> None:
    for name in ("epoch", "members", "group"):
        assert getattr(a, name) == getattr(b, name)
    for name in RECORD_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)


def _check_margins(pred: np.ndarray, margin: np.ndarray, label_prob: np.ndarray, y: np.ndarray) -> None:
    """margin > 0 iff the given label is predicted (margin 0 = tie, either way); p > 1/2 means predicted."""
    right = pred == y
    assert (right[margin > 0]).all()
    assert (~right[margin < 0]).all()
    assert (margin[right] >= 0).all()
    assert right[label_prob > 0.5].all()
    assert (label_prob[right] >= 1.0 / N_CLASSES - 1e-6).all()


# ---------------------------------------------------------------- (a) group independence


def test_member_results_do_not_depend_on_its_group(small):
    X, y = small
    spec = _spec(n_members=4, dropout="none")
    together = list(train_group(X, y, N_CLASSES, spec, [0, 1, 2, 3]))
    alone = list(train_group(X, y, N_CLASSES, spec, [2]))
    assert [r.epoch for r in together] == [r.epoch for r in alone] == [0, 1, 2]
    for a, b in zip(together, alone):
        assert a.members == (0, 1, 2, 3) and b.members == (2,)
        np.testing.assert_allclose(a.label_prob[2], b.label_prob[0], atol=1e-4)
        np.testing.assert_allclose(a.margin[2], b.margin[0], atol=1e-3)
        clear = np.abs(b.margin[0]) > 1e-3  # away from ties the argmax must agree
        np.testing.assert_array_equal(a.predicted_label[2][clear], b.predicted_label[0][clear])
    # the group's train_loss is the per-member mean loss averaged over members: same scale as alone
    for a, b in zip(together[1:], alone[1:]):
        assert abs(a.train_loss - b.train_loss) < 0.3 * b.train_loss, (a.train_loss, b.train_loss)
    # not vacuous: the members of the group differ from each other
    assert np.abs(together[-1].label_prob[1] - together[-1].label_prob[2]).max() > 1e-2


def test_member_results_do_not_depend_on_its_group_with_cross_fitting(digits):
    X, y = digits
    X, y = X[:301], y[:301]  # folds of 101, 100, 100: member 0 trains on 200 examples, member 1 on 201
    spec = _spec(n_members=3, n_folds=3, n_epochs=1, batch_size=100, dropout="none")
    assert np.bincount(assign_folds(y, 3, spec.random_state)).tolist() == [101, 100, 100]
    together = list(train_group(X, y, N_CLASSES, spec, [0, 1]))
    alone = list(train_group(X, y, N_CLASSES, spec, [0]))
    np.testing.assert_allclose(together[-1].label_prob[0], alone[-1].label_prob[0], atol=1e-4)


def test_grouping_members_does_not_change_the_ensemble_record(small):
    X, y = small
    one_group = Ensemble(_spec(n_members=3, dropout="none")).fit(X, y, N_CLASSES)
    split = Ensemble(_spec(n_members=3, dropout="none", members_per_group=2)).fit(X, y, N_CLASSES)
    assert sorted({r.group for r in split.records_}) == [0, 1]
    for name in ("label_prob", "margin", "prob_sum"):
        np.testing.assert_allclose(getattr(split.record_, name), getattr(one_group.record_, name), atol=1e-4)


# ---------------------------------------------------------------- (b) determinism


def test_same_spec_gives_identical_records(small):
    X, y = small
    spec = _spec(dropout="jumpout")
    a = Ensemble(spec).fit(X, y, N_CLASSES)
    b = Ensemble(spec).fit(X, y, N_CLASSES)
    assert len(a.records_) == len(b.records_) == spec.n_epochs + 1
    for ra, rb in zip(a.records_, b.records_):
        _assert_records_equal(ra, rb)
    for name in RECORD_FIELDS:
        np.testing.assert_array_equal(getattr(a.record_, name), getattr(b.record_, name))


def test_random_state_and_dropout_change_the_run(small):
    X, y = small
    base = Ensemble(_spec(dropout="jumpout", random_state=0)).fit(X, y, N_CLASSES).record_
    other_seed = Ensemble(_spec(dropout="jumpout", random_state=1)).fit(X, y, N_CLASSES).record_
    no_dropout = Ensemble(_spec(dropout="none", random_state=0)).fit(X, y, N_CLASSES).record_
    assert np.abs(base.label_prob[:, 0] - other_seed.label_prob[:, 0]).max() > 1e-3  # other init
    assert np.abs(base.label_prob[:, -1] - other_seed.label_prob[:, -1]).max() > 1e-3
    # the init comes from the member seeds alone; Jumpout only changes the trained epochs
    np.testing.assert_array_equal(base.label_prob[:, 0], no_dropout.label_prob[:, 0])
    assert np.abs(base.label_prob[:, -1] - no_dropout.label_prob[:, -1]).max() > 1e-3


def test_label_smoothing_keeps_the_networks_short_of_certainty(small):
    """With label smoothing s the loss is least at a softmax of 1 - s + s/K on the label, so a
    network trained long enough stops there instead of near 1; s = 0 is the plain cross-entropy."""
    X, y = small
    spec = dict(dropout="none", n_epochs=30, hidden_units=64, batch_size=32)
    plain = Ensemble(_spec(**spec, label_smoothing=0.0)).fit(X, y, N_CLASSES).record_
    smooth = Ensemble(_spec(**spec, label_smoothing=0.5)).fit(X, y, N_CLASSES).record_
    np.testing.assert_array_equal(plain.label_prob[:, 0], smooth.label_prob[:, 0])  # the same init
    p_plain, p_smooth = np.median(plain.label_prob[:, -1]), np.median(smooth.label_prob[:, -1])
    assert p_plain > 0.95  # learned: the training labels are fitted
    assert 0.4 < p_smooth < 0.65  # the optimum is 1 - 0.5 + 0.05 = 0.55
    assert (smooth.predicted_label[:, -1] == y).mean() > 0.9  # still learned, only less certain
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainSpec(label_smoothing=1.0)


def test_gce_spans_cross_entropy_and_mean_absolute_error_and_weighs_gradients_by_p_to_the_q():
    """GCE (1 - p^q) / q tends to the cross-entropy as q -> 0 (label smoothing included), is 1 - p_y
    at q = 1 without smoothing, and its gradient is the cross-entropy's scaled by p_y^q."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 5, (64,), generator=gen)
    ce = _loss_fn(0.3, 0.0)(logits, y)
    torch.testing.assert_close(_loss_fn(0.3, 1e-5)(logits, y), ce, atol=1e-3, rtol=1e-3)
    p_y = torch.softmax(logits, dim=-1).gather(1, y.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(_loss_fn(0.0, 1.0)(logits, y), 1.0 - p_y)
    z1, z2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    _loss_fn(0.0, 0.7)(z1, y).sum().backward()
    _loss_fn(0.0, 0.0)(z2, y).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad * p_y.pow(0.7).view(-1, 1))
    assert ce.min() > 0
    with pytest.raises(ValueError, match="gce_q"):
        TrainSpec(gce_q=1.5)


@pytest.mark.parametrize("brake, off", [({"gce_q": 0.7}, {"gce_q": 0.0}),
                                         ({"small_loss_forget": 0.2}, {"small_loss_forget": 0.0})],
                         ids=["gce", "small_loss"])
def test_a_brake_on_wrong_labels_is_seeded_off_at_zero_and_fits_fewer_flips(small, brake, off):
    """On 20 % flipped labels, trained long with no other brake, the cross-entropy fits most flips.
    GCE (whose gradient shrinks on the examples the network doubts) and the small-loss trick (each
    member leaves its batch's largest losses out) fit fewer, and still learn the right labels."""
    X, y = small
    rng = np.random.default_rng(0)
    flipped = rng.random(len(y)) < 0.2
    noisy = np.where(flipped, (y + rng.integers(1, N_CLASSES, len(y))) % N_CLASSES, y)
    spec = dict(dropout="none", n_epochs=40, hidden_units=64, batch_size=32, label_smoothing=0.0)
    plain = Ensemble(_spec(**spec)).fit(X, noisy, N_CLASSES).record_
    at_zero = Ensemble(_spec(**spec, **off)).fit(X, noisy, N_CLASSES).record_
    braked = Ensemble(_spec(**spec, **brake)).fit(X, noisy, N_CLASSES).record_
    again = Ensemble(_spec(**spec, **brake)).fit(X, noisy, N_CLASSES).record_
    for name in RECORD_FIELDS:
        np.testing.assert_array_equal(getattr(at_zero, name), getattr(plain, name))
        np.testing.assert_array_equal(getattr(braked, name), getattr(again, name))
    np.testing.assert_array_equal(braked.label_prob[:, 0], plain.label_prob[:, 0])  # the same init
    fits = {name: (r.predicted_label[:, -1] == noisy)[:, flipped].mean() for name, r in (("ce", plain), ("braked", braked))}
    assert fits["braked"] < fits["ce"] - 0.2, fits
    assert (braked.predicted_label[:, -1] == noisy)[:, ~flipped].mean() > 0.9  # the right labels are learned


def test_the_small_loss_share_ramps_up_over_the_first_quarter_of_the_epochs():
    shares = [small_loss_share(0.2, epoch, 20) for epoch in range(1, 21)]
    assert shares[0] == pytest.approx(0.04) and shares[4] == pytest.approx(0.2)  # 20 epochs: ramp of 5
    assert all(a < b for a, b in zip(shares[:5], shares[1:5]))
    assert set(shares[4:]) == {0.2}
    assert small_loss_share(0.3, 1, 2) == 0.3  # under 4 epochs: the full share from the first
    assert small_loss_share(0.0, 7, 20) == 0.0
    with pytest.raises(ValueError, match="small_loss_forget"):
        TrainSpec(small_loss_forget=0.6)


def test_quantile_inputs_map_each_feature_by_rank_onto_a_normal():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.lognormal(0, 2, 500), rng.integers(0, 3, 500), np.full(500, 7.0)]).astype(np.float32)
    Q = quantile_normal(X)
    assert Q.dtype == np.float32 and Q.shape == X.shape
    np.testing.assert_array_equal(np.argsort(Q[:, 0], kind="stable"), np.argsort(X[:, 0], kind="stable"))
    assert abs(float(Q[:, 0].mean())) < 1e-6 and 0.9 < float(Q[:, 0].std()) < 1.05  # skew gone
    assert abs(float(np.median(X[:, 0]) - X[:, 0].mean())) > 1.0  # it was skewed
    for v in (0, 1, 2):  # ties share one value, in the order of the values
        assert len(set(Q[X[:, 1] == v, 1])) == 1
    assert Q[X[:, 1] == 0, 1][0] < Q[X[:, 1] == 1, 1][0] < Q[X[:, 1] == 2, 1][0]
    assert set(Q[:, 2]) == {0.0}  # a constant feature sits at the middle
    seen = _prepare(X, np.zeros(500, dtype=np.int64), "mlp", torch.device("cpu"), "quantile").X.numpy()
    assert np.abs(seen).max() < 4 and np.abs(_prepare(X, np.zeros(500), "mlp", torch.device("cpu")).X.numpy()).max() > 8
    ids = np.array([3, 0, 499])  # what an attribution sees is what the networks trained on
    torch.testing.assert_close(normalised_inputs(X, "mlp", ids, "quantile"), torch.as_tensor(seen[ids]))
    with pytest.raises(ValueError, match="table_inputs"):
        TrainSpec(table_inputs="minmax")


def test_an_mlp_on_images_trains_two_hidden_layers_where_the_same_numbers_as_a_table_get_three(digits, tmp_path):
    """Digits are 28 examples a feature: as a table the MLP is three layers deep, as 8x8 images fed
    to the MLP (raw pixels) two; read from the network each trained (its checkpoint)."""
    from models.checkpoints import checkpoint_path

    X, y = digits
    for name, data, model, layers in (("table", X, "auto", 3), ("pixels", _images(X), "mlp", 2)):
        spec = _spec(n_hidden_layers=None, n_epochs=1, model=model)
        list(train_group(data, y, N_CLASSES, spec, [0], checkpoint_dir=tmp_path / name))
        state = torch.load(checkpoint_path(tmp_path / name, 1), weights_only=False)["net"]
        assert len({k.split(".")[1] for k in state if k.startswith("hidden.")}) == layers, name


def test_mixup_draws_are_in_batch_partners_and_belong_to_the_member():
    partners, lam = _epoch_mixup([0, 1], 7, 3, 5, 16, alpha=0.4)
    assert partners.shape == lam.shape == (5, 2, 16)
    for step in range(5):  # each member's partners are a shuffle of its own batch positions
        for m in range(2):
            assert sorted(partners[step, m]) == list(range(16))
    assert (lam >= 0).all() and (lam <= 1).all() and lam.std() > 0.1  # Beta(0.4, 0.4): mostly near 0 or 1
    alone_p, alone_l = _epoch_mixup([1], 7, 3, 5, 16, alpha=0.4)
    np.testing.assert_array_equal(partners[:, 1], alone_p[:, 0])
    np.testing.assert_array_equal(lam[:, 1], alone_l[:, 0])
    assert not np.array_equal(_epoch_mixup([1], 7, 4, 5, 16, alpha=0.4)[1][:, 0], alone_l[:, 0])  # per epoch


def test_mixup_mixes_the_inputs_of_a_members_batch(small):
    X, y = small
    data = _prepare(X, y, "mlp", torch.device("cpu"))
    idx = torch.tensor([[0, 1, 2], [3, 4, 5]])
    partner = torch.tensor([[1, 2, 0], [0, 1, 2]])
    lam = torch.tensor([[1.0, 0.25, 0.5], [0.0, 1.0, 1.0]])
    seen = []
    _forward(lambda x: seen.append(x) or x[..., :N_CLASSES], data, idx, mix=(partner, lam))  # type: ignore[arg-type]
    x, rows = seen[0], data.batch(idx)
    torch.testing.assert_close(x[0, 0], rows[0, 0])
    torch.testing.assert_close(x[0, 1], 0.25 * rows[0, 1] + 0.75 * rows[0, 2])
    torch.testing.assert_close(x[0, 2], 0.5 * rows[0, 2] + 0.5 * rows[0, 0])
    torch.testing.assert_close(x[1, 0], rows[1, 0])  # lam 0 on partner 0: itself


@pytest.mark.parametrize("knob, value", [("mixup_alpha", 0.4), ("input_noise", 1.0)])
def test_a_training_input_augmentation_is_seeded_exact_at_zero_and_fits_less_tightly(small, knob, value):
    """Mixup and Gaussian input noise: the same seed draws the same augmentation, 0 trains exactly as
    without it, and the members learn the (clean, recorded) examples but fit them less tightly."""
    X, y = small
    spec = dict(dropout="none", n_epochs=8)
    plain = Ensemble(_spec(**spec)).fit(X, y, N_CLASSES).record_
    off = Ensemble(_spec(**spec, **{knob: 0.0})).fit(X, y, N_CLASSES).record_
    varied = Ensemble(_spec(**spec, **{knob: value})).fit(X, y, N_CLASSES).record_
    again = Ensemble(_spec(**spec, **{knob: value})).fit(X, y, N_CLASSES).record_
    for name in RECORD_FIELDS:
        np.testing.assert_array_equal(getattr(off, name), getattr(plain, name))
        np.testing.assert_array_equal(getattr(varied, name), getattr(again, name))
    np.testing.assert_array_equal(varied.label_prob[:, 0], plain.label_prob[:, 0])  # the same init
    assert varied.label_prob[:, -1].mean() < plain.label_prob[:, -1].mean() - 0.005
    fit_varied, fit_plain = (varied.predicted_label[:, -1] == y).mean(), (plain.predicted_label[:, -1] == y).mean()
    assert 0.6 < fit_varied <= fit_plain
    with pytest.raises(ValueError, match=knob):
        TrainSpec(**{knob: -1.0})


def test_mixup_trains_the_cnn_on_mixed_images(small):
    X, y = small
    images = _images(X)
    plain = list(train_group(images, y, N_CLASSES, _spec(model="cnn", cnn_width=8), [0, 1]))
    mixed = list(train_group(images, y, N_CLASSES, _spec(model="cnn", cnn_width=8, mixup_alpha=0.4), [0, 1]))
    _assert_records_equal(mixed[0], plain[0])  # epoch 0 is before any training step
    assert np.isfinite(mixed[-1].label_prob).all() and np.isfinite(mixed[-1].train_loss)
    assert not np.array_equal(mixed[-1].label_prob, plain[-1].label_prob)


# ---------------------------------------------------------------- (c) records


def test_every_epoch_is_recorded_with_consistent_arrays(small):
    X, y = small
    n, m, e = len(y), 3, 3
    model = Ensemble(_spec(n_members=m, n_epochs=e, members_per_group=2, hidden_units=256)).fit(X, y, N_CLASSES)
    # one record per (group, epoch), epoch 0 included
    assert sorted((r.group, r.epoch) for r in model.records_) == [(g, t) for g in (0, 1) for t in range(e + 1)]
    for r in model.records_:
        assert r.members == ((0, 1) if r.group == 0 else (2,))
        assert r.predicted_label.shape == r.label_prob.shape == r.margin.shape == (len(r.members), n)
        assert r.prob_sum.shape == r.heldout_prob_sum.shape == (n, N_CLASSES)
        assert np.isnan(r.train_loss) if r.epoch == 0 else (np.isfinite(r.train_loss) and r.train_loss > 0)
        assert r.seconds >= 0
    rec = model.record_
    assert rec.predicted_label.shape == rec.label_prob.shape == rec.margin.shape == (m, e + 1, n)
    assert rec.held_out.shape == (m, n) and not rec.held_out.any()
    assert rec.prob_sum.shape == rec.heldout_prob_sum.shape == (e + 1, n, N_CLASSES)
    assert ((rec.predicted_label >= 0) & (rec.predicted_label < N_CLASSES)).all()
    assert ((rec.label_prob > 0) & (rec.label_prob <= 1)).all()
    _check_margins(rec.predicted_label, rec.margin, rec.label_prob, y[None, None, :])
    # without folds every member trains on everything: softmax sums to n_members, nothing held out
    np.testing.assert_allclose(rec.prob_sum.sum(axis=2), m, rtol=1e-5)
    np.testing.assert_array_equal(rec.heldout_prob_sum, 0.0)
    np.testing.assert_allclose(rec.prob_sum[:, np.arange(n), y], rec.label_prob.sum(axis=0), atol=1e-5)
    # epoch 0 is the untrained net, and the trained epochs differ from it and improve on it
    accuracy = (rec.predicted_label == y).mean(axis=2)  # (m, e + 1)
    assert (accuracy[:, 0] < 0.3).all()
    assert (accuracy[:, -1] > accuracy[:, 0] + 0.1).all()  # 300 examples, 15 steps: a start
    # the stacked record is what PredictionRecord builds from the epoch records
    again = PredictionRecord.from_epochs(model.records_, m)
    for name in RECORD_FIELDS:
        np.testing.assert_array_equal(getattr(again, name), getattr(rec, name))


def test_train_group_rejects_mismatched_rows(small):
    X, y = small
    with pytest.raises(ValueError, match="rows"):
        next(train_group(X, y[:-1], N_CLASSES, _spec(), [0]))


# ---------------------------------------------------------------- (d) cross-fitting


def test_assign_folds_is_stratified_and_seeded(digits):
    _, y = digits
    folds = assign_folds(y, 3, random_state=0)
    assert set(np.unique(folds)) == {0, 1, 2}
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    for c in range(N_CLASSES):
        per_class = np.bincount(folds[y == c], minlength=3)
        assert per_class.max() - per_class.min() <= 1, c
    np.testing.assert_array_equal(folds, assign_folds(y, 3, random_state=0))
    assert (folds != assign_folds(y, 3, random_state=1)).any()
    np.testing.assert_array_equal(assign_folds(y, 0, random_state=0), 0)


def test_cross_fitting_holds_out_one_fold_per_member(small):
    X, y = small
    n, m, n_folds = len(y), 4, 3
    spec = _spec(n_members=m, n_epochs=1, n_folds=n_folds)
    rec = Ensemble(spec).fit(X, y, N_CLASSES).record_
    folds = assign_folds(y, n_folds, spec.random_state)
    for member in range(m):
        np.testing.assert_array_equal(rec.held_out[member], folds == member % n_folds)
    assert rec.held_out.any(axis=0).all()  # n_members >= n_folds: everything held out by someone
    n_held = rec.held_out.sum(axis=0)  # members 0 and 3 share fold 0
    np.testing.assert_array_equal(n_held, np.where(folds == 0, 2, 1))
    # softmax sums split exactly between held-out and in-sample members
    np.testing.assert_allclose(rec.heldout_prob_sum.sum(axis=2), np.broadcast_to(n_held, (2, n)), rtol=1e-5)
    np.testing.assert_allclose(rec.prob_sum.sum(axis=2), np.broadcast_to(m - n_held, (2, n)), rtol=1e-5)
    given = np.arange(n), y
    held = rec.held_out[:, None, :]
    np.testing.assert_allclose(rec.heldout_prob_sum[:, given[0], given[1]],
                               np.where(held, rec.label_prob, 0).sum(axis=0), atol=1e-5)
    np.testing.assert_allclose(rec.prob_sum[:, given[0], given[1]],
                               np.where(~held, rec.label_prob, 0).sum(axis=0), atol=1e-5)


def test_fewer_members_than_folds_is_refused():
    with pytest.raises(ValueError, match="n_members >= n_folds"):
        _spec(n_members=2, n_epochs=1, n_folds=3)


# ---------------------------------------------------------------- (e) CNN path


def test_cnn_on_tiny_uint8_images(small):
    X, y = small
    images = _images(X)
    n = len(y)
    spec = _spec(n_members=2, n_epochs=1, cnn_width=4)
    assert resolve_model(spec, images) == "cnn" and resolve_model(spec, X) == "mlp"
    rec = Ensemble(spec).fit(images, y, N_CLASSES).record_
    assert rec.predicted_label.shape == rec.label_prob.shape == (2, 2, n)
    assert np.isfinite(rec.label_prob).all() and np.isfinite(rec.margin).all()
    _check_margins(rec.predicted_label, rec.margin, rec.label_prob, y[None, None, :])
    np.testing.assert_allclose(rec.prob_sum.sum(axis=2), 2.0, rtol=1e-5)
    assert np.abs(rec.label_prob[:, 1] - rec.label_prob[:, 0]).max() > 1e-3  # one epoch changed the nets
    # member 1 alone matches member 1 of the pair (grouped convolutions: up to float reduction order)
    alone = list(train_group(images, y, N_CLASSES, _spec(n_members=2, n_epochs=1, cnn_width=4, dropout="none"), [1]))
    pair = list(train_group(images, y, N_CLASSES, _spec(n_members=2, n_epochs=1, cnn_width=4, dropout="none"),
                            [0, 1]))
    for a, b in zip(pair, alone):
        np.testing.assert_allclose(a.label_prob[1], b.label_prob[0], atol=1e-3)


def test_cnn_rejects_float_images(small):
    X, y = small
    with pytest.raises(ValueError, match="uint8"):
        next(train_group(X.reshape(-1, 1, 8, 8), y, N_CLASSES, _spec(model="cnn"), [0]))


# ---------------------------------------------------------------- (e2) on-device augmentation


def _shift_flip_loop(x: np.ndarray, draws: np.ndarray, pad: int) -> np.ndarray:
    """The definition, pixel by pixel: out[i, j] = in[i + dy, j' + dx], j' mirrored if flip, 0 outside."""
    M, B, C, H, W = x.shape
    out = np.zeros_like(x)
    for m in range(M):
        for b in range(B):
            dy, dx, flip = draws[m, b]
            for i in range(H):
                for j in range(W):
                    si, sj = i + dy, (W - 1 - j if flip else j) + dx
                    if 0 <= si < H and 0 <= sj < W:
                        out[m, b, :, i, j] = x[m, b, :, si, sj]
    return out


def test_shift_flip_matches_its_pixel_by_pixel_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3, 6, 7)).astype(np.float32)
    pad = 2
    draws = np.stack([rng.integers(-pad, pad + 1, (2, 5)), rng.integers(-pad, pad + 1, (2, 5)),
                      rng.integers(0, 2, (2, 5))], axis=-1).astype(np.int8)
    draws[0, 0] = (0, 0, 0)  # identity
    draws[0, 1] = (0, 0, 1)  # pure mirror
    got = shift_flip(torch.as_tensor(x), torch.as_tensor(draws), pad).numpy()
    np.testing.assert_array_equal(got, _shift_flip_loop(x, draws, pad))
    np.testing.assert_array_equal(got[0, 0], x[0, 0])
    np.testing.assert_array_equal(got[0, 1], x[0, 1, :, :, ::-1])


def test_augment_draws_belong_to_the_member_not_the_group():
    pad = augment_pad((32, 32))
    assert pad == 4 and augment_pad((8, 8)) == 1
    both = _epoch_augment([0, 1], 7, 3, 5, 16, pad, flip=True)
    alone = _epoch_augment([1], 7, 3, 5, 16, pad, flip=True)
    np.testing.assert_array_equal(both[:, 1], alone[:, 0])
    assert both.shape == (5, 2, 16, 3) and np.abs(both[..., :2]).max() <= pad
    assert set(np.unique(both[..., 2])) == {0, 1}
    assert not _epoch_augment([0], 7, 3, 5, 16, pad, flip=False)[..., 2].any()
    assert not np.array_equal(_epoch_augment([0], 7, 4, 5, 16, pad, True), both[:, :1])  # new draws each epoch


def test_augmented_cnn_training_is_seeded_and_changes_what_is_learned(small):
    X, y = small
    images = _images(X)
    plain = list(train_group(images, y, N_CLASSES, _spec(model="cnn", cnn_width=8), [0, 1]))
    spec = _spec(model="cnn", cnn_width=8, augment="shift_flip")
    first = list(train_group(images, y, N_CLASSES, spec, [0, 1]))
    again = list(train_group(images, y, N_CLASSES, spec, [0, 1]))
    for a, b in zip(first, again):
        _assert_records_equal(a, b)
    _assert_records_equal(first[0], plain[0])  # epoch 0 is before any training step
    assert not np.array_equal(first[-1].label_prob, plain[-1].label_prob)


def test_augment_on_tables_is_refused(small):
    X, y = small
    with pytest.raises(ValueError, match="augment='shift' shifts images"):
        next(train_group(X, y, N_CLASSES, _spec(augment="shift"), [0]))


# ---------------------------------------------------------------- (e3) torch.compile


@pytest.mark.slow
def test_compiled_training_matches_eager_without_dropout(small):
    X, y = small
    eager = list(train_group(X, y, N_CLASSES, _spec(dropout="none"), [0, 1]))
    compiled = list(train_group(X, y, N_CLASSES, _spec(dropout="none", compile="default"), [0, 1]))
    for a, b in zip(eager, compiled, strict=True):
        np.testing.assert_allclose(a.label_prob, b.label_prob, atol=1e-5)
        np.testing.assert_array_equal(a.predicted_label, b.predicted_label)


@pytest.mark.parametrize("kind, shape", [("mlp", (64,)), ("cnn", (1, 8, 8))])
def test_jumpout_compiles_to_one_graph_without_a_generator(kind, shape):
    """Compiled dropout draws from torch's default stream so the whole forward is one graph (its
    draws fuse into the kernels); a torch.Generator breaks the graph at every dropout layer."""
    from torch._dynamo.testing import CompileCounter

    x = torch.rand(2, 5, 64) if kind == "mlp" else torch.rand(5, 2, 8, 8)
    counts = {}
    for name, generator in (("in graph", None), ("generator", torch.Generator().manual_seed(0))):
        torch._dynamo.reset()
        net = build_ensemble(kind, [0, 1], shape, N_CLASSES, _spec(model=kind, cnn_width=4), generator).train()
        counter = CompileCounter()
        torch.compile(net, backend=counter)(x).sum().backward()
        counts[name] = counter.frame_count
    torch._dynamo.reset()
    assert counts["in graph"] == 1
    assert counts["generator"] > 1


@pytest.mark.slow
def test_compiled_jumpout_training_is_reproducible_and_resumes_exactly(small, tmp_path):
    X, y = small
    spec = _spec(dropout="jumpout", compile="default", n_epochs=3)
    first = list(train_group(X, y, N_CLASSES, spec, [0, 1], checkpoint_dir=tmp_path / "full"))
    again = list(train_group(X, y, N_CLASSES, spec, [0, 1]))
    for a, b in zip(first, again, strict=True):
        _assert_records_equal(a, b)
    torch.manual_seed(12345)  # whatever the process drew since: the checkpoint restores the stream
    resumed = list(train_group(X, y, N_CLASSES, spec, [0, 1], checkpoint_dir=tmp_path / "full", resume_after=1))
    for a, b in zip(first[2:], resumed, strict=True):
        _assert_records_equal(a, b)
    eager = list(train_group(X, y, N_CLASSES, _spec(dropout="jumpout", n_epochs=3), [0, 1]))
    assert not np.array_equal(eager[-1].label_prob, first[-1].label_prob)  # other draws, same training
    assert first[-1].train_loss < first[1].train_loss


def test_a_failed_compile_falls_back_to_eager_with_one_warning(small, monkeypatch):
    X, y = small

    def broken_compile(net, mode=None):  # what a missing compiler or an unsupported op looks like
        def run(x):
            raise RuntimeError("no C compiler found")
        return run

    eager = list(train_group(X, y, N_CLASSES, _spec(), [0, 1]))
    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.warns(RuntimeWarning, match="running it eagerly instead: RuntimeError: no C") as caught:
        fallback = list(train_group(X, y, N_CLASSES, _spec(compile="default"), [0, 1]))
    failed = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert len(failed) == 2 and "(record pass)" in failed[0] and "(training forward)" in failed[1]  # once each
    for a, b in zip(eager, fallback, strict=True):
        _assert_records_equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compile_mode", ["off", "default", "reduce-overhead"])
def test_cuda_cnn_trains_with_augment_bf16_and_compile(small, compile_mode):
    """The GPU path end to end: uint8 images on the device, channels_last, bf16 autocast, on-device
    augmentation, compiled or not (never run on this project's CPU machines: benchmarks/gpu_check.sh)."""
    X, y = small
    spec = _spec(model="cnn", cnn_width=16, device="cuda", augment="shift_flip", compile=compile_mode, n_epochs=6,
                 batch_size=16)
    records = list(train_group(_images(X), y, N_CLASSES, spec, [0, 1]))
    assert [r.epoch for r in records] == list(range(7))
    assert all(np.isfinite(r.label_prob).all() for r in records)
    assert all(np.isfinite(r.train_loss) for r in records[1:])  # epoch 0 has no training loss (NaN)
    assert records[-1].label_prob.mean() > records[0].label_prob.mean()  # it learns


# ---------------------------------------------------------------- (f) checkpoint / resume


@pytest.mark.parametrize("extra", [{}, {"input_noise": 0.3}], ids=["plain", "input_noise"])
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(small, tmp_path, extra):
    X, y = small
    spec = _spec(n_epochs=3, dropout="jumpout", **extra)
    full = list(train_group(X, y, N_CLASSES, spec, [0, 1], checkpoint_dir=tmp_path / "full"))
    assert [r.epoch for r in full] == [0, 1, 2, 3]
    # the worker keeps every checkpoint: only the committer knows which ones are safe to drop
    assert checkpoint_epochs(tmp_path / "full") == [0, 1, 2, 3]

    # interrupted after epoch 1: consume epochs 0 and 1, then stop the generator
    run = train_group(X, y, N_CLASSES, spec, [0, 1], checkpoint_dir=tmp_path / "cut")
    first = [next(run), next(run)]
    run.close()
    assert [r.epoch for r in first] == [0, 1]
    for a, b in zip(first, full):
        _assert_records_equal(a, b)
    prune_checkpoints(tmp_path / "cut", 1)  # epoch 1 committed
    assert [p.name for p in (tmp_path / "cut").iterdir()] == ["epoch-1.pt"]
    shutil.copytree(tmp_path / "cut", tmp_path / "resume")

    resumed = list(train_group(X, y, N_CLASSES, spec, [0, 1], checkpoint_dir=tmp_path / "resume", resume_after=1))
    assert [r.epoch for r in resumed] == [2, 3]
    for a, b in zip(resumed, full[2:]):
        _assert_records_equal(a, b)


def test_resume_without_its_checkpoint_replays_silently_to_the_same_records(small, tmp_path):
    X, y = small
    spec = _spec(n_epochs=3, dropout="jumpout")
    full = list(train_group(X, y, N_CLASSES, spec, [0, 1]))
    # epoch 1 was committed but its checkpoint is gone (it lived on a node that died)
    replayed = list(train_group(X, y, N_CLASSES, spec, [0, 1], checkpoint_dir=tmp_path / "empty", resume_after=1))
    assert [r.epoch for r in replayed] == [2, 3]  # committed epochs are not sent again
    for a, b in zip(replayed, full[2:]):
        _assert_records_equal(a, b)


def test_a_worker_told_to_keep_k_checkpoints_keeps_the_newest_k(small, tmp_path):
    X, y = small
    list(train_group(X, y, N_CLASSES, _spec(n_epochs=4), [0, 1], checkpoint_dir=tmp_path, keep_checkpoints=2))
    assert checkpoint_epochs(tmp_path) == [3, 4]


def test_prune_checkpoints_keeps_the_committed_one_and_newer(tmp_path):
    for e in (0, 1, 2, 3):
        (tmp_path / f"epoch-{e}.pt").write_bytes(b"x")
    (tmp_path / "epoch-4.pt.tmp").write_bytes(b"half")  # being written: not a checkpoint yet
    prune_checkpoints(tmp_path, 2)
    assert checkpoint_epochs(tmp_path) == [2, 3]
    assert (tmp_path / "epoch-4.pt.tmp").exists()
    prune_checkpoints(tmp_path / "missing", 5)  # a folder this process cannot see: no error


# ---------------------------------------------------------------- (g) it learns


def test_vectorised_training_learns_digits(digits):
    X, y = digits
    rec = Ensemble(_spec(n_members=4, n_epochs=5, hidden_units=256, batch_size=0)).fit(X, y, N_CLASSES).record_
    accuracy = (rec.predicted_label[:, -1] == y).mean(axis=1)  # (n_members,)
    assert (accuracy > 0.9).all(), accuracy
    assert ((rec.predicted_label[:, 0] == y).mean(axis=1) < 0.3).all()


# ---------------------------------------------------------------- (h) planted label noise


@pytest.mark.slow
def test_planted_label_flips_are_found(digits):
    X, y = digits
    y = y.copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[flipped] = (y[flipped] + 1) % N_CLASSES
    is_flipped = np.zeros(len(y), dtype=bool)
    is_flipped[flipped] = True

    rec = Ensemble(TrainSpec(device="cpu", random_state=0)).fit(X, y, N_CLASSES).record_  # product defaults
    fields = {name: getattr(rec, name) for name in RECORD_FIELDS}
    scores = compute_example_scores(**fields, given_labels=y)

    assert average_precision_score(is_flipped, scores.mislabel_score) > 0.9
    flags = scores.is_suspected_mislabel
    assert flags[is_flipped].mean() > 0.7
    assert flags[~is_flipped].mean() < 0.03
    assert abs(scores.estimated_n_errors - flipped.size) < 0.3 * flipped.size
    # the suggested label of a flagged flip is mostly its original class
    caught = flipped[flags[flipped]]
    assert (scores.suggested_label[caught] == (y[caught] - 1) % N_CLASSES).mean() > 0.9


def test_record_dataclass_fields_are_the_scoring_inputs():
    # guards the **fields call above: the record's array fields are exactly compute_example_scores' inputs
    names = [f.name for f in dataclasses.fields(PredictionRecord)]
    assert tuple(names) == RECORD_FIELDS


# ---------------------------------------------------------------- GPU path, checked on the CPU


def test_bf16_autocast_path_trains_and_records_fp32(digits):
    """precision='bf16' is what CUDA runs by default; on the CPU it must give the same kind of record."""
    X, y = digits
    X, y = X[:400], y[:400]
    fp32 = Ensemble(_spec(n_members=2, n_epochs=3, hidden_units=128)).fit(X, y, N_CLASSES).record_
    bf16 = Ensemble(_spec(n_members=2, n_epochs=3, hidden_units=128, precision="bf16")).fit(X, y, N_CLASSES).record_
    assert bf16.label_prob.dtype == np.float32 and np.isfinite(bf16.margin).all()
    acc = (bf16.predicted_label[:, -1] == y).mean(axis=1)
    assert (acc > 0.5).all(), acc
    # bf16 rounds: close to, not equal to, the fp32 run of the same seeds
    assert not np.array_equal(bf16.label_prob, fp32.label_prob)
    assert np.abs(bf16.label_prob[:, 0] - fp32.label_prob[:, 0]).max() < 0.05  # epoch 0: same weights


def test_auto_precision_is_fp32_on_the_cpu():
    import contextlib

    from models.ensemble import autocast

    assert isinstance(autocast(_spec(), torch.device("cpu")), contextlib.nullcontext)
    assert isinstance(autocast(_spec(precision="bf16"), torch.device("cpu")), torch.autocast)


@pytest.mark.parametrize("train", [True, False])
def test_per_member_convolutions_equal_the_grouped_layout(train):
    """The member-major CNN layout (one plain convolution per member; an experiment for the GPU)
    computes the grouped layout's function with the same parameters: logits, gradients and the
    batch-norm running statistics agree to float rounding."""
    spec = _spec(model="cnn", cnn_width=4, dropout="none")
    grouped = build_ensemble("cnn", [0, 1, 2], (2, 8, 8), N_CLASSES, spec, per_member_convs=False)
    member = build_ensemble("cnn", [0, 1, 2], (2, 8, 8), N_CLASSES, spec, per_member_convs=True)
    for norm in grouped.norms:  # non-trivial eval statistics
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 1.5)
    member.load_state_dict(grouped.state_dict())
    grouped.train(train)
    member.train(train)
    x = torch.randn(3, 5, 2, 8, 8, generator=torch.Generator().manual_seed(0))  # (M, B, C, H, W)
    out_g = grouped(grouped.member_batches(x))
    out_m = member(member.member_batches(x))
    torch.testing.assert_close(out_m, out_g, rtol=1e-5, atol=1e-5)
    out_g.square().sum().backward()
    out_m.square().sum().backward()
    for (name, a), b in zip(grouped.named_parameters(), member.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    for a, b in zip(grouped.norms, member.norms, strict=True):
        torch.testing.assert_close(b.running_mean, a.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.running_var, a.running_var, rtol=1e-5, atol=1e-6)
    one = x[:, :1].expand(3, 4, 2, 8, 8)[0]  # one batch seen by every member
    torch.testing.assert_close(member.eval()(member.stack_input(one)), grouped.eval()(grouped.stack_input(one)),
                               rtol=1e-5, atol=1e-5)
