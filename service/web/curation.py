"""The dashboard's curation pages (Jinja2 templates, service/web/templates/): the review page (the
galleries), a dataset page (a corrected version: lineage, exports, re-score) and the diff of two
jobs, plus the curation panel of the job page.

Every read goes through `queries` / `reviews` / `diff`, the same functions as their JSON twins;
every decision, version and job is made by the page's script through the JSON API.
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from models.spec import TrainSpec
from service.errors import NotFound
from service.ingest.files import load_arrays, load_lineage, load_pixels
from service.ingest.text import load_texts
from service.read import dataset_export, diff, queries
from service.schemas import DatasetOut
from service.store import jobs
from service.store.db import Store
from service.vocab import SPLITS
from service.web.column_cards import ColumnCard, column_cards
from service.web.pages import render, render_fragment

VIEWS = ("mislabeled", *SPLITS, "all")  # what a review page lists: flagged examples, a split, or everything
VIEW_TITLES = {"mislabeled": "suspected mislabels", "easy": "easy examples", "intermediate": "intermediate examples",
               "hard": "hard examples", "all": "all examples"}
ORDERS = {"mislabel_score": "mislabel score, worst first", "consistency": "consistency, lowest first",
          "accessibility": "accessibility, hardest first", "example_id": "example id"}
DECISIONS = {"none": "undecided", "relabel": "relabel", "keep": "keep", "exclude": "exclude"}
PAGE_SIZE = 60
N_FEATURES_SHOWN = 6
TEXT_SHOWN = 300  # characters of a text on its card before "more"
N_PAIRS_SHOWN = 12
MAX_CLASS_ROWS = 30  # a diff lists every class up to this many, else only those with suspects
MAX_DIGIT_CLASSES = 10  # digit keys pick a class when the dataset has at most this many


@dataclass(frozen=True)
class ReviewQuery:
    """What a review page shows: the URL's query, checked (an unknown class or order is a 422 page)."""

    view: str = "mislabeled"
    given: str | None = None
    suggested: str | None = None
    decision: str | None = None  # none | relabel | keep | exclude
    order: str | None = None  # None: the view's default (worst / hardest first)
    page: int = 1

    @property
    def sort(self) -> str:
        return self.order or ("consistency" if self.view in SPLITS else "mislabel_score")

    def url(self, job_id: str, **changes: object) -> str:
        """This page's URL with `changes` (None drops a parameter); a change of filter goes to page 1."""
        values = {"given": self.given, "suggested": self.suggested, "decision": self.decision,
                  "order": self.order, "page": None, **changes}
        view = values.pop("view", self.view)
        if values["page"] == 1:
            values["page"] = None
        query = urlencode({k: v for k, v in values.items() if v is not None})
        return f"/ui/jobs/{job_id}/gallery/{view}" + (f"?{query}" if query else "")


