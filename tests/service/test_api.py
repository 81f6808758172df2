"""The REST API against a real uvicorn server on loopback: lifecycle, cancel, crash/restart,
bad uploads, limits and API keys."""

import io
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import SMALL_SPEC, Server, digits_npz, wait_for, wait_until


def _upload(client: httpx.Client, path: Path) -> dict:
    r = client.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.slow
def test_upload_job_events_results(server: Server, tmp_path: Path) -> None:
    path, flipped = digits_npz(tmp_path / "d.npz", noise=0.1)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ds = _upload(c, path)
        assert ds["n_examples"] == 300 and ds["n_classes"] == 10
        # multipart works too; the same file again reuses the stored dataset (200, reused) instead of a duplicate
        r = c.post("/datasets", files={"file": ("d.npz", path.read_bytes())})
        assert r.status_code == 200 and r.json()["reused"] is True and r.json()["dataset_id"] == ds["dataset_id"]
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": {**SMALL_SPEC, "n_epochs": 8},
                                    "adaboost": {"n_rounds": 10}}).json()
        assert job["status"] in ("queued", "running") and job["epochs_total"] == 8
        events = []
        with c.stream("GET", f"/jobs/{job['job_id']}/events", timeout=180) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            for line in s.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
        assert events[-1] == "end" and events.count("progress") >= 2
        done = c.get(f"/jobs/{job['job_id']}").json()
        assert done["status"] == "succeeded" and done["progress"] == 1.0
        page = c.get(f"/jobs/{job['job_id']}/examples", params={"limit": 50, "offset": 10}).json()
        assert page["total"] == 300 and len(page["items"]) == 50 and page["items"][0]["example_id"] == 10
        hard = c.get(f"/jobs/{job['job_id']}/examples", params={"split": "hard", "limit": 1000}).json()
        assert all(i["split"] == "hard" for i in hard["items"])
        sus = c.get(f"/jobs/{job['job_id']}/mislabeled", params={"limit": 1000}).json()
        found = {i["example_id"] for i in sus["items"]}
        assert len(found & set(flipped.tolist())) >= 0.5 * len(flipped)
        assert all(i["suggested_label"] != i["given_label"] for i in sus["items"])
        dyn = c.get(f"/jobs/{job['job_id']}/dynamics").json()
        assert [e["epoch"] for e in dyn["epochs"]] == list(range(9))
        assert all(sum(e["consistency"]) == 300 for e in dyn["epochs"])
        ada = c.get(f"/jobs/{job['job_id']}/adaboost").json()
        assert len(ada["curves"]["easy"]) == 10 and ada["correlation"]["spearman_r"] is not None
        csv = c.get(f"/jobs/{job['job_id']}/export", params={"what": "mislabeled", "format": "csv"})
        assert csv.status_code == 200 and csv.text.count("\n") == len(found) + 1
        assert c.get(f"/jobs/{job['job_id']}/examples", params={"limit": 10**6}).status_code == 422


@pytest.mark.slow
def test_cancel_stops_training_within_seconds(server: Server, tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ds = _upload(c, path)
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": {**SMALL_SPEC, "n_epochs": 500},
                                    "adaboost": {"enabled": False}}).json()
        wait_for(c, job["job_id"], ("running",))
        wait_until(lambda: c.get(f"/jobs/{job['job_id']}").json()["epochs_done"] >= 1, timeout=120,
                   interval=0.2, what="one epoch done")
        asked = time.monotonic()
        assert c.delete(f"/jobs/{job['job_id']}").json()["status"] in ("cancelling", "cancelled")
        final = wait_for(c, job["job_id"], ("cancelled",), timeout=30)
        assert time.monotonic() - asked < 15
        assert final["epochs_done"] < 500
        r = c.get(f"/jobs/{job['job_id']}/examples")
        assert r.status_code == 409 and r.json()["error"]["code"] == "job_not_finished"
        # a finished job's dataset can be deleted; then it is gone
        assert c.delete(f"/datasets/{ds['dataset_id']}").status_code == 204
        assert c.get(f"/datasets/{ds['dataset_id']}").status_code == 404


