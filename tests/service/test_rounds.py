"""rounds=2: a second round trains with the first round's suspects held out by every member and the
flags come from it; through the engine (real DuckDB file, real workers), and resumable."""

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from models.ensemble import train_group
from models.spec import AdaBoostSpec, TrainSpec
from scoring.scores import second_round_exclusion
from service.engine.engine import Engine
from service.engine.finalize import compute_job_scores, first_round_scores
from service.read import queries
from service.settings import Settings
from service.store import jobs
from tests.service.conftest import Crash, CrashAfter, assert_same_scores, digits_arrays, digits_npz, run_to_success

N = 300
SPEC = TrainSpec(n_members=2, n_epochs=4, hidden_units=32, batch_size=32, random_state=3, rounds=2)


def _round2_held_out(engine: Engine, job_id: str) -> np.ndarray:
    """(members, epochs, examples) held_out of the stored second round."""
    with engine.store.reader() as cur:
        rows = cur.execute("SELECT member, epoch, example_id, held_out FROM predictions WHERE job_id = ? "
                           "AND model = 'round2' ORDER BY member, epoch, example_id", [job_id]).fetchall()
    return np.array([r[3] for r in rows]).reshape(SPEC.n_members, SPEC.n_epochs + 1, N)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(the upload, the data dir, the job id) of one uninterrupted rounds=2 job."""
    tmp = tmp_path_factory.mktemp("rounds")
    path, _ = digits_npz(tmp / "d.npz", n=N, noise=0.1, seed=1)
    return path, tmp / "data", run_to_success(Settings(data_dir=tmp / "data"), path, SPEC)


@pytest.mark.slow
def test_the_second_round_holds_the_first_rounds_suspects_out_and_flags_from_its_scores(
        finished: tuple[Path, Path, str]) -> None:
    path, data_dir, job_id = finished
    engine = Engine(Settings(data_dir=data_dir))
    try:
        job = jobs.get_job(engine.store, job_id)
        assert job.epochs_done == job.epochs_total == 2 * SPEC.n_epochs  # one group, two rounds
        first = first_round_scores(engine.store, job)
        excluded = second_round_exclusion(first)
        assert 0 < len(excluded) <= N // 2
        assert set(excluded) <= set(np.flatnonzero(first.is_suspected_mislabel))
        held = _round2_held_out(engine, job.job_id)
        expected = np.zeros(N, dtype=bool)
        expected[excluded] = True
        assert (held == expected[None, None, :]).all()  # every member, every epoch, exactly those
        assert job.summary is not None and job.summary["first_round_flagged"] == int(first.is_suspected_mislabel.sum())

        second = compute_job_scores(engine.store, job.job_id, SPEC.n_members, SPEC.n_epochs, N, 10,
                                    np.asarray(np.load(path)["y"]), job.scoring, model="round2")
        rows = queries.score_rows(engine.store, job.job_id)
        np.testing.assert_allclose(rows.column("mislabel_score").to_numpy(), second.mislabel_score)
        assert job.estimated_n_errors == second.estimated_n_errors
        flagged = rows.column("is_suspected_mislabel").to_numpy(zero_copy_only=False)
        assert flagged.tolist() == second.is_suspected_mislabel.tolist()
        # the first round still gives the curves and splits: every example was trained on there
        np.testing.assert_allclose(rows.column("accessibility").to_numpy(), first.accessibility)
        assert rows.column("split").to_pylist() == first.split.tolist()
        assert second.mislabel_score.tolist() != first.mislabel_score.tolist()
    finally:
        engine.close()


@pytest.mark.slow
def test_a_crash_in_the_second_round_resumes_to_the_scores_of_an_uninterrupted_run(
        finished: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, data_dir, clean_job = finished

    crashed = Engine(Settings(data_dir=tmp_path / "a"), executor=CrashAfter(SPEC.n_epochs + 1 + 2))
    ds = crashed.add_dataset(path)
    job_id = crashed.submit(ds.dataset_id, SPEC, AdaBoostSpec(enabled=False))
    with pytest.raises(Crash):
        crashed.run(job_id)
    assert jobs.get_job(crashed.store, job_id).epochs_done == SPEC.n_epochs + 1  # round 1, then epochs 0-1 of round 2
    crashed.close()

    restarted = Engine(Settings(data_dir=tmp_path / "a"))
    resumed = restarted.run(job_id)
    assert resumed.status == "succeeded", resumed.error
    restarted.close()
    assert_same_scores(tmp_path / "a", job_id, data_dir, clean_job)


def test_excluded_examples_are_held_out_by_every_member_and_never_trained_on() -> None:
    X, y = digits_arrays(120)
    exclude = np.array([0, 5, 7, 100])
    spec = TrainSpec(n_members=3, n_epochs=1, hidden_units=16, batch_size=16, device="cpu")
    records = list(train_group(X, y.astype(np.int64), 10, spec, [0, 1, 2], exclude=exclude))
    held = records[-1].held_out
    assert held[:, exclude].all() and held.sum() == 3 * len(exclude)
    with pytest.raises(ValueError, match=r"exclude holds example ids outside 0..119"):
        next(train_group(X, y.astype(np.int64), 10, spec, [0], exclude=np.array([120])))
    with pytest.raises(ValueError, match="nothing left to train on"):
        next(train_group(X, y.astype(np.int64), 10, spec, [0], exclude=np.arange(120)))


def test_rounds_is_one_or_two_and_does_not_combine_with_cross_fitting() -> None:
    with pytest.raises(ValidationError, match="does not combine with cross-fitting"):
        TrainSpec(rounds=2, n_folds=2)
    with pytest.raises(ValidationError, match="less than or equal to 2"):
        TrainSpec(rounds=3)
    assert TrainSpec().rounds == 1 and SPEC.round2_seed() != SPEC.random_state
