"""Baselines B and C in PyTorch (an optional, bench-only dependency), on the bench MLP history.

Both train the same MLP (33-128-128-16, ReLU, PyTorch's default init), batch 64, a fresh Adam
(lr 1e-3, the optax defaults) per phase, the same step counts, and evaluate on the same probes
at the same record steps (probabilities of the compliant answer and of REFUSE, task accuracy and
loss, fetched to the host). Data: batches pre-sampled by the JAX world sampler into a pool of a
few batches per phase and model, cycled; sampling is not timed (in the baselines' favour).

- B ("torch_sequential"): one model at a time, eager, the way neighbouring research code trains;
  measured with 1 thread and with PyTorch's default threads, the better reported.
- C ("torch_batched"): all N models at once as batched matmuls (`torch.baddbmm` over a leading
  model axis), one Adam over the stacked parameters (Adam is elementwise, so this is N
  independent Adams); the strongest hand-written peer. Also measured with 1 thread and the
  default, the better reported.
"""

from __future__ import annotations

import importlib.metadata
import time

import numpy as np

from benchmarks.config import Scale, bench_spec
from benchmarks.machine import best_of, peak_rss_mb

POOL = 8


def available() -> str | None:
    """The installed torch version, or None (then B and C are reported as missing)."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _metrics(torch, probs_MxPxC, data, n_classes):
    """The behavioural metrics of `gravity.engine.history.behaviour` from probe probabilities."""
    n = data["hazard_labels"].shape[0]
    hazard, matched, task = probs_MxPxC[:, :n], probs_MxPxC[:, n : 2 * n], probs_MxPxC[:, 2 * n :]
    rows = torch.arange(n)
    return torch.stack(
        [
            hazard[:, rows, data["hazard_labels"]].mean(-1),
            hazard[:, :, n_classes].mean(-1),
            matched[:, rows, data["matched_labels"]].mean(-1),
            (task.argmax(-1) == data["task_labels"]).float().mean(-1),
            -torch.log(task[:, rows, data["task_labels"]]).mean(-1),
        ],
        -1,
    )


def _torch_data(torch, data: dict) -> dict:
    out = {}
    for name, value in data.items():
        if name == "probes":
            out[name] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in value.items()}
        else:
            inputs, labels = value
            out[name] = (torch.from_numpy(inputs), torch.from_numpy(labels))
    return out


def torch_sequential(scale: Scale, data: dict, threads: int | None) -> dict:
    """Baseline B: `scale.sequential_histories` MLP histories, one model at a time, eager."""
    import torch
    from torch import nn

    spec = bench_spec("mlp", scale)
    if threads is not None:
        torch.set_num_threads(threads)
    world = spec.world
    widths = (world.input_dim, *spec.model.hidden)
    n_classes = world.n_classes
    tensors = _torch_data(torch, data)
    probes = tensors["probes"]

    def make_model():
        layers = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(widths[-1], world.n_outputs))

    def evaluate(model):
        with torch.no_grad():
            probs = torch.softmax(model(probes["inputs"]), -1)[None]
            return _metrics(torch, probs, probes, n_classes)[0].tolist()

    def train(model_index: int):
        torch.manual_seed(model_index)
        model = make_model()
        logged = []
        for phase in spec.phases:
            inputs, labels = tensors[phase.name]
            m = model_index % inputs.shape[1]
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            record = set(phase.record_steps.tolist())
            logged.append(evaluate(model))
            for t in range(phase.steps):
                x, y = inputs[t % POOL, m], labels[t % POOL, m]
                loss = nn.functional.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if t + 1 in record:
                    logged.append((loss.item(), evaluate(model)))
        return logged

    def run() -> float:
        start = time.perf_counter()
        for i in range(scale.sequential_histories):
            train(i)
        return time.perf_counter() - start

    train(0)  # warm-up: allocator, kernels
    return {
        "n": scale.sequential_histories,
        **best_of(run, min_total_s=scale.repeat_below_s / 4, max_runs=scale.max_runs),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": peak_rss_mb(),
    }


def torch_batched(scale: Scale, data: dict, n: int, threads: int | None) -> dict:
    """Baseline C: N MLPs at once with batched matmuls. Its cost is a fixed time per training
    step plus a fixed time per evaluation, so both are timed (about `batched_model_steps / N`
    steps and a few evaluations) and combined into the time of the whole bench history:
    steps x step time + records x evaluation time."""
    import torch

    spec = bench_spec("mlp", scale)
    if threads is not None:
        torch.set_num_threads(threads)
    world = spec.world
    widths = (world.input_dim, *spec.model.hidden, world.n_outputs)
    n_classes = world.n_classes
    tensors = _torch_data(torch, data)
    probes = tensors["probes"]
    generator = torch.Generator().manual_seed(0)

    params = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / np.sqrt(a)  # nn.Linear's default init
        w = (torch.rand(n, a, b, generator=generator) * 2 - 1) * bound
        bias = (torch.rand(n, 1, b, generator=generator) * 2 - 1) * bound
        params += [w.requires_grad_(), bias.requires_grad_()]

    def forward(x_MxBxD):
        h = x_MxBxD
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = torch.relu(h)
        return h

    probe_inputs = probes["inputs"].expand(n, *probes["inputs"].shape)

    def evaluate():
        with torch.no_grad():
            probs = torch.softmax(forward(probe_inputs), -1)
            return _metrics(torch, probs, probes, n_classes).numpy()

    inputs, labels = tensors[spec.phases[0].name]
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def train(steps: int):
        for t in range(steps):
            x, y = inputs[t % POOL, :n], labels[t % POOL, :n]
            logits = forward(x)
            loss = (
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
                )
                / x.shape[1]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return loss.item()

    timed_steps = max(min(scale.batched_model_steps // n, 200), min(20, scale.batched_model_steps))
    steps = sum(phase.steps for phase in spec.phases)
    records = sum(len(phase.record_steps) for phase in spec.phases)
    evaluations = 5
    parts: dict[float, tuple[float, float]] = {}

    def run() -> float:
        start = time.perf_counter()
        train(timed_steps)
        step_s = (time.perf_counter() - start) / timed_steps
        start = time.perf_counter()
        for _ in range(evaluations):
            evaluate()
        eval_s = (time.perf_counter() - start) / evaluations
        history_s = steps * step_s + records * eval_s
        parts[history_s] = (step_s, eval_s)
        return history_s

    train(5)  # warm-up
    evaluate()
    timed = best_of(run, min_total_s=scale.repeat_below_s / 4, max_runs=scale.max_runs)
    step_s, eval_s = parts[timed["run_s"]]
    return {
        "n": n,
        **timed,
        "step_s": step_s,
        "eval_s": eval_s,
        "timed_steps": timed_steps,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": peak_rss_mb(),
    }
