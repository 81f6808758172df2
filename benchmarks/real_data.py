"""Benchmark: Curate on data as users have it (issue 16): a mixed-type table, a text set and
digits as photos of mixed sizes and modes, each written as a *file* and uploaded the way a user
would (so ingestion, column roles, embedding and resizing are part of what is measured), with
realistic planted noise; plus ingestion throughput and peak memory at scale.

    python benchmarks/real_data.py [--cases table,text,photos] [--noise confusion20,ambiguous20]
        [--seeds 100,101] [--members 8 --epochs 20] [--ingest-rows 1000000 --ingest-images 100000]
        [--quick] [--part NAME] [--out benchmarks/results]

Detection. Each case builds items 0..n-1 with clean labels, plants the noise with a clean
cross-validated logistic regression on the features Curate's own ingestion makes of the clean file
(photos: on the original 8x8 digits)
(benchmarks/noise.py: `confusion` flips a class to its most-confused class, `ambiguous` flips
ambiguous items to their most probable other class), writes the noisy file, then:
- Curate: the real pipeline on the file (Engine.add_dataset -> DuckDB -> train -> score);
- cleanlab on out-of-fold probabilities of LR and of an MLP, 10 plain MLPs' consistency and AUM
  (benchmarks/baselines.py), all on the *same features* Curate's ingestion produced from the noisy
  file (encoded columns, text embeddings, resized pixels).
No method is tuned here: Curate runs its defaults (chosen on selection seeds by
detection_variants.py), the seeds here are test seeds.

The cases:
- `table`: breast_cancer (569 rows) as a `;`-separated UTF-8-with-BOM CSV: 12 numeric columns,
  3 more binned into named categories, 5 % missing cells in four columns, a yes/no column, a
  constant column, an id column and a short free-text "note" made from two binned columns.
- `text`: paragraphs of the docstrings of numpy, scipy, scikit-learn and matplotlib (offline:
  the installed packages' own documentation), labelled by library, as a folder of .txt files per
  class. Real prose whose classes overlap (numpy vs scipy especially).
- `photos`: the 1,797 digits upscaled to 16-40 px squares, one in three tinted RGB, one in six
  RGBA, one in four saved as JPEG, the rest PNG, zipped in class folders (Curate resizes them to
  the median size capped at 64 px and trains its CNN).

Ingestion: a generated mixed CSV of `--ingest-rows` rows (numeric, category, yes/no, date, gaps)
and `--ingest-images` 16-32 px PNGs, each ingested in a fresh subprocess: rows/s or images/s and
the subprocess's peak RSS (VmHWM, reset at its start: the counter survives fork and exec).

Writes `<out>/real_data.json` and `<out>/real_data.md`.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image
from rich.console import Console
from sklearn.datasets import load_breast_cancer, load_digits

from benchmarks.baselines import BASELINES, run_baseline
from benchmarks.detection import describe_machine, parse_noise
from benchmarks.noise import (
    compute_detection_metrics,
    compute_reference_probs,
    plant_ambiguous_noise,
    plant_confusion_noise,
)
from benchmarks.report import markdown_table, print_tables

ROOT = Path(__file__).resolve().parents[1]
NOISE = {"confusion": plant_confusion_noise, "ambiguous": plant_ambiguous_noise}
CURATE = "curate"
TEXT_LIBRARIES = ("numpy", "scipy", "sklearn", "matplotlib")
TEXTS_PER_CLASS = 250


# --- the cases: items 0..n-1 with clean labels, written as the file a user would upload ------------


class Case:
    """One data set: `write(folder, y)` writes the file with labels y and returns its path; `index`
    maps an example's source back to its item; `options` are the upload's ingest options."""

    name = ""
    options: dict = {}
    y: np.ndarray
    class_names: list[str]

    def write(self, folder: Path, y: np.ndarray) -> Path:
        raise NotImplementedError

    def index(self, source: str) -> int:
        return int(re.findall(r"\d+", source)[-1])


class TableCase(Case):
    name = "table"

    def __init__(self) -> None:
        data = load_breast_cancer()
        self.X, self.y = data.data, data.target.astype(np.int64)
        self.features = [f.replace(" ", "_") for f in data.feature_names]
        self.class_names = [str(c) for c in data.target_names]

    def write(self, folder: Path, y: np.ndarray) -> Path:
        rng = np.random.default_rng(0)  # the table is the same for every seed; only labels change
        n = len(y)
        cols: dict[str, list[str]] = {"patient_id": [f"P{100000 + i}" for i in range(n)]}
        for j in range(12):
            values = [f"{v:.5g}" for v in self.X[:, j]]
            if j in (1, 4, 7, 10):
                for i in rng.choice(n, n // 20, replace=False):
                    values[i] = ""
            cols[self.features[j]] = values
        words = {}
        for j, names in ((20, ("small", "medium", "large")), (21, ("smooth", "fine", "rough")),
                         (27, ("few", "some", "many"))):
            bins = np.quantile(self.X[:, j], [1 / 3, 2 / 3])
            words[j] = [names[k] for k in np.digitize(self.X[:, j], bins)]
            cols[self.features[j] + "_band"] = words[j]
        cols["follow_up"] = ["yes" if v > np.median(self.X[:, 25]) else "no" for v in self.X[:, 25]]
        cols["clinic"] = ["north"] * n
        cols["note"] = [f"{words[20][i]} mass, {words[21][i]} texture, seen in clinic" for i in range(n)]
        cols["diagnosis"] = [self.class_names[c] for c in y]
        header = ";".join(cols)
        lines = [";".join(row) for row in zip(*cols.values(), strict=True)]
        path = folder / "patients.csv"
        path.write_bytes(("\ufeff" + header + "\n" + "\n".join(lines) + "\n").encode("utf-8"))
        return path

    options = {"label_column": "diagnosis"}

    def index(self, source: str) -> int:  # "row N"
        return int(source.split()[-1])


class TextCase(Case):
    name = "text"

    def __init__(self) -> None:
        self.texts, labels = docstring_paragraphs(TEXT_LIBRARIES, TEXTS_PER_CLASS)
        self.y = np.asarray(labels, dtype=np.int64)
        self.class_names = list(TEXT_LIBRARIES)

    def write(self, folder: Path, y: np.ndarray) -> Path:
        root = folder / "docs"
        for c in self.class_names:
            (root / c).mkdir(parents=True)
        for i, (text, label) in enumerate(zip(self.texts, y, strict=True)):
            (root / self.class_names[int(label)] / f"{i:06d}.txt").write_text(text, encoding="utf-8")
        return root


class PhotoCase(Case):
    name = "photos"

    def __init__(self) -> None:
        digits = load_digits()
        self.images, self.y = digits.images, digits.target.astype(np.int64)
        self.reference_X = digits.data  # the annotator's view for planting: the 8x8 originals
        self.class_names = [str(c) for c in range(10)]

    def write(self, folder: Path, y: np.ndarray) -> Path:
        rng = np.random.default_rng(0)  # the photos are the same for every seed; only labels change
        path = folder / "photos.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for i, (img, label) in enumerate(zip(self.images, y, strict=True)):
                grey = Image.fromarray(np.uint8(img * 255 / 16), mode="L")
                side = int(rng.integers(16, 41))
                pil = grey.resize((side, side), Image.Resampling.BILINEAR)
                if i % 3 == 0:
                    tint = rng.uniform(0.5, 1.0, 3)
                    pil = Image.fromarray(np.uint8(np.asarray(pil)[..., None] * tint), mode="RGB")
                if i % 6 == 1:
                    pil = pil.convert("RGBA")
                fmt = "JPEG" if i % 4 == 2 else "PNG"
                if fmt == "JPEG" and pil.mode == "RGBA":
                    pil = pil.convert("RGB")
                buffer = io.BytesIO()
                pil.save(buffer, format=fmt, quality=90)
                zf.writestr(f"{label}/{i:06d}.{'jpg' if fmt == 'JPEG' else 'png'}", buffer.getvalue())
        return path


CASES = {"table": TableCase, "text": TextCase, "photos": PhotoCase}


def docstring_paragraphs(libraries: tuple[str, ...], per_class: int) -> tuple[list[str], list[int]]:
    """Paragraphs (>= 12 words, prose, not parameter tables or code) of the docstrings of each
    library's public functions and classes; `per_class` of each, drawn with a fixed seed."""
    import importlib

    texts: list[str] = []
    labels: list[int] = []
    rng = np.random.default_rng(0)
    for label, name in enumerate(libraries):
        paragraphs: set[str] = set()
        for module in _modules(importlib.import_module(name)):
            for _, obj in inspect.getmembers(module):
                doc = inspect.getdoc(obj) if callable(obj) else None
                for para in re.split(r"\n\s*\n", doc or ""):
                    flat = " ".join(para.split())
                    if len(flat.split()) >= 12 and not re.search(r">>>|----|^\w+ :|:\s*$", para) \
                            and flat[:1].isupper():
                        paragraphs.add(flat)
        chosen = sorted(paragraphs)
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), min(per_class, len(chosen)), replace=False))]
        texts += chosen
        labels += [label] * len(chosen)
    return texts, labels


