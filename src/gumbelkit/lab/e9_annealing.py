"""E9. Temperature annealing versus a constant temperature, and what lowering tau does to the noise.

Measured, with the categorical VAE of :func:`gumbelkit.workloads.vae.train_and_evaluate` on
Fashion-MNIST: the relaxed Gumbel-Softmax ``gs`` (the estimator whose forward code tau moves
towards one-hot, as answer 2 wants) is trained at every constant tau of a small grid and with the
exponential schedule of Jang et al. (2017), ``gk.schedules.Exponential``:
``tau = max(tau_min, tau0 exp(-r t))``, r chosen so that tau reaches tau_min after a set fraction of
the steps. Metric: the discrete negative ELBO on held-out test images with one-hot codes (lower is
better). The best constant tau is the grid's best by mean discrete negative ELBO on *validation*
images (the last images of the test split) of *validation* seeds, so neither the seeds nor the
images the verdict measures choose it. The verdict takes the paired-by-seed difference annealed
minus the best constant, against a pre-registered equivalence margin (:data:`MARGIN`), decided per
latent code shape L x C (the robustness grid) and combined with
:func:`~gumbelkit.lab.base.across`.

The effect of the noise is measured on the annealed ``gs`` models' held-out logits, at the end of
training (the converged encoders; their mean max q, ``mean max_i q_i`` per latent, is reported)
and, for contrast, at initialisation: the mean total variation per latent variable between the
Gumbel-Softmax code ``gk.sample(logits, "gs", tau)`` and the noise-free ``gk.softmax_t(logits,
tau)``, over a grid of tau with the same Gumbel draws at every tau. As tau -> 0 it tends to
``P(argmax(logits + g) != argmax(logits)) = 1 - max q`` and as tau -> oo to 0, with a peak in
between for a sharp posterior: lowering tau shrinks it only below the peak. Answer 4 speaks of a
posterior that has converged towards a discrete distribution, which these encoders do not reach
in the budget (their max q is reported); the same measure is therefore also taken on the trained
logits scaled by the factor that brings their mean max q to each of ``converged_max_q`` (the
trained encoder's ranking of the categories, at the sharpness of a converged one). The claim is
decided for each latent code and each of these posteriors on the annealing's own range: lowering
tau over each pair of neighbouring taus of the grid between ``tau_min`` and ``tau0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from ..harness.plotting import errorbar, plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import (
    Decision,
    Interval,
    equivalence_level,
    mean_interval,
    paired_difference,
)
from ..workloads import vae
from .base import LabExperiment, across

ANNEALED = "annealed"
NOISE_ESTIMATOR = "gs"  # whose annealed runs measure the effect of the noise
# Pre-registered: annealing and the best constant tau are "the same" when the equivalence interval
# of their difference lies within +-1 nat per image. About 1 nat per image is the smallest gap
# that the categorical-VAE comparisons of estimators report as an improvement (the MNIST VAE
# tables of Jang et al. 2017 and of ReinMax, Liu et al. 2023): a practitioner choosing a schedule
# would not act on less.
MARGIN = 1.0


@dataclass
class Config(ExperimentConfig, vae.VAERecipe):
    seeds: int = 10
    # the robustness grid: latent codes L x C (each replaces the recipe's latents and categories)
    codes: tuple[str, ...] = ("8x4", "16x2")
    estimators: tuple[str, ...] = ("gs",)
    taus: tuple[float, ...] = (0.5, 1.0)  # the constant temperatures
    # seeds on which the best constant tau is chosen (on the validation images), apart from those
    # the verdict is measured on (only when there is a tau to choose)
    validation_seeds: int = 3
    validation_size: int = 500  # the last images of the test split, apart from the test images
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_fraction: float = 0.6  # tau reaches tau_min after this fraction of the steps
    anneal_every: int = 25  # tau is updated every this many steps (Jang et al.'s N)
    noise_taus: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
    # the sharpness (mean max q) of the converged posteriors answer 4 speaks of
    converged_max_q: tuple[float, ...] = (0.9, 0.99)
    hidden: tuple[int, ...] = (128, 64)
    downsample: int = 2
    steps: int = 400
    iw_samples: int = 20

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, validation_seeds=6, steps=1600, anneal_every=100,
                   test_size=2000, validation_size=1000, iw_samples=50)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, validation_seeds=1, codes=("4x4", "2x2"), hidden=(16, 8),
                   downsample=4, steps=8, anneal_every=2, train_size=300, test_size=20,
                   validation_size=20, elbo_samples=2, iw_samples=2, noise_taus=(0.5, 1.0))

    def recipe(self, code: str) -> Config:
        """This configuration with the latent code ``code`` (L x C)."""
        latents, categories = vae.code_shape(code)
        return replace(self, latents=latents, categories=categories)

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
    """Mean total variation between the Gumbel-Softmax and the softmax-tau codes of ``logits``:
    ``E (1/2) ||softmax((z + g)/tau) - softmax(z/tau)||_1``, per latent variable."""
    noisy = gk.sample(logits, "gs", tau, generator=generator)
    return 0.5 * (noisy - gk.softmax_t(logits, tau)).abs().sum(-1).mean().item()


def mean_max_q(logits: torch.Tensor) -> float:
    """``mean max_i q_i`` over images and latents: 1/C for a uniform posterior, 1 for one-hot."""
    return torch.softmax(logits, -1).max(-1).values.mean().item()


def sharpened(logits: torch.Tensor, max_q: float) -> torch.Tensor:
    """``c * logits`` with the factor c > 0 (bisection on log c) that makes the mean max q
    :func:`mean_max_q` equal ``max_q``: monotone in c, the ranking of the categories kept."""
    low, high = -12.0, 12.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = ((middle, high) if mean_max_q(logits * math.exp(middle)) < max_q
                     else (low, middle))
    return logits * math.exp((low + high) / 2)


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

    def check(self, config: Config) -> None:
        super().check(config)
        for code in config.codes:
            vae.code_shape(code)
        if NOISE_ESTIMATOR not in config.estimators:
            raise ValueError(f"estimators: need {NOISE_ESTIMATOR}, whose runs measure the noise")

    def setup(self, config: Config) -> str:
        return (vae.describe(config.recipe(config.codes[0])) + " The same for every latent "
                f"code L x C of the grid: {', '.join(config.codes)}. Estimators: "
                f"{', '.join(config.estimators)}, each at the constant tau in {list(config.taus)}"
                " and annealed with Jang et al.'s schedule tau = "
                f"max({config.tau_min:g}, {config.tau0:g} * exp(-{config.rate():.3g} * t)), "
                f"updated every {config.anneal_every} steps, so tau reaches {config.tau_min:g} at "
                f"step {config.floor_step()} of {config.steps} (final tau "
                f"{config.final_tau():.3g}). The best constant tau of each estimator and code is "
                f"chosen on {config.validation_size:,} validation images (the last of the test "
                f"split) of {config.validation_seeds} more seeds, apart from the seeds and images "
                "the verdict is measured on. Effect of the noise: mean total variation per latent "
                "between gk.sample(logits, 'gs', tau) and gk.softmax_t(logits, tau) on the "
                f"held-out logits of the annealed {NOISE_ESTIMATOR} encoders (trained, and at "
                f"initialisation), at tau in {config.noise_grid()}, the same Gumbel draws at "
                f"every tau. {config.seeds} seeds; 95% t intervals over seeds, paired by seed "
                f"for differences; equivalence margin {MARGIN:g} nat per image (pre-registered).")

    def missing(self, config: Config) -> str | None:
        return vae.missing_data(config)

    def runs(self, config: Config) -> list[dict]:
        validation = config.validation_seeds if len(config.taus) > 1 else 0
        test = [{"seed": seed, "code": code, "estimator": name, "schedule": schedule}
                for seed in range(config.seeds) for code in config.codes
                for name in config.estimators for schedule in (*config.taus, ANNEALED)]
        return test + [{"seed": seed, "code": code, "estimator": name, "schedule": tau}
                       for seed in range(config.seeds, config.seeds + validation)
                       for code in config.codes for name in config.estimators
                       for tau in config.taus]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        recipe = config.recipe(key["code"])
        annealed = key["schedule"] == ANNEALED
        tau = config.schedule() if annealed else float(key["schedule"])
        trained = vae.train_and_evaluate(recipe, key["seed"], key["estimator"], tau, device)
        if key["seed"] >= config.seeds:  # a validation seed: only its validation score is used
            return {"validation_elbo": vae.validation_elbo(
                config, config.validation_size, trained.model, key["seed"], device)}
        result = {**trained.evaluation, "data": trained.train.name}
        if annealed and key["estimator"] == NOISE_ESTIMATOR:
            x_test = trained.test_images
            initial = vae.initial_model(x_test.shape[1], recipe.latents, recipe.categories,
                                        recipe.hidden, key["seed"], device)
            probe = torch.Generator(device=device)
            with torch.no_grad():
                logits = trained.model.logits(x_test)
                posteriors = {"trained": logits, "initial": initial.logits(x_test),
                              **{f"sharpened_{q:g}": sharpened(logits, q)
                                 for q in config.converged_max_q}}
                for name, z in posteriors.items():
                    # the same Gumbel draws at every tau: common random numbers across taus
                    result[f"noise_{name}"] = [
                        noise_effect(z, t, probe.manual_seed(10_000 + key["seed"]))
                        for t in config.noise_grid()]
                    result[f"max_q_{name}"] = mean_max_q(z)
        return result

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        by_run = {(k["code"], k["estimator"], k["schedule"], k["seed"]): r for k, r in results}
        seeds = sorted({k["seed"] for k, _ in results if k["seed"] < config.seeds})
        held = sorted({k["seed"] for k, _ in results if k["seed"] >= config.seeds})
        grid = config.noise_grid()
        cells, noise = {}, {}
        for code in config.codes:
            def values(name: str, schedule: float | str, metric: str, code: str = code
                       ) -> list[float]:
                return [by_run[code, name, schedule, s][metric] for s in seeds]

            for name in config.estimators:
                # the best constant on the validation seeds' validation images
                best = config.taus[0] if not held else min(
                    config.taus, key=lambda t, n=name, c=code: np.mean(
                        [by_run[c, n, t, s]["validation_elbo"] for s in held]))
                annealed, constant = (values(name, ANNEALED, "discrete_elbo"),
                                      values(name, best, "discrete_elbo"))
                cells[f"{name}, L x C = {code}"] = {
                    "schedules": {_label(s): {m: mean_interval(values(name, s, m))
                                              for m in ("discrete_elbo", "iw_bound", "kl")}
                                  for s in (*config.taus, ANNEALED)},
                    "best_constant": best,
                    "annealed_minus_best": paired_difference(annealed, constant),
                    "annealed_minus_best_tost": paired_difference(
                        annealed, constant, level=equivalence_level()),
                }
            runs = [by_run[code, NOISE_ESTIMATOR, ANNEALED, s] for s in seeds]
            curves = {name: np.array([r[f"noise_{name}"] for r in runs])
                      for name in ("trained", "initial")}
            noise[code] = {
                **{name: [mean_interval(column) for column in curve.T]
                   for name, curve in curves.items()},
                "max_q": mean_interval([r["max_q_trained"] for r in runs]),
                "max_q_initial": mean_interval([r["max_q_initial"] for r in runs]),
                # lowering tau from grid[i + 1] to grid[i], on the trained encoders
                "lower_minus_higher": [paired_difference(curves["trained"][:, i],
                                                         curves["trained"][:, i + 1])
                                       for i in range(len(grid) - 1)],
                "sharpened": {},
            }
            for q in config.converged_max_q:
                curve = np.array([r[f"noise_sharpened_{q:g}"] for r in runs])
                noise[code]["sharpened"][f"{q:g}"] = {
                    "curve": [mean_interval(column) for column in curve.T],
                    "max_q": mean_interval([r[f"max_q_sharpened_{q:g}"] for r in runs]),
                    "lower_minus_higher": [paired_difference(curve[:, i], curve[:, i + 1])
                                           for i in range(len(grid) - 1)],
                }
        return {"data": results[0][1]["data"], "seeds": len(seeds), "steps": config.steps,
                "margin": MARGIN, "tau0": config.tau0, "tau_min": config.tau_min,
                "final_tau": config.final_tau(), "noise_taus": grid,
                "annealing": cells, "noise": noise}

    def verdicts(self, summary: dict) -> list[Verdict]:
        """Answer 2's annealing claim and answer 4's noise claim, each decided on its own."""
        return [self._annealing_verdict(summary), self._noise_verdict(summary)]

    def _annealing_verdict(self, summary: dict) -> Verdict:
        cells, margin = summary["annealing"], summary["margin"]
        outcome = {cell: _annealing_decision(data["annealed_minus_best"],
                                             data["annealed_minus_best_tost"], margin)
                   for cell, data in cells.items()}
        decision, where = across(outcome)
        evidence = "; ".join(
            f"{cell}: annealed minus constant tau={data['best_constant']:g} "
            f"{data['annealed_minus_best'].format(3)} nats "
            f"({_ANNEALING_WORDS[_compared(data['annealed_minus_best'], outcome[cell])]})"
            for cell, data in cells.items())
        return Verdict(
            decision,
            f"The claim {decision.word} ({where}): on held-out {summary['data']} test images "
            f"({summary['seeds']} seeds, {summary['steps']} steps, annealed tau "
            f"{summary['tau0']:g} -> {summary['final_tau']:.3g}), {evidence}.",
            "Differences are paired by seed; negative means annealing reaches a lower (better) "
            "discrete negative ELBO. The best constant is the grid's best by mean on validation "
            "images of other seeds, so the comparison is not tilted towards the constants. Per "
            "cell, the claim fails when annealing and the best constant are the same within the "
            f"pre-registered margin of {margin:g} nat per image (the equivalence interval, two "
            "one-sided tests, inside it: annealing is not needed) or when annealing is "
            "significantly worse; it holds when annealing is significantly better and not "
            "within the margin; it is inconclusive otherwise. Cells are combined by the grid "
            "rule (a common decision, or depends naming the cells).",
            number="; ".join(f"{cell}: {data['annealed_minus_best'].format(3)} nats"
                             for cell, data in cells.items()),
            claims=self.claims[:1])

    def _noise_verdict(self, summary: dict) -> Verdict:
        taus, noise = summary["noise_taus"], summary["noise"]
        # the pairs of neighbouring taus inside the annealing's range [tau_min, tau0]
        pairs = [(i, f"tau {high:g} -> {low:g}")
                 for i, (low, high) in enumerate(zip(taus[:-1], taus[1:], strict=True))
                 if summary["tau_min"] <= low and high <= summary["tau0"]]

        def posteriors(entry: dict) -> dict[str, tuple[Interval, list[Interval]]]:
            """Each posterior of a latent code: its mean max q and the changes over the pairs."""
            found = {"trained": (entry["max_q"], entry["lower_minus_higher"])}
            found.update({f"sharpened to max q {q}": (s["max_q"], s["lower_minus_higher"])
                          for q, s in entry.get("sharpened", {}).items()})
            return found

        # YES: the noise's effect is significantly smaller at the lower tau
        by_cell = {f"{code}, {name}, {pair}": Decision.below(changes[i])
                   for code, entry in noise.items()
                   for name, (_, changes) in posteriors(entry).items() for i, pair in pairs}
        decision, where = across(by_cell)
        evidence = "; ".join(
            f"L x C = {code}, {name} (mean max q {max_q.format(3)}): "
            + ", ".join(f"{pair} {changes[i].format(3)}" for i, pair in pairs)
            for code, entry in noise.items()
            for name, (max_q, changes) in posteriors(entry).items())
        return Verdict(
            decision,
            f"The claim {decision.word} ({where}): on the held-out logits of the encoders at the "
            "end of annealed training, and on those logits sharpened to the mean max q of a "
            "converged posterior, lowering tau over the annealing's range changes the "
            "effect of the noise (total variation between the Gumbel-Softmax and the softmax-tau "
            f"code, same logits) by {evidence}.",
            "Paired by seed (the same Gumbel draws at every tau); negative: the noise matters "
            "less at the lower tau, as claimed. Per latent code, posterior and pair of "
            "neighbouring taus in [tau_min, tau0], the claim holds when the change is "
            "significantly negative and fails when it is significantly positive; cells are "
            "combined by the grid rule. Whatever tau, the noise changes which category wins "
            "with probability 1 - max q, so as tau falls the total variation tends to that "
            "probability (for the trained encoders "
            + ", ".join(f"{1 - e['max_q'].estimate:.3g} for {c}" for c, e in noise.items())
            + "), and as tau grows both codes approach the uniform vector and it tends to 0: "
            "lowering tau towards 0 brings it down to 1 - max q where it lies above, up where it "
            "lies below; the table has the whole curves, and the encoders before training "
            "(mean max q "
            + ", ".join(f"{e['max_q_initial'].estimate:.3g} for {c}" for c, e in noise.items())
            + ") for contrast.",
            number="; ".join(
                f"{code}, {name}, {pairs[0][1]}: {changes[pairs[0][0]].format(2)}"
                for code, entry in list(noise.items())[:1]
                for name, (_, changes) in posteriors(entry).items()) if pairs else "",
            claims=self.claims[1:])

    def tables(self, summary: dict) -> list[Table]:
        rows = []
        for cell, entry in summary["annealing"].items():
            for label, metrics in entry["schedules"].items():
                best = label == _label(entry["best_constant"])
                rows.append([cell, label + (" (best constant)" if best else ""),
                             *(metrics[m].format(4) for m in ("discrete_elbo", "iw_bound", "kl"))])
            rows.append([cell, "annealed minus best constant",
                         entry["annealed_minus_best"].format(3), "", ""])
        taus, noise = summary["noise_taus"], summary["noise"]
        noise_rows = [[code, f"{tau:g}", trained.format(3), initial.format(3),
                       *(entry["sharpened"][q]["curve"][i].format(3)
                         for q in entry["sharpened"])]
                      for code, entry in noise.items()
                      for i, (tau, trained, initial) in enumerate(
                          zip(taus, entry["trained"], entry["initial"], strict=True))]
        sharp = list(next(iter(noise.values()))["sharpened"])
        return [
            Table(["cell", "temperature", "discrete negative ELBO [95% CI]",
                   "negative IW bound [95% CI]", "KL [95% CI]"], rows,
                  f"Held-out {summary['data']} test images, nats per image, one-hot codes, lower "
                  "is better; the best constant chosen on validation images of other seeds."),
            Table(["L x C", "tau", "noise effect, trained encoder [95% CI]",
                   "noise effect, initial encoder [95% CI]",
                   *(f"noise effect, sharpened to max q {q} [95% CI]" for q in sharp)],
                  noise_rows,
                  "TV(gs code, softmax-tau code) per latent on the held-out logits of the "
                  f"annealed {NOISE_ESTIMATOR} models; mean max q of the trained encoders: "
                  + ", ".join(f"{c} {e['max_q'].format(3)}" for c, e in noise.items()) + "."),
        ]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        return [self._bounds_figure(summary, directory), self._noise_figure(summary, directory)]

    def _bounds_figure(self, summary: dict, directory: Path) -> Figure:
        cells = summary["annealing"]
        fig, axes = plt.subplots(1, len(cells), figsize=(2.8 * len(cells), 3.4), squeeze=False)
        for ax, (cell, entry) in zip(axes[0], cells.items(), strict=True):
            labels = list(entry["schedules"])
            for i, label in enumerate(labels):
                errorbar(ax, np.array([i]), [entry["schedules"][label]["discrete_elbo"]],
                         fmt="D" if label == ANNEALED else "o",
                         color="C2" if label == ANNEALED else "C0")
            ax.set_xticks(np.arange(len(labels)), labels, rotation=30, fontsize=8)
            ax.set_xlim(-0.5, len(labels) - 0.5)
            ax.set_title(cell, fontsize=9)
        axes[0][0].set_ylabel("discrete negative ELBO (nats)")
        return Figure(save(fig, directory, "e9_schedules.png"),
                      "Held-out discrete negative ELBO (one-hot codes, lower is better) per "
                      "estimator, latent code and temperature schedule: means over seeds with 95% "
                      "t intervals; each panel has its own scale.")

    def _noise_figure(self, summary: dict, directory: Path) -> Figure:
        taus = np.array(summary["noise_taus"])
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for i, (code, entry) in enumerate(summary["noise"].items()):
            errorbar(ax, taus, entry["trained"], fmt="o-", color=f"C{i}",
                     label=f"{code}, trained (mean max q {entry['max_q'].estimate:.2f})")
            errorbar(ax, taus, entry["initial"], fmt="s:", color=f"C{i}",
                     label=f"{code}, initial")
            ax.axhline(1 - entry["max_q"].estimate, color=f"C{i}", linewidth=0.8,
                       linestyle="--")
        ax.set_xscale("log")
        ax.set_xlabel("tau")
        ax.set_ylabel("TV(gs code, softmax-tau code)")
        ax.legend(fontsize=7)
        return Figure(save(fig, directory, "e9_noise.png"),
                      f"Effect of the Gumbel noise on the code of the annealed {NOISE_ESTIMATOR} "
                      "models' held-out logits: mean total variation per latent between the "
                      "Gumbel-Softmax and the softmax-tau code (95% t intervals); dashed: "
                      "1 - mean max q of the trained encoders, its limit as tau -> 0.")


def _annealing_decision(difference: Interval, tost: Interval, margin: float) -> Decision:
    """Annealed minus the best constant: NO when the same within the margin or worse, YES when
    better (and not within the margin), UNDECIDED otherwise."""
    if Decision.within(tost, -margin, margin) is Decision.YES or difference.low > 0:
        return Decision.NO
    return Decision.YES if difference.high < 0 else Decision.UNDECIDED


def _compared(difference: Interval, decision: Decision) -> str:
    """Annealed minus the best constant, as one of the keys of ``_ANNEALING_WORDS``."""
    if decision is Decision.NO:
        return "worse" if difference.low > 0 else "same"
    return "better" if decision is Decision.YES else "unclear"


_ANNEALING_WORDS = {"better": "annealing better", "worse": "annealing worse",
                    "same": "the same within the margin",
                    "unclear": "no significant difference, not shown the same"}


EXPERIMENT = AnnealingExperiment()
