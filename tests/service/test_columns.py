"""Mixed-type tables (issue 16, item 1): every role inferred with its reason, every override and
refusal, CSV delimiter and encoding sniffing, JSON Lines, columns.json, the roles in
GET /datasets/{id} on a real server, and one small job on a mixed CSV through the CLI."""

import json
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from service.cli.main import app
from service.errors import InvalidDataset
from service.ingest.columns import ONEHOT_MAX, encode_table, sum_by_column
from service.ingest.files import load_columns, load_table, save_dataset
from service.ingest.formats import load_dataset
from service.ingest.options import IngestOptions
from service.ingest.tables import sniff_delimiter
from tests.service.conftest import Server

WORDS = ["good", "bad", "service", "slow", "fast", "friendly", "staff", "price", "again", "never", "late", "clean"]
TFIDF = IngestOptions(embedder="tfidf")  # the always-available embedder: fast and the same on every machine


def mixed_table(n: int = 80, seed: int = 0, noise: float = 0.0) -> tuple[pa.Table, np.ndarray]:
    """A customer table whose label follows from age, region and member; a share `noise` of labels
    flipped (returned). One column of each role, with gaps in age."""
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east"], n)
    age = rng.normal(40, 8, n)
    member = rng.random(n) < 0.5
    truth = ((age > 40).astype(int) + (region == "north") + member) >= 2
    label = np.where(truth, "churn", "stay")
    flipped = rng.choice(n, size=int(round(noise * n)), replace=False)
    label[flipped] = np.where(label[flipped] == "churn", "stay", "churn")
    table = pa.table({
        "customer_id": [f"C{i:05d}" for i in range(n)],
        "row": np.arange(n),
        "age": pa.array([None if i % 10 == 3 else round(float(a), 1) for i, a in enumerate(age)]),
        "region": list(region[:-1]) + ["west"],  # west: one row, too rare for its own one-hot column
        "city": [f"city{int(c)}" for c in rng.integers(0, ONEHOT_MAX + 10, n)],
        "member": ["yes" if m else "no" for m in member],
        "joined": [f"2021-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:30:00" for i in range(n)],
        "review": [" ".join(rng.choice(WORDS, 6)) + f" visit {i}" for i in range(n)],
        "country": ["fr"] * n,
        "label": list(label),
    })  # fmt: skip
    return table, flipped


def write_mixed_csv(path: Path, n: int = 80, noise: float = 0.0, seed: int = 0) -> tuple[Path, np.ndarray]:
    table, flipped = mixed_table(n, seed, noise)
    pacsv.write_csv(table, path)
    return path, flipped


def roles_of(report: list[dict]) -> dict[str, str]:
    return {r["column"]: r["role"] for r in report}


def reject(path: Path, match: str, **options: object) -> str:
    with pytest.raises(InvalidDataset, match=match) as info:
        load_dataset(path, IngestOptions(embedder="tfidf", **options))  # type: ignore[arg-type]
    assert path.name in info.value.message
    return info.value.message


# --- roles ---------------------------------------------------------------------------------------


def test_each_role_is_inferred_with_its_reason(tmp_path: Path) -> None:
    path, _ = write_mixed_csv(tmp_path / "customers.csv")
    ds = load_dataset(path, TFIDF)
    report = {r["column"]: r for r in ds.report["columns"]}
    assert roles_of(ds.report["columns"]) == {
        "customer_id": "id", "row": "id", "age": "numeric", "region": "categorical", "city": "categorical",
        "member": "boolean", "joined": "datetime", "review": "text", "country": "constant", "label": "label",
    }  # fmt: skip
    assert "unique strings" in report["customer_id"]["reason"]
    assert "counting up by 1" in report["row"]["reason"]
    assert "8 gap(s): median-imputed" in report["age"]["reason"] and report["age"]["n_missing"] == 8
    assert "4 categories: one-hot" in report["region"]["reason"]
    assert f"over {ONEHOT_MAX}" in report["city"]["reason"] and "frequency" in report["city"]["reason"]
    assert report["member"]["reason"].startswith("yes/no")
    assert report["joined"]["reason"] == "dates and times"  # pyarrow reads ISO timestamps in a CSV
    assert "free text" in report["review"]["reason"]
    assert report["country"]["reason"] == "one value, 'fr', in every row"
    assert report["region"]["n_distinct"] == 4 and report["region"]["dtype"] == "string"
    assert ds.report["file"] == {"delimiter": ",", "encoding": "utf-8"}
    used = ["age", "region", "city", "member", "joined", "review"]
    assert sorted({f.split("=")[0].split("(")[0].split(".")[0].split("[")[0] for f in ds.feature_names}) == sorted(used)
    assert ds.X.dtype == np.float32 and np.isfinite(ds.X).all() and ds.X.shape == (80, len(ds.feature_names))
    assert ds.texts is None  # other columns are features too: the table is not a text dataset
    text_only = load_dataset(path, IngestOptions(embedder="tfidf", ignore=tuple(c for c in used if c != "review")))
    assert text_only.texts is not None and text_only.texts[5].endswith("visit 5")  # shown and exported as texts


