"""The job's time estimate (issue 17, item 2): the arithmetic with made-up timings, then the
figure where a user sees it: `curate score`'s output (plain lines, as in a log) and GET /jobs/{id}
on a real server."""

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from typer.testing import CliRunner

from service.cli.main import app
from service.cli.progress import estimate_line, plain_line
from service.engine.estimate import (
    LONG_JOB_S,
    EpochTimer,
    JobShape,
    advise,
    estimate_job,
    estimate_training_seconds,
    format_seconds,
    job_shape,
)
from service.schemas import JobOut
from tests.service.conftest import SMALL_SPEC, Server, digits_npz, wait_for

CPU_CNN = JobShape(n_epochs=20, n_groups=1, n_parallel=1, model="cnn", on_cpu=True)


def test_training_time_is_record_pass_plus_epochs_per_wave_of_groups() -> None:
    assert estimate_training_seconds(2.0, 3.0, CPU_CNN) == pytest.approx(62.0)
    four = JobShape(n_epochs=10, n_groups=4, n_parallel=2, model="mlp", on_cpu=True)
    assert estimate_training_seconds(1.0, 0.5, four) == pytest.approx(2 * (1.0 + 10 * 0.5))  # two waves of two
    wide = JobShape(n_epochs=10, n_groups=3, n_parallel=8, model="mlp", on_cpu=True)
    assert estimate_training_seconds(1.0, 0.5, wide) == pytest.approx(6.0)  # all three at once


def test_bad_timings_and_shapes_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="record_s=-1"):
        estimate_training_seconds(-1.0, 1.0, CPU_CNN)
    with pytest.raises(ValueError, match="n_parallel"):
        estimate_training_seconds(1.0, 1.0, JobShape(20, 1, 0, "cnn", True))
    with pytest.raises(ValueError, match="at least one trained epoch"):
        estimate_job(1.0, [], CPU_CNN)


def test_a_long_cpu_job_says_so_and_what_would_make_it_faster() -> None:
    estimate = estimate_job(5.0, [45.0], CPU_CNN)  # 5 + 20 x 45 = 905 s
    assert estimate.seconds == pytest.approx(905.0) and estimate.seconds > LONG_JOB_S
    note = estimate.note
    assert "over 10 minutes on a CPU" in note and "15 min" in note
    assert "--model mlp: faster, but it finds far fewer wrong labels" in note  # a tip that costs quality says so
    for tip in ("--epochs 10", "--model mlp", "--features", "--device cuda", "Ray"):
        assert tip in note, tip
    assert "1 timed epoch (45.00 s each, 20 epochs x 1 group, 1 at once)" in note


def test_no_advice_under_ten_minutes_or_off_the_cpu() -> None:
    assert advise(LONG_JOB_S - 1, CPU_CNN) is None
    gpu = JobShape(n_epochs=20, n_groups=1, n_parallel=1, model="cnn", on_cpu=False)
    assert advise(10 * LONG_JOB_S, gpu) is None
    short = estimate_job(0.2, [0.5], CPU_CNN)
    assert "over 10 minutes" not in short.note and short.seconds == pytest.approx(10.2)
    # a table's MLP gets no "use the MLP path" tip
    mlp = JobShape(n_epochs=20, n_groups=2, n_parallel=1, model="mlp", on_cpu=True)
    tips = advise(2 * LONG_JOB_S, mlp)
    assert tips is not None and "--model mlp" not in tips and "more workers" in tips


def test_job_shape_resolves_auto_and_the_device() -> None:
    assert job_shape(20, 1, 1, "auto", "image", "auto", n_cuda_devices=0).model == "cnn"
    assert job_shape(20, 1, 1, "auto", "tabular", "auto", n_cuda_devices=0).model == "mlp"
    assert job_shape(20, 1, 1, "auto", "image", "auto", n_cuda_devices=0).on_cpu
    assert not job_shape(20, 1, 1, "auto", "image", "auto", n_cuda_devices=1).on_cpu
    assert not job_shape(20, 1, 1, "auto", "image", "auto", n_cuda_devices=0, remote_gpus=True).on_cpu
    assert job_shape(20, 1, 1, "auto", "image", "cpu", n_cuda_devices=4).on_cpu


