"""Review decisions, corrected versions, exports and diffs through the engine: a real DuckDB file,
a real (tiny) training, no server. The HTTP and CLI doors are tested in test_curation_api.py and
test_cli_curation.py."""

import hashlib
import importlib.util
import subprocess
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from models.spec import AdaBoostSpec, TrainSpec
from service.engine.engine import Engine
from service.errors import JobNotFinished, NotFound
from service.read import dataset_export, diff, queries
from service.result_cache import ResultCache
from service.schemas import AcceptSuggested, DecisionIn
from service.settings import Settings
from service.store import catalog, reviews, versions
from service.store.catalog import HasVersions
from service.store.db import SCHEMA_VERSION, Store
from tests.service.conftest import SMALL_SPEC, digits_npz

TINY = TrainSpec(**SMALL_SPEC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    """An engine with digits (300, 10 % flipped) scored once: (engine, dataset_id, job_id, flipped)."""
    tmp = tmp_path_factory.mktemp("reviews")
    path, flipped = digits_npz(tmp / "d.npz", noise=0.1)
    engine = Engine(Settings(data_dir=tmp / "data", explain_max_examples=0))
    ds = engine.add_dataset(path)
    job_id = engine.submit(ds.dataset_id, TINY, AdaBoostSpec(enabled=False))
    assert engine.run(job_id).status == "succeeded"
    yield engine, ds.dataset_id, job_id, flipped
    engine.close()


def _table(engine: Engine, table: str) -> list[tuple]:
    with engine.store.reader() as cur:
        return cur.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()


def _given(engine: Engine, job_id: str) -> list[str]:
    return queries.score_rows(engine.store, job_id).column("given_label").to_pylist()


def test_latest_decision_wins_and_clear_undoes(scored) -> None:
    engine, _, job_id, _ = scored
    given = _given(engine, job_id)
    other = next(c for c in "0123456789" if c != given[5])
    reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=5, action="keep")])
    result = reviews.record_decisions(engine.store, job_id, [
        DecisionIn(example_id=5, action="relabel", label=other, note="looks like it"),
        DecisionIn(example_id=6, action="exclude")], decided_by="alice")
    assert result.n_applied == 2
    page = reviews.review_page(engine.store, job_id)
    by_id = {r.example_id: r for r in page.items}
    assert (by_id[5].action, by_id[5].label, by_id[5].note, by_id[5].decided_by) == ("relabel", other, "looks like it",
                                                                                       "alice")
    assert by_id[6].action == "exclude" and by_id[6].label is None
    rows = queries.score_rows(engine.store, job_id).to_pylist()
    assert (rows[5]["decision"], rows[5]["decided_label"]) == ("relabel", other)
    assert (rows[6]["decision"], rows[6]["decided_label"]) == ("exclude", None)
    before = reviews.review_page(engine.store, job_id).counts
    after = reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=5, action="clear")]).counts
    assert after["relabel"] == before["relabel"] - 1
    assert 5 not in {r.example_id for r in reviews.review_page(engine.store, job_id, limit=1000).items}
    assert queries.score_rows(engine.store, job_id).to_pylist()[5]["decision"] is None
    with engine.store.reader() as cur:  # append-only: every decision is still in the history
        assert cur.execute("SELECT count(*) FROM reviews WHERE job_id = ? AND example_id = 5",
                           [job_id]).fetchone()[0] == 3


@pytest.mark.parametrize("decision,fragment", [
    ({"example_id": 300, "action": "keep"}, "example 300 not found in job"),
    ({"example_id": 3, "action": "relabel"}, "example 3: relabel needs a label"),
    ({"example_id": 3, "action": "keep", "label": "1"}, "example 3: keep takes no label (got '1')"),
    ({"example_id": 3, "action": "relabel", "label": "cat"}, "example 3: label 'cat' is not a class of dataset"),
    ({"example_id": 3, "action": "relabel", "label": "GIVEN"}, "is its given label already"),
])
def test_a_bad_decision_is_refused_naming_it_and_nothing_of_the_request_is_stored(scored, decision, fragment) -> None:
    engine, _, job_id, _ = scored
    if decision.get("label") == "GIVEN":
        decision = {**decision, "label": _given(engine, job_id)[3]}
    good = DecisionIn(example_id=1, action="keep")
    history = _table(engine, "reviews")
    with pytest.raises(reviews.InvalidReview) as caught:
        reviews.record_decisions(engine.store, job_id, [good, DecisionIn(**decision)])
    assert fragment in caught.value.message and caught.value.status_code == 422
    if "not a class" in fragment:
        assert "classes: 0, 1, 2" in caught.value.message
    assert _table(engine, "reviews") == history  # the good decision before it was not stored either