def test_each_encoding_keeps_the_values(tmp_path: Path) -> None:
    table, _ = mixed_table()
    enc = encode_table("t.csv", table, TFIDF)
    col = {name: enc.X[:, j] for j, name in enumerate(enc.feature_names)}
    age = table.column("age").to_numpy(zero_copy_only=False)
    gaps = np.isnan(age)
    np.testing.assert_array_equal(col["age(missing)"], gaps)
    np.testing.assert_allclose(col["age"][gaps], np.median(age[~gaps]), rtol=1e-6)
    np.testing.assert_allclose(col["age"][~gaps], age[~gaps], rtol=1e-6)
    region = np.array(table.column("region").to_pylist())
    for value in ("east", "north", "south"):
        np.testing.assert_array_equal(col[f"region={value}"], region == value)
    np.testing.assert_array_equal(col["region=(other)"], region == "west")  # the rare category's bucket
    city = np.array(table.column("city").to_pylist())
    share = np.array([np.mean(city == c) for c in city])
    np.testing.assert_allclose(col["city(frequency)"], share, rtol=1e-6)
    np.testing.assert_array_equal(col["member"], np.array(table.column("member").to_pylist()) == "yes")
    assert col["joined.year"].tolist() == [2021] * 80
    np.testing.assert_array_equal(col["joined.month"], [1 + i % 12 for i in range(80)])
    np.testing.assert_array_equal(col["joined.hour"], [i % 24 for i in range(80)])
    assert set(col["joined.dayofweek"].tolist()) <= set(range(7))
    dims = [f for f in enc.feature_names if f.startswith("review[")]
    assert dims and dims == [f"review[{j}]" for j in range(len(dims))]
    assert enc.feature_column == [f.split("=")[0].split("(")[0].split(".")[0].split("[")[0] for f in enc.feature_names]
    encoding = {c["column"]: c["encoding"] for c in enc.columns_json()["columns"]}
    assert encoding["region"]["other"] == ["west"] and encoding["review"]["embedder"] == "tfidf"


def test_per_feature_values_sum_back_to_their_columns() -> None:
    table, _ = mixed_table()
    enc = encode_table("t.csv", table, TFIDF)
    values = np.arange(len(enc.feature_names), dtype=np.float64)
    sums = sum_by_column(values, enc.feature_column)
    assert list(sums) == ["age", "region", "city", "member", "joined", "review"]  # the file's order
    region = [j for j, f in enumerate(enc.feature_names) if f.startswith("region=")]
    assert sums["region"] == values[region].sum() and len(region) == 4
    assert sum(sums.values()) == values.sum()
    with pytest.raises(ValueError, match="3 values for"):
        sum_by_column(values[:3], enc.feature_column)


