"""The curation loop in a real browser (Playwright + Debian's /usr/bin/chromium): upload with a label
column through the form, review the suspects with key presses and clicks, reload and see the
decisions, filter, create a corrected version, download its export, re-score it and open the diff.
Screenshots go to screenshots/ (git-ignored)."""

import csv
import io
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from tests.service.conftest import Server, wait_for
from tests.service.test_browser import ARGS, CHROMIUM, SHOTS

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists() and not shutil.which("chromium"),
                                 reason="no /usr/bin/chromium (apt-get install -y chromium)")]
NAMES = ["zero", "one", "<b>x</b>", "three"]  # digits 0-3; one class is named like HTML
SPEC = {"n_members": 3, "n_epochs": 4}


def _write_csv(path: Path) -> Path:
    X, y = load_digits(return_X_y=True)
    X, y = X[y < 4][:200], y[y < 4][:200].copy()
    flipped = np.random.default_rng(0).choice(len(y), 20, replace=False)
    y[flipped] = (y[flipped] + 1) % 4
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"px{i}" for i in range(X.shape[1])] + ["digit"])
        for row, label in zip(X, y):
            writer.writerow([*(int(v) for v in row), NAMES[label]])
    return path


def _decision(card: "sync_api.Locator", expected: str) -> None:
    """Wait until the card shows `expected` ("" = undecided), as the page draws it after the 200."""
    sync_api.expect(card).to_have_attribute("data-decision", expected)


