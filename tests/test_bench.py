"""The bench's FLOP counter against a hand count, and a tiny bench run that writes every key."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from benchmarks import flops
from benchmarks.bench import KEYS, run_bench, table, write
from benchmarks.config import SCALES, bench_spec
from gravity.engine.models import network
from gravity.engine.presets import standard_spec


def test_mlp_flops_match_a_hand_count():
    spec = standard_spec("mlp")
    # 33 -> 128 -> 128 -> 16 on a batch of 64: forward 2 * B * sum(in * out), training 3x that.
    forward = 2 * 64 * (33 * 128 + 128 * 128 + 128 * 16)
    assert flops.forward_flops(spec, 64) == forward
    assert flops.train_step_flops(spec, 64) == 3 * forward == 8_699_904
    counted = flops.history_flops(spec)
    records = sum(len(p.record_steps) for p in spec.phases)
    assert counted["train"] == 1800 * 3 * forward
    # every record evaluates 3 x 128 probes; v_rev takes 3 anchors on 2 x 128 probes once
    probes = 2 * (33 * 128 + 128 * 128 + 128 * 16)
    assert counted["eval"] == records * 384 * probes + 3 * 256 * probes
    assert counted["total"] == counted["train"] + counted["eval"]


def test_transformer_flops_match_a_hand_count():
    preset = standard_spec("transformer")
    every_position = dataclasses.replace(preset.model, readout_only=False)
    spec = dataclasses.replace(preset, model=every_position)
    # d 32, d_ff 128, 2 layers, 8 tokens, vocab 8 + 2 + 32 = 42, unembedding at the last token
    per_layer = 8 * (4 * 32 * 32 + 2 * 32 * 128) + 2 * 8 * 8 * 32
    assert flops.forward_flops(spec, 1) == 2 * (2 * per_layer + 32 * 42)
    # readout_only: the last layer's K, V at 8 tokens, Q, output and MLP at one, one query
    last = 8 * 2 * 32 * 32 + 2 * 32 * 32 + 2 * 32 * 128 + 2 * 8 * 32
    readout = dataclasses.replace(spec, model=dataclasses.replace(spec.model, readout_only=True))
    assert flops.forward_flops(readout, 1) == 2 * (per_layer + last + 32 * 42)


def test_transformer_flops_within_a_tenth_of_xla_with_either_layout():
    spec = standard_spec("transformer")
    tokens = jnp.zeros((32, spec.world.prompt_length), jnp.int32)
    for readout_only in (False, True):
        changed = dataclasses.replace(spec.model, readout_only=readout_only)
        layout = dataclasses.replace(spec, model=changed)
        net = network(layout.model, layout.world)
        compiled = jax.jit(net.apply).lower(net.init(jax.random.key(0)), tokens).compile()
        analysis = compiled.cost_analysis()
        xla = (analysis if isinstance(analysis, dict) else analysis[0])["flops"]
        # XLA also counts the elementwise work (softmax, LayerNorm, GELU, biases)
        assert 0.9 * xla <= flops.forward_flops(layout, 32) <= xla


@pytest.fixture(scope="module")
def tiny_bench():
    # the defences' step costs compile every defence on the standard histories: `make bench`
    # measures them; tests/test_performance.py checks the function that does it
    return run_bench(
        SCALES["tiny"],
        kinds=("mlp",),
        torch=False,
        defences=False,
        log=lambda _: None,
        roofline=False,
    )


def test_a_tiny_bench_writes_every_key(tiny_bench, tmp_path):
    out = tiny_bench
    assert out["matmul_peak_gflops"] > 0
    for n in SCALES["tiny"].sizes["mlp"]:
        row = out["mlp"][str(n)]
        assert set(KEYS) <= set(row)
        for key in KEYS[:6] + ("ratio_vs_jax_sequential",):
            assert row[key] is not None and row[key] > 0, key
        # torch was left out: its ratios are missing, and the report says why
        assert row["ratio_vs_torch_sequential"] is None
        assert row["ratio_vs_torch_batched"] is None
    assert set(out["missing"]) == {"torch_sequential", "torch_batched"}
    path = tmp_path / "bench.json"
    write(out, path)
    assert json.loads(path.read_text())["mlp"].keys() == out["mlp"].keys()
    assert "mlp" in table(out)


def test_the_tiny_bench_times_the_same_histories_straight_and_as_a_tree(tiny_bench):
    row = tiny_bench["tree"]["mlp"]
    scale = SCALES["tiny"]
    assert row["branch_after"] == "pretrain"
    for shape in ("straight", "tree"):
        assert row[shape]["n"] == scale.tree_seeds * len(scale.tree_variants)
        assert row[shape]["histories_per_s"] > 0
    assert row["ratio_tree_vs_straight"] == pytest.approx(
        row["tree"]["histories_per_s"] / row["straight"]["histories_per_s"]
    )
    assert "branched after pretrain" in table(tiny_bench)


def test_the_tiny_bench_history_is_the_tiny_preset_shortened():
    spec = bench_spec("mlp", SCALES["tiny"])
    assert spec.phase_names == ("pretrain", "benign")
    assert spec.phases[0].steps == SCALES["tiny"].steps["mlp"]["pretrain"]
    assert spec.model == standard_spec("mlp", "tiny").model


def test_the_roofline_row_bounds_the_step_by_its_flops_or_its_bytes():
    from benchmarks import roofline

    assert roofline.bandwidth_gbs(1 << 10, passes=4, repeats=1) > 0
    bandwidths = {"cache": 100.0, "main_memory": 10.0}
    row = roofline.step_row("mlp", 1, steps=2, peak=100.0, bandwidths=bandwidths)
    assert row["matmul_flops"] == flops.train_step_flops(standard_spec("mlp"), 64)
    assert row["xla_bytes_accessed"] > 0 and row["step_s"] > 0
    for name, gbs in bandwidths.items():
        memory = row["xla_bytes_accessed"] / (gbs * 1e9)
        assert row["bound_s"][name] == max(row["compute_bound_s"], memory)
    assert row["compute_bound_s"] == row["matmul_flops"] / 100e9
    assert "| mlp | 1 |" in roofline.table({"rows": {"mlp": [row]}})


def test_the_figure_timer_runs_this_engine_at_the_baselines_content(tmp_path):
    """Each engine's own CLI (read from its tree); an engine with the `--set` knobs runs with
    those that switch off what was added after the baseline (so both run the same science);
    the table's ratio is before/now."""
    from benchmarks import figures

    new, old = tmp_path / "new", tmp_path / "old"
    (new / "gravity" / "run").mkdir(parents=True)
    (new / "gravity" / "run" / "cli.py").touch()
    (old / "gravity").mkdir(parents=True)
    (old / "gravity" / "cli.py").touch()
    now = figures.command(new, "blocking", Path("out"), quick=False)
    before = figures.command(old, "blocking", Path("out"), quick=False)
    assert now[1:3] == ["-m", "gravity.run.cli"] and before[1:3] == ["-m", "gravity.cli"]
    assert now[now.index("--set") + 1] == "dose_strengths=" and "--set" not in before
    assert "--quick" in figures.command(old, "erosion", Path("out"), quick=True)
    assert set(figures.PRE_TREE) <= set(figures.FIGURES) == set(figures.BEFORE_HISTORIES)
    runs = [
        {"figure": f, "cache": "cold", "engine": e, "wall_s": w, "histories": 160}
        for f, e, w in (
            ("erosion", "current", 50.0),
            ("erosion", "baseline", 150.0),
            ("overlap", "current", 30.0),  # its baseline run has not finished: left out
        )
    ]
    result = figures.summarise([{**r, "others_cores": 0.0} for r in runs], "now", "before", False)
    assert result["totals"] == {"current_cold_s": 50.0, "baseline_cold_s": 150.0, "cold_figures": 1}
    assert result["speedup"] == {"cold": 3.0}
    assert "| erosion | 160 / 160 | 50.0 | 150.0 | 3.00x |" in figures.table(result)
    warm = [{**r, "cache": "warm", "wall_s": r["wall_s"] / 2} for r in runs]
    result = figures.summarise([{**r, "others_cores": 0.0} for r in runs + warm], "n", "b", False)
    assert result["speedup"] == {"cold": 3.0, "warm": 3.0}
    assert "| erosion | 160 / 160 | 50.0 | 150.0 | 3.00x | 25.0 | 75.0 | 3.00x |" in figures.table(
        result
    )


