"""The dashboard's pages and the self-contained HTML report, rendered on the server.

Plain HTML with one inline style sheet (service.web.pages.CSS); plots are PNGs from `service.web.plots`;
every read goes through `queries`. Every user-provided string passes `esc` (html.escape). The only
script is a few lines on the job page (live progress over SSE, cancel) and the start-job/upload
forms. The curation pages (the review page that the galleries became, a dataset's page, the diff)
are Jinja2 templates with autoescape: service.web.curation.
"""

import base64
import io
import json
import threading
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from models.spec import TrainSpec
from service.api.auth import SESSION_TTL_S
from service.errors import NotFound
from service.ingest.files import load_arrays
from service.read import queries
from service.store import jobs
from service.store.db import Store
from service.web import curation as web_curation
from service.web.pages import CSS
from service.web.plots import plot_adaboost_curves, plot_dynamics

SPLITS = ("easy", "intermediate", "hard")
EXPORTS = ("scores", "easy", "intermediate", "hard", "mislabeled")
THUMB_PX = 96  # tiny images are upscaled (nearest neighbour, whole multiples) to about this
THUMB_MAX_PX = 256  # longer side of a served thumbnail: larger images are downscaled to it
_PLOT_LOCK = threading.Lock()  # two requests drawing the same PNG would share its .tmp file



def esc(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, body: str, json_links: Sequence[str] = (), user: str | None = None) -> str:
    """A dashboard page; with `user` (API keys on: the key's name, not its owner id) the header says who is
    signed in, with a sign-out button."""
    links = " ".join(f'<a href="{esc(u)}">{esc(u)}</a>' for u in json_links)
    twin = f'<p class="json">JSON: {links}</p>' if links else ""
    who = (f'<form class="who" method="post" action="/ui/logout">{esc(user)} <button type="submit">sign out'
           f'</button></form>' if user is not None else "")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · Curate</title>'
            f'<style>{CSS}</style></head><body><header><a href="/">Curate</a><h1>{esc(title)}</h1>{who}</header>'
            f'{twin}{body}</body></html>')


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells are HTML already (escape values with `esc`)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def link(href: str, text: object) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def render_error(status_code: int, message: str) -> str:
    return page(f"Error {status_code}", f'<p class="err">{esc(message)}</p><p>{link("/", "back to the dashboard")}</p>')


def render_login(next_url: str = "/", message: str | None = None) -> str:
    """The sign-in form (API keys on): POST /ui/login with the key, then back to `next_url`."""
    error = f'<p class="err">{esc(message)}</p>' if message else ""
    form = ('<form method="post" action="/ui/login"><label>API key <input name="key" type="password" size="48" '
            f'autocomplete="current-password" required autofocus></label><input type="hidden" name="next" '
            f'value="{esc(next_url)}"> <button type="submit">sign in</button></form>')
    note = ('<p class="json">This server needs an API key (<code>curate keys create NAME</code> or '
            f"<code>CURATE_API_KEYS</code>). You stay signed in for {SESSION_TTL_S // 3600} hours, "
            "in this browser only.</p>")
    return page("Sign in", error + form + note)


# --- pages -----------------------------------------------------------------------------------


def render_home(store: Store, owner: str | None, user: str | None = None) -> str:
    """The home page of `owner`'s datasets and jobs; `user` (the key's name) in the header."""
    datasets = queries.list_datasets(store, owner)
    defaults = TrainSpec()
    start = ('<form class="start" data-dataset="{id}">members <input name="n_members" type="number" min="1" '
             f'value="{defaults.n_members}" size="3"> epochs <input name="n_epochs" type="number" min="1" '
             f'value="{defaults.n_epochs}" size="3"> <button type="submit">start job</button></form>')
    ds_rows = [(link(f"/ui/datasets/{d.dataset_id}", d.name), f"<code>{esc(d.dataset_id)}</code>", esc(d.kind),
                str(d.n_examples),
                esc(", ".join(d.class_names[:12]) + (" …" if d.n_classes > 12 else "")) + f" ({d.n_classes})",
                "upload" if not d.version else f"v{d.version}", start.replace("{id}", esc(d.dataset_id)))
               for d in datasets]
    job_rows = [(link(f"/ui/jobs/{j.job_id}", j.job_id), f"<code>{esc(j.dataset_id)}</code>", esc(j.status),
                 f'<progress max="1" value="{j.epochs_done / max(j.epochs_total, 1):.3f}"></progress> '
                 f"{j.epochs_done}/{j.epochs_total} epochs",
                 esc(j.estimated_n_errors if j.estimated_n_errors is not None else "-"), esc(str(j.created_at)[:19]))
                for j in jobs.list_jobs(store, owner)]
    upload = ('<form id="upload" action="/datasets" method="post" enctype="multipart/form-data">'
              '<input type="file" name="file" required> name <input name="name" size="20"> '
              'label column <input name="label_column" size="10" placeholder="label"> '
              'resize <input name="resize" size="7" placeholder="HxW" pattern="[0-9]{1,4}x[0-9]{1,4}"> '
              '<button type="submit">upload</button> <span id="upload-status"></span></form>'
              '<p class="json">.csv/.parquet (numeric features and a label column, "label" unless named), '
              '.npz (X, y) or a .zip of class folders (resize: images of mixed sizes to H x W pixels)</p>')
    body = (f"<h2>Datasets</h2>{upload}"
            + table(("name", "dataset_id", "kind", "n", "classes", "version", ""), ds_rows)
            + "<h2>Jobs</h2>" + table(("job_id", "dataset_id", "status", "progress", "est. errors", "created"),
                                      job_rows) + f"<script>{HOME_JS}</script>")
    return page("Dashboard", body, ("/datasets", "/jobs"), user=user)


