"""Recovery of an unlearned capability under relearning, against a model that never had it:
statistics over seeds of `gravity.instruments.capability.RelearningMeasure`'s outputs.

`arrays` are one unlearning method's outputs under the measure's names, shaped (world, strength,
seed, depth[, kind[, record]]) ("pretrained/..." lacks depth and kind): world 0 learned the
capability in pretraining, world 1 is the never-learned control, trained on exactly the same
relearning data. A setting is a (strength index, depth index) pair. Per relearning kind:

- recovered fraction: forget accuracy after relearning / after pretraining (the anchors'
  definition); the never-learned model's over the same denominator beside it;
- gap fraction: (acc_R - acc_U) / (acc_P - acc_U), the share of the gap unlearning opened that
  relearning closes (runs whose unlearning moved accuracy by < `MIN_GAP` not counted), because
  the ratio alone credits the floor unlearning leaves;
- steps to half recovery: the first record at which the forget probability is halfway between
  its unlearned and pretrained levels (the learned world's, for both models), as a censored
  median (`gravity.instruments.capability.censored_median`);
- alignment of the drift with v_unlearn, and its excess over the same-basis null: the unrelated
  relearning's alignment from the same theta_U (paired by seed).

`seen_inputs_recovery` sets a second control beside these: a model whose pretraining saw the same
forget inputs answered by a decoy rule (`TopicWorld.decoy_pretraining`), through the same
unlearning and relearning, so that only the capability differs from the unlearned model; its
arms come one per mapping, each (seed, depth[, kind[, record]]) at one strength.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.stats

from gravity.instruments.capability import RelearnKind, censored_median, first_crossing
from gravity.instruments.stats import mean_sd, paired_difference, spearman

MIN_GAP = 0.1
"""Runs whose unlearning moved the capability by less than this are not counted in gap
fractions and half-recovery times (there is nothing to recover)."""

Arrays = Mapping[str, np.ndarray]


def wilcoxon_p(differences) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences over the finite nonzero ones (NaN
    with fewer than 5: the test cannot reject at 5% below that)."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size < 5:
        return float("nan")
    return float(scipy.stats.wilcoxon(d).pvalue)


def half_recovery_threshold(prob_p, prob_u) -> np.ndarray:
    """Per seed, halfway between the learned model's pretrained and unlearned forget
    probabilities (NaN where unlearning moved it by less than `MIN_GAP`)."""
    prob_p, prob_u = np.asarray(prob_p, dtype=float), np.asarray(prob_u, dtype=float)
    return np.where(prob_p - prob_u >= MIN_GAP, (prob_p + prob_u) / 2, np.nan)


def half_recovery_times(arrays: Arrays, steps, setting: tuple[int, int], kind: int) -> list:
    """Per world, each seed's first relearning record at which the forget probability reaches
    halfway between the learned world's unlearned and pretrained levels (inf: not reached; NaN:
    unlearning moved it by less than `MIN_GAP`)."""
    s, d = setting
    prob_p = arrays["pretrained/forget_probability"][0, s]
    prob_u = arrays["unlearned/forget_probability"][0, s, :, d]
    threshold = half_recovery_threshold(prob_p, prob_u)
    trajectory = arrays["trajectory"][:, s, :, d, kind]
    return [first_crossing(trajectory[w], steps, threshold) for w in (0, 1)]


def kind_recovery(
    arrays: Arrays, steps, setting: tuple[int, int], kind: int, null_kind: int
) -> dict:
    """Everything reported for one relearning kind at one setting (see the module docstring);
    `null_kind` is the same-basis null's kind (unrelated data)."""
    s, d = setting
    acc_p = arrays["pretrained/forget_accuracy"][0, s]
    acc_u = arrays["unlearned/forget_accuracy"][0, s, :, d]
    acc_gap = np.where(acc_p - acc_u >= MIN_GAP, acc_p - acc_u, np.nan)
    acc_r = arrays["relearned/forget_accuracy"][:, s, :, d, kind]
    prob_r = arrays["relearned/forget_probability"][:, s, :, d, kind]
    half = half_recovery_times(arrays, steps, setting, kind)
    alignment = arrays["alignment"][:, s, :, d, kind]
    null = arrays["alignment"][0, s, :, d, null_kind]
    advantage = acc_r[0] - acc_r[1]
    return {
        "capability_relearned": {"accuracy": mean_sd(acc_r[0]), "probability": mean_sd(prob_r[0])},
        "recovered_fraction": mean_sd(acc_r[0] / acc_p),
        "never_learned_capability": {
            "accuracy": mean_sd(acc_r[1]),
            "probability": mean_sd(prob_r[1]),
        },
        "never_learned_fraction": mean_sd(acc_r[1] / acc_p),
        "recovered_gap_fraction": mean_sd((acc_r[0] - acc_u) / acc_gap),
        "never_learned_gap_fraction": mean_sd((acc_r[1] - acc_u) / acc_gap),
        "advantage_over_never_learned": {**mean_sd(advantage), "wilcoxon_p": wilcoxon_p(advantage)},
        "retain_accuracy_relearned": mean_sd(arrays["relearned/retain_accuracy"][0, s, :, d, kind]),
        "steps_to_half_recovery": censored_median(half[0], steps[-1]),
        "steps_to_half_never_learned": censored_median(half[1], steps[-1]),
        "alignment_with_v_unlearn_step100": mean_sd(alignment[0]),
        "alignment_minus_unrelated_null": mean_sd(alignment[0] - null),
        "never_learned_alignment_step100": mean_sd(alignment[1]),
    }


