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

Each (p, estimator) is one run of the harness (:mod:`gumbelkit.harness`): recorded as soon as it
finishes, reused by the next sweep with the same configuration, spread over worker processes or
Ray tasks by the executor; the report has the table and one convergence figure per power.
"""


from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._validate import check_tau
from ..estimators import ESTIMATORS as REGISTRY
from ..expectation import expectation
from ..harness.plotting import plt, save
from ..harness.protocol import Experiment, ExperimentConfig, Figure, Table, option
from ..harness.statistics import mean_interval
from ..workloads.problems import poly_loss
from .estimators import check_estimators

__all__ = ["EXPERIMENT", "POWERS", "ESTIMATORS", "PolyConfig", "exact_gap", "initial_logits",
           "optimum", "seed_losses", "train"]

TARGET = 0.45
POWERS = (1.5, 2.0, 3.0)
ESTIMATORS = ("reinforce", "rloo", "st", "st-gs", "gr", "gst", "reinmax", "softmax")
CURVE_POINTS = 200  # exact-loss evaluations per run, for the convergence figure
NOISE_SEED = 0


@dataclass
class PolyConfig(ExperimentConfig):
    """The protocol of the benchmark (the paper's, by default); its digest keys the runs."""

    seeds: int = option(10, "seeds, trained at once (the paper: 10)")
    steps: int = option(8000, "Adam steps (the paper: 8000)")
    variables: int = option(128, "binary variables")
    samples: int = option(64, "samples per step")
    lr: float = option(1e-3, "Adam learning rate")
    tau: float = option(1.0, "temperature of every estimator")
    init: float = option(0.01, "theta ~ U(-init, init)")
    gr_k: int = option(100, "gr: conditional samples")
    window: int = option(200, "the training loss is averaged over the last this many steps")
    powers: tuple[float, ...] = option(POWERS, "the p of the loss |z - 0.45|^p", keyed=False)
    estimators: tuple[str, ...] = option(ESTIMATORS, "estimators to train", keyed=False)

    def __post_init__(self) -> None:
        for name in ("seeds", "steps", "variables", "samples", "gr_k", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not self.powers:
            raise ValueError("give at least one power")
        check_tau(self.tau)
        check_estimators(self.estimators)

    @classmethod
    def tiny(cls) -> PolyConfig:
        return cls(seeds=2, steps=20, variables=8, samples=4, window=5, gr_k=3,
                   powers=(2.0,), estimators=("st", "rloo", "softmax"))

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


def train(config: PolyConfig, power: float, estimator: str, device: torch.device
          ) -> dict[str, Any]:
    """Train every seed at once. Returns (JSON-able) the mean training loss of the last
    ``window`` steps per seed, the exact gap per checkpoint and seed, and the time per step."""
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


@dataclass(frozen=True)
class PolyRow:
    """One (p, estimator) of the table: intervals over seeds."""

    power: float
    estimator: str
    train_last: Any
    exact: Any
    gap: Any
    seconds_per_step: float


class PolynomialProgramming(Experiment):
    id = "POLY"
    title = "Polynomial programming (Liu et al. 2023, section 6.1)"
    config_class = PolyConfig
    threads = 1  # many small operations: on a loaded 2-core machine 1 thread measured fastest

    def runs(self, config: PolyConfig) -> list[dict]:
        return [{"power": p, "estimator": e} for p in config.powers for e in config.estimators]

    def run(self, config: PolyConfig, key: dict, device: torch.device) -> dict:
        return train(config, key["power"], key["estimator"], device)

    def summarize(self, config: PolyConfig, results: list[tuple[dict, dict]]) -> dict:
        rows = []
        for key, result in results:
            final_gap = np.array([curve[-1] for curve in result["gap"]])
            rows.append(PolyRow(key["power"], key["estimator"], mean_interval(result["train_last"]),
                                mean_interval(optimum(key["power"]) + final_gap),
                                mean_interval(final_gap), result["seconds_per_step"]))
        curves = [{"power": k["power"], "estimator": k["estimator"], "steps": r["steps"],
                   "mean": np.mean(r["gap"], 0), "low": np.min(r["gap"], 0),
                   "high": np.max(r["gap"], 0)} for k, r in results]
        return {"rows": rows, "curves": curves}

    def setup(self, config: PolyConfig) -> str:
        return (
            f"theta in R^({config.variables}x2) ~ U(-{config.init:g}, {config.init:g}); z_i = 1 "
            f"when category 0 is sampled; loss (1/{config.variables}) sum_i |z_i - 0.45|^p for p "
            f"in {list(config.powers)}; {config.samples} samples per step; Adam lr "
            f"{config.lr:g}; {config.steps} steps; tau = {config.tau:g}; {config.seeds} seeds "
            f"trained at once; gr k = {config.gr_k}, gst gap "
            f"{REGISTRY['gst'].defaults['gap']:g}. train loss: mean training loss of the last "
            f"{min(config.window, config.steps)} steps (the paper's metric; for softmax, the "
            "loss of the relaxed value). exact: the exact expected loss at the end of training; "
            "gap: exact - 0.45^p (0 at the optimum; softmax's relaxed optimum P(z=1) = 0.45 has "
            "gap 0.45 (0.55^p - 0.45^p)). Mean over seeds [95% t interval].")

    def tables(self, summary: dict) -> list[Table]:
        rows = [[r.power, r.estimator, r.train_last, r.exact, r.gap,
                 r.seconds_per_step * 1e3] for r in summary["rows"]]
        return [Table(["p", "estimator", "train loss", "exact loss", "gap to 0.45^p",
                       "ms/step"], rows)]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        powers = dict.fromkeys(curve["power"] for curve in summary["curves"])
        return [self._figure(power, summary["curves"], directory) for power in powers]

    def _figure(self, power: float, curves: list[dict], directory: Path) -> Figure:
        """Exact gap against step, one line (mean over seeds) and band (range of seeds) each."""
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for curve in (c for c in curves if c["power"] == power):
            line, = ax.plot(curve["steps"], curve["mean"], label=curve["estimator"], lw=1.4)
            ax.fill_between(curve["steps"], curve["low"], curve["high"], color=line.get_color(),
                            alpha=0.15, lw=0)
        ax.axhline(TARGET * ((1 - TARGET) ** power - TARGET**power), color="gray", ls=":",
                   label="relaxed optimum, P(z=1) = 0.45")
        ax.set_yscale("log")
        ax.set(xlabel="step", ylabel="exact expected loss - 0.45^p",
               title=f"Polynomial programming, p = {power:g}")
        ax.legend(fontsize=8, ncol=2)
        return Figure(save(fig, directory, f"poly_p{power:g}.png"),
                      f"p = {power:g}: exact gap to the optimum against the step, mean over "
                      "seeds (band: their range).")


EXPERIMENT = PolynomialProgramming()
