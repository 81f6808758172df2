"""The dashboard with API keys: sign-in page, session cookie, redirects, per-key isolation, sign-out,
tampered cookies and the cross-site check on requests that change state (TestClient, in-process;
the last test drives a real server in Chromium)."""

import base64
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.spec import AdaBoostSpec, TrainSpec
from service.api.auth import SESSION_COOKIE, KeyRing, create_key, sign_session
from service.app import create_app
from service.engine.engine import Engine
from service.errors import CurationError
from service.settings import Settings
from service.store import jobs
from service.store import keys as stored_keys
from service.store.db import Store
from tests.service.conftest import Server, digits_npz

BOB = "bob-key-0123456789abcdefgh"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser's navigation sends
SAME_SITE = {"Origin": "http://testserver"}


@dataclass
class Keyed:
    client: TestClient
    settings: Settings
    alice: str  # a stored key (curate keys create)
    alice_id: str  # the owner id the server gave that key (data is owned by it, not by the name)
    dataset_id: str  # alice's
    job_id: str  # alice's


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Keyed]:
    """A server with alice's stored key and bob's CURATE_API_KEYS key; alice owns a dataset and a
    (cancelled, so nothing trains) job."""
    settings = Settings(data_dir=tmp_path / "data", api_keys=f"bob={BOB}")
    engine = Engine(settings)
    alice = create_key(engine.store, "alice")
    alice_id, _ = KeyRing(engine.store, settings).authenticate(alice)
    assert alice_id != "alice"  # a stable id, not the reusable name
    ds = engine.add_dataset(digits_npz(tmp_path / "d.npz", n=60)[0], owner=alice_id)
    job_id = engine.submit(ds.dataset_id, TrainSpec(n_members=2, n_epochs=2), AdaBoostSpec(enabled=False), alice_id)
    jobs.request_cancel(engine.store, job_id, alice_id)
    engine.close()
    with TestClient(create_app(settings)) as client:
        yield Keyed(client, settings, alice, alice_id, ds.dataset_id, job_id)


def _signed_in_as(page: str) -> str:
    """The name in a page header's sign-out form."""
    found = re.search(r'<form class="who" method="post" action="/ui/logout">\s*(.*?)\s*<button', page)
    assert found, page[:500]
    return found.group(1)


