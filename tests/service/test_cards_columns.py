"""Review cards of a table speak the user's columns (issue 16, item 1): a mixed CSV (numbers with
gaps, a category, a date, a flag, a text) scored by a tiny job through a real Engine and DuckDB
file, then the review page and the attribution JSON served by the app (TestClient). The expected
ranking of each card is computed here from X, y and columns.json on their own; an NPZ dataset's
cards keep the encoded features."""

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from models.spec import AdaBoostSpec, TrainSpec
from service.app import create_app
from service.engine.engine import Engine
from service.ingest.options import IngestOptions
from service.settings import Settings
from service.web.column_cards import BY_DISTANCE, ONEHOT_CLASSES, by_attribution, class_stats, format_value, read_rows
from service.web.curation import N_FEATURES_SHOWN
from tests.service.conftest import digits_npz

TINY = {"n_members": 2, "n_epochs": 3, "hidden_units": 16, "batch_size": 32}
N = 120
N_EXPLAINED = 4
LONG_NOTE = "a very long note about this customer " * 4  # 148 characters: cut on the card
CARD = re.compile(r'<div class="card[^"]*"[^>]*data-example="(\d+)"[^>]*>\s*'
                  r'<div class="features"(?: title="([^"]*)")?>(.*?)</div>', re.S)


@dataclass
class Served:
    client: TestClient
    data_dir: Path
    dataset_id: str
    job_id: str
    npz_job_id: str


