"""How fast the dashboard's pages load on a 100k-example job (issue 7: "pages load fast on a
100k-example job").

Starts `curate serve` on a temporary data dir, uploads the same synthetic 100k x 20 table as
`api_load.py`, trains its small finished job, then fetches every page of that job: the first
fetch (cold: PNGs drawn; the scheduler has warmed the result cache) and the median of `--reps`
more (warm). One client, no other load. Target [ours]: every page under 1 s cold and 200 ms warm.

    python benchmarks/dashboard_load.py      # prints a table, writes results/dashboard_load.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402

from benchmarks.api_load import FINISHED_JOB, save_synthetic_npz, wait_for_job  # noqa: E402
from benchmarks.live_server import Server  # noqa: E402
from benchmarks.report import markdown_table, print_tables  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLD_TARGET_S, WARM_TARGET_S = 1.0, 0.2


def pages(job_id: str, n_examples: int) -> list[tuple[str, str]]:
    deep = (n_examples // 2) // 60 * 60  # a gallery page in the middle of the easy split
    return [("home", "/"), ("job page", f"/ui/jobs/{job_id}"),
            ("dynamics plot", f"/ui/jobs/{job_id}/dynamics.png"), ("AdaBoost plot", f"/ui/jobs/{job_id}/adaboost.png"),
            *[(f"gallery {s}", f"/ui/jobs/{job_id}/gallery/{s}") for s in ("easy", "intermediate", "hard",
                                                                             "mislabeled")],
            ("gallery easy, deep page", f"/ui/jobs/{job_id}/gallery/easy?offset={deep}")]


def fetch(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    r = client.get(path, headers={"accept": "text/html"})
    r.raise_for_status()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-dashboard-load-"))
    server = Server(work / "data").start()
    load_before = os.getloadavg()
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            path = save_synthetic_npz(work / "synthetic.npz", args.examples)
            ds = client.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
            ds.raise_for_status()
            job = client.post("/jobs", json={"dataset_id": ds.json()["dataset_id"], **FINISHED_JOB}).json()
            done = wait_for_job(client, job["job_id"], lambda j: j["status"] in ("succeeded", "failed"), 900)
            assert done["status"] == "succeeded", done["error"]
            rows = []
            for name, url in pages(job["job_id"], args.examples):
                cold = fetch(client, url)
                warm = statistics.median(fetch(client, url) for _ in range(args.reps))
                rows.append({"page": name, "path": url, "cold_s": round(cold, 3), "warm_median_s": round(warm, 3),
                             "meets_target": cold < COLD_TARGET_S and warm < WARM_TARGET_S})
            report_path = work / "report.html"
            started = time.perf_counter()
            cli = subprocess.run([sys.executable, "-m", "service", "report", job["job_id"], "-o", str(report_path),
                                  "--url", server.url], capture_output=True, text=True, cwd=ROOT)
            report_s = time.perf_counter() - started
            assert cli.returncode == 0, cli.stderr
    finally:
        server.stop()
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "load_average_before": [round(v, 2) for v in load_before],
               "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    header = ["page", "cold s", "warm median s", f"< {COLD_TARGET_S:g} s cold and < {WARM_TARGET_S:g} s warm"]
    body = [[r["page"], f"{r['cold_s']:.3f}", f"{r['warm_median_s']:.3f}", "yes" if r["meets_target"] else "NO"]
            for r in rows]
    print_tables(Console(), [(f"Dashboard pages, {args.examples:,}-example job (one client)", header, body)])
    print(f"curate report (whole process, over HTTP): {report_s:.1f} s, {report_path.stat().st_size / 1e3:.0f} kB")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine, "examples": args.examples, "reps": args.reps, "rows": rows,
              "report_seconds": round(report_s, 2), "report_bytes": report_path.stat().st_size}
    (args.out / "dashboard_load.json").write_text(json.dumps(result, indent=1))
    (args.out / "dashboard_load.md").write_text(
        f"# Dashboard page loads on a {args.examples:,}-example job\n\nCommand: `python benchmarks/dashboard_load.py`"
        f"\n\nMachine: {machine}\n\nOne client, no other load; cold = first fetch of the page after the job "
        f"finished (PNGs are drawn then; the scheduler has already warmed the result cache), warm = median of "
        f"{args.reps} more. Target [ours]: < {COLD_TARGET_S:g} s cold, < {WARM_TARGET_S:g} s warm.\n\n" + markdown_table(header, body)
        + f"\n\n`curate report` of the job (a new process, over HTTP, self-contained HTML): {report_s:.1f} s, "
        f"{report_path.stat().st_size / 1e3:.0f} kB.\n")


if __name__ == "__main__":
    main()
