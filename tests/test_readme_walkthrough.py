"""The README's HTTP walk-through, run as written: its bash block against a real `curate serve`.

Only what must differ on a test machine is rewritten: the data dir (a temp folder), the port (a
free one), the curate executable (this interpreter), the fixed `sleep 5` (wait for /health) and the
size of its three trainings (the demo's default 8 x 20 becomes 2 x 4; the two jobs' 8 x 20 and
100 AdaBoost rounds become 2 x 4 and 10 rounds) and the server's after-job explanations (off; the
walk-through's one attribution is computed on demand): the walk-through's commands and their outputs
are under test, not the ensemble's size; at the full size this test alone took 32-55 s of the suite.
"""

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.live_server import free_port

ROOT = Path(__file__).resolve().parents[1]
FULL_SPEC = r'\"spec\": {\"n_members\": 8, \"n_epochs\": 20}'  # as the README's JSON bodies spell it inside "..."
SMALL_SPEC = r'\"spec\": {\"n_members\": 2, \"n_epochs\": 4}, \"adaboost\": {\"n_rounds\": 10}'


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Over HTTP", 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def json_objects(text: str) -> list[dict]:
    """The JSON objects in curl's output (one after another, not newline-separated)."""
    decoder, found, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        found.append(obj)
        i = text.find("{", end)
    return found


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl")
def test_the_readme_http_walkthrough_works_as_written(tmp_path: Path) -> None:
    port = free_port()
    script = walkthrough()
    assert "curate serve --data-dir data &" in script and "sleep 5" in script  # what gets rewritten below
    assert "curate demo --data-dir data " in script and script.count(FULL_SPEC) == 2
    script = (script.replace(".venv/bin/curate", f"{sys.executable} -m service")
              .replace("curate serve --data-dir data &", f"curate serve --data-dir data --port {port} &")
              .replace("service serve --data-dir data &", f"service serve --data-dir data --port {port} &")
              .replace("sleep 5", f"until curl -sf localhost:{port}/health >/dev/null; do sleep 0.2; done")
              .replace("localhost:8000", f"localhost:{port}")
              .replace("curate demo --data-dir data ", "curate demo --data-dir data --members 2 --epochs 4 ")
              .replace("service demo --data-dir data ", "service demo --data-dir data --members 2 --epochs 4 ")
              .replace(FULL_SPEC, SMALL_SPEC))
    # the server explains no job after it succeeds (three explain workers' start-ups); the one
    # attribution the walk-through asks for is computed on demand, as the README says
    env = {**os.environ, "CURATE_EXPLAIN_MAX_EXAMPLES": "0"}
    done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "precision" in out and "recall" in out  # curate demo, through the server
    assert "succeeded" in out  # the event stream ran to the end of the job
    with (tmp_path / "hard.csv").open(newline="") as f:
        hard = list(csv.DictReader(f))
    assert hard and {row["split"] for row in hard} == {"hard"}
    payloads = json_objects(out)
    mislabeled = next(p for p in payloads if "items" in p)
    assert mislabeled["total"] > 0 and len(mislabeled["items"]) <= 20
    attribution = next(p for p in payloads if "bias_term" in p)
    assert attribution["example_id"] == 0 and attribution["method"] == "bias"
    assert not [p for p in payloads if isinstance(p.get("error"), dict)]  # the error shape is {"error": {...}}
    # the curation loop: decisions stored, a corrected version exported, a diff of the two jobs
    stored = [p for p in payloads if "n_applied" in p]
    assert [p["n_applied"] for p in stored][0] == 1 and stored[-1]["counts"]["relabel"] > 0
    decisions = next(p for p in payloads if "counts" in p and "items" in p)
    assert decisions["items"] and {i["action"] for i in decisions["items"]} == {"relabel"}
    with (tmp_path / "corrected.csv").open(newline="") as f:
        corrected = list(csv.DictReader(f))
    assert corrected and corrected[0]["curate_action"] == "keep"  # example 0 was kept
    assert sum(row["curate_action"] == "relabel" for row in corrected) == stored[-1]["counts"]["relabel"]
    diff = next(p for p in payloads if "suspects" in p)
    assert diff["relabelled"] == stored[-1]["counts"]["relabel"] and diff["excluded"] == 0
