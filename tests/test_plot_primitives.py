"""Plot primitives draw what they say on a headless figure (`gravity.run.plotting`)."""

import numpy as np

from gravity.run import plotting


def test_label_axes_mark_cells_and_scatter_by_level():
    fig, axes = plotting.figure(2)
    plotting.heatmap(axes[0, 0], np.arange(6.0).reshape(2, 3), [8, 16, 32], [100, 200])
    plotting.mark_cells(axes[0, 0], np.array([[True, False, False], [False, False, True]]))
    plotting.label_axes(axes[0, 0], "title", "depth", "mass", title_size=7.5)
    ax = axes[0, 0]
    assert ax.get_title() == "title" and ax.title.get_fontsize() == 7.5
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("depth", "mass")
    crosses = [(line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines()]
    assert crosses == [(0, 0), (2, 1)]
    plotting.label_axes(ax, ylabel="changed")
    assert ax.get_title() == "title" and ax.get_ylabel() == "changed"
    predicted, measured = np.array([[0.1, 0.2], [0.3, 0.4]]), np.array([[0.1, 0.3], [0.2, 0.5]])
    plotting.scatter_by_level(axes[0, 1], predicted, measured, labels=["P=1", "P=2"])
    assert [c.get_label() for c in axes[0, 1].collections] == ["P=1", "P=2"]
    plotting.plt.close(fig)


def test_interval_bars():
    fig, axes = plotting.figure(1)
    ax = axes[0, 0]
    plotting.interval_bars(ax, ["a", "b"], [0.6, 0.8], [[0.5, 0.7], [0.7, 0.9]], reference=0.5)
    assert [p.get_height() for p in ax.patches] == [0.6, 0.8]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert ax.get_lines()[-1].get_ydata()[0] == 0.5
    plotting.plt.close(fig)