def test_review_version_rescore_and_diff_in_chromium(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "digits.csv")
    SHOTS.mkdir(exist_ok=True)
    server = Server(tmp_path / "data", env={"CURATE_EXPLAIN_MAX_EXAMPLES": "0"}).start()
    try:
        with sync_api.sync_playwright() as p, httpx.Client(base_url=server.url, timeout=60) as api:
            chromium = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
            browser = p.chromium.launch(executable_path=str(chromium), args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.set_default_timeout(30_000)

            # upload through the form, naming the label column
            page.goto(server.url + "/")
            page.set_input_files("#upload input[type=file]", str(path))
            page.fill("#upload input[name=name]", "digits <csv>")
            page.fill("#upload input[name=label_column]", "digit")
            with page.expect_navigation():
                page.click("#upload button[type=submit]")
            assert page.locator("text=digits <csv>").count() == 1
            form = page.locator("form.start").first
            assert form.locator("input[name=n_members]").input_value() == "8"  # TrainSpec's defaults
            assert form.locator("input[name=n_epochs]").input_value() == "20"
            dataset_id = form.get_attribute("data-dataset")
            assert api.get(f"/datasets/{dataset_id}").json()["class_names"] == sorted(NAMES)

            # a tiny job without AdaBoost (the API; the start form is test_browser's)
            job_a = api.post("/jobs", json={"dataset_id": dataset_id, "spec": SPEC,
                                            "adaboost": {"enabled": False}}).json()["job_id"]
            assert wait_for(api, job_a, ("succeeded", "failed"))["status"] == "succeeded"
            page.goto(f"{server.url}/ui/jobs/{job_a}")
            page.click("text=review the suspected mislabels")
            page.wait_for_url(f"**/ui/jobs/{job_a}/gallery/mislabeled")
            cards = page.locator(".card[data-example]")
            assert cards.count() >= 8
            assert page.locator(".card", has_text="given <b>x</b>").count() + \
                page.locator(".card", has_text="suggested <b>x</b>").count() > 0  # shown as text, not markup
            page.screenshot(path=str(SHOTS / "10-review.png"), full_page=True)
            info = [{"id": c.get_attribute("data-example"), "given": c.get_attribute("data-given"),
                     "suggested": c.get_attribute("data-suggested")} for c in cards.all()[:8]]
            classes = sorted(NAMES)

            # keys: an arrow focuses the first card; a decision moves on to the next card
            page.keyboard.press("ArrowRight")
            assert page.evaluate("document.activeElement.dataset.example") == info[0]["id"]
            page.keyboard.press("a")  # card 0: accept the suggestion
            _decision(cards.nth(0), "relabel")
            assert page.evaluate("document.activeElement.dataset.example") == info[1]["id"]
            page.keyboard.press("k")  # card 1: keep
            _decision(cards.nth(1), "keep")
            page.keyboard.press("x")  # card 2: exclude
            _decision(cards.nth(2), "exclude")
            digit = next(i for i, c in enumerate(classes) if c not in (info[3]["given"], info[3]["suggested"]))
            page.keyboard.press(str(digit))  # card 3: relabel to class `digit` by its digit key
            _decision(cards.nth(3), "relabel")
            page.keyboard.press("k")  # card 4: keep, then back to it and undo
            _decision(cards.nth(4), "keep")
            page.keyboard.press("ArrowLeft")
            assert page.evaluate("document.activeElement.dataset.example") == info[4]["id"]
            page.keyboard.press("u")
            _decision(cards.nth(4), "")
            assert "decision cleared" in page.inner_text("#status")
            page.keyboard.press("ArrowDown")  # one row down: as many cards on as there are columns
            columns = page.evaluate("[...document.querySelectorAll('.card')].filter("
                                    "c => c.offsetTop === document.querySelector('.card').offsetTop).length")
            all_ids = page.eval_on_selector_all(".card[data-example]", "els => els.map(e => e.dataset.example)")
            below = all_ids[min(4 + columns, len(all_ids) - 1)]
            assert page.evaluate("document.activeElement.dataset.example") == below
            assert columns > 1
            page.screenshot(path=str(SHOTS / "11-review-keys.png"))  # the viewport: the focused card, the status

            # buttons and the class picker
            cards.nth(5).locator("button[data-action=exclude]").click()
            _decision(cards.nth(5), "exclude")
            other = next(c for c in classes if c not in (info[6]["given"], info[6]["suggested"]))
            cards.nth(6).locator("select.relabel").select_option(other)
            _decision(cards.nth(6), "relabel")
            cards.nth(7).locator("button[data-action=accept]").click()
            _decision(cards.nth(7), "relabel")
            cards.nth(7).locator("button[data-action=undo]").click()
            _decision(cards.nth(7), "")
            assert page.inner_text("[data-count=relabel]") == "3" and page.inner_text("[data-count=exclude]") == "2"
            page.screenshot(path=str(SHOTS / "12-review-decided.png"), full_page=True)

            # after a reload the cards show what was stored
            page.reload()
            cards = page.locator(".card[data-example]")
            expected = {0: f"relabel → {info[0]['suggested']}", 1: "keep", 2: "exclude",
                        3: f"relabel → {classes[digit]}", 4: "undecided", 5: "exclude", 6: f"relabel → {other}",
                        7: "undecided"}
            for i, badge in expected.items():
                card = page.locator(f'.card[data-example="{info[i]["id"]}"]')
                assert card.locator(".decision").inner_text() == badge, (i, badge)
            assert page.locator(f'.card[data-example="{info[6]["id"]}"] select.relabel').input_value() == other
            stored = api.get(f"/jobs/{job_a}/reviews").json()
            assert stored["counts"] == {"relabel": 3, "keep": 1, "exclude": 2}
            page.screenshot(path=str(SHOTS / "13-review-reloaded.png"), full_page=True)

            # filters: the decision select applies itself; a pair link sets given and suggested
            with page.expect_navigation():
                page.select_option("form.filters select[name=decision]", "exclude")
            assert "decision=exclude" in page.url
            shown = sorted(page.eval_on_selector_all(".card[data-example]", "els => els.map(e => e.dataset.example)"))
            assert shown == sorted([info[2]["id"], info[5]["id"]])
            page.screenshot(path=str(SHOTS / "14-review-filtered.png"), full_page=True)
            page.click("text=clear filters")
            pair = page.locator(".pairs a").first
            pair_text = pair.inner_text()
            pair.click()
            page.wait_for_url(re.compile(r"given=.*suggested="))
            given, suggested = re.match(r"(.+) → (.+) \(\d+\)$", pair_text).groups()
            for card in page.locator(".card[data-example]").all():
                assert (card.get_attribute("data-given"), card.get_attribute("data-suggested")) == (given, suggested)

            # a corrected version: its page has the export links and the re-score button
            page.click("button.make-version")
            page.wait_for_url(re.compile(r"/ui/datasets/[0-9a-f]+$"))
            version_id = page.url.rsplit("/", 1)[1]
            assert "3 relabelled, 2 excluded, 1 kept" in page.inner_text("#applied")
            hrefs = page.eval_on_selector_all("#exports a", "els => els.map(e => e.getAttribute('href'))")
            assert hrefs == [f"/datasets/{version_id}/export?format={f}" for f in ("csv", "parquet", "npz")]
            page.screenshot(path=str(SHOTS / "15-version.png"), full_page=True)
            with page.expect_download() as download:
                page.click("#exports a:text('csv')")
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            assert len(rows) == 198 and rows[0].keys() >= {"px0", "digit", "curate_action"}
            assert sum(r["curate_action"] == "relabel" for r in rows) == 3
            assert {r["digit"] for r in rows} <= set(NAMES)

            # re-score: the same spec on the version, then its job page, which links the diff
            page.click("#rescore")
            page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f]+$"))
            job_b = page.url.rsplit("/", 1)[1]
            assert job_b != job_a
            assert api.get(f"/jobs/{job_b}").json()["spec"] == api.get(f"/jobs/{job_a}").json()["spec"]
            page.wait_for_selector("img[alt=dynamics]", timeout=180_000)  # the end event reloads the page
            page.screenshot(path=str(SHOTS / "16-rescored-job.png"), full_page=True)
            page.click(f"text=compare with job {job_a}")
            page.wait_for_url(f"**/ui/jobs/{job_a}/diff/{job_b}")
            diff = api.get(f"/jobs/{job_a}/diff/{job_b}").json()
            assert page.locator("#errors").inner_text().count(str(diff["estimated_errors"]["b"])) >= 1
            assert diff["excluded"] == 2 and f"{diff['relabelled']} examples relabelled, 2 excluded" in page.content()
            assert page.locator("#per-class td", has_text="<b>x</b>").count() == 1
            page.screenshot(path=str(SHOTS / "17-diff.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
