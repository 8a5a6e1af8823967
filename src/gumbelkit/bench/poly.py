"""Polynomial programming benchmark (Liu et al. 2023, "Bridging Discrete and Backpropagation:
Straight-Through and Beyond", section 6.1).

Protocol (the paper's, the defaults of :class:`PolyConfig`): logits ``theta`` of shape
``(128, 2)`` initialised U(-0.01, 0.01); ``z_i = 1`` when variable i takes category 0; the loss of
a sample is ``(1/128) sum_i |z_i - 0.45|^p`` for p in {1.5, 2, 3}; each step draws 64 independent
samples of all 128 variables from the same theta, the training loss of the step is their mean and
its gradient is the estimator's at tau = 1 (``reinforce`` without a baseline, ``gr`` with k = 100,
``gst`` with its default gap, ``softmax`` without noise: the relaxed value ``softmax(theta)`` in
place of a sample); Adam, learning rate 1e-3, 8,000 steps, 10 seeds.

Metrics: the paper's, the mean training loss of the last 200 steps; and the exact expected loss

    E[loss] = (1/128) sum_i [P(z_i = 1) 0.55^p + P(z_i = 0) 0.45^p],

minimised at P(z_i = 1) = 0 with value ``0.45^p``, and its gap to that optimum,
``(0.55^p - 0.45^p) mean_i P(z_i = 1)`` (computed as such, free of cancellation). The noise-free
``softmax`` minimises the relaxed loss instead, whose optimum is P(z_i = 1) = 0.45: its gap stays
at ``0.45 (0.55^p - 0.45^p)``.

All seeds train at once: ``theta`` has shape ``(seeds, 128, 2)`` and the loss is a per-row ``f``
of :func:`gumbelkit.expectation` (rows are seeds), so each seed gets its own gradient (a
score-function estimator weights each row's log-probability by that row's loss only), and one
Adam over the tensor is the seeds' independent Adams (it acts elementwise). Seed s starts from
the same ``theta`` whatever the estimator and the number of seeds.

Each (p, estimator) result is recorded in ``runs.sqlite`` of the output directory as soon as it
finishes (:class:`gumbelkit.lab.records.RunStore`, keyed by a digest of :class:`PolyConfig`) and
reused by the next run with the same configuration. :func:`run_poly` writes ``poly.md``,
``poly.csv``, ``poly.json`` and one convergence figure ``poly-p{p}.png`` per power.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..estimators import ESTIMATORS as REGISTRY
from ..expectation import expectation
from ..lab.experiment import ExperimentConfig
from ..lab.plotting import plt, save
from ..lab.runner import machine_description, resolve_device, torch_threads
from ..lab.statistics import bootstrap
from .common import (
    check_estimators,
    interval_fields,
    interval_text,
    markdown_footer,
    recording,
    write_csv,
    write_json,
)
from .problems import poly_loss

__all__ = ["POWERS", "ESTIMATORS", "PolyConfig", "seed_losses", "initial_logits", "optimum",
           "exact_gap", "train", "run_poly"]

EXPERIMENT = "bench-poly"
TARGET = 0.45
POWERS = (1.5, 2.0, 3.0)
ESTIMATORS = ("reinforce", "rloo", "st", "st-gs", "gr", "gst", "reinmax", "softmax")
# torch CPU threads while training: this workload is many small operations, and on a loaded
# 2-core machine 1 thread measured 5-35 ms per step (gr k=100: 2.5 s) against 100-550 ms (3.3 s)
# with 2 threads
THREADS = 1
CURVE_POINTS = 200  # exact-loss evaluations per run, for the convergence figure
NOISE_SEED = 0
COLUMNS = ("power", "estimator", "seeds", "steps", "optimum", "train_last", "train_last_low",
           "train_last_high", "exact", "exact_low", "exact_high", "gap", "gap_low", "gap_high",
           "seconds_per_step")


@dataclass
class PolyConfig(ExperimentConfig):
    """The protocol of one benchmark run; its digest keys the recorded results."""

    seeds: int = 10
    steps: int = 8000
    variables: int = 128
    samples: int = 64
    lr: float = 1e-3
    tau: float = 1.0
    init: float = 0.01  # theta ~ U(-init, init)
    gr_k: int = 100
    window: int = 200  # the training loss is averaged over the last `window` steps
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("seeds", "steps", "variables", "samples", "gr_k", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    def options(self, estimator: str) -> dict[str, Any]:
        """The estimator's options: ``gr`` takes ``k``; the others run with their defaults."""
        return {"k": self.gr_k} if estimator == "gr" else {}