def test_decisions_need_a_succeeded_job_of_this_owner(scored) -> None:
    engine, dataset_id, job_id, _ = scored
    queued = engine.submit(dataset_id, TINY, AdaBoostSpec(enabled=False))
    with pytest.raises(JobNotFinished):
        reviews.record_decisions(engine.store, queued, [DecisionIn(example_id=0, action="keep")])
    with pytest.raises(NotFound):
        reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=0, action="keep")], owner="bob")
    with pytest.raises(NotFound):
        reviews.review_page(engine.store, job_id, owner="bob")
    with engine.store.transaction() as cur:
        cur.execute("DELETE FROM jobs WHERE job_id = ?", [queued])


def test_accept_suggested_top_k_and_min_score_skip_decided_examples(scored) -> None:
    engine, _, job_id, _ = scored
    flagged = queries.score_rows(engine.store, job_id, suspected_only=True, order="mislabel_score").to_pylist()
    assert len(flagged) >= 6
    decided = {r.example_id for r in reviews.review_page(engine.store, job_id, limit=1000).items}
    reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=flagged[0]["example_id"], action="keep")])
    decided.add(flagged[0]["example_id"])
    result = reviews.accept_suggested(engine.store, job_id, AcceptSuggested(top=5))
    top5 = [r for r in flagged[:5] if r["example_id"] not in decided]
    assert result.n_applied == len(top5)
    current = {r.example_id: r for r in reviews.review_page(engine.store, job_id, limit=1000).items}
    assert current[flagged[0]["example_id"]].action == "keep"  # a decision made by hand stays
    for r in top5:
        assert (current[r["example_id"]].action, current[r["example_id"]].label) == ("relabel", r["suggested_label"])
    threshold = flagged[len(flagged) // 2]["mislabel_score"]
    expected = {r["example_id"] for r in flagged if r["mislabel_score"] >= threshold} - set(current)
    again = reviews.accept_suggested(engine.store, job_id, AcceptSuggested(min_score=threshold))
    assert again.n_applied == len(expected)


def test_a_decision_shows_at_once_through_the_result_cache(scored) -> None:
    engine, _, job_id, _ = scored
    cache = engine.cache
    queries.example_page_json(engine.store, cache, job_id, limit=5)  # builds and keeps the job's rows
    assert cache.get((job_id, "scores")) is not None
    engine.record_decisions(job_id, [DecisionIn(example_id=2, action="exclude")])  # the engine drops them
    assert cache.get((job_id, "scores")) is None
    page = queries.example_page_json(engine.store, cache, job_id, limit=5).decode()
    assert '"example_id":2,' in page and '"decision":"exclude"' in page


def test_review_filters_by_given_and_suggested_label_and_decision(scored) -> None:
    engine, _, job_id, _ = scored
    _clear_all(engine, job_id)
    every = queries.score_rows(engine.store, job_id).to_pylist()
    reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=i, action="exclude") for i in (3, 4, 5)])
    given3 = [r["example_id"] for r in every if r["given_label"] == "3"]
    rows, total = queries.score_page(engine.store, job_id, filters=queries.RowFilter(given_label="3"), limit=5)
    assert total == len(given3) and rows.column("example_id").to_pylist() == given3[:5]
    pair = (every[0]["given_label"], every[0]["suggested_label"])
    expected = [r["example_id"] for r in every if (r["given_label"], r["suggested_label"]) == pair]
    rows, total = queries.score_page(engine.store, job_id, filters=queries.RowFilter(*pair))
    assert rows.column("example_id").to_pylist() == expected and total == len(expected)
    totals = {d: queries.score_page(engine.store, job_id, filters=queries.RowFilter(decision=d), limit=1)[1]
              for d in ("none", "relabel", "keep", "exclude")}
    assert totals == {"none": 297, "relabel": 0, "keep": 0, "exclude": 3}
    _, past_end = queries.score_page(engine.store, job_id, filters=queries.RowFilter(decision="exclude"), offset=50)
    assert past_end == 3  # an empty page still counts what matches
    cache = ResultCache(64 * 1024**2)
    page = queries.example_page_json(engine.store, cache, job_id, filters=queries.RowFilter(decision="exclude"))
    assert page.count(b'"decision":"exclude"') == 3
    with pytest.raises(queries.InvalidQuery, match="given_label 'cat' is not a class of this job's dataset"):
        queries.score_page(engine.store, job_id, filters=queries.RowFilter(given_label="cat"))
    _clear_all(engine, job_id)


