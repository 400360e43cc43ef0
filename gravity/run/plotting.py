"""The figure styles shared by all experiments: readable, consistent, small PNGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gravity.validation import check  # noqa: E402

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


def stats_errorbar(ax, x, stats, **style):
    """Mean +/- sd error bars from `gravity.instruments.stats.mean_sd` dicts, one per x (circles,
    capped; `style` overrides or adds `ax.errorbar` options)."""
    means, sds = [s["mean"] for s in stats], [s["sd"] for s in stats]
    ax.errorbar(x, means, sds, **{"marker": "o", "ms": 4, "capsize": 3, **style})


def stats_bars(ax, stats, *, color="#9ecae1", fontsize=7):
    """One bar per label of `stats` ({label: `mean_sd` dict}): the mean with its sd, labels
    slanted under the bars; returns the bars' x positions."""
    x = np.arange(len(stats))
    means = [s["mean"] for s in stats.values()]
    ax.bar(x, means, yerr=[s["sd"] for s in stats.values()], color=color, capsize=3)
    ax.set_xticks(x, list(stats), rotation=25, ha="right", fontsize=fontsize)
    return x


def reference_line(ax, y, label=None, *, color=COLORS["baseline"]):
    """A thin dotted horizontal line at a reference value (chance, a starting point)."""
    ax.axhline(y, color=color, ls=":", lw=1, label=label)


def annotated_reference_line(ax, y, text: str, *, color=COLORS["baseline"], fontsize=6):
    """A `reference_line` (a published value, a null) with its text written at the left edge."""
    reference_line(ax, y, color=color)
    ax.annotate(text, (0.01, y), xycoords=("axes fraction", "data"), fontsize=fontsize)


def finish(ax, xlabel: str, ylabel: str, title: str, **legend):
    """Axis labels, a title and a frameless legend (`legend`: its options, e.g. fontsize)."""
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(frameon=False, **legend)


def log_ticks(ax, values):
    """A log x axis with one tick at each of `values`, labelled as written, no minor ticks."""
    ax.set_xscale("log")
    ax.set_xticks(list(values), [str(v) for v in values])
    ax.minorticks_off()


def mean_bands(ax, x, lines):
    """Several `mean_band`s on one axis: lines holds (values_RxT, label, color, linestyle)."""
    for values, label, color, linestyle in lines:
        mean_band(ax, x, values, label=label, color=color, linestyle=linestyle)


def frontier_curves(ax, points, front, colors, x="task_accuracy_T", y="harmfulness_heldout_T"):
    """Frontier points (`gravity.instruments.frontier`) as one curve per name in `colors`, the
    means of score `x` against score `y`; the points labelled in `front` boxed."""
    from gravity.instruments.frontier import point_label

    for name in dict.fromkeys(p["name"] for p in points):
        curve = [p for p in points if p["name"] == name]
        xs, ys = [p[x]["mean"] for p in curve], [p[y]["mean"] for p in curve]
        ax.plot(xs, ys, "o-", color=colors[name], label=name, ms=4, lw=1)
        for point, xi, yi in zip(curve, xs, ys, strict=True):
            if point_label(point) in front:
                ax.plot(xi, yi, "s", mfc="none", mec="k", ms=9)


def colour_ramp(cmap: str, n: int, stop: float = 0.9, start: float = 0.0):
    """`n` colours evenly spaced along a colormap from `start` to `stop`: one per level of an
    ordered knob (learning rates, batch sizes, overlaps)."""
    return plt.get_cmap(cmap)(np.linspace(start, stop, n))


def distinct_colours(names) -> dict:
    """One colour per name, all different for up to 20 names (matplotlib's tab20, the dark of
    each pair first, then the light): many arms in one legend (the arena's 19 defences)."""
    names = list(names)
    check(len(names) <= 20, "names", "at most 20 (tab20's colours)", len(names))
    palette = plt.get_cmap("tab20").colors
    order = [*palette[0::2], *palette[1::2]]
    return {name: order[i] for i, name in enumerate(names)}


def line_family(ax, x, rows, labels, colors, fmt="o-", **style):
    """One line per row of `rows`, coloured and labelled in order; `x` is shared or one per row."""
    rows = np.asarray(rows, dtype=float)
    xs = np.broadcast_to(np.asarray(x, dtype=float), rows.shape)
    for x_row, row, label, color in zip(xs, rows, labels, colors, strict=True):
        ax.plot(x_row, row, fmt, color=color, label=label, **style)


def survival_curve(ax, curve, *, color=None, label=None):
    """A Kaplan-Meier curve (`gravity.instruments.escape.SurvivalCurve`) as a step function
    from S = 1 at time 0: the share of runs that have not yet escaped."""
    x = np.concatenate([[0.0], curve.times])
    y = np.concatenate([[1.0], curve.survival])
    ax.step(x, y, where="post", color=color, label=label, lw=1.4)


