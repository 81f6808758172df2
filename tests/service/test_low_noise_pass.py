"""The low-noise pass: a job whose first pass estimates few label errors trains the ensemble again under
the next weaker Jumpout row and flags from that pass; through the engine (real DuckDB file, real
workers), exactly the spec it says, and resumable. Wine (13 features, 178 examples: the strong row, the
middle one for the pass) is the smallest table it applies to."""

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_wine

from models.ensemble import train_group
from models.spec import JUMPOUT_BY_RATIO, AdaBoostSpec, TrainSpec
from scoring.scores import take_low_noise_pass
from service.engine.engine import Engine
from service.engine.finalize import compute_job_scores, first_round_scores
from service.read import queries
from service.settings import Settings
from service.store import jobs
from tests.service.conftest import Crash, CrashAfter, Server, assert_same_scores, run_to_success
from tests.service.test_browser import ARGS, CHROMIUM, SHOTS

SPEC = TrainSpec(n_members=4, n_epochs=12, random_state=5)  # 12 epochs: wine is learned (4 leave most unlearned)
NO_ADABOOST = AdaBoostSpec(enabled=False)
PASS_MEMBERS, PASS_EPOCHS = SPEC.n_members // 2, SPEC.n_epochs // 2  # the pass: half the members, half the epochs


def wine_npz(path: Path, noise: float = 0.0, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """Wine with a share `noise` of its labels moved to another class: (path, X, y as stored)."""
    X, y = load_wine(return_X_y=True)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y), size=int(round(noise * len(y))), replace=False)
    y[flipped] = (y[flipped] + rng.integers(1, 3, size=len(flipped))) % 3
    np.savez(path, X=X.astype(np.float32), y=y)
    return path, X.astype(np.float32), y


def _predicted(engine: Engine, job_id: str, model: str, epoch: int) -> np.ndarray:
    with engine.store.reader() as cur:
        rows = cur.execute("SELECT predicted_label FROM predictions WHERE job_id = ? AND model = ? AND epoch = ? "
                           "ORDER BY member, example_id", [job_id, model, epoch]).fetchall()
    return np.array([r[0] for r in rows])