def _modules(package: object) -> list[object]:
    import importlib

    names = {"numpy": ["numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.ma", "numpy.polynomial"],
             "scipy": ["scipy.stats", "scipy.linalg", "scipy.optimize", "scipy.signal", "scipy.interpolate",
                       "scipy.sparse", "scipy.spatial", "scipy.integrate", "scipy.special", "scipy.ndimage"],
             "sklearn": ["sklearn.linear_model", "sklearn.ensemble", "sklearn.preprocessing", "sklearn.metrics",
                         "sklearn.model_selection", "sklearn.cluster", "sklearn.decomposition", "sklearn.svm",
                         "sklearn.neighbors", "sklearn.tree", "sklearn.pipeline", "sklearn.feature_extraction.text"],
             "matplotlib": ["matplotlib.pyplot", "matplotlib.axes", "matplotlib.figure", "matplotlib.colors",
                            "matplotlib.patches", "matplotlib.text", "matplotlib.lines", "matplotlib.ticker"]}
    return [importlib.import_module(m) for m in names[package.__name__]]  # type: ignore[attr-defined]


# --- running one case ------------------------------------------------------------------------


def ingest(path: Path, options: dict) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Curate's own ingestion of the file: (X float (n, d) flattened, y as class names, sources, report)."""
    from service.ingest.formats import load_dataset
    from service.ingest.options import IngestOptions

    loaded = load_dataset(path, IngestOptions(**options))
    X = np.asarray(loaded.X, dtype=np.float64).reshape(len(loaded.y), -1)
    return X, np.asarray(loaded.class_names)[loaded.y], list(loaded.sources), dict(loaded.report)


