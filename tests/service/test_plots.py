"""service/web/plots.py: real PNGs on disk, clear errors on bad input."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.web.plots import plot_adaboost_curves, plot_dynamics

CORRELATION = {"pearson_r": 0.81, "pearson_p": 1e-20, "spearman_r": 0.4, "spearman_p": 3e-6,
               "pearson_r_sd": 0.02, "spearman_r_sd": 0.05, "n_examples": 569}


def _curves(n_stages: int = 30) -> dict[str, list[float]]:
    t = np.arange(1, n_stages + 1)
    return {"easy": list(1 - 0.5 * np.exp(-t / 3)),
            "intermediate": list(0.9 - 0.7 * np.exp(-t / 10)),
            "hard": list(0.4 * (1 - np.exp(-t / 20)))}


def _histograms(n_epochs: int = 6, n_bins: int = 20, n_examples: int = 100) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for e in range(n_epochs):
        cons = rng.multinomial(n_examples, np.full(n_bins, 1 / n_bins))
        agree = rng.multinomial(n_examples, np.linspace(0.0, 1.0, n_bins) / np.linspace(0.0, 1.0, n_bins).sum())
        out.append({"epoch": e, "consistency": cons.tolist(), "consensus": agree.tolist()})
    return out


def _assert_png(path: Path, min_width: int, min_height: int) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
    assert not list(path.parent.glob("*.tmp")), "the temporary file must be renamed away"


def test_adaboost_curves_png(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "curves.png"
    out = plot_adaboost_curves(_curves(), CORRELATION, target, "digits, stumps",
                               group_sizes={"easy": 500, "intermediate": 40, "hard": 3})
    assert out == target
    _assert_png(out, 600, 400)


def test_adaboost_curves_empty_group_and_nan_correlation(tmp_path: Path) -> None:
    curves = _curves(10)
    curves["hard"] = [math.nan] * 10  # a split with no examples
    correlation = {"pearson_r": math.nan, "spearman_r": math.nan}
    _assert_png(plot_adaboost_curves(curves, correlation, tmp_path / "c.png", "t"), 600, 400)


def test_adaboost_curves_overwrites_atomically(tmp_path: Path) -> None:
    target = tmp_path / "c.png"
    target.write_bytes(b"old")
    plot_adaboost_curves(_curves(5), CORRELATION, target, "t")
    _assert_png(target, 600, 400)


@pytest.mark.parametrize(
    ("curves", "correlation", "message"),
    [
        ({}, CORRELATION, "curves is empty"),
        ({"easy": [1.0, 1.0], "hard": [0.0]}, CORRELATION, "same length"),
        ({"easy": []}, CORRELATION, "non-empty"),
        ({"easy": [0.5, 1.5]}, CORRELATION, r"\[0, 1\]"),
        (_curves(5), {"pearson_r": 0.5}, "spearman_r"),
    ],
)
def test_adaboost_curves_bad_input(tmp_path: Path, curves: dict, correlation: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_adaboost_curves(curves, correlation, tmp_path / "bad.png", "t")
    assert not (tmp_path / "bad.png").exists()


def test_dynamics_png(tmp_path: Path) -> None:
    hist = _histograms()
    hist.reverse()  # any order is fine
    out = plot_dynamics(hist, tmp_path / "dyn.png", "digits, 8 members")
    assert out == tmp_path / "dyn.png"
    _assert_png(out, 900, 400)


def test_dynamics_uneven_epochs_and_single_epoch(tmp_path: Path) -> None:
    hist = _histograms(4)
    for entry, epoch in zip(hist, (0, 1, 5, 20)):
        entry["epoch"] = epoch
    _assert_png(plot_dynamics(hist, tmp_path / "a.png", "t"), 900, 400)
    _assert_png(plot_dynamics(hist[:1], tmp_path / "b.png", "t"), 900, 400)


def _with(entry_update: dict) -> list[dict]:
    hist = _histograms(3)
    hist[1] = {**hist[1], **entry_update}
    return hist


@pytest.mark.parametrize(
    ("histograms", "message"),
    [
        ([], "histograms is empty"),
        (_with({"consistency": [1] * 10}), "same number of bins"),
        (_with({"epoch": 0}), "distinct"),
        (_with({"consensus": [0] * 20}), "no examples"),
        (_with({"consistency": [-1] + [5] * 19}), ">= 0"),
        ([{"epoch": 0, "consistency": [1] * 20}], "lacks keys"),
    ],
)
def test_dynamics_bad_input(tmp_path: Path, histograms: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_dynamics(histograms, tmp_path / "bad.png", "t")
    assert not (tmp_path / "bad.png").exists()


def test_plots_do_not_import_torch() -> None:
    code = "import sys, service.web.plots; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0