def render_review(store: Store, data_dir: Path, job_id: str, q: ReviewQuery, owner: str | None,
                  user: str | None = None) -> str:
    """The review page: filters, sort, page numbers, one card per example with decision buttons."""
    if q.view not in VIEWS:
        raise NotFound(f"gallery {q.view!r} not found; one of {', '.join(VIEWS)}")
    job = queries.finished_job(store, job_id, owner)
    ds = queries.get_dataset(store, job.dataset_id, owner)
    split = q.view if q.view in SPLITS else None
    suspected = q.view == "mislabeled"
    filters = queries.RowFilter(q.given, q.suggested, q.decision)
    rows, total = queries.score_page(store, job_id, owner=owner, split=split, suspected_only=suspected, order=q.sort,
                                     limit=PAGE_SIZE, offset=(q.page - 1) * PAGE_SIZE, filters=filters)
    items = rows.to_pylist()
    ids = [r["example_id"] for r in items]
    heatmaps = queries.attribution_heatmaps(store, job_id, ids, owner)
    # images: X itself, or the pixels kept beside pretrained features (their cards show the image, not
    # the first numbers of an embedding)
    with_images = load_pixels(data_dir / "datasets", ds.dataset_id) is not None
    features = {} if with_images else _feature_rows(store, data_dir, ds, job_id, ids, owner)
    texts = _text_rows(data_dir, ds, ids)  # text datasets: the card shows the text instead of features
    counts = queries.decision_counts(store, job_id)
    n_pages = max(1, -(-total // PAGE_SIZE))
    digit_keys = ds.n_classes <= MAX_DIGIT_CLASSES
    twin_query = {"limit": PAGE_SIZE, "offset": (q.page - 1) * PAGE_SIZE, "order": q.sort,
                  **({"split": split} if split else {}), "given_label": q.given, "suggested_label": q.suggested,
                  "decision": q.decision}
    twin = (f"/jobs/{job_id}/{'mislabeled' if suspected else 'examples'}?"
            + urlencode({k: v for k, v in twin_query.items() if v is not None and (k != "order" or not suspected)}))
    return render(
        "review.html", title=f"Review {VIEW_TITLES[q.view]} · job {job_id}",
        json_links=(twin, f"/jobs/{job_id}/reviews"),
        user=user, job=job, ds=ds, q=q, views=VIEWS, orders=ORDERS, decisions=DECISIONS, counts=counts,
        n_examples=(job.summary or {}).get("n_examples", ds.n_examples), total=total, n_pages=n_pages,
        pages=page_numbers(q.page, n_pages), first=(q.page - 1) * PAGE_SIZE + 1, shown=len(items),
        pairs=queries.label_pairs(store, job_id, owner=owner, split=split, suspected_only=suspected,
                                  limit=N_PAIRS_SHOWN),
        cards=[{**_card(job_id, ds, r, features.get(r["example_id"]), heatmaps, with_images), "text": texts.get(r["example_id"])}
               for r in items],
        digit_keys=digit_keys, script={"job_id": job_id, "dataset_id": ds.dataset_id, "classes": ds.class_names,
                                       "digit_keys": digit_keys})


def page_numbers(page: int, n_pages: int, around: int = 2) -> list[int | None]:
    """1, None (a gap), page-2 .. page+2, None, n_pages."""
    keep = {1, n_pages, *range(max(1, page - around), min(n_pages, page + around) + 1)}
    out: list[int | None] = []
    for number in sorted(keep):
        if out and out[-1] is not None and number > out[-1] + 1:
            out.append(None)
        out.append(number)
    return out


def _card(job_id: str, ds: DatasetOut, r: dict, features: ColumnCard | None,
          heatmaps: dict[int, str | None], with_images: bool) -> dict:
    example_id = r["example_id"]
    return {**r, "image": f"/ui/datasets/{ds.dataset_id}/examples/{example_id}.png" if with_images else None,
            "features": features.rows if features else [], "more_features": bool(features and features.more),
            "feature_ranking": features.ranking if features else "",
            "attribution": f"/jobs/{job_id}/examples/{example_id}/attribution" if example_id in heatmaps else None,
            "heatmap": f"/ui/jobs/{job_id}/examples/{example_id}/heatmap.png" if heatmaps.get(example_id) else None}


def _feature_rows(store: Store, data_dir: Path, ds: DatasetOut, job_id: str, ids: list[int],
                  owner: str | None) -> dict[int, ColumnCard]:
    """For tables: each example's most influential original columns with their values as read
    (column_cards); for tables without table.parquet and columns.json (NPZ, stored before), the
    first encoded features as (name, value) pairs, as before."""
    if ds.kind == "image" or not ids:
        return {}
    cards = column_cards(data_dir, ds.dataset_id, ids, queries.attribution_maps(store, job_id, ids, owner),
                         N_FEATURES_SHOWN)
    if cards is not None:
        return cards
    names = queries.dataset_feature_names(store, ds.dataset_id, owner) or []
    X, _ = load_arrays(data_dir / "datasets", ds.dataset_id)
    values = np.asarray(X[np.asarray(ids)])[:, :N_FEATURES_SHOWN]  # reads only these rows of the memory map
    more = len(ds.x_shape) > 1 and ds.x_shape[-1] > N_FEATURES_SHOWN
    return {example_id: ColumnCard([(names[i] if i < len(names) else f"x{i}", f"{float(v):.3g}")
                                    for i, v in enumerate(row)], "", more)
            for example_id, row in zip(ids, values)}


def _text_rows(data_dir: Path, ds: DatasetOut, ids: list[int]) -> dict[int, dict]:
    """For text datasets: each example's text, its first TEXT_SHOWN characters and whether it was cut
    (the template escapes both; the rest opens in a <details>)."""
    texts = load_texts(data_dir / "datasets", ds.dataset_id, ids) if ids else None
    if texts is None:
        return {}
    return {example_id: {"short": text[:TEXT_SHOWN].rstrip(), "full": text, "cut": len(text) > TEXT_SHOWN}
            for example_id, text in zip(ids, texts)}


# --- versions, re-score, diff ------------------------------------------------------------------------


def render_dataset(store: Store, data_dir: Path, dataset_id: str, owner: str | None, user: str | None = None) -> str:
    """One dataset: its lineage (a version: parent, decisions applied, the job they came from), its
    exports, its jobs and versions, and a button that scores it (with the spec of that job)."""
    ds = queries.get_dataset(store, dataset_id, owner)
    lineage = load_lineage(data_dir / "datasets", dataset_id) or {}
    from_job = _visible_job(store, lineage.get("from_job"), owner)
    spec = from_job.spec if from_job is not None else TrainSpec()
    script = {"dataset_id": dataset_id, "spec": spec.model_dump(mode="json"),
              "adaboost": from_job.adaboost.model_dump(mode="json") if from_job is not None else None}
    all_datasets = queries.list_datasets(store, owner)
    return render(
        "dataset.html", title=f"Dataset {ds.name}", json_links=(f"/datasets/{dataset_id}",), user=user, ds=ds,
        parent=next((d for d in all_datasets if d.dataset_id == ds.parent_id), None), from_job=from_job,
        exports=[(f, f"/datasets/{dataset_id}/export?format={f}")
                 for f in dataset_export.formats_for(ds, data_dir / "datasets")],
        jobs=[j for j in jobs.list_jobs(store, owner) if j.dataset_id == dataset_id],
        versions=[d for d in all_datasets if d.parent_id == dataset_id], spec=spec, script=script)


def render_diff(store: Store, job_a: str, job_b: str, owner: str | None, user: str | None = None) -> str:
    """GET /jobs/{a}/diff/{b} as a page: errors before/after, split transitions, suspects, per class."""
    d = diff.diff_jobs(store, job_a, job_b, owner)
    ds_a, ds_b = queries.get_dataset(store, d.dataset_a, owner), queries.get_dataset(store, d.dataset_b, owner)
    shown = d.per_class if len(d.per_class) <= MAX_CLASS_ROWS else [c for c in d.per_class
                                                                     if c.suspects_a or c.suspects_b]
    return render("diff.html", title=f"Job {job_b} against job {job_a}", json_links=(f"/jobs/{job_a}/diff/{job_b}",),
                  user=user, d=d, ds_a=ds_a, ds_b=ds_b, n_a=ds_a.n_examples, n_b=ds_b.n_examples, splits=SPLITS,
                  per_class=shown, hidden=len(d.per_class) - len(shown))


def render_job_panel(store: Store, data_dir: Path, job: jobs.Job, owner: str | None) -> str:
    """The curation part of a succeeded job's page: decisions so far, the review and version links,
    the versions made from this job, and (a job on a version) the diff against the job it came from."""
    ds = queries.get_dataset(store, job.dataset_id, owner)
    counts = queries.decision_counts(store, job.job_id)
    versions = [d for d in queries.list_datasets(store, owner) if d.parent_id == ds.dataset_id
                and (load_lineage(data_dir / "datasets", d.dataset_id) or {}).get("from_job") == job.job_id]
    lineage = load_lineage(data_dir / "datasets", ds.dataset_id) or {}
    before = _visible_job(store, lineage.get("from_job"), owner)
    return render_fragment("job_panel.html", job=job, ds=ds, counts=counts, versions=versions, before=before,
                           script={"job_id": job.job_id, "dataset_id": ds.dataset_id})


def _visible_job(store: Store, job_id: str | None, owner: str | None) -> jobs.Job | None:
    """The job if this owner can see it (a version made by one key, scored by another, shows no link)."""
    if not job_id:
        return None
    try:
        return jobs.get_job(store, job_id, owner)
    except NotFound:
        return None
