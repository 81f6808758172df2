"""benchmarks/throughput.py renders a GPU report: the committed H200 run goes through its verdicts
and tables (a verdict crashed on that run's data once, and GPU runs are rare and short)."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
from benchmarks import throughput  # noqa: E402

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "gpu" / "h200-run2" / "throughput.json"


def test_the_committed_gpu_run_renders_with_a_verdict_per_target() -> None:
    report = json.loads(RUN.read_text())
    verdicts = throughput.verdicts(report)
    by_target = {v["target"].split(" >=")[0].split(" <=")[0]: v for v in verdicts}
    assert set(by_target) == {"GPU training", "Jumpout overhead", "GPU record pass"}
    rows = report["cnn_variants"]["rows"]
    fastest = max(r["train_ensemble_images_per_s"] for r in rows
                  if r["dropout"] == "jumpout" and r["width"] == report["cnn_variants"]["cnn_width"])
    assert f"{fastest:,}" in by_target["GPU training"]["shown"]
    assert by_target["GPU training"]["met"] is (fastest >= throughput.GPU_TRAIN_TARGET)
    titles = [title for title, _, _ in throughput.tables(report)]
    assert any(t.startswith("CNN variants") for t in titles)
    assert sum(t.startswith("Where the GPU time goes") for t in titles) == 2
