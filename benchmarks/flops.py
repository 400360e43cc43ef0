"""FLOP counts of a history: matmul FLOPs of training (forward + backward) and of the recorded
evaluations, counted by hand from the model's shapes.

Convention (the usual one, and the one behind the "8.7 MFLOP per MLP step" of docs/design.md): a
matmul of (n, k) by (k, m) is 2nkm FLOPs; one training step is 3x its forward pass (the backward
pass computes weight and input gradients, 2x the forward). Bias adds, activations, softmax, Adam
and data sampling are not counted: they are bandwidth, not FLOPs. XLA's own cost analysis of the
standard MLP step (8.27 MFLOP with elementwise ops, exact backward) lands within 5% of this count.
"""

from __future__ import annotations

from gravity.engine.history import HistorySpec
from gravity.engine.models import ModelConfig
from gravity.engine.worlds import FeatureWorld, TokenWorld


def mlp_forward_flops(input_dim: int, hidden: tuple[int, ...], n_outputs: int, n: int) -> int:
    """Forward matmul FLOPs of an MLP on `n` inputs."""
    widths = (input_dim, *hidden, n_outputs)
    return 2 * n * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def transformer_forward_flops(config: ModelConfig, world: TokenWorld, n: int) -> int:
    """Forward matmul FLOPs of the tiny transformer on `n` prompts.

    Per layer and prompt: the Q, K, V and output projections (4 d^2 per token), the MLP
    (2 d d_ff per token) and the attention scores and mixing (2 L^2 d, the full L x L that XLA
    computes before the causal mask); the unembedding reads the last position only (d V).
    With `readout_only` the last layer projects keys and values at every position (2 d^2 per
    token) and the rest at the last one: its query and output (2 d^2), MLP (2 d d_ff) and one
    query's attention (2 L d). Embedding lookups are gathers, not matmuls.
    """
    length, d = world.prompt_length, config.d_model
    per_layer = length * (4 * d * d + 2 * d * config.d_ff) + 2 * length * length * d
    last_layer = per_layer
    if config.readout_only:
        last_layer = length * 2 * d * d + 2 * d * d + 2 * d * config.d_ff + 2 * length * d
    macs = (config.n_layers - 1) * per_layer + last_layer + d * world.vocab_size
    return 2 * n * macs


def forward_flops(spec: HistorySpec, n: int) -> int:
    """Forward matmul FLOPs of `spec`'s model on `n` inputs."""
    if spec.model.kind == "mlp":
        world = spec.world
        assert isinstance(world, FeatureWorld)
        return mlp_forward_flops(world.input_dim, spec.model.hidden, world.n_outputs, n)
    assert isinstance(spec.world, TokenWorld)
    return transformer_forward_flops(spec.model, spec.world, n)


def train_step_flops(spec: HistorySpec, batch_size: int) -> int:
    """One training step (forward + backward) on a batch: 3x the forward pass."""
    return 3 * forward_flops(spec, batch_size)


def history_flops(spec: HistorySpec) -> dict[str, int]:
    """FLOPs of one history: training, and the forward passes of its recorded evaluations.

    Every record evaluates the model on the hazard, matched and task probes (3 x n_probes
    inputs); the reversion references take the activations of three anchors on the hazard and
    matched probes once. Intervention penalties (extra forward passes per step) are not counted.
    """
    train = sum(phase.steps * train_step_flops(spec, phase.batch_size) for phase in spec.phases)
    records = sum(len(phase.record_steps) for phase in spec.phases)
    evaluation = records * forward_flops(spec, 3 * spec.n_probes)
    if any(spec.measures_reversion(i) for i in range(len(spec.phases))):
        evaluation += 3 * forward_flops(spec, 2 * spec.n_probes)
    return {"train": train, "eval": evaluation, "total": train + evaluation}


def training_steps(spec: HistorySpec) -> int:
    """Model-steps in one history (the unit of `model_steps_per_s`)."""
    return sum(phase.steps for phase in spec.phases)