HOME_JS = """
document.getElementById('upload').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target, status = document.getElementById('upload-status');
  const data = new FormData(), query = new URLSearchParams();
  data.append('file', form.elements.file.files[0]);
  for (const key of ['name', 'label_column', 'resize']) {
    const value = form.elements[key].value.trim();
    if (value) query.set(key, value);
  }
  status.textContent = 'uploading…';
  const r = await fetch('/datasets' + (query.toString() ? '?' + query : ''), {method: 'POST', body: data});
  const j = await r.json();
  if (r.ok) { location.reload(); } else { status.textContent = 'error: ' + j.error.message; }
});
for (const form of document.querySelectorAll('form.start')) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const spec = {n_members: +form.elements.n_members.value, n_epochs: +form.elements.n_epochs.value};
    const r = await fetch('/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                    body: JSON.stringify({dataset_id: form.dataset.dataset, spec: spec})});
    const j = await r.json();
    if (r.ok) { location.href = '/ui/jobs/' + j.job_id; } else { alert(j.error.message); }
  });
}
"""

JOB_JS = """
const box = document.getElementById('live'), id = box.dataset.job;
const text = document.getElementById('progress-text'), bar = document.getElementById('progress-bar');
const es = new EventSource('/jobs/' + id + '/events');
es.addEventListener('progress', (ev) => {
  const j = JSON.parse(ev.data);
  bar.value = j.progress;
  text.textContent = j.status + ': ' + j.epochs_done + '/' + j.epochs_total + ' epochs' +
    (j.eta_seconds != null ? ', about ' + Math.round(j.eta_seconds) + ' s left' : '') + (j.error ? ' ' + j.error : '');
});
es.addEventListener('end', () => { es.close(); location.reload(); });
document.getElementById('cancel').addEventListener('click', async () => {
  const r = await fetch('/jobs/' + id, {method: 'DELETE'});
  text.textContent = (await r.json()).status;
});
"""


def render_job(store: Store, data_dir: Path, job_id: str, owner: str | None, user: str | None = None) -> str:
    found = jobs.get_job(store, job_id, owner)
    job = jobs.job_out(found)
    twins = [f"/jobs/{job_id}"]
    head = table(("dataset", "status", "spec", "created", "finished"), [(
        f"<code>{esc(job.dataset_id)}</code>", esc(job.status),
        esc(f"{job.spec.n_members} members x {job.spec.n_epochs} epochs ({job.spec.dropout})"),
        esc(str(job.created_at)[:19]), esc(str(job.finished_at or "-")[:19]))])
    if job.status != "succeeded":
        live = ""
        if job.status in jobs.UNFINISHED:
            live = (f'<div id="live" data-job="{esc(job_id)}"><progress id="progress-bar" max="1" '
                    f'value="{job.progress:.3f}"></progress> <span id="progress-text">{esc(job.status)}: '
                    f'{job.epochs_done}/{job.epochs_total} epochs</span> <button id="cancel">cancel</button>'
                    f"</div><script>{JOB_JS}</script>")
        error = f'<pre class="err">{esc(job.error)}</pre>' if job.error else ""
        return page(f"Job {job_id}", head + live + error, twins, user=user)
    summary = job.summary or {}
    n = summary.get("n_examples", 0)
    counts = summary.get("split_counts", {})
    splits = table(("split", "examples", "share", ""), [
        (esc(s), str(counts.get(s, 0)), f"{counts.get(s, 0) / max(n, 1):.1%}",
         link(f"/ui/jobs/{job_id}/gallery/{s}", "review")) for s in SPLITS])
    rate = (job.estimated_n_errors or 0) / max(n, 1)
    errors = (f"<p>Estimated label errors: <b>{esc(job.estimated_n_errors)}</b> of {n} ({rate:.1%}), flagged as "
              f"suspected mislabels: {link(f'/ui/jobs/{job_id}/gallery/mislabeled', 'review them')}</p>")
    exports = "".join(f'<a class="btn" href="{esc(f"/jobs/{job_id}/export?what={w}&format=csv")}">{esc(w)}.csv</a>'
                      for w in EXPORTS)
    plots = f'<h2>Learning dynamics</h2><img class="plot" alt="dynamics" src="/ui/jobs/{esc(job_id)}/dynamics.png">'
    twins += [f"/jobs/{job_id}/dynamics", f"/jobs/{job_id}/mislabeled"]
    if job.adaboost.enabled:
        plots += (f'<h2>AdaBoost</h2><img class="plot" alt="adaboost" src="/ui/jobs/{esc(job_id)}/adaboost.png">')
        twins.append(f"/jobs/{job_id}/adaboost")
    panel = web_curation.render_job_panel(store, data_dir, found, owner)
    body = (head + "<h2>Splits</h2>" + splits + errors + panel + "<h2>Export</h2>" + exports + plots
            + render_phases(summary))
    return page(f"Job {job_id}", body, twins, user=user)


