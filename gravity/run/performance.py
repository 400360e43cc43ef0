"""How many histories to vmap at once: the chunk size that runs fastest per history.

Measured on 2 CPU cores with one XLA device per core and the run axis sharded
(`gravity.run.runtime.use_cpu_cores`), on a quiet machine: a history's training state (parameters,
Adam moments and gradients, ~0.4 MB for the standard MLP) has to stay in cache across a step,
and a step's many small kernels have to keep both cores busy. For the standard MLP history
(1800 steps, N = 128) the sweep ran ~21,600 model-steps/s at 4 histories per device, ~23,000 at
8, ~21,900 at 16 and ~18,300 at 32 (N = 64 at 32 per device: 18,300 against 23,200 at 8); the
110-step bench transformer history ~660-720 model-steps/s at 8 per device against ~570 at 16
and ~500 at 32. Compile time barely depends on the chunk.

Tried on the engine (same machine, paired runs in one process), each entry saying whether it
was adopted:
- drawing the next step's batch one step ahead, so the sampler overlaps the update: +8-11% on
  one device, -2% at the best chunk on two (both cores are already busy there);
- a counter-based integer hash instead of threefry for the world samplers: no gain (within
  5%, slower on two devices); threefry is ~10% of a step's kernel time;
- `jax.random.key(..., impl="rbg" | "unsafe_rbg")`: its vmap rule draws every run's bits from
  the first key of the batch, so vmapped runs no longer equal single runs (and a run's data
  would depend on its chunk); ruled out;
- disabling XLA:CPU's YNNPACK fusions (`--xla_cpu_experimental_ynn_fusion_type=`): 8% slower
  for the MLP, 40% slower for the transformer; the defaults stay.
- one `lax.scan` per phase instead of one per snapshot segment (the snapshots written into a
  stacked buffer under a `lax.cond` inside the loop; issue #25 item 3). Measured first before
  the threefry kernel below: every quick number of the seven experiments with snapshots bitwise
  equal, compile seconds at `--quick` barely moved (basin_depth 15.3 -> 15.1, metastability
  37.6 -> 35.8, witness 12.2 -> 11.1; one run each); not adopted then. Measured again with the
  kernel (session 16; one device pair, no persistent cache, two compiles each): basin_depth's
  full program, twelve segment loops before, compiles in 7.8 / 8.0 s against 9.0 / 9.5 s;
  metastability's batch-1,024 program (four segments in its safety phase) 3.4 / 3.8 against
  3.6 / 3.6 s. Adopted. (Compare compile times only with `GRAVITY_CACHE` pointing at an empty
  folder: the persistent cache otherwise serves whichever side's programs were compiled before.)
- a record's forward passes, one per probe set instead of one over the four sets concatenated
  (512 rows for the standard histories; #25 item 4), adopted (session 16): XLA drops the passes
  whose metrics the measurement does not keep, so metastability's records (harmfulness and
  alignment) read the 128 hazardous probes alone, erosion's the hazardous and task probes. A
  profile of metastability's batch-4 program had its records at 62% of the benign loop (1.84 of
  2.99 s a device). One device pair, one program each: that program ran 4.43 -> 2.78 s (its
  compile 4.6 -> 3.6 s), basin_depth's 40.0 -> 38.6 s, erosion's transformer program (one chunk
  of 16 histories) 9.98 -> 8.67 s, blocking's transformer program (its default measurement
  keeps every metric: four passes of 128 rows for one of 512) 46.5 -> 43.1 s (best of two runs,
  after the bench). Each forward is a nested `jax.jit`, traced once per measurement: four
  traced forwards had raised that transformer program's lowering from 3.9 to 5.7 s (with the
  jit 4.4 s, and 3.8 s with the skipped records' shapes read from the step-0 record instead
  of a third trace of the measurement). Bits: the MLP's records bitwise equal (metastability's
  quick numbers all equal), gradients through them not quite (basin_depth's
  `predicted_harm_gain`, 1 ulp in 7% of entries: the weight gradient sums 128 rows instead of
  512 with 384 zero rows), the transformer's records at float rounding (its kernels differ with
  the row count). Quick numbers of the 15 experiments against 9b75e21: 9 bitwise, basin_depth,
  blocking, erosion, overlap and theory within 1.2e-7, reversion 1.8e-5 (its transformer's
  Spearman correlations, rank statistics over near-ties; largest effect-size change 1.4e-6), so
  the full reversion figure was regenerated (804 of 2,791 numbers moved, at most 3.6e-7; no
  verdict changed). With the one-scan phases, the six figures at pre-tree content (cee2310
  against 8526419): cold 527.8 s against 1,560.3 s, 2.96x; warm 421.1 s against 1,400.6 s,
  3.33x; compile seconds over the 18 programs 308.2 -> 295.8.
- one scan for consecutive phases that differ only in data, learning rate, steps, records and
  snapshots (#25 item 3; `history._segments`), adopted (session 17): the standard history's P,
  H and S train in one `lax.scan` with one step body, a traced (unbatched) phase index picking
  the data kind (`lax.switch`), the learning rate and the phase's key, each phase's optimizer
  state started fresh under a `lax.cond` at its first step, the inner phases' ends kept in the
  snapshot buffer; a phase with defences, interventions, a reversion measurement or an anchored
  objective runs alone. One device pair, 16 standard transformer histories, no persistent
  cache: the P -> H -> S program lowers in 1.8-2.3 s against 2.5-3.4 s and compiles in 8.2 /
  8.5 / 9.0 s against 11.0 / 11.2 / 12.0 s; the whole history (with T) lowers in 2.3-3.3 against
  3.6-4.3 s and compiles in 12.8-14.6 s (median 13.4, six compiles) against 13.7-15.5 s (median
  15.2); erosion's transformer
  program at pre-tree content compiled 12.6 against 15.7 s (one each). The MLP gains nothing
  measurable: its P -> H -> S with metastability's four safety snapshots (10 histories, best of
  5 runs) compiles 2.7 / 3.6 against 3.7 / 3.6 s and runs 1.21 / 1.20 against 1.26 / 1.18 s,
  basin_depth's program runs 41.1 / 40.0 against 38.5 / 40.0 s. Bits: every quick number of
  the 15 experiments bitwise equal against 3735669; of a standard history's outputs only the
  transformer's P, H and S `train_loss` move (by an ulp: the loss's reduction fuses
  differently). Tried first and not kept: the optimizer reset as a `jnp.where` over the state,
  which XLA fused into Adam's update and so changed the transformer's parameters at float
  rounding (a key bias, whose gradient is only rounding noise, by up to 1e-2). The six figures
  at pre-tree content with it (b7211b7 against 8526419, one run): cold 543.1 s against 1,668.8
  s, 3.07x; warm 461.6 s against 1,488.3 s, 3.22x; compile seconds over the 18 programs 306.9
  against 295.8 in the previous run, on a machine the baseline's seconds say was ~7% faster then,
  so the figures do not show the compile gain measured alone.
- the transformer's attention written by hand (#25 item 2; one process, the plain step vmapped
  over N = 64 / 8): merged-head einsums 73.3 / 11.7 ms and fused QKV 72.0 / 10.0 ms a step against
  Flax's `MultiHeadAttention`'s 65.6 / 8.8 ms; not adopted. Adopted: the last block at the
  readout position only (`ModelConfig.readout_only`), 49.0 -> 32.2 ms at N = 64 and 5.33 ->
  4.00 ms at N = 8 (`benchmarks/results/roofline.json`); whole figures at full size, cold:
  blocking 1.31x, erosion 1.13x faster (session 12). On in the presets' transformers since
  4b7914a, together with -O2 below (quick numbers there).
- one copy of the measurement per phase program (#25 items 3 and 4): each phase a `lax.scan`
  over its record points that measures and then trains to the next point in a
  `lax.fori_loop`, so the record at step 0 is no longer a second copy outside the loop and no
  step carries a `lax.cond` or a zero-filled record (27af61f). Every quick number of the 15
  experiments equal to 4.3e-8 (13 bitwise), but compile of the standard transformer history
  (N = 16, empty cache, one run each) only 16.0 -> 15.0 s (MLP 6.7 -> 6.5 s), and the six quick
  figures, cold, side by side with the commit before (`python -m benchmarks.figures
  --baseline 20ddeae --quick`): 307.9 s against 298.7 s, 0.97x; reversion, whose benign phase
  records every step (a loop of one step per point), 120.7 s against 112.3 s. Reverted. (A
  trivial measurement in place of the real one, both copies in all four phases, compiles that
  history in 10.2 s: the measurement is a third of its compile, but halving its copies saved 1
  s, not 3.)
- one training loop for both kinds of `reversion`'s witnesses (the control witnesses and the
  un-refuse witnesses, a phase of the witness's size each, differing in data only): measured,
  not built. Leaving the un-refuse witnesses out of the quick program saves 6.3 s (MLP, 21.3 ->
  15.0 s) and 6.2 s (transformer, 44.8 -> 38.6 s) of compile, the most one shared loop could
  save per program, against drawing both kinds' batches at every step of all six witnesses.
- threefry's unrolled lowering on XLA:CPU (JAX lowers it there as a rolled `fori_loop` of five
  iterations per draw, to compile faster; the unrolled form is what other platforms get, and
  the bits are the same: every output of a standard history bitwise equal). One process, one
  device, 16 histories, empty cache: the transformer's compile 13.9 / 14.3 -> 16.9 / 18.0 s and
  its run 26.5 / 25.1 -> 23.7 / 24.4 s (3-11% faster, 7% over both pairs); the MLP's compile
  5.9 -> 4.9 s, its run unchanged. But the whole blocking figure at pre-tree content, cold, as
  the engine lays it out over both cores, one run each: 118.3 s rolled against 122.2 s
  unrolled (compile 57.5 -> 60.9 s, run 81.6 -> 80.7 s). Not adopted: with both cores busy the
  loop's overhead is hidden, as with drawing the batch a step ahead.
- LLVM -O1 / -O2 instead of XLA:CPU's default backend optimisation (`XLA_FLAGS=
  --xla_backend_optimization_level=N`, or per program `compile({"xla_backend_optimization_level":
  N})`). One process, one device, 16 standard histories, empty cache: transformer compile 13.9 /
  14.3 -> 11.2 s at both, run 26.5 / 25.1 -> 26.0 (-O1) / 23.6 (-O2) s; MLP compile 5.9 -> 3.9 /
  4.4 s, run 4.0 -> 4.1 s; every output bitwise equal. Whole figures at pre-tree content, cold,
  every program at that level, one run each: blocking 118.3 -> 113.0 (-O1) / 111.9 (-O2) s,
  erosion 112.8 -> 99.5 / 102.0 s, but metastability (MLP, run-bound) 158.8 -> 162.9 / 163.6 s
  (its run 135 -> 145 s). -O2 for the transformer's programs alone (per program, yielding to a
  level set in XLA_FLAGS) moved the quick numbers: 11 experiments bitwise, reversion 1.1e-7,
  blocking 5.1e-7, overlap 2.9e-6 (its step-1 alignment again, the number `readout_only`
  moved). Adopted for the transformer's programs on CPU together with `readout_only` (4b7914a,
  `gravity.run.sweep.runner.compile_options`, held in the store key): quick numbers of the 15
  experiments against 520a584, 13 within 1e-6 (11 bitwise; blocking 3.2e-7, erosion 9.1e-8),
  overlap 2.1e-6 and reversion 5.7e-5 (its un-refuse effect size), so those two full figures
  were regenerated with it.
- threefry as one native kernel (#25 item 3; `gravity.run.threefry`), adopted: JAX lowers every
  random draw on CPU to a rolled loop of five iterations, and XLA compiles each loop on its own.
  Measured first with a stand-in hash (wrong bits, no loop): one device pair, empty cache, the
  erosion transformer's program compiled in 8.6 s against 12.2 s and metastability's first MLP
  program in 3.8 s against 6.8 s, so the loops were 30-45% of compile. The kernel (C++, built
  with the system's g++, GCC's `target_clones` for AVX-512 / AVX2) gives JAX's bits exactly
  (Random123's known answers, a numpy reference, recorded draws: tests/test_threefry.py). It
  serves one device's arrays only, so the runner's program became a `shard_map` of the vmapped
  runs over the devices instead of a jit that XLA partitions (with the kernel in a partitioned
  program, XLA gathered its operands onto every device). At `--quick`, empty cache, one run
  each: erosion's transformer program compiled 15.6 s (before) -> 13.6 s (`shard_map` alone)
  -> 9.1 s (both), metastability's MLP program 6.3 -> 6.1 -> 3.6 s; every output of both
  programs bitwise equal; runs 4.40 -> 4.68 s and 0.67 -> 0.59 s (the kernel's first build,
  `-march=native`, not the shipped `target_clones` one). The hash alone, 16 vmapped draws of
  2,112 / 33,792 / 256 / 10 uniforms on one device: 249 / 1,086 / 62 / 27 us with JAX's loop,
  126 / 935 / 18 / 10 us with the kernel.
  Every quick number of the 15 experiments bitwise equal against df2f710 (9,822 numbers). The
  six figures at pre-tree content (`python -m benchmarks.figures --warm`, 6978281 against
  8526419): cold 542.5 s against 1,582.0 s, 2.92x (630.3 s, 2.54x before the kernel), compile
  seconds summed over their 18 programs 449.8 -> 308.2; warm 435.9 s against 1,369.7 s, 3.14x.
- measured this session and not adopted: XLA's GSPMD partitioner instead of Shardy
  (`jax_use_shardy_partitioner=False`; erosion's transformer program compiled 12.0 / 12.9 s
  against 13.2 / 13.0 s, noise); attention written as multiply-and-reduce instead of dots
  (no 8x8 matmuls: the step 50.7 ms against 32.0 ms at N = 64, 5.77 against 3.20 at N = 8);
  and two readings of where time goes. The MLP's benign step at batch 1,024 (metastability's
  largest program) runs at 85% of the rate of the same matmuls written bare in JAX on the same
  device (124.6 against 147.4 GFLOP/s; 74% at batch 64), so the MLP's remaining distance to the
  peak is XLA's matmuls, not the engine. Tracing a transformer program (4-5 s, in both cold and
  warm runs) spreads over JAX's tracing machinery (scan's batching rule, jaxpr building), not
  over this library's code.

What a program costs, two ways: `best_seconds` is the one timer (wall seconds on this machine,
best of a few runs of an already compiled program); `flops` is XLA's own count from the compiled
program's cost analysis (deterministic, the same on every machine). `step_overhead` compiles a
phase under each variant alone and compares either cost with the plain phase's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

PER_DEVICE = {"mlp": 8, "transformer": 8}
"""Histories per XLA device at which the standard histories ran fastest."""


def best_chunk_size(spec: Any, n_devices: int = 1) -> int:
    """Histories per vmapped chunk for `spec` on `n_devices` devices (a multiple of them); a
    spec without a model kind (another engine's) gets the default 8 per device."""
    kind = getattr(getattr(spec, "model", None), "kind", None)
    return PER_DEVICE.get(kind, 8) * max(1, n_devices)


def best_seconds(program: Callable, args: tuple, repeats: int = 3) -> float:
    """The one timer: the best of `repeats` wall-clock runs of `program(*args)`, each waited for
    (`jax.block_until_ready`). Pass a compiled program, so compilation is never timed."""
    import jax

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(program(*args))
        best = min(best, time.perf_counter() - start)
    return best


def flops(program: Any, args: tuple = ()) -> float:
    """XLA's count of a compiled program's floating-point operations (its cost analysis):
    deterministic and machine-independent, unlike a timing. A loop's body is counted once, so a
    phase program counts about one step plus its setup. `args` is unused (the signature of a
    cost, as `best_seconds`)."""
    analysis = program.cost_analysis()
    if isinstance(analysis, list | tuple):  # older JAX: one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"])


Cost = Callable[[Any, tuple], float]
"""A program's cost: (compiled program, its arguments) -> a number (`best_seconds`, `flops`)."""


def relative_costs(
    programs: Mapping[str, tuple[Any, tuple]], cost: Cost = best_seconds, reference: str = "plain"
) -> dict[str, float]:
    """{label: cost / the reference's cost - 1} for every (program, arguments) but the
    reference's."""
    costs = {label: cost(program, args) for label, (program, args) in programs.items()}
    return {label: costs[label] / costs[reference] - 1.0 for label in costs if label != reference}


def compiled_vmap(function: Callable, args: tuple) -> Any:
    """`function` vmapped over the leading axis of every argument, compiled for `args` (so a
    cost never includes compilation)."""
    import jax

    return jax.jit(jax.vmap(function)).lower(*args).compile()


def phase_programs(spec, knobs, phase: str, variants: Mapping, runs: int = 8, steps: int = 20):
    """`phase` compiled alone as "plain" and under each variant, each for `steps` steps on `runs`
    vmapped histories continued from one shared trunk (computed once, not part of a program).

    variants: {label: (phase field changes, knob changes)}; each variant's program holds only its
    own machinery. Returns {label: (compiled program, its arguments)}.
    """
    import dataclasses

    import jax

    from gravity.engine import history
    from gravity.engine.spec import repeat_knobs, with_phase

    before = spec.phases[spec.phase_names.index(phase) - 1].name
    keys = history.seed_keys(range(runs))
    base = repeat_knobs(knobs, runs)
    trunk = jax.jit(jax.vmap(lambda key, k: history.run_trunk(key, spec, k, before)))(keys, base)
    programs = {}
    for label, (phase_changes, knob_changes) in {"plain": ({}, {}), **variants}.items():
        variant = with_phase(spec, phase, steps=steps, dense_steps=0, n_records=1, **phase_changes)
        batch = repeat_knobs(dataclasses.replace(knobs, **knob_changes), runs)

        def run(key, k, state, variant=variant):
            return history.run_phases(key, variant, state, k, (variant.phase(phase),))[0].params

        args = (keys, batch, trunk.state)
        programs[label] = (compiled_vmap(run, args), args)
    return programs


def step_overhead(
    spec, knobs, phase: str, variants: Mapping, runs: int = 8, steps: int = 20, cost=best_seconds
) -> dict[str, float]:
    """Extra cost per step of `phase` under each variant over the plain phase, each compiled
    alone (`phase_programs`): {label: cost ratio - 1}, by the one timer unless `cost` is
    another (`flops` for a deterministic count)."""
    return relative_costs(phase_programs(spec, knobs, phase, variants, runs, steps), cost)
