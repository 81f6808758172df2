"""Attributions of finished jobs (issue 6, item 3): computed for every suspected mislabel and hard
example after the job, on demand through `curate explain` and the API, stored as DuckDB summaries
and .npy maps (PNG heatmaps for images). Real engine, DuckDB, spawned workers and training."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_digits
from typer.testing import CliRunner

from models.spec import AdaBoostSpec, TrainSpec
from service.app import create_app
from service.cli.backends import RemoteBackend
from service.cli.main import app as cli_app
from service.engine import explain
from service.engine.engine import Engine
from service.settings import Settings
from service.store import jobs
from tests.service.conftest import SMALL_SPEC, digits_npz

SMALL = {**SMALL_SPEC, "n_epochs": 2}
COMPLETE = 1e-4  # |logit - (gradient_term + bias_term)|


def _run_job(settings: Settings, path: Path, spec: TrainSpec) -> str:
    engine = Engine(settings)
    try:
        ds = engine.add_dataset(path)
        job = engine.run(engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False)))
    finally:
        engine.close()
    assert job.status == "succeeded", job.error
    return job.job_id


@pytest.fixture(scope="module")
def digits_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    root = tmp_path_factory.mktemp("explain")
    path, _ = digits_npz(root / "d.npz", noise=0.1)
    settings = Settings(data_dir=root / "data")
    return settings, _run_job(settings, path, TrainSpec(**SMALL))


def _rows(settings: Settings, sql: str, params: list) -> list[tuple]:
    engine = Engine(settings)
    try:
        with engine.store.reader() as cur:
            return cur.execute(sql, params).fetchall()
    finally:
        engine.close()


@pytest.mark.slow
def test_flagged_and_hard_examples_are_explained_after_the_job(digits_job: tuple[Settings, str]) -> None:
    settings, job_id = digits_job
    labels = {r[0]: r[1:] for r in _rows(settings, "SELECT example_id, given_label, suggested_label FROM "
                                         "example_scores WHERE job_id = ? AND (is_suspected_mislabel OR "
                                         "split = 'hard')", [job_id])}
    assert labels
    rows = _rows(settings, "SELECT example_id, target, target_label, method, logit, gradient_term, bias_term, "
                           "bias_share, per_layer_bias_share, top_features, map_path FROM attributions "
                           "WHERE job_id = ?", [job_id])
    keys = {(r[0], r[1], r[3]) for r in rows}
    assert len(rows) == len(keys) == len(labels) * 2 * 2
    assert keys == {(e, t, m) for e in labels for t in ("given", "suggested") for m in ("bias", "gradient_x_input")}
    for example_id, target, target_label, _, logit, g, b, share, per_layer, top, map_path in rows:
        assert target_label == labels[example_id][0 if target == "given" else 1]
        assert abs(logit - (g + b)) <= COMPLETE
        assert 0.0 <= share <= 1.0
        assert len(json.loads(per_layer)) == TrainSpec().resolved(300, 64).n_hidden_layers + 1  # hidden layers (300 x 64: 2) + head
        assert len(json.loads(top)) == 10
        assert np.load(settings.data_dir / map_path).shape == (64,)
    job = jobs.job_out(_job(settings, job_id))
    assert job.summary["attributions"]["n_explained"] == len(labels)
    assert "error" not in job.summary["attributions"]
    kept = sorted(p.relative_to(settings.jobs_dir / job_id).as_posix() for p in (settings.jobs_dir / job_id).iterdir())
    assert kept == ["attributions", "model"]  # the checkpoints are gone, the final weights stay
    assert [p.name for p in (settings.jobs_dir / job_id / "model").iterdir()] == ["ensemble-group-0.pt"]


def _job(settings: Settings, job_id: str) -> jobs.Job:
    engine = Engine(settings)
    try:
        return jobs.get_job(engine.store, job_id)
    finally:
        engine.close()


@pytest.mark.slow
def test_curate_explain_computes_and_stores_a_missing_example(digits_job: tuple[Settings, str]) -> None:
    import torch

    settings, job_id = digits_job
    # the job explained its flagged and hard examples with bias and gradient x input only: no example
    # has integrated gradients yet (asserted below), so any example will do
    example_id = _rows(settings, "SELECT min(example_id) FROM example_scores WHERE job_id = ?", [job_id])[0][0]
    where = "WHERE job_id = ? AND example_id = ? AND method = 'integrated_gradients_5'"
    assert _rows(settings, f"SELECT count(*) FROM attributions {where}", [job_id, example_id]) == [(0,)]
    args = ["explain", job_id, str(example_id), "--method", "integrated_gradients_5", "--target", "suggested",
            "--data-dir", str(settings.data_dir)]
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "= gradient term" in result.output and "bias term per layer" in result.output
    assert "top features" in result.output and ".npy" in result.output
    stored = _rows(settings, f"SELECT target, logit - gradient_term - bias_term, map_path FROM attributions {where}",
                   [job_id, example_id])
    assert sorted(r[0] for r in stored) == ["given", "suggested"]
    assert all(abs(r[1]) <= COMPLETE and (settings.data_dir / r[2]).exists() for r in stored)
    state = torch.load(explain.model_path(settings, job_id, 0), weights_only=True)
    assert set(state) == {"net"}  # the optimizer state is dropped once the model is loaded
    bad = CliRunner().invoke(cli_app, ["explain", job_id, "0", "--method", "nope",
                                       "--data-dir", str(settings.data_dir)])
    assert bad.exit_code == 1 and "method must be one of" in bad.output


@pytest.mark.slow
def test_api_returns_the_attribution_and_the_error_shapes(digits_job: tuple[Settings, str]) -> None:
    settings, job_id = digits_job
    flagged = _rows(settings, "SELECT min(example_id) FROM example_scores WHERE job_id = ? AND is_suspected_mislabel",
                    [job_id])[0][0]
    engine = Engine(settings)  # a job that never succeeds, for the 409
    try:
        cancelled = engine.submit(_job(settings, job_id).dataset_id, TrainSpec(**SMALL), AdaBoostSpec(enabled=False))
        jobs.request_cancel(engine.store, cancelled)
    finally:
        engine.close()
    with TestClient(create_app(settings)) as client:
        r = client.get(f"/jobs/{job_id}/examples/{flagged}/attribution", params={"target": "suggested"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["example_id"] == flagged and body["target"] == "suggested" and body["method"] == "bias"
        assert body["map_shape"] == [64] and len(body["map"]) == 64
        assert abs(body["logit"] - body["gradient_term"] - body["bias_term"]) <= COMPLETE
        assert body["top_features"][0]["value"] == max((f["value"] for f in body["top_features"]), key=abs)
        remote = RemoteBackend("http://testserver")
        remote.api.http = client  # the CLI's HTTP door (its one Client), against this app
        assert remote.attribution(job_id, flagged, "bias", "suggested").model_dump() == body
        for path, params, status, code in [
            (f"/jobs/{job_id}/examples/100000/attribution", {}, 404, "not_found"),
            ("/jobs/nope/examples/0/attribution", {}, 404, "not_found"),
            (f"/jobs/{cancelled}/examples/0/attribution", {}, 409, "job_not_finished"),
            (f"/jobs/{job_id}/examples/0/attribution", {"method": "nope"}, 422, "invalid_request"),
        ]:
            r = client.get(path, params=params)
            assert r.status_code == status and r.json()["error"]["code"] == code, (path, r.text)


def _image_zip(path: Path, n: int = 120) -> Path:
    X, y = load_digits(return_X_y=True)
    with zipfile.ZipFile(path, "w") as zf:
        for i, (x, label) in enumerate(zip(X[:n], y[:n])):
            png = path.parent / f"{i}.png"
            Image.fromarray((x.reshape(8, 8) * 16).clip(0, 255).astype(np.uint8), mode="L").save(png)
            zf.write(png, f"digits/class_{label}/{i:04d}.png")
    return path


@pytest.mark.slow
def test_image_job_writes_png_heatmaps(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", explain_max_examples=5)
    spec = TrainSpec(**SMALL, cnn_width=8)
    job_id = _run_job(settings, _image_zip(tmp_path / "digits.zip"), spec)
    rows = _rows(settings, "SELECT example_id, logit - gradient_term - bias_term, map_path, heatmap_path, top_features "
                           "FROM attributions WHERE job_id = ?", [job_id])
    assert len(rows) == 5 * 2 * 2
    for _, gap, map_path, heatmap_path, top in rows:
        assert abs(gap) <= COMPLETE
        assert np.load(settings.data_dir / map_path).shape == (1, 8, 8)
        with Image.open(settings.data_dir / heatmap_path) as img:
            assert img.format == "PNG" and img.height >= 8 * 8 and img.width > 2 * img.height - img.height // 2
        assert '"pixel (0, ' in top
    assert _job(settings, job_id).summary["attributions"]["n_explained"] == 5


def test_service_methods_are_the_models_methods() -> None:
    from models.attribution import METHODS

    assert explain.METHODS == METHODS


def test_top_features_and_heatmap(tmp_path: Path) -> None:
    values = np.zeros((1, 4, 4))
    values[0, 2, 3], values[0, 1, 1] = -3.0, 2.0
    top = explain.top_features(values)
    assert top[:2] == [{"feature": "pixel (0, 2, 3)", "index": [0, 2, 3], "value": -3.0},
                       {"feature": "pixel (0, 1, 1)", "index": [0, 1, 1], "value": 2.0}]
    assert len(top) == 10
    assert explain.top_features(np.array([0.1, -0.5, 0.2]), ["a", "b", "c"])[0]["feature"] == "b"
    image = np.arange(16, dtype=np.uint8).reshape(1, 4, 4) * 16
    path = explain.save_heatmap(image, values, tmp_path / "h.png")
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.height == 128 and img.width == (4 + 1 + 4) * 32
        assert img.getpixel((0, 0)) == (0, 0, 0)  # the image on the left, grey
        red, _, blue = img.getpixel((5 * 32 + 3 * 32 + 1, 2 * 32 + 1))
        assert blue > red + 50  # the most negative value: blue
        red, _, blue = img.getpixel((5 * 32 + 1 * 32 + 1, 1 * 32 + 1))
        assert red > blue + 50  # a positive one: red
