"""E9. Temperature annealing versus a constant temperature, and what lowering tau does to the noise.

Measured, with the categorical VAE of E4 (:func:`gumbelkit.workloads.vae.train_and_evaluate`): each
estimator (``softmax``, ``gs``, ``st-gs``, ``reinmax``) is trained at every constant tau of a small
grid and with the exponential schedule of Jang et al. (2017), ``gk.schedules.Exponential``:
``tau = max(tau_min, tau0 exp(-r t))``, r chosen so that tau reaches tau_min after a set fraction of
the steps. Metric: the discrete negative ELBO on held-out images with one-hot codes (lower is
better); the verdict takes, per estimator, the paired-by-seed difference annealed minus the best
constant tau (the grid's best mean).

The effect of the noise is measured on the trained encoders' held-out logits as the mean total
variation between the Gumbel-Softmax code ``gk.sample(logits, "gs", tau)`` and the noise-free
``gk.softmax_t(logits, tau)``, per latent variable: at fixed logits over a grid of tau, and, for the
annealed ``gs`` runs, at the start (initial encoder, tau0) and the end (trained encoder, final tau)
of training. The fixed-logits comparison isolates tau; the start-to-end one mixes in the encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from ..harness.plotting import errorbar, plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, Interval, mean_interval, paired_difference
from ..workloads import vae
from .base import LabExperiment

ANNEALED = "annealed"
GUMBEL_SOFTMAX = ("gs", "st-gs")  # the estimators the claim is about
NOISE_ESTIMATOR = "gs"  # whose annealed runs measure the effect of the noise


@dataclass
class Config(ExperimentConfig, vae.VAERecipe):
    seeds: int = 4
    estimators: tuple[str, ...] = ("softmax", "gs", "st-gs", "reinmax")
    taus: tuple[float, ...] = (0.5, 1.0)  # the constant temperatures
    # seeds on which the best constant tau is chosen, apart from those the verdict is measured on
    # (only when there is a tau to choose)
    validation_seeds: int = 2
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_fraction: float = 0.6  # tau reaches tau_min after this fraction of the steps
    anneal_every: int = 25  # tau is updated every this many steps (Jang et al.'s N)
    noise_taus: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
    # the noise claim is also measured on the trained logits sharpened until the posterior's mean
    # max q reaches each of these (how converged the encoder is)
    sharpness: tuple[float, ...] = (0.5, 0.7, 0.9, 0.99)
    # pre-registered: annealing and the best constant are the same when the 90% interval of
    # their difference lies within this many nats per image
    margin: float = 1.0
    hidden: tuple[int, ...] = (128, 64)
    downsample: int = 2
    steps: int = 240
    iw_samples: int = 20

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, validation_seeds=10, taus=(0.25, 0.5, 1.0, 2.0), hidden=(512, 256),
                   downsample=1,
                   steps=20_000, lr=1e-3, test_size=10_000, anneal_every=500, iw_samples=100)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, latents=4, categories=4, hidden=(16, 8), downsample=4, steps=8,
                   anneal_every=2, train_size=300, test_size=40, elbo_samples=2, iw_samples=2,
                   noise_taus=(0.5, 1.0))

    def rate(self) -> float:
        """The exponential rate r that brings tau0 down to tau_min at ``anneal_fraction``."""
        return math.log(self.tau0 / self.tau_min) / max(1.0, self.anneal_fraction * self.steps)

    def schedule(self) -> gk.schedules.Exponential:
        return gk.schedules.Exponential(self.tau0, self.rate(), self.tau_min, self.anneal_every)

    def floor_step(self) -> int:
        """The first step at which the annealed tau is tau_min (``steps`` if it never is)."""
        schedule = self.schedule()
        return next((t for t in range(self.steps) if schedule(t) <= self.tau_min), self.steps)

    def final_tau(self) -> float:
        """The temperature of the last annealed training step."""
        return self.schedule()(self.steps - 1)

    def noise_grid(self) -> list[float]:
        """The temperatures of the noise measurement, tau0 and tau_min included."""
        return sorted({*self.noise_taus, self.tau0, self.tau_min})


def noise_effect(logits: torch.Tensor, tau: float, generator: torch.Generator) -> float:
    """Mean total variation between the Gumbel-Softmax and the softmax-tau codes of ``logits``."""
    noisy = gk.sample(logits, "gs", tau, generator=generator)
    return 0.5 * (noisy - gk.softmax_t(logits, tau)).abs().sum(-1).mean().item()


def mean_max_q(logits: torch.Tensor) -> float:
    return torch.softmax(logits, -1).max(-1).values.mean().item()


def sharpened(logits: torch.Tensor, target: float) -> torch.Tensor:
    """``logits`` times the factor (found by bisection on a log scale) that makes the mean max q
    of the posterior ``target``: the same encoder's ranking, converged to a chosen degree."""
    low, high = -8.0, 8.0  # log2 of the factor
    for _ in range(40):
        middle = (low + high) / 2
        if mean_max_q(logits * 2.0**middle) < target:
            low = middle
        else:
            high = middle
    return logits * 2.0 ** ((low + high) / 2)


