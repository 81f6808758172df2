"""/docs (Swagger UI) and /redoc render the API's operations in a real browser with every request
off 127.0.0.1 blocked: their scripts come from the fastapi-offline package, not a CDN (issue 15).
Playwright + Debian's /usr/bin/chromium."""

import shutil
from pathlib import Path

import pytest

from tests.service.conftest import Server
from tests.service.test_browser import CHROMIUM, open_page

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"),
                                 reason="no /usr/bin/chromium (apt-get install -y chromium)")]


def test_swagger_ui_and_redoc_render_every_operation_offline(tmp_path: Path) -> None:
    server = Server(tmp_path / "data").start()
    blocked: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser, page = open_page(p)

            def only_local(route: "sync_api.Route") -> None:
                if route.request.url.startswith(server.url):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            refused: list[str] = []  # what the pages' Content-Security-Policy kept the browser from fetching
            page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            page.goto(server.url + "/docs")
            page.wait_for_selector(".opblock")
            paths = set(page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.dataset.path)"))
            assert {"/datasets", "/jobs", "/jobs/{job_id}/export", "/health"} <= paths, sorted(paths)

            page.goto(server.url + "/redoc")
            page.wait_for_selector("[data-section-id]")
            text = page.inner_text("body")
            assert "/jobs/{job_id}/export" in text or "export" in text.lower()
            assert page.locator("[data-section-id^='tag/'], [data-section-id^='operation/']").count() >= 10
            browser.close()
    finally:
        server.stop()
    assert blocked == [], f"the docs pages asked for {blocked}"
    assert all("cdn.redoc.ly" in r for r in refused), refused  # only ReDoc's logo; nothing the pages need
