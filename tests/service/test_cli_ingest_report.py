"""`curate score` says how the file was read before it trains (issue 16): the CSV's delimiter and
encoding, the columns as role counts with each column left out and why, the images' resize, the
text embedder, embeddings of one's own. Real engine, real DuckDB, real files."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from service.cli.main import app
from service.ingest.formats import load_dataset
from service.read.ingest_report import MAX_LEFT_OUT, describe_columns, describe_ingest
from tests.service.test_columns import TFIDF, write_mixed_csv
from tests.service.test_embeddings import vectors

runner = CliRunner()
FAST = ["--members", "1", "--epochs", "1", "--no-adaboost"]


def score(tmp_path: Path, path: Path, *extra: str) -> str:
    result = runner.invoke(app, ["score", str(path), *FAST, *extra, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    return result.output


def before_training(output: str, line: str) -> None:
    """`line` is printed, and before the summary of the trained job."""
    assert f"  {line}\n" in output, output
    assert output.index(line) < output.index("estimated label errors")


@pytest.mark.slow
def test_a_mixed_csv_is_described_before_training(tmp_path: Path) -> None:
    path, _ = write_mixed_csv(tmp_path / "customers.csv", n=60)
    path.write_text(path.read_text().replace(",", ";"))
    output = score(tmp_path, path, "--embedder", "tfidf")
    report = load_dataset(path, TFIDF).report
    file_line, columns_line = describe_ingest(report)
    assert file_line == "file: delimiter ';', encoding utf-8"
    before_training(output, file_line)
    before_training(output, columns_line)
    n_features = sum(c["n_features"] for c in report["columns"])  # type: ignore[union-attr]
    assert f"1 text (embedder tfidf) -> {n_features} features; label 'label'" in columns_line
    assert "'customer_id' (id: " in columns_line and "'country' (constant: one value, 'fr', in every row)" in columns_line


@pytest.mark.slow
def test_images_say_their_size_and_channels(tmp_path: Path) -> None:
    path = tmp_path / "shapes.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(12):
            png = tmp_path / f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8), mode="L").save(png)
            zf.write(png, f"{'ab'[i % 2]}/{i}.png")
    before_training(score(tmp_path, path), "images: 12 images, all images are 6x6; kept as they are; "
                                           "all images are grey")


@pytest.mark.slow
def test_embeddings_of_ones_own_are_said(tmp_path: Path) -> None:
    E, labels = vectors(n=40, d=5)
    path = tmp_path / "clip.npz"
    np.savez(path, embeddings=E, y=labels)
    before_training(score(tmp_path, path), "embeddings: array 'embeddings', 40 vectors of 5 numbers, "
                                           "taken as features")


def test_many_left_out_columns_are_counted_not_listed() -> None:
    columns = [{"column": f"c{i}", "role": "constant", "reason": "one value, 0, in every row", "n_features": 0}
               for i in range(MAX_LEFT_OUT + 3)]
    columns += [{"column": "x", "role": "numeric", "reason": "numbers", "n_features": 1},
                {"column": "y", "role": "label", "reason": "the label column", "n_features": 0}]
    line = describe_columns(columns)
    assert line.startswith("columns: 1 numeric -> 1 features; label 'y'; left out: 'c0' (constant: ")
    assert line.endswith(", ... (3 more)") and f"'c{MAX_LEFT_OUT - 1}'" in line and f"'c{MAX_LEFT_OUT}'" not in line


def test_an_unknown_reader_is_said_as_its_fields() -> None:
    assert describe_ingest({"audio": {"n_clips": 3, "rate": 16000}}) == ["audio: n_clips 3, rate 16000"]


def test_columns_with_gaps_are_named_with_what_was_done() -> None:
    """A typo in a numeric column becomes a gap; the terminal line names the column, the value and the
    imputation, so a user sees it before training (columns without gaps are not listed)."""
    columns = [{"column": "alcohol", "role": "numeric", "n_features": 2,
                "reason": "numbers; 1 gap(s): median-imputed, plus a missing indicator"},
               {"column": "ash", "role": "numeric", "n_features": 2,
                "reason": "numbers written as text; 1 other value(s) ('abc') read as gaps: median-imputed, plus a "
                          "missing indicator"},
               {"column": "hue", "role": "numeric", "reason": "numbers", "n_features": 1},
               {"column": "label", "role": "label", "reason": "the label column", "n_features": 0}]
    line = describe_columns(columns)
    assert line.startswith("columns: 3 numeric -> 5 features; label 'label'; gaps: ")
    assert "'alcohol' (1 gap(s): median-imputed, plus a missing indicator)" in line
    assert "'ash' (1 other value(s) ('abc') read as gaps: median-imputed, plus a missing indicator)" in line
    assert "'hue'" not in line


@pytest.mark.slow
def test_a_typo_in_a_numeric_column_is_said_before_training(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["x,y,label"] + [f"{rng.normal():.3f},{rng.normal():.3f},{'ab'[i % 2]}" for i in range(40)]
    rows[8] = "abc,0.5,a"
    path = tmp_path / "typo.csv"
    path.write_text("\n".join(rows) + "\n")
    output = score(tmp_path, path)
    assert "gaps: 'x' (1 other value(s) ('abc') read as gaps: median-imputed, plus a missing indicator)" in output


def test_images_left_out_by_skip_unreadable_are_named_then_counted() -> None:
    files = [{"file": f"a/{i}.png", "why": "cannot read image"} for i in range(MAX_LEFT_OUT + 2)]
    (line,) = describe_ingest({"images": {"n_images": 40, "why": "all images are 6x6; kept as they are",
                                          "channels_why": "all images are grey",
                                          "skipped": {"n": MAX_LEFT_OUT + 5, "files": files}}})
    assert line.startswith("images: 40 images, all images are 6x6; kept as they are; all images are grey; "
                           f"left out {MAX_LEFT_OUT + 5} unreadable file(s) (--skip-unreadable): 'a/0.png', ")
    assert line.endswith(f"'a/{MAX_LEFT_OUT - 1}.png', ... (5 more)") and f"'a/{MAX_LEFT_OUT}.png'" not in line