def test_a_page_built_while_a_decision_commits_is_not_kept() -> None:
    cache = ResultCache(10**6)

    def build() -> tuple[object, int]:
        cache.forget_job("j")  # a decision lands while the rows are read
        return "stale", 5

    assert cache.fetch(("j", "scores"), build) is None  # the caller reads DuckDB instead
    assert cache.get(("j", "scores")) is None
    assert cache.fetch(("j", "scores"), lambda: ("fresh", 5)) == "fresh"


def _sha_files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_version_applies_the_decisions_and_never_touches_its_parent(scored) -> None:
    engine, dataset_id, job_id, _ = scored
    _clear_all(engine, job_id)
    settings = engine.settings
    parent_files = _sha_files(settings.datasets_dir / dataset_id)
    parent_rows = [r for r in _table(engine, "examples") if r[0] == dataset_id]
    given = _given(engine, job_id)
    target = "0" if given[10] != "0" else "1"
    reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=10, action="relabel", label=target),
                                                    DecisionIn(example_id=11, action="exclude"),
                                                    DecisionIn(example_id=12, action="keep")])
    decided = reviews.current_decisions(engine.store, job_id)
    v = versions.create_version(engine.store, settings, dataset_id, job_id)
    n_excluded = int((decided.action == "exclude").sum())
    assert (v.parent_id, v.root_id, v.version, v.n_examples) == (dataset_id, dataset_id, 1, 300 - n_excluded)
    assert v.applied == {a: int((decided.action == a).sum()) for a in ("relabel", "keep", "exclude")}
    X_parent, y_parent = (np.asarray(a) for a in engine_arrays(engine, dataset_id))
    X_v, y_v = (np.asarray(a) for a in engine_arrays(engine, v.dataset_id))
    with engine.store.reader() as cur:
        rows = cur.execute("SELECT example_id, source, given_label, parent_example_id, root_example_id, action "
                           "FROM examples WHERE dataset_id = ? ORDER BY example_id", [v.dataset_id]).fetchall()
    parents = np.array([r[3] for r in rows])
    assert 11 not in parents and len(parents) == len(set(parents)) == v.n_examples
    np.testing.assert_array_equal(X_v, X_parent[parents])
    expected_y = y_parent.copy()
    relabel = decided.action == "relabel"
    expected_y[decided.example_id[relabel]] = decided.label[relabel]
    np.testing.assert_array_equal(y_v, expected_y[parents])
    assert [r[2] for r in rows] == y_v.tolist()
    row10 = rows[int(np.flatnonzero(parents == 10)[0])]
    assert (row10[1], row10[4], row10[5]) == ("index 10", 10, "relabel")
    assert rows[int(np.flatnonzero(parents == 12)[0])][5] == "keep"
    assert _sha_files(settings.datasets_dir / dataset_id) == parent_files  # the parent's files, byte for byte
    assert [r for r in _table(engine, "examples") if r[0] == dataset_id] == parent_rows
    assert (settings.datasets_dir / v.dataset_id / "lineage.json").exists()
    assert queries.get_dataset(engine.store, dataset_id).version == 0
    with pytest.raises(NotFound):
        versions.create_version(engine.store, settings, dataset_id, job_id, owner="bob")
    other = versions.create_version(engine.store, settings, dataset_id, job_id)
    assert other.version == 2 and other.dataset_id != v.dataset_id  # numbered in the tree of the upload
    with pytest.raises(versions.InvalidVersion, match=f"scored dataset {dataset_id}, not {v.dataset_id}"):
        versions.create_version(engine.store, settings, v.dataset_id, job_id)


