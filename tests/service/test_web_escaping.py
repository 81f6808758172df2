"""Names that look like HTML are text on every page that shows them: a dataset named with <script>
and a double quote, and a class named to break out of an attribute, on the home page, a job's page
(its curation panel names the version the job scored), the report (given and suggested labels of
the suspects), the review page, a dataset's page and the diff. Real parts: an Engine trains two tiny
jobs into a DuckDB file, then the app serves the pages (TestClient)."""

from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.datasets import load_digits

from models.spec import AdaBoostSpec, TrainSpec
from service.app import create_app
from service.engine.engine import Engine
from service.settings import Settings
from service.store.versions import create_version

pytestmark = pytest.mark.slow
EVIL_NAME = '<script>alert("name")</script> & "quoted"'
EVIL_CLASS = '"><script>alert(1)</script>'
CLASSES = ["zero", EVIL_CLASS, "two", "three"]
TINY = {"n_members": 2, "n_epochs": 3, "hidden_units": 16, "batch_size": 64}


@dataclass
class Served:
    client: TestClient
    dataset_id: str
    version_id: str
    job_id: str  # on the dataset
    version_job_id: str  # on its version


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Digits 0-3 with the class 1 named EVIL_CLASS and 15 zeros labelled as it (so suspects name it)."""
    tmp = tmp_path_factory.mktemp("escaping")
    X, y = load_digits(return_X_y=True)
    X, y = X[y < 4][:160].astype(np.float32), y[y < 4][:160].copy()
    y[np.flatnonzero(y == 0)[:15]] = 1
    np.savez(tmp / "d.npz", X=X, y=y, class_names=np.array(CLASSES))
    settings = Settings(data_dir=tmp / "data", explain_max_examples=0)
    engine = Engine(settings)
    try:
        ds = engine.add_dataset(tmp / "d.npz", name=EVIL_NAME)
        job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**TINY), AdaBoostSpec(n_rounds=3)))
        assert job.status == "succeeded", job.error
        version = create_version(engine.store, settings, ds.dataset_id, job.job_id)
        job_b = engine.run(engine.submit(version.dataset_id, TrainSpec(**TINY), AdaBoostSpec(enabled=False)))
        assert job_b.status == "succeeded", job_b.error
    finally:
        engine.close()
    with TestClient(create_app(settings)) as client:
        yield Served(client, ds.dataset_id, version.dataset_id, job.job_id, job_b.job_id)


class _Text(HTMLParser):
    """What a browser shows as text (attribute values count: a value is text too), and every script's code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self.text += [v for _, v in attrs if v]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _page(served: Served, url: str) -> tuple[str, _Text]:
    r = served.client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (url, r.text[:300])
    parsed = _Text()
    parsed.feed(r.text)
    return r.text, parsed


def _shows_as_text(served: Served, url: str, *names: str) -> None:
    """Each name is on the page as text, never as markup, and no script of the page runs it."""
    html, parsed = _page(served, url)
    for name in names:
        assert name not in html, (url, name)  # only ever escaped
        assert any(name in t for t in parsed.text), (url, name)  # and shown
    assert not any(s.strip().startswith("alert(") for s in parsed.scripts), url  # no injected <script> element


def test_the_home_page_escapes_dataset_and_class_names(served: Served) -> None:
    _shows_as_text(served, "/", EVIL_NAME, EVIL_CLASS)


def test_a_job_page_escapes_the_name_of_the_dataset_it_scored(served: Served) -> None:
    _shows_as_text(served, f"/ui/jobs/{served.version_job_id}", EVIL_NAME)  # "This job scored <name> v1"
    _page(served, f"/ui/jobs/{served.job_id}")  # the panel of a job on an upload: no name, still a page


def test_the_report_escapes_dataset_and_class_names(served: Served) -> None:
    suspects = served.client.get(f"/jobs/{served.job_id}/mislabeled", params={"limit": 50}).json()["items"]
    assert any(EVIL_CLASS in (s["given_label"], s["suggested_label"]) for s in suspects)  # the planted zeros
    _shows_as_text(served, f"/ui/jobs/{served.job_id}/report.html", EVIL_NAME, EVIL_CLASS)


def test_the_curation_pages_escape_them_too(served: Served) -> None:
    _shows_as_text(served, f"/ui/jobs/{served.job_id}/gallery/all", EVIL_NAME, EVIL_CLASS)
    _shows_as_text(served, f"/ui/datasets/{served.dataset_id}", EVIL_NAME)
    _shows_as_text(served, f"/ui/jobs/{served.job_id}/diff/{served.version_job_id}", EVIL_NAME)
