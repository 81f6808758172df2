"""The read endpoints' in-memory cache of succeeded jobs (service.read.cache): the same answers as
DuckDB for every order, split and page, owners still isolated, running jobs still live, and a
bounded LRU."""

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.engine.engine import Engine
from service.errors import NotFound
from service.read import queries
from service.read.cache import ScoreIndex
from service.result_cache import ResultCache
from service.schemas import DynamicsOut, ExampleOut, ExamplePage
from service.settings import Settings
from service.store import jobs
from service.store.db import JOB_TABLES
from tests.service.conftest import SMALL_SPEC, digits_npz, wait_for

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"
ALICE_ID = f"key:{hashlib.sha256(ALICE.encode()).hexdigest()[:16]}"  # the owner id of an env key (service.api.auth)
SMALL = {**SMALL_SPEC, "n_epochs": 2}
ORDERS = ("example_id", "mislabel_score", "accessibility", "consistency")
SPLITS = (None, "easy", "intermediate", "hard")


@dataclass
class Served:
    client: TestClient
    engine: Engine
    job_id: str
    dataset_id: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An in-process app with two API keys and one succeeded job of alice's (300 digits, 10 % flips)."""
    tmp = tmp_path_factory.mktemp("cache")
    path, _ = digits_npz(tmp / "d.npz", noise=0.1)
    app = create_app(Settings(data_dir=tmp / "data", api_keys=f"alice={ALICE},bob={BOB}"))
    with TestClient(app, headers={"Authorization": f"Bearer {ALICE}"}) as client:
        ds = client.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes()).json()
        job = client.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": SMALL,
                                         "adaboost": {"n_rounds": 3}}).json()
        done = wait_for(client, job["job_id"], ("succeeded", "failed"))
        assert done["status"] == "succeeded", done["error"]
        yield Served(client, app.state.engine, job["job_id"], ds["dataset_id"])


def duckdb_page(engine: Engine, job_id: str, owner: str, limit: int, offset: int, **filters: object) -> dict:
    """What the endpoint answered before the cache: score_page (SQL) through the response model."""
    rows, total = queries.score_page(engine.store, job_id, owner=owner, limit=limit, offset=offset, **filters)
    return ExamplePage(job_id=job_id, total=total, limit=limit, offset=offset,
                       items=[ExampleOut(**r) for r in rows.to_pylist()]).model_dump(mode="json")


@pytest.mark.slow
def test_every_order_split_and_page_equals_duckdb(served: Served) -> None:
    c, engine, job_id = served.client, served.engine, served.job_id
    for order in ORDERS:
        for split in SPLITS:
            for limit, offset in ((1, 0), (50, 0), (50, 7), (1000, 0), (10, 295), (10, 300), (5, 10_000)):
                params = {"order": order, "limit": limit, "offset": offset} | ({"split": split} if split else {})
                r = c.get(f"/jobs/{job_id}/examples", params=params)
                assert r.status_code == 200 and r.headers["content-type"] == "application/json"
                assert r.json() == duckdb_page(engine, job_id, ALICE_ID, limit, offset, split=split, order=order)
    for limit, offset in ((1000, 0), (3, 2), (10, 10_000)):
        r = c.get(f"/jobs/{job_id}/mislabeled", params={"limit": limit, "offset": offset})
        assert r.json() == duckdb_page(engine, job_id, ALICE_ID, limit, offset, suspected_only=True,
                                       order="mislabel_score")
    assert r.json()["total"] > 0
    assert isinstance(engine.cache.get((job_id, "scores")), ScoreIndex)  # served from memory


@pytest.mark.slow
def test_job_dynamics_and_adaboost_equal_duckdb(served: Served) -> None:
    c, store, job_id = served.client, served.engine.store, served.job_id
    for _ in range(2):  # the first answer fills the cache, the second comes from it
        assert c.get(f"/jobs/{job_id}").json() == jobs.job_out(jobs.get_job(store, job_id, ALICE_ID)).model_dump(
            mode="json")
        for n_bins in (20, 7):
            expected = DynamicsOut(job_id=job_id, n_bins=n_bins,
                                   epochs=queries.dynamics_histograms(store, job_id, n_bins, ALICE_ID))
            assert c.get(f"/jobs/{job_id}/dynamics", params={"n_bins": n_bins}).json() == expected.model_dump(
                mode="json")
        assert c.get(f"/jobs/{job_id}/adaboost").json() == queries.adaboost_comparison(
            store, job_id, ALICE_ID).model_dump(mode="json")
    assert served.engine.cache.get((job_id, ("dynamics", 7))) is not None