@pytest.mark.slow
def test_kill9_mid_training_resumes_to_identical_results(start_server, tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    # batch 8: ~40 steps an epoch, so the kill lands mid-training even with workers that start at once
    spec = {**SMALL_SPEC, "n_epochs": 24, "batch_size": 8, "random_state": 5}
    # no explanations after the jobs: the scores and predictions are compared, not attributions (~1-2 s a job)
    quiet = {"CURATE_EXPLAIN_MAX_EXAMPLES": "0"}
    clean: Server = start_server(tmp_path / "clean", **quiet)  # the uninterrupted reference trains beside it
    with httpx.Client(base_url=clean.url, timeout=30) as c:
        ds = _upload(c, path)
        other = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": spec,
                                      "adaboost": {"n_rounds": 5}}).json()["job_id"]
    data = tmp_path / "crashy"
    srv: Server = start_server(data, **quiet)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        ds = _upload(c, path)
        job_id = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": spec,
                                       "adaboost": {"n_rounds": 5}}).json()["job_id"]
        wait_until(lambda: c.get(f"/jobs/{job_id}").json()["epochs_done"] >= 3, timeout=180, interval=0.1,
                   what="three epochs done")
    srv.kill9()
    restarted: Server = start_server(data, **quiet)
    with httpx.Client(base_url=restarted.url, timeout=30) as c:
        job = wait_for(c, job_id, ("succeeded", "failed"))
        assert job["status"] == "succeeded" and job["attempt"] >= 2, job["error"]
        resumed = c.get(f"/jobs/{job_id}/examples", params={"limit": 1000}).json()["items"]
    with httpx.Client(base_url=clean.url, timeout=30) as c:
        wait_for(c, other, ("succeeded",))
        reference = c.get(f"/jobs/{other}/examples", params={"limit": 1000}).json()["items"]
    assert resumed == reference
    restarted.stop()
    import duckdb

    con = duckdb.connect(str(data / "curate.duckdb"), read_only=True)
    per_key = con.execute("SELECT max(c) FROM (SELECT model, member, epoch, example_id, count(*) c "
                          "FROM predictions GROUP BY ALL)").fetchone()[0]
    epochs = con.execute("SELECT count(DISTINCT epoch) FROM predictions WHERE model = 'ensemble'").fetchone()[0]
    con.close()
    assert per_key == 1 and epochs == 25  # every epoch exactly once
    assert not list((data / "uploads").glob("*"))  # no partial upload left behind


def _zip_slip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil/a.png", b"x")
    return buf.getvalue()


