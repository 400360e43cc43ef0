"""Plot primitives for families of lines, survival curves and runs (`gravity.run.plotting`): each
draws what it says on a headless figure."""

import numpy as np

from gravity.instruments import escape
from gravity.run import plotting


def test_line_family_and_arrhenius_lines():
    fig, axes = plotting.figure(2)
    colors = plotting.colour_ramp("plasma", 2, 0.85)
    assert colors.shape == (2, 4)
    x = np.array([[1.0, 2.0], [4.0, 8.0]])  # one x per row
    plotting.line_family(axes[0, 0], x, [[1.0, 2.0], [3.0, 4.0]], ["a", "b"], colors)
    assert [line.get_label() for line in axes[0, 0].get_lines()] == ["a", "b"]
    np.testing.assert_array_equal(axes[0, 0].get_lines()[1].get_xdata(), [4.0, 8.0])
    fit = {"prefactor": 2.0, "barrier": 0.1}
    plotting.arrhenius_lines(
        axes[0, 1], x, [[1.0, 2.0], [3.0, 4.0]], ["a", "b"], colors, fit, "fit"
    )
    line = axes[0, 1].get_lines()[-1]
    assert line.get_label() == "fit" and line.get_xdata()[[0, -1]].tolist() == [1.0, 8.0]
    np.testing.assert_allclose(line.get_ydata()[0], 2.0 * np.exp(0.1))
    assert axes[0, 1].get_xscale() == axes[0, 1].get_yscale() == "log"
    plotting.plt.close(fig)


def test_survival_runs_text_and_marker():
    fig, axes = plotting.figure(3)
    curve = escape.kaplan_meier([1.0, 2.0, 2.0, 5.0], [True, True, False, True])
    plotting.survival_curve(axes[0, 0], curve, label="km")
    line = axes[0, 0].get_lines()[0]
    assert line.get_xdata()[0] == 0.0 and line.get_ydata()[0] == 1.0
    np.testing.assert_allclose(line.get_ydata()[1:], curve.survival)
    plotting.runs_and_mean(axes[0, 1], np.array([0.0, 1.0]), np.ones((2, 5)), color="k", label="m")
    assert axes[0, 1].collections[0].get_offsets().shape == (10, 2)
    plotting.vertical_marker(axes[0, 1], 0.4, "here")
    assert axes[0, 1].texts[-1].get_text() == " here"
    plotting.text_panel(axes[0, 2], ["one", "two"])
    assert axes[0, 2].texts[0].get_text() == "one\ntwo" and not axes[0, 2].axison
    plotting.plt.close(fig)