def _pass_events(engine: Engine, job_id: str) -> list[str]:
    with engine.store.reader() as cur:
        return [r[0] for r in cur.execute("SELECT message FROM events WHERE job_id = ? AND kind = 'low_noise_pass'",
                                          [job_id]).fetchall()]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(the upload, the data dir, the job id) of one uninterrupted job on clean wine."""
    tmp = tmp_path_factory.mktemp("lownoise")
    path, _, _ = wine_npz(tmp / "wine.npz")
    return path, tmp / "data", run_to_success(Settings(data_dir=tmp / "data"), path, SPEC)


def test_few_estimated_errors_train_the_weaker_row_again_and_flag_from_it(clean: tuple[Path, Path, str]) -> None:
    path, data_dir, job_id = clean
    engine = Engine(Settings(data_dir=data_dir))
    try:
        job = jobs.get_job(engine.store, job_id)
        assert job.spec.low_noise_jumpout == JUMPOUT_BY_RATIO[1][1:]  # strong row, then the middle one
        first = first_round_scores(engine.store, job)
        n = len(first.mislabel_score)
        assert first.estimated_n_errors < job.spec.low_noise_pass_below * n  # clean wine: few errors
        assert job.epochs_done == job.epochs_total == SPEC.n_epochs + PASS_EPOCHS  # one group, two passes
        events = _pass_events(engine, job_id)
        assert len(events) == 1 and "under 8%" in events[0] and "sigma 0.2" in events[0]

        given = np.asarray(np.load(path)["y"])
        second = compute_job_scores(engine.store, job_id, PASS_MEMBERS, PASS_EPOCHS, n, 3, given, job.scoring,
                                    model="round2")
        expected = take_low_noise_pass(first, second)
        rows = queries.score_rows(engine.store, job_id)
        np.testing.assert_allclose(rows.column("mislabel_score").to_numpy(), expected.mislabel_score)
        flagged = rows.column("is_suspected_mislabel").to_numpy(zero_copy_only=False)
        assert flagged.tolist() == expected.is_suspected_mislabel.tolist()
        assert job.estimated_n_errors == (first.estimated_n_errors + second.estimated_n_errors) // 2
        assert rows.column("split").to_pylist() == first.split.tolist()  # the splits stay the first pass's
        assert job.summary is not None and job.summary["low_noise_pass"] == {
            "jumpout": list(JUMPOUT_BY_RATIO[1][1:]), "n_members": PASS_MEMBERS, "n_epochs": PASS_EPOCHS, "first_pass_estimated_n_errors": first.estimated_n_errors,
            "second_pass_estimated_n_errors": second.estimated_n_errors}
    finally:
        engine.close()


def test_the_stored_pass_is_the_weaker_rows_training_and_nothing_else(clean: tuple[Path, Path, str]) -> None:
    path, data_dir, job_id = clean
    engine = Engine(Settings(data_dir=data_dir))
    try:
        job = jobs.get_job(engine.store, job_id)
        stored_first = _predicted(engine, job_id, "ensemble", SPEC.n_epochs)
        stored_pass = _predicted(engine, job_id, "round2", PASS_EPOCHS)
    finally:
        engine.close()
    data = np.load(path)
    X, y = data["X"], data["y"].astype(np.int64)
    members = list(range(PASS_MEMBERS))
    *_, direct = train_group(X, y, 3, job.spec.low_noise_spec().model_copy(update={"device": "cpu"}), members)
    assert direct.epoch == PASS_EPOCHS and direct.predicted_label.ravel().tolist() == stored_pass.tolist()
    assert stored_pass.tolist() != stored_first.tolist()  # another row and other seeds than the first pass


def test_many_estimated_errors_keep_one_pass(tmp_path: Path) -> None:
    path, _, _ = wine_npz(tmp_path / "noisy.npz", noise=0.3, seed=1)
    engine = Engine(Settings(data_dir=tmp_path / "data"))
    try:
        ds = engine.add_dataset(path)
        job = engine.run(engine.submit(ds.dataset_id, SPEC, NO_ADABOOST))
        assert job.status == "succeeded", job.error
        first = first_round_scores(engine.store, job)
        assert first.estimated_n_errors >= job.spec.low_noise_pass_below * len(first.mislabel_score)
        assert job.epochs_done == job.epochs_total == SPEC.n_epochs
        assert _predicted(engine, job.job_id, "round2", 0).size == 0
        assert job.summary is not None and "low_noise_pass" not in job.summary
        assert job.estimated_n_errors == first.estimated_n_errors
    finally:
        engine.close()


@pytest.mark.slow
def test_a_crash_in_the_pass_resumes_to_the_scores_of_an_uninterrupted_run(
        clean: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, data_dir, clean_job = clean

    crashed = Engine(Settings(data_dir=tmp_path / "a"), executor=CrashAfter(SPEC.n_epochs + 1 + 2))
    ds = crashed.add_dataset(path)
    job_id = crashed.submit(ds.dataset_id, SPEC, NO_ADABOOST)
    with pytest.raises(Crash):
        crashed.run(job_id)
    interrupted = jobs.get_job(crashed.store, job_id)
    assert interrupted.epochs_done == SPEC.n_epochs + 1  # the first pass, then epochs 0-1 of the pass
    assert interrupted.epochs_total == SPEC.n_epochs + PASS_EPOCHS
    crashed.close()

    restarted = Engine(Settings(data_dir=tmp_path / "a"))
    resumed = restarted.run(job_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.epochs_total == SPEC.n_epochs + PASS_EPOCHS
    assert len(_pass_events(restarted, job_id)) == 1
    restarted.close()
    assert_same_scores(tmp_path / "a", job_id, data_dir, clean_job)


def test_the_api_and_the_job_page_say_the_pass_ran(clean: tuple[Path, Path, str],
                                                   start_server: Callable[..., Server]) -> None:
    _, data_dir, job_id = clean
    server = start_server(data_dir)  # the finished job's own data dir, served by a real `curate serve`
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.get(f"/jobs/{job_id}").json()
        before = client.get("/jobs").json()
        for bad, says in (([0.1, 0.7, 0.6], "must be (sigma in (0, 1], p_min <= p_max"),
                          ([0.1, 0.01, 0.6], "does not combine with rounds=2")):
            spec = {"low_noise_jumpout": bad, **({"rounds": 2} if "rounds" in says else {})}
            refused = client.post("/jobs", json={"dataset_id": job["dataset_id"], "spec": spec})
            assert refused.status_code == 422 and says in refused.text and "low_noise_jumpout" in refused.text
        assert client.get("/jobs").json() == before  # nothing queued, nothing stored changed
        assert job["summary"]["low_noise_pass"]["jumpout"] == list(JUMPOUT_BY_RATIO[1][1:])
        assert job["epochs_total"] == SPEC.n_epochs + PASS_EPOCHS
        page = client.get(f"/ui/jobs/{job_id}")
        assert page.status_code == 200
        assert '<p id="low-noise-pass">Low-noise pass: the first pass estimated' in page.text
        assert "weaker Jumpout (sigma 0.2, p 0.1-0.6)" in page.text


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"), reason="no /usr/bin/chromium")
def test_a_user_sees_the_pass_on_the_job_page_in_chromium(clean: tuple[Path, Path, str],
                                                          start_server: Callable[..., Server]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    _, data_dir, job_id = clean
    server = start_server(data_dir)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
                                    args=ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.click(f"a[href='/ui/jobs/{job_id}']")  # from the job list to the job, as a user goes
            page.wait_for_url(f"**/ui/jobs/{job_id}")
            line = page.locator("#low-noise-pass")
            sync_api.expect(line).to_be_visible()
            sync_api.expect(line).to_contain_text("2 members x 6 epochs; the flags are that pass's")
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / "30-low-noise-pass.png"), full_page=True)
        finally:
            browser.close()
