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

DEFENCES = {
    "none": (
        "—",
        "the paper (arXiv 2606.28525): held-out harmfulness 19.0% after benign fine-tuning",
    ),
    "block": (
        "the paper (arXiv 2606.28525)",
        "harmfulness 19.0% -> 8.5% with motion along v_rev blocked",
    ),
    "project": ("the paper's v_rev, updates projected off it", "— (ours)"),
    "random_block": ("control", "— (a control)"),
    "rehearsal": ("the paper (arXiv 2606.28525)", "~30% less reversion"),
    "ewc": ("Kirkpatrick et al., PNAS 2017", "(forgetting, not harmful fine-tuning)"),
    "l2sp": ("Li et al., ICML 2018", "(transfer learning, not harmful fine-tuning)"),
    "safelora": (
        "Hsu et al., NeurIPS 2024",
        "lower harmfulness after fine-tuning at kept utility (number: not found in the sources "
        "searched; the abstract gives none; see the paper's main results tables, arXiv "
        "2405.16833)",
    ),
    "freeze": ("— (ours: the probe layer fixed)", "—"),
    "lisa": (
        "Huang et al., NeurIPS 2024",
        "lower harmful score at kept fine-tuning accuracy on four tasks: harmful score 51.6% "
        "(SFT) -> 40.2% at fine-tune accuracy 94.84% (SFT 94.95%) on Llama2-7B, SST2, 10% "
        "harmful of 5000 samples (Table 3)",
    ),
    "resta": (
        "Bhardwaj et al., ACL 2024",
        "safety restored after fine-tuning by adding the safety vector: harmfulness 18.6% -> "
        "5.1% after parameter-efficient and 9.2% -> 1.5% after full fine-tuning on benign tasks "
        "(Chinese/English/Hindi instructions, code, math), most task performance kept (abstract)",
    ),
    "antidote": (
        "Huang et al., ICML 2025",
        "over the fine-tuning learning rates 1e-7 ... 1e-3: harmful score 72.16% (SFT) -> 63.00% "
        "on average at fine-tune accuracy 17.32% -> 13.86%, and 77.80% -> 65.30% at lr 1e-4 "
        "(accuracy 21.90% -> 16.10%); a table shown as an image on the authors' project page "
        "(huangtiansheng/Antidote_gh_page, 'robustness to lr', Sept 2024; model and task not "
        "named there; the ICML text itself not opened); its own attacker sweep, like the arena's",
    ),
    "critical_freeze": (
        "Wei et al., ICML 2024",
        "freezing safety-critical weights did **not** stop fine-tuning attacks: ASR 0.94 -> "
        "0.89 with 67% of the safety-critical neurons frozen, Llama2-7B-chat fine-tuned on 100 "
        "benign Alpaca examples (Sec. 4.4)",
    ),
    "tokenwise": (
        "Qi et al., ICLR 2025",
        "the constrained loss keeps harmfulness low under harmful fine-tuning: ASR 88.9% "
        "(standard SFT) -> 4.6% (constrained SFT) on Llama-2-7B-Chat fine-tuned on 100 harmful "
        "examples, HEx-PHI with GPT-4 judge (Table 4, ICLR version)",
    ),
    "vaccine": (
        "Huang et al., NeurIPS 2024",
        "harmful score 55.2% (SFT) -> 48.2% at fine-tune accuracy 93.8% (SFT 94.4%) on "
        "Llama2-7B, SST2, 10% harmful of 1000 samples (Table 1; the caption names no model or "
        "task, the paper's default setting does); up to 9.8 points below SFT over the harmful "
        "ratios (Sec. 5.2)",
    ),
    "booster": (
        "Huang et al., ICLR 2025",
        "harmful score 33.70% (SFT) -> 8.30% at fine-tune accuracy 93.23% (SFT 93.12%) at 10% "
        "harmful (Table 1 as shown on the authors' project page, an arXiv version; Llama2-7B, "
        "SST2, 1000 samples per the code's README; the ICLR text itself not opened)",
    ),
    "booster_benign": ("ours: Booster against a simulated benign step", "— (not in the paper)"),
    "repnoise": (
        "Rosati et al., NeurIPS 2024",
        "harmfulness-classifier score (0-1) 0.47 (llama2-7b-chat) -> 0.08 after a harmful "
        "attack of 1k BeaverTails samples at learning rate 3e-5, and 0.73 -> 0.12 at the "
        "strongest (8e-5, 10k) (Table 1); a fully harmful attack, not a benign one; the paper's "
        'footnote 3: "stronger attacks with thorough hyperparameter search can still succeed"',
    ),
    "tar": (
        "Tamirisa et al., ICLR 2025",
        'adversaries "cannot remove the safeguards even after hundreds of steps of fine-tuning" '
        "(abstract; no number there)",
    ),
    "tar_benign": ("ours: TAR against a simulated benign fine-tuner", "— (not in the paper)"),
}
"""Each arena defence's source and what it reports for its own setting (an LLM, its own attack
and metric: not comparable number for number with the toy's, nor with each other's baselines),
read from the papers' texts; where no number was found the headline says so. By arena arm
name (`experiments/arena.py`)."""