def _label(schedule: float | str) -> str:
    return ANNEALED if schedule == ANNEALED else f"tau={schedule:g}"


class AnnealingExperiment(LabExperiment):
    id = "E9"
    title = "Annealing the temperature versus a constant temperature"
    claim_summary = (
        "The temperature must be annealed during training, and lowering it makes the noise "
        "matter less."
    )
    claims = (
        Claim("For Gumbel-softmax however, in the later stage of the model training, we need the "
              "Gumbel-softmax as close to one-hot vector as possible. That's why we need to "
              "anneal it smaller and smaller during training.(the τ is not too small at the "
              "beginning of training for this makes the training more stable)", "answer 2",
              "The temperature must be annealed during training."),
        Claim("As you gradually decrease the temperature τ, the effect of noise is smaller.",
              "answer 4", "Lowering the temperature makes the noise matter less."),
    )
    config_class = Config

    def setup(self, config: Config) -> str:
        return (vae.describe(config) + f" Estimators: {', '.join(config.estimators)}, each at "
                f"the constant tau in {list(config.taus)} and annealed with Jang et al.'s "
                f"schedule tau = max({config.tau_min:g}, {config.tau0:g} * exp(-{config.rate():.3g}"
                f" * t)), updated every {config.anneal_every} steps, so tau reaches "
                f"{config.tau_min:g} at step {config.floor_step()} of {config.steps} (final tau "
                f"{config.final_tau():.3g}). Effect of the "
                "noise: mean total variation per latent between gk.sample(logits, 'gs', tau) and "
                "gk.softmax_t(logits, tau) on the held-out logits, at tau in "
                f"{config.noise_grid()}. {config.seeds} seeds; 95% t intervals over "
                "seeds, paired by seed for differences; the best constant tau of each "
                f"estimator is chosen on {config.validation_seeds} more seeds, apart from those "
                "the verdict is measured on.")

    def missing(self, config: Config) -> str | None:
        return vae.missing_data(config)

    def runs(self, config: Config) -> list[dict]:
        validation = config.validation_seeds if len(config.taus) > 1 else 0
        test = [{"seed": seed, "estimator": name, "schedule": schedule}
                for seed in range(config.seeds) for name in config.estimators
                for schedule in (*config.taus, ANNEALED)]
        return test + [{"seed": seed, "estimator": name, "schedule": tau}
                       for seed in range(config.seeds, config.seeds + validation)
                       for name in config.estimators for tau in config.taus]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        annealed = key["schedule"] == ANNEALED
        tau = config.schedule() if annealed else float(key["schedule"])
        trained = vae.train_and_evaluate(config, key["seed"], key["estimator"], tau, device)
        x_test = trained.test_images
        initial = vae.initial_model(x_test.shape[1], config.latents, config.categories,
                                    config.hidden, key["seed"], device)
        probe = torch.Generator(device=device)

        def effect(logits: torch.Tensor, at: float) -> float:
            # the same Gumbel draws at every tau: common random numbers across temperatures
            return noise_effect(logits, at, probe.manual_seed(10_000 + key["seed"]))

        with torch.no_grad():
            logits = trained.model.logits(x_test)
            start = effect(initial.logits(x_test), config.tau0 if annealed else tau)
            end = effect(logits, config.final_tau() if annealed else tau)
            by_tau = [effect(logits, t) for t in config.noise_grid()]
            converged = {f"{q:g}": [effect(sharpened(logits, q), t) for t in config.noise_grid()]
                         for q in config.sharpness}
        return {**trained.evaluation, "noise_start": start, "noise_end": end,
                "noise_by_tau": by_tau, "noise_converged": converged,
                "mean_max_q": mean_max_q(logits), "data": trained.train.name}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        by_run = {(k["estimator"], k["schedule"], k["seed"]): r for k, r in results}
        seeds = sorted({k["seed"] for k, _ in results if k["seed"] < config.seeds})
        held = sorted({k["seed"] for k, _ in results if k["seed"] >= config.seeds}) or seeds

        def values(name: str, schedule: float | str, metric: str) -> list[float]:
            return [by_run[name, schedule, s][metric] for s in seeds]

        estimators = {}
        for name in config.estimators:
            # the best constant on the validation seeds (on the same seeds when there is none)
            best = min(config.taus, key=lambda t, n=name: np.mean(
                [by_run[n, t, s]["discrete_elbo"] for s in held]))
            estimators[name] = {
                "schedules": {_label(s): {m: mean_interval(values(name, s, m))
                                          for m in ("discrete_elbo", "iw_bound", "kl")}
                              for s in (*config.taus, ANNEALED)},
                "best_constant": best,
                "annealed_minus_best": paired_difference(
                    values(name, ANNEALED, "discrete_elbo"),
                    values(name, best, "discrete_elbo")),
                "annealed_minus_best_90": paired_difference(
                    values(name, ANNEALED, "discrete_elbo"),
                    values(name, best, "discrete_elbo"), level=0.90),
            }
        noise_runs = [by_run[NOISE_ESTIMATOR, ANNEALED, s] for s in seeds]
        by_tau = np.array([r["noise_by_tau"] for r in noise_runs])
        grid = config.noise_grid()
        low, high = grid.index(config.tau_min), grid.index(config.tau0)
        noise = {
            "taus": grid,
            "by_tau": [mean_interval(column) for column in by_tau.T],
            "start": mean_interval([r["noise_start"] for r in noise_runs]),
            "end": mean_interval([r["noise_end"] for r in noise_runs]),
            "end_minus_start": paired_difference([r["noise_end"] for r in noise_runs],
                                                 [r["noise_start"] for r in noise_runs]),
            "low_minus_high_tau": paired_difference(by_tau[:, low], by_tau[:, high]),
            "mean_max_q": float(np.mean([r["mean_max_q"] for r in noise_runs])),
            "converged": {q: paired_difference(
                [r["noise_converged"][f"{q:g}"][low] for r in noise_runs],
                [r["noise_converged"][f"{q:g}"][high] for r in noise_runs])
                for q in config.sharpness},
        }
        return {"data": results[0][1]["data"], "seeds": len(seeds), "steps": config.steps,
                "margin": config.margin,
                "tau0": config.tau0, "tau_min": config.tau_min,
                "final_tau": config.final_tau(),
                "estimators": estimators, "noise": noise}

    def verdicts(self, summary: dict) -> list[Verdict]:
        """Answer 2's annealing claim and answer 4's noise claim, each decided on its own."""
        estimators, noise = summary["estimators"], summary["noise"]
        diffs = {n: estimators[n]["annealed_minus_best"] for n in GUMBEL_SOFTMAX}
        same = {n: Decision.within(estimators[n]["annealed_minus_best_90"], -summary["margin"],
                                   summary["margin"]) for n in GUMBEL_SOFTMAX}
        # YES: annealing better; NO: worse, or the same within the margin (then it is not needed)
        outcome = {n: Decision.YES if d.high < 0 else Decision.NO
                   if d.low > 0 or same[n] is Decision.YES else Decision.UNDECIDED
                   for n, d in diffs.items()}
        tau_effect = noise["low_minus_high_tau"]
        by_sharpness = {q: Decision.below(d) for q, d in noise["converged"].items()}
        decided = set(by_sharpness.values())
        noise_holds = (Decision.DEPENDS if {Decision.YES, Decision.NO} <= decided
                       else decided.pop() if len(decided) == 1 else Decision.UNDECIDED)
        trajectory = noise["end_minus_start"]
        comparisons = "; ".join(
            f"{n}: annealed minus constant tau={estimators[n]['best_constant']:g} "
            f"{diffs[n].format(3)} nats ({_compared(diffs[n], same[n])})" for n in GUMBEL_SOFTMAX)
        others = "; ".join(
            f"{n} {estimators[n]['annealed_minus_best'].format(3)}"
            for n in estimators if n not in GUMBEL_SOFTMAX)
        annealing = Verdict(
            Decision.all_of(outcome.values()),
            f"On held-out {summary['data']} images ({summary['seeds']} seeds, "
            f"{summary['steps']} steps, tau {summary['tau0']:g} -> {summary['final_tau']:.3g}), "
            f"annealing versus the best constant temperature gives {comparisons}"
            + (f" (for reference: {others})" if others else "") + ".",
            f"Differences are paired by seed; negative means annealing reaches a lower (better) "
            "discrete bound. The best constant is the grid's best by mean on the validation "
            "seeds, so the comparison is not tilted towards the constants. The claim holds "
            "when annealing is significantly better than the best constant for "
            f"{' and '.join(GUMBEL_SOFTMAX)}; it fails when annealing is significantly worse for "
            "one of them, or the same within the pre-registered margin of "
            f"{summary['margin']:g} nats (90% interval, two one-sided tests); it is "
            "inconclusive otherwise.",
            number="; ".join(f"{n}: {diffs[n].format(3)} nats" for n in GUMBEL_SOFTMAX),
            claims=self.claims[:1])
        holding = [f"{q:g}" for q, d in by_sharpness.items() if d is Decision.YES]
        failing = [f"{q:g}" for q, d in by_sharpness.items() if d is Decision.NO]
        noise_verdict = Verdict(
            noise_holds,
            "Lowering tau from "
            f"{summary['tau0']:g} to {summary['tau_min']:g} changes the effect of the noise "
            "(total variation between the Gumbel-Softmax and the softmax-tau code, same logits) "
            "by "
            + "; ".join(f"{d.format(3)} where the posterior's mean max q is {q:g}"
                        for q, d in noise["converged"].items())
            + f" (smaller, as claimed, at max q in [{', '.join(holding) or 'none'}]; larger at "
            f"[{', '.join(failing) or 'none'}]), and by {tau_effect.format(3)} on the trained "
            f"encoders as they are (mean max q {noise['mean_max_q']:.3g}: "
            f"{_NOISE_WORDS[Decision.below(tau_effect)]}); from the start to the end of annealed "
            f"training it changes by {trajectory.format(3)}, where the encoder changes too.",
            "The claim is about tau: at each degree of convergence (the trained logits sharpened "
            "to a mean max q), it holds when, at the same logits, the effect of the noise is "
            f"significantly smaller at tau={summary['tau_min']:g} than at "
            f"tau={summary['tau0']:g}, and fails when it is significantly larger; it depends on "
            "the convergence when it holds at some and fails at others. Whatever tau, "
            "the noise changes which category wins with probability 1 - max q (here "
            f"{1 - noise['mean_max_q']:.3g} per latent, at the end of annealed training); as tau "
            "falls both codes approach one-hot vectors, so their total variation tends to that "
            "probability, and as tau grows both approach the uniform vector and it tends to 0.",
            number="; ".join(f"max q {q:g}: {d.format(2)}" for q, d in
                             noise["converged"].items()), claims=self.claims[1:])
        return [annealing, noise_verdict]

    def tables(self, summary: dict) -> list[Table]:
        rows = []
        for name, entry in summary["estimators"].items():
            for label, metrics in entry["schedules"].items():
                best = label == _label(entry["best_constant"])
                rows.append([name, label + (" (best constant)" if best else ""),
                             *(metrics[m].format(4)
                               for m in ("discrete_elbo", "iw_bound", "kl"))])
            rows.append([name, "annealed minus best constant",
                         entry["annealed_minus_best"].format(3), "", ""])
        noise = summary["noise"]
        noise_rows = [[f"{tau:g}", iv.format(3)]
                      for tau, iv in zip(noise["taus"], noise["by_tau"], strict=True)]
        return [
            Table(["estimator", "temperature", "discrete negative ELBO [95% CI]",
                   "negative IW bound [95% CI]", "KL [95% CI]"], rows,
                  f"Held-out {summary['data']}, nats per image, one-hot codes, lower is better."),
            Table(["tau", "noise effect: TV(gs code, softmax-tau code) [95% CI]"], noise_rows,
                  f"At the fixed held-out logits of the annealed {NOISE_ESTIMATOR} models."),
        ]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        return [self._bounds_figure(summary, directory), self._noise_figure(summary, directory)]

    def _bounds_figure(self, summary: dict, directory: Path) -> Figure:
        estimators = summary["estimators"]
        fig, axes = plt.subplots(1, len(estimators), figsize=(2.4 * len(estimators), 3.4),
                                 squeeze=False)
        for ax, (name, entry) in zip(axes[0], estimators.items(), strict=True):
            labels = list(entry["schedules"])
            ivs = [entry["schedules"][label]["discrete_elbo"]
                   for label in labels]
            for i, (label, interval) in enumerate(zip(labels, ivs, strict=True)):
                errorbar(ax, np.array([i]), [interval], fmt="D" if label == ANNEALED else "o",
                         color="C2" if label == ANNEALED else "C0")
            ax.set_xticks(np.arange(len(labels)), labels, rotation=30, fontsize=8)
            ax.set_xlim(-0.5, len(labels) - 0.5)
            ax.set_title(name, fontsize=9)
        axes[0][0].set_ylabel("discrete negative ELBO (nats)")
        return Figure(save(fig, directory, "e9_schedules.png"),
                      "Held-out discrete negative ELBO (one-hot codes, lower is better) per "
                      "estimator and temperature schedule: means over seeds with 95% t "
                      "intervals; each panel has its own scale.")

    def _noise_figure(self, summary: dict, directory: Path) -> Figure:
        noise = summary["noise"]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        errorbar(ax, np.array(noise["taus"]),
                 [iv for iv in noise["by_tau"]], fmt="o-",
                 label="trained encoder, fixed logits")
        errorbar(ax, np.array([summary["tau0"]]), [noise["start"]],
                 fmt="s", label=f"start of annealing (initial encoder, tau={summary['tau0']:g})")
        errorbar(ax, np.array([summary["final_tau"]]), [noise["end"]],
                 fmt="^", label=f"end of annealing (tau={summary['final_tau']:.3g})")
        ax.set_xscale("log")
        ax.set_xlabel("tau")
        ax.set_ylabel("TV(gs code, softmax-tau code)")
        ax.legend(fontsize=8)
        return Figure(save(fig, directory, "e9_noise.png"),
                      f"Effect of the Gumbel noise on the code of the annealed {NOISE_ESTIMATOR} "
                      "models' held-out logits: mean total variation per latent between the "
                      "Gumbel-Softmax and the softmax-tau code (95% t intervals).")


def _compared(difference: Interval, same: Decision) -> str:
    """Annealed minus the best constant, in words."""
    if difference.high < 0:
        return "annealing better"
    if difference.low > 0:
        return "annealing worse"
    return "the same within the margin" if same is Decision.YES else "no significant difference"


_NOISE_WORDS = {Decision.YES: "smaller at the lower tau, as claimed",
                Decision.NO: "larger at the lower tau, contrary to the claim",
                Decision.UNDECIDED: "no significant change"}


EXPERIMENT = AnnealingExperiment()
