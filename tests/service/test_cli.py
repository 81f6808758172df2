"""The curate CLI on every input format, exports, flags and errors (real engine, real DuckDB)."""

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from models.spec import TrainSpec, cpu_has_native_bf16
from service.cli.main import app, errors_line
from tests.service.conftest import digits_arrays

runner = CliRunner()
FAST = ["--members", "2", "--epochs", "2", "--no-adaboost"]


def _digits(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    return digits_arrays(n)


def _write_csv(tmp_path: Path) -> Path:
    X, y = _digits()
    table = pa.table({**{f"px{i}": X[:, i] for i in range(X.shape[1])}, "digit": [f"d{v}" for v in y]})
    path = tmp_path / "digits.csv"
    pacsv.write_csv(table, path)
    return path


def _write_parquet(tmp_path: Path) -> Path:
    X, y = _digits()
    path = tmp_path / "digits.parquet"
    pq.write_table(pa.table({**{f"px{i}": X[:, i] for i in range(X.shape[1])}, "label": y}), path)
    return path


def _write_npz(tmp_path: Path) -> Path:
    X, y = _digits()
    path = tmp_path / "digits.npz"
    np.savez(path, X=X, y=y)
    return path


def _write_image_zip(tmp_path: Path) -> Path:
    X, y = _digits(120)
    path = tmp_path / "digits.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, (x, label) in enumerate(zip(X, y)):
            img = Image.fromarray((x.reshape(8, 8) * 16).clip(0, 255).astype(np.uint8), mode="L")
            tmp = tmp_path / f"{i}.png"
            img.save(tmp)
            zf.write(tmp, f"digits/class_{label}/{i:04d}.png")
    return path


def _job_id(output: str) -> str:
    return output.split("job ")[1].split()[0]


@pytest.mark.slow
@pytest.mark.parametrize("writer,extra", [(_write_csv, ["--label-column", "digit"]), (_write_parquet, []),
                                          (_write_npz, []),
                                          (_write_image_zip, ["--set", "augment=shift_flip", "--set", "cnn_width=8"])])
def test_score_every_format(tmp_path: Path, writer, extra) -> None:  # type: ignore[no-untyped-def]
    path = writer(tmp_path)
    data = ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, ["score", str(path), *FAST, *extra, *data])
    assert result.exit_code == 0, result.output
    assert "splits: easy" in result.output and "estimated label errors" in result.output
    bf16 = ", bf16 autocast" if cpu_has_native_bf16() else ""  # a CNN on a CPU with native bf16 trains so
    said = "training 2 members x 2 epochs" + (f", CNN width 8{bf16}\n" if path.suffix == ".zip" else "\n")
    assert said in result.output  # what trains, before it starts (CliRunner mixes stderr in)
    job_id = _job_id(result.output)

    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["export", job_id, "--format", "jsonl", "-o", str(out), *data])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == (120 if path.suffix == ".zip" else 200)
    for col in ("example_id", "source", "given_label", "consistency", "consensus", "consensus_label",
                "accessibility", "split", "mislabel_score", "is_suspected_mislabel", "suggested_label"):
        assert col in rows[0]
    assert [r["example_id"] for r in rows] == list(range(len(rows)))
    assert all(r["suggested_label"] != r["given_label"] for r in rows)
    if path.suffix == ".zip":
        assert rows[0]["source"].startswith("digits/class_0/") or rows[0]["source"].startswith("class_0/")
    if path.suffix == ".csv":
        assert rows[0]["given_label"].startswith("d") and rows[0]["source"] == "row 0"


@pytest.mark.slow
def test_export_splits_flag_and_show(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, ["score", str(_write_npz(tmp_path)), *FAST, *data])
    assert result.exit_code == 0, result.output
    job_id = _job_id(result.output)
    total = 0
    for split in ("easy", "intermediate", "hard"):
        out = tmp_path / f"{split}.parquet"
        result = runner.invoke(app, ["export", job_id, "--what", split, "--format", "parquet", "-o", str(out), *data])
        assert result.exit_code == 0, result.output
        table = pq.read_table(out)
        assert set(table.column("split").to_pylist()) <= {split}
        total += table.num_rows
    assert total == 200
    out = tmp_path / "flags.csv"
    assert runner.invoke(app, ["export", job_id, "--what", "mislabeled", "-o", str(out), *data]).exit_code == 0
    flagged = pacsv.read_csv(out)
    assert all(flagged.column("is_suspected_mislabel").to_pylist())
    scores = flagged.column("mislabel_score").to_pylist()
    assert scores == sorted(scores, reverse=True)
    result = runner.invoke(app, ["flag", job_id, "--top", "3", *data])
    assert result.exit_code == 0
    assert len(result.output.strip().splitlines()) == 1 + min(3, flagged.num_rows)
    shown = runner.invoke(app, ["show", job_id, *data])
    assert shown.exit_code == 0
    # the estimated precision of the flags stands next to the count
    assert re.search(r"estimated label errors: \d+ .*estimated precision of the flags \d+%", shown.output)
    listing = runner.invoke(app, ["jobs", *data])
    assert job_id in listing.output and "succeeded" in listing.output


