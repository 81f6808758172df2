"""Bring-your-own embeddings (issue 16, item 5): an NPZ `embeddings` array, or a Parquet / JSON Lines
column of fixed-length number lists, is taken as features as given; ragged vectors, rows without
one and numbers that are not finite are refused naming the row and the column. Real parts: files on
disk, the real readers, a real server for the upload and the export."""

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.errors import InvalidDataset
from service.ingest.formats import load_dataset
from tests.service.conftest import Server
from tests.service.test_columns import roles_of


def vectors(n: int = 40, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 vectors around two centres, and their labels 'a'/'b'."""
    rng = np.random.default_rng(seed)
    labels = np.array(["a", "b"] * (n // 2))
    centres = np.where(labels[:, None] == "a", 1.0, -1.0) * np.ones(d)
    return (centres + rng.normal(0, 0.3, (n, d))).astype(np.float32), labels


def reject(path: Path, match: str) -> str:
    with pytest.raises(InvalidDataset, match=match) as info:
        load_dataset(path)
    assert path.name in info.value.message
    return info.value.message


# --- NPZ -----------------------------------------------------------------------------------------


def test_an_npz_embeddings_array_is_the_features(tmp_path: Path) -> None:
    E, labels = vectors()
    path = tmp_path / "clip.npz"
    np.savez(path, embeddings=E, y=labels)
    ds = load_dataset(path)
    assert ds.kind == "tabular" and ds.class_names == ["a", "b"]
    np.testing.assert_array_equal(ds.X, E)
    assert ds.feature_names == [f"embeddings[{j}]" for j in range(E.shape[1])]
    assert [ds.class_names[k] for k in ds.y] == labels.tolist()
    assert ds.report["embeddings"]["dims"] == E.shape[1] and ds.report["embeddings"]["n_vectors"] == len(E)


def test_npz_embeddings_with_class_names_index_them(tmp_path: Path) -> None:
    E, labels = vectors(d=3)
    path = tmp_path / "clip.npz"
    np.savez(path, embeddings=E.astype(np.float64), y=(labels == "b").astype(np.int64),
             class_names=np.array(["cat", "dog"]))
    ds = load_dataset(path)
    assert ds.class_names == ["cat", "dog"] and ds.X.dtype == np.float32
    assert [ds.class_names[k] for k in ds.y] == ["dog" if s == "b" else "cat" for s in labels]


def test_bad_npz_embeddings_are_refused_naming_the_problem(tmp_path: Path) -> None:
    E, labels = vectors()
    path = tmp_path / "clip.npz"
    np.savez(path, embeddings=E, X=E, y=labels)
    reject(path, "holds both 'X' and 'embeddings'; keep one")
    np.savez(path, embeddings=E[:, :, None], y=labels)
    reject(path, r"'embeddings' has shape \(40, 5, 1\); expected \(n, d\)")
    np.savez(path, embeddings=E[:30], y=labels)
    reject(path, "'embeddings' has 30 vectors but y has shape \\(40,\\)")
    bad = E.copy()
    bad[7, 2] = np.nan
    np.savez(path, embeddings=bad, y=labels)
    reject(path, "index 7, array 'embeddings': number 2 of the vector is NaN")
    bad[7, 2], bad[3, 4] = 1.0, np.inf
    np.savez(path, embeddings=bad, y=labels)
    reject(path, "index 3, array 'embeddings': number 4 of the vector is infinite")
    np.savez(path, vectors=E, y=labels)
    reject(path, "missing array 'X' \\(or 'embeddings', vectors of your own\\); found 'vectors', 'y'")


# --- vector columns ------------------------------------------------------------------------------


def vector_table(E: np.ndarray, labels: np.ndarray, list_type: pa.DataType | None = None) -> pa.Table:
    values = pa.array(E.tolist(), list_type or pa.list_(pa.float32()))
    return pa.table({"clip": values, "width": np.arange(len(E)) % 7 * 1.5, "label": labels.tolist()})


@pytest.mark.parametrize("list_type", [pa.list_(pa.float32()), pa.list_(pa.float64(), 5), pa.large_list(pa.float64())])
def test_a_parquet_column_of_vectors_is_an_embedding(tmp_path: Path, list_type: pa.DataType) -> None:
    E, labels = vectors()
    path = tmp_path / "items.parquet"
    pq.write_table(vector_table(E, labels, list_type), path)
    ds = load_dataset(path)
    role = next(r for r in ds.report["columns"] if r["column"] == "clip")
    assert role["role"] == "embedding" and role["n_features"] == 5
    assert "lists of 5 numbers" in role["reason"]
    assert ds.feature_names == [*(f"clip[{j}]" for j in range(5)), "width"]
    np.testing.assert_array_equal(ds.X[:, :5], E)
    assert ds.columns["feature_column"][:5] == ["clip"] * 5


def test_json_lines_vectors_are_an_embedding(tmp_path: Path) -> None:
    E, labels = vectors(d=4)
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"vec": [float(v) for v in e], "label": str(s)}) + "\n"
                            for e, s in zip(E, labels)))
    ds = load_dataset(path)
    assert roles_of(ds.report["columns"]) == {"vec": "embedding", "label": "label"}
    np.testing.assert_allclose(ds.X, E, rtol=1e-6)


def test_ragged_vectors_are_refused_naming_the_column_and_row(tmp_path: Path) -> None:
    E, labels = vectors()
    rows = E.tolist()
    rows[11] = rows[11][:3]
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"clip": rows, "label": labels.tolist()}), path)
    reject(path, "column 'clip' holds vectors of different lengths: row 0 has 5 numbers, row 11 has 3")


@pytest.mark.parametrize(("value", "said"), [(float("nan"), "NaN"), (float("inf"), "infinite"),
                                             (1e300, "1e\\+300, beyond float32")])
def test_a_number_that_is_not_finite_is_refused_naming_row_and_column(tmp_path: Path, value: float, said: str) -> None:
    E, labels = vectors()
    rows = E.astype(np.float64).tolist()
    rows[9][1] = value
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"clip": rows, "label": labels.tolist()}), path)
    reject(path, f"row 9, column 'clip': number 1 of the vector is {said}")


def test_a_gap_inside_a_vector_is_refused_also_past_the_first_block(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from service.ingest import embeddings

    monkeypatch.setattr(embeddings, "_CHECK_BLOCK", 7)  # the numbers are checked 7 at a time: row 30 is far past
    E, labels = vectors()
    rows: list = E.tolist()
    rows[30][3] = None
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"clip": rows, "label": labels.tolist()}), path)
    reject(path, "row 30, column 'clip': number 3 of the vector is missing")


def test_a_row_without_a_vector_and_empty_vectors_are_refused(tmp_path: Path) -> None:
    E, labels = vectors()
    rows: list = E.tolist()
    rows[4] = None
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"clip": rows, "label": labels.tolist()}), path)
    reject(path, "row 4, column 'clip' has no vector")
    pq.write_table(pa.table({"clip": pa.array([[]] * len(E), pa.list_(pa.float32())), "label": labels.tolist()}),
                   path)
    reject(path, "row 0, column 'clip' holds an empty list")


def test_a_list_of_strings_is_still_ignored(tmp_path: Path) -> None:
    E, labels = vectors()
    path = tmp_path / "items.parquet"
    pq.write_table(pa.table({"tags": [["x", "y"]] * len(E), "size": E[:, 0], "label": labels.tolist()}), path)
    ds = load_dataset(path)
    assert roles_of(ds.report["columns"])["tags"] == "ignored" and ds.feature_names == ["size"]


# --- through the service -------------------------------------------------------------------------


def test_vectors_upload_report_their_role_and_export_as_uploaded(shared_server: Server, tmp_path: Path) -> None:
    E, labels = vectors(seed=3)
    path = tmp_path / "items.parquet"
    pq.write_table(vector_table(E, labels), path)
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        r = c.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
        assert r.status_code == 201, r.text
        dataset_id = r.json()["dataset_id"]
        got = c.get(f"/datasets/{dataset_id}").json()
        exported = c.get(f"/datasets/{dataset_id}/export", params={"format": "parquet"})
        assert exported.status_code == 200, exported.text
        npz = c.post("/datasets", params={"filename": "clip.npz"}, content=_npz_bytes(E, labels))
        assert npz.status_code == 201, npz.text
    clip = next(r for r in got["ingest_report"]["columns"] if r["column"] == "clip")
    assert clip["role"] == "embedding" and "lists of 5 numbers" in clip["reason"]
    assert got["x_shape"] == [len(E), 6]
    assert npz.json()["ingest_report"]["embeddings"]["dims"] == 5 and npz.json()["x_shape"] == [len(E), 5]
    again = tmp_path / "again.parquet"
    again.write_bytes(exported.content)
    table = pq.read_table(again)
    assert table.column("clip").to_pylist() == pq.read_table(path).column("clip").to_pylist()
    np.testing.assert_array_equal(load_dataset(again).X, load_dataset(path).X)


def _npz_bytes(E: np.ndarray, labels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, embeddings=E, y=labels)
    return buf.getvalue()


@pytest.mark.parametrize("sep", [", ", " "])  # pandas' to_csv of lists; numpy's repr of arrays
def test_a_csv_column_of_vectors_written_as_text_is_an_embedding(tmp_path: Path, sep: str) -> None:
    E, labels = vectors(d=3)
    path = tmp_path / "items.csv"
    path.write_text("vec,label\n" + "".join(f'"[{sep.join(repr(float(v)) for v in e)}]",{s}\n'
                                             for e, s in zip(E, labels)))
    ds = load_dataset(path)
    role = next(r for r in ds.report["columns"] if r["column"] == "vec")
    assert role["role"] == "embedding" and "lists of 3 numbers written as text" in role["reason"]
    np.testing.assert_array_equal(ds.X, E)
    rows = path.read_text().splitlines()
    rows[5] = rows[5].replace("[", "[1.2.3" + sep, 1)  # rows[0] is the header: data row 4
    path.write_text("\n".join(rows) + "\n")
    reject(path, "row 4, column 'vec': number 0 of the vector, '1.2.3', is not a number")


def test_json_lines_vectors_export_to_csv_and_read_back_the_same(shared_server: Server, tmp_path: Path) -> None:
    E, labels = vectors(seed=5)
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"vec": [float(v) for v in e], "size": i % 5, "label": str(s)}) + "\n"
                            for i, (e, s) in enumerate(zip(E, labels))))
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        r = c.post("/datasets", params={"filename": path.name}, content=path.read_bytes())
        assert r.status_code == 201, r.text
        exported = c.get(f"/datasets/{r.json()['dataset_id']}/export")  # a JSON Lines upload exports as CSV
        assert exported.status_code == 200, exported.text
    again = tmp_path / "items.csv"
    again.write_bytes(exported.content)
    first, second = load_dataset(path), load_dataset(again)
    roles = roles_of(second.report["columns"])
    assert roles.pop("curate_action") == "ignored" and roles == roles_of(first.report["columns"])
    assert second.feature_names == first.feature_names
    np.testing.assert_array_equal(second.X, first.X)


@pytest.mark.slow
def test_planted_flips_in_embeddings_of_ones_own_score_as_suspects_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from service.cli.main import app

    E, labels = vectors(n=200, d=8, seed=7)
    rng = np.random.default_rng(7)
    flipped = rng.choice(len(labels), size=20, replace=False)
    labels[flipped] = np.where(labels[flipped] == "a", "b", "a")
    path = tmp_path / "clip.npz"
    np.savez(path, embeddings=E, y=labels)
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()
    result = runner.invoke(app, ["score", str(path), "--members", "3", "--epochs", "6", "--no-adaboost", *data])
    assert result.exit_code == 0, result.output
    assert "embeddings: array 'embeddings', 200 vectors of 8 numbers" in result.output
    job_id = result.output.split("job ")[1].split()[0]
    out = tmp_path / "scores.jsonl"
    assert runner.invoke(app, ["export", job_id, "--format", "jsonl", "-o", str(out), *data]).exit_code == 0
    scores = np.array([json.loads(line)["mislabel_score"] for line in out.read_text().splitlines()])
    planted = np.isin(np.arange(len(labels)), flipped)
    assert scores[planted].mean() > scores[~planted].mean() + 0.2  # the flips stand out


def test_vectors_in_several_chunks_fill_one_array_and_name_rows_across_chunks() -> None:
    from service.ingest.embeddings import encode_vectors

    E, _ = vectors(n=30, d=4)
    chunks = [pa.array(E[a:b].tolist(), pa.list_(pa.float32())) for a, b in ((0, 10), (10, 11), (11, 30))]
    X, names, encoding = encode_vectors("items.jsonl", "vec", pa.chunked_array(chunks))
    np.testing.assert_array_equal(X, E)
    assert names[-1] == "vec[3]" and encoding["dims"] == 4
    rows = E.astype(np.float64).tolist()
    rows[17][2] = float("inf")
    bad = pa.chunked_array([pa.array(rows[:10]), pa.array(rows[10:])])
    with pytest.raises(InvalidDataset, match="row 17, column 'vec': number 2 of the vector is infinite"):
        encode_vectors("items.jsonl", "vec", bad)
    rows[17][2], rows[25] = 0.0, rows[25][:2]
    with pytest.raises(InvalidDataset, match="row 0 has 4 numbers, row 25 has 2"):
        encode_vectors("items.jsonl", "vec", pa.chunked_array([pa.array(rows[:10]), pa.array(rows[10:])]))