def setting_recovery(
    arrays: Arrays, steps, kinds: Sequence[RelearnKind], setting: tuple[int, int]
) -> dict:
    """Everything reported for one setting of one method: the capability before and after
    unlearning (both worlds), retain and related accuracy, and `kind_recovery` per kind."""
    s, d = setting
    names = [kind.name for kind in kinds]
    unrelated = names.index("unrelated")

    def stage(name, world=0):
        value = arrays[name][world, s]
        return mean_sd(value if name.startswith("pretrained/") else value[:, d])

    return {
        "capability_pretrained": {
            "accuracy": stage("pretrained/forget_accuracy"),
            "probability": stage("pretrained/forget_probability"),
        },
        "capability_unlearned": {
            "accuracy": stage("unlearned/forget_accuracy"),
            "probability": stage("unlearned/forget_probability"),
        },
        "never_learned_capability_pretrained": stage("pretrained/forget_accuracy", 1),
        "never_learned_capability_unlearned": stage("unlearned/forget_accuracy", 1),
        "retain_accuracy_pretrained": stage("pretrained/retain_accuracy"),
        "retain_accuracy_unlearned": stage("unlearned/retain_accuracy"),
        "related_accuracy_unlearned": stage("unlearned/related_accuracy"),
        "by_kind": {
            name: kind_recovery(arrays, steps, setting, k, unrelated)
            for k, name in enumerate(names)
        },
    }


def recovery_grid(
    arrays: Arrays, steps, kinds: Sequence[RelearnKind], strengths: Sequence, depths: Sequence
) -> dict:
    """Compact per-(strength, depth) means: unlearned capability, retain accuracy, and per kind
    the recovered fraction and the median steps to half recovery (unlearned, never-learned)."""
    grid = {}
    for s, strength in enumerate(strengths):
        for d, depth in enumerate(depths):
            full = setting_recovery(arrays, steps, kinds, (s, d))
            grid[f"strength={strength:g},steps={depth}"] = {
                "capability_unlearned": full["capability_unlearned"]["accuracy"]["mean"],
                "retain_accuracy_unlearned": full["retain_accuracy_unlearned"]["mean"],
                **{
                    field: {n: v[field][stat] for n, v in full["by_kind"].items()}
                    for field, stat in (
                        ("recovered_fraction", "mean"),
                        ("steps_to_half_recovery", "median"),
                        ("steps_to_half_never_learned", "median"),
                    )
                },
            }
    return grid


def depth_trends(
    arrays: Arrays, kinds: Sequence[RelearnKind], strengths: Sequence, depths: Sequence
) -> dict:
    """Does depth buy time? Spearman of the recovered fraction with unlearning steps and with
    strength over runs (learned world), per kind."""
    acc_p = arrays["pretrained/forget_accuracy"][0][:, :, None]
    fraction = arrays["relearned/forget_accuracy"][0] / acc_p[..., None]
    shape = fraction.shape[:-1]
    depth = np.broadcast_to(np.asarray(depths)[None, None, :], shape)
    strength = np.broadcast_to(np.asarray(strengths)[:, None, None], shape)
    return {
        kind.name: {
            "spearman_steps": spearman(depth, fraction[..., k]),
            "spearman_strength": spearman(strength, fraction[..., k]),
        }
        for k, kind in enumerate(kinds)
    }


def method_recovery(
    arrays: Arrays,
    steps,
    kinds: Sequence[RelearnKind],
    strengths: Sequence,
    depths: Sequence,
    headline: tuple[int, int],
) -> dict:
    """One method's numbers: the headline setting's in full, how many histories (world x
    strength x seed), the compact grid over every setting, and the depth trends."""
    return {
        **setting_recovery(arrays, steps, kinds, headline),
        "n_histories": int(np.size(arrays["pretrained/forget_accuracy"])),
        "grid": recovery_grid(arrays, steps, kinds, strengths, depths),
        "depth_trends": depth_trends(arrays, kinds, strengths, depths),
    }