def test_native_types_of_parquet_and_numbers_written_as_text(tmp_path: Path) -> None:
    n = 60
    table = pa.table({
        "flag": pa.array([i % 3 == 0 if i != 4 else None for i in range(n)]),
        "day": pa.array(np.datetime64("2020-01-01") + np.arange(n).astype("timedelta64[D]")).cast(pa.date32()),
        "size": [str(i * 1.5) if i % 15 else "?" for i in range(n)],  # "?": not a number, read as a gap
        "empty": pa.nulls(n),
        "tags": pa.array([[i] for i in range(n)]),
        "label": [i % 2 for i in range(n)],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet")
    ds = load_dataset(tmp_path / "t.parquet")
    report = {r["column"]: r for r in ds.report["columns"]}
    assert roles_of(ds.report["columns"]) == {"flag": "boolean", "day": "datetime", "size": "numeric",
                                              "empty": "constant", "tags": "ignored", "label": "label"}
    assert "'?'" in report["size"]["reason"] and "type list<" in report["tags"]["reason"]
    assert report["empty"]["reason"] == "every value is missing"
    assert ds.feature_names == ["flag", "flag(missing)", "day.year", "day.month", "day.dayofweek", "size",
                                "size(missing)"]  # a date has no hour
    size = ds.X[:, ds.feature_names.index("size")]
    assert size[1] == 1.5 and size[0] == np.median([i * 1.5 for i in range(n) if i % 15])
    assert "file" not in ds.report  # the file report is the CSV's


def test_dates_in_other_formats_and_their_ambiguity(tmp_path: Path) -> None:
    days = [(1 + i % 28, 1 + i % 12) for i in range(30)]
    rows = "\n".join(f"{d:02d}/{m:02d}/2021,{d}.{m}.2022 10:{i:02d},{'xy'[i % 2]}" for i, (d, m) in enumerate(days))
    ds = load_dataset(_csv(tmp_path / "d.csv", f"slash,dot,label\n{rows}\n"))
    report = {r["column"]: r for r in ds.report["columns"]}
    assert report["slash"]["role"] == report["dot"]["role"] == "datetime"
    assert "(%d/%m/%Y)" in report["slash"]["reason"] and "(%d.%m.%Y %H:%M)" in report["dot"]["reason"]
    assert "ambiguous" not in report["slash"]["reason"]  # days over 12: only day/month reads them all
    month = ds.X[:, ds.feature_names.index("slash.month")]
    np.testing.assert_array_equal(month, [m for _, m in days])
    assert "dot.hour" in ds.feature_names and "slash.hour" not in ds.feature_names
    rows = "\n".join(f"0{1 + i % 9}/0{1 + i % 7}/2021,{'xy'[i % 2]}" for i in range(30))
    ds = load_dataset(_csv(tmp_path / "a.csv", f"when,label\n{rows}\n"))
    assert "ambiguous: read as day/month" in ds.report["columns"][0]["reason"]


def test_almost_unique_strings_are_an_identifier(tmp_path: Path) -> None:
    emails = [f"user{i % 39}@example.org" for i in range(40)]  # one repeat in 40 rows
    rows = "\n".join(f"{e},{i % 5},{'xy'[i % 2]}" for i, e in enumerate(emails))
    ds = load_dataset(_csv(tmp_path / "d.csv", f"email,a,label\n{rows}\n"))
    assert ds.report["columns"][0]["role"] == "id" and "39 distinct strings in 40 rows" in ds.report["columns"][0]["reason"]
    forced = load_dataset(tmp_path / "d.csv", IngestOptions(categorical=("email",)))
    assert forced.feature_names == ["email(frequency)", "a"]


def test_small_unique_columns_stay_features(tmp_path: Path) -> None:
    """Unique values make an id only from ID_MIN_ROWS rows on (or with an id-like name): a tiny
    table of distinct numbers is data."""
    ds = load_dataset(_csv(tmp_path / "d.csv", "a,name,label\n1,ann,x\n2,bob,y\n3,cid,x\n4,dan,y\n"))
    assert roles_of(ds.report["columns"])["a"] == "numeric"
    assert roles_of(ds.report["columns"])["name"] == "categorical"
    ds = load_dataset(_csv(tmp_path / "i.csv", "user_id,a,label\n7,1,x\n3,2,y\n9,3,x\n1,4,y\n"))
    assert roles_of(ds.report["columns"])["user_id"] == "id" and ds.feature_names == ["a"]


# --- overrides -----------------------------------------------------------------------------------


def test_overrides_categorical_ignore_and_text_column(tmp_path: Path) -> None:
    path, _ = write_mixed_csv(tmp_path / "customers.csv")
    ds = load_dataset(path, IngestOptions(embedder="tfidf", categorical=("row",), ignore=("review", "city"),
                                          text_column="region"))
    report = {r["column"]: r for r in ds.report["columns"]}
    assert (report["row"]["role"], report["review"]["role"], report["city"]["role"]) == ("categorical", "ignored",
                                                                                          "ignored")
    assert report["row"]["reason"].startswith("--categorical") and report["review"]["reason"] == "--ignore"
    assert report["region"]["role"] == "text" and report["region"]["reason"] == "--text-column"
    assert not any(f.startswith(("review", "city")) for f in ds.feature_names)
    assert "row(frequency)" in ds.feature_names  # 80 distinct values: over ONEHOT_MAX
    small = load_dataset(_csv(tmp_path / "s.csv", "grade,label\n1,x\n2,y\n1,x\n2,y\n3,x\n3,y\n"),
                         IngestOptions(categorical=("grade",)))
    assert small.feature_names == ["grade=1", "grade=2", "grade=3"]
    np.testing.assert_array_equal(small.X[:, 0], [1, 0, 1, 0, 0, 0])


# --- refusals ------------------------------------------------------------------------------------


def test_options_naming_missing_columns_are_refused_with_the_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4,y\n")
    for option, value, flag in (("ignore", ("zz",), "--ignore"), ("categorical", ("zz",), "--categorical"),
                                ("text_column", "zz", "--text-column")):
        msg = reject(path, f"{flag} names column 'zz', which the table does not have", **{option: value})
        assert "the columns are 'a', 'b', 'label'" in msg


def test_label_and_conflicting_roles_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4,y\n")
    reject(path, "--categorical names 'label', the label column", categorical=("label",))
    reject(path, "--text-column names 'label', the label column", text_column="label")
    reject(path, "column 'a' is named by both --text-column and --categorical", text_column="a", categorical=("a",))
    reject(path, "--text-column 'a' holds int64 values, not text", text_column="a")


def test_feature_names_stay_unique_when_a_column_is_named_like_a_feature(tmp_path: Path) -> None:
    ds = load_dataset(_csv(tmp_path / "d.csv", "a,a(missing),label\n1,5,x\n,6,y\n3,7,x\n4,8,y\n"))
    assert ds.feature_names == ["a", "a(missing)#2", "a(missing)"]
    np.testing.assert_array_equal(ds.X[:, 1], [0, 1, 0, 0])
    assert ds.columns is not None and ds.columns["feature_column"] == ["a", "a", "a(missing)"]


def test_categorical_on_a_list_column_is_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"tags": [[1], [2], [1], [2]], "a": [1, 2, 3, 4], "label": [0, 1, 0, 1]}), tmp_path / "t.pq")
    reject(tmp_path / "t.pq", "--categorical 'tags' holds list<element: int64> values, which cannot be categories",
           categorical=("tags",))


