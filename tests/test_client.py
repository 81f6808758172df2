"""curate.Client against a real `curate serve` (uvicorn on loopback, benchmarks/live_server.Server as
the tests/service fixtures use it; one server with two API keys for the whole module): the verbs,
progress over server-sent events, one error type, bounded reconnects, recorded jobs over HTTP with
their tenancy and size bounds, and the CLI's --url door through the same client."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import curate
from benchmarks.live_server import Server, free_port
from service.cli.main import app as cli_app
from service.schemas import DatasetOut, ExampleOut, JobOut
from tests.service.conftest import digits_npz

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"
SMALL = {"n_members": 2, "n_epochs": 3, "hidden_units": 32, "batch_size": 64}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("client") / "data", env={"CURATE_API_KEYS": f"alice={ALICE},bob={BOB}",
                                                                   "CURATE_EXPLAIN_MAX_EXAMPLES": "0"}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def uploaded(live: Server, tmp_path_factory: pytest.TempPathFactory) -> DatasetOut:
    path, _ = digits_npz(tmp_path_factory.mktemp("npz") / "d.npz", n=200, noise=0.1)
    with curate.Client(live.url, api_key=ALICE) as client:
        return client.upload(path)


@pytest.mark.slow
def test_submit_wait_with_progress_and_read(live: Server, uploaded: DatasetOut, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    with curate.Client(live.url, api_key=ALICE) as client:
        job = client.submit(uploaded.dataset_id, adaboost=False, **SMALL)
        assert isinstance(job, JobOut) and job.epochs_total == 3
        done = client.wait(job.job_id, lambda d, t: seen.append((d, t)))
        assert done.status == "succeeded" and seen and seen[-1] == (3, 3)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        scores = client.scores(done.job_id)
        assert len(scores) == 200 and isinstance(scores[0], ExampleOut)
        flagged = client.mislabeled(done.job_id, limit=5)
        assert [e.mislabel_score for e in flagged] == sorted((e.mislabel_score for e in flagged), reverse=True)
        assert [e.epoch for e in client.dynamics(done.job_id).epochs] == [0, 1, 2, 3]
        out = client.export(done.job_id, tmp_path / "hard.csv", what="hard")
        assert out.read_text().count("\n") == sum(e.split == "hard" for e in scores) + 1
        result = client.review(done.job_id, curate.DecisionIn(example_id=flagged[0].example_id, action="keep"))
        assert result.counts["keep"] == 1
        version = client.apply(done.job_id)
        assert version.parent_id == uploaded.dataset_id
        assert client.diff(done.job_id, done.job_id).suspects.new == 0


def test_errors_carry_the_server_code_status_and_message(live: Server, uploaded: DatasetOut) -> None:
    with curate.Client(live.url, api_key=ALICE) as alice, curate.Client(live.url, api_key=BOB) as bob:
        with pytest.raises(curate.CurateError) as missing:
            alice.job("nope")
        assert (missing.value.code, missing.value.status, missing.value.message) == ("not_found", 404,
                                                                                   "job nope not found")
        with pytest.raises(curate.CurateError, match=f"dataset {uploaded.dataset_id} not found"):
            bob.submit(uploaded.dataset_id)  # tenancy: bob cannot see alice's dataset
        with pytest.raises(curate.CurateError, match="n_members") as bad:
            alice.submit(uploaded.dataset_id, n_members=0)
        assert bad.value.code == "invalid_spec"
        with pytest.raises(curate.CurateError) as unauthorized:
            curate.Client(live.url).datasets()
        assert unauthorized.value.status == 401 and unauthorized.value.code == "unauthorized"


def test_reconnects_are_bounded_by_attempts_and_deadline() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for reconnect, most in ((curate.Reconnect(max_attempts=3, first_delay_s=0.05), 2.0),
                            (curate.Reconnect(max_attempts=1000, first_delay_s=0.05, max_delay_s=0.05,
                                              deadline_s=0.5), 3.0)):
        started = time.monotonic()
        with curate.Client(dead, reconnect=reconnect) as client:
            with pytest.raises(curate.CurateError, match="could not follow it again") as lost:
                client.wait("some-job", progress=False)
        assert lost.value.code == "unreachable" and lost.value.status is None
        assert time.monotonic() - started < most


def test_recorded_job_over_http_with_tenancy_and_size_bounds(live: Server, uploaded: DatasetOut) -> None:
    n, k = uploaded.n_examples, uploaded.n_classes
    rng = np.random.default_rng(0)
    rec = curate.Recorder(uploaded.dataset_id, n_classes=k, url=live.url, api_key=ALICE, n_epochs=3)
    for epoch in range(0, 4):
        for model in range(2):
            rec.log(epoch, np.arange(n), rng.normal(size=(n, k)), model=model)
    with httpx.Client(base_url=live.url, timeout=30) as raw:
        url = f"/jobs/{rec.job_id}/epochs"
        as_bob = raw.post(url, params={"model": 0, "epoch": 1}, content=b"\0" * (n * k * 4),
                          headers={"Authorization": f"Bearer {BOB}"})
        assert as_bob.status_code == 404  # bob cannot log into alice's job
        alice = {"Authorization": f"Bearer {ALICE}"}
        short = raw.post(url, params={"model": 0, "epoch": 1}, content=b"\0" * 12, headers=alice)
        assert short.status_code == 422 and f"takes exactly {n * k * 4:,}" in short.json()["error"]["message"]
        big = raw.post(url, params={"model": 0, "epoch": 1}, content=b"\0" * (n * k * 4 + 4), headers=alice)
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        nan = raw.post(url, params={"model": 0, "epoch": 1}, headers=alice,
                       content=np.full((n, k), np.nan, "<f4").tobytes())
        assert nan.status_code == 422 and "not finite" in nan.json()["error"]["message"]
    result = rec.finish()
    assert result.job.status == "succeeded" and result.summary["recorded"]["n_models"] == 2
    assert len(result.scores) == n and len(result.mislabeled()) == result.job.estimated_n_errors
    with curate.Client(live.url, api_key=BOB) as bob, pytest.raises(curate.CurateError, match="not found"):
        bob.finish_recorded(rec.job_id)


def test_the_cli_talks_to_the_server_through_the_client(live: Server, uploaded: DatasetOut) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["datasets", "--url", live.url, "--api-key", ALICE])
    assert listed.exit_code == 0 and uploaded.dataset_id in listed.output
    missing = runner.invoke(cli_app, ["show", "nope", "--url", live.url, "--api-key", ALICE])
    assert missing.exit_code == 1 and "error: job nope not found" in missing.output


@pytest.mark.slow
def test_wait_follows_the_job_across_a_server_restart(tmp_path: Path) -> None:
    """The old loop retried forever; the bounded one must still ride out a crash and restart (the
    server resumes the job from its last committed epoch). kill -9, since a SIGTERM'd uvicorn waits
    for the open event stream, i.e. for the job, before it stops."""
    import threading

    path, _ = digits_npz(tmp_path / "d.npz", n=200)
    first = Server(tmp_path / "data", env={"CURATE_EXPLAIN_MAX_EXAMPLES": "0"}).start()
    waited: list[JobOut] = []
    try:
        # retries every 0.25-1 s (the default backs off to 8 s: up to 8 s idle once the server is back)
        reconnect = curate.Reconnect(first_delay_s=0.25, max_delay_s=1.0, max_attempts=100, deadline_s=120.0)
        with curate.Client(first.url, reconnect=reconnect) as client:
            ds = client.upload(path)
            job = client.submit(ds.dataset_id, adaboost=False, **{**SMALL, "n_epochs": 12, "batch_size": 8})
            follower = threading.Thread(target=lambda: waited.append(client.wait(job.job_id, progress=False)))
            follower.start()
            while client.job(job.job_id).epochs_done < 2:
                time.sleep(0.1)
            first.kill9()  # the event stream drops mid-job
            second = Server(tmp_path / "data", port=first.port, env=first.env).start()
            try:
                follower.join(120)
            finally:
                second.stop()
    finally:
        first.stop()
    assert waited and waited[0].status == "succeeded" and waited[0].attempt >= 2