@pytest.mark.slow
def test_other_owners_get_404_from_a_warm_cache(served: Served) -> None:
    c, job_id = served.client, served.job_id
    urls = [f"/jobs/{job_id}", f"/jobs/{job_id}/examples", f"/jobs/{job_id}/examples?split=hard&order=consistency",
            f"/jobs/{job_id}/mislabeled", f"/jobs/{job_id}/dynamics", f"/jobs/{job_id}/adaboost"]
    for url in urls:
        assert c.get(url).status_code == 200  # alice's: warms the cache
    for url in urls:
        r = c.get(url, headers={"Authorization": f"Bearer {BOB}"})
        assert r.status_code == 404 and r.json()["error"] == {"code": "not_found",
                                                             "message": f"job {job_id} not found"}
        assert c.get(url, headers={"Authorization": "Bearer wrong-key"}).status_code == 401
    assert c.get(f"/jobs/{job_id}/examples").status_code == 200


@pytest.mark.slow
def test_cancel_and_retry_leave_a_succeeded_job_cached_and_forget_rebuilds(served: Served) -> None:
    c, engine, job_id = served.client, served.engine, served.job_id
    before = c.get(f"/jobs/{job_id}/examples", params={"order": "mislabel_score"}).json()
    assert c.delete(f"/jobs/{job_id}").json()["status"] == "succeeded"  # cancel: nothing to do
    assert c.post(f"/jobs/{job_id}/retry").status_code == 409  # only failed or cancelled jobs
    assert c.get(f"/jobs/{job_id}/examples", params={"order": "mislabel_score"}).json() == before
    engine.cache.forget_job(job_id)
    assert engine.cache.get((job_id, "scores")) is None and engine.cache.get((job_id, "job")) is None
    assert c.get(f"/jobs/{job_id}/examples", params={"order": "mislabel_score"}).json() == before
    assert engine.cache.get((job_id, "scores")) is not None


@pytest.mark.slow
def test_running_jobs_read_live_and_a_retried_job_is_served_once_it_succeeds(served: Served) -> None:
    c, engine = served.client, served.engine
    # batch 8: ~40 steps an epoch, so the cancel lands mid-training even with workers that start at once
    job_id = c.post("/jobs", json={"dataset_id": served.dataset_id, "spec": {**SMALL, "n_epochs": 30, "batch_size": 8},
                                   "adaboost": {"enabled": False}}).json()["job_id"]
    seen = set()
    deadline = time.monotonic() + 120
    while len(seen) < 2 and time.monotonic() < deadline:  # progress moves between two reads
        job = c.get(f"/jobs/{job_id}").json()
        assert job["status"] in ("queued", "running")
        seen.add(job["epochs_done"])
        time.sleep(0.05)
    assert len(seen) >= 2
    assert c.get(f"/jobs/{job_id}/examples").status_code == 409
    c.delete(f"/jobs/{job_id}")
    cancelled = wait_for(c, job_id, ("cancelled",), timeout=30)
    assert cancelled["epochs_done"] < 30 and c.get(f"/jobs/{job_id}/examples").status_code == 409
    assert c.post(f"/jobs/{job_id}/retry").json()["status"] in ("queued", "running")
    done = wait_for(c, job_id, ("succeeded", "failed"))
    assert done["status"] == "succeeded" and done["attempt"] == 2
    assert c.get(f"/jobs/{job_id}").json() == done
    assert c.get(f"/jobs/{job_id}/examples", params={"limit": 1000}).json() == duckdb_page(
        engine, job_id, ALICE_ID, 1000, 0)