def run_curate_file(path: Path, options: dict, seed: int, spec: dict, data_dir: Path) -> tuple[list[str], dict]:
    """The real pipeline on the file; (sources, columns by name) in Curate's example order."""
    from models.spec import AdaBoostSpec, TrainSpec
    from service.engine.engine import Engine
    from service.ingest.options import IngestOptions
    from service.read import queries
    from service.settings import Settings

    engine = Engine(Settings(data_dir=data_dir, explain_max_examples=0))
    try:
        ds = engine.add_dataset(path, IngestOptions(**options))
        job = engine.run(engine.submit(ds.dataset_id, TrainSpec(random_state=seed, **spec), AdaBoostSpec(enabled=False)))
        if job.status != "succeeded":
            raise RuntimeError(f"curate job {job.job_id} {job.status}: {job.error}")
        rows = queries.score_rows(engine.store, job.job_id)
    finally:
        engine.close()
    return rows.column("source").to_pylist(), {
        "score": rows.column("mislabel_score").to_numpy().astype(np.float64),
        "flagged": rows.column("is_suspected_mislabel").to_numpy(zero_copy_only=False).astype(bool),
        "estimated_n_errors": int(job.estimated_n_errors or 0), "model": (job.summary or {}).get("model")}


def run_case(case: Case, noise: str, seed: int, spec: dict, methods: list[str], console: Console) -> list[dict]:
    kind, rate = parse_noise(noise)
    n_classes = len(case.class_names)
    with tempfile.TemporaryDirectory() as tmp:
        clean_dir, noisy_dir = Path(tmp) / "clean", Path(tmp) / "noisy"
        clean_dir.mkdir()
        noisy_dir.mkdir()
        X_items = getattr(case, "reference_X", None)
        if X_items is None:  # the features Curate's ingestion makes of the clean file, in item order
            X_clean, _, sources, _ = ingest(case.write(clean_dir, case.y), case.options)
            X_items = np.empty_like(X_clean)
            X_items[np.array([case.index(s) for s in sources])] = X_clean
        reference = compute_reference_probs(X_items, case.y, seed)
        y_noisy, is_flipped = NOISE[kind](case.y, rate, n_classes, seed, reference)
        path = case.write(noisy_dir, y_noisy)
        started = time.perf_counter()
        X, given, sources, report = ingest(path, case.options)
        ingest_s = time.perf_counter() - started
        items = np.array([case.index(s) for s in sources])
        truth = is_flipped[items]
        names = np.asarray(case.class_names)
        assert np.array_equal(given, names[y_noisy[items]]), "the file's labels must be the planted ones"
        y_ex = y_noisy[items]  # in Curate's example order, the case's class indexes
        rows = []
        for method in methods:
            started = time.perf_counter()
            extra: dict = {}
            if method == CURATE:
                cur_sources, out = run_curate_file(path, case.options, seed, spec, Path(tmp) / "curate")
                assert cur_sources == sources, "Curate's example order must be its ingestion's"
                score, flagged, estimated = out["score"], out["flagged"], out["estimated_n_errors"]
                extra["model"] = out["model"]
            else:
                det = run_baseline(method, X, y_ex, n_classes, seed)
                score, flagged, estimated = det.mislabel_score, det.is_flagged, det.estimated_n_errors
            row = {"case": case.name, "noise": noise, "seed": seed, "method": method, "n_examples": len(y_ex),
                   "n_features": X.shape[1], "n_flipped": int(truth.sum()), "estimated_n_errors": int(estimated),
                   "seconds": time.perf_counter() - started, "ingest_seconds": ingest_s, **extra}
            row.update(compute_detection_metrics(truth, score, flagged))
            rows.append(row)
            console.log(f"{case.name} {noise} seed={seed} {method}: AP {row['ap']:.3f} F1 {row['f1']:.3f} "
                        f"({row['seconds']:.1f} s)")
        rows[0]["ingest_report"] = _short_report(report)
    return rows