def engine_arrays(engine: Engine, dataset_id: str) -> tuple[np.ndarray, np.ndarray]:
    from service.ingest.files import load_arrays

    return load_arrays(engine.settings.datasets_dir, dataset_id)


def _clear_all(engine: Engine, job_id: str) -> None:
    decided = reviews.review_page(engine.store, job_id, limit=1000).items
    if decided:
        reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=r.example_id, action="clear")
                                                        for r in decided])


def test_a_version_that_would_empty_a_class_is_refused_naming_it(scored) -> None:
    engine, dataset_id, job_id, _ = scored
    _clear_all(engine, job_id)
    given = _given(engine, job_id)
    ones = [i for i, g in enumerate(given) if g == "1"]
    reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=i, action="exclude") for i in ones[1:]])
    before = _table(engine, "datasets")
    with pytest.raises(versions.InvalidVersion, match="class '1' has 1 example; every class needs at least 2"):
        versions.create_version(engine.store, engine.settings, dataset_id, job_id)
    assert _table(engine, "datasets") == before
    assert sorted(p.name for p in engine.settings.datasets_dir.iterdir()) == sorted(r[0] for r in before)
    _clear_all(engine, job_id)


def test_exports_in_the_uploaded_form_round_trip(scored, tmp_path: Path) -> None:
    engine, dataset_id, job_id, _ = scored
    _clear_all(engine, job_id)
    given = _given(engine, job_id)
    reviews.record_decisions(engine.store, job_id, [
        DecisionIn(example_id=0, action="relabel", label="0" if given[0] != "0" else "1"),
        DecisionIn(example_id=1, action="keep"), DecisionIn(example_id=2, action="exclude")])
    v = versions.create_version(engine.store, engine.settings, dataset_id, job_id)
    X, y = (np.asarray(a) for a in engine_arrays(engine, v.dataset_id))
    npz = dataset_export.export_dataset(engine.store, engine.settings, v.dataset_id, None, tmp_path / "v.npz")
    with np.load(npz) as f:  # the uploaded form (npz) by default
        np.testing.assert_array_equal(f["X"], X)
        np.testing.assert_array_equal(f["y"], y)
        assert f["class_names"].tolist() == v.class_names
    again, reused = engine.ingest(npz)  # what we export, we can ingest: same arrays
    assert not reused and again.n_examples == v.n_examples
    np.testing.assert_array_equal(np.asarray(engine_arrays(engine, again.dataset_id)[1]), y)
    with engine.store.reader() as cur:
        actions = [r[0] for r in cur.execute("SELECT action FROM examples WHERE dataset_id = ? ORDER BY example_id",
                                             [v.dataset_id]).fetchall()]
    for fmt, read in (("csv", lambda p: pacsv.read_csv(p)), ("parquet", pq.read_table)):
        table = read(dataset_export.export_dataset(engine.store, engine.settings, v.dataset_id, fmt, tmp_path / f"v.{fmt}"))
        assert table.column_names == [*(f"f{i}" for i in range(64)), "label", "curate_action"]
        assert [str(c) for c in table.column("label").to_pylist()] == [v.class_names[i] for i in y]
        assert [a or None for a in table.column("curate_action").to_pylist()] == actions  # CSV: empty cells
        np.testing.assert_allclose(table.column("f10").to_numpy(), X[:, 10])
    with pytest.raises(versions.InvalidVersion, match="export it as csv, parquet or npz, not zip"):
        dataset_export.export_dataset(engine.store, engine.settings, v.dataset_id, "zip", tmp_path / "v.zip")
    assert not (tmp_path / "v.zip").exists() and not (tmp_path / "v.zip.partial").exists()