def _sign_in(client: TestClient, key: str, next_url: str = "/") -> str:
    """The session cookie's value; the client's own cookie jar stays empty (each test sends it)."""
    r = client.post("/ui/login", data={"key": key, "next": next_url}, headers=SAME_SITE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == next_url, (r.status_code, r.text[:300])
    cookie = r.cookies[SESSION_COOKIE]
    client.cookies.clear()
    return cookie


def _with(cookie: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={cookie}", **headers}


def test_pages_redirect_to_the_sign_in_page_without_a_session(keyed: Keyed) -> None:
    c = keyed.client
    r = c.get("/", headers=HTML, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=%2F"
    r = c.get(f"/ui/jobs/{keyed.job_id}/gallery/hard?offset=60", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/ui/login?next=%2Fui%2Fjobs%2F{keyed.job_id}%2Fgallery%2Fhard%3Foffset%3D60"
    form = c.get(r.headers["location"])
    assert form.status_code == 200 and 'action="/ui/login"' in form.text and 'type="password"' in form.text
    assert f'value="/ui/jobs/{keyed.job_id}/gallery/hard?offset=60"' in form.text
    # scripts, images and the JSON API keep the API's answer: 401 as JSON
    r = c.get("/")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert c.get(f"/ui/jobs/{keyed.job_id}/dynamics.png", headers={"Accept": "image/png,*/*"}).status_code == 401
    assert c.get("/jobs", headers=HTML).status_code == 401
    assert c.get("/health").status_code == 200


def test_a_wrong_key_is_refused_with_a_clear_message(keyed: Keyed) -> None:
    for key, message in (("not-a-key-0123456789", "That API key is not valid on this server"),
                         ("", "Enter your API key")):
        r = keyed.client.post("/ui/login", data={"key": key}, headers=SAME_SITE, follow_redirects=False)
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
        assert message in r.text and 'action="/ui/login"' in r.text
        assert SESSION_COOKIE not in r.headers.get("set-cookie", "")


def test_sign_in_sets_a_signed_session_cookie_and_pages_render(keyed: Keyed) -> None:
    c = keyed.client
    r = c.post("/ui/login", data={"key": keyed.alice, "next": "/"}, headers=SAME_SITE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    set_cookie = r.headers["set-cookie"]
    assert set_cookie.startswith(f"{SESSION_COOKIE}=v1.")
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/" in set_cookie
    assert "Max-Age=43200" in set_cookie and "Secure" not in set_cookie  # plain http here
    cookie = r.cookies[SESSION_COOKIE]
    assert keyed.alice not in cookie and keyed.alice[4:] not in cookie  # no key in the cookie
    secret = keyed.settings.data_dir / "session.secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) == 32
    c.cookies.clear()

    home = c.get("/", headers=_with(cookie, **HTML))
    assert home.status_code == 200 and keyed.dataset_id in home.text and keyed.job_id in home.text
    assert 'action="/ui/logout"' in home.text
    job = c.get(f"/ui/jobs/{keyed.job_id}", headers=_with(cookie, **HTML))
    assert job.status_code == 200 and "cancelled" in job.text
    dataset = c.get(f"/ui/datasets/{keyed.dataset_id}", headers=_with(cookie, **HTML))  # a Jinja2 page
    for shown in (home, job, dataset):  # the header names the key as its owner named it, not by its id
        assert _signed_in_as(shown.text) == "alice" and keyed.alice_id not in shown.text, shown.url
    # the dashboard's own calls (fetch, EventSource, export links) ride on the same cookie
    assert [j["job_id"] for j in c.get("/jobs", headers=_with(cookie)).json()] == [keyed.job_id]
    events = c.get(f"/jobs/{keyed.job_id}/events", headers=_with(cookie))
    assert events.status_code == 200 and "event: end" in events.text
    # signed in already: the sign-in page sends the browser on
    r = c.get("/ui/login?next=/ui/jobs/x", headers=_with(cookie), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/jobs/x"
    # over https the cookie is Secure
    r = c.post("https://testserver/ui/login", data={"key": BOB}, headers={"Origin": "https://testserver"},
               follow_redirects=False)
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_each_key_sees_only_its_own_datasets_and_jobs(keyed: Keyed) -> None:
    c, bob = keyed.client, _sign_in(keyed.client, BOB)
    home = c.get("/", headers=_with(bob, **HTML))
    assert home.status_code == 200 and keyed.dataset_id not in home.text and keyed.job_id not in home.text
    assert _signed_in_as(home.text) == "bob"  # a CURATE_API_KEYS key: its name from the setting
    for url in (f"/ui/jobs/{keyed.job_id}", f"/ui/jobs/{keyed.job_id}/report.html",
                f"/ui/jobs/{keyed.job_id}/gallery/mislabeled"):
        r = c.get(url, headers=_with(bob, **HTML))
        assert r.status_code == 404 and f"job {keyed.job_id} not found" in r.text, url
    assert c.get(f"/ui/jobs/{keyed.job_id}/dynamics.png", headers=_with(bob)).status_code == 404
    assert c.get(f"/jobs/{keyed.job_id}", headers=_with(bob)).status_code == 404
    assert c.delete(f"/jobs/{keyed.job_id}", headers=_with(bob, **SAME_SITE)).status_code == 404
    alice = _sign_in(c, keyed.alice)
    assert c.get(f"/ui/jobs/{keyed.job_id}", headers=_with(alice, **HTML)).status_code == 200


def test_sign_out_clears_the_cookie(keyed: Keyed) -> None:
    c, cookie = keyed.client, _sign_in(keyed.client, keyed.alice)
    r = c.post("/ui/logout", headers=_with(cookie, Origin="http://evil.example"), follow_redirects=False)
    assert r.status_code == 403 and SESSION_COOKIE not in r.headers.get("set-cookie", "")
    r = c.post("/ui/logout", headers=_with(cookie, **SAME_SITE), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert re.match(rf'{SESSION_COOKIE}=""; .*Max-Age=0', r.headers["set-cookie"]), r.headers["set-cookie"]
    assert c.get("/", headers=HTML, follow_redirects=False).status_code == 303  # the browser sends no cookie now


def test_tampered_expired_or_orphaned_cookies_are_refused(keyed: Keyed) -> None:
    c, alice, bob = keyed.client, _sign_in(keyed.client, keyed.alice), _sign_in(keyed.client, BOB)
    version, name, expires, signature = alice.split(".")
    secret = (keyed.settings.data_dir / "session.secret").read_bytes()
    bob_digest = hashlib.sha256(BOB.encode()).hexdigest()
    bob_id = KeyRing(keyed.client.app.state.engine.store, keyed.settings).authenticate(BOB)[0]  # what cookies sign
    # base64 of the 32-byte signature: the last character's 2 low bits are spare, its high 4 carry data
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    flipped = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 16]  # other signature bytes
    respelled = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]  # the same bytes, spelled otherwise
    assert base64.urlsafe_b64decode(respelled + "=") == base64.urlsafe_b64decode(signature + "=")
    bad = {
        "other name": f"{version}.{bob.split('.')[1]}.{expires}.{signature}",
        "longer expiry": f"{version}.{name}.{int(expires) + 3600}.{signature}",
        "flipped signature": f"{version}.{name}.{expires}.{flipped}",
        "respelled signature": f"{version}.{name}.{expires}.{respelled}",
        "no signature": f"{version}.{name}.{expires}",
        "garbage": "x",
        "other secret": sign_session(os.urandom(32), bob_id, int(expires), bob_digest),
        "expired": sign_session(secret, bob_id, 1_000_000_000, bob_digest),
        "name, not id": sign_session(secret, "bob", int(expires), bob_digest),
        "unknown key": sign_session(secret, "carol", int(expires), bob_digest),
    }
    for what, cookie in bad.items():
        r = c.get("/jobs", headers=_with(cookie))
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", what
        assert "sign in again" in r.json()["error"]["message"], what
        page = c.get("/", headers=_with(cookie, **HTML), follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/ui/login"), what
        assert f'{SESSION_COOKIE}=""' in page.headers["set-cookie"], what  # the bad cookie is dropped
    assert "expired" in c.get("/jobs", headers=_with(bad["expired"])).json()["error"]["message"]
    assert c.get("/jobs", headers=_with(alice)).status_code == 200  # the genuine one still works


def test_cookie_requests_that_change_state_must_come_from_the_dashboard(keyed: Keyed, tmp_path: Path) -> None:
    c, cookie = keyed.client, _sign_in(keyed.client, keyed.alice)
    data = digits_npz(tmp_path / "up.npz", n=40)[0].read_bytes()
    sizes = iter(range(41, 50))

    def upload(**headers: str) -> int:
        """A new file each time: the same bytes again would be reused (200), not stored (201)."""
        fresh = digits_npz(tmp_path / "up.npz", n=next(sizes))[0].read_bytes()
        return c.post("/datasets", params={"filename": "up.npz"}, content=fresh, headers=headers).status_code

    for refused in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Referer": "http://evil.example/x"},
                    {"Origin": "http://testserver.evil.example"}, {}):
        r = c.post("/datasets", params={"filename": "up.npz"}, content=data, headers=_with(cookie, **refused))
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request", refused
    r = c.delete(f"/jobs/{keyed.job_id}", headers=_with(cookie, Origin="http://evil.example"))
    assert r.status_code == 403
    assert len(c.get("/datasets", headers=_with(cookie)).json()) == 1  # nothing was uploaded
    assert upload(**_with(cookie, **SAME_SITE)) == 201
    assert upload(**_with(cookie, Referer=f"http://testserver/ui/jobs/{keyed.job_id}")) == 201
    assert upload(Authorization=f"Bearer {keyed.alice}") == 201  # the API with its header: as before
    assert len(c.get("/datasets", headers=_with(cookie)).json()) == 4
    # signing in from another site (login CSRF) is refused too, and so is a redirect off this server
    r = c.post("/ui/login", data={"key": BOB}, headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and SESSION_COOKIE not in r.headers.get("set-cookie", "")
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        r = c.post("/ui/login", data={"key": BOB, "next": target}, headers=SAME_SITE, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", target


def test_open_mode_needs_no_sign_in(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path / "data"))) as c:
        assert c.get("/", headers=HTML).status_code == 200
        r = c.get("/ui/login", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        home = c.get("/", headers=_with("v1.junk.1.junk", **HTML))  # a stale cookie changes nothing
        assert home.status_code == 200 and "/ui/logout" not in home.text
        assert c.post("/jobs", json={"dataset_id": "x"}, headers=_with("junk")).status_code == 404
    assert not (tmp_path / "data" / "session.secret").exists()


def test_keys_are_stored_by_digest_and_a_new_one_is_seen_at_once(tmp_path: Path) -> None:
    """service.store.keys: only the SHA-256 is kept, a second key of one name is refused by name, and
    a KeyRing that has read the table sees a key added after it (the generation moved)."""
    settings = Settings(data_dir=tmp_path / "data")
    store = Store(settings.db_path)
    try:
        ring = KeyRing(store, settings)
        assert not ring.enabled() and stored_keys.list_keys(store) == []
        key = create_key(store, "alice")
        assert ring.enabled() and ring.name_of(ring.authenticate(key)[0]) == "alice"
        (found,) = stored_keys.list_keys(store)
        assert found.key_sha256 == hashlib.sha256(key.encode()).hexdigest() and key not in repr(found)
        assert found.owner.startswith("alice:") and found.name == "alice"
        with pytest.raises(CurationError, match="an API key named 'alice' exists already"):
            create_key(store, "alice")
        with pytest.raises(CurationError, match="key name must be 1-64 letters"):
            create_key(store, "a b")
        assert len(stored_keys.list_keys(store)) == 1
    finally:
        store.close()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"), reason="no chromium")
def test_sign_in_upload_and_sign_out_in_chromium(tmp_path: Path) -> None:
    """A real browser: its fetch() upload carries the cookie and an Origin the server accepts."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    path, _ = digits_npz(tmp_path / "digits.npz", n=60)
    server = Server(tmp_path / "data", env={"CURATE_API_KEYS": f"bob={BOB}"}).start()
    try:
        with sync_api.sync_playwright() as p:
            chromium = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
            browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url + "/")
            assert page.url.startswith(server.url + "/ui/login")
            page.fill("input[name=key]", "wrong-key-0123456789")
            page.click("button[type=submit]")
            assert "not valid" in page.content()
            page.fill("input[name=key]", BOB)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url == server.url + "/" and page.locator("text=sign out").count() == 1
            page.set_input_files("#upload input[type=file]", str(path))
            page.fill("#upload input[name=name]", "digits by bob")
            with page.expect_navigation():
                page.click("#upload button[type=submit]")
            assert page.locator("text=digits by bob").count() == 1
            with page.expect_navigation():
                page.click("text=sign out")
            assert page.url == server.url + "/ui/login"
            page.goto(server.url + "/")
            assert page.url.startswith(server.url + "/ui/login")
            browser.close()
    finally:
        server.stop()