def mixed_csv(path: Path) -> Path:
    rng = np.random.default_rng(3)
    city = rng.choice(["north", "south", "east"], N)
    age = rng.normal(40, 9, N)
    income = rng.normal(3000, 700, N)
    member = rng.random(N) < 0.5
    label = np.where((age > 40).astype(int) + (city == "north") + member >= 2, "churn", "stay")
    table = pa.table({
        "age": [None if i % 9 == 4 else round(float(a), 1) for i, a in enumerate(age)],
        "income": [round(float(v), 2) for v in income],
        "visits": rng.integers(0, 20, N),
        "city": [None if i % 17 == 5 else str(c) for i, c in enumerate(city)],
        "member": ["yes" if m else "no" for m in member],
        "joined": [f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(N)],
        "plan": rng.choice(["basic", "plus", "pro", "max"], N),
        "note": [LONG_NOTE if i == 0 else f"customer {i} says {rng.choice(['good', 'bad', 'slow', 'fast'])} "
                 "service and more words" for i in range(N)],
        "label": list(label),
    })  # fmt: skip
    pacsv.write_csv(table, path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("cards")
    settings = Settings(data_dir=tmp / "data", explain_max_examples=N_EXPLAINED)
    engine = Engine(settings)
    try:
        ds = engine.add_dataset(mixed_csv(tmp / "mixed.csv"), IngestOptions(text_column="note", embedder="tfidf"))
        job = engine.run(engine.submit(ds.dataset_id, TrainSpec(**TINY), AdaBoostSpec(enabled=False)))
        assert job.status == "succeeded", job.error
        npz, _ = digits_npz(tmp / "d.npz", n=120)
        npz_ds = engine.add_dataset(npz)
        npz_job = engine.run(engine.submit(npz_ds.dataset_id, TrainSpec(**TINY), AdaBoostSpec(enabled=False)))
        assert npz_job.status == "succeeded", npz_job.error
    finally:
        engine.close()
    with TestClient(create_app(Settings(data_dir=tmp / "data"))) as client:
        yield Served(client, tmp / "data", ds.dataset_id, job.job_id, npz_job.job_id)


def _cards(client: TestClient, job_id: str) -> dict[int, tuple[str | None, list[tuple[str, str]]]]:
    """example_id -> (the features' title, [(name, value)]) of every card on the first review page."""
    r = client.get(f"/ui/jobs/{job_id}/gallery/all", params={"order": "example_id"})
    assert r.status_code == 200, r.text
    out = {}
    for example_id, title, body in CARD.findall(r.text):
        lines = [html.unescape(line).strip() for line in body.split("<br>")]
        pairs = [tuple(line.split(" = ", 1)) for line in lines if " = " in line]
        out[int(example_id)] = (html.unescape(title) if title else None, pairs)
    assert out, "no card with features on the review page"
    return out


def _dataset_files(served: Served) -> tuple[np.ndarray, np.ndarray, dict]:
    folder = served.data_dir / "datasets" / served.dataset_id
    X = np.load(folder / "X.npy").astype(np.float64)
    y = np.load(folder / "y.npy")
    return X, y, json.loads((folder / "columns.json").read_text())


def _per_column(values: np.ndarray, feature_column: list[str]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for column, value in zip(feature_column, values):
        sums[column] = sums.get(column, 0.0) + float(value)
    return sums


def _expected_order(scores: dict[str, float], feature_columns: list[str]) -> list[str]:
    return sorted(feature_columns, key=lambda c: -abs(scores.get(c, 0.0)))[:N_FEATURES_SHOWN]


@pytest.mark.slow
def test_cards_show_original_columns_ranked_by_distance_or_attribution(served: Served) -> None:
    cards = _cards(served.client, served.job_id)
    X, y, columns = _dataset_files(served)
    feature_column = columns["feature_column"]
    feature_columns = [c["column"] for c in columns["columns"] if c["features"]]
    assert "label" not in feature_columns and len(feature_columns) > N_FEATURES_SHOWN
    means = np.stack([X[y == k].mean(axis=0) for k in range(int(y.max()) + 1)])
    std = X.std(axis=0)
    std[std == 0] = 1.0
    client = served.client
    explained = _explained(served)
    assert explained and len(explained) <= N_EXPLAINED
    for example_id, (title, pairs) in cards.items():
        if example_id in explained:
            body = client.get(f"/jobs/{served.job_id}/examples/{example_id}/attribution",
                              params={"target": "suggested"}).json()
            scores = _per_column(np.asarray(body["map"]), feature_column)
            assert title == by_attribution("suggested")
        else:
            squares = _per_column(((X[example_id] - means[y[example_id]]) / std) ** 2, feature_column)
            scores = {c: np.sqrt(v / feature_column.count(c)) for c, v in squares.items()}
            assert title == BY_DISTANCE
        assert [name for name, _ in pairs] == _expected_order(scores, feature_columns), example_id
    shown = [pair for _, pairs in cards.values() for pair in pairs]
    assert ("city", "north") in shown and not any("=" in name for name, _ in shown)  # not city=north = 1
    assert any(value == "(missing)" for _, value in shown)
    assert any(name == "joined" and re.fullmatch(r"2021-\d\d-\d\d", value) for name, value in shown)
    assert all(len(value) <= 61 for _, value in shown)  # long text cut (with "…")
    assert format_value(LONG_NOTE) == LONG_NOTE[:60].rstrip() + "…" and format_value(float("nan")) == "(missing)"


def _explained(served: Served) -> set[int]:
    """The examples whose cards link a stored attribution (the job explained them after training)."""
    page = served.client.get(f"/ui/jobs/{served.job_id}/gallery/all", params={"order": "example_id"}).text
    return {int(i) for i in re.findall(rf'href="/jobs/{served.job_id}/examples/(\d+)/attribution"', page)}


@pytest.mark.slow
def test_attribution_json_sums_the_map_per_original_column(served: Served) -> None:
    _, _, columns = _dataset_files(served)
    example_id = min(_explained(served))
    body = served.client.get(f"/jobs/{served.job_id}/examples/{example_id}/attribution").json()
    by_column = body["by_column"]
    expected = _per_column(np.asarray(body["map"]), columns["feature_column"])
    assert {c["column"] for c in by_column} == set(expected)
    for entry in by_column:
        assert entry["value"] == pytest.approx(expected[entry["column"]], rel=1e-6, abs=1e-9)
    magnitudes = [abs(c["value"]) for c in by_column]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert len(body["top_features"]) > 0 and body["map_shape"] == [len(columns["feature_column"])]


@pytest.mark.slow
def test_npz_cards_keep_the_encoded_features(served: Served) -> None:
    cards = _cards(served.client, served.npz_job_id)
    X = np.load(served.data_dir / "datasets" / _npz_dataset(served) / "X.npy")
    for example_id, (title, pairs) in cards.items():
        assert title is None
        # an NPZ's features are named f0..f{d-1} (formats.py)
        assert pairs == [(f"f{i}", f"{float(v):.3g}") for i, v in enumerate(X[example_id][:N_FEATURES_SHOWN])]
    r = served.client.get(f"/jobs/{served.npz_job_id}/examples/{next(iter(cards))}/attribution")
    assert r.status_code == 200 and r.json()["by_column"] is None


def _npz_dataset(served: Served) -> str:
    return served.client.get(f"/jobs/{served.npz_job_id}").json()["dataset_id"]


def test_read_rows_takes_the_rows_of_several_row_groups_in_the_asked_order(tmp_path: Path) -> None:
    n = 50_000
    table = pa.table({"a": np.arange(n), "b": [f"v{i}" for i in range(n)], "c": np.arange(n) * 0.5})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=7_000)
    ids = [int(i) for i in np.random.default_rng(1).choice(n, 40, replace=False)] + [49_999, 0, 7_000, 6_999, 0]
    got = read_rows(pq.ParquetFile(tmp_path / "t.parquet"), ids, ["b", "a"])
    assert got.column_names == ["b", "a"]
    assert got.to_pylist() == table.select(["b", "a"]).take(pa.array(ids)).to_pylist()


@pytest.mark.parametrize("k", [3, ONEHOT_CLASSES + 44])  # a one-hot product, then sorted sums
def test_class_stats_are_the_means_of_each_class_and_the_std_of_each_feature(tmp_path: Path, k: int) -> None:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(3_000, 5)).astype(np.float32)
    X[:, 4] = 2.0  # a constant feature: std 1, so its |z| is its raw distance
    y = rng.integers(0, k, 3_000)
    y[y == 1] = 0  # class 1 absent: the overall mean
    np.save(tmp_path / "X.npy", X)
    means, std = class_stats(np.load(tmp_path / "X.npy", mmap_mode="r"), y)
    X64 = X.astype(np.float64)
    for c in range(k):
        expected = X64[y == c].mean(axis=0) if (y == c).any() else X64.mean(axis=0)
        assert np.allclose(means[c], expected), c
    assert np.allclose(std[:4], X64[:, :4].std(axis=0)) and std[4] == 1.0


