"""Issue 15's smaller items, each against the behaviour it replaced: docs behind auth and offline,
405 with Allow, non-UTF-8 JSON, long file names, CSV formulas, keys by id, start-up errors, p-values."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from service.cli.main import _p
from service.read.exports import write_table
from tests.service.conftest import Server, digits_npz

ROOT = Path(__file__).resolve().parents[2]
KEY1, KEY2 = "k1-" + "a" * 20, "k2-" + "b" * 20


def test_docs_follow_the_api_auth_and_load_no_cdn(start_server, tmp_path: Path) -> None:
    srv = start_server(CURATE_API_KEYS=f"alice={KEY1}")
    auth = {"Authorization": f"Bearer {KEY1}"}
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for page in ("/openapi.json", "/docs", "/redoc"):
            r = c.get(page)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (page, r.text[:200])
            r = c.get(page, headers=auth)
            assert r.status_code == 200, page
            assert "cdn." not in r.text and "fonts.googleapis" not in r.text, page
        assert "/jobs" in c.get("/openapi.json", headers=auth).json()["paths"]
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            assert c.get(f"/docs-assets/{asset}").status_code == 200, asset
        # 405 keeps its Allow header
        r = c.put("/health")
        assert r.status_code == 405 and "GET" in r.headers.get("allow", ""), dict(r.headers)
        # a body that is not UTF-8: 422 in the error shape, not FastAPI's bare 400
        r = c.post("/jobs", content=b'{"dataset_id": "\xff\xfe"}', headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
        assert "UTF-8" in r.json()["error"]["message"]
        # a 5,000-character file name keeps its suffix (it was cut to 128 characters, then 415)
        path, _ = digits_npz(tmp_path / "d.npz", n=60)
        r = c.post("/datasets", params={"filename": "x" * 5000 + ".npz"}, content=path.read_bytes(), headers=auth)
        assert r.status_code == 201, r.text
        assert r.json()["name"].endswith(".npz") or r.json()["source_format"] == "npz"


@pytest.mark.slow  # two servers, one after the other, on one data dir: 5.5 s
def test_a_new_key_under_an_old_name_does_not_inherit_its_datasets(tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz", n=60)
    data = tmp_path / "data"
    srv = Server(data, env={"CURATE_API_KEYS": f"alice={KEY1}"}).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.post("/datasets", params={"filename": "d.npz"}, content=path.read_bytes(),
                       headers={"Authorization": f"Bearer {KEY1}"})
            assert r.status_code == 201
    finally:
        srv.stop()
    srv = Server(data, env={"CURATE_API_KEYS": f"alice={KEY2},alice2={KEY1}"}).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/datasets", headers={"Authorization": f"Bearer {KEY2}"}).json() == []
            assert len(c.get("/datasets", headers={"Authorization": f"Bearer {KEY1}"}).json()) == 1  # same key: same owner
    finally:
        srv.stop()


def test_csv_exports_neutralise_formulas_and_other_formats_keep_values(tmp_path: Path) -> None:
    table = pa.table({"source": ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "cat/1.png", None],
                      "score": [-0.5, 1.0, 2.0, 3.0, 4.0, 5.0]})
    rows = pacsv.read_csv(write_table(table, "csv", tmp_path / "t.csv")).to_pylist()
    assert [r["source"] for r in rows] == ["'=HYPERLINK(\"x\")", "'+1", "'-2", "'@SUM(A1)", "cat/1.png", ""]  # CSV reads a null as ""
    assert rows[0]["score"] == -0.5  # numbers untouched
    assert '"=HYPERLINK' in (write_table(table, "jsonl", tmp_path / "t.jsonl")).read_text().replace('\\"', '"')


def _serve(data: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "serve", "--port", "0", "--data-dir", str(data)],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # ~7 s: three `curate serve` processes (two refused, one running)
def test_start_up_failures_print_one_error_line_and_exit_non_zero(start_server, tmp_path: Path) -> None:
    bad = _serve(tmp_path / "a", CURATE_API_KEYS="alice=short")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert [line for line in bad.stderr.splitlines() if line.strip()][-1].startswith("error: CURATE_API_KEYS")
    srv = start_server()
    second = _serve(srv.data_dir)
    assert second.returncode != 0 and "Traceback" not in second.stderr, second.stderr[-2000:]
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "in use" in lines[0], lines


def test_compare_prints_p_values_in_scientific_notation() -> None:
    assert _p(3.817275e-91) == "3.8e-91"
    assert _p(0.0123) == "0.012"
    assert _p(None) == "n/a"
