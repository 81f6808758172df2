"""RayExecutor on a real local Ray instance (CPU only): same results as LocalExecutor, cancel,
resources it cannot get, signal handlers, and a worker node that dies mid-job."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType, SimpleNamespace

import pytest

from models.checkpoints import checkpoint_epochs
from models.spec import AdaBoostSpec, TrainSpec
from service.engine import explain
from service.engine.engine import Engine
from service.engine.executors.local import LocalExecutor, WorkerFailed
from service.engine.runner import build_tasks
from service.read import queries
from service.settings import Settings
from service.store import jobs
from tests.service.conftest import SMALL_SPEC, digits_npz

ray = pytest.importorskip("ray", reason="RayExecutor tests need `pip install 'curate[ray]'`")

from service.engine.executors.ray import RayExecutor, ray_address  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SMALL = {**SMALL_SPEC, "n_epochs": 2, "members_per_group": 1, "random_state": 3}
NO_ADABOOST = AdaBoostSpec(enabled=False)
SIGTERM_CALLS: list[int] = []


def _record_sigterm(signum: int, frame: FrameType | None) -> None:
    SIGTERM_CALLS.append(signum)


def _digits_npz(tmp_path: Path, n: int = 300) -> Path:
    return digits_npz(tmp_path / f"digits-{n}.npz", n=n)[0]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for the module, started through the executor's own connect()."""
    if ray.is_initialized():
        ray.shutdown()
    saved = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _record_sigterm)
    owner = RayExecutor(address="local", ray_init_options=dict(
        num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False))
    owner.connect()
    handler_after_init = signal.getsignal(signal.SIGTERM)
    try:
        yield SimpleNamespace(owner=owner, handler_after_init=handler_after_init)
    finally:
        owner.shutdown()
        signal.signal(signal.SIGTERM, saved)
    assert not ray.is_initialized()


def _wait_for_free_cpus(n: float, timeout_s: float = 10.0) -> float:
    deadline = time.monotonic() + timeout_s
    free = ray.available_resources().get("CPU", 0.0)
    while free < n and time.monotonic() < deadline:
        time.sleep(0.1)
        free = ray.available_resources().get("CPU", 0.0)
    return free


def _job_tasks(tmp_path: Path, spec: TrainSpec, n: int = 300, start: bool = False) -> tuple[Settings, str, list]:
    """A submitted job's GroupTasks (attempt 1, or a started attempt), its engine closed again."""
    settings = Settings(data_dir=tmp_path / "data")
    engine = Engine(settings)
    ds = engine.add_dataset(_digits_npz(tmp_path, n=n))
    job_id = engine.submit(ds.dataset_id, spec, NO_ADABOOST)
    attempt = jobs.start_attempt(engine.store, job_id) if start else 1
    tasks = build_tasks(engine.store, settings, jobs.get_job(engine.store, job_id), attempt)
    engine.close()
    return settings, job_id, tasks


@pytest.mark.slow
def test_same_scores_as_local_executor(ray_session, tmp_path: Path) -> None:
    path = _digits_npz(tmp_path)
    rows = {}
    for name, executor in (("local", LocalExecutor()), ("ray", RayExecutor())):
        # scores only: the explanations that follow a job are the shared-dir test's (here ~2 s a job)
        engine = Engine(Settings(data_dir=tmp_path / name, explain_max_examples=0), executor=executor)
        ds = engine.add_dataset(path)
        job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**SMALL), NO_ADABOOST))
        assert job.status == "succeeded", job.error
        rows[name] = queries.score_rows(engine.store, job.job_id)
        with engine.store.reader() as cur:
            per_epoch = cur.execute("SELECT epoch, count(*) FROM predictions WHERE job_id = ? GROUP BY epoch "
                                    "ORDER BY epoch", [job.job_id]).fetchall()
        engine.close()
        assert per_epoch == [(e, 2 * 300) for e in range(3)], name
    assert rows["ray"].num_rows == rows["local"].num_rows == 300
    for col in queries.SCORE_COLUMNS:
        assert rows["ray"].column(col).to_pylist() == rows["local"].column(col).to_pylist(), col


