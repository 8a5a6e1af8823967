"""E12. Binary gates: deterministic sigmoid gates with straight-through, against sampled gates.

Answer 3 says that a network does not need noise to make binary decisions: LSTM gates are
deterministic sigmoids, and "you can still apply the straight-through trick here to make the gates
truly discrete (while backpropagating a biased gradient)". Measured here, for D binary gates on a
coupled quadratic objective whose best gate pattern is found by enumerating the 2^D patterns:

- ``sigmoid``: soft deterministic gates ``sigmoid(l)`` (no straight-through), judged by their
  threshold ``l > 0`` like every method;
- ``st-deterministic``: the hard gate ``[l > 0]`` forward with the sigmoid's gradient (the
  deterministic straight-through the answer describes);
- ``st``, ``concrete``, ``disarm``: gates sampled from Bernoulli(sigmoid(l)) through
  ``gk.bernoulli`` (straight-through, relaxed, and the unbiased DisARM of Dong et al. 2020).

Per run: the gap of the final hard gates' objective to the best pattern's (the lower the better),
and, at the start, the bias of each method's gradient against the exact gradient of the expected
objective ``E_{b ~ Bernoulli(sigmoid(l))} f(b)`` (enumerated), relative to its norm. The claim has
two parts of one author: the deterministic straight-through gates train truly discrete gates as
well as the sampled ones (equivalence with the best sampled method's gap, pre-registered margin),
and its gradient is biased (relative bias above the unbiased DisARM's noise floor). Both are
decided on two kinds of problem instance, strongly and weakly coupled gates (the quadratic term
scaled by ``coupling``: near 0 the gates are nearly independent), and the verdict names the
instance where it flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import gumbelkit as gk

from .._ops import replace_gradient
from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, equivalence_level, mean_interval, paired_difference
from .base import LabExperiment, across

MARGIN = 0.05  # pre-registered: gaps within 0.05 (of f's range, normalised to 1) are the same
SAMPLED = ("st", "concrete", "disarm")
METHODS = ("sigmoid", "st-deterministic", *SAMPLED)
GATES = Claim(
    "The LSTM architecture and derived variants are examples of this. They model "
    "\"forget/input\" gates using sigmoid outputs, which are deterministic. A \"true\" gating "
    "mechanism would be either 0 or 1, but to make things differentiable, LSTMs relax that "
    "constraint to sigmoided outputs. You'll notice that there is no \"random\" inputs here, and "
    "you can still apply the straight-through trick here to make the gates truly discrete (while "
    "backpropagating a biased gradient).",
    "answer 3",
    "Deterministic sigmoid gates with straight-through train truly discrete gates, with a biased "
    "gradient.")


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    gates: int = 10
    couplings: tuple[float, ...] = (1.0, 0.25)  # the problem instances: strong, weak coupling
    steps: int = 300
    lr: float = 0.05
    samples: int = 4  # per step for the sampled gates (disarm: pairs)
    gradient_draws: int = 400

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, steps=1500, gradient_draws=2000)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, gates=4, steps=10, gradient_draws=20)


class Objective:
    """``f(b) = (b^T A b + c . b - low) / (high - low)``: a random coupled quadratic over binary
    gates, rescaled so that the best pattern scores 0 and the worst 1."""

    def __init__(self, gates: int, generator: torch.Generator, coupling: float = 1.0) -> None:
        a = torch.randn(gates, gates, generator=generator, dtype=torch.float64)
        self.a, self.c = coupling * (a + a.T) / 2, torch.randn(gates, generator=generator,
                                                               dtype=torch.float64)
        patterns = gk.exact.configurations(gates, 2).double()
        raw = self._raw(patterns)
        self.low, self.high = float(raw.min()), float(raw.max())

    def _raw(self, b: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...i,ij,...j->...", b, self.a, b) + b @ self.c

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        return (self._raw(b.double()) - self.low) / (self.high - self.low)


def gate_objective(f: Objective, logits: torch.Tensor, method: str, samples: int,
                   generator: torch.Generator) -> torch.Tensor:
    """The training objective of ``method`` for gate logits ``(D,)``."""
    if method == "sigmoid":
        return f(torch.sigmoid(logits))
    if method == "st-deterministic":
        return f(replace_gradient((logits > 0).to(logits.dtype), torch.sigmoid(logits)))
    return gk.bernoulli.expectation(f, logits, method, n_samples=samples, generator=generator)


class Gates(LabExperiment):
    id = "E12"
    title = "Binary gates: deterministic sigmoid gates with straight-through, against sampled"
    claim_summary = GATES.summary
    claims = (GATES,)
    config_class = Config
    threads = 1

    def setup(self, config: Config) -> str:
        return (f"{config.gates} binary gates; f(b) = b^T A b + c.b with random symmetric A and "
                f"c (one pair per seed; A scaled by the coupling, in {list(config.couplings)}: "
                "the problem instances), rescaled so that the best of the 2^D patterns scores 0 "
                "and the worst 1. Methods: soft sigmoid gates, deterministic straight-through "
                "([l > 0] forward, sigmoid gradient), and Bernoulli(sigmoid(l)) gates through "
                f"gk.bernoulli ({', '.join(SAMPLED)}; {config.samples} samples a step); Adam "
                f"(lr {config.lr:g}), {config.steps} steps from logits 0. Measured: the gap of "
                "f at the final hard gates [l > 0] to the best pattern; at the start, each "
                "method's gradient against the exact gradient of E f under "
                f"Bernoulli(sigmoid(l)) ({config.gradient_draws} draws), as a relative bias. "
                f"{config.seeds} seeds, paired. The gates train as well when the 90% interval "
                "of deterministic straight-through's gap minus the best sampled method's lies "
                f"within +-{MARGIN:g} (pre-registered); the gradient is biased when its "
                "relative bias exceeds DisARM's (unbiased: its bias is its noise floor), paired.")

    def runs(self, config: Config) -> list[dict]:
        return [{"coupling": c, "method": m, "seed": s} for c in config.couplings
                for m in METHODS for s in range(config.seeds)]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        f = Objective(config.gates, torch.Generator().manual_seed(key["seed"]), key["coupling"])
        noise = torch.Generator().manual_seed(1000 + key["seed"])
        start = torch.full((config.gates,), 0.3, dtype=torch.float64)  # off the tie at 0
        bias = self._relative_bias(f, start, key["method"], config, noise)
        logits = start.clone().requires_grad_()
        optimizer = torch.optim.Adam([logits], lr=config.lr)
        for _ in range(config.steps):
            loss = gate_objective(f, logits, key["method"], config.samples, noise)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        hard = (logits.detach() > 0).double()
        return {"gap": float(f(hard)), "relative_bias": bias}

    @staticmethod
    def _relative_bias(f: Objective, logits: torch.Tensor, method: str, config: Config,
                       generator: torch.Generator) -> float:
        """``||mean estimate - exact gradient|| / ||exact gradient||`` at ``logits``."""
        leaf = logits.clone().requires_grad_()
        (exact,) = torch.autograd.grad(gk.exact.bernoulli_expectation(f, leaf), leaf)
        draws = []
        for _ in range(config.gradient_draws if method in SAMPLED else 1):
            leaf = logits.clone().requires_grad_()
            (grad,) = torch.autograd.grad(
                gate_objective(f, leaf, method, config.samples, generator), leaf)
            draws.append(grad)
        mean = torch.stack(draws).mean(0)
        return float((mean - exact).norm() / exact.norm())

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        runs = {(k["coupling"], k["method"], k["seed"]): r for k, r in results}
        cells = {f"coupling={c:g}": self._cell(config, {(m, s): r for (cc, m, s), r in
                                                        runs.items() if cc == c})
                 for c in config.couplings}
        return {"cells": cells, "seeds": config.seeds, "gates": config.gates}

    @staticmethod
    def _cell(config: Config, runs: dict[tuple[str, int], dict]) -> dict:
        seeds = range(config.seeds)

        def values(method: str, name: str) -> list[float]:
            return [runs[method, s][name] for s in seeds]

        best = min(SAMPLED, key=lambda m: sum(values(m, "gap")))
        return {
            "methods": {m: {name: mean_interval(values(m, name))
                            for name in ("gap", "relative_bias")} for m in METHODS},
            "best_sampled": best,
            "deterministic_minus_best": paired_difference(values("st-deterministic", "gap"),
                                                          values(best, "gap")),
            "deterministic_minus_best_90": paired_difference(
                values("st-deterministic", "gap"), values(best, "gap"), level=equivalence_level()),
            "bias_over_disarm": paired_difference(values("st-deterministic", "relative_bias"),
                                                  values("disarm", "relative_bias")),
        }

    @staticmethod
    def _parts(cell: dict) -> tuple[Decision, Decision]:
        """The claim's two parts in one cell: the gates train as well (equivalence within the
        margin, or better), and the gradient is biased (above DisARM's noise floor)."""
        difference = cell["deterministic_minus_best"]
        trains = (Decision.NO if difference.above(MARGIN) else Decision.YES
                  if Decision.within(cell["deterministic_minus_best_90"], -MARGIN, MARGIN)
                  is Decision.YES or difference.below(0) else Decision.UNDECIDED)
        return trains, Decision.above(cell["bias_over_disarm"])

    def verdict(self, summary: dict) -> Verdict:
        cells = summary["cells"]
        parts = {name: self._parts(cell) for name, cell in cells.items()}
        decision, where = across({name: Decision.all_of(p) for name, p in parts.items()})

        def evidence(name: str) -> str:
            cell, (trains, biased) = cells[name], parts[name]
            methods, best = cell["methods"], cell["best_sampled"]
            return (f"{name}: deterministic straight-through gates end "
                    f"{methods['st-deterministic']['gap'].format(2)} above the best pattern, "
                    f"the best sampled gates ({best}) {methods[best]['gap'].format(2)} "
                    f"(difference {cell['deterministic_minus_best'].format(2)}; 'they train as "
                    f"well' {trains.word}), soft sigmoid gates thresholded "
                    f"{methods['sigmoid']['gap'].format(2)}; the deterministic straight-through "
                    "gradient's relative bias at the start is "
                    f"{methods['st-deterministic']['relative_bias'].format(2)} against "
                    f"DisARM's {methods['disarm']['relative_bias'].format(2)} (its noise floor; "
                    f"paired difference {cell['bias_over_disarm'].format(2)}; 'its gradient is "
                    f"biased' {biased.word})")

        first = cells[next(iter(cells))]
        return Verdict(
            decision,
            f"Answer 3's claim {decision.word} ({where}): "
            + "; ".join(evidence(name) for name in cells)
            + f". {summary['seeds']} seeds, {summary['gates']} gates.",
            "Both parts are the same author's; the claim holds in a cell when both do.",
            number=f"{next(iter(cells))}: gap difference "
                   f"{first['deterministic_minus_best'].format(2)}; bias over DisARM "
                   f"{first['bias_over_disarm'].format(2)}")

    def tables(self, summary: dict) -> list[Table]:
        return [Table(["instance", "method", "gap of the hard gates",
                       "relative gradient bias at start"],
                      [[name, m, v["gap"], v["relative_bias"]]
                       for name, cell in summary["cells"].items()
                       for m, v in cell["methods"].items()],
                      "Means [95% t intervals] over seeds; f's range is 1.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        cells = summary["cells"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        width = 0.8 / len(cells)
        for ax, name, label in ((axes[0], "gap", "gap of the hard gates to the best pattern"),
                                (axes[1], "relative_bias", "relative gradient bias at start")):
            for i, (cell_name, cell) in enumerate(cells.items()):
                values = [cell["methods"][m][name] for m in METHODS]
                ax.bar([j + i * width for j in range(len(METHODS))],
                       [v.estimate for v in values], width,
                       yerr=[[v.estimate - v.low for v in values],
                             [v.high - v.estimate for v in values]], capsize=3, label=cell_name)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(METHODS))], list(METHODS),
                          fontsize=8, rotation=15)
            ax.set_title(label, fontsize=10)
        axes[0].legend(fontsize=8)
        return [Figure(save(fig, directory, "e12_gates.png"),
                       f"Means over {summary['seeds']} seeds with 95% t intervals.")]


EXPERIMENT = Gates()