def resistance_ranking(by_method: Mapping[str, dict], kinds: Sequence[RelearnKind]) -> list[dict]:
    """Methods ordered by the mean recovered fraction over the forget kinds at the headline
    setting (lowest first: most resistant), with the unrelated-data recovery beside it."""
    forget = [k.name for k in kinds if k.forget_share > 0]
    rows = [
        {
            "method": method,
            "recovered_fraction_forget_mean": float(
                np.mean([numbers["by_kind"][k]["recovered_fraction"]["mean"] for k in forget])
            ),
            "recovered_fraction_unrelated": numbers["by_kind"]["unrelated"]["recovered_fraction"][
                "mean"
            ],
        }
        for method, numbers in by_method.items()
    ]
    return sorted(rows, key=lambda r: r["recovered_fraction_forget_mean"])


SEEN_ARMS = ("unlearned", "never_learned", "seen_inputs")
"""The arms `seen_inputs_recovery` compares: the model that learned the capability and had it
unlearned, the never-learned control (hazard_rate 0), the seen-inputs control (decoy rule)."""


def paired_with_wilcoxon(a_S, b_S) -> dict:
    """`stats.paired_difference` of a - b on the same seeds, with the Wilcoxon p beside it."""
    a, b = np.asarray(a_S, dtype=float), np.asarray(b_S, dtype=float)
    return {**paired_difference(a, b), "wilcoxon_p": wilcoxon_p(a - b)}


def seen_inputs_kind(arms: Mapping[str, Arrays], steps, depth: int, kind: int) -> dict:
    """One relearning kind: the seen-inputs control's capability after relearning (and over
    the unlearned model's pretrained accuracy), its decoy accuracy, its steps to the unlearned
    model's half-recovery level, the paired differences unlearned - seen-inputs and seen-inputs
    - never-learned in forget accuracy, and each arm's per-seed accuracies."""
    treated, seen = arms["unlearned"], arms["seen_inputs"]
    acc = {
        arm: np.asarray(arms[arm]["relearned/forget_accuracy"])[:, depth, kind] for arm in SEEN_ARMS
    }
    threshold = half_recovery_threshold(
        treated["pretrained/forget_probability"],
        np.asarray(treated["unlearned/forget_probability"])[:, depth],
    )
    trajectory = np.asarray(seen["trajectory"])[:, depth, kind]
    half = first_crossing(trajectory, steps, threshold)
    return {
        "capability_relearned": {
            "accuracy": mean_sd(acc["seen_inputs"]),
            "probability": mean_sd(
                np.asarray(seen["relearned/forget_probability"])[:, depth, kind]
            ),
        },
        "fraction": mean_sd(acc["seen_inputs"] / np.asarray(treated["pretrained/forget_accuracy"])),
        "decoy_accuracy_relearned": mean_sd(
            np.asarray(seen["relearned/decoy_accuracy"])[:, depth, kind]
        ),
        "steps_to_half": censored_median(half, steps[-1]),
        "advantage_of_unlearned": paired_with_wilcoxon(acc["unlearned"], acc["seen_inputs"]),
        "seen_inputs_minus_never_learned": paired_with_wilcoxon(
            acc["seen_inputs"], acc["never_learned"]
        ),
        "accuracy_per_seed": {arm: acc[arm].tolist() for arm in SEEN_ARMS},
    }


def seen_inputs_recovery(
    arms: Mapping[str, Arrays], steps, kinds: Sequence[RelearnKind], depth: int
) -> dict:
    """The seen-inputs control at one setting of one method, beside the unlearned model and the
    never-learned control (`arms`: one mapping per name of `SEEN_ARMS`, at that setting's
    strength): its capability and decoy accuracy before and after unlearning, and
    `seen_inputs_kind` per relearning kind."""
    seen = arms["seen_inputs"]

    def stage(name):
        value = np.asarray(seen[name])
        return mean_sd(value if name.startswith("pretrained/") else value[:, depth])

    return {
        "capability_pretrained": stage("pretrained/forget_accuracy"),
        "decoy_accuracy_pretrained": stage("pretrained/decoy_accuracy"),
        "capability_unlearned": stage("unlearned/forget_accuracy"),
        "decoy_accuracy_unlearned": stage("unlearned/decoy_accuracy"),
        "retain_accuracy_pretrained": stage("pretrained/retain_accuracy"),
        "by_kind": {
            kind.name: seen_inputs_kind(arms, steps, depth, k) for k, kind in enumerate(kinds)
        },
    }
