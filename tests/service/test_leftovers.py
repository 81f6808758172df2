"""What a crash or a delete leaves on disk (issue 15, point 4): start-up sweeps job folders, plot
files and download folders that no row owns; deleting a dataset removes its jobs' plot PNGs."""

from pathlib import Path

import pytest

from models.spec import AdaBoostSpec, TrainSpec
from service.engine.engine import Engine
from service.settings import Settings
from service.store import jobs
from service.store.catalog import delete_dataset
from service.web import report as web
from tests.service.conftest import SMALL_SPEC, digits_npz

TINY = {**SMALL_SPEC, "n_epochs": 2}


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_start_up_sweeps_job_folders_plots_and_downloads_that_no_row_owns(tmp_path: Path) -> None:
    """What kill -9 during DELETE /datasets (rows gone, files not yet) or during a download leaves."""
    settings = Settings(data_dir=tmp_path / "data")
    engine = Engine(settings)
    ds = engine.add_dataset(digits_npz(tmp_path / "d.npz", n=60)[0])
    kept = jobs.create_job(engine.store, ds.dataset_id, TrainSpec(**TINY), engine.scoring_options(),
                           AdaBoostSpec(enabled=False))  # a row: nothing of it may go
    engine.close()
    gone = "0123456789ab"  # a job id without a row
    for job_id in (kept, gone):
        (settings.jobs_dir / job_id / "ensemble-group-0" / "ckpt").mkdir(parents=True)
        (settings.jobs_dir / job_id / "ensemble-group-0" / "ckpt" / "state.pt").write_bytes(b"x" * 100)
        settings.plots_dir.mkdir(parents=True, exist_ok=True)
        (settings.plots_dir / f"{job_id}-dynamics.png").write_bytes(b"png")
    (settings.plots_dir / f"{gone}-adaboost.png.tmp").write_bytes(b"half a png")  # killed mid-write
    (settings.exports_dir / "tmpk2j3h4").mkdir()
    (settings.exports_dir / "tmpk2j3h4" / f"{kept}-scores.csv").write_text("example_id\n0\n")  # killed mid-send

    Engine(settings).close()  # start-up: the CLI's engine and the server's (create_app's lifespan) alike

    assert sorted(p.name for p in settings.jobs_dir.iterdir()) == [kept]
    assert _files(settings.jobs_dir / kept) == ["ensemble-group-0/ckpt/state.pt"]
    assert _files(settings.exports_dir) == [f"plots/{kept}-dynamics.png"]
    assert sorted(p.name for p in settings.datasets_dir.iterdir()) == [ds.dataset_id]


@pytest.mark.slow
def test_deleting_a_dataset_removes_its_jobs_plot_pngs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", explain_max_examples=0)
    engine = Engine(settings)
    try:
        drawn = {}
        for n in (60, 61):  # two datasets: deleting one keeps the other's plots
            ds = engine.add_dataset(digits_npz(tmp_path / f"d{n}.npz", n=n)[0])
            job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**TINY), AdaBoostSpec(n_rounds=2)))
            assert job.status == "succeeded", job.error
            drawn[ds.dataset_id] = [web.plot_path(engine.store, job.job_id, w, None) for w in ("dynamics", "adaboost")]
        (deleted, deleted_plots), (other, other_plots) = drawn.items()
        assert all(p.is_file() and p.parent == settings.plots_dir for p in deleted_plots + other_plots)
        assert delete_dataset(engine.store, settings, deleted) == [deleted]
        assert [p for p in deleted_plots if p.exists()] == []
        assert all(p.is_file() for p in other_plots)
        assert _files(settings.plots_dir) == sorted(p.name for p in other_plots)
    finally:
        engine.close()
