"""The curation loop over HTTP against a real `curate serve` (uvicorn on loopback) with two API
keys: decisions, their rows through the result cache, versions, exports, diffs, tenancy, and a
decision that survives kill -9."""

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.service.conftest import SMALL_SPEC, Server, digits_npz, wait_for

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"
A, B = {"Authorization": f"Bearer {ALICE}"}, {"Authorization": f"Bearer {BOB}"}
NO_ADABOOST = {"enabled": False}


@dataclass
class Scored:
    server: Server
    client: httpx.Client  # alice's
    path: Path
    dataset_id: str
    job_id: str


def _score(c: httpx.Client, dataset_id: str) -> str:
    job = c.post("/jobs", json={"dataset_id": dataset_id, "spec": SMALL_SPEC, "adaboost": NO_ADABOOST})
    assert job.status_code == 201, job.text
    done = wait_for(c, job.json()["job_id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done["error"]
    return done["job_id"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    tmp = tmp_path_factory.mktemp("curation_api")
    server = Server(tmp / "data", env={"CURATE_API_KEYS": f"alice={ALICE},bob={BOB}",
                                       "CURATE_EXPLAIN_MAX_EXAMPLES": "0"}).start()
    path, _ = digits_npz(tmp / "d.npz", noise=0.1)
    with httpx.Client(base_url=server.url, timeout=60, headers=A) as c:
        ds = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes())
        assert ds.status_code == 201, ds.text
        try:
            yield Scored(server, c, path, ds.json()["dataset_id"], _score(c, ds.json()["dataset_id"]))
        finally:
            server.stop()


def _given(c: httpx.Client, job_id: str) -> list[str]:
    return [r["given_label"] for r in c.get(f"/jobs/{job_id}/examples", params={"limit": 1000}).json()["items"]]


def _clear_all(c: httpx.Client, job_id: str) -> None:
    items = c.get(f"/jobs/{job_id}/reviews", params={"limit": 1000}).json()["items"]
    if items:
        r = c.post(f"/jobs/{job_id}/reviews",
                   json={"decisions": [{"example_id": i["example_id"], "action": "clear"} for i in items]})
        assert r.status_code == 200, r.text


def test_a_decision_shows_at_once_in_examples_mislabeled_and_exports(scored: Scored) -> None:
    c, job_id = scored.client, scored.job_id
    flagged = c.get(f"/jobs/{job_id}/mislabeled", params={"limit": 5}).json()["items"]  # cached once succeeded
    first = flagged[0]
    assert c.get(f"/jobs/{job_id}/examples", params={"limit": 3}).json()["items"][0]["decision"] is None
    r = c.post(f"/jobs/{job_id}/reviews", json={"decisions": [
        {"example_id": first["example_id"], "action": "relabel", "label": first["suggested_label"], "note": "a 7"},
        {"example_id": 0, "action": "exclude"}]})
    assert r.status_code == 200, r.text
    assert r.json()["n_applied"] == 2 and r.json()["counts"]["exclude"] >= 1
    row = c.get(f"/jobs/{job_id}/mislabeled", params={"limit": 5}).json()["items"][0]
    assert (row["decision"], row["decided_label"]) == ("relabel", first["suggested_label"])
    assert c.get(f"/jobs/{job_id}/examples", params={"limit": 3}).json()["items"][0]["decision"] == "exclude"
    csv = pacsv.read_csv(io.BytesIO(c.get(f"/jobs/{job_id}/export", params={"what": "scores"}).content))
    assert csv.column("decision").to_pylist()[0] == "exclude"
    page = c.get(f"/jobs/{job_id}/reviews", params={"action": "relabel"}).json()
    item = next(i for i in page["items"] if i["example_id"] == first["example_id"])
    assert (item["label"], item["note"], item["decided_by"]) == (first["suggested_label"], "a 7", "alice")
    assert page["total"] == page["counts"]["relabel"]
    excluded = c.get(f"/jobs/{job_id}/examples", params={"decision": "exclude", "limit": 1000}).json()
    assert [i["example_id"] for i in excluded["items"]] == [0] and excluded["total"] == 1
    given = row["given_label"]
    flagged_given = c.get(f"/jobs/{job_id}/mislabeled", params={"given_label": given, "limit": 1000}).json()
    assert flagged_given["items"] and {i["given_label"] for i in flagged_given["items"]} == {given}
    r = c.get(f"/jobs/{job_id}/examples", params={"given_label": "kitten"})
    assert r.status_code == 422 and "given_label 'kitten' is not a class" in r.json()["error"]["message"]
    _clear_all(c, job_id)
    assert c.get(f"/jobs/{job_id}/examples", params={"limit": 3}).json()["items"][0]["decision"] is None


@pytest.mark.parametrize("body,fragment", [
    ({"decisions": [{"example_id": 99999, "action": "keep"}]}, "example 99999 not found"),
    ({"decisions": [{"example_id": 4, "action": "relabel", "label": "kitten"}]}, "label 'kitten' is not a class"),
    ({"decisions": [{"example_id": 4, "action": "relabel"}]}, "example 4: relabel needs a label"),
    ({"decisions": [{"example_id": 4, "action": "exclude", "label": "3"}]}, "example 4: exclude takes no label"),
    ({"decisions": [{"example_id": 4, "action": "maybe"}]}, "action"),
    ({"decisions": []}, "no decisions given"),
    ({"decisions": [{"example_id": 1, "action": "keep"}], "accept_suggested": {"top": 3}}, "exactly one of"),
    ({"accept_suggested": {"top": 3, "min_score": 0.5}}, "exactly one of top or min_score"),
])
def test_bad_decisions_get_422_naming_the_problem_and_store_nothing(scored: Scored, body: dict, fragment: str) -> None:
    c, job_id = scored.client, scored.job_id
    before = c.get(f"/jobs/{job_id}/reviews", params={"limit": 1000}).json()
    if "decisions" in body and body["decisions"]:
        body = {**body, "decisions": [{"example_id": 2, "action": "keep"}, *body["decisions"]]}  # a good one first
    r = c.post(f"/jobs/{job_id}/reviews", json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["error"]["message"]
    assert c.get(f"/jobs/{job_id}/reviews", params={"limit": 1000}).json() == before


def test_relabel_to_the_given_label_and_too_many_decisions_are_refused(scored: Scored) -> None:
    c, job_id = scored.client, scored.job_id
    given = _given(c, job_id)
    r = c.post(f"/jobs/{job_id}/reviews", json={"decisions": [{"example_id": 7, "action": "relabel",
                                                               "label": given[7]}]})
    assert r.status_code == 422 and f"example 7: relabel to '{given[7]}' is its given label already" in r.text
    many = {"decisions": [{"example_id": 1, "action": "keep"}] * 100_001}
    r = c.post(f"/jobs/{job_id}/reviews", json=many)
    assert r.status_code == 422 and "100000" in r.json()["error"]["message"]


def test_ten_thousand_decisions_in_one_request_take_under_a_second(scored: Scored) -> None:
    c, job_id = scored.client, scored.job_id
    given = _given(c, job_id)
    classes = sorted(set(given))
    decisions = []
    for i in range(10_000):
        example = i % len(given)
        if i % 3 == 0:
            decisions.append({"example_id": example, "action": "relabel",
                              "label": next(k for k in classes if k != given[example])})
        else:
            decisions.append({"example_id": example, "action": ("keep", "exclude", "clear")[i % 3]})
    c.post(f"/jobs/{job_id}/reviews", json={"decisions": decisions[:10]})  # warm the route
    started = time.perf_counter()
    r = c.post(f"/jobs/{job_id}/reviews", json={"decisions": decisions})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200 and r.json()["n_applied"] == 10_000, r.text
    print(f"10,000 decisions in one request: {elapsed:.3f} s")  # pytest -s shows it
    assert elapsed < 1.0, f"10,000 decisions took {elapsed:.2f} s"
    latest = {d["example_id"]: d for d in decisions}  # the last decision per example is the one that counts
    expected = sum(d["action"] == "exclude" for d in latest.values())
    assert r.json()["counts"]["exclude"] == expected
    _clear_all(c, job_id)


def test_accept_suggested_then_a_version_with_lineage_exports_and_a_diff(scored: Scored, tmp_path: Path) -> None:
    c, dataset_id, job_id = scored.client, scored.dataset_id, scored.job_id
    r = c.post(f"/jobs/{job_id}/reviews", json={"accept_suggested": {"top": 10}})
    assert r.status_code == 200 and 0 < r.json()["n_applied"] <= 10, r.text
    c.post(f"/jobs/{job_id}/reviews", json={"decisions": [{"example_id": 299, "action": "exclude"}]})
    counts = c.get(f"/jobs/{job_id}/reviews").json()["counts"]
    v = c.post(f"/datasets/{dataset_id}/versions", json={"from_job": job_id})
    assert v.status_code == 201, v.text
    v = v.json()
    assert (v["parent_id"], v["root_id"], v["version"], v["applied"]) == (dataset_id, dataset_id, 1, counts)
    assert v["n_examples"] == 300 - counts["exclude"]
    assert c.get(f"/datasets/{v['dataset_id']}").json()["parent_id"] == dataset_id
    parent = c.get(f"/datasets/{dataset_id}").json()
    assert (parent["version"], parent["parent_id"], parent["root_id"]) == (0, None, dataset_id)
    npz = c.get(f"/datasets/{v['dataset_id']}/export")
    assert npz.status_code == 200 and 'filename="d-v1.npz"' in npz.headers["content-disposition"]
    with np.load(io.BytesIO(npz.content)) as f:
        assert f["X"].shape == (v["n_examples"], 64) and len(f["y"]) == v["n_examples"]
    table = pq.read_table(io.BytesIO(c.get(f"/datasets/{v['dataset_id']}/export", params={"format": "parquet"}).content))
    assert table.column("curate_action").to_pylist().count("relabel") == counts["relabel"]
    r = c.get(f"/datasets/{v['dataset_id']}/export", params={"format": "zip"})
    assert r.status_code == 422 and "export it as csv, parquet or npz" in r.json()["error"]["message"]
    assert not [p for p in (scored.server.data_dir / "exports").rglob("*") if p.is_file()]  # temp files removed
    job_b = _score(c, v["dataset_id"])
    d = c.get(f"/jobs/{job_id}/diff/{job_b}")
    assert d.status_code == 200, d.text
    d = d.json()
    assert (d["dataset_a"], d["dataset_b"], d["excluded"]) == (dataset_id, v["dataset_id"], counts["exclude"])
    assert d["relabelled"] == counts["relabel"]
    assert sum(sum(row.values()) for row in d["splits"].values()) == v["n_examples"]
    assert {p["class"] for p in d["per_class"]} == set(parent["class_names"])
    r = c.get(f"/jobs/{job_b}/diff/{job_id}")
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_derived"


def test_the_same_file_uploaded_again_reuses_its_dataset(scored: Scored) -> None:
    c = scored.client
    r = c.post("/datasets", files={"file": ("again.npz", scored.path.read_bytes())})
    assert r.status_code == 200 and r.json()["reused"] is True and r.json()["dataset_id"] == scored.dataset_id
    other = httpx.post(f"{scored.server.url}/datasets", params={"filename": "d.npz"},
                       content=scored.path.read_bytes(), headers=B)
    assert other.status_code == 201 and other.json()["reused"] is False  # bob's upload is bob's
    assert httpx.delete(f"{scored.server.url}/datasets/{other.json()['dataset_id']}", headers=B).status_code == 204


def test_bob_can_neither_review_nor_see_alices_reviews_versions_or_diffs(scored: Scored) -> None:
    c, dataset_id, job_id = scored.client, scored.dataset_id, scored.job_id
    version = next(d for d in c.get("/datasets").json() if d["parent_id"] == dataset_id)
    before = c.get(f"/jobs/{job_id}/reviews", params={"limit": 1000}).json()
    with httpx.Client(base_url=scored.server.url, timeout=30, headers=B) as bob:
        for method, url, body in (
            ("POST", f"/jobs/{job_id}/reviews", {"decisions": [{"example_id": 1, "action": "keep"}]}),
            ("POST", f"/jobs/{job_id}/reviews", {"accept_suggested": {"top": 5}}),
            ("GET", f"/jobs/{job_id}/reviews", None),
            ("POST", f"/datasets/{dataset_id}/versions", {"from_job": job_id}),
            ("GET", f"/datasets/{version['dataset_id']}", None),
            ("GET", f"/datasets/{version['dataset_id']}/export", None),
            ("DELETE", f"/datasets/{version['dataset_id']}", None),
            ("GET", f"/jobs/{job_id}/diff/{job_id}", None),
        ):
            r = bob.request(method, url, json=body)
            assert r.status_code == 404, (method, url, r.text)
        assert bob.get("/datasets").json() == []
    assert c.get(f"/jobs/{job_id}/reviews", params={"limit": 1000}).json() == before


def test_a_dataset_with_versions_is_deleted_only_with_its_tree(scored: Scored) -> None:
    c, dataset_id = scored.client, scored.dataset_id
    r = c.delete(f"/datasets/{dataset_id}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "has_versions"
    versions = [d["dataset_id"] for d in c.get("/datasets").json() if d["root_id"] == dataset_id and d["version"]]
    assert versions
    assert c.delete(f"/datasets/{dataset_id}", params={"tree": "true"}).status_code == 204
    for gone in (dataset_id, *versions):
        assert c.get(f"/datasets/{gone}").status_code == 404
    assert c.get(f"/jobs/{scored.job_id}/reviews").status_code == 404


@pytest.mark.slow
def test_a_decision_acknowledged_survives_kill9(start_server, tmp_path: Path) -> None:
    data = tmp_path / "crash"
    srv: Server = start_server(data, CURATE_EXPLAIN_MAX_EXAMPLES="0")
    path, _ = digits_npz(tmp_path / "d.npz", n=120)
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        ds = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes()).json()
        job_id = _score(c, ds["dataset_id"])
        r = c.post(f"/jobs/{job_id}/reviews", json={"decisions": [{"example_id": 3, "action": "exclude",
                                                                   "note": "blurry"}]})
        assert r.status_code == 200, r.text
    srv.kill9()  # right after the 200: nothing gets to flush or close
    restarted: Server = start_server(data)
    with httpx.Client(base_url=restarted.url, timeout=30) as c:
        items = c.get(f"/jobs/{job_id}/reviews").json()["items"]
        assert [(i["example_id"], i["action"], i["note"], i["decided_by"]) for i in items] == [
            (3, "exclude", "blurry", "local")]
        assert c.get(f"/jobs/{job_id}/examples", params={"limit": 5}).json()["items"][3]["decision"] == "exclude"
