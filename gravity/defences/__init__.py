"""Defences against reversion ("anti-gravity"), compared on one frontier by
`experiments/defences.py`: one plug-in per defence, each a `Defence` (see `protocol`) registered
by name in one file here.

During benign fine-tuning, selected by the traced `Knobs.defence` among the defences a phase
compiles (`PhaseSpec.defences`): **rehearsal** (the batch), **ewc** and **l2sp** (the loss),
**safelora** and **freeze** (the update). Selected by `Knobs.intervention` in phases compiled
with `PhaseSpec.interventions`: the **steering** variants (block, push, project and controls;
`steering`, with `gravity.interventions` as its name map). Before fine-tuning, in the safety
phase itself: **adversarial alignment** (`adversarial`).

From the harmful-fine-tuning literature (issue #23's arena), registered after the above so their
indices never move: **lisa** (alignment steps alternating with benign ones, a proximal term to
the last switch point: batch, loss, carried state), **resta** (a safety vector added after
fine-tuning: edit), **antidote** (the top Wanda-scored weights on hazardous inputs pruned after
fine-tuning: edit; `pruning`), **critical_freeze** (the top safety-critical weights by SNIP, minus
utility, frozen: update; `critical`) and **tokenwise** (Qi et al.'s token-wise constrained loss:
batch loss). Then those that act at alignment, compiled into the safety phase
(`Defence.acts_at_alignment`): **vaccine** (alignment under the worst-case hidden-state
perturbation: batch loss), **booster** and **booster_benign** (a penalty on how much a simulated
harmful, or benign, step lowers the harmful loss: advance, loss), **repnoise** (hazardous
activations at every layer pushed to Gaussian noise by MMD: advance, loss) and **tar** and
**tar_benign** (first-order TAR: refusal trained at the end of K simulated harmful, or benign,
fine-tuning steps: advance, loss).
"""

from gravity.defences import (
    booster,
    critical,
    ewc,
    freeze,
    l2sp,
    lisa,
    pruning,
    rehearsal,
    repnoise,
    resta,
    safelora,
    steering,
    tar,
    tokenwise,
    vaccine,
)
from gravity.defences.adversarial import adversarial_alignment
from gravity.engine.defence import (
    REGISTRY,
    Defence,
    Setup,
    check_names,
    compiled,
    get,
    index,
    names,
    register,
    registered,
    selected,
    unregister,
)

for _defence in (
    rehearsal.REHEARSAL,
    ewc.EWC,
    l2sp.L2SP,
    safelora.SAFELORA,
    freeze.FREEZE,
    lisa.LISA,
    resta.RESTA,
    pruning.ANTIDOTE,
    critical.CRITICAL_FREEZE,
    tokenwise.TOKENWISE,
    vaccine.VACCINE,
    booster.BOOSTER,
    booster.BOOSTER_BENIGN,
    repnoise.REPNOISE,
    tar.TAR,
    tar.TAR_BENIGN,
):
    register(_defence)

__all__ = [
    "REGISTRY",
    "Defence",
    "Setup",
    "adversarial_alignment",
    "booster",
    "check_names",
    "compiled",
    "critical",
    "ewc",
    "freeze",
    "get",
    "index",
    "l2sp",
    "lisa",
    "names",
    "pruning",
    "register",
    "registered",
    "rehearsal",
    "repnoise",
    "resta",
    "safelora",
    "selected",
    "steering",
    "tar",
    "tokenwise",
    "unregister",
    "vaccine",
]