def test_table_parquet_is_written_in_small_row_groups(tmp_path: Path) -> None:
    """A page of cards decodes only the row groups holding its rows: a table is stored in groups of
    TABLE_ROW_GROUP rows, not pyarrow's default of about a million."""
    from service.ingest.files import TABLE_ROW_GROUP, save_dataset, table_path
    from service.ingest.formats import load_dataset

    n = 2 * TABLE_ROW_GROUP + 5
    rng = np.random.default_rng(0)
    lines = ["x,city,label"] + [f"{v:.3f},{c},{lab}" for v, c, lab in
                                zip(rng.normal(size=n), rng.choice(["n", "s"], n), rng.choice(["a", "b"], n))]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    save_dataset(load_dataset(tmp_path / "t.csv"), tmp_path / "datasets", "t1", "t.csv", "csv")
    parquet = pq.ParquetFile(table_path(tmp_path / "datasets", "t1"))
    assert parquet.metadata.num_rows == n and parquet.num_row_groups == 3


@pytest.mark.slow
def test_curate_explain_prints_the_uploaded_columns_largest_first(served: Served,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from service.cli.main import TOP_COLUMNS, print_attribution
    from service.schemas import AttributionOut

    example_id = min(_explained(served))
    body = served.client.get(f"/jobs/{served.job_id}/examples/{example_id}/attribution").json()
    print_attribution(AttributionOut.model_validate(body), served.data_dir)
    shown = capsys.readouterr().out
    assert f"uploaded columns by |attribution| (top {min(len(body['by_column']), TOP_COLUMNS)}" in shown
    rows = re.findall(r"^\W*(\w+)\s*\W\s*(-?\d+\.\d{4})\s*\W*$", shown.split("uploaded columns", 1)[1], re.M)
    expected = [(c["column"], f"{c['value']:.4f}") for c in body["by_column"][:TOP_COLUMNS]]
    assert rows == expected
    # without uploaded columns (an NPZ's attribution has by_column None) there is no such table
    print_attribution(AttributionOut.model_validate({**body, "by_column": None}), served.data_dir)
    assert "uploaded columns" not in capsys.readouterr().out