def _short_report(report: dict) -> dict:
    """What ingestion said, without per-column detail: roles counted, embedder, image sizes."""
    out: dict = {}
    if "columns" in report:
        roles: dict[str, int] = {}
        for c in report["columns"]:
            roles[c["role"]] = roles.get(c["role"], 0) + 1
        out["roles"] = roles
    for key in ("file", "text", "images"):
        if key in report:
            out[key] = {k: v for k, v in report[key].items() if k in ("delimiter", "encoding", "embedder", "dims",
                                                                        "resized_to", "sizes", "channels")}
    return out


# --- ingestion at scale ------------------------------------------------------------------------------


INGEST_SCRIPT = """
import re, sys, time, json
from pathlib import Path
# the peak RSS counter survives fork + exec (it would report the parent's peak): reset it first
Path("/proc/self/clear_refs").write_text("5")
from service.ingest.formats import load_dataset
t = time.perf_counter()
loaded = load_dataset(Path(sys.argv[1]))
s = time.perf_counter() - t
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"n": len(loaded.y), "shape": list(loaded.X.shape), "seconds": s, "peak_rss_mb": hwm / 1024}))
"""


def write_big_csv(path: Path, n_rows: int) -> None:
    rng = np.random.default_rng(0)
    chunk = 100_000
    with path.open("w") as f:
        f.write("amount,score,region,segment,active,signup,label\n")
        for start in range(0, n_rows, chunk):
            m = min(chunk, n_rows - start)
            amount = np.round(rng.gamma(2.0, 50.0, m), 2).astype(str)
            amount[rng.random(m) < 0.03] = ""
            score = np.round(rng.normal(0, 1, m), 4).astype(str)
            region = rng.choice(["north", "south", "east", "west", "centre"], m)
            segment = rng.choice([f"s{k}" for k in range(60)], m)
            active = rng.choice(["yes", "no"], m)
            days = rng.integers(0, 3650, m)
            signup = (np.datetime64("2015-01-01") + days).astype(str)
            label = rng.choice(["a", "b", "c"], m)
            f.writelines(",".join(r) + "\n" for r in zip(amount, score, region, segment, active, signup, label,
                                                         strict=True))


