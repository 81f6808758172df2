"""No 500 for the inputs of issue 15, over HTTP against a real server: bombs, null correlations,
odd bodies and names, and the bounds on uploads, images, attributions and job sizes."""

import io
import json
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from models.spec import AdaBoostSpec, TrainSpec
from service.engine import Engine
from service.settings import Settings
from tests.service.conftest import Server, digits_npz

TINY = {"n_members": 2, "n_epochs": 3, "hidden_units": 16, "batch_size": 64}


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["message"]


def huge_npz(path: Path, shape: tuple[int, ...] = (10**12, 3)) -> Path:
    """A 1 KB .npz whose X.npy header declares `shape` of float64 over 24 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    buf.write(b"\0" * 24)
    y = io.BytesIO()
    np.save(y, np.arange(4, dtype=np.int64) % 2)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", buf.getvalue())
        zf.writestr("y.npy", y.getvalue())
    return path


def test_an_npz_header_declaring_a_huge_shape_is_a_422_naming_it(server: Server, tmp_path: Path) -> None:
    path = huge_npz(tmp_path / "bomb.npz")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        message = _error(c.post("/datasets", params={"filename": "bomb.npz"}, content=path.read_bytes()), 422)
        assert "bomb.npz" in message and "(1000000000000, 3)" in message
        assert c.get("/datasets").json() == []


@pytest.mark.slow
def test_plots_and_report_of_a_job_with_a_null_correlation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = Engine(Settings(data_dir=data, explain_max_examples=0))
    path, _ = digits_npz(tmp_path / "d.npz", n=100)
    ds = engine.add_dataset(path)
    job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**TINY), AdaBoostSpec(n_rounds=3)))
    assert job.status == "succeeded"
    summary = dict(job.summary or {})  # a constant difficulty: every correlation null (JSON has no NaN)
    summary["adaboost"] = {**summary["adaboost"], **{k: None for k in (
        "pearson_r", "pearson_p", "spearman_r", "spearman_p", "curves_ordered")}}
    with engine.store.transaction() as cur:
        cur.execute("UPDATE jobs SET summary = ? WHERE job_id = ?", [json.dumps(summary), job.job_id])
    engine.close()
    srv = Server(data).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            png = c.get(f"/ui/jobs/{job.job_id}/adaboost.png")
            assert png.status_code == 200 and png.content[:4] == b"\x89PNG", png.text[:300]
            report = c.get(f"/ui/jobs/{job.job_id}/report.html")
            assert report.status_code == 200 and "n/a" in report.text
    finally:
        srv.stop()
