"""curate.Recorder in-process: the user's own logits, committed through the engine's store and scored
by the same scoring as Curate's ensemble (checked against scoring.scores on the same arrays)."""

from pathlib import Path

import numpy as np
import pytest

import curate
from curate.session import close
from scoring.scores import ScoringOptions, compute_example_scores
from service.engine.recorded import epoch_record

N, K = 120, 4


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, the given labels (10 % flipped), the true labels and the flipped rows."""
    rng = np.random.default_rng(seed)
    true = np.arange(N) % K
    X = rng.normal(size=(N, 3)).astype(np.float32)
    given = true.copy()
    flipped = rng.choice(N, size=N // 10, replace=False)
    given[flipped] = (given[flipped] + 1) % K
    return X, given, true, flipped


def _logits(true: np.ndarray, epoch: int, seed: int) -> np.ndarray:
    """A model that learns the true labels over the epochs, with noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N, K))
    z[np.arange(N), true] += 0.6 * epoch
    return z.astype(np.float32)


@pytest.fixture
def data_dir(tmp_path: Path):
    yield tmp_path / "data"
    close(tmp_path / "data")  # release the DuckDB file of this test's engine


def test_one_model_gets_margin_scores_that_find_the_planted_noise(data_dir: Path) -> None:
    X, given, true, flipped = _planted()
    rec = curate.Recorder((X, given), n_classes=K, data_dir=data_dir)
    order = np.random.default_rng(1).permutation(N)
    for epoch in range(0, 6):
        z = _logits(true, epoch, seed=epoch)
        for rows in np.array_split(order, 4):  # batches in a shuffled order, as a training loop sees them
            rec.log(epoch, rows, z[rows])
    result = rec.finish()
    assert result.summary["recorded"] == {"n_models": 1, "n_epochs": 5, "epoch0_logged": True,
                                          "mislabel_method": "margin"}
    assert result.job.status == "succeeded" and result.job.spec.n_members == 1
    flagged = set(result.mislabeled()["example_id"])
    assert len(flagged & set(flipped.tolist())) >= 0.8 * len(flipped)
    worst = result.scores.sort_values("mislabel_score", ascending=False)["example_id"][: len(flipped)]
    assert len(set(worst) & set(flipped.tolist())) >= 0.8 * len(flipped)


def test_several_models_are_scored_exactly_like_the_ensemble(data_dir: Path) -> None:
    X, given, true, _ = _planted(seed=3)
    n_models, n_epochs = 3, 4
    rec = curate.Recorder((X, given), n_classes=K, n_models=n_models, n_epochs=n_epochs, data_dir=data_dir)
    records = []
    for epoch in range(1, n_epochs + 1):
        for model in range(n_models):
            z = _logits(true, epoch, seed=100 * model + epoch)
            rec.log(epoch, np.arange(N), z, model=model)
            records.append((model, epoch, epoch_record(z, given, model, epoch)))
    result = rec.finish()
    assert result.summary["recorded"]["epoch0_logged"] is False  # the placeholder stood in for epoch 0
    # the same arrays through scoring.scores directly, epoch 0 as the placeholder (never the given label)
    pred = np.zeros((n_models, n_epochs + 1, N), np.int64)
    prob = np.full((n_models, n_epochs + 1, N), 1.0 / K)
    margin = np.zeros((n_models, n_epochs + 1, N))
    psum = np.zeros((n_epochs + 1, N, K))
    psum[0] = n_models / K
    pred[:, 0] = (given + 1) % K
    for model, epoch, r in records:
        pred[model, epoch], prob[model, epoch], margin[model, epoch] = r.predicted_label[0], r.label_prob[0], r.margin[0]
        psum[epoch] += r.prob_sum
    expected = compute_example_scores(pred, prob, margin, np.zeros((n_models, N), bool), psum, np.zeros_like(psum),
                                      given, ScoringOptions())
    scores = result.scores
    np.testing.assert_allclose(scores["mislabel_score"], expected.mislabel_score, atol=1e-6)
    np.testing.assert_allclose(scores["consistency"], expected.consistency, atol=1e-6)
    np.testing.assert_allclose(scores["accessibility"], expected.accessibility, atol=1e-6)
    assert (scores["is_suspected_mislabel"].to_numpy() == expected.is_suspected_mislabel).all()
    assert result.job.estimated_n_errors == expected.estimated_n_errors
    assert sorted(result.dynamics["epoch"].unique()) == list(range(n_epochs + 1))


