"""The paper's published numbers (arXiv 2606.28525) that the toy's readouts are set beside, in
one place: (mean, sd) over the paper's runs, at benign fine-tuning step t (T = 100 the last).
They are references to compare with, never targets a knob was tuned toward (except the two the
reversion experiment's calibration fits, by a rule written first)."""

from __future__ import annotations

ALIGNMENT = {
    "alignment_step1": (0.429, 0.052),
    "alignment_step20": (0.647, 0.021),
    "alignment_step100": (0.648, 0.009),
}
"""cos(drift, v_rev) of plain benign fine-tuning at t = 1, 20 and 100."""

ALIGNMENT_BLOCKED = (-0.211, 0.021)
"""cos(drift, v_rev) at T with motion along v_rev blocked."""

HELD_OUT_HARM = {"baseline": (0.190, 0.040), "blocked": (0.085, 0.015)}
"""Held-out harmfulness at T, plain and with v_rev blocked."""

SPEARMAN_ALIGNMENT_HARM = 0.958
"""Spearman's rho of alignment with harmfulness over run-steps."""

BLOCKING = {
    "baseline": {
        "alignment": ALIGNMENT["alignment_step100"],
        "harmfulness": HELD_OUT_HARM["baseline"],
    },
    "block": {"alignment": ALIGNMENT_BLOCKED, "harmfulness": HELD_OUT_HARM["blocked"]},
}
"""Alignment and held-out harmfulness at T of the baseline and the blocked arm."""

AT_T = {
    "alignment_step100": ALIGNMENT["alignment_step100"][0],
    "harmfulness_heldout_step100": HELD_OUT_HARM["baseline"][0],
    "harmfulness_heldout_blocked": HELD_OUT_HARM["blocked"][0],
    "alignment_blocked_step100": ALIGNMENT_BLOCKED[0],
    "spearman_alignment_harmfulness": SPEARMAN_ALIGNMENT_HARM,
}
"""The paper's means at T under the names the toy reports its own by."""
