"""The review page (the galleries), the dataset page and the diff page against a real `curate serve`:
order, filters, page numbers, decisions shown after they are stored, versions with their exports,
re-score, diff, and escaping of class and dataset names."""

import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.service.conftest import Server, wait_for

pytestmark = pytest.mark.slow
EVIL_CLASS = "<b>x</b>"
EVIL_NAME = "<i>evil</i>.npz"
CLASSES = ["zero", "one", EVIL_CLASS, "three"]
SPEC = {"n_members": 3, "n_epochs": 4}
ADABOOST = {"enabled": False}


@dataclass
class Reviewed:
    server: Server
    client: httpx.Client
    dataset_id: str
    job_id: str


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewed]:
    """A server with one succeeded small job on four digit classes, 10 % of the labels flipped; one class
    is named like HTML."""
    tmp = tmp_path_factory.mktemp("review")
    X, y = load_digits(return_X_y=True)
    X, y = X[y < 4][:200].astype(np.float32), y[y < 4][:200].copy()
    flipped = np.random.default_rng(0).choice(len(y), 20, replace=False)
    y[flipped] = (y[flipped] + 1) % 4
    np.savez(tmp / "d.npz", X=X, y=y, class_names=np.array(CLASSES))
    server = Server(tmp / "data", env={"CURATE_EXPLAIN_MAX_EXAMPLES": "0"}).start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        ds = client.post("/datasets", params={"filename": "d.npz", "name": EVIL_NAME},
                         content=(tmp / "d.npz").read_bytes()).json()
        job = client.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": SPEC, "adaboost": ADABOOST}).json()
        finished = wait_for(client, job["job_id"], ("succeeded", "failed"))
        assert finished["status"] == "succeeded", finished["error"]
        try:
            yield Reviewed(server, client, ds["dataset_id"], job["job_id"])
        finally:
            server.stop()


