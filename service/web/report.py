"""The dashboard's own pages (home, job, sign-in, error), the self-contained HTML report, and the
PNGs they show (thumbnails, plots, heatmaps).

Each page is a Jinja2 template of service/web/templates/ (service.web.pages: autoescape, strict
undefined), so every user-provided string (dataset and class names, sources, errors) is escaped by
the template engine, not by hand; the pages' scripts are templates/home.js and job.js. Each page
reads through the same functions as its JSON twin (`queries.list_datasets` for GET /datasets,
`jobs.list_jobs` / `jobs.get_job` + `job_out` for GET /jobs and /jobs/{id}, `queries.score_page` for
the suspects), so a page and its JSON cannot disagree. The curation pages (review, dataset, diff)
and the job page's curation panel are service.web.curation.
"""

import base64
import io
import json
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from models.spec import TrainSpec
from service.api.auth import SESSION_TTL_S
from service.errors import NotFound
from service.ingest.files import load_pixels
from service.read import queries
from service.store import jobs
from service.store.db import Store
from service.vocab import EXPORT_KINDS, SPLITS, low_noise_pass_text
from service.web import curation as web_curation
from service.web.pages import render
from service.web.plots import plot_adaboost_curves, plot_dynamics

THUMB_PX = 96  # tiny images are upscaled (nearest neighbour, whole multiples) to about this
THUMB_MAX_PX = 256  # longer side of a served thumbnail: larger images are downscaled to it
_PLOT_LOCK = threading.Lock()  # two requests drawing the same PNG would share its .tmp file


def render_error(status_code: int, message: str) -> str:
    return render("error.html", title=f"Error {status_code}", message=message)


