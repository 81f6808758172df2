"""The upload form's options in a real browser (Playwright + Debian's /usr/bin/chromium): a mixed-type
CSV uploaded with `ignore` and `categorical` typed into the form (comma lists become repeated query
parameters) and the tfidf embedder picked; the dataset's page then says how each column was read,
before anyone trains on it. A bad column name in the form comes back as the API's message. A zip with
a broken image goes in once "leave out unreadable images" is ticked."""

import io
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.service.conftest import Server
from tests.service.test_browser import CHROMIUM, SHOTS, open_page

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"),
                                 reason="no /usr/bin/chromium (apt-get install -y chromium)")]


def _mixed_csv(path: Path) -> Path:
    rows = ["id,age,city,zone,member,note,label"]
    for i in range(40):
        rows.append(f"{i + 1},{20 + i % 30},{['north', 'south', 'east'][i % 3]},{i % 4},{['yes', 'no'][i % 2]},"
                    f"customer {i} wrote about {['the blue one', 'a refund', 'the long wait'][i % 3]} today,"
                    f"{'ab'[i % 2]}")
    path.write_text("\n".join(rows) + "\n")
    return path


@contextmanager
def _upload_page(tmp_path: Path, path: Path) -> Iterator[Any]:
    """A real server and Chromium on its home page, `path` chosen in the upload form."""
    server = Server(tmp_path / "data").start()
    try:
        with sync_api.sync_playwright() as p:
            browser, page = open_page(p)
            page.goto(server.url + "/")
            page.set_input_files("#upload input[type=file]", str(path))
            yield page
            browser.close()
    finally:
        server.stop()


def test_upload_options_reach_the_api_and_the_dataset_page_shows_each_role(tmp_path: Path) -> None:
    path = _mixed_csv(tmp_path / "customers.csv")
    with _upload_page(tmp_path, path) as page:
        page.click("#upload-options summary")  # the options are folded until asked for
        SHOTS.mkdir(exist_ok=True)
        page.fill("#upload input[name=ignore]", "nope")
        page.click("#upload button[type=submit]")
        status = page.locator("#upload-status")
        status.filter(has_text="error").wait_for()
        assert "nope" in status.inner_text() and "age" in status.inner_text(), status.inner_text()

        page.fill("#upload input[name=ignore]", "city, member")
        page.fill("#upload input[name=categorical]", "zone")
        page.select_option("#upload select[name=embedder]", "tfidf")
        page.screenshot(path=str(SHOTS / "20-upload-options.png"), full_page=True)
        with page.expect_navigation():
            page.click("#upload button[type=submit]")
        page.click("text=customers.csv")
        page.wait_for_selector("#ingest-columns")
        roles = dict(page.eval_on_selector_all(
            "#ingest-columns tr[class^=role-]", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"))
        assert roles == {"id": "id", "age": "numeric", "city": "ignored", "zone": "categorical",
                         "member": "ignored", "note": "text", "label": "label"}, roles
        assert "delimiter" in page.locator("#ingest-file").inner_text()
        page.screenshot(path=str(SHOTS / "21-dataset-how-it-was-read.png"), full_page=True)


def test_the_skip_unreadable_box_uploads_a_zip_with_a_broken_image(tmp_path: Path) -> None:
    """Unticked, the zip with a broken image is refused and the message names the file and the option;
    ticked (a real click), the rest is stored and the dataset's page lists the file left out."""
    path = tmp_path / "shapes.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(6):
            buf = io.BytesIO()
            Image.new("L", (5, 5), 40 * i).save(buf, format="PNG")
            zf.writestr(f"{'ab'[i % 2]}/{i}.png", buf.getvalue())
        zf.writestr("b/broken.png", b"not an image")
    with _upload_page(tmp_path, path) as page:
        page.click("#upload button[type=submit]")
        status = page.locator("#upload-status")
        status.filter(has_text="error").wait_for()
        assert "b/broken.png" in status.inner_text() and "skip_unreadable" in status.inner_text()
        page.click("#upload-options summary")
        page.click("#upload input[name=skip_unreadable]")
        with page.expect_navigation():
            page.click("#upload button[type=submit]")
        page.click("text=shapes.zip")
        page.wait_for_selector("#ingest-skipped")
        assert "b/broken.png" in page.locator("#ingest-skipped").inner_text()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "22-dataset-files-left-out.png"), full_page=True)