@pytest.mark.parametrize("args,message", [
    (["show", "nope"], "job nope not found"),
    (["export", "nope", "-o", "x.csv"], "job nope not found"),
    (["export", "nope", "-o", "x.csv", "--format", "xls"], "--format must be one of"),
    (["score", "missing.csv"], "missing.csv: does not exist"),
    (["score", "x.txt"], "unsupported"),
    (["score", "x.csv", "--members", "0"], "n_members"),
    (["score", "x.csv", "--set", "bogus=1"], "invalid settings: bogus: Extra inputs are not permitted"),
    (["score", "x.csv", "--set", "nothing"], "--set expects NAME=VALUE, got 'nothing'"),
    (["score", "x.csv", "--set", "augment=shift"], "augment=shift needs images"),
    (["score", "x.csv", "--model", "cnn"], "model=cnn needs images"),
])
def test_errors_are_one_line_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "x.txt").write_text("hello")
    (tmp_path / "x.csv").write_text("a,label\n1,x\n2,x\n3,y\n4,y\n")
    args = [a if not a.endswith((".txt", ".csv")) or a == "x.csv" and args[0] == "export" else str(tmp_path / a)
            for a in args]
    result = runner.invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_compare_prints_correlation_curves_and_plot(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    result = runner.invoke(app, ["score", str(_write_npz(tmp_path)), "--members", "2", "--epochs", "2", *data])
    assert result.exit_code == 0, result.output
    job_id = _job_id(result.output)
    png = tmp_path / "cmp.png"
    result = runner.invoke(app, ["compare", job_id, "--plot", str(png), *data])
    assert result.exit_code == 0, result.output
    assert "Spearman rho" in result.output and "t=100" in result.output and "family agreement" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_ada = runner.invoke(app, ["score", str(_write_npz(tmp_path)), *FAST, *data])
    result = runner.invoke(app, ["compare", _job_id(no_ada.output), *data])
    assert result.exit_code == 1 and "without the AdaBoost baseline" in result.output


def test_the_training_line_says_when_curate_chose_the_narrow_cnn_and_how_to_widen_it() -> None:
    from types import SimpleNamespace

    from service.cli.progress import training_line

    def line(kind: str, width: int, set_by_user: bool) -> str:
        job = SimpleNamespace(spec=TrainSpec(n_members=8, n_epochs=20, cnn_width=width))
        return training_line(job, kind, set_by_user)  # type: ignore[arg-type]

    assert line("image", 16, False) == ("training 8 members x 20 epochs, CNN width 16 (chosen for a large image set "
                                        "on a CPU: 32 is ~2.4x slower here; --set cnn_width=32 to train it)")
    assert line("image", 16, True) == "training 8 members x 20 epochs, CNN width 16"
    assert line("image", 32, False) == "training 8 members x 20 epochs, CNN width 32"
    assert line("tabular", 32, False) == "training 8 members x 20 epochs"
    bf16 = SimpleNamespace(spec=TrainSpec(n_members=8, n_epochs=20, cnn_width=32, precision="bf16"))
    assert training_line(bf16, "image", False) == "training 8 members x 20 epochs, CNN width 32, bf16 autocast"  # type: ignore[arg-type]


def test_the_count_line_warns_that_few_errors_read_high() -> None:
    """Under 10 % estimated errors the summary says how the count and the precision err there (both
    were measured to read high at 2-5 % planted noise); at 10 % and more, or with nothing flagged, it does not."""
    low = errors_line(30, 1000, 0.91)
    assert low.startswith("estimated label errors: 30 (3.0%); flagged as suspected mislabels, estimated precision of the flags 91%")
    assert "upper bound" in low and "23 points high" in low
    assert "23 points" not in errors_line(30, 1000, None) and "upper bound" in errors_line(30, 1000, None)
    assert "\n" not in errors_line(100, 1000, 0.9) and "\n" not in errors_line(0, 1000, None)


def test_score_says_when_the_low_noise_pass_ran_and_set_turns_it_off(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)  # clean wine: 13 features, few errors, a weaker row exists
    path = tmp_path / "wine.npz"
    np.savez(path, X=X.astype(np.float32), y=y)
    args = ["score", str(path), "--members", "4", "--epochs", "12", "--no-adaboost", "--data-dir", str(tmp_path / "d")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("low-noise pass:"))
    assert "trained again under weaker Jumpout (sigma 0.2, p 0.1-0.6), 2 members x 6 epochs" in line and "the mean of both" in line
    off = runner.invoke(app, [*args, "--set", "low_noise_pass_below=0"])
    assert off.exit_code == 0, off.output
    assert "low-noise pass" not in off.output