def render_phases(summary: dict) -> str:
    """Agreement index and training phase per epoch, from the job's summary (finalize computes them)."""
    found = summary.get("phases")
    if not found:
        return ""
    rows = [(str(e), "n/a" if a is None else f"{a:.3f}", esc(p))
            for e, (a, p) in enumerate(zip(found["agreement_index"], found["phase"]))]
    return "<h2>Agreement index and phase per epoch</h2>" + table(("epoch", "agreement index", "phase"), rows)


# --- PNGs ------------------------------------------------------------------------------------


def render_thumbnail(store: Store, data_dir: Path, dataset_id: str, example_id: int, owner: str | None) -> bytes:
    """One image example as a PNG: a tiny one nearest-neighbour upscaled to about THUMB_PX pixels, a
    large one downscaled to THUMB_MAX_PX on its longer side (a thumbnail, never the stored image)."""
    ds = queries.get_dataset(store, dataset_id, owner)
    if ds.kind != "image":
        raise NotFound(f"dataset {dataset_id} holds a table, not images")
    if not 0 <= example_id < ds.n_examples:
        raise NotFound(f"example {example_id} not found in dataset {dataset_id}")
    X, _ = load_arrays(data_dir / "datasets", dataset_id)
    pixels = np.asarray(X[example_id])  # (C, H, W) uint8
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
    n, counts = summary.get("n_examples", ds.n_examples), summary.get("split_counts", {})
    facts = table(("dataset", "examples", "classes", "spec", "estimated label errors"), [(
        esc(ds.name), str(n), str(ds.n_classes),
        esc(f"{job.spec.n_members} members x {job.spec.n_epochs} epochs ({job.spec.dropout}), "
            f"random_state {job.spec.random_state}"),
        f"{esc(job.estimated_n_errors)} ({(job.estimated_n_errors or 0) / max(n, 1):.1%})")])
    splits = table(("split", "examples", "share"),
                   [(s, str(counts.get(s, 0)), f"{counts.get(s, 0) / max(n, 1):.1%}") for s in SPLITS])
    rows, _ = queries.score_page(store, job_id, owner=owner, suspected_only=True, order="mislabel_score", limit=top)
    suspects = table(("example_id", "source", "given_label", "suggested_label", "mislabel_score", "consistency"),
                     [(str(r["example_id"]), esc(r["source"]), esc(r["given_label"]), esc(r["suggested_label"]),
                       f"{r['mislabel_score']:.3f}", f"{r['consistency']:.2f}") for r in rows.to_pylist()])
    dynamics = _data_uri(plot_path(store, job_id, "dynamics", owner))
    plots = f'<h2>Learning dynamics</h2><img class="plot" alt="dynamics" src="{dynamics}">'
    if job.adaboost.enabled:
        a = summary.get("adaboost") or {}
        plots += (f'<h2>AdaBoost</h2><p>Pearson r {esc(_num(a.get("pearson_r")))}, Spearman ρ '
                  f'{esc(_num(a.get("spearman_r")))}; family agreement: '
                  f'{esc(json.dumps(a.get("family_counts") or {}))}</p><img class="plot" alt="adaboost" '
                  f'src="{_data_uri(plot_path(store, job_id, "adaboost", owner))}">')
    body = (facts + "<h2>Splits</h2>" + splits + f"<h2>Top {rows.num_rows} suspected mislabels</h2>" + suspects + plots
            + render_phases(summary))
    return page(f"Report · job {job_id}", body).replace('<a href="/">Curate</a>', "<b>Curate</b>")


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "n/a"