def optimum(power: float) -> float:
    """The minimum of the expected loss, ``0.45^p`` (every z_i = 0)."""
    return TARGET**power


def seed_losses(power: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The per-row ``f``: samples ``(n, seeds, L, 2)`` to losses ``(n, seeds)``."""
    return lambda samples: poly_loss(samples, power)


def initial_logits(config: PolyConfig) -> torch.Tensor:
    """``theta`` of shape ``(seeds, variables, 2)``: row s drawn U(-init, init) from seed s."""
    rows = [torch.rand(config.variables, 2, generator=torch.Generator().manual_seed(seed))
            for seed in range(config.seeds)]
    return (torch.stack(rows) * 2 - 1) * config.init


def exact_gap(theta: torch.Tensor, power: float) -> torch.Tensor:
    """Exact expected loss minus ``0.45^p`` for logits ``(..., L, 2)``: shape ``(...)``.

    ``(0.55^p - 0.45^p) mean_i P(z_i = 1)``, with ``P(z_i = 1) = softmax(theta_i)[0]``.
    """
    p_one = torch.softmax(theta, -1)[..., 0]
    return ((1 - TARGET) ** power - TARGET**power) * p_one.mean(-1)


def checkpoints(steps: int) -> tuple[int, list[int]]:
    """The steps at which the exact loss is recorded: every ``steps // 200`` (returned first), and
    the last."""
    every = max(1, steps // CURVE_POINTS)
    marks = list(range(0, steps + 1, every))
    return every, marks if marks[-1] == steps else [*marks, steps]


def train(config: PolyConfig, power: float, estimator: str,
          progress: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Train every seed at once; ``progress(1)`` is called after each step.

    Returns (JSON-able) the mean training loss of the last ``window`` steps per seed, the exact gap
    per checkpoint and seed, and the wall time per step.
    """
    device = resolve_device(config.device)
    theta = initial_logits(config).to(device).requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=config.lr)
    generator = torch.Generator(device).manual_seed(NOISE_SEED)
    f = seed_losses(power)
    options = config.options(estimator)
    every, marks = checkpoints(config.steps)
    losses = torch.empty(config.steps, config.seeds, device=device)
    gaps = torch.empty(len(marks), config.seeds, device=device)
    began = time.perf_counter()
    for step in range(config.steps):
        if step % every == 0:
            gaps[step // every] = exact_gap(theta.detach(), power)
        optimizer.zero_grad(set_to_none=True)
        loss = expectation(f, theta, estimator, n_samples=config.samples, tau=config.tau,
                           generator=generator, **options)
        loss.sum().backward()  # row s of theta gets seed s's gradient only
        optimizer.step()
        losses[step] = loss.detach()
        if progress is not None:
            progress(1)
    gaps[-1] = exact_gap(theta.detach(), power)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    return {
        "train_last": losses[-config.window:].mean(0).tolist(),
        "steps": marks,
        "gap": gaps.T.tolist(),
        "seconds_per_step": seconds / config.steps,
    }


def summarize(power: float, estimator: str, config: PolyConfig,
              result: dict[str, Any]) -> dict[str, Any]:
    """One table row: bootstrap intervals over seeds of the three metrics."""
    final_gap = np.array([curve[-1] for curve in result["gap"]])
    intervals = {"train_last": bootstrap(result["train_last"]),
                 "exact": bootstrap(optimum(power) + final_gap), "gap": bootstrap(final_gap)}
    row: dict[str, Any] = {"power": power, "estimator": estimator, "seeds": config.seeds,
                           "steps": config.steps, "optimum": optimum(power)}
    for name, value in intervals.items():
        row.update(interval_fields(name, value))
    row["seconds_per_step"] = result["seconds_per_step"]
    return row


def markdown(rows: list[dict[str, Any]], config: PolyConfig, figures: list[str],
             meta: dict[str, Any]) -> str:
    lines = [
        "# Polynomial programming (Liu et al. 2023, section 6.1)", "",
        f"theta in R^({config.variables}x2) ~ U(-{config.init:g}, {config.init:g}); z_i = 1 when "
        f"category 0 is sampled; loss (1/{config.variables}) sum_i |z_i - 0.45|^p; "
        f"{config.samples} samples per step; Adam lr {config.lr:g}; {config.steps} steps; "
        f"tau = {config.tau:g}; {config.seeds} seeds; gr k = {config.gr_k}, gst gap "
        f"{REGISTRY['gst'].defaults['gap']:g}.",
        "",
        f"train loss: mean training loss of the last {min(config.window, config.steps)} steps "
        "(the paper's metric; for softmax, the loss of the relaxed value). exact: the exact "
        "expected loss at the end of training; gap: exact - 0.45^p (0 at the optimum; softmax's "
        "relaxed optimum P(z=1) = 0.45 has gap 0.45 (0.55^p - 0.45^p)). Mean over seeds "
        "[95% bootstrap interval].", "",
        "| p | estimator | train loss | exact loss | gap to 0.45^p | ms/step |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['power']:g} | {row['estimator']} | "
                     f"{interval_text(row, 'train_last')} | {interval_text(row, 'exact')} | "
                     f"{interval_text(row, 'gap')} | "
                     f"{row['seconds_per_step'] * 1e3:.3g} |")
    lines += markdown_footer(figures, meta, len(rows))
    return "\n".join(lines)


def figure(power: float, results: dict[str, dict[str, Any]], directory: Path) -> str:
    """Exact gap against step, one line (mean over seeds) and band (range of seeds) each."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for estimator, result in results.items():
        gap = np.array(result["gap"])
        line, = ax.plot(result["steps"], gap.mean(0), label=estimator, lw=1.4)
        ax.fill_between(result["steps"], gap.min(0), gap.max(0), color=line.get_color(),
                        alpha=0.15, lw=0)
    ax.axhline(TARGET * ((1 - TARGET) ** power - TARGET**power), color="gray", ls=":",
               label="relaxed optimum, P(z=1) = 0.45")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="exact expected loss - 0.45^p",
           title=f"Polynomial programming, p = {power:g} (mean over seeds, band: their range)")
    ax.legend(fontsize=8, ncol=2)
    return save(fig, directory, f"poly-p{power:g}.png")


def run_poly(
    out_dir: str | Path,
    config: PolyConfig | None = None,
    *,
    powers: Sequence[float] = POWERS,
    estimators: Sequence[str] = ESTIMATORS,
    threads: int | None = THREADS,
    command: str = "gumbelkit bench poly",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run (or reuse) every (p, estimator) and write the table and figures into ``out_dir``.

    ``threads``: torch CPU threads while training (None: leave torch's setting). Returns the rows,
    the paths written, and the numbers of results and of reused ones.
    """
    config = config or PolyConfig()
    check_estimators(estimators)
    if not powers:
        raise ValueError("give at least one power")
    out = Path(out_dir)
    start = time.perf_counter()
    results: dict[float, dict[str, dict[str, Any]]] = {p: {} for p in powers}
    runs = [(p, name) for p in powers for name in estimators]
    bar = tqdm(total=len(runs) * config.steps, unit="step", disable=not show_progress,
               file=sys.stderr, dynamic_ncols=True)
    with recording(out, EXPERIMENT, config, bar) as recorder:
        for i, (power, name) in enumerate(runs, 1):
            bar.set_description(f"p={power:g} {name} [{i}/{len(runs)}]")

            def compute(power: float = power, name: str = name) -> dict[str, Any]:
                with torch_threads(threads):
                    return train(config, power, name, bar.update)

            result, fresh = recorder.result({"power": power, "estimator": name}, compute)
            if not fresh:
                bar.update(config.steps)
            results[power][name] = result
    reused = recorder.reused
    rows = [summarize(p, name, config, results[p][name]) for p in powers for name in estimators]
    figures = [figure(p, results[p], out) for p in powers]
    with torch_threads(threads):  # the thread count the runs used
        machine = machine_description(resolve_device(config.device))
    meta = {"command": command, "machine": machine, "reused": reused,
            "wall_seconds": time.perf_counter() - start}
    paths = {"markdown": out / "poly.md",
             "csv": write_csv(out / "poly.csv", rows, COLUMNS),
             "json": write_json(out / "poly.json",
                                {"config": config.to_dict(), "meta": meta, "rows": rows})}
    paths["markdown"].write_text(markdown(rows, config, figures, meta))
    return {"rows": rows, "paths": {**paths, "figures": [out / name for name in figures]},
            "reused": reused, "results": len(runs)}
