"""Figures of a Result for a notebook: matplotlib Figures returned, not files written."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_dynamics(dynamics: pd.DataFrame, title: str = "") -> Figure:
    """Heatmaps of consistency and consensus over training (x = epoch, y = score bin over [0, 1],
    colour = share of that epoch's examples in the bin), from Result.dynamics' long table."""
    if dynamics.empty:
        raise ValueError("no dynamics to plot: the table is empty")
    epochs = np.sort(dynamics["epoch"].unique())
    bins = np.sort(dynamics["bin"].unique())
    fig = Figure(figsize=(11.0, 4.5))
    axes = fig.subplots(1, 2, sharey=True)
    mesh = None
    for ax, name in zip(axes, ("consistency", "consensus")):
        counts = dynamics.pivot(index="epoch", columns="bin", values=name).reindex(index=epochs, columns=bins)
        values = counts.to_numpy(dtype=np.float64)
        share = values / np.maximum(values.sum(axis=1, keepdims=True), 1.0)
        x_edges = np.concatenate([epochs - 0.5, [epochs[-1] + 0.5]])
        y_edges = np.linspace(0.0, 1.0, len(bins) + 1)
        mesh = ax.pcolormesh(x_edges, y_edges, share.T, cmap="viridis", vmin=0.0)
        ax.set_xlabel("epoch")
        ax.set_title(name)
    axes[0].set_ylabel("score (bins over [0, 1])")
    fig.colorbar(mesh, ax=list(axes), label="share of examples")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
