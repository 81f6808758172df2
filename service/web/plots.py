"""Figures for reports and the web UI: AdaBoost accuracy per split, and learning dynamics.

Matplotlib through its object API (`Figure` rendered by the Agg canvas), never `pyplot`, so
nothing global is touched and no display is needed. No torch. Each function checks its input,
writes a PNG atomically (`<name>.tmp` in the same folder, then a rename, so a reader never sees
half a file) and returns the path it wrote.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from service.fsutil import atomic_path

SPLIT_COLOURS = {"easy": "tab:green", "intermediate": "tab:orange", "hard": "tab:red"}
DPI = 100


def plot_adaboost_curves(
    curves: Mapping[str, Sequence[float]],  # split name -> (n_stages,) accuracy in [0, 1]
    correlation: Mapping[str, float],  # pearson_r, spearman_r; optional *_p, *_sd, n_examples
    path: Path,
    title: str,
    *,
    group_sizes: Mapping[str, int] | None = None,  # split name -> n_examples, shown in the legend
) -> Path:
    """AdaBoost accuracy against the number of weak learners, one line per split.

    `curves[g][t]` is the accuracy of the boosted classifier after t + 1 rounds on the examples
    of split g (easy / intermediate / hard by the ensemble); an all-NaN curve is a split without
    examples and is listed in the legend but not drawn. `correlation` needs `pearson_r` and
    `spearman_r`; `pearson_p`, `spearman_p`, `pearson_r_sd`, `spearman_r_sd` and `n_examples`
    are shown when present. Returns `path`.
    """
    arrays = _check_curves(curves)
    text = _correlation_text(correlation)
    fig = Figure(figsize=(7.0, 4.5), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, values in arrays.items():
        label = name if group_sizes is None or name not in group_sizes else f"{name} (n={group_sizes[name]})"
        if np.isnan(values).all():
            ax.plot([], [], color=SPLIT_COLOURS.get(name), label=f"{label}: no examples")
            continue
        rounds = np.arange(1, values.size + 1)
        ax.plot(rounds, values, color=SPLIT_COLOURS.get(name), label=label, linewidth=1.8)
    ax.set_xlabel("number of weak learners (boosting rounds)")
    ax.set_ylabel("AdaBoost accuracy on the split")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(title=text, loc="lower right", fontsize=8, title_fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save_png(fig, path)


def plot_dynamics(
    histograms: Sequence[Mapping[str, object]],  # [{"epoch": e, "consistency": [...], "consensus": [...]}]
    path: Path,
    title: str,
) -> Path:
    """Heatmaps of the consistency and consensus histograms over training, side by side.

    Each entry holds one epoch's counts of examples per bin (equal-width bins over [0, 1], the
    same number of bins in every entry, 20 by convention). x = epoch, y = bin, colour = share of
    that epoch's examples in the bin. Epochs may come in any order but must be distinct.
    Returns `path`.
    """
    epochs, shares = _check_histograms(histograms)
    order = np.argsort(epochs)
    epochs = epochs[order]
    x_edges = _epoch_edges(epochs)
    fig = Figure(figsize=(11.0, 4.5), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    vmax = max(float(s.max()) for s in shares.values()) or 1.0
    mesh = None
    for ax, (name, share) in zip(axes, shares.items()):
        share = share[order]  # (n_epochs, n_bins)
        y_edges = np.linspace(0.0, 1.0, share.shape[1] + 1)
        mesh = ax.pcolormesh(x_edges, y_edges, share.T, cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_xlabel("epoch")
        ax.set_title(name)
    axes[0].set_ylabel("score (bins over [0, 1])")
    fig.colorbar(mesh, ax=list(axes), label="share of examples")
    fig.suptitle(title, fontsize=10)
    return _save_png(fig, path)


# --- checks ----------------------------------------------------------------------------


def _check_curves(curves: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    if not curves:
        raise ValueError("curves is empty: need at least one split name -> accuracy curve")
    arrays: dict[str, np.ndarray] = {}
    for name, values in curves.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"curve {name!r} must be a non-empty 1-D list of accuracies, got shape {arr.shape}")
        finite = arr[~np.isnan(arr)]
        if finite.size and (np.isinf(finite).any() or finite.min() < 0.0 or finite.max() > 1.0):
            raise ValueError(f"curve {name!r} must lie in [0, 1] (NaN allowed), got range "
                             f"[{finite.min()}, {finite.max()}]")
        arrays[name] = arr
    lengths = {name: arr.size for name, arr in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"curves must all have the same length (one value per boosting round), got {lengths}")
    return arrays


def _correlation_text(correlation: Mapping[str, float | None]) -> str:
    missing = [key for key in ("pearson_r", "spearman_r") if key not in correlation]
    if missing:
        raise ValueError(f"correlation lacks {missing}; expected keys pearson_r and spearman_r "
                         "(optional: pearson_p, spearman_p, pearson_r_sd, spearman_r_sd, n_examples)")
    parts = []
    for key, symbol in (("pearson", "Pearson r"), ("spearman", "Spearman ρ")):
        part = f"{symbol} = {_number(correlation[f'{key}_r'], '.2f')}"
        if f"{key}_r_sd" in correlation:
            part += f" ± {_number(correlation[f'{key}_r_sd'], '.2f')}"
        p_value = correlation.get(f"{key}_p")
        if p_value is not None:  # None or NaN: a constant difficulty, no p-value to show
            part += " (p < 1e-300)" if float(p_value) == 0.0 else f" (p = {_number(p_value, '.1e')})"
        parts.append(part)
    if "n_examples" in correlation:
        parts.append(f"n = {int(correlation['n_examples'])}")
    return "\n".join(parts)


def _number(value: float | None, spec: str) -> str:
    """`value` formatted, "n/a" for None (a null in the job's JSON: a constant difficulty has no
    correlation) or NaN."""
    if value is None:
        return "n/a"
    value = float(value)
    return "n/a" if math.isnan(value) else format(value, spec)


def _check_histograms(histograms: Sequence[Mapping[str, object]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not histograms:
        raise ValueError("histograms is empty: need one {'epoch', 'consistency', 'consensus'} entry per epoch")
    epochs: list[int] = []
    counts: dict[str, list[np.ndarray]] = {"consistency": [], "consensus": []}
    for i, entry in enumerate(histograms):
        missing = [key for key in ("epoch", "consistency", "consensus") if key not in entry]
        if missing:
            raise ValueError(f"histograms[{i}] lacks keys {missing}")
        epochs.append(int(entry["epoch"]))  # type: ignore[call-overload]
        for name in counts:
            arr = np.asarray(entry[name], dtype=np.float64)
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"histograms[{i}][{name!r}] must be a non-empty 1-D list of counts, "
                                 f"got shape {arr.shape}")
            if not np.isfinite(arr).all() or arr.min() < 0:
                raise ValueError(f"histograms[{i}][{name!r}] must hold finite counts >= 0")
            if arr.sum() == 0:
                raise ValueError(f"histograms[{i}][{name!r}] counts no examples (all bins are 0)")
            counts[name].append(arr)
    n_bins = {arr.size for arrs in counts.values() for arr in arrs}
    if len(n_bins) != 1:
        raise ValueError(f"every histogram must have the same number of bins, got bin counts {sorted(n_bins)}")
    if len(set(epochs)) != len(epochs):
        raise ValueError(f"epochs must be distinct, got {epochs}")
    shares = {name: np.stack([a / a.sum() for a in arrs]) for name, arrs in counts.items()}
    return np.asarray(epochs, dtype=np.float64), shares


def _epoch_edges(epochs: np.ndarray) -> np.ndarray:
    """Cell edges halfway between sorted epochs, so uneven spacing (0, 1, 5, 10) still plots."""
    if epochs.size == 1:
        return np.array([epochs[0] - 0.5, epochs[0] + 0.5])
    mids = (epochs[1:] + epochs[:-1]) / 2.0
    return np.concatenate([[epochs[0] - (mids[0] - epochs[0])], mids, [epochs[-1] + (epochs[-1] - mids[-1])]])


def _save_png(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, fsync=False) as tmp:  # drawn again from the store if a crash loses it
        fig.savefig(tmp, format="png", dpi=DPI)
    return path