def test_incomplete_or_bad_logs_are_refused_with_the_problem_named(data_dir: Path) -> None:
    X, given, true, _ = _planted()
    rec = curate.Recorder((X, given), n_classes=K, data_dir=data_dir)
    with pytest.raises(curate.CurateError, match=r"logits \(120, 3\) must be \(len\(example_ids\), n_classes\)"):
        rec.log(1, np.arange(N), np.zeros((N, 3)))
    with pytest.raises(curate.CurateError, match="example_ids must be integers 0..119"):
        rec.log(1, np.arange(1, N + 1), np.zeros((N, K)))
    rec.log(1, np.arange(N // 2), _logits(true, 1, 0)[: N // 2])
    with pytest.raises(curate.CurateError, match="model 0, epoch 1: 60 of 120 examples have no logits yet"):
        rec.finish()
    rec.log(1, np.arange(N // 2, N), _logits(true, 1, 0)[N // 2:])
    rec.log(3, np.arange(N), _logits(true, 3, 0))
    with pytest.raises(curate.CurateError, match="model 0 lacks epoch 2 of 1..3") as missing:
        rec.finish()
    assert missing.value.code == "invalid_spec" and missing.value.status == 422
    rec.log(2, np.arange(N), _logits(true, 2, 0))  # still recording after a refused finish
    bad = _logits(true, 4, 0)
    bad[7, 1] = np.nan
    with pytest.raises(curate.CurateError, match="logits of example 7 .* are not finite"):
        rec.log(4, np.arange(N), bad)
    result = rec.finish()
    assert result.job.spec.n_epochs == 3
    with pytest.raises(curate.CurateError, match="epochs can be logged only while it is recording") as late:
        rec.log(4, np.arange(N), _logits(true, 4, 0))
    assert late.value.code == "conflict"
    with pytest.raises(curate.CurateError, match="no model of it to explain"):
        result.explain(0)


def test_the_dataset_must_have_the_classes_of_the_logits(data_dir: Path) -> None:
    X, given, _, _ = _planted()
    with pytest.raises(curate.CurateError, match="with n_classes, y must hold class indexes"):
        curate.Recorder((X, given.astype(str)), n_classes=K, data_dir=data_dir)
    ds = curate.Recorder((X, given), data_dir=data_dir)  # without n_classes: the dataset's sorted labels
    assert ds.class_names == ["0", "1", "2", "3"]
    with pytest.raises(curate.CurateError, match=f"dataset {ds.dataset_id} has 4 classes .*not n_classes=5"):
        curate.Recorder(ds.dataset_id, n_classes=5, data_dir=data_dir)


def test_lightning_callback_records_every_epoch(data_dir: Path) -> None:
    pytest.importorskip("lightning")
    import lightning
    import torch

    from curate.integrations.lightning import curate_callback

    X, given, _, _ = _planted()

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(3, K)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(given))
    rec = curate.Recorder((X, given), n_classes=K, data_dir=data_dir)
    trainer = lightning.Trainer(max_epochs=3, callbacks=[curate_callback(rec, torch.utils.data.DataLoader(data, 32))],
                                logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(Module(), torch.utils.data.DataLoader(data, 32, shuffle=True))
    result = rec.finish()
    assert result.summary["recorded"]["n_epochs"] == 3 and result.summary["recorded"]["epoch0_logged"]


def test_huggingface_callback_records_every_epoch(data_dir: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")  # the Trainer needs it
    import torch
    from transformers import Trainer, TrainingArguments

    from curate.integrations.huggingface import curate_callback

    X, given, _, _ = _planted()

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(3, K)

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
            logits = self.net(x)
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return {"loss": loss, "logits": logits} if loss is not None else {"logits": logits}

    rows = [{"x": torch.from_numpy(X[i]), "labels": int(given[i]), "example_id": i} for i in range(N)]
    loader = torch.utils.data.DataLoader(rows, batch_size=32)
    rec = curate.Recorder((X, given), n_classes=K, data_dir=data_dir)

    def predict(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["example_id"], model(batch["x"])["logits"]

    args = TrainingArguments(output_dir=str(data_dir / "hf"), num_train_epochs=2, per_device_train_batch_size=32,
                             report_to=[], save_strategy="no", use_cpu=True, remove_unused_columns=False)
    train = [{"x": r["x"], "labels": r["labels"]} for r in rows]
    Trainer(Model(), args, train_dataset=train, callbacks=[curate_callback(rec, loader, predict=predict)]).train()
    assert rec.finish().summary["recorded"]["n_epochs"] == 2


def test_a_recording_job_keeps_its_dataset_and_a_cancelled_one_is_not_retrained(data_dir: Path) -> None:
    from service.errors import Conflict
    from service.store import jobs

    X, given, _, _ = _planted()
    rec = curate.Recorder((X, given), n_classes=K, data_dir=data_dir)
    engine = rec.backend.engine
    job = jobs.get_job(engine.store, rec.job_id)
    with pytest.raises(Conflict, match=f"is used by unfinished job {rec.job_id}"):
        engine.delete_dataset(job.dataset_id)  # still recording: its dataset stays
    assert engine.cancel(rec.job_id).status == "cancelled"
    with pytest.raises(Conflict, match="records the dynamics of your own models"):
        jobs.retry(engine.store, rec.job_id)  # Curate has no model of its own to train for it