def test_the_timer_calibrates_on_the_first_group_and_rewrites_only_on_real_change() -> None:
    timer = EpochTimer(JobShape(n_epochs=10, n_groups=2, n_parallel=2, model="mlp", on_cpu=True))
    assert timer.observe(group=1, epoch=0, seconds=1.0) is None  # epoch 0: the record pass, no estimate yet
    assert timer.observe(group=0, epoch=0, seconds=9.0) is None  # another group: not the calibration
    first = timer.observe(group=1, epoch=1, seconds=2.0)
    assert first is not None and first.seconds == pytest.approx(1.0 + 10 * 2.0)
    assert timer.observe(group=1, epoch=2, seconds=2.1) is None  # 1 + 10 x 2.05: within 10 %
    assert timer.observe(group=0, epoch=1, seconds=50.0) is None
    later = timer.observe(group=1, epoch=3, seconds=4.0)  # mean 2.7 s: 28 s, more than 10 % off
    assert later is not None and later.seconds == pytest.approx(1.0 + 10 * (2.0 + 2.1 + 4.0) / 3)


def test_durations_read_as_a_person_says_them() -> None:
    assert [format_seconds(s) for s in (0.3, 4.2, 89, 95, 3599, 3900)] == ["under 1 s", "4 s", "89 s", "2 min", "1 h 00 min", "1 h 05 min"]
    assert plain_line(3, 10, 30.0, 70.0) == "training: 3/10 epochs, 30 s elapsed, about 70 s left"
    assert plain_line(3, 10, 30.0) == "training: 3/10 epochs, 30 s elapsed"  # nothing to go by yet
    assert plain_line(10, 10, 30.0, 0.0) == "training: 10/10 epochs, 30 s elapsed"


def test_plain_progress_prints_each_milestone_once_and_paces_from_the_first_epoch(monkeypatch) -> None:
    """Polls repeat the same epoch count: the first epoch's line is printed once, not per poll. The
    time left comes from the pace after the first epoch, not from start-up (here 10 s of it before
    epoch 1, then 1 s an epoch), and from the job's estimate before that."""
    import io

    from rich.console import Console

    from service.cli import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])

    class Backend:
        def job(self, job_id: str) -> SimpleNamespace:
            return SimpleNamespace(estimated_seconds=20.0, estimate_note=None)

    out = io.StringIO()
    reporter = progress._Reporter(Backend(), "j", Console(file=out, width=200), None)  # type: ignore[arg-type]
    clock[0] = 110.0
    for _ in range(5):  # five polls at epoch 1
        reporter(1, 20)
    clock[0] = 113.0
    reporter(4, 20)  # under 5 s since the last line: quiet
    clock[0] = 116.0
    reporter(7, 20)
    clock[0] = 129.0
    reporter(20, 20)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("training: ")]
    assert lines == ["training: 1/20 epochs, 10 s elapsed, about 19 s left",  # the estimate's 20 s x 19/20
                     "training: 7/20 epochs, 16 s elapsed, about 13 s left",  # 1 s an epoch since epoch 1
                     "training: 20/20 epochs, 29 s elapsed"]


def test_curate_score_prints_the_estimate_before_plain_progress_lines(tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    result = CliRunner().invoke(app, ["score", str(path), "--members", "2", "--epochs", "3", "--no-adaboost",
                                      "--set", "hidden_units=32", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    estimate = next(i for i, line in enumerate(lines) if line.startswith("estimated training time: about "))
    assert "timed epoch" in lines[estimate]
    progress = [i for i, line in enumerate(lines) if line.startswith("training: ")]
    # not a terminal (CliRunner): plain lines; the estimate comes with the first trained epoch, before its line
    first_epoch = next(i for i in progress if lines[i].startswith("training: 1/3 epochs"))
    assert first_epoch > estimate and lines[progress[-1]].startswith("training: 3/3 epochs")
    assert "splits: easy" in result.output


@pytest.mark.slow
def test_get_job_carries_the_estimate(server: Server, tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ds = c.post("/datasets", files={"file": ("d.npz", path.read_bytes())}).json()
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": SMALL_SPEC,
                                    "adaboost": {"enabled": False}}).json()
        assert job["estimated_seconds"] is None and job["estimate_note"] is None  # not timed before training
        wait_for(c, job["job_id"], ("succeeded",))
        done = c.get(f"/jobs/{job['job_id']}").json()
        page = c.get(f"/ui/jobs/{job['job_id']}").text
    assert done["estimated_seconds"] > 0 and "timed epoch" in done["estimate_note"]
    line = estimate_line(JobOut.model_validate(done))
    assert line is not None and line.startswith("estimated training time: about ")
    # the dashboard's job page says the same estimate (its note escaped like any text)
    assert f'<p id="estimate">Estimated training time: about {round(done["estimated_seconds"])} s' in page