def test_an_image_folder_exports_as_a_zip_of_class_folders(tmp_path: Path) -> None:
    folder = tmp_path / "pets"
    for cls, shade in (("cat", 40), ("dog", 200)):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (6, 6), shade + i).save(folder / cls / f"{cls}{i}.png")
    engine = Engine(Settings(data_dir=tmp_path / "data"))
    try:
        m = engine.add_dataset(folder)
        with engine.store.transaction() as cur:  # a succeeded job's scores, written by hand: no training
            cur.execute("INSERT INTO jobs (job_id, dataset_id, spec, scoring, adaboost, status, attempt, "
                        "epochs_done, epochs_total, created_at) VALUES ('j1', ?, ?, '{\"easy_at_least\": 0.8, "
                        "\"hard_below\": 0.3}', ?, 'succeeded', 1, 1, 1, now())",
                        [m.dataset_id, TINY.model_dump_json(), AdaBoostSpec().model_dump_json()])
            cur.execute("INSERT INTO example_scores SELECT 'j1', example_id, given_label, 1, 1, given_label, NULL, 1, "
                        "0, 1, 'easy', 0.9, true, 1 - given_label, NULL, NULL FROM examples WHERE dataset_id = ?",
                        [m.dataset_id])
        reviews.record_decisions(engine.store, "j1", [DecisionIn(example_id=0, action="relabel", label="dog"),
                                                      DecisionIn(example_id=4, action="exclude")])
        v = versions.create_version(engine.store, engine.settings, m.dataset_id, "j1")
        out = dataset_export.export_dataset(engine.store, engine.settings, v.dataset_id, None, tmp_path / "v.zip")
        with zipfile.ZipFile(out) as zf:
            names = sorted(zf.namelist())
            img = Image.open(zf.open("dog/cat0.png"))
            assert np.asarray(img).tolist() == np.full((6, 6), 40).tolist()  # cat0's pixels, in the dog folder
        assert names == ["cat/cat1.png", "cat/cat2.png", "dog/cat0.png", "dog/dog0.png", "dog/dog2.png"]
    finally:
        engine.close()


def test_diff_matches_examples_by_lineage(scored) -> None:
    engine, dataset_id, job_id, _ = scored
    _clear_all(engine, job_id)
    reviews.accept_suggested(engine.store, job_id, AcceptSuggested(top=5))
    reviews.record_decisions(engine.store, job_id, [DecisionIn(example_id=i, action="exclude") for i in (0, 1, 2)])
    v = versions.create_version(engine.store, engine.settings, dataset_id, job_id)
    job_b = engine.submit(v.dataset_id, TINY, AdaBoostSpec(enabled=False))
    assert engine.run(job_b).status == "succeeded"
    d = diff.diff_jobs(engine.store, job_id, job_b)
    a_rows = queries.score_rows(engine.store, job_id).to_pylist()
    b_rows = queries.score_rows(engine.store, job_b).to_pylist()
    with engine.store.reader() as cur:
        parent_of = [r[0] for r in cur.execute("SELECT parent_example_id FROM examples WHERE dataset_id = ? "
                                               "ORDER BY example_id", [v.dataset_id]).fetchall()]
    pairs = [(a_rows[p], b) for p, b in zip(parent_of, b_rows)]  # b's rows with the row of a they came from
    assert d.excluded == 300 - len(b_rows) >= 3
    assert d.relabelled == sum(a["given_label"] != b["given_label"] for a, b in pairs)
    assert d.suspects.resolved == sum(a["is_suspected_mislabel"] and not b["is_suspected_mislabel"] for a, b in pairs)
    assert d.suspects.new == sum(b["is_suspected_mislabel"] and not a["is_suspected_mislabel"] for a, b in pairs)
    assert d.splits["hard"]["easy"] == sum(a["split"] == "hard" and b["split"] == "easy" for a, b in pairs)
    assert sum(c.suspects_b for c in d.per_class) == sum(b["is_suspected_mislabel"] for b in b_rows)
    assert d.estimated_errors == {"a": engine_job(engine, job_id), "b": engine_job(engine, job_b)}
    with pytest.raises(diff.NotDerived, match="not derived from dataset"):
        diff.diff_jobs(engine.store, job_b, job_id)
    with pytest.raises(NotFound):
        diff.diff_jobs(engine.store, job_id, job_b, owner="bob")