def render_login(next_url: str = "/", message: str | None = None) -> str:
    """The sign-in form (API keys on): POST /ui/login with the key, then back to `next_url`."""
    return render("login.html", title="Sign in", next_url=next_url, message=message,
                  ttl_hours=SESSION_TTL_S // 3600)


# --- pages -----------------------------------------------------------------------------------


def render_home(store: Store, owner: str | None, user: str | None = None) -> str:
    """The home page of `owner`'s datasets and jobs; `user` (the key's name) in the header."""
    return render("home.html", title="Dashboard", json_links=("/datasets", "/jobs"), user=user,
                  datasets=queries.list_datasets(store, owner), jobs=jobs.list_jobs(store, owner),
                  defaults=TrainSpec())


def render_job(store: Store, data_dir: Path, job_id: str, owner: str | None, user: str | None = None) -> str:
    """A job: its spec and status; while it runs, live progress and cancel; once it succeeded, the
    splits, the estimated label errors, the curation panel, the exports, the plots and the phases."""
    found = jobs.get_job(store, job_id, owner)
    job = jobs.job_out(found)
    context: dict[str, object] = {"title": f"Job {job_id}", "user": user, "job": job,
                                  "live": job.status in jobs.UNFINISHED, "json_links": [f"/jobs/{job_id}"]}
    if job.status != "succeeded":
        return render("job.html", **context)
    summary = job.summary or {}
    n = summary.get("n_examples", 0)
    twins = [f"/jobs/{job_id}", f"/jobs/{job_id}/dynamics", f"/jobs/{job_id}/mislabeled"]
    return render("job.html", **{
        **context, "json_links": twins + ([f"/jobs/{job_id}/adaboost"] if job.adaboost.enabled else []),
        "n_examples": n, "splits": split_rows(summary, n), "error_rate": (job.estimated_n_errors or 0) / max(n, 1),
        "panel": web_curation.render_job_panel(store, data_dir, found, owner), "exports": EXPORT_KINDS,
        "phases": phase_rows(summary),
        "low_noise": low_noise_pass_text(summary["low_noise_pass"]) if summary.get("low_noise_pass") else None})


def split_rows(summary: dict, n_examples: int) -> list[tuple[str, int, float]]:
    """(split, examples, share) for every split, easiest first, from a job's summary."""
    counts = summary.get("split_counts", {})
    return [(s, counts.get(s, 0), counts.get(s, 0) / max(n_examples, 1)) for s in SPLITS]


def phase_rows(summary: dict) -> list[tuple[int, float | None, str]]:
    """(epoch, agreement index or None, phase) per epoch, from the job's summary (finalize computes them)."""
    found = summary.get("phases")
    if not found:
        return []
    return [(e, a, p) for e, (a, p) in enumerate(zip(found["agreement_index"], found["phase"]))]


# --- PNGs ------------------------------------------------------------------------------------


def render_thumbnail(store: Store, data_dir: Path, dataset_id: str, example_id: int, owner: str | None) -> bytes:
    """One image example as a PNG: a tiny one nearest-neighbour upscaled to about THUMB_PX pixels, a
    large one downscaled to THUMB_MAX_PX on its longer side (a thumbnail, never the stored image)."""
    ds = queries.get_dataset(store, dataset_id, owner)
    images = load_pixels(data_dir / "datasets", dataset_id)  # X, or pixels.npy of pretrained features
    if images is None:
        raise NotFound(f"dataset {dataset_id} holds a table, not images")
    if not 0 <= example_id < ds.n_examples:
        raise NotFound(f"example {example_id} not found in dataset {dataset_id}")
    pixels = np.asarray(images[example_id])  # (C, H, W) uint8
    if pixels.dtype != np.uint8:
        lo, hi = float(pixels.min()), float(pixels.max())
        pixels = ((pixels - lo) / ((hi - lo) or 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else np.moveaxis(pixels[:3], 0, -1))
    if max(image.size) > THUMB_MAX_PX:
        image.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX), Image.Resampling.LANCZOS)  # keeps the aspect ratio
    else:
        scale = max(1, THUMB_PX // max(image.size))
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def plot_path(store: Store, job_id: str, which: str, owner: str | None) -> Path:
    """The dynamics or AdaBoost PNG of a succeeded job, drawn once into <data_dir>/exports/plots/."""
    queries.finished_job(store, job_id, owner)
    path = store.path.parent / "exports" / "plots" / f"{job_id}-{which}.png"
    with _PLOT_LOCK:
        return path if path.exists() else _draw(store, job_id, which, owner, path)


def _draw(store: Store, job_id: str, which: str, owner: str | None, path: Path) -> Path:
    if which == "dynamics":
        return plot_dynamics(queries.dynamics_histograms(store, job_id, 20, owner), path,
                             f"job {job_id}: share of examples per consistency / consensus bin")
    if which == "adaboost":
        ada = queries.adaboost_comparison(store, job_id, owner)
        counts = (jobs.get_job(store, job_id, owner).summary or {}).get("split_counts")
        return plot_adaboost_curves(ada.curves, ada.correlation, path,
                                    f"job {job_id}: AdaBoost accuracy by ensemble split", group_sizes=counts)
    raise NotFound(f"plot {which!r} not found")


def heatmap_file(store: Store, data_dir: Path, job_id: str, example_id: int, owner: str | None) -> Path:
    path = queries.attribution_heatmaps(store, job_id, [example_id], owner).get(example_id)
    full = (data_dir / path).resolve() if path else None
    if full is None or not full.is_relative_to(data_dir.resolve()) or not full.is_file():
        raise NotFound(f"no attribution heatmap for example {example_id} of job {job_id}")
    return full


# --- the report ------------------------------------------------------------------------------


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_report(store: Store, job_id: str, owner: str | None = None, top: int = 50) -> str:
    """One self-contained HTML file: summary, splits, top suspects, dynamics and AdaBoost plots."""
    job = jobs.job_out(queries.finished_job(store, job_id, owner))
    ds = queries.get_dataset(store, job.dataset_id, owner)
    summary = job.summary or {}
    n = summary.get("n_examples", ds.n_examples)
    suspects, _ = queries.score_page(store, job_id, owner=owner, suspected_only=True, order="mislabel_score",
                                     limit=top)
    adaboost = None
    if job.adaboost.enabled:
        a = summary.get("adaboost") or {}
        adaboost = {"pearson_r": _num(a.get("pearson_r")), "spearman_r": _num(a.get("spearman_r")),
                    "family_counts": json.dumps(a.get("family_counts") or {})}
    return render("report.html", title=f"Report · job {job_id}", job=job, ds=ds, n_examples=n,
                  error_rate=(job.estimated_n_errors or 0) / max(n, 1), splits=split_rows(summary, n),
                  suspects=suspects.to_pylist(), dynamics_png=_data_uri(plot_path(store, job_id, "dynamics", owner)),
                  adaboost=adaboost,
                  adaboost_png=_data_uri(plot_path(store, job_id, "adaboost", owner)) if adaboost else None,
                  phases=phase_rows(summary))


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "n/a"
