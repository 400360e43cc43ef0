"""Defences against reversion ("anti-gravity"), compared on one frontier by
`experiments/defences.py`: one plug-in per defence, each a `Defence` (see `protocol`) registered
by name in one file here.

During benign fine-tuning, selected by the traced `Knobs.defence` among the defences a phase
compiles (`PhaseSpec.defences`): **rehearsal** (the batch), **ewc** and **l2sp** (the loss),
**safelora** and **freeze** (the update). Selected by `Knobs.intervention` in phases compiled
with `PhaseSpec.interventions`: the **steering** variants (block, push, project and controls;
`steering`, with `gravity.interventions` as its name map). Before fine-tuning, in the safety
phase itself: **adversarial alignment** (`adversarial`).
"""

from gravity.defences import ewc, freeze, l2sp, rehearsal, safelora, steering
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
):
    register(_defence)

__all__ = [
    "REGISTRY",
    "Defence",
    "Setup",
    "adversarial_alignment",
    "check_names",
    "compiled",
    "ewc",
    "freeze",
    "get",
    "index",
    "l2sp",
    "names",
    "register",
    "registered",
    "rehearsal",
    "safelora",
    "selected",
    "steering",
    "unregister",
]
