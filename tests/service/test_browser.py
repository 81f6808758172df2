"""The dashboard in a real browser (Playwright + Debian's /usr/bin/chromium): upload through the form,
start a job, watch its progress over SSE, see the plots and the planted flips. Screenshots of every
page go to screenshots/ (git-ignored)."""

import re
import shutil
from pathlib import Path

import pytest

from tests.service.conftest import Server, digits_npz

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"),
                                 reason="no /usr/bin/chromium (apt-get install -y chromium)")]


def open_page(p: "sync_api.Playwright", **options: object) -> tuple["sync_api.Browser", "sync_api.Page"]:
    """Debian's Chromium, headless, with one 1280x900 page that waits up to 30 s for each step."""
    browser = p.chromium.launch(executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
                                args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, **options)  # type: ignore[arg-type]
    page.set_default_timeout(30_000)
    return browser, page


def test_upload_train_and_browse_in_chromium(tmp_path: Path) -> None:
    path, flipped = digits_npz(tmp_path / "digits-noisy.npz", noise=0.1)
    SHOTS.mkdir(exist_ok=True)
    server = Server(tmp_path / "data").start()
    try:
        with sync_api.sync_playwright() as p:
            browser, page = open_page(p)
            page.goto(server.url + "/")
            page.screenshot(path=str(SHOTS / "01-home-empty.png"), full_page=True)

            # upload through the form: the page reloads with the dataset listed
            page.set_input_files("#upload input[type=file]", str(path))
            page.fill("#upload input[name=name]", "digits <noisy>")
            with page.expect_navigation():
                page.click("#upload button[type=submit]")
            assert page.locator("text=digits <noisy>").count() == 1

            # start a job from the dataset row: the browser lands on the job page
            form = page.locator("form.start").first
            form.locator("input[name=n_members]").fill("4")
            form.locator("input[name=n_epochs]").fill("20")
            page.screenshot(path=str(SHOTS / "02-home-dataset.png"), full_page=True)
            form.locator("button[type=submit]").click()
            page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f]+$"))
            job_id = page.url.rsplit("/", 1)[1]

            # live progress over SSE: the text changes to "running: k/N epochs" before the job ends
            page.wait_for_function("/running: [1-9]\\d*\\//.test(document.getElementById('progress-text')"
                                   "?.textContent || '') || !document.getElementById('live')", timeout=120_000)
            page.screenshot(path=str(SHOTS / "03-job-running.png"), full_page=True)
            # the end event reloads the page into the finished view
            page.wait_for_selector("img[alt=dynamics]", timeout=180_000)
            page.wait_for_load_state("networkidle")
            for alt in ("dynamics", "adaboost"):
                assert page.eval_on_selector(f"img[alt={alt}]", "img => img.complete && img.naturalWidth") > 0, alt
            assert page.locator("text=Estimated label errors").count() == 1
            page.screenshot(path=str(SHOTS / "04-job-done.png"), full_page=True)

            page.click("text=review them")
            page.wait_for_url(f"**/ui/jobs/{job_id}/gallery/mislabeled")
            shown = {int(v) for v in page.eval_on_selector_all("[data-example]", "els => els.map(e => e.dataset.example)")}
            assert len(shown & set(flipped.tolist())) >= 0.5 * len(flipped)
            page.screenshot(path=str(SHOTS / "05-gallery-mislabeled.png"), full_page=True)

            page.goto(f"{server.url}/ui/jobs/{job_id}/gallery/hard")
            page.screenshot(path=str(SHOTS / "06-gallery-hard.png"), full_page=True)
            page.goto(f"{server.url}/ui/jobs/nope")
            assert "not found" in page.content()
            page.screenshot(path=str(SHOTS / "07-error.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
