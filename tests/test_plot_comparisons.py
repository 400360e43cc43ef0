"""Plot primitives that set a toy beside nulls, arms and a paper's values draw what they say
(`gravity.run.plotting`), on a headless figure."""

import numpy as np
import synthetic_results

from gravity.run import plotting


def test_null_lines_bands_and_published_values():
    fig, axes = plotting.figure(2)
    ax = axes[0, 0]
    plotting.null_lines(ax, [(0.2, "iso", "#999999", ":"), (0.5, "same basis", "k", "--")])
    assert [line.get_ydata()[0] for line in ax.get_lines()] == [0.2, 0.5]
    values = np.array([[0.0, 1.0], [1.0, 3.0]])
    lines = [(values, "toy", "C0", "-"), (values + 1, None, "C1", "--")]
    plotting.band_panel(ax, [0, 1], lines, "t", "cos", "panel", ylim=(-1, 4), fontsize=6)
    assert list(ax.get_lines()[-2].get_ydata()) == [0.5, 2.0]
    assert ax.get_ylim() == (-1, 4) and ax.get_title() == "panel"
    plotting.published_points(ax, {1: (0.4, 0.05), 20: (0.6, 0.02)})
    plotting.paper_stars(ax, 22, {"a": (0.1, 0.01), "b": (0.2, 0.01)}, {"a": "k", "b": "r"})
    labels = ax.get_legend_handles_labels()[1]
    assert labels.count("paper") == 1 and {"paper, a", "paper, b"} <= set(labels)
    plotting.plt.close(fig)


def test_bar_groups_center_each_series_on_its_group():
    fig, axes = plotting.figure(1)
    ax = axes[0, 0]
    series = [("paper", [1.0, 2.0], [0.1, 0.2], "#bbbbbb"), ("toy", [1.5, 2.5], None, ["r", "g"])]
    plotting.bar_groups(ax, ["base", "blocked"], series, width=0.4, fontsize=7)
    xs = [round(p.get_x() + p.get_width() / 2, 6) for p in ax.patches]
    assert xs == [-0.2, 0.8, 0.2, 1.2]
    assert [p.get_height() for p in ax.patches] == [1.0, 2.0, 1.5, 2.5]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["base", "blocked"]
    plotting.plt.close(fig)


def test_bands_by_an_axis_points_with_both_errors_dose_curves_and_a_value_map():
    fig, axes = plotting.figure(3)
    res = synthetic_results.grid()
    styles = {"main": ("main world", "C0", "-"), "other": ("other world", "C1", ":")}
    cell = res.select(arm=("a", 1.0))
    plotting.bands_by(
        axes[0, 0], synthetic_results.STEPS, cell, "metrics/benign/other", "world", styles
    )
    means = [line.get_ydata() for line in axes[0, 0].get_lines()]
    np.testing.assert_allclose(means[1], cell["metrics/benign/other"][1].mean(axis=0), rtol=1e-6)
    entry = {"task": {"mean": 0.5, "sd": 0.1}, "harm": {"mean": 0.2, "sd": 0.05}}
    plotting.stats_points(axes[0, 1], {"block": entry}, "task", "harm", {"block": "g"})
    plotting.dose_curves(
        axes[0, 1], {"block": {"0.3": entry, "3.0": entry}}, "task", "harm", {"block": "g"}
    )
    assert [t.get_text() for t in axes[0, 1].texts] == ["0.3", "3"]
    image = plotting.value_map(axes[0, 2], [[0.2, 0.4], [0.6, 0.8]], [25, 100], [400, 1500])
    assert image.get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in axes[0, 2].get_yticklabels()] == ["400", "1500"]
    plotting.plt.close(fig)