def test_the_figure_timer_reads_programs_and_compile_seconds_from_the_figures_json(tmp_path):
    """Programs and compile seconds come from the figure's own `sweeps.*.timings` (summed over
    every sweep's programs); an older engine's JSON without them, or no JSON, says nothing,
    and the table's sum row is left empty unless every figure's cold run said."""
    from benchmarks import figures

    timings = {"program_0": {"compile_s": 10.25, "run_s": 3.0}, "program_1": {"compile_s": 5.0}}
    timings["program_1"]["run_s"] = 1.04
    sweeps = {"mlp": {"timings": timings}, "t": {"timings": {}}, "loaded": {"timings": None}}
    report = {"n_histories": 160, "sweeps": sweeps}
    (tmp_path / "erosion.json").write_text(json.dumps(report))
    (tmp_path / "overlap.json").write_text(json.dumps({"n_histories": 8, "wall_s": 1.0}))
    assert figures.figure_facts(tmp_path, "erosion") == {
        "histories": 160,
        "programs": 2,
        "compile_s": 15.2,
        "run_s": 4.0,
    }
    unsaid = {"programs": None, "compile_s": None, "run_s": None}
    assert figures.figure_facts(tmp_path, "overlap") == {"histories": 8, **unsaid}
    assert figures.figure_facts(tmp_path, "blocking") == {"histories": None, **unsaid}
    runs = [
        {"figure": f, "cache": "cold", "engine": e, "wall_s": w, "histories": 160, **facts}
        for f, e, w, facts in (
            ("erosion", "current", 50.0, {"programs": 2, "compile_s": 15.2, "run_s": 4.0}),
            ("erosion", "baseline", 150.0, unsaid),
            ("overlap", "current", 30.0, {"programs": 1, "compile_s": 4.0, "run_s": 9.0}),
            ("overlap", "baseline", 60.0, unsaid),
        )
    ]
    result = figures.summarise([{**r, "others_cores": 0.0} for r in runs], "now", "before", False)
    text = figures.table(result)
    assert "| erosion | 160 / 160 | 50.0 | 150.0 | 3.00x | 2 | 15.2 |" in text
    assert text.endswith("| **80.0** | **210.0** | **2.62x** | **3** | **19.2** |")
    runs[2] |= unsaid
    result = figures.summarise([{**r, "others_cores": 0.0} for r in runs], "now", "before", False)
    assert figures.table(result).endswith("| **2.62x** |  |  |")


def test_the_figure_table_is_written_from_a_results_json_with_one_line_errors(tmp_path, capsys):
    from benchmarks import figures

    runs = [
        {"figure": "erosion", "cache": "cold", "engine": e, "wall_s": w, "histories": 160}
        for e, w in (("current", 50.0), ("baseline", 150.0))
    ]
    source = tmp_path / "figures.json"
    result = figures.summarise([{**r, "others_cores": 0.0} for r in runs], "now", "before", False)
    source.write_text(json.dumps(result))
    page = tmp_path / "page.md"
    page.write_text("intro\n" + "\nSTALE TABLE\n".join(figures.PAGE_MARKERS) + "\nafter\n")
    assert figures.main(["--from", str(source), "--page", str(page)]) == 0
    text = page.read_text()
    assert figures.table(result) in text and "STALE TABLE" not in text and text.endswith("after\n")
    assert figures.main(["--from", str(tmp_path / "missing.json")]) == 2
    page.write_text("no markers\n")
    assert figures.main(["--from", str(source), "--page", str(page)]) == 2
    assert figures.main(["--page", str(page)]) == 2  # refused before any timing
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("benchmarks.figures: ") for e in errors)