def test_no_usable_feature_column_says_what_each_was(tmp_path: Path) -> None:
    rows = "\n".join(f"C{i},fr,{'xy'[i % 2]}" for i in range(30))
    msg = reject(_csv(tmp_path / "d.csv", f"customer_id,country,label\n{rows}\n"), "no usable feature column")
    assert "'customer_id' is id (30 unique strings" in msg and "'country' is constant (one value, 'fr'" in msg
    reject(_csv(tmp_path / "i.csv", "a,label\n1,x\n2,y\n"), "no usable feature column: 'a' is ignored", ignore=("a",))
    wide = ",".join(f"c{j}" for j in range(25))
    msg = reject(_csv(tmp_path / "w.csv", f"{wide},label\n{','.join(['1'] * 25)},x\n{','.join(['1'] * 25)},y\n"),
                 "'c19' is constant")
    assert "'c20'" not in msg and msg.count("is constant") == 20 and "(5 more)" in msg


def test_options_that_do_not_apply_are_refused_naming_the_input_kind(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "a,label\n1,x\n2,y\n1,x\n2,y\n")
    reject(path, "--features applies to images only; this dataset is a table", features="torchvision:resnet18")
    reject(path, "resize applies to images only", resize=(2, 2))
    np.savez(tmp_path / "d.npz", X=np.ones((4, 2)), y=np.array([0, 1, 0, 1]))
    reject(tmp_path / "d.npz", "--categorical applies to table columns .*this dataset is an NPZ", categorical=("f0",))
    reject(tmp_path / "d.npz", "--text-column applies to table columns", text_column="f0")