@pytest.mark.slow  # on ray_session: a local Ray cluster takes ~15 s to start
def test_checkpoints_go_to_shared_dir_and_are_dropped_once_committed(ray_session, tmp_path: Path) -> None:
    # 8 short epochs and a slow engine (0.3 s a commit): the workers would run far ahead of the
    # commits but for backpressure, and each keeps only its newest KEEP_CHECKPOINTS checkpoints
    settings, job_id, tasks = _job_tasks(tmp_path, TrainSpec(**{**SMALL, "n_epochs": 8}))
    shared = tmp_path / "shared"
    seen: list[tuple[int, int, bool, bool]] = []

    def on_records(task, records) -> None:  # type: ignore[no-untyped-def]
        (record,) = records  # Ray hands records over one at a time
        ckpt = f"ensemble-group-{task.group}/ckpt/epoch-{record.epoch}.pt"
        time.sleep(0.3)  # committing
        seen.append((task.group, record.epoch, (shared / "jobs" / job_id / ckpt).exists(),
                     (settings.jobs_dir / job_id / ckpt).exists()))

    assert RayExecutor(shared_dir=str(shared)).run(tasks, on_records, lambda: False) is True
    # each epoch's checkpoint is there when the engine commits that epoch (written before the yield, and
    # not yet pruned by its worker), and never in the engine's own folder
    assert sorted(seen) == [(g, e, True, False) for g in (0, 1) for e in range(9)]
    assert not (shared / "jobs" / job_id).exists()


@pytest.mark.slow
def test_shared_dir_jobs_keep_their_final_model_for_explanations(ray_session, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", explain_max_examples=20)
    shared = tmp_path / "shared"
    engine = Engine(settings, executor=RayExecutor(shared_dir=str(shared)))
    ds = engine.add_dataset(_digits_npz(tmp_path))
    job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**SMALL), NO_ADABOOST))
    with engine.store.reader() as cur:
        n_maps = cur.execute("SELECT count(*) FROM attributions WHERE job_id = ?", [job.job_id]).fetchone()[0]
    engine.close()
    assert job.status == "succeeded", job.error
    assert all(explain.model_path(settings, job.job_id, g).is_file() for g in (0, 1))  # keep_model found both
    info = job.summary["attributions"]
    assert "error" not in info and info["n_explained"] == 20, info
    assert n_maps == 20 * 2 * len(explain.DEFAULT_METHODS)  # both targets, every default method
    assert not (shared / "jobs" / job.job_id).exists()  # the shared checkpoints are still dropped
    assert sorted(p.name for p in (settings.jobs_dir / job.job_id).iterdir()) == ["attributions", "model"]


def _newest_checkpoints(ckpt_root: Path) -> dict[str, int]:
    return {d.parent.name: max(checkpoint_epochs(d)) for d in ckpt_root.glob("*/ckpt") if checkpoint_epochs(d)}


@pytest.mark.slow
def test_should_stop_cancels_running_tasks_quickly(ray_session, tmp_path: Path) -> None:
    spec = TrainSpec(**{**SMALL, "n_epochs": 400, "batch_size": 16})
    settings, job_id, tasks = _job_tasks(tmp_path, spec, n=1797, start=True)
    records: list[tuple[int, int]] = []
    stop_at: list[float] = []

    def should_stop() -> bool:
        if records and not stop_at:
            stop_at.append(time.monotonic())
        return bool(records)

    finished = RayExecutor().run(tasks, lambda task, recs: records.extend((task.group, r.epoch) for r in recs),
                                  should_stop)
    returned_after = time.monotonic() - stop_at[0]
    assert finished is False
    assert returned_after < 5.0
    assert 1 <= len(records) <= 2 and all(epoch == 0 for _, epoch in records)
    assert _wait_for_free_cpus(2) == 2  # both tasks gave their CPUs back
    ckpt_root = settings.jobs_dir / job_id
    before = _newest_checkpoints(ckpt_root)
    time.sleep(1.5)
    after = _newest_checkpoints(ckpt_root)
    assert after == before and all(e < spec.n_epochs for e in after.values())  # training stopped


