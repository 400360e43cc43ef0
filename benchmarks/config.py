"""What the bench runs: the bench histories and the three scales (full, quick, tiny).

The full bench runs the standard MLP history itself (1500 + 100 + 100 + 100 steps). The
transformer is ~30x more expensive per step, so its bench history keeps the standard phases,
model, batch, optimizer and record schedule with fewer steps (40 + 20 + 20 + 30), so that
`make bench` fits in about fifteen minutes on 2 cores; its records (60, each a forward pass on
384 probe prompts) are then most of the work, unlike in the full 1100-step history. The quick
scale shortens both.
"""

from __future__ import annotations

import dataclasses

from gravity.engine.history import HistorySpec
from gravity.engine.presets import standard_spec

KINDS = ("mlp", "transformer")


@dataclasses.dataclass(frozen=True)
class Scale:
    """One size of the bench.

    steps: per model kind, the step count of each phase of the bench history (by phase name).
    sizes: the numbers of histories N measured per kind.
    sequential_histories: histories actually trained one at a time by baselines A and B (their
        throughput is then the same at every N: they train one model at a time).
    batched_model_steps: model-steps that baseline C times at each N (between 20 and 200 steps;
        its time per step and per evaluation are constant, so the bench history's time is
        composed from the two).
    repeat_below_s: timed runs are repeated (`max_runs` at most, the fastest kept) until they
        have taken this long together (the baselines a quarter of it), and while other
        processes took more than `machine.BUSY_CORES` cores from the last one.
    isolate: run every measurement in its own process (separable peak memory, clean XLA flags);
        the tiny scale (for tests) runs in the calling process.
    tree_seeds, tree_variants: the tree-against-straight measurement: this many seeds, each
        with the last phase run at every `benign_overlap` of `tree_variants`.
    """

    name: str
    steps: dict[str, dict[str, int]]
    sizes: dict[str, tuple[int, ...]]
    sequential_histories: int
    batched_model_steps: int
    repeat_below_s: float = 20.0
    max_runs: int = 3
    matmul_sizes: tuple[int, ...] = (1024, 2048)
    size: str = "standard"
    isolate: bool = True
    tree_seeds: int = 16
    tree_variants: tuple[float, ...] = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 1.0)


SCALES = {
    "full": Scale(
        name="full",
        steps={
            "mlp": {"pretrain": 1500, "helpful": 100, "safety": 100, "benign": 100},
            "transformer": {"pretrain": 40, "helpful": 20, "safety": 20, "benign": 30},
        },
        sizes={"mlp": (1, 16, 64, 256, 1024), "transformer": (1, 16, 64, 256, 1024)},
        sequential_histories=2,
        batched_model_steps=40_000,
    ),
    "quick": Scale(
        name="quick",
        steps={
            "mlp": {"pretrain": 300, "helpful": 100, "safety": 100, "benign": 100},
            "transformer": {"pretrain": 20, "helpful": 10, "safety": 10, "benign": 25},
        },
        sizes={"mlp": (1, 16, 64), "transformer": (1, 16)},
        sequential_histories=1,
        batched_model_steps=4_000,
        repeat_below_s=5.0,
        matmul_sizes=(1024,),
        tree_seeds=4,
        tree_variants=(0.0, 0.25, 0.5, 1.0),
    ),
    "tiny": Scale(
        name="tiny",
        steps={"mlp": {"pretrain": 6, "benign": 2}, "transformer": {"pretrain": 4, "benign": 2}},
        sizes={"mlp": (2,), "transformer": (2,)},
        sequential_histories=1,
        batched_model_steps=8,
        repeat_below_s=0.0,
        max_runs=1,
        matmul_sizes=(128,),
        size="tiny",
        isolate=False,
        tree_seeds=2,
        tree_variants=(0.0, 1.0),
    ),
}


def bench_spec(kind: str, scale: Scale) -> HistorySpec:
    """The standard history of `kind` (or the tiny one) with the scale's phase lengths; phases
    the scale does not list are left out (the tiny scale, for tests, keeps one)."""
    spec = standard_spec(kind, scale.size, keep_params=False)
    steps = scale.steps[kind]
    phases = tuple(
        dataclasses.replace(
            phase, steps=steps[phase.name], dense_steps=min(phase.dense_steps, steps[phase.name])
        )
        for phase in spec.phases
        if phase.name in steps
    )
    return dataclasses.replace(spec, phases=phases)