def test_a_bad_value_still_names_row_and_column(tmp_path: Path) -> None:
    reject(_csv(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,inf,y\n"), "row 1, column 'b' is infinite")
    reject(_csv(tmp_path / "n.csv", "a,label\n1,x\n2,\n"), "row 1 has no label in column 'label'")


# --- files: delimiter, encoding, JSON Lines --------------------------------------------------------


@pytest.mark.parametrize("delimiter,named", [(";", ";"), ("\t", "tab"), ("|", "|"), (",", ",")])
def test_the_delimiter_is_sniffed_and_reported(tmp_path: Path, delimiter: str, named: str) -> None:
    rows = ["price,region,label", "1.5,north,x", "2.5,south,y", "3,north,x", "4,south,y"]
    path = _csv(tmp_path / "d.csv", "\n".join(r.replace(",", delimiter) for r in rows) + "\n")
    ds = load_dataset(path)
    assert ds.report["file"]["delimiter"] == named
    assert ds.feature_names == ["price", "region=north", "region=south"]
    np.testing.assert_array_equal(ds.X[:, 0], [1.5, 2.5, 3, 4])


def test_decimal_commas_of_a_european_spreadsheet_are_numbers(tmp_path: Path) -> None:
    ds = load_dataset(_csv(tmp_path / "d.csv", "price;qty;label\n1,5;2;x\n-2,25;3;y\n3;n/a;x\n4,0;5;y\n"))
    report = {r["column"]: r for r in ds.report["columns"]}
    assert report["price"]["role"] == "numeric" and report["price"]["reason"] == "numbers with a decimal comma"
    np.testing.assert_array_equal(ds.X[:, 0], [1.5, -2.25, 3, 4])
    assert report["qty"]["role"] == "numeric"  # "n/a" is one of pyarrow's gap spellings


def test_a_table_read_as_one_column_hints_at_its_delimiter(tmp_path: Path) -> None:
    reject(_csv(tmp_path / "d.csv", "a:b:label\n1:2:x\n3:4:y\n"), "no label column 'label'; the columns are "
           "'a:b:label' \\(the header 'a:b:label' holds ':': is that the delimiter\\?\\)")


def test_sniffing_a_single_column_and_a_sample_cut_mid_line() -> None:
    assert sniff_delimiter("label\nx\ny\n") == ","
    assert sniff_delimiter("a;b;label\n1;2;x\n3;4;y\n5;6") == ";"
    assert sniff_delimiter('a,"b;c",label\n1,"x;y",z\n2,"p;q",w\n') == ","  # a quoted ; is not the delimiter


@pytest.mark.parametrize("encoding,raw,reported", [
    ("utf-8-sig", "café", "utf-8-sig"),  # a UTF-8 byte-order mark, as Excel writes
    ("cp1252", "café €", "cp1252"),  # a Windows file
    ("latin-1", "café \x81", "latin-1"),  # 0x81 is not cp1252: Latin-1 reads any byte
])
def test_the_encoding_is_detected_and_accents_survive(tmp_path: Path, encoding: str, raw: str, reported: str) -> None:
    text = f"city;n;label\n{raw};1;x\nparis;2;y\n{raw};3;x\nparis;4;y\n"
    path = tmp_path / "d.csv"
    path.write_bytes(text.encode(encoding))
    ds = load_dataset(path)
    assert ds.report["file"] == {"delimiter": ";", "encoding": reported}
    assert ds.feature_names[0] == f"city={raw}" and ds.X[:, 0].tolist() == [1, 0, 1, 0]
    assert roles_of(ds.report["columns"]) == {"city": "categorical", "n": "numeric", "label": "label"}


def test_a_header_in_cp1252_and_a_utf16_file_from_excel(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_bytes("Größe;label\n1;x\n2;y\n1;x\n2;y\n".encode("cp1252"))
    ds = load_dataset(tmp_path / "h.csv")
    assert ds.feature_names == ["Größe"] and ds.report["file"] == {"delimiter": ";", "encoding": "cp1252"}
    (tmp_path / "u.csv").write_text("città\tlabel\nmilano\tx\nroma\ty\nmilano\tx\nroma\ty\n", encoding="utf-16")
    ds = load_dataset(tmp_path / "u.csv")
    assert ds.feature_names == ["città=milano", "città=roma"]
    assert ds.report["file"] == {"delimiter": "tab", "encoding": "utf-16"}
    ds = load_dataset(_csv(tmp_path / "e.csv", "a,,label\n1,2,x\n2,3,y\n1,2,x\n2,4,y\n"))  # a nameless column
    assert ds.report["file"]["encoding"] == "utf-8" and len(ds.feature_names) == 2


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson"])
def test_json_lines_is_a_table_format(tmp_path: Path, suffix: str) -> None:
    table, _ = mixed_table(40)
    path = tmp_path / f"d{suffix}"
    path.write_text("\n".join(json.dumps(row) for row in table.to_pylist()) + "\n", encoding="utf-8")
    ds = load_dataset(path, TFIDF)
    assert roles_of(ds.report["columns"])["region"] == "categorical"
    assert roles_of(ds.report["columns"])["joined"] == "datetime"  # pyarrow reads ISO strings as timestamps
    assert ds.class_names == ["churn", "stay"] and len(ds.y) == 40
    bad = tmp_path / f"bad{suffix}"
    bad.write_text('{"a": 1, "label": "x"}\n{"a": 2, "label": \n')
    reject(bad, "cannot parse the JSON Lines")
    bad.write_text('[{"a": 1, "label": "x"},\n {"a": 2, "label": "y"}]\n')
    reject(bad, "a JSON array, not JSON Lines; write one JSON object per line")
    bom = tmp_path / f"bom{suffix}"
    bom.write_bytes(b"\xef\xbb\xbf" + "\n".join(json.dumps({"a": i % 3, "label": "xy"[i % 2]}) for i in range(6)).encode())
    assert load_dataset(bom).feature_names == ["a"]


def test_a_json_key_of_numbers_and_strings_is_read_not_refused(tmp_path: Path) -> None:
    """pyarrow refuses a key whose JSON type changes; such a key is read as text, and mostly numbers
    stay numbers (the strings become gaps)."""
    rows = [{"size": i * 0.5 if i % 10 else "unknown", "label": "xy"[i % 2]} for i in range(40)]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.report["columns"][0]["role"] == "numeric" and "'unknown'" in ds.report["columns"][0]["reason"]
    assert ds.feature_names == ["size", "size(missing)"] and ds.X[1, 0] == 0.5 and ds.X[10, 1] == 1
    path.write_text('{"size": 1, "label": "x"}\n{"size": "a", "label": "y"}\n[1, 2]\n')
    reject(path, "row 2 \\(line 3\\) is a JSON list, not an object")


def test_columns_json_is_saved_with_the_dataset(tmp_path: Path) -> None:
    path, _ = write_mixed_csv(tmp_path / "customers.csv", n=40)
    loaded = load_dataset(path, TFIDF)
    save_dataset(loaded, tmp_path / "datasets", "mixed", "customers", "csv")
    saved = load_columns(tmp_path / "datasets", "mixed")
    assert saved is not None and saved["feature_names"] == loaded.feature_names
    assert len(saved["feature_column"]) == loaded.X.shape[1]
    region = next(c for c in saved["columns"] if c["column"] == "region")
    assert region["encoding"]["method"] == "one-hot" and region["features"][-1] == "region=(other)"
    assert saved["feature_column"][loaded.feature_names.index("region=(other)")] == "region"
    table = load_table(tmp_path / "datasets", "mixed", ids=[3, 0])  # the columns as read, for exports
    assert table is not None and table.column_names == mixed_table(40)[0].column_names
    assert table.column("region").to_pylist() == [mixed_table(40)[0].column("region")[i].as_py() for i in (3, 0)]


# --- through the service -------------------------------------------------------------------------


def test_the_roles_are_in_get_dataset_on_a_real_server(shared_server: Server, tmp_path: Path) -> None:
    path, _ = write_mixed_csv(tmp_path / "customers.csv", n=40)
    text = path.read_text().replace(",", ";")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        r = c.post("/datasets", params={"filename": path.name, "ignore": "city", "embedder": "tfidf"},
                   content=path.read_bytes())
        assert r.status_code == 201, r.text
        got = c.get(f"/datasets/{r.json()['dataset_id']}").json()
    report = got["ingest_report"]
    assert report["file"] == {"delimiter": ";", "encoding": "utf-8-sig"}
    assert roles_of(report["columns"])["city"] == "ignored" and roles_of(report["columns"])["region"] == "categorical"
    n_features = sum(r["n_features"] for r in report["columns"])
    assert got["x_shape"] == [40, n_features] and got["n_examples"] == 40
    assert next(r for r in report["columns"] if r["column"] == "age")["n_features"] == 2  # value + missing


@pytest.mark.slow
def test_a_mixed_csv_scores_end_to_end_from_the_cli(tmp_path: Path) -> None:
    path, flipped = write_mixed_csv(tmp_path / "customers.csv", n=300, noise=0.1, seed=1)
    data = ["--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(app, ["score", str(path), "--members", "2", "--epochs", "2", "--no-adaboost",
                                      "--embedder", "tfidf", *data])
    assert result.exit_code == 0, result.output
    assert "estimated label errors" in result.output
    job_id = result.output.split("job ")[1].split()[0]
    out = tmp_path / "scores.jsonl"
    assert CliRunner().invoke(app, ["export", job_id, "--format", "jsonl", "-o", str(out), *data]).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 300 and rows[0]["source"] == "row 0"
    flagged = {r["example_id"] for r in rows if r["is_suspected_mislabel"]}
    assert flagged, "the job flagged no row"
    scores = np.array([r["mislabel_score"] for r in rows])
    planted = np.isin(np.arange(300), flipped)
    assert scores[planted].mean() > scores[~planted].mean()  # planted flips score as more suspect


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