@pytest.mark.slow  # on ray_session: a local Ray cluster takes ~15 s to start
def test_impossible_resources_fail_at_once_with_a_clear_message(ray_session, tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path / "data"), executor=RayExecutor(num_gpus_per_group=1))
    ds = engine.add_dataset(_digits_npz(tmp_path))
    started = time.monotonic()
    job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**SMALL), NO_ADABOOST))
    engine.close()
    assert time.monotonic() - started < 5.0
    assert job.status == "failed"
    assert "asks for 1 CPU, 1 GPU" in job.error and "2 CPU, 0 GPU" in job.error, job.error
    assert ray.available_resources().get("CPU") == 2  # nothing was submitted


@pytest.mark.slow  # on ray_session: a local Ray cluster takes ~15 s to start
def test_members_per_gpu_larger_than_a_group_allows_is_refused(ray_session, tmp_path: Path) -> None:
    _, _, tasks = _job_tasks(tmp_path, TrainSpec(**{**SMALL, "members_per_group": 2}))
    with pytest.raises(WorkerFailed, match="members_per_gpu is 1"):
        RayExecutor(members_per_gpu=1).run(tasks, lambda task, recs: None, lambda: False)


@pytest.mark.slow
def test_task_pending_past_resource_wait_fails(ray_session, tmp_path: Path) -> None:
    @ray.remote(num_cpus=2)
    def hold_all_cpus() -> None:
        time.sleep(60)

    blocker = hold_all_cpus.remote()
    try:
        deadline = time.monotonic() + 10
        while ray.available_resources().get("CPU", 0.0) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # until the blocker holds both CPUs
        assert ray.available_resources().get("CPU", 0.0) == 0
        _, _, tasks = _job_tasks(tmp_path, TrainSpec(**SMALL))
        started = time.monotonic()
        with pytest.raises(WorkerFailed, match=r"waited 1\.5 s for Ray resources") as info:
            RayExecutor(resource_wait_s=1.5).run(tasks, lambda task, recs: None, lambda: False)
        assert time.monotonic() - started < 6.0
        assert "ensemble group 0 (1 CPU, 0 GPU)" in str(info.value)
    finally:
        ray.cancel(blocker, force=True)
    assert _wait_for_free_cpus(2) == 2


@pytest.mark.slow  # on ray_session: a local Ray cluster takes ~15 s to start
def test_worker_exception_fails_the_job_with_the_traceback_tail(ray_session, tmp_path: Path) -> None:
    engine = Engine(Settings(data_dir=tmp_path / "data"), executor=RayExecutor())
    ds = engine.add_dataset(_digits_npz(tmp_path))
    job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**{**SMALL, "device": "cuda:7"}), NO_ADABOOST))
    engine.close()
    assert job.status == "failed"
    assert "before its first epoch" in job.error
    assert "ValueError: device 'cuda:7' requested but CUDA is not available" in job.error, job.error
    assert "\x1b[" not in job.error  # Ray's colour codes are stripped


@pytest.mark.slow  # on ray_session: a local Ray cluster takes ~15 s to start
def test_init_keeps_the_sigterm_handler_and_attaching_does_not_own_ray(ray_session) -> None:
    assert ray_session.handler_after_init is _record_sigterm
    assert signal.getsignal(signal.SIGTERM) is _record_sigterm
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 2
    while not SIGTERM_CALLS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert SIGTERM_CALLS == [signal.SIGTERM]
    guest = RayExecutor()
    guest.connect()
    guest.shutdown()
    assert ray.is_initialized()  # only the executor that started Ray stops it


def test_address_is_never_left_to_ray_auto_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"
    assert ray_address("auto") == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert ray_address(None) == "10.0.0.5:6379"
    assert ray_address("local") == "local"


@pytest.mark.parametrize(("options", "message"), [
    (dict(num_gpus_per_group=2), "at most 1"),
    (dict(num_cpus_per_group=-1), ">= 0"),
    (dict(members_per_gpu=0), "members_per_gpu must be >= 1"),
])
def test_invalid_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RayExecutor(**options)


