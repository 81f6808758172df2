"""The dashboard against a real `curate serve`: every page, the PNGs, errors, escaping, `curate report`."""

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import Server, digits_npz, wait_for

pytestmark = pytest.mark.slow
EVIL = "<script>alert(1)</script>"
SPEC = {"n_members": 4, "n_epochs": 20, "hidden_units": 64, "batch_size": 32}


@dataclass
class Finished:
    server: Server
    client: httpx.Client
    dataset_id: str
    image_dataset_id: str
    job_id: str
    flipped: set[int]


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """One server with a succeeded job on digits with 10 % planted flips (shared: training is the slow part)."""
    tmp = tmp_path_factory.mktemp("web")
    server = Server(tmp / "data").start()
    path, flipped = digits_npz(tmp / "d.npz", noise=0.1)
    X, y = np.load(path)["X"], np.load(path)["y"]
    np.savez(tmp / "img.npz", X=(X[:40].reshape(-1, 8, 8) * 15).astype(np.uint8), y=y[:40])
    with httpx.Client(base_url=server.url, timeout=60) as client:
        ds = client.post("/datasets", params={"filename": "d.npz", "name": EVIL}, content=path.read_bytes()).json()
        img = client.post("/datasets", params={"filename": "img.npz"}, content=(tmp / "img.npz").read_bytes()).json()
        job = client.post("/jobs", json={"dataset_id": ds["dataset_id"], "spec": SPEC,
                                         "adaboost": {"n_rounds": 10}}).json()
        finished = wait_for(client, job["job_id"], ("succeeded", "failed"))
        assert finished["status"] == "succeeded", finished["error"]
        try:
            yield Finished(server, client, ds["dataset_id"], img["dataset_id"], job["job_id"], set(flipped.tolist()))
        finally:
            server.stop()


def _html(client: httpx.Client, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.startswith("<!doctype html>")
    return r.text


def _png(client: httpx.Client, url: str) -> Image.Image:
    r = client.get(url)
    assert r.status_code == 200, (url, r.text[:300])
    assert r.headers["content-type"] == "image/png" and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(r.content))
    image.load()
    assert min(image.size) > 0
    return image


def test_home_lists_datasets_and_jobs_and_escapes_names(done: Finished) -> None:
    html = _html(done.client, "/")
    assert done.dataset_id in html and done.image_dataset_id in html and done.job_id in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and EVIL not in html
    assert 'action="/datasets"' in html and 'enctype="multipart/form-data"' in html  # the upload form
    assert f'data-dataset="{done.dataset_id}"' in html  # a start-job form per dataset
    assert 'href="/datasets"' in html and 'href="/jobs"' in html  # JSON twins
    total = done.client.get(f"/jobs/{done.job_id}").json()["epochs_total"]
    assert "succeeded" in html and f"{total}/{total} epochs" in html


def test_job_page_shows_summary_plots_exports_and_galleries(done: Finished) -> None:
    html = _html(done.client, f"/ui/jobs/{done.job_id}")
    job = done.client.get(f"/jobs/{done.job_id}").json()
    for split, count in job["summary"]["split_counts"].items():
        assert re.search(rf"<td>{split}</td><td>{count}</td>", html), split
    assert f"Estimated label errors: <b>{job['estimated_n_errors']}</b>" in html
    assert f'src="/ui/jobs/{done.job_id}/dynamics.png"' in html and f'src="/ui/jobs/{done.job_id}/adaboost.png"' in html
    for what in ("scores", "easy", "intermediate", "hard", "mislabeled"):
        assert f"/jobs/{done.job_id}/export?what={what}&amp;format=csv" in html
        assert f"/ui/jobs/{done.job_id}/gallery/{what}" in html or what == "scores"
    assert f'href="/jobs/{done.job_id}"' in html and f'href="/jobs/{done.job_id}/dynamics"' in html
    assert 'id="cancel"' not in html  # finished: no live progress
    phases = job["summary"]["phases"]  # the panel's JSON twin
    assert "Agreement index and phase per epoch" in html
    last = len(phases["phase"]) - 1
    assert re.search(rf"<td>{last}</td><td>{phases['agreement_index'][-1]:.3f}</td><td>{phases['phase'][-1]}</td>",
                     html)
    export = done.client.get(f"/jobs/{done.job_id}/export", params={"what": "mislabeled", "format": "csv"})
    assert export.status_code == 200 and "example_id" in export.text.splitlines()[0]


