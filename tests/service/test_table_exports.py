"""A mixed-type table (issue 16, item 1) keeps its uploaded columns past ingest: a corrected version
keeps columns.json and the kept rows of table.parquet, and an export writes the columns as read
(category text, dates, gaps as empty cells) with the corrected label and `curate_action`, so it
uploads again to the same roles and the same features. Real parts: a CSV on disk, an Engine training
a tiny job into a DuckDB file, the app through TestClient."""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from models.spec import AdaBoostSpec, TrainSpec
from service.app import create_app
from service.engine.engine import Engine
from service.ingest.files import load_arrays, load_columns, load_table
from service.ingest.formats import load_dataset
from service.schemas import DatasetOut
from service.settings import Settings
from tests.service.conftest import Server
from tests.service.test_columns import TFIDF, mixed_table, roles_of, write_mixed_csv

N = 60


@dataclass
class Scored:
    client: TestClient
    settings: Settings
    dataset_id: str
    job_id: str
    table: pa.Table  # the CSV as written


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scored]:
    tmp = tmp_path_factory.mktemp("tables")
    path, _ = write_mixed_csv(tmp / "customers.csv", n=N)
    settings = Settings(data_dir=tmp / "data", explain_max_examples=0)
    engine = Engine(settings)
    try:
        ds = engine.add_dataset(path, TFIDF)
        spec = TrainSpec(n_members=2, n_epochs=2, hidden_units=16, batch_size=16)
        job = engine.run(engine.submit(ds.dataset_id, spec, AdaBoostSpec(enabled=False)))
        assert job.status == "succeeded", job.error
    finally:
        engine.close()
    with TestClient(create_app(settings)) as client:
        yield Scored(client, settings, ds.dataset_id, job.job_id, mixed_table(N)[0])


@pytest.fixture(scope="module")
def version(scored: Scored) -> tuple[DatasetOut, int, int]:
    """A version with row 5 relabelled to the other class and row 2 excluded: (version, 5, 2)."""
    relabel, exclude = 5, 2
    other = "stay" if scored.table.column("label")[relabel].as_py() == "churn" else "churn"
    r = scored.client.post(f"/jobs/{scored.job_id}/reviews", json={"decisions": [
        {"example_id": relabel, "action": "relabel", "label": other},
        {"example_id": exclude, "action": "exclude"}]})
    assert r.status_code == 200, r.text
    r = scored.client.post(f"/datasets/{scored.dataset_id}/versions", json={"from_job": scored.job_id})
    assert r.status_code == 201, r.text
    return DatasetOut.model_validate(r.json()), relabel, exclude


@pytest.mark.slow
def test_a_version_keeps_the_columns_and_the_kept_rows_as_read(scored: Scored, version: tuple) -> None:
    v, relabel, exclude = version
    datasets = scored.settings.datasets_dir
    kept = [i for i in range(N) if i != exclude]
    assert load_columns(datasets, v.dataset_id) == load_columns(datasets, scored.dataset_id)
    table = load_table(datasets, v.dataset_id)
    assert table is not None and table.num_rows == N - 1 == v.n_examples
    assert table.column_names == scored.table.column_names
    parent = load_table(datasets, scored.dataset_id)
    assert table.column("customer_id").to_pylist() == parent.column("customer_id").take(kept).to_pylist()
    assert table.column("age").to_pylist() == parent.column("age").take(kept).to_pylist()  # gaps stay gaps
    labels = parent.column("label").take(kept).to_pylist()  # the label column says what y says: corrected
    labels[kept.index(relabel)] = "stay" if labels[kept.index(relabel)] == "churn" else "churn"
    assert table.column("label").to_pylist() == labels
    X_parent, _ = load_arrays(datasets, scored.dataset_id)
    X_version, _ = load_arrays(datasets, v.dataset_id)
    np.testing.assert_array_equal(X_version, X_parent[kept])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_export_is_the_uploaded_columns_and_uploads_again_to_the_same_roles(
        scored: Scored, version: tuple, tmp_path: Path, fmt: str) -> None:
    v, relabel, exclude = version
    r = scored.client.get(f"/datasets/{v.dataset_id}/export", params={"format": fmt})
    assert r.status_code == 200, r.text
    exported = tmp_path / f"customers-v1.{fmt}"
    exported.write_bytes(r.content)
    table = pacsv.read_csv(exported) if fmt == "csv" else pq.read_table(exported)
    assert table.column_names == [*[c for c in scored.table.column_names if c != "label"], "label", "curate_action"]
    kept = [i for i in range(N) if i != exclude]
    expected = scored.table.take(kept)
    assert table.column("region").to_pylist() == expected.column("region").to_pylist()  # category text
    assert table.column("age").null_count == expected.column("age").null_count > 0  # gaps stay gaps
    labels = expected.column("label").to_pylist()
    labels[kept.index(relabel)] = "stay" if labels[kept.index(relabel)] == "churn" else "churn"
    assert table.column("label").to_pylist() == labels
    assert table.column("curate_action").to_pylist()[kept.index(relabel)] == "relabel"

    again = load_dataset(exported, TFIDF)
    same_rows = tmp_path / "kept.csv"  # the kept rows of the upload, read as an upload
    pacsv.write_csv(expected, same_rows)
    reference = load_dataset(same_rows, TFIDF)
    roles = roles_of(again.report["columns"])
    assert roles.pop("curate_action") == "ignored"
    assert roles == roles_of(reference.report["columns"])
    assert again.feature_names == reference.feature_names
    np.testing.assert_allclose(again.X, reference.X, rtol=1e-6, atol=1e-6)
    assert [again.class_names[k] for k in again.y] == labels