@pytest.fixture(scope="module")
def good_dataset(shared_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A good dataset on the shared server, which no bad upload may disturb."""
    path, _ = digits_npz(tmp_path_factory.mktemp("good") / "good.npz", n=60)
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        return _upload(c, path)["dataset_id"]


@pytest.mark.parametrize("filename,body,status,fragment", [
    ("x.csv", b"a,b\n1,2\n3,4\n", 422, "no label column 'label'"),
    ("x.csv", b"a,label\n1,x\n2,x\n3,x\n", 422, "class"),
    ("x.csv", b"a,label\n1,x\ninf,y\n2,x\n4,y\n", 422, "row 1, column 'a' is infinite"),  # a gap is imputed
    ("x.csv", b"a,label\n1,x\n1,y\n1,x\n1,y\n", 422, "no usable feature column: 'a' is constant"),
    ("x.txt", b"hello", 415, "unsupported"),
    ("x.npz", b"not a zip", 422, "x.npz"),
    ("evil.zip", _zip_slip(), 422, "unsafe entry"),
    ("x.csv", b"", 422, "empty"),
    ("", b"a,label\n1,x\n", 422, "file name"),
])
def test_bad_uploads_get_4xx_and_store_nothing(shared_server: Server, good_dataset: str, filename: str, body: bytes,
                                               status: int, fragment: str) -> None:
    """One server for every case (a server per case cost ~48 s); each case leaves what was stored,
    the good dataset among it, exactly as it was."""
    stored = sorted(p.name for p in (shared_server.data_dir / "datasets").iterdir())
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        listed = [d["dataset_id"] for d in c.get("/datasets").json()]
        assert good_dataset in listed
        r = c.post("/datasets", params={"filename": filename}, content=body)
        assert r.status_code == status, r.text
        assert fragment in r.json()["error"]["message"]
        assert [d["dataset_id"] for d in c.get("/datasets").json()] == listed
    assert sorted(p.name for p in (shared_server.data_dir / "datasets").iterdir()) == stored
    assert not list((shared_server.data_dir / "uploads").glob("*"))


def test_upload_size_limit_gives_413(start_server, tmp_path: Path) -> None:
    srv: Server = start_server(CURATE_MAX_UPLOAD_BYTES="1000")
    path, _ = digits_npz(tmp_path / "d.npz", n=100)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes())
        assert r.status_code == 413 and r.json()["error"]["code"] == "dataset_too_large"

        def chunked():  # no Content-Length: the limit holds while streaming
            data = path.read_bytes()
            for i in range(0, len(data), 500):
                yield data[i:i + 500]

        r = c.post("/datasets", params={"filename": "d.npz"}, content=chunked())
        assert r.status_code == 413
        assert c.get("/datasets").json() == []


@pytest.mark.slow  # ~6 s: a server, whose teardown stops alice's running job
def test_api_keys_isolate_owners(start_server, tmp_path: Path) -> None:
    alice, bob = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"
    srv: Server = start_server(CURATE_API_KEYS=f"alice={alice},bob={bob}")
    path, _ = digits_npz(tmp_path / "d.npz", n=60)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/datasets")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.get("/datasets", headers={"Authorization": "Bearer wrong"}).status_code == 401
        a = {"Authorization": f"Bearer {alice}"}
        b = {"Authorization": f"Bearer {bob}"}
        ds = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes(), headers=a).json()
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": SMALL_SPEC,
                                    "adaboost": {"enabled": False}}, headers=a).json()
        assert c.get(f"/datasets/{ds['dataset_id']}", headers=b).status_code == 404
        assert c.get(f"/jobs/{job['job_id']}", headers=b).status_code == 404
        assert c.delete(f"/jobs/{job['job_id']}", headers=b).status_code == 404
        assert c.post("/jobs", json={"dataset_id": ds["dataset_id"]}, headers=b).status_code == 404
        assert c.get("/jobs", headers=b).json() == [] and c.get("/datasets", headers=b).json() == []
        assert [j["job_id"] for j in c.get("/jobs", headers=a).json()] == [job["job_id"]]


def test_error_shape_for_unknown_routes_and_bad_bodies(shared_server: Server) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        r = c.get("/nope")
        assert r.status_code == 404 and set(r.json()["error"]) == {"code", "message"}
        r = c.post("/jobs", json={"dataset_id": "x", "spec": {"n_members": 0}})
        assert r.status_code == 422 and "n_members" in r.json()["error"]["message"]
        r = c.get("/jobs/none")
        assert r.status_code == 404 and r.json()["error"]["message"] == "job none not found"


def test_a_spec_the_dataset_cannot_take_is_refused_at_submission(shared_server: Server, tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        jobs_before = c.get("/jobs").json()
        ds = c.post("/datasets", files={"file": ("d.npz", path.read_bytes())}).json()
        for spec, message in (({"model": "cnn"}, "model=cnn needs images"),
                              ({"augment": "shift"}, "augment=shift needs images")):
            r = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": spec})
            assert r.status_code == 422 and message in r.json()["error"]["message"], r.text
            assert ds["dataset_id"] in r.json()["error"]["message"]
        assert c.get("/jobs").json() == jobs_before  # nothing queued


@pytest.mark.slow
def test_retry_resumes_a_cancelled_job_from_its_last_epoch(server: Server, tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ds = _upload(c, path)
        # batch 8: ~40 steps an epoch, so the cancel lands mid-training even with workers that start at once
        job = c.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": {**SMALL_SPEC, "n_epochs": 30, "batch_size": 8},
                                    "adaboost": {"enabled": False}}).json()
        wait_until(lambda: c.get(f"/jobs/{job['job_id']}").json()["epochs_done"] >= 2, timeout=180,
                   what="two epochs done")
        c.delete(f"/jobs/{job['job_id']}")
        cancelled = wait_for(c, job["job_id"], ("cancelled",), timeout=30)
        assert 2 <= cancelled["epochs_done"] < 30
        r = c.post(f"/jobs/{job['job_id']}/retry")
        assert r.status_code == 200 and r.json()["status"] in ("queued", "running")
        done = wait_for(c, job["job_id"], ("succeeded", "failed"))
        assert done["status"] == "succeeded" and done["attempt"] == 2 and done["epochs_done"] == 30
        again = c.post(f"/jobs/{job['job_id']}/retry")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        assert c.get(f"/jobs/{job['job_id']}/examples", params={"limit": 1000}).json()["total"] == 300
    server.stop()
    import duckdb

    con = duckdb.connect(str(server.data_dir / "curate.duckdb"), read_only=True)
    per_key = con.execute("SELECT max(c), count(*) FROM (SELECT member, epoch, example_id, count(*) c "
                          "FROM predictions WHERE model = 'ensemble' GROUP BY ALL)").fetchone()
    con.close()
    assert per_key == (1, 2 * 31 * 300)  # every (member, epoch, example) exactly once across both attempts
