"""The curation loop from the CLI: score -> flag -> review / accept -> apply -> score --dataset -> diff,
in-process, and the same reads through a server on the same data directory (same output)."""

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from service.cli.main import app
from tests.service.conftest import Server, digits_npz

runner = CliRunner()
FAST = ["--members", "2", "--epochs", "3", "--no-adaboost", "--set", "hidden_units=32"]


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _fails(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.output.splitlines()[-1].startswith("error: ")
    return result.output


def _job_id(output: str) -> str:
    return output.split("job ")[1].split()[0]


@pytest.mark.slow  # two trainings and a server: ~8 s
def test_the_whole_loop_without_leaving_the_cli(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_EXPLAIN_MAX_EXAMPLES", "0")
    data = ["--data-dir", str(tmp_path / "data")]
    path, _ = digits_npz(tmp_path / "d.npz", noise=0.1)
    job_a = _job_id(_ok("score", str(path), *FAST, *data))
    assert len(_ok("flag", job_a, "--top", "3", *data).splitlines()) == 4
    _ok("export", job_a, "--what", "mislabeled", "-o", str(tmp_path / "flagged.csv"), *data)
    flagged = pacsv.read_csv(tmp_path / "flagged.csv").to_pylist()  # worst first
    worst = [str(flagged[0][k]) for k in ("example_id", "source", "given_label", "suggested_label")]
    assert "reused" in _ok("score", str(path), *FAST, *data)  # the same file again: its dataset is reused
    assert "now relabel 1, keep 0, exclude 0" in _ok("review", job_a, worst[0], "--relabel", worst[3], "--note",
                                                      "clearly", *data)
    _ok("review", job_a, str(flagged[1]["example_id"]), "--exclude", *data)
    out = _ok("review", job_a, "--accept-suggested", "--top", "3", *data)
    assert "1 decision(s) stored" in out  # the top 3 minus the two decided by hand
    listing = _ok("reviews", job_a, *data).splitlines()
    assert listing[0].split()[:2] == ["example_id", "source"] and len(listing) == 4
    assert [worst[0], "index", worst[0], worst[2], "relabel", worst[3], "local", "clearly"] in [
        line.split() for line in listing]  # rich prints the tabs as spaces
    assert len(_ok("reviews", job_a, "--action", "exclude", *data).splitlines()) == 2
    applied = _ok("apply", job_a, "-o", str(tmp_path / "v.csv"), "--format", "csv", *data).splitlines()
    assert applied[-1].startswith("dataset ") and "applied relabel 2, keep 0, exclude 1" in applied[0]
    version = applied[-1].split()[1]
    table = pacsv.read_csv(tmp_path / "v.csv")
    assert table.num_rows == 299 and table.column("curate_action").to_pylist().count("relabel") == 2
    job_b = _job_id(_ok("score", "--dataset", version, *FAST, *data))
    diff = _ok("diff", job_a, job_b, *data)
    assert "relabelled 2, excluded 1" in diff and "suspects: resolved" in diff and "per class" in diff
    datasets = _ok("datasets", *data)
    assert version in datasets and datasets.count("tabular") == 2
    with_server(tmp_path / "data", [("reviews", job_a), ("diff", job_a, job_b), ("datasets",)],
                writes=lambda url: remote_writes(url, job_a, flagged, tmp_path))
    assert "has 1 version(s) made from it" in _fails("datasets", "rm", _root(datasets), *data)
    assert "removed dataset" in _ok("datasets", "rm", version, *data)  # a version goes alone; its parent stays
    assert job_a in _ok("jobs", *data)
    assert "example 99999 not found" in _fails("review", job_a, "99999", "--keep", *data)
    assert "exactly one of --relabel" in _fails("review", job_a, "5", *data)
    assert "exactly one of --top K or --min-score S" in _fails("review", job_a, "--accept-suggested", *data)
    assert "job nope not found" in _fails("apply", "nope", *data)
    assert "give a PATH" in _fails("score", *data)
    _ok("apply", job_a, *data)
    assert "and its versions" in _ok("datasets", "rm", _root(datasets), "--tree", *data)
    assert "tabular" not in _ok("datasets", *data) and job_a not in _ok("jobs", *data)


def _root(datasets_listing: str) -> str:
    """The id of the dataset without a parent in a `curate datasets` table."""
    rows = [line for line in datasets_listing.splitlines() if "tabular" in line]
    return next(line.split("│")[1].strip() for line in rows if line.split("│")[6].strip() == "-")


def with_server(data_dir: Path, commands: list[tuple[str, ...]], writes=None) -> None:  # type: ignore[no-untyped-def]
    """Each read command prints the same in-process and through a server on the same data directory;
    then `writes(url)` runs commands that change things through that server."""
    local = {c: _ok(*c, "--data-dir", str(data_dir)) for c in commands}
    server = Server(data_dir).start()
    try:
        for command, expected in local.items():
            assert _ok(*command, "--url", server.url) == expected, command
        if writes is not None:
            writes(server.url)
    finally:
        server.stop()


def remote_writes(url: str, job_id: str, flagged: list[dict], tmp_path: Path) -> None:
    """review, apply -o and datasets rm through the server."""
    example = str(flagged[2]["example_id"])
    assert "1 decision(s) stored" in _ok("review", job_id, example, "--keep", "--url", url)
    assert "error: example 99999 not found" in _fails("review", job_id, "99999", "--keep", "--url", url)
    applied = _ok("apply", job_id, "-o", str(tmp_path / "remote.npz"), "--url", url).splitlines()
    with np.load(tmp_path / "remote.npz") as f:
        assert len(f["y"]) == int(applied[0].split(": ")[1].split()[0])
    assert _ok("review", job_id, example, "--clear", "--url", url)
    assert "removed dataset" in _ok("datasets", "rm", applied[-1].split()[1], "--url", url)


def test_a_job_refused_at_submission_leaves_no_dataset_behind(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    X = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.savez(tmp_path / "t.npz", X=X, y=np.arange(20) % 2)
    assert "model=cnn needs images; dataset" in _fails("score", str(tmp_path / "t.npz"), "--model", "cnn", *data)
    assert "was not kept" in _fails("score", str(tmp_path / "t.npz"), "--set", "augment=shift", *data)
    assert "tabular" not in _ok("datasets", *data)
    assert not list((tmp_path / "data" / "datasets").iterdir())