def text_panel(ax, lines, *, fontsize=8, x=0.02, y=0.98):
    """An axes given over to a block of monospace text (a verdict and the numbers behind it)."""
    ax.axis("off")
    ax.text(x, y, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=fontsize)


def runs_and_mean(ax, x, values_XxR, *, color, label=None, jitter=0.012, seed=0):
    """Every run as a faint dot, jittered along x (uniform, `jitter` wide, seeded), and the mean
    +/- sd over the runs at each x as error bars."""
    values = np.asarray(values_XxR, dtype=float)
    offsets = (np.random.default_rng(seed).random(values.shape) - 0.5) * jitter
    jittered = (np.asarray(x)[:, None] + offsets).ravel()
    ax.scatter(jittered, values.ravel(), s=3, alpha=0.12, color=color)
    mean, sd = np.nanmean(values, 1), np.nanstd(values, 1)
    ax.errorbar(x, mean, sd, color=color, marker="o", capsize=3, label=label)


def vertical_marker(ax, x, text: str, *, color=COLORS["baseline"]):
    """A dotted vertical line at `x` with its text at the top of the axes, just right of it."""
    ax.axvline(x, color=color, ls=":", lw=1)
    ax.text(x, 0.98, f" {text}", transform=ax.get_xaxis_transform(), fontsize=7, va="top")


def phase_trajectories(ax, phases, metrics, styles):
    """Metrics through a whole history on one axis: each phase one unit wide (its record steps
    as a fraction of its length), shaded and named, ticked with its name and length.

    phases: the history's `PhaseSpec`s; metrics: {phase name: {metric: values_RxT}};
    styles: (metric, color, linestyle, label) for each metric drawn (a `mean_band`, the label
    on the first phase only)."""
    for i, phase in enumerate(phases):
        x = i + phase.record_steps / phase.steps
        for name, color, linestyle, label in styles:
            values = metrics[phase.name][name]
            first = label if i == 0 else None
            mean_band(ax, x, values, color=color, linestyle=linestyle, label=first)
    shade_phases(ax, [(phase.name, i, i + 1) for i, phase in enumerate(phases)])
    ax.set_xticks(np.arange(len(phases)) + 0.5, [f"{p.name}\n{p.steps} steps" for p in phases])


def arrhenius_lines(ax, x_rows, y_rows, labels, colors, fit=None, fit_label=None):
    """Escape times against 1 / temperature on log-log axes, one `line_family` line per row, and
    a fitted Arrhenius law prefactor x exp(barrier x) (`fit`: a dict with both) dashed over the
    rows' x range."""
    line_family(ax, x_rows, y_rows, labels, colors)
    if fit:
        x = np.asarray(x_rows, dtype=float)
        xs = np.geomspace(x.min(), x.max(), 50)
        line = fit["prefactor"] * np.exp(np.clip(fit["barrier"] * xs, -50, 50))
        ax.plot(xs, line, "--", color=COLORS["baseline"], lw=1, label=fit_label)
    ax.set(xscale="log", yscale="log")


def null_lines(ax, lines):
    """Horizontal lines at null thresholds (or any reference levels), in order: lines holds
    (value, label, color, linestyle)."""
    for value, label, color, linestyle in lines:
        ax.axhline(value, color=color, ls=linestyle, label=label)


def paper_stars(ax, x, published, colors, *, label="paper, {}", capsize=0.0):
    """Published values ({name: (mean, sd)}) as `paper_star`s at `x`, each in `colors[name]`,
    labelled `label.format(name)` (None: unlabelled)."""
    for name, (mean, sd) in published.items():
        text = None if label is None else label.format(name)
        paper_star(ax, x, mean, sd, color=colors[name], capsize=capsize, label=text)


def bar_groups(ax, groups, series, *, width=0.36, capsize=3, **ticks):
    """Side-by-side bars: one group per label of `groups` (the x ticks, `ticks` their text
    options), one bar per series in each, centred on the group. series holds (label, values,
    errors or None, color or one color per group)."""
    x = np.arange(len(groups))
    offsets = (np.arange(len(series)) - (len(series) - 1) / 2) * width
    for offset, (label, values, errors, color) in zip(offsets, series, strict=True):
        ax.bar(x + offset, values, width, yerr=errors, color=color, capsize=capsize, label=label)
    ax.set_xticks(x, list(groups), **ticks)


def label_axes(ax, title=None, xlabel=None, ylabel=None, *, title_size=None):
    """A title (at `title_size` when given, else the house size) and axis labels in one call;
    a None leaves that one as it is."""
    if title is not None:
        ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)


def mark_cells(ax, mask_YxX, *, color="#d62728", size=14):
    """A faint cross over each cell of a `heatmap` where `mask` holds (e.g. cells a post hoc
    rule leaves out)."""
    for i, j in zip(*np.nonzero(np.asarray(mask_YxX)), strict=True):
        ax.plot(j, i, marker="x", color=color, ms=size, mew=0.8, alpha=0.6)