@pytest.mark.slow
def test_npz_stays_the_encoded_features(scored: Scored, version: tuple, tmp_path: Path) -> None:
    v, _, _ = version
    r = scored.client.get(f"/datasets/{v.dataset_id}/export", params={"format": "npz"})
    assert r.status_code == 200, r.text
    with np.load(io.BytesIO(r.content)) as npz:
        X_version, y_version = load_arrays(scored.settings.datasets_dir, v.dataset_id)
        np.testing.assert_array_equal(npz["X"], X_version)
        np.testing.assert_array_equal(npz["y"], y_version)


def test_a_curate_action_column_read_back_is_ignored_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("size,label,curate_action\n" + "".join(f"{i},{'ab'[i % 2]},{'relabel' if i == 3 else ''}\n"
                                                          for i in range(10)))
    loaded = load_dataset(path)
    report = {r["column"]: r for r in loaded.report["columns"]}
    assert report["curate_action"]["role"] == "ignored" and "Curate export" in report["curate_action"]["reason"]
    assert loaded.feature_names == ["size"]


@pytest.mark.slow
def test_the_upload_exported_reads_back_as_it_was_read(scored: Scored, tmp_path: Path) -> None:
    r = scored.client.get(f"/datasets/{scored.dataset_id}/export")  # default: CSV, as uploaded
    assert r.status_code == 200, r.text
    exported = tmp_path / "customers.csv"
    exported.write_bytes(r.content)
    again = load_dataset(exported, TFIDF)
    original = scored.client.get(f"/datasets/{scored.dataset_id}").json()["ingest_report"]["columns"]
    roles = roles_of(again.report["columns"])
    assert roles.pop("curate_action") == "ignored"
    assert roles == roles_of(original)
    X, y = load_arrays(scored.settings.datasets_dir, scored.dataset_id)
    np.testing.assert_allclose(again.X, X, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(again.y, y)


def test_integer_labels_stay_integers_in_the_export(shared_server: Server, tmp_path: Path) -> None:
    n = 30
    path = tmp_path / "sizes.parquet"
    pq.write_table(pa.table({"shape": [["round", "square", "long"][i % 3] for i in range(n)],
                             "when": pa.array([f"2024-03-{1 + i % 28:02d}" for i in range(n)]),
                             "label": [[2, 10][i % 2] for i in range(n)]}), path)
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        r = c.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
        assert r.status_code == 201, r.text
        exported = c.get(f"/datasets/{r.json()['dataset_id']}/export")  # default: Parquet, as uploaded
        assert exported.status_code == 200, exported.text
    again = tmp_path / "again.parquet"
    again.write_bytes(exported.content)
    table = pq.read_table(again)
    assert table.schema.field("label").type == pa.int64() and table.schema.field("when").type == pa.string()
    assert table.column("label").to_pylist() == pq.read_table(path).column("label").to_pylist()
    first, second = load_dataset(path), load_dataset(again)
    assert second.class_names == first.class_names == ["2", "10"]  # numeric order, not "10" < "2"
    np.testing.assert_array_equal(second.X, first.X)
