"""E2. Temperature: what softmax-tau and Gumbel-Softmax become as tau -> 0 and oo, and whether the
noise "gets a larger significance" as tau grows.

The Gumbel-Softmax sample is ``y = softmax((z + g) / tau)``: tau divides the logits z and the noise
g alike, so the ratio of noise to logits in the perturbed logits does not depend on tau, nor does
the decision ``argmax(z + g)``. What tau changes is where ``y`` lies in the simplex (one-hot as
tau -> 0, uniform as tau -> oo) and, for a gradient, its bias and variance (Jang et al. 2017).
This experiment measures each of these, on a grid of the nuisance parameters the answer could
turn on: the number of categories K and the confidence of the logits (their scale).

Measured, per seed and grid cell (logits ``z ~ N(0, scale^2)`` over K categories, one draw per
seed) and per tau, from ``draws`` samples with the same Gumbel noise at every tau (common random
numbers, so differences between taus are tau's alone):

- one-hotness: ``1 - max_i y_i`` of softmax-tau and of Gumbel-Softmax, and the share of soft
  Gumbel-Softmax vectors that are exactly one-hot in float32;
- uniformity: the distance ``||y - u||`` to the uniform vector, over a one-hot vector's;
- the noise's significance, four ways: the decision flip rate (how often ``argmax y`` changes
  between consecutive draws) and the decision entropy; the Euclidean noise share
  ``E||y - E y||^2 / E||y - u||^2``; the same share in log-ratio (centred-log) coordinates,
  where ``clr(y) = centred (z + g) / tau``; and the noise-to-logit ratio ``||centred g|| /
  ||centred z||`` of the perturbed logits;
- the gradient's bias and variance: ``gk.exact.compare`` of the ``gs`` estimator on
  ``f(c) = (w . c - 1/2)^2`` (w fixed per seed) against the exact gradient, by enumeration (the
  variance, skewed across seeds, by its median and a distribution-free interval);
- the hard samplers (``st-gs``, ``reinmax``): whether every forward value is exactly one-hot.

Each claim gets its own verdict, decided in every grid cell from 95% t intervals over seeds (and
equivalence with a pre-registered margin where a claim says something changes): it holds or fails
across the grid, or depends on the cells, which the verdict names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import (
    Decision,
    Interval,
    equivalence_level,
    mean_interval,
    median_interval,
    paired_difference,
)
from .base import LabExperiment, across, by_logit_cell, logit_grid

ONE_HOT_TOL = 0.05  # "near one-hot": mean 1 - max coordinate below this
UNIFORM_TOL = 0.05  # "near uniform": normalised distance to the uniform vector below this
SHARE_MARGIN = 0.02  # pre-registered: a noise share that moves less than this has not changed
FLIP_TOL = 0.01  # pre-registered: the decision "changes" when it flips in over 1% of draws
HARD = ("st-gs", "reinmax")
NOISE_MEASURES = ("flip_rate", "decision_entropy", "euclidean_share", "log_ratio_share",
                  "noise_to_logit")
MEASURES = ("one_hot_gap", "softmax_one_hot_gap", "uniform_distance", "softmax_uniform_distance",
            "exact_one_hot", "exact_one_hot_bf16", *NOISE_MEASURES, "bias", "variance")
LOWEST = {"bias": 0.0, "variance": 0.0}  # norms and variances: their intervals stop at 0
# The gradient's variance across seeds is far from normal (at tau = 0.01 most seeds give exactly
# 0 and a few give 10^2 to 10^3): its mean's t interval would under-cover, so it is summarised by
# its median with the distribution-free order-statistic interval.
MEDIANS = ("variance",)

OBSERVATION_1 = Claim(
    "When the temperature is low, both Softmax with temperature and the Gumbel-Softmax functions "
    "will approximate a one-hot vector. However, before convergence, the Gumbel-Softmax may more "
    "suddenly 'change' its decision because of the noise.",
    "the question (observation 1)",
    "At low tau both softmax-tau and Gumbel-Softmax are near one-hot, and Gumbel-Softmax changes "
    "its decision because of the noise.")
OBSERVATION_2 = Claim(
    "When the temperature is higher, the Gumbel noise will get a larger significance and the "
    "distribution will become more uniform.",
    "the question (observation 2)",
    "As tau grows the Gumbel noise gains significance and the vectors become uniform.")
PS = Claim(
    "PS: The sentence is incorrect: \"When the temperature is low, both Softmax with temperature "
    "and the Gumbel-Softmax functions will approximate a one-hot vector.\" Gumbel-softmax could "
    "sample a one-hot vector rather than an approximation.",
    "answer 4 (PS)",
    "Gumbel-Softmax can give exactly one-hot samples, not only approximations.")


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    categories: tuple[int, ...] = (2, 10, 100)
    scales: tuple[float, ...] = (0.5, 4.0)  # logit confidence: low, high
    draws: int = 4000
    taus: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    gradient_draws: int = 200

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, draws=20_000, gradient_draws=1000,
                   taus=tuple(float(t) for t in np.round(np.logspace(-2, 2, 9), 6)))

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, draws=300, categories=(2, 10), scales=(1.0,), taus=(0.01, 1.0, 100.0),
                   gradient_draws=20)



def _exactly_one_hot(y: torch.Tensor) -> float:
    """The share of rows of ``y`` that are exactly one-hot (zeros and a one)."""
    return float(((y == 0) | (y == 1)).all(1).double().mean())


def measure(z: torch.Tensor, g: torch.Tensor, tau: float) -> dict[str, float]:
    """The measures of the module docstring for logits ``z`` (K,) and noise ``g`` (draws, K)."""
    k = z.shape[0]
    perturbed = (z + g).double()
    y = torch.softmax((perturbed / tau).float(), 1).double()
    soft = torch.softmax((z / tau).double(), 0)
    uniform = torch.full((k,), 1.0 / k, dtype=torch.float64)
    one_hot_norm = math.sqrt(1 - 1 / k)
    decision = perturbed.argmax(1)
    frequency = torch.bincount(decision, minlength=k).double() / len(decision)
    to_uniform = (y - uniform).pow(2).sum(1)
    clr = (perturbed - perturbed.mean(1, keepdim=True)) / tau
    centred_g = g.double() - g.double().mean(1, keepdim=True)
    centred_z = (z - z.mean()).double()
    return {
        "one_hot_gap": float((1 - y.max(1).values).mean()),
        "softmax_one_hot_gap": float(1 - soft.max()),
        "uniform_distance": float(to_uniform.sqrt().mean() / one_hot_norm),
        "softmax_uniform_distance": float((soft - uniform).norm() / one_hot_norm),
        "exact_one_hot": _exactly_one_hot(y),
        # a bfloat16 sample: computed in float32 and rounded, as gk.gumbel_softmax does
        "exact_one_hot_bf16": _exactly_one_hot(y.float().bfloat16()),
        "flip_rate": float((decision[1:] != decision[:-1]).double().mean()),
        "decision_entropy": float(-(frequency * frequency.clamp_min(1e-300).log()).sum()),
        "euclidean_share": float((y - y.mean(0)).pow(2).sum(1).mean() / to_uniform.mean()),
        "log_ratio_share": float((clr - clr.mean(0)).pow(2).sum(1).mean()
                                 / clr.pow(2).sum(1).mean()),
        "noise_to_logit": float((centred_g / tau).norm(dim=1).mean()
                                / (centred_z / tau).norm().clamp_min(1e-300)),
    }


def _gradient(z: torch.Tensor, tau: float, draws: int, generator: torch.Generator
              ) -> dict[str, float]:
    """Bias and variance of the ``gs`` gradient of ``(w . c - 1/2)^2`` against the exact one."""
    w = torch.randn(z.shape[0], generator=generator, dtype=torch.float64)

    def f(samples: torch.Tensor) -> torch.Tensor:
        return ((samples @ w).squeeze(-1) - 0.5) ** 2

    (row,) = gk.exact.compare(f, z.double().unsqueeze(0), ["gs"], draws, tau,
                              generator=generator)
    return {"bias": row["bias"], "variance": row["variance"]}


class TemperatureLimits(LabExperiment):
    id = "E2"
    title = "Temperature: limits of softmax-tau and Gumbel-Softmax, and the noise's significance"
    claim_summary = "What tau does to softmax-tau and to the Gumbel noise."
    claims = (OBSERVATION_1, OBSERVATION_2, PS)
    config_class = Config
    threads = 1  # small tensors: extra threads only add synchronisation

    def setup(self, config: Config) -> str:
        return (f"Grid: K in {list(config.categories)} categories x logit scale in "
                f"{list(config.scales)} (logits ~ N(0, scale^2), one draw per seed); "
                f"{config.seeds} seeds per cell; {config.draws:,} draws of the Gumbel noise per "
                f"seed, the same at every tau in {list(config.taus)}. Per tau: 1 - max coordinate "
                "and the normalised distance to the uniform vector (0 uniform, 1 one-hot) of "
                "softmax-tau and Gumbel-Softmax; the share of exactly one-hot soft samples; four "
                "measures of the noise's significance (decision flip rate and entropy, the "
                "Euclidean noise share E||y - Ey||^2 / E||y - u||^2, the same share in "
                "centred-log coordinates, the noise-to-logit ratio of the perturbed logits); "
                f"the bias and variance of the gs gradient ({config.gradient_draws} draws, "
                "gk.exact.compare on f(c) = (w.c - 1/2)^2); and whether the hard samplers' "
                f"({', '.join(HARD)}) forward values are exactly one-hot. The noise gains "
                "significance when its share in log-ratio coordinates (what the perturbed "
                "logits carry of it, which the decision and the gradient see) rises; the other "
                "measures are reported beside it. Tolerances: near "
                f"one-hot if 1 - max < {ONE_HOT_TOL}, near uniform if the distance < "
                f"{UNIFORM_TOL}; the decision changes if it flips in more than {FLIP_TOL:.0%} of "
                f"consecutive draws; a noise share has changed if the 95% interval of its paired "
                f"change lies beyond +-{SHARE_MARGIN} (pre-registered), and has not if the 90% "
                "interval lies within it.")

    def runs(self, config: Config) -> list[dict]:
        return logit_grid(config)

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        k, seed = key["categories"], key["seed"]
        gen = torch.Generator().manual_seed(1000 * k + seed)
        z = torch.randn(k, generator=gen) * key["scale"]
        g = gk.gumbel_noise((config.draws, k), generator=gen)
        by_tau = {}
        for tau in config.taus:
            measures = measure(z, g, tau)
            measures.update(_gradient(z, tau, config.gradient_draws, gen))
            batch = z.expand(config.draws, k)
            samples = [gk.sample(batch, name, tau, generator=gen) for name in HARD]
            measures["hard_exact"] = all(bool((((s == 0) | (s == 1)).all(1)
                                               & (s.sum(1) == 1)).all()) for s in samples)
            by_tau[f"{tau:g}"] = measures
        return {"by_tau": by_tau}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        grouped = by_logit_cell(results)
        taus = [f"{t:g}" for t in config.taus]
        low, high = taus[0], taus[-1]
        cells = {}
        for cell, runs in grouped.items():
            def values(tau: str, name: str, runs: list[dict] = runs) -> list[float]:
                return [r["by_tau"][tau][name] for r in runs]

            cells[cell] = {
                "curves": {tau: {m: (median_interval if m in MEDIANS else mean_interval)(
                                     values(tau, m), lowest=LOWEST.get(m, -math.inf))
                                 for m in MEASURES} for tau in taus},
                "change": {m: paired_difference(values(high, m), values(low, m))
                           for m in NOISE_MEASURES},
                "change_90": {m: paired_difference(values(high, m), values(low, m),
                                                  level=equivalence_level())
                              for m in NOISE_MEASURES},
                "hard_exact": all(all(values(tau, "hard_exact")) for tau in taus),
            }
        return {"cells": cells, "taus": [float(t) for t in config.taus], "tau_low": low,
                "tau_high": high, "seeds": config.seeds, "draws": config.draws}

    def verdicts(self, summary: dict) -> list[Verdict]:
        cells, low, high = summary["cells"], summary["tau_low"], summary["tau_high"]

        def at(cell: str, tau: str, name: str) -> Interval:
            return cells[cell]["curves"][tau][name]

        # observation 1: near one-hot at the lowest tau (both), and GS changes its decision
        one_hot = {c: Decision.all_of(Decision.below(at(c, low, m), ONE_HOT_TOL)
                                      for m in ("one_hot_gap", "softmax_one_hot_gap"))
                   for c in cells}
        flips = {c: Decision.above(at(c, low, "flip_rate"), FLIP_TOL) for c in cells}
        obs1 = {c: Decision.all_of([one_hot[c], flips[c]]) for c in cells}
        # observation 2: near uniform at the highest tau (both), and the noise gains
        # significance: the log-ratio share (what the perturbed logits carry of the noise) rises
        uniform = {c: Decision.all_of(Decision.below(at(c, high, m), UNIFORM_TOL)
                                      for m in ("uniform_distance", "softmax_uniform_distance"))
                   for c in cells}
        gains = {c: self._gains(cells[c]) for c in cells}
        obs2 = {c: Decision.all_of([uniform[c], gains[c]]) for c in cells}
        ps = {c: Decision.of(cells[c]["hard_exact"]) for c in cells}

        euclid = {c: cells[c]["change"]["euclidean_share"] for c in cells}
        rising = [c for c in cells if euclid[c].above(SHARE_MARGIN)]
        falling = [c for c in cells if euclid[c].below(-SHARE_MARGIN)]
        first = next(iter(cells))
        return [
            self._verdict(
                OBSERVATION_1, obs1,
                f"at tau={low}, 1 - max coordinate is "
                + "; ".join(f"{c}: softmax-tau {at(c, low, 'softmax_one_hot_gap').format(2)}, "
                            f"GS {at(c, low, 'one_hot_gap').format(2)}" for c in cells)
                + "; the GS decision flips between consecutive draws at rate "
                + "; ".join(f"{c}: {at(c, low, 'flip_rate').format(2)}" for c in cells)
                + " (softmax-tau: 0, it has no noise). The flip rate is the same at every tau "
                "(the decision argmax(z + g) does not involve tau), so 'before convergence' it "
                "is the logits, not tau, that make the decision stable.",
                f"flip rate at tau={low}, {first}: {at(first, low, 'flip_rate').format(2)}"),
            self._verdict(
                OBSERVATION_2, obs2,
                f"at tau={high} the distance to uniform is "
                + "; ".join(f"{c}: {at(c, high, 'uniform_distance').format(2)}" for c in cells)
                + f". From tau={low} to tau={high} the noise's share in log-ratio coordinates "
                "changes by "
                + "; ".join(f"{c}: {cells[c]['change']['log_ratio_share'].format(2)}"
                            for c in cells)
                + ", the noise-to-logit ratio by "
                + "; ".join(f"{c}: {cells[c]['change']['noise_to_logit'].format(2)}"
                            for c in cells)
                + " and the decision flip rate by "
                + "; ".join(f"{c}: {cells[c]['change']['flip_rate'].format(2)}" for c in cells)
                + ": tau divides logits and noise alike, so the noise does not gain "
                "significance. Only the Euclidean share of the simplex vectors moves, and its "
                "direction turns on K and the logits' confidence: it rises in "
                f"{', '.join(rising) or 'no cell'} and falls in {', '.join(falling) or 'no cell'}"
                ". What tau does change is the gradient: the gs gradient's bias and variance "
                "against the exact one, at the two ends, "
                + "; ".join(f"{c}: bias {at(c, low, 'bias').format(2)} -> "
                            f"{at(c, high, 'bias').format(2)}, median variance "
                            f"{at(c, low, 'variance').format(2)} -> "
                            f"{at(c, high, 'variance').format(2)}" for c in cells) + ".",
                "largest |change| of the log-ratio noise share over the grid: "
                f"{max(abs(cells[c]['change']['log_ratio_share'].estimate) for c in cells):.1g}"
                f" (margin {SHARE_MARGIN:g}; 0 but for rounding: tau divides noise and logits)"),
            self._verdict(
                PS, ps,
                f"the hard samplers ({', '.join(HARD)}) return exactly one-hot vectors in every "
                f"draw at every tau in {sum(cells[c]['hard_exact'] for c in cells)} of "
                f"{len(cells)} cells, while the soft GS vector is exactly one-hot in float32 in a "
                f"share of draws at tau={low} of "
                + "; ".join(f"{c}: {at(c, low, 'exact_one_hot').format(2)}" for c in cells)
                + ", and in bfloat16 of "
                + "; ".join(f"{c}: {at(c, low, 'exact_one_hot_bf16').format(2)}" for c in cells)
                + " (that share is the soft sample's rounding, not its design: the "
                "straight-through hard sample is one-hot by construction, with the sampled law "
                "of softmax(logits), which E1 tests).",
                f"hard samples exactly one-hot in {sum(cells[c]['hard_exact'] for c in cells)} "
                f"of {len(cells)} cells"),
        ]

    @staticmethod
    def _gains(cell: dict) -> Decision:
        """YES if the log-ratio noise share rises by more than the margin, NO if it is within the
        margin (90% interval, equivalence) or falls beyond it, UNDECIDED otherwise."""
        change = cell["change"]["log_ratio_share"]
        if change.above(SHARE_MARGIN):
            return Decision.YES
        if change.below(-SHARE_MARGIN) or Decision.within(
                cell["change_90"]["log_ratio_share"], -SHARE_MARGIN,
                SHARE_MARGIN) is Decision.YES:
            return Decision.NO
        return Decision.UNDECIDED

    @staticmethod
    def _verdict(claim: Claim, by_cell: dict[str, Decision], evidence: str,
                 number: str) -> Verdict:
        """The claim's verdict across the grid (:func:`~gumbelkit.lab.base.across`)."""
        decision, where = across(by_cell)
        who = claim.source[0].upper() + claim.source[1:]
        answer = f"{who}: the claim {decision.word} ({where}): {evidence}"
        return Verdict(decision, answer, number=number, claims=(claim,))

    def tables(self, summary: dict) -> list[Table]:
        low, high = summary["tau_low"], summary["tau_high"]
        rows = []
        for cell, data in summary["cells"].items():
            for tau in dict.fromkeys([low, "1", high]):
                if tau not in data["curves"]:
                    continue
                curve = data["curves"][tau]
                rows.append([cell, tau, curve["softmax_one_hot_gap"], curve["one_hot_gap"],
                             curve["uniform_distance"], curve["flip_rate"],
                             curve["euclidean_share"], curve["log_ratio_share"],
                             curve["noise_to_logit"], curve["bias"], curve["variance"]])
        return [Table(["cell", "tau", "1 - max (softmax-tau)", "1 - max (GS)",
                       "distance to uniform (GS)", "flip rate", "Euclidean share",
                       "log-ratio share", "noise / logits", "gs bias", "gs variance (median)"],
                      rows, "Means [95% t intervals] over seeds (gs variance: the median "
                      "[distribution-free 95% interval]); the same noise at every tau.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        taus = summary["taus"]
        panels = [("one_hot_gap", "GS: 1 - max coordinate"),
                  ("uniform_distance", "GS: distance to uniform"),
                  ("flip_rate", "decision flip rate"),
                  ("euclidean_share", "Euclidean noise share"),
                  ("log_ratio_share", "log-ratio noise share"),
                  ("noise_to_logit", "noise-to-logit ratio"),
                  ("bias", "gs gradient: bias"), ("variance", "gs gradient: variance (median)")]
        fig, axes = plt.subplots(2, 4, figsize=(16, 7), sharex=True)
        for ax, (metric, label) in zip(axes.flat, panels, strict=True):
            for cell, data in summary["cells"].items():
                values = [data["curves"][f"{t:g}"][metric] for t in taus]
                line, = ax.plot(taus, [v.estimate for v in values], marker=".", label=cell)
                ax.fill_between(taus, [v.low for v in values], [v.high for v in values],
                                color=line.get_color(), alpha=0.15)
            ax.set_xscale("log")
            if metric in ("noise_to_logit", "variance", "bias"):
                ax.set_yscale("log")
            ax.set_title(label, fontsize=10)
            ax.set_xlabel("tau")
        axes.flat[0].legend(fontsize=7)
        return [Figure(save(fig, directory, "e2_measures.png"),
                       f"Means over {summary['seeds']} seeds (bands: 95% t intervals; the "
                       "variance: medians, distribution-free intervals) against tau, one line per "
                       "grid cell. The flip rate, the log-ratio share and the "
                       "noise-to-logit ratio are flat: tau divides logits and noise alike. The "
                       "Euclidean share moves, in a direction that depends on K and the logits' "
                       "scale; the gradient's bias falls and its variance changes with tau.")]


EXPERIMENT = TemperatureLimits()