def write_png_folder(root: Path, n_images: int) -> None:
    rng = np.random.default_rng(0)
    for c in range(10):
        (root / str(c)).mkdir(parents=True)
    for i in range(n_images):
        side = int(rng.integers(16, 33))
        Image.fromarray(rng.integers(0, 255, (side, side), dtype=np.uint8), mode="L").save(root / str(i % 10) /
                                                                                             f"{i:06d}.png")


def measure_ingestion(n_rows: int, n_images: int, console: Console) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, n in (("csv", n_rows), ("png", n_images)):
            if n <= 0:
                continue
            path = Path(tmp) / ("big.csv" if kind == "csv" else "pngs")
            started = time.perf_counter()
            (write_big_csv if kind == "csv" else write_png_folder)(path, n)
            console.log(f"wrote {n:,} {'rows' if kind == 'csv' else 'images'} in {time.perf_counter() - started:.0f} s")
            res = subprocess.run([sys.executable, "-c", INGEST_SCRIPT, str(path)], cwd=ROOT, capture_output=True,
                                 text=True, timeout=3600)
            if res.returncode != 0:
                out.append({"input": kind, "n": n, "status": "failed", "error": res.stderr.strip()[-500:]})
                console.log(f"[red]{kind} ingestion failed[/red]: {res.stderr.strip()[-300:]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            out.append({"input": kind, "n": n, "status": "ok", "seconds": r["seconds"], "per_second": n / r["seconds"],
                        "peak_rss_mb": r["peak_rss_mb"], "shape": r["shape"],
                        "file_mb": _size_mb(path)})
            console.log(f"{kind}: {n / r['seconds']:,.0f}/s, peak RSS {r['peak_rss_mb']:,.0f} MB")
    return out


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


# --- report ------------------------------------------------------------------------------------------


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and spread over seeds per (case, noise, method)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["case"], r["noise"], r["method"]), []).append(r)
    out = []
    for (case, noise, method), rs in groups.items():
        out.append({"case": case, "noise": noise, "method": method, "n_seeds": len(rs),
                    **{f"{m}_mean": float(np.mean([r[m] for r in rs])) for m in ("ap", "f1", "seconds")},
                    "ap_sd": float(np.std([r["ap"] for r in rs])),
                    "estimated_rate": float(np.mean([r["estimated_n_errors"] / r["n_examples"] for r in rs])),
                    "planted_rate": float(np.mean([r["n_flipped"] / r["n_examples"] for r in rs]))})
    return out