def engine_job(engine: Engine, job_id: str) -> int | None:
    from service.store import jobs
    return jobs.get_job(engine.store, job_id).estimated_n_errors


def test_deleting_a_version_keeps_the_parent_and_a_parent_with_versions_needs_tree(scored) -> None:
    engine, dataset_id, job_id, _ = scored
    _clear_all(engine, job_id)
    v = versions.create_version(engine.store, engine.settings, dataset_id, job_id)
    with pytest.raises(HasVersions) as caught:
        catalog.delete_dataset(engine.store, engine.settings, dataset_id)
    assert caught.value.status_code == 409 and caught.value.code == "has_versions"
    history = _table(engine, "reviews")
    assert catalog.delete_dataset(engine.store, engine.settings, v.dataset_id) == [v.dataset_id]
    assert not (engine.settings.datasets_dir / v.dataset_id).exists()
    assert queries.finished_job(engine.store, job_id).dataset_id == dataset_id  # the parent's job is intact
    assert _table(engine, "reviews") == history and (engine.settings.datasets_dir / dataset_id).exists()


def test_the_same_upload_reuses_its_dataset(tmp_path: Path) -> None:
    path, _ = digits_npz(tmp_path / "d.npz", n=60)
    engine = Engine(Settings(data_dir=tmp_path / "data"))
    try:
        first, reused = engine.ingest(path)
        assert not reused
        again, reused = engine.ingest(path, name="another name")
        assert reused and again.dataset_id == first.dataset_id
        assert engine.ingest(path, owner="bob")[1] is False  # another owner's upload is its own
        assert sorted(p.name for p in engine.settings.datasets_dir.iterdir()) == sorted(
            r[0] for r in _table(engine, "datasets"))
    finally:
        engine.close()


def test_an_old_schema_file_is_migrated_in_place(tmp_path: Path) -> None:
    old_source = subprocess.run(["git", "show", "bfe4c10:service/store.py"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout
    (tmp_path / "old_store.py").write_text(old_source)
    spec = importlib.util.spec_from_file_location("old_store", tmp_path / "old_store.py")
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    assert old.SCHEMA_VERSION == 1
    db = tmp_path / "curate.duckdb"
    store = old.Store(db)
    with store.transaction() as cur:
        cur.execute("INSERT INTO datasets VALUES ('d1', 'n', 'tabular', 'npz', 2, 2, '[\"a\", \"b\"]', NULL, "
                    "'[2, 1]', 'abc', NULL, now())")
        cur.execute("INSERT INTO examples VALUES ('d1', 0, 'index 0', 0), ('d1', 1, 'index 1', 1)")
    store.close()
    store = Store(db)
    try:
        with store.reader() as cur:
            versions_seen = [r[0] for r in cur.execute("SELECT version FROM schema_version ORDER BY ALL").fetchall()]
            columns = {r[0] for r in cur.execute("DESCRIBE datasets").fetchall()}
            assert cur.execute("SELECT count(*) FROM reviews").fetchone()[0] == 0
        assert versions_seen == [1, SCHEMA_VERSION]
        assert {"parent_id", "version", "root_id", "applied", "upload_sha256"} <= columns
        ds = queries.get_dataset(store, "d1")
        assert (ds.version, ds.parent_id, ds.root_id, ds.class_names) == (0, None, "d1", ["a", "b"])
    finally:
        store.close()
    con = duckdb.connect(str(db))  # and opening it again changes nothing
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 2
    con.close()