def test_mislabeled_gallery_shows_the_planted_flips(done: Finished) -> None:
    html = _html(done.client, f"/ui/jobs/{done.job_id}/gallery/mislabeled")
    shown = {int(i) for i in re.findall(r'data-example="(\d+)"', html)}
    assert shown and len(shown) <= 60
    assert len(shown & done.flipped) >= 0.5 * len(done.flipped), (sorted(shown), sorted(done.flipped))
    assert "given <b>" in html and "suggested" in html and "mislabel score" in html
    assert "f0 = " in html  # a table: the first features, named by the manifest
    assert f'href="/jobs/{done.job_id}/mislabeled?limit=60&amp;offset=0"' in html  # JSON twin


def test_split_galleries_paginate(done: Finished) -> None:
    counts = done.client.get(f"/jobs/{done.job_id}").json()["summary"]["split_counts"]
    split = max(counts, key=counts.get)
    first = _html(done.client, f"/ui/jobs/{done.job_id}/gallery/{split}")
    ids = re.findall(r'data-example="(\d+)"', first)
    assert len(ids) == min(60, counts[split]) and f"of {counts[split]}" in first
    if counts[split] > 60:
        assert "next »" in first
        second = _html(done.client, f"/ui/jobs/{done.job_id}/gallery/{split}?offset=60")
        assert not set(ids) & set(re.findall(r'data-example="(\d+)"', second)) and "« previous" in second
    for other in ("easy", "intermediate", "hard"):
        _html(done.client, f"/ui/jobs/{done.job_id}/gallery/{other}")


def test_plot_pngs_are_valid_and_cached(done: Finished) -> None:
    for which in ("dynamics", "adaboost"):
        first = _png(done.client, f"/ui/jobs/{done.job_id}/{which}.png")
        assert first.width > 300
        assert (done.server.data_dir / "exports" / "plots" / f"{done.job_id}-{which}.png").is_file()
        assert _png(done.client, f"/ui/jobs/{done.job_id}/{which}.png").size == first.size


def test_image_thumbnails(done: Finished) -> None:
    image = _png(done.client, f"/ui/datasets/{done.image_dataset_id}/examples/3.png")
    assert image.size == (96, 96)  # 8x8 upscaled 12x, nearest neighbour
    assert done.client.get(f"/ui/datasets/{done.image_dataset_id}/examples/40.png").status_code == 404
    assert done.client.get(f"/ui/datasets/{done.dataset_id}/examples/0.png").status_code == 404  # a table


def test_bad_ids_give_the_error_page(done: Finished) -> None:
    assert "job nope not found" in _html(done.client, "/ui/jobs/nope", 404)
    assert "not found" in _html(done.client, "/ui/jobs/nope/gallery/hard", 404)
    assert "gallery" in _html(done.client, f"/ui/jobs/{done.job_id}/gallery/bogus", 404)
    assert _html(done.client, f"/ui/jobs/{done.job_id}/report.html").count("<tr>") > 10
    for url in ("/ui/jobs/nope/dynamics.png", "/ui/jobs/nope/adaboost.png", "/ui/datasets/nope/examples/0.png",
                f"/ui/jobs/{done.job_id}/examples/0/heatmap.png"):
        assert done.client.get(url).status_code == 404, url


def test_pages_need_a_key_when_keys_are_enabled(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", env={"CURATE_API_KEYS": "alice=" + "k" * 20}).start()
    try:
        assert httpx.get(f"{server.url}/").status_code == 401
        assert httpx.get(f"{server.url}/", headers={"Authorization": "Bearer " + "k" * 20}).status_code == 200
    finally:
        server.stop()


def test_report_over_the_server_then_in_process(done: Finished, tmp_path: Path) -> None:
    """Last in this file: it stops the shared server to run the report in-process too."""
    reports = []
    for mode in ("server", "local"):
        if mode == "local":
            done.server.stop()
        out = tmp_path / f"{mode}.html"
        cli = subprocess.run([sys.executable, "-m", "service", "report", done.job_id, "-o", str(out),
                              "--data-dir", str(done.server.data_dir)], capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr
        reports.append(out.read_text())
    for html in reports:
        assert html.count('src="data:image/png;base64,') == 2 and 'src="/' not in html and "href=\"/" not in html
        assert "Top " in html and "suspected mislabels" in html and "&lt;script&gt;" in html and EVIL not in html
        assert len(re.findall(r"<tr><td>\d+</td>", html)) >= 10
        assert "Agreement index and phase per epoch" in html
    bad = subprocess.run([sys.executable, "-m", "service", "report", "nope", "-o", str(tmp_path / "x.html"),
                          "--data-dir", str(done.server.data_dir)], capture_output=True, text=True)
    assert bad.returncode == 1 and "job nope not found" in bad.stderr