def tables(report: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    header = ["case", "noise", "method", "AP", "F1", "est / planted rate", "seconds"]
    body = [[s["case"], s["noise"], s["method"], f"{s['ap_mean']:.3f} ± {s['ap_sd']:.3f}", f"{s['f1_mean']:.3f}",
             f"{s['estimated_rate']:.3f} / {s['planted_rate']:.3f}", f"{s['seconds_mean']:.1f}"]
            for s in report["summary"]]
    out = [("Detection (mean over test seeds)", header, body)]
    best = []
    for case in dict.fromkeys(s["case"] for s in report["summary"]):
        for noise in dict.fromkeys(s["noise"] for s in report["summary"] if s["case"] == case):
            group = [s for s in report["summary"] if s["case"] == case and s["noise"] == noise]
            cur = next((s for s in group if s["method"] == CURATE), None)
            top = max((s for s in group if s["method"] != CURATE), key=lambda s: s["ap_mean"], default=None)
            if cur and top:
                best.append([case, noise, f"{cur['ap_mean']:.3f}", f"{top['method']} {top['ap_mean']:.3f}",
                             f"{cur['ap_mean'] - top['ap_mean']:+.3f}"])
    out.append(("Curate against the best baseline by AP", ["case", "noise", "Curate AP", "best baseline AP", "Δ"],
                best))
    ingest_rows = [[r["input"], f"{r['n']:,}", r["status"], f"{r.get('per_second', 0):,.0f}",
                    f"{r.get('peak_rss_mb', 0):,.0f}", f"{r.get('file_mb', 0):,.1f}"] for r in report["ingestion"]]
    out.append(("Ingestion (fresh subprocess each)", ["input", "n", "status", "per second", "peak RSS MB", "file MB"],
                ingest_rows))
    return out


def save(out: Path, report: dict, stem: str = "real_data") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    m = report["machine"]
    lines = ["# Real-world data benchmark (issue 16)", "", f"Command: `{m['command']}`", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in m.items() if k != "command"), "",
             f"Curate's spec: {report['config']['spec']} (defaults otherwise), no AdaBoost; baselines on the "
             "same features Curate's ingestion made of the noisy file. Test seeds "
             f"{report['config']['seeds']}; nothing was tuned on them.", ""]
    for title, header, body in tables(report):
        lines += [f"## {title}", "", markdown_table(header, body), ""]
    lines += ["## What ingestion said (first run of each case)", ""]
    said = {r["case"]: r["ingest_report"] for r in reversed(report["runs"]) if "ingest_report" in r}
    lines += [f"- {case}: `{json.dumps(r)}`" for case, r in said.items()]
    lines += ["", f"Total wall time: {report['total_seconds']:.0f} s", ""]
    (out / f"{stem}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="table,text,photos")
    p.add_argument("--noise", default="confusion20,ambiguous20")
    p.add_argument("--seeds", default="100,101")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--methods", default=",".join([CURATE, *BASELINES]))
    p.add_argument("--ingest-rows", type=int, default=1_000_000)
    p.add_argument("--ingest-images", type=int, default=100_000)
    p.add_argument("--quick", action="store_true", help="one case size smaller: 1 seed, 2x5 ensemble, 20k rows")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--part", default="", help="write real_data-PART.json/.md (parts run side by side)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.members, args.epochs, args.ingest_rows, args.ingest_images = "100", 2, 5, 20_000, 2_000
    console = Console()
    started = time.perf_counter()
    spec = {"n_members": args.members, "n_epochs": args.epochs}
    methods = args.methods.split(",")
    runs: list[dict] = []
    for name in args.cases.split(","):
        case = CASES[name]()
        for noise in args.noise.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                runs += run_case(case, noise, seed, spec, methods, console)
    ingestion = measure_ingestion(args.ingest_rows, args.ingest_images, console)
    report = {"config": {"cases": args.cases, "noise": args.noise, "seeds": args.seeds, "spec": spec,
                         "methods": methods, "quick": args.quick},
              "runs": runs, "summary": summarise(runs), "ingestion": ingestion,
              "machine": describe_machine(), "total_seconds": time.perf_counter() - started}
    print_tables(console, tables(report))
    save(args.out, report, f"real_data-{args.part}" if args.part else "real_data")
    return report


if __name__ == "__main__":
    main()
