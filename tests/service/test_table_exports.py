"""A mixed-type table (issue 16, item 1) keeps its uploaded columns past ingest: a corrected version
keeps columns.json and the kept rows of table.parquet, and an export writes the columns as read
(category text, dates, gaps as empty cells) with the corrected label and `curate_action`, so it
uploads again to the same roles and the same features. Real parts: a CSV on disk, an Engine training
a tiny job into a DuckDB file, the app through TestClient."""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from models.spec import AdaBoostSpec, TrainSpec
from service.app import create_app
from service.engine.engine import Engine
from service.ingest.files import load_arrays, load_columns, load_table
from service.schemas import DatasetOut
from service.settings import Settings
from tests.service.test_columns import TFIDF, mixed_table, write_mixed_csv

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
    v, _, exclude = version
    datasets = scored.settings.datasets_dir
    kept = [i for i in range(N) if i != exclude]
    assert load_columns(datasets, v.dataset_id) == load_columns(datasets, scored.dataset_id)
    table = load_table(datasets, v.dataset_id)
    assert table is not None and table.num_rows == N - 1 == v.n_examples
    assert table.column_names == scored.table.column_names
    parent = load_table(datasets, scored.dataset_id)
    assert table.column("customer_id").to_pylist() == parent.column("customer_id").take(kept).to_pylist()
    assert table.column("age").to_pylist() == parent.column("age").take(kept).to_pylist()  # gaps stay gaps
    X_parent, _ = load_arrays(datasets, scored.dataset_id)
    X_version, _ = load_arrays(datasets, v.dataset_id)
    np.testing.assert_array_equal(X_version, X_parent[kept])