def test_service_imports_without_ray() -> None:
    code = ("import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError
            "import service.engine.executors.ray, service.engine.engine\n"
            "from service.engine.executors.ray import RayExecutor\n"
            "RayExecutor(num_gpus_per_group=0.5, members_per_gpu=4)\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


NODE_DEATH_SCRIPT = r'''
import json, sys, threading, time
from pathlib import Path

from ray.cluster_utils import Cluster
from sklearn.datasets import load_digits
import numpy as np

from models.spec import AdaBoostSpec, TrainSpec
from service.engine.engine import Engine
from service.engine.executors.ray import RayExecutor
from service.settings import Settings


# Under the guard: the LocalExecutor's fork server preloads __main__ (models/ and the engine's own
# worker context), and an unguarded script would run this whole scenario again inside it.
if __name__ == "__main__":
    tmp = Path(sys.argv[1])
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=1, include_dashboard=False, object_store_memory=100 * 1024**2))
    victim = cluster.add_node(num_cpus=1, resources={"victim": 1}, object_store_memory=100 * 1024**2)
    cluster.wait_for_nodes()
    X, y = load_digits(return_X_y=True)
    np.savez(tmp / "digits.npz", X=X.astype(np.float32), y=y)
    # 12 epochs: the kill lands after epoch 2 while the worker is at most STREAM_AHEAD epochs ahead,
    # so the job cannot finish first; the resume then trains the rest (it was 40: ~25 s more of it)
    spec = TrainSpec(n_members=1, n_epochs=12, hidden_units=32, batch_size=16, random_state=5)
    out = {}

    executor = RayExecutor(address=cluster.address, resources={"victim": 1},
                           ray_init_options=dict(log_to_driver=False))
    # no explanations after the resume: not what this test is about (the shared-dir test covers them)
    engine = Engine(Settings(data_dir=tmp / "data", explain_max_examples=0), executor=executor)
    ds = engine.add_dataset(tmp / "digits.npz")
    job_id = engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False))
    epochs_seen = []
    third = threading.Event()

    def progress(job_id, done, total):
        epochs_seen.append(done)
        if done >= 2:
            third.set()

    def kill_victim():
        if third.wait(60):
            out["killed_after_epoch"] = epochs_seen[-1]
            out["killed_at"] = time.monotonic()
            cluster.remove_node(victim, allow_graceful=False)

    killer = threading.Thread(target=kill_victim)
    killer.start()
    job = engine.run(job_id, progress)
    out["returned_after_kill_s"] = time.monotonic() - out.get("killed_at", time.monotonic())
    killer.join()
    out.update(status=job.status, error=job.error, epochs_done=job.epochs_done, total=job.epochs_total)

    def per_epoch(engine):
        with engine.store.reader() as cur:
            return cur.execute("SELECT epoch, count(*) FROM predictions WHERE job_id = ? GROUP BY epoch "
                               "ORDER BY epoch", [job_id]).fetchall()

    out["committed"] = per_epoch(engine)
    # The lead's retry path is not built yet: mark the job interrupted, as a crash would leave it,
    # and resume on the head node (the checkpoints are on storage both nodes see).
    with engine.store.transaction() as cur:
        cur.execute("UPDATE jobs SET status = 'running', error = NULL WHERE job_id = ?", [job_id])
    engine.executor = RayExecutor()
    resumed = engine.run(job_id)
    out.update(resumed_status=resumed.status, resumed_error=resumed.error, resumed_epochs=resumed.epochs_done,
               resumed_committed=per_epoch(engine))
    engine.close()
    executor.shutdown()
    cluster.shutdown()
    print("RESULT " + json.dumps(out))
'''


@pytest.mark.slow
def test_dead_worker_node_fails_the_job_and_loses_no_committed_epoch(tmp_path: Path) -> None:
    """In its own process: a multi-node Cluster cannot share a process with the local instance."""
    script = tmp_path / "node_death.py"
    script.write_text(NODE_DEATH_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["status"] == "failed", out
    assert f"ensemble group 0 lost its Ray worker after epoch {out['epochs_done']}" in out["error"], out["error"]
    assert out["returned_after_kill_s"] < 30
    assert 2 <= out["epochs_done"] < out["total"]
    # every committed epoch is complete and contiguous: 0..epochs_done, one member x 1797 examples each
    assert out["committed"] == [[e, 1797] for e in range(out["epochs_done"] + 1)]
    assert out["resumed_status"] == "succeeded", out["resumed_error"]
    assert out["resumed_committed"] == [[e, 1797] for e in range(out["total"] + 1)]