def _html(client: httpx.Client, url: str, status: int = 200, **params: object) -> str:
    r = client.get(url, params=params) if params else client.get(url)  # params={} would drop url's query
    assert r.status_code == status, (url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html") and r.text.startswith("<!doctype html>")
    return r.text


def _cards(html: str) -> list[dict[str, str]]:
    """Each card's data attributes and its decision badge, in page order."""
    out = []
    for m in re.finditer(r'<div class="card([^"]*)" tabindex="0" data-example="(\d+)" data-given="([^"]*)" '
                         r'data-suggested="([^"]*)" data-decision="([^"]*)">(.*?)<span class="decision">([^<]*)</span>',
                         html, re.S):
        out.append({"classes": m[1], "example_id": int(m[2]), "given": html_lib.unescape(m[3]),
                    "suggested": html_lib.unescape(m[4]), "decision": m[5], "badge": html_lib.unescape(m[7])})
    return out


def _decide(done: Reviewed, *decisions: dict) -> dict:
    r = done.client.post(f"/jobs/{done.job_id}/reviews", json={"decisions": list(decisions)})
    assert r.status_code == 200, r.text
    return r.json()


def _clear_all(done: Reviewed) -> None:
    items = done.client.get(f"/jobs/{done.job_id}/reviews", params={"limit": 1000}).json()["items"]
    if items:
        _decide(done, *({"example_id": i["example_id"], "action": "clear"} for i in items))


def test_review_page_lists_suspects_worst_first_and_escapes_class_names(done: Reviewed) -> None:
    html = _html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled")
    cards = _cards(html)
    api = done.client.get(f"/jobs/{done.job_id}/mislabeled", params={"limit": 60}).json()
    assert [c["example_id"] for c in cards] == [r["example_id"] for r in api["items"]] and cards
    scores = [r["mislabel_score"] for r in api["items"]]
    assert scores == sorted(scores, reverse=True)
    assert all(c["decision"] == "" and c["badge"] == "undecided" and "flag" in c["classes"] for c in cards)
    assert EVIL_CLASS not in html and EVIL_NAME not in html  # only escaped
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "&lt;i&gt;evil&lt;/i&gt;.npz" in html
    assert '"\\u003cb\\u003ex\\u003c/b\\u003e"' in html  # in the script's JSON too
    for label in ("accept → ", ">keep</button>", ">exclude</button>", ">undo</button>", "relabel to…"):
        assert label in html, label
    assert 'class="make-version"' in html and f'data-job="{done.job_id}"' in html
    assert f'href="/jobs/{done.job_id}/mislabeled?limit=60&amp;offset=0"' in html  # the JSON twin
    assert "<kbd>0</kbd>–<kbd>3</kbd>" in html  # four classes: digit keys
    assert f"showing 1-{len(cards)} of {api['total']}" in html


def test_split_views_list_the_hardest_first(done: Reviewed) -> None:
    """A split's page is sorted by consistency, lowest first (it listed examples by id before)."""
    counts = done.client.get(f"/jobs/{done.job_id}").json()["summary"]["split_counts"]
    split = max(counts, key=counts.get)
    shown = [c["example_id"] for c in _cards(_html(done.client, f"/ui/jobs/{done.job_id}/gallery/{split}"))]
    api = done.client.get(f"/jobs/{done.job_id}/examples",
                          params={"split": split, "order": "consistency", "limit": 60}).json()["items"]
    assert shown == [r["example_id"] for r in api]
    values = [r["consistency"] for r in api]
    assert values == sorted(values) and len(shown) == min(60, counts[split])
    by_score = _cards(_html(done.client, f"/ui/jobs/{done.job_id}/gallery/{split}", order="mislabel_score"))
    api = done.client.get(f"/jobs/{done.job_id}/examples",
                          params={"split": split, "order": "mislabel_score", "limit": 60}).json()["items"]
    assert [c["example_id"] for c in by_score] == [r["example_id"] for r in api]


def test_page_numbers_and_old_offset_links(done: Reviewed) -> None:
    url = f"/ui/jobs/{done.job_id}/gallery/all"
    first = _html(done.client, url)
    assert "showing 1-60 of 200" in first and 'aria-current="page"' in first
    for page in (2, 3, 4):
        assert f'href="{url}?page={page}"' in first
    second = _html(done.client, url, page=2)
    assert "showing 61-120 of 200" in second and 'rel="prev"' in second and f'href="{url}"' in second
    assert _cards(_html(done.client, url, offset=60)) == _cards(second)  # the old galleries' ?offset=
    last = _html(done.client, url, page=4)
    assert "showing 181-200 of 200" in last and 'rel="next"' not in last
    ids = [c["example_id"] for p in (first, second, _html(done.client, url, page=3), last) for c in _cards(p)]
    assert sorted(ids) == list(range(200))
    assert "page 9 is past the last page (4) of the 200 matches" in _html(done.client, url, page=9)
    assert "none of the 200 examples match" in _html(done.client, url, decision="exclude")


def test_decisions_show_on_the_cards_and_filter_the_page(done: Reviewed) -> None:
    _clear_all(done)
    cards = _cards(_html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled"))
    assert len(cards) >= 4
    relabel, keep, exclude, undone = cards[:4]
    other = next(c for c in CLASSES if c not in (relabel["given"], relabel["suggested"]))
    _decide(done, {"example_id": relabel["example_id"], "action": "relabel", "label": other},
            {"example_id": keep["example_id"], "action": "keep"},
            {"example_id": exclude["example_id"], "action": "exclude"},
            {"example_id": undone["example_id"], "action": "keep"})
    _decide(done, {"example_id": undone["example_id"], "action": "clear"})  # u: undo
    html = _html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled")
    shown = {c["example_id"]: c for c in _cards(html)}
    assert shown[relabel["example_id"]]["badge"] == f"relabel → {other}"
    assert "d-relabel" in shown[relabel["example_id"]]["classes"]
    assert shown[keep["example_id"]]["badge"] == "keep" and "d-keep" in shown[keep["example_id"]]["classes"]
    assert shown[exclude["example_id"]]["decision"] == "exclude"
    assert shown[undone["example_id"]]["decision"] == "" and shown[undone["example_id"]]["badge"] == "undecided"
    assert re.search(r'data-count="relabel">1<.*data-count="keep">1<.*data-count="exclude">1<', html, re.S)
    selected = re.search(rf'data-example="{relabel["example_id"]}".*?<option value="([^"]*)" selected>', html, re.S)
    assert selected and html_lib.unescape(selected[1]) == other  # the class picker shows the relabel
    for decision, expected in (("keep", {keep["example_id"]}), ("exclude", {exclude["example_id"]}),
                               ("relabel", {relabel["example_id"]})):
        page = _cards(_html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled", decision=decision))
        assert {c["example_id"] for c in page} == expected, decision
    undecided = {c["example_id"] for c in _cards(_html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled",
                                                       decision="none"))}
    assert undone["example_id"] in undecided and not undecided & {relabel["example_id"], keep["example_id"]}
    _clear_all(done)


def test_class_and_pair_filters(done: Reviewed) -> None:
    base = f"/ui/jobs/{done.job_id}/gallery/all"
    for name in CLASSES:
        cards = _cards(_html(done.client, base, given=name))
        assert cards and all(c["given"] == name for c in cards), name
    html = _html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled")
    pairs = re.findall(r'<a href="([^"]*given=[^"]*suggested=[^"]*)"[^>]*>([^<]*) → ([^<]*) \((\d+)\)</a>', html)
    assert pairs
    href, given, suggested, n = pairs[0]
    page = _html(done.client, html_lib.unescape(href))
    cards = _cards(page)
    assert len(cards) == int(n) and all((c["given"], c["suggested"]) ==
                                        (html_lib.unescape(given), html_lib.unescape(suggested)) for c in cards)
    assert "clear filters" in page
    evil = _cards(_html(done.client, base, given=EVIL_CLASS, suggested=None))
    assert evil and all(c["given"] == EVIL_CLASS for c in evil)
    empty = _html(done.client, base, given="", suggested="", decision="")  # the form's "any"
    assert "showing 1-60 of 200" in empty


def test_bad_filters_give_the_error_page(done: Reviewed) -> None:
    base = f"/ui/jobs/{done.job_id}/gallery/mislabeled"
    assert "is not a class of this job" in _html(done.client, base, 422, given="seven")
    assert "&lt;script&gt;" in _html(done.client, base, 422, given="<script>")
    assert "decision must be one of" in _html(done.client, base, 422, decision="maybe")
    assert "order must be one of" in _html(done.client, base, 422, order="random")
    assert "gallery &#39;bogus&#39; not found" in _html(done.client, f"/ui/jobs/{done.job_id}/gallery/bogus", 404)
    assert "job nope not found" in _html(done.client, "/ui/jobs/nope/gallery/all", 404)
    assert "dataset nope not found" in _html(done.client, "/ui/datasets/nope", 404)


def test_home_and_job_page_forms(done: Reviewed) -> None:
    home = _html(done.client, "/")
    assert re.search(r'name="n_members" type="number" min="1" value="8"', home)  # TrainSpec's defaults
    assert re.search(r'name="n_epochs" type="number" min="1" value="20"', home)
    assert 'name="label_column"' in home and 'name="resize"' in home
    assert f'href="/ui/datasets/{done.dataset_id}"' in home and "&lt;i&gt;evil" in home and EVIL_NAME not in home
    job = _html(done.client, f"/ui/jobs/{done.job_id}")
    assert f'href="/ui/jobs/{done.job_id}/gallery/mislabeled"' in job and 'class="make-version"' in job
    for split in ("easy", "intermediate", "hard"):
        assert f'href="/ui/jobs/{done.job_id}/gallery/{split}"' in job


def test_version_dataset_page_rescore_and_diff(done: Reviewed) -> None:
    _clear_all(done)
    accepted = done.client.post(f"/jobs/{done.job_id}/reviews", json={"accept_suggested": {"top": 5}}).json()
    first = _cards(_html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled", decision="none"))[0]
    _decide(done, {"example_id": first["example_id"], "action": "exclude"})
    r = done.client.post(f"/datasets/{done.dataset_id}/versions", json={"from_job": done.job_id})
    assert r.status_code == 201, r.text
    version = r.json()
    page = _html(done.client, f"/ui/datasets/{version['dataset_id']}")
    assert f"{accepted['n_applied']} relabelled, 1 excluded, 0 kept" in page
    assert f'href="/ui/datasets/{done.dataset_id}"' in page and "&lt;i&gt;evil&lt;/i&gt;" in page
    assert EVIL_NAME not in page and EVIL_CLASS not in page
    links = re.findall(r'<a class="btn" href="([^"]+)" download>download \.(\w+)</a>', page)
    assert [fmt for _, fmt in links] == ["csv", "parquet", "npz"]  # a table: every form a table takes
    for href, _ in links:
        export = done.client.get(html_lib.unescape(href))
        assert export.status_code == 200 and len(export.content) > 100
    assert 'id="rescore"' in page and "3 members × 4 epochs" in page and "no AdaBoost" in page
    assert '"n_members": 3' in page  # the spec the re-score button submits
    job_page = _html(done.client, f"/ui/jobs/{done.job_id}")
    assert f'href="/ui/datasets/{version["dataset_id"]}"' in job_page  # versions made from this job

    # what the re-score button posts: the same spec on the version; its job page links the diff
    job_b = done.client.post("/jobs", json={"dataset_id": version["dataset_id"], "spec": SPEC,
                                            "adaboost": ADABOOST}).json()["job_id"]
    assert wait_for(done.client, job_b, ("succeeded", "failed"))["status"] == "succeeded"
    b_page = _html(done.client, f"/ui/jobs/{job_b}")
    assert f'href="/ui/jobs/{done.job_id}/diff/{job_b}"' in b_page
    assert "compare with job" in b_page
    assert f"diff against job {done.job_id}" in _html(done.client, f"/ui/datasets/{version['dataset_id']}")
    assert 'id="diff-link"' not in job_page  # an upload's job compares with nothing

    diff = done.client.get(f"/jobs/{done.job_id}/diff/{job_b}").json()
    html = _html(done.client, f"/ui/jobs/{done.job_id}/diff/{job_b}")
    errors = diff["estimated_errors"]
    assert re.search(rf'<td>estimated label errors</td><td class="num">{errors["a"]}</td><td class="num">'
                     rf'{errors["b"]}</td>\s*<td class="num">{re.escape(format(errors["b"] - errors["a"], "+d"))}</td>', html)
    s = diff["suspects"]
    assert (f'<td class="num">{s["resolved"]}</td><td class="num">{s["still_suspect"]}</td>'
            f'<td class="num">{s["new"]}</td>') in html
    for a in ("easy", "intermediate", "hard"):
        row = "".join(f'<td class="num">{diff["splits"][a][b]}</td>' for b in ("easy", "intermediate", "hard"))
        assert f"<tr><th>{a}</th>{row}" in html, a
    for c in diff["per_class"]:
        name = html_lib.escape(c["class"])
        assert (f'<td>{name}</td><td class="num">{c["suspects_a"]}</td><td class="num">{c["suspects_b"]}</td>'
                f'<td class="num">{c["resolved"]}</td><td class="num">{c["new"]}</td>') in html, c
    assert f"{diff['relabelled']} examples relabelled, {diff['excluded']} excluded" in html
    assert EVIL_CLASS not in html and f'href="/jobs/{done.job_id}/diff/{job_b}"' in html
    assert "is not derived from" in _html(done.client, f"/ui/jobs/{job_b}/diff/{done.job_id}", 422)


def test_keys_images_and_the_same_origin_rule(tmp_path: Path) -> None:
    """With API keys: alice's review, dataset and diff pages are 404 for bob; a decision sent with
    alice's session cookie needs the page's Origin. An image dataset's cards show thumbnails and its
    exports are zip and npz."""
    alice, bob = "alice-key-0123456789abcdef", "bob-key-0123456789abcdefgh"
    X, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "img.npz", X=(X[:40].reshape(-1, 8, 8) * 15).astype(np.uint8), y=y[:40])
    server = Server(tmp_path / "data", env={"CURATE_API_KEYS": f"alice={alice},bob={bob}",
                                            "CURATE_EXPLAIN_MAX_EXAMPLES": "0"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {alice}"}) as a:
            ds = a.post("/datasets", params={"filename": "img.npz"}, content=(tmp_path / "img.npz").read_bytes()).json()
            job = a.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": {"n_members": 2, "n_epochs": 2},
                                        "adaboost": ADABOOST}).json()["job_id"]
            assert wait_for(a, job, ("succeeded", "failed"))["status"] == "succeeded"
            html = _html(a, f"/ui/jobs/{job}/gallery/all")
            cards = _cards(html)
            assert len(cards) == 40 and f'src="/ui/datasets/{ds["dataset_id"]}/examples/{cards[0]["example_id"]}.png"' \
                in html
            assert "<kbd>0</kbd>–<kbd>9</kbd>" in html  # ten classes: each has a digit key
            page = _html(a, f"/ui/datasets/{ds['dataset_id']}")
            assert re.findall(r'download \.(\w+)</a>', page) == ["zip", "npz"] and 'id="start"' in page
            b = {"Authorization": f"Bearer {bob}"}
            for url in (f"/ui/jobs/{job}/gallery/mislabeled", f"/ui/datasets/{ds['dataset_id']}",
                        f"/ui/jobs/{job}/diff/{job}", f"/ui/jobs/{job}"):
                r = a.get(url, headers=b)
                assert r.status_code == 404 and "not found" in r.text, url

            login = httpx.post(f"{server.url}/ui/login", data={"key": alice, "next": "/"},
                               headers={"Origin": server.url})
            cookie = {"Cookie": f"curate_session={login.cookies['curate_session']}"}
            decision = {"decisions": [{"example_id": cards[0]["example_id"], "action": "keep"}]}
            bare = httpx.post(f"{server.url}/jobs/{job}/reviews", json=decision, headers=cookie)
            assert bare.status_code == 403 and bare.json()["error"]["code"] == "cross_site_request"
            evil = httpx.post(f"{server.url}/jobs/{job}/reviews", json=decision,
                              headers={**cookie, "Origin": "http://evil.example"})
            assert evil.status_code == 403
            ok = httpx.post(f"{server.url}/jobs/{job}/reviews", json=decision, headers={**cookie, "Origin": server.url})
            assert ok.status_code == 200 and ok.json()["counts"]["keep"] == 1
            page = httpx.get(f"{server.url}/ui/jobs/{job}/gallery/all", headers=cookie).text
            assert _cards(page)[0]["badge"] == "keep" and 'action="/ui/logout"' in page  # signed in: sign-out
    finally:
        server.stop()
