"""The figure styles shared by all experiments: readable, consistent, small PNGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {
    "mlp": "#1f77b4",
    "transformer": "#d62728",
    "baseline": "#444444",
    "block": "#2ca02c",
    "push": "#d62728",
    "project": "#9467bd",
    "random_block": "#8c8c8c",
    "push_bounded": "#ff7f0e",
    "matched_block": "#17becf",
    "null": "#ff7f0e",
}
PHASE_COLORS = {
    "pretrain": "#e8e8e8",
    "helpful": "#fde0c5",
    "safety": "#d5e8d4",
    "benign": "#dae8fc",
}

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def figure(n_cols: int, n_rows: int = 1, width: float = 4.2, height: float = 3.2):
    """A figure with the house style and an array of axes."""
    plt.rcParams.update(STYLE)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False
    )
    return fig, axes


def mean_band(ax, x, values_RxT, *, label=None, color=None, linestyle="-"):
    """Mean over runs with a +/- 1 sd band."""
    values = np.asarray(values_RxT, dtype=float)
    mean, sd = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    ax.plot(x, mean, label=label, color=color, linestyle=linestyle, lw=1.6)
    ax.fill_between(x, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)


def shade_phases(ax, boundaries: list[tuple[str, float, float]]):
    """Background bands naming each phase on a shared x axis."""
    for name, start, end in boundaries:
        ax.axvspan(start, end, color=PHASE_COLORS.get(name, "#f2f2f2"), alpha=0.6, lw=0)
        ax.text(
            (start + end) / 2,
            1.0,
            name,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            color="#555555",
        )


def save(fig, path: Path, title: str | None = None) -> Path:
    """Save as PNG (creating the folder) and close."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def heatmap(
    ax,
    values_YxX,
    x_labels,
    y_labels,
    *,
    cmap: str = "viridis",
    label: str | None = None,
    fmt: str = "{:.2f}",
    norm=None,
):
    """A grid of cell values (rows y, columns x) with each value written in its cell."""
    values = np.asarray(values_YxX, dtype=float)
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(np.arange(values.shape[1]), [str(v) for v in x_labels])
    ax.set_yticks(np.arange(values.shape[0]), [str(v) for v in y_labels])
    ax.grid(False)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            color = "black" if image.norm(value) > 0.5 else "white"
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=6.5, color=color)
    colorbar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    if label:
        colorbar.set_label(label)
    return image


def identity_scatter(ax, predicted, measured, *, label=None, color="#1f77b4", size=14):
    """Measured against predicted values with the line y = x (the prediction without a refit)."""
    x, y = np.asarray(predicted, dtype=float).ravel(), np.asarray(measured, dtype=float).ravel()
    ax.scatter(x, y, s=size, color=color, alpha=0.8, label=label, lw=0)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.any():
        lo = min(x[finite].min(), y[finite].min())
        hi = max(x[finite].max(), y[finite].max())
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#444444", lw=0.8, ls="--")


def paper_star(ax, x, mean, sd, *, color="k", label=None, capsize=0.0):
    """A published value as a black-edged star with its error bar, beside a toy's curve."""
    ax.errorbar(x, mean, yerr=sd, fmt="*", color=color, mec="k", ms=8, capsize=capsize, label=label)
