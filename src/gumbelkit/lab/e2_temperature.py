"""E2. Temperature limits: what softmax-tau and Gumbel-Softmax vectors become as tau -> 0 and oo.

Measured: for random logits (one draw per seed) and a log-spaced grid of temperatures, many forward
values of ``softmax`` (softmax-tau, no noise), ``gs`` (soft Gumbel-Softmax) and the hard samplers
``st-gs`` and ``reinmax``, all from ``gk.sample``. For each temperature and estimator:

- how one-hot a vector is: the mean of ``1 - max_i y_i``, and the share of exactly one-hot vectors;
- how uniform it is: the mean distance ``||y - u||`` to the uniform vector u, divided by the
  distance of a one-hot vector (0 = uniform, 1 = one-hot);
- the law of its argmax: total variation (TV) to softmax(logits), to the point mass on the mode,
  and to a torch.multinomial reference of the same size (an exact sampler's TV, the noise floor);
- how often the decision (argmax) changes between consecutive draws;
- the noise's share of the vector: ``E||y - E y||^2 / E||y - u||^2``, the part of the vector's
  squared distance from uniform that is random (0 without noise, 1 when the mean vector is uniform).

Each part of the thread's observations is decided from 95% t intervals over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from ..harness.plotting import plt, save
from ..harness.protocol import Claim, Experiment, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, Interval, mean_interval, paired_difference

ONE_HOT_TOL = 0.05  # "near one-hot": mean 1 - max coordinate below this
UNIFORM_TOL = 0.05  # "near uniform": normalised distance to the uniform vector below this
LAW_TOL = 0.01  # "a sample of softmax(logits)": argmax TV within this of an exact sampler's
HARD = ("st-gs", "reinmax", "gr")
METRICS = ("one_hot_gap", "uniform_distance", "tv_softmax", "tv_mode", "tv_excess", "flip_rate",
           "noise_share")  # with intervals; the share of exactly one-hot vectors is only averaged
EXAMPLES = 3  # vectors kept per estimator and temperature for the example figure


@dataclass
class Config(ExperimentConfig):
    seeds: int = 6
    categories: int = 10
    logit_scale: float = 2.0
    draws: int = 10_000
    taus: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
    estimators: tuple[str, ...] = ("softmax", "gs", "st-gs", "reinmax")

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, draws=200_000,
                   estimators=("softmax", "gs", "st-gs", "reinmax", "gr"),
                   taus=tuple(float(t) for t in np.round(np.logspace(-2, 2, 17), 6)))

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, draws=500, taus=(0.01, 1.0, 100.0))


def _tv(counts: torch.Tensor, probs: torch.Tensor) -> float:
    return 0.5 * float((counts / counts.sum() - probs).abs().sum())


def _measure(y: torch.Tensor, probs: torch.Tensor, reference_tv: float) -> dict[str, float]:
    """The metrics of the module docstring for draws ``y`` of shape (draws, K)."""
    y = y.double()
    k = y.shape[1]
    uniform = torch.full((k,), 1.0 / k, dtype=y.dtype)
    top = y.max(1).values
    exact = ((y == 0) | (y == 1)).all(1) & (y.sum(1) == 1)
    to_uniform = (y - uniform).pow(2).sum(1)
    spread = (y - y.mean(0)).pow(2).sum(1).mean()
    decision = y.argmax(1)
    counts = torch.bincount(decision, minlength=k).double()
    tv_softmax = _tv(counts, probs)
    return {
        "one_hot_gap": float((1 - top).mean()),
        "exact_one_hot": float(exact.double().mean()),
        "uniform_distance": float(to_uniform.sqrt().mean() / math.sqrt(1 - 1 / k)),
        "tv_softmax": tv_softmax,
        "tv_mode": 1.0 - float(counts[probs.argmax()] / counts.sum()),
        "tv_excess": tv_softmax - reference_tv,
        "flip_rate": float((decision[1:] != decision[:-1]).double().mean()),
        "noise_share": float(spread / to_uniform.mean()),
    }


class TemperatureLimits(Experiment):
    id = "E2"
    title = "Temperature limits of softmax-tau and Gumbel-Softmax"
    claim_summary = (
        "As tau grows the Gumbel noise gains significance while the vectors become uniform "
        "(and at low tau both softmax-tau and Gumbel-Softmax are near one-hot)."
    )
    claims = (
        Claim("When the temperature is low, both Softmax with temperature and the Gumbel-Softmax "
              "functions will approximate a one-hot vector. However, before convergence, the "
              "Gumbel-Softmax may more suddenly 'change' its decision because of the noise.",
              "the question, observation 1"),
        Claim("When the temperature is higher, the Gumbel noise will get a larger significance "
              "and the distribution will become more uniform.",
              "the question, observation 2"),
        Claim("Gumbel-softmax could sample a one-hot vector rather than an approximation.",
              "answer 4 (PS)"),
    )
    config_class = Config
    threads = 1  # tiny tensors: extra threads only add synchronisation

    def setup(self, config: Config) -> str:
        return (f"{config.seeds} seeds; each draws logits ~ N(0, {config.logit_scale:g}^2) over "
                f"{config.categories} categories, then {config.draws:,} forward values of each "
                f"estimator ({', '.join(config.estimators)}; gk.sample) at each tau in "
                f"{list(config.taus)}. Per tau: mean 1 - max coordinate, share of exactly "
                "one-hot vectors, normalised distance to the uniform vector (0 uniform, 1 "
                "one-hot), the argmax law's total variation (TV) to softmax(logits) and to the "
                "mode, the same TV for torch.multinomial (an exact sampler's noise floor), the "
                "rate at which the argmax changes between consecutive draws, and the noise's "
                "share E||y - E y||^2 / E||y - u||^2 of the vector's squared distance from "
                "uniform. "
                f"Tolerances: near one-hot if 1 - max < {ONE_HOT_TOL}, near uniform if the "
                f"distance < {UNIFORM_TOL}, a sample of softmax(logits) if the TV exceeds the "
                f"exact sampler's by < {LAW_TOL}; 95% t intervals over seeds.")

    def runs(self, config: Config) -> list[dict]:
        return [{"seed": seed} for seed in range(config.seeds)]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        torch.manual_seed(key["seed"])
        gen = torch.Generator(device=device).manual_seed(2000 + key["seed"])
        logits = torch.randn(config.categories, generator=gen, device=device)
        logits = logits * config.logit_scale
        probs = torch.softmax(logits.double(), 0).cpu()
        reference = torch.multinomial(torch.softmax(logits, 0), config.draws, replacement=True,
                                      generator=gen).cpu()
        reference_tv = _tv(torch.bincount(reference, minlength=config.categories).double(), probs)
        batch = logits.expand(config.draws, config.categories)
        metrics: dict[str, dict[str, dict[str, float]]] = {}
        examples: dict[str, dict[str, list[list[float]]]] = {}
        for tau in config.taus:
            for name in config.estimators:
                y = gk.sample(batch, name, tau, generator=gen).detach().cpu()
                metrics.setdefault(name, {})[f"{tau:g}"] = _measure(y, probs, reference_tv)
                examples.setdefault(name, {})[f"{tau:g}"] = y[:EXAMPLES].tolist()
        return {"metrics": metrics, "probs": probs.tolist(), "reference_tv": reference_tv,
                "collision": float((probs**2).sum()), "examples": examples}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        runs = [r for _, r in results]
        taus = [f"{t:g}" for t in config.taus]
        low, high = taus[0], taus[-1]

        def values(name: str, tau: str, metric: str) -> list[float]:
            return [r["metrics"][name][tau][metric] for r in runs]

        curves = {name: {tau: {m: mean_interval(values(name, tau, m)) for m in METRICS}
                         for tau in taus} for name in config.estimators}
        return {
            "seeds": len(runs), "draws": config.draws, "categories": config.categories,
            "taus": [float(t) for t in config.taus], "tau_low": low, "tau_high": high,
            "curves": curves,
            "reference_tv": mean_interval([r["reference_tv"] for r in runs]),
            "expected_flip_rate": mean_interval([1 - r["collision"] for r in runs]),
            "noise_share_change": paired_difference(values("gs", high, "noise_share"),
                                                    values("gs", low, "noise_share")),
            "flip_rate_change": paired_difference(values("gs", high, "flip_rate"),
                                                  values("gs", low, "flip_rate")),
            "hard": [n for n in HARD if n in config.estimators],
            "exact_one_hot": {n: {t: float(np.mean(values(n, t, "exact_one_hot")))
                                  for t in taus} for n in config.estimators},
            "min_exact_one_hot": {n: min(min(values(n, t, "exact_one_hot")) for t in taus)
                                  for n in config.estimators},
            "example": {"probs": runs[0]["probs"], "vectors": runs[0]["examples"]},
        }

    def _parts(self, summary: dict) -> dict[str, Decision]:
        """Each part of the claims, decided from the intervals."""
        curves, low, high = summary["curves"], summary["tau_low"], summary["tau_high"]

        def at(name: str, tau: str, metric: str) -> Interval:
            return curves[name][tau][metric]

        both = ("softmax", "gs")
        law_ok = [Decision.below(at(n, t, "tv_excess"), LAW_TOL)
                  for n in summary["hard"] for t in curves[n]]
        exact_ok = all(summary["min_exact_one_hot"][n] == 1.0 for n in summary["hard"])
        flips, still = at("gs", low, "flip_rate"), at("softmax", low, "flip_rate")
        return {
            "low_one_hot": Decision.all_of(Decision.below(at(n, low, "one_hot_gap"), ONE_HOT_TOL)
                                           for n in both),
            "noise_changes_decision": (Decision.YES if flips.above(still) else Decision.NO
                                       if flips.high <= still.low else Decision.UNDECIDED),
            "softmax_samples_at_low": Decision.below(at("softmax", low, "tv_excess"), LAW_TOL),
            "gs_samples_at_low": Decision.below(at("gs", low, "tv_excess"), LAW_TOL),
            "gs_samples_at_high": Decision.below(at("gs", high, "tv_excess"), LAW_TOL),
            "high_uniform": Decision.all_of(Decision.below(at(n, high, "uniform_distance"),
                                                           UNIFORM_TOL) for n in both),
            "noise_gains": Decision.above(summary["noise_share_change"]),
            "hard_exact": Decision.all_of([Decision.of(exact_ok), *law_ok]),
        }

    def verdict(self, summary: dict) -> Verdict:
        curves, low, high = summary["curves"], summary["tau_low"], summary["tau_high"]
        middle = list(curves["gs"])[len(curves["gs"]) // 2]
        parts = self._parts(summary)

        def fmt(name: str, tau: str, metric: str) -> str:
            return curves[name][tau][metric].format()

        obs1 = Decision.all_of([parts["low_one_hot"], parts["noise_changes_decision"]])
        obs2 = Decision.all_of([parts["high_uniform"], parts["noise_gains"]])
        ps = parts["hard_exact"]
        samplers = [label for label, part in (("softmax-tau", "softmax_samples_at_low"),
                                              ("GS", "gs_samples_at_low"))
                    if parts[part] is Decision.YES]
        hard = summary["hard"]
        exact_hard = [n for n in hard if summary["min_exact_one_hot"][n] == 1.0]
        answer = (
            f"Observation 1 {obs1.word}: at tau={low}, 1 - max coordinate is "
            f"{fmt('softmax', low, 'one_hot_gap')} for softmax-tau and "
            f"{fmt('gs', low, 'one_hot_gap')} for GS; the argmax is a sample of softmax(logits) "
            f"for {' and '.join(samplers) or 'neither'} (TV to it "
            f"{fmt('gs', low, 'tv_softmax')} for GS, {fmt('softmax', low, 'tv_softmax')} for "
            f"softmax-tau, whose TV to the mode is {fmt('softmax', low, 'tv_mode')}) and GS "
            f"changes its decision between consecutive draws at rate "
            f"{fmt('gs', low, 'flip_rate')} vs {fmt('softmax', low, 'flip_rate')}. "
            f"Observation 2 {obs2.word}: at tau={high} the normalised distance to the uniform "
            f"vector is {fmt('softmax', high, 'uniform_distance')} (softmax-tau) and "
            f"{fmt('gs', high, 'uniform_distance')} (GS), while the noise's share of the GS "
            f"vector goes from {fmt('gs', low, 'noise_share')} at tau={low} to "
            f"{fmt('gs', high, 'noise_share')} at tau={high} (paired difference "
            f"{summary['noise_share_change'].format()}) and its argmax law "
            + ("stays" if parts["gs_samples_at_high"] is Decision.YES else "is not shown to stay")
            + f" softmax(logits) (TV {fmt('gs', high, 'tv_softmax')}, flip rate "
            f"{fmt('gs', high, 'flip_rate')}): "
            + {Decision.YES: "the noise gains significance",
               Decision.NO: "the noise loses significance rather than gaining it (logits and "
                            "noise are divided by the same tau)",
               Decision.UNDECIDED: "no change in the noise's significance is resolved"
               }[parts["noise_gains"]]
            + f". Answer 4's PS {ps.word}: {len(exact_hard)} of {len(hard)} hard samplers "
            f"({', '.join(hard)}) return exactly one-hot vectors in every draw at every tau, "
            "with an argmax law "
            + ("within tolerance of" if ps is Decision.YES else "not shown to match")
            + f" softmax(logits), while the soft GS is exactly one-hot in "
            f"{100 * summary['exact_one_hot']['gs'][middle]:.3g}% of draws at "
            f"tau={middle}."
        )
        detail = (
            f"{summary['seeds']} seeds x {summary['draws']:,} draws, {summary['categories']} "
            f"categories. Parts decided from 95% t intervals: near one-hot at tau={low} "
            f"({parts['low_one_hot'].word}), GS changes decision more often than softmax-tau "
            f"({parts['noise_changes_decision'].word}; an exact sampler's rate is 1 - sum p^2 = "
            f"{summary['expected_flip_rate'].format()}), near uniform at "
            f"tau={high} ({parts['high_uniform'].word}), noise share larger at tau={high} than "
            f"at tau={low} ({parts['noise_gains'].word}; the GS flip rate changes by "
            f"{summary['flip_rate_change'].format()}), hard samplers exactly "
            f"one-hot with the law of softmax(logits) ({ps.word}). The experiment holds only "
            "if every part holds. An exact sampler's argmax TV (the noise floor) is "
            f"{summary['reference_tv'].format()}."
        )
        return Verdict(Decision.all_of([obs1, obs2, ps]), answer, detail)

    def tables(self, summary: dict) -> list[Table]:
        curves = summary["curves"]
        shown = [summary["tau_low"], "1", summary["tau_high"]]
        rows = []
        for name, by_tau in curves.items():
            for tau in shown:
                if tau not in by_tau:
                    continue
                cells = [by_tau[tau][m].format()
                         for m in ("one_hot_gap", "uniform_distance", "tv_softmax", "tv_mode",
                                   "flip_rate", "noise_share")]
                rows.append([name, tau, *cells])
        return [Table(["estimator", "tau", "1 - max coordinate", "distance to uniform",
                       "argmax TV to softmax(logits)", "argmax TV to mode", "decision flip rate",
                       "noise share"], rows,
                      "Means over seeds with 95% t intervals. Distance to uniform is "
                      "normalised (one-hot = 1); noise share = E||y - E y||^2 / E||y - u||^2.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        return [self._limits_figure(summary, directory),
                self._examples_figure(summary, directory)]

    def _limits_figure(self, summary: dict, directory: Path) -> Figure:
        curves, taus = summary["curves"], summary["taus"]
        panels = [("one_hot_gap", "1 - max coordinate"),
                  ("uniform_distance", "distance to uniform (one-hot = 1)"),
                  ("tv_softmax", "argmax law: TV to softmax(logits)"),
                  ("tv_mode", "argmax law: TV to the mode"),
                  ("flip_rate", "decision changes between draws"),
                  ("noise_share", "noise share of the vector")]
        fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
        for ax, (metric, label) in zip(axes.flat, panels, strict=True):
            for name, by_tau in curves.items():
                cells = [by_tau[f"{t:g}"][metric] for t in taus]
                style = "--" if name in HARD else "-"
                line, = ax.plot(taus, [c.estimate for c in cells], style, marker=".",
                                label=name)
                ax.fill_between(taus, [c.low for c in cells], [c.high for c in cells],
                                color=line.get_color(), alpha=0.2)
            ax.set_xscale("log")
            ax.set_title(label, fontsize=10)
            ax.set_xlabel("tau")
        flip = summary["expected_flip_rate"]
        axes.flat[4].axhline(flip.estimate, color="grey", lw=0.8, ls=":",
                             label="1 - sum p^2 (exact sampler)")
        axes.flat[0].legend(fontsize=8)
        axes.flat[4].legend(fontsize=8)
        return Figure(save(fig, directory, "e2_limits.png"),
                      f"Means over {summary['seeds']} seeds (bands: 95% t intervals) "
                      "against tau. Soft vectors (softmax-tau, GS) go from one-hot to uniform; the "
                      "hard samplers (dashed) stay one-hot. The argmax law of every Gumbel-based "
                      "sampler is softmax(logits) at every tau, softmax-tau's is the mode. The "
                      "bands are wide because each seed draws its own logits; the verdict "
                      "compares the noise share at the two ends of the grid paired by seed.")

    def _examples_figure(self, summary: dict, directory: Path) -> Figure:
        example = summary["example"]
        vectors = example["vectors"]
        taus = [summary["tau_low"], "1", summary["tau_high"]]
        taus = [t for t in dict.fromkeys(taus) if t in vectors["gs"]]
        names = ["softmax", "gs", "st-gs"]
        k = len(example["probs"])
        fig, axes = plt.subplots(len(taus), len(names), figsize=(11, 2.3 * len(taus)),
                                 sharey=True, squeeze=False)
        x = np.arange(k)
        width = 0.8 / EXAMPLES
        for row, tau in zip(axes, taus, strict=True):
            for ax, name in zip(row, names, strict=True):
                draws = vectors[name][tau]
                for j, vector in enumerate(draws):
                    ax.bar(x + j * width, vector, width, label=f"draw {j + 1}")
                ax.hlines(example["probs"], x - width / 2, x + (EXAMPLES - 0.5) * width,
                          color="black", lw=1.2, label="softmax(logits)")
                ax.axhline(1 / k, color="grey", lw=0.6, ls=":")
                ax.set_title(f"{name}, tau={tau}", fontsize=9)
        axes[0][0].legend(fontsize=7)
        return Figure(save(fig, directory, "e2_examples.png"),
                      f"Seed 0: {EXAMPLES} consecutive forward vectors per estimator and tau "
                      "(bars), softmax(logits) (black) and the uniform level (dotted).")


EXPERIMENT = TemperatureLimits()