@pytest.mark.slow
def test_a_job_too_big_for_the_budget_pages_from_duckdb(served: Served) -> None:
    store, job_id = served.engine.store, served.job_id
    tiny = ResultCache(max_bytes=20_000)  # room for the job row and payloads, not 300 rendered rows
    for order in ORDERS:
        page = queries.example_page_json(store, tiny, job_id, owner=ALICE_ID, split="easy", order=order, limit=40,
                                         offset=3)
        assert ExamplePage.model_validate_json(page).model_dump(mode="json") == duckdb_page(
            served.engine, job_id, ALICE_ID, 40, 3, split="easy", order=order)
    assert tiny.get((job_id, "scores")) is None and tiny.get((job_id, "job")) is not None
    assert tiny.nbytes <= tiny.max_bytes
    with pytest.raises(NotFound):
        queries.example_page_json(store, tiny, job_id, owner="bob")


def test_lru_evicts_the_least_recently_used_within_the_budget() -> None:
    cache = ResultCache(max_bytes=100)
    for name in "abc":
        assert cache.put((name, "x"), name, 40)
    assert cache.get(("a", "x")) is None and cache.nbytes == 80  # a went to make room for c
    cache.get(("b", "x"))  # b is now more recent than c
    cache.put(("d", "x"), "d", 40)
    assert cache.get(("c", "x")) is None and cache.get(("b", "x")) == "b" and cache.nbytes == 80
    assert not cache.put(("e", "x"), "e", 101) and cache.nbytes == 80  # larger than the budget: not kept
    assert cache.fetch(("e", "x"), lambda: ("never built", 1)) is None
    cache.put(("b", "y"), "b2", 10)
    cache.forget_job("b")
    assert cache.get(("b", "x")) is None and cache.get(("b", "y")) is None and cache.nbytes == 40


def test_fetch_builds_once_while_many_threads_ask() -> None:
    cache = ResultCache(max_bytes=1000)
    builds = []

    def build() -> tuple[str, int]:
        builds.append(1)
        time.sleep(0.05)
        return "value", 10

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cache.fetch(("j", "k"), build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["value"] * 8 and len(builds) == 1


@pytest.mark.slow
def test_a_succeeded_job_is_warmed_and_deleting_its_dataset_deletes_it_everywhere(tmp_path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    app = create_app(Settings(data_dir=tmp_path / "data"))
    with TestClient(app) as c:
        ds = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes()).json()
        other_path, _ = digits_npz(tmp_path / "e.npz", noise=0.05)  # other bytes: the same file would be reused
        other = c.post("/datasets", params={"filename": "e.npz"}, content=other_path.read_bytes()).json()
        ids = []
        for dataset in (ds, other):
            job = c.post("/jobs", json={"dataset_id": dataset["dataset_id"], "spec": SMALL,
                                        "adaboost": {"n_rounds": 3}}).json()
            assert wait_for(c, job["job_id"], ("succeeded", "failed"))["status"] == "succeeded"
            # the scheduler fills the cache right after the job succeeds, before anyone asks
            deadline = time.monotonic() + 15
            # (scores, dynamics and adaboost are filled one after another: wait for the last)
            while not isinstance(app.state.engine.cache.get((job["job_id"], "adaboost")), bytes):
                assert time.monotonic() < deadline, "the scheduler did not warm the adaboost entry"
                time.sleep(0.05)
            assert isinstance(app.state.engine.cache.get((job["job_id"], "scores")), ScoreIndex)
            assert c.get(f"/jobs/{job['job_id']}/examples").status_code == 200
            ids.append(job["job_id"])
        gone, kept = ids
        store, settings = app.state.engine.store, app.state.engine.settings
        assert (settings.jobs_dir / gone).exists()

        assert c.delete(f"/datasets/{ds['dataset_id']}").status_code == 204
        for url in (f"/jobs/{gone}", f"/jobs/{gone}/examples", f"/jobs/{gone}/mislabeled", f"/jobs/{gone}/dynamics"):
            r = c.get(url)
            assert r.status_code == 404 and r.json()["error"]["message"] == f"job {gone} not found", url
        assert [j["job_id"] for j in c.get("/jobs").json()] == [kept]
        assert not (settings.jobs_dir / gone).exists()
        with store.reader() as cur:
            for table in (*JOB_TABLES, "jobs"):
                n = cur.execute(f"SELECT count(*) FROM {table} WHERE job_id = ?", [gone]).fetchone()[0]
                assert n == 0, table
            assert cur.execute("SELECT count(*) FROM example_scores WHERE job_id = ?", [kept]).fetchone()[0] == 300
        assert c.get(f"/jobs/{kept}/examples", params={"limit": 5}).json()["total"] == 300  # the other job is intact