def scatter_by_level(ax, predicted_LxN, measured_LxN, *, labels=None, cmap="viridis"):
    """`identity_scatter` of each row (one level of an ordered knob, e.g. a pretraining
    length), coloured along `cmap` (`colour_ramp` to 0.95) and labelled by `labels`."""
    colors = colour_ramp(cmap, len(predicted_LxN), stop=0.95)
    for i, (predicted, measured) in enumerate(zip(predicted_LxN, measured_LxN, strict=True)):
        label = None if labels is None else labels[i]
        identity_scatter(ax, predicted, measured, color=colors[i], label=label)


def interval_bars(ax, names, values, intervals, *, reference=None, color="#1f77b4", fontsize=7):
    """One bar per name with its interval ((low, high) per bar, e.g. a bootstrap CI) as error
    bars, a dotted line at `reference` (chance), and the names slanted under the bars."""
    values = np.asarray(values, dtype=float)
    errors = np.abs(np.asarray(intervals, dtype=float).T - values)
    ax.bar(range(len(names)), values, yerr=errors, color=color, capsize=3)
    if reference is not None:
        ax.axhline(reference, color="k", lw=0.8, ls=":")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=fontsize)


def band_panel(ax, x, lines, xlabel: str, ylabel: str, title: str, *, ylim=None, **legend):
    """A panel of `mean_bands` (lines: (values_RxT, label, color, linestyle)) with its labels,
    title, y limits and a frameless legend (`legend`: its options)."""
    mean_bands(ax, x, lines)
    finish(ax, xlabel, ylabel, title, **legend)
    if ylim is not None:
        ax.set_ylim(*ylim)


def highlighted_samples(
    ax, samples_Nx2, chosen_N, disc, limit: float, *, color="#d62728", labels=("others", "chosen")
):
    """2-D samples, the `chosen` ones in `color` over the others in grey, a disc ((x, y),
    radius) outlined dashed in `color`, on square axes from -limit to limit."""
    ax.scatter(*samples_Nx2[~chosen_N].T, s=3, color="#9a9a9a", alpha=0.5, lw=0, label=labels[0])
    ax.scatter(*samples_Nx2[chosen_N].T, s=7, color=color, lw=0, label=labels[1])
    ax.add_patch(plt.Circle(*disc, fill=False, ls="--", color=color))
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal")


def bands_by(ax, x, result, name: str, axis: str, styles):
    """One `mean_band` of a sweep result's output `name` per value of `axis` named in `styles`
    ({value: (label, color, linestyle)}), in order; diverged runs left out (NaN)."""
    for value, (label, color, linestyle) in styles.items():
        values = result.select(**{axis: value}).valid(name)
        mean_band(ax, x, values, label=label, color=color, linestyle=linestyle)


def stats_points(ax, entries, x: str, y: str, colors):
    """One point per label of `entries` ({label: {x: mean_sd, y: mean_sd, ...}}) at its two
    means with both sds as error bars, coloured by `colors[label]` and labelled."""
    for label, entry in entries.items():
        ax.errorbar(
            entry[x]["mean"],
            entry[y]["mean"],
            xerr=entry[x]["sd"],
            yerr=entry[y]["sd"],
            fmt="o",
            color=colors[label],
            label=label,
            capsize=2,
        )


def dose_curves(ax, curves, x: str, y: str, colors):
    """Each name's points across strengths ({name: {strength: entry}}, entries as in
    `stats_points`) as a faint line through their means, each point marked by its strength."""
    for name, curve in curves.items():
        xs = [entry[x]["mean"] for entry in curve.values()]
        ys = [entry[y]["mean"] for entry in curve.values()]
        ax.plot(xs, ys, "-", color=colors[name], alpha=0.5, lw=1)
        for strength, xi, yi in zip(curve, xs, ys, strict=True):
            ax.annotate(f"{float(strength):g}", (xi, yi), fontsize=6, color=colors[name])


def value_map(ax, values_YxX, x_labels, y_labels, *, cmap="RdBu", vmin=0.0, vmax=1.0):
    """A grid of cell values (rows y, columns x) as an image on a fixed colour range, ticked
    with the levels, with a colorbar (`heatmap` also writes each value in its cell)."""
    values = np.asarray(values_YxX, dtype=float)
    image = ax.imshow(values, vmin=vmin, vmax=vmax, cmap=cmap, origin="lower", aspect="auto")
    ax.set_xticks(range(values.shape[1]), x_labels)
    ax.set_yticks(range(values.shape[0]), y_labels)
    ax.figure.colorbar(image, ax=ax)
    return image


def published_points(ax, points, label="paper", *, fmt="k*", ms=7, capsize=2):
    """A paper's published values ({x: (mean, sd)}) as error-barred markers (black stars),
    labelled once."""
    for i, (x, (mean, sd)) in enumerate(points.items()):
        ax.errorbar(x, mean, yerr=sd, fmt=fmt, ms=ms, capsize=capsize, label=None if i else label)
