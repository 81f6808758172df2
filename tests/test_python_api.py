"""`import curate` in-process: score arrays / DataFrames with the same engine as the CLI, read the
Result, run the curation loop, and the example script the README points to."""

import inspect
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.datasets import load_digits

import curate
from curate.session import close
from service.read.queries import SCORE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"members": 2, "epochs": 3, "hidden_units": 32, "batch_size": 64, "adaboost": False, "progress": False}


def _digits(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:n].astype(np.float32), y[:n]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("api") / "data"
    X, y = _digits()
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])]).assign(digit=y)
    result = curate.score(frame, label="digit", data_dir=data_dir, **SMALL)
    yield result, data_dir
    close(data_dir)


def test_public_api_is_typed_and_documented() -> None:
    """Every public function and method of ours in curate.__all__ has a docstring or is a plain
    accessor, and annotates every parameter and its return."""
    ours = [getattr(curate, n) for n in curate.__all__ if getattr(getattr(curate, n), "__module__", "").startswith(
        ("curate", "service.cli.client"))]
    assert {o.__name__ for o in ours} >= {"score", "load", "close", "Result", "Recorder", "Client", "CurateError"}
    for obj in ours:
        assert obj.__doc__, obj
        members = [obj] if inspect.isfunction(obj) else [
            m for name, m in vars(obj).items() if inspect.isfunction(m) and (not name.startswith("_") or name == "__init__")]
        for fn in members:
            hints = typing.get_type_hints(fn)
            params = [p for p in inspect.signature(fn).parameters if p not in ("self", "args", "kwargs")]
            assert set(params) <= set(hints) and "return" in hints, fn.__qualname__


@pytest.mark.slow
def test_score_a_dataframe_and_read_the_result(scored) -> None:
    result, data_dir = scored
    scores = result.scores
    assert list(scores.columns) == list(SCORE_COLUMNS) and len(scores) == 300
    assert scores["example_id"].tolist() == list(range(300))
    flagged = result.mislabeled()
    assert flagged["is_suspected_mislabel"].all() and flagged["mislabel_score"].is_monotonic_decreasing
    assert len(flagged) == result.job.estimated_n_errors
    hard = result.split("hard")
    assert (hard["split"] == "hard").all() and len(hard) == result.summary["split_counts"]["hard"]
    dynamics = result.dynamics
    assert sorted(dynamics["epoch"].unique()) == [0, 1, 2, 3]
    assert (dynamics.groupby("epoch")["consistency"].sum() == 300).all()
    assert isinstance(result.plot_dynamics(), Figure)
    explained = result.explain(int(flagged["example_id"].iloc[0]))
    assert explained.logit == pytest.approx(explained.gradient_term + explained.bias_term, abs=1e-3)
    out = result.export(data_dir.parent / "flagged.csv", what="mislabeled")
    assert pd.read_csv(out)["example_id"].tolist() == flagged["example_id"].tolist()
    # the same job seen from a fresh Result, as the CLI would see it
    again = curate.load(result.job_id, data_dir)
    assert again.scores.equals(scores)


@pytest.mark.slow
def test_the_curation_loop_from_python(scored) -> None:
    result, data_dir = scored
    first = int(result.mislabeled()["example_id"].iloc[0])
    assert result.review(first, "keep").counts["keep"] == 1
    assert result.accept_suggested(top=3).n_applied >= 2
    version = result.apply()
    assert version.parent_id == result.dataset_id and version.version == 1
    rescored = curate.score(version.dataset_id, data_dir=data_dir, **SMALL)
    diff = result.diff(rescored)
    assert diff.job_b == rescored.job_id and diff.relabelled == version.applied["relabel"]


def test_bad_input_is_one_error_type_naming_the_problem(tmp_path: Path) -> None:
    X, y = _digits(50)
    cases = [
        (lambda: curate.score(X, y, data_dir=tmp_path, n_hiden_units=3), "invalid_spec", "n_hiden_units"),
        (lambda: curate.score(X, y[:10], data_dir=tmp_path), "invalid_dataset", r"y has shape \(10,\)"),
        (lambda: curate.score(pd.DataFrame(X), data_dir=tmp_path), "invalid_dataset", "no column 'label'"),
        (lambda: curate.score(tmp_path / "missing.csv", data_dir=tmp_path), "invalid_dataset", "no such file"),
        (lambda: curate.score({"X": X}, data_dir=tmp_path), "invalid_dataset", "cannot score dict"),
        (lambda: curate.score("0123456789ab", data_dir=tmp_path), "not_found", "dataset 0123456789ab not found"),
        (lambda: curate.load("nope", tmp_path), "not_found", "job nope not found"),
    ]
    try:
        for call, code, message in cases:
            with pytest.raises(curate.CurateError, match=message) as caught:
                call()
            assert caught.value.code == code
    finally:
        close(tmp_path)


@pytest.mark.slow
def test_the_example_script_runs(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CURATE_TORCH_THREADS": "1", "CURATE_EXPLAIN_MAX_EXAMPLES": "0",
           "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "examples/python_api.py", "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "curate.score: 300 examples" in run.stdout and "curate.Recorder (one MLP" in run.stdout
    assert "estimated errors" in run.stdout.splitlines()[-1]
