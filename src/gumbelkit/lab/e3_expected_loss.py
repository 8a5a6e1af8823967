"""E3. The expected loss E_c[f(c)]: exact gradients, and what the noise-free relaxation optimises.

Part 1 (gradients). On a small nonlinear problem whose expectation can be enumerated
(:mod:`gumbelkit.workloads.problems`, one draw of logits per seed), ``gk.exact.compare`` measures
every estimator's gradient of one ``gk.expectation`` call against the exact gradient, at each
temperature: bias ``||E g_hat - g||``, variance ``sum_i Var g_hat_i`` and mean cosine to ``g``.

Part 2 (optimisation). Logits are trained with Adam through ``gk.expectation`` with each of
softmax-tau, gs, st-gs, reinmax, gr and rloo, on two objectives over binary variables that have the
*same* expected loss for every distribution but differ off the one-hot points:

- the polynomial programme of Liu et al. (2023) (``problems.poly``): ``f = mean_l (z_l - 0.45)^2``,
  nonlinear, so softmax-tau at tau = 1, which feeds f the mean ``E[c] = softmax(logits)``,
  minimises ``f(E[c])`` (at ``p(z = 1) = 0.45``) instead of ``E[f(c)]`` (at ``p(z = 1) = 0``);
- its linear twin ``f_lin(c) = mean_l h(c_l)``, where ``h(k)`` is f with every variable in category
  k: equal to f on every one-hot configuration (checked by enumeration), linear in c, so
  ``f_lin(E[c]) = E[f_lin(c)]`` and the relaxation is exact.

The gap of the exact expected loss (``gk.exact.expectation``) to its minimum over configurations
is recorded during training; final gaps are compared with softmax-tau's, paired by seed (same
initial logits), with 95% t intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk
from gumbelkit.estimators.base import ObjectiveFn

from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, Interval, mean_interval, paired_difference
from ..workloads.problems import make_problem
from .base import LabExperiment

GRADIENT_METRICS = ("bias", "variance", "cosine")
TOLERANCE = 0.01  # a gap difference matters if it exceeds this fraction of f's range
OBJECTIVES = ("nonlinear", "linear")
TRAIN_PROBLEM = "poly"


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    problem: str = "toy"  # part 1
    taus: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    n_draws: int = 80
    n_samples: int = 2  # per gradient estimate, for every estimator (rloo needs 2)
    # every estimator of the registry but those whose control variates are tuned first (rebar,
    # relax: untuned, they are a slower REINFORCE with a control variate)
    estimators: tuple[str, ...] = tuple(
        name for name, est in gk.ESTIMATORS.items()
        if not any(spec.learnable for spec in est.option_specs))
    train_estimators: tuple[str, ...] = ("softmax", "gs", "st-gs", "reinmax", "gr", "rloo")
    train_tau: float = 1.0
    steps: int = 300
    lr: float = 0.1
    record_every: int = 10

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, n_draws=2000, steps=2000,
                   taus=tuple(float(t) for t in np.round(np.logspace(-1, 1, 9), 6)))

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, n_draws=4, taus=(1.0,), steps=20)


def linear_twin(f: ObjectiveFn, n_variables: int, n_categories: int,
                dtype: torch.dtype = torch.float64) -> ObjectiveFn:
    """``f_lin(c) = mean_l h(c_l)`` with ``h(k)`` = f at every variable in category k.

    Equal to f on every one-hot configuration when f is a mean of one function per variable;
    raises ValueError otherwise (checked on all ``K**L`` configurations).
    """
    eye = torch.eye(n_categories, dtype=dtype)
    h = f(eye.unsqueeze(1).expand(n_categories, n_variables, n_categories))

    def f_lin(samples: torch.Tensor) -> torch.Tensor:
        return (samples @ h.to(samples.dtype)).mean(-1)

    every = _all_one_hot(n_variables, n_categories, dtype)
    if not torch.allclose(f(every), f_lin(every)):
        raise ValueError("f is not a mean of per-variable terms: it has no linear twin")
    return f_lin


def _all_one_hot(n_variables: int, n_categories: int, dtype: torch.dtype) -> torch.Tensor:
    index = gk.exact.configurations(n_variables, n_categories)
    return torch.nn.functional.one_hot(index, n_categories).to(dtype)


def _train(config: Config, key: dict) -> dict:
    """Adam on the logits through gk.expectation; the exact gap recorded along the way."""
    seed = key["seed"]
    torch.manual_seed(seed)
    problem = make_problem(TRAIN_PROBLEM, seed)
    n_variables, n_categories = problem.logits.shape
    f = problem.f
    if key["objective"] == "linear":
        f = linear_twin(f, n_variables, n_categories, problem.logits.dtype)
    values = f(_all_one_hot(n_variables, n_categories, problem.logits.dtype))
    optimum = float(values.min())
    logits = problem.logits.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=config.lr)
    gen = torch.Generator().manual_seed(3000 + seed)
    steps, gaps = [], []
    for step in range(config.steps + 1):
        if step % config.record_every == 0 or step == config.steps:
            with torch.no_grad():
                gaps.append(float(gk.exact.expectation(f, logits)) - optimum)
            steps.append(step)
        if step < config.steps:
            optimizer.zero_grad()
            gk.expectation(f, logits, key["estimator"], config.n_samples, config.train_tau,
                           generator=gen).backward()
            optimizer.step()
    probs = torch.softmax(logits.detach(), -1)
    return {"steps": steps, "gaps": gaps, "final_gap": gaps[-1], "optimum": optimum,
            "f_range": float(values.max()) - optimum, "p_category_0": float(probs[:, 0].mean())}


def _gradients(config: Config, key: dict) -> dict:
    """gk.exact.compare of every estimator at one temperature (wall times left out)."""
    torch.manual_seed(key["seed"])
    problem = make_problem(config.problem, key["seed"])
    gen = torch.Generator().manual_seed(4000 + key["seed"])
    rows = gk.exact.compare(problem.f, problem.logits, config.estimators, config.n_draws,
                            key["tau"], config.n_samples, generator=gen)
    keep = (*GRADIENT_METRICS, "bias_se")
    return {"rows": {row["estimator"]: {m: row[m] for m in keep} for row in rows}}


def _decide(differences: list[Interval], tolerance: float, any_above: bool) -> Decision:
    """Whether differences exceed ``tolerance``, as the intervals say.

    ``any_above``: YES when one interval entirely above suffices (and NO needs all below);
    otherwise YES needs all below (and one entirely above makes it NO).
    """
    if any_above:
        return Decision.any_of(Decision.above(d, tolerance) for d in differences)
    return Decision.all_of(Decision.below(d, tolerance) for d in differences)


class ExpectedLoss(LabExperiment):
    id = "E3"
    title = "Expected loss: exact gradients, and f(E[c]) vs E[f(c)]"
    claim_summary = (
        "Without noise the relaxation minimises f(E[c]) rather than E[f(c)]: fine for some "
        "f, highly suboptimal for others."
    )
    claims = (
        Claim("You have loss function that takes in categorical decisions c, so the expected loss "
              "E_c[f(c)] is minimized by learning some distribution p(c). Quantizing a softmax "
              "without sampling the Gumbel noise (e.g. just using a sigmoid or softmax) is akin "
              "to choosing the same c every time. For some f this is okay, and for other f this "
              "is highly suboptimal",
              "answer 3",
              "Without noise the relaxation minimises f(E[c]) rather than E[f(c)]: fine for some "
              "f, highly suboptimal for others."),
    )
    config_class = Config
    threads = 1  # tiny tensors: extra threads only add synchronisation

    def setup(self, config: Config) -> str:
        return (
            f"{config.seeds} seeds. Part 1: problem {config.problem!r} of "
            "gumbelkit.workloads.problems "
            f"(one random instance per seed); gk.exact.compare of the {len(config.estimators)} "
            f"estimators ({', '.join(config.estimators)}), {config.n_draws} gradient estimates of "
            f"{config.n_samples} samples each at every tau in {list(config.taus)}. Part 2: "
            f"logits of the {TRAIN_PROBLEM!r} problem (Liu et al. 2023: 8 binary variables, "
            "f = mean_l (z_l - 0.45)^2, logits ~ U(-0.01, 0.01)) and of its linear twin (equal "
            "to f on every one-hot configuration) trained with Adam (lr "
            f"{config.lr:g}, {config.steps} steps, {config.n_samples} samples per step, "
            f"tau={config.train_tau:g}) through gk.expectation with "
            f"{', '.join(config.train_estimators)}; the exact expected loss (gk.exact.expectation) "
            "minus its minimum over configurations is recorded every "
            f"{config.record_every} steps. A final-gap difference counts when its 95% t "
            f"interval (paired by seed) lies beyond {TOLERANCE:g} x the range of f.")

    def runs(self, config: Config) -> list[dict]:
        keys: list[dict] = [{"part": "gradients", "seed": seed, "tau": tau}
                            for seed in range(config.seeds) for tau in config.taus]
        keys += [{"part": "training", "objective": objective, "estimator": name, "seed": seed}
                 for objective in OBJECTIVES for name in config.train_estimators
                 for seed in range(config.seeds)]
        return keys

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        # tiny tensors: the device is not used
        return _gradients(config, key) if key["part"] == "gradients" else _train(config, key)

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        gradient_runs = [(k, r) for k, r in results if k["part"] == "gradients"]
        training = [(k, r) for k, r in results if k["part"] == "training"]
        taus = [f"{t:g}" for t in config.taus]
        reference = "1" if "1" in taus else taus[len(taus) // 2]

        def rows_at(tau: str) -> list[dict]:
            return [r["rows"] for k, r in gradient_runs if f"{k['tau']:g}" == tau]

        gradients = {
            name: {tau: {m: mean_interval([row[name][m] for row in rows_at(tau)])
                         for m in GRADIENT_METRICS} for tau in taus}
            for name in config.estimators
        }
        floor = {name: mean_interval([row[name]["bias_se"] for row in rows_at(reference)])
                 for name in config.estimators}
        # E||mean - g||^2 = ||true bias||^2 + bias_se^2: the difference estimates the squared bias
        squared_bias = {name: mean_interval([row[name]["bias"] ** 2 - row[name]["bias_se"] ** 2
                                         for row in rows_at(reference)])
                        for name in config.estimators}

        def final(objective: str, name: str, field: str = "final_gap") -> list[float]:
            chosen = sorted((k["seed"], r[field]) for k, r in training
                            if k["objective"] == objective and k["estimator"] == name)
            return [value for _, value in chosen]

        def curve(objective: str, name: str) -> dict:
            gaps = np.array([r["gaps"] for k, r in sorted(training, key=lambda kr: kr[0]["seed"])
                             if k["objective"] == objective and k["estimator"] == name])
            steps = next(r["steps"] for k, r in training)
            return {"steps": steps, "mean": gaps.mean(0).tolist(), "min": gaps.min(0).tolist(),
                    "max": gaps.max(0).tolist()}

        f_range = max(r["f_range"] for _, r in training)
        sampling = [n for n in config.train_estimators if n != "softmax"]
        objectives = {
            objective: {
                "final_gap": {n: mean_interval(final(objective, n))
                              for n in config.train_estimators},
                "softmax_minus": {n: paired_difference(final(objective, "softmax"),
                                                       final(objective, n))
                                  for n in sampling},
                "p_category_0": {n: mean_interval(final(objective, n, "p_category_0"))
                                 for n in config.train_estimators},
                "curves": {n: curve(objective, n) for n in config.train_estimators},
            }
            for objective in OBJECTIVES
        }
        return {"seeds": config.seeds, "problem": config.problem, "taus": list(config.taus),
                "reference_tau": reference, "gradients": gradients, "bias_floor": floor,
                "squared_bias": squared_bias,
                "train_tau": config.train_tau, "steps": config.steps,
                "f_range": f_range, "tolerance": TOLERANCE * f_range, "objectives": objectives}

    def verdict(self, summary: dict) -> Verdict:
        tolerance = summary["tolerance"]
        parts, better, text = {}, {}, {}
        for objective, data in summary["objectives"].items():
            diffs = {n: d for n, d in data["softmax_minus"].items()}
            better[objective] = [n for n, d in diffs.items() if d.low > tolerance]
            parts[objective] = _decide(list(diffs.values()), tolerance,
                                       any_above=objective == "nonlinear")
            gaps = {n: g for n, g in data["final_gap"].items()}
            text[objective] = ", ".join(f"{n} {g.format()}" for n, g in gaps.items())
        decision = Decision.all_of(parts.values())
        nonlinear = summary["objectives"]["nonlinear"]
        sampling = list(nonlinear["softmax_minus"])
        p_zero = nonlinear["p_category_0"]["softmax"]
        softmax_gap = nonlinear["final_gap"]["softmax"]
        answer = (
            f"After {summary['steps']} Adam steps at tau={summary['train_tau']:g} "
            f"({summary['seeds']} seeds), the gap of the exact E f to its optimum on the "
            f"nonlinear f is {text['nonlinear']}; softmax-tau settles at p(z=1) = "
            f"{p_zero.format()}, {100 * softmax_gap.estimate / summary['f_range']:.3g}% of "
            f"f's range above the optimum, and ends worse than {len(better['nonlinear'])} of "
            f"{len(sampling)} sampling estimators"
            + (f" ({', '.join(better['nonlinear'])})" if better["nonlinear"] else "")
            + f" by more than {tolerance:.3g} (paired 95% intervals). On the linear twin, "
            f"which has the same E f, the gaps are {text['linear']}, and softmax-tau is worse "
            f"than {len(better['linear'])} of {len(sampling)}"
            + (f" ({', '.join(better['linear'])})" if better["linear"] else "")
            + ". " + self._gradient_sentence(summary)
        )
        diffs_text = "; ".join(
            f"{objective}: " + ", ".join(f"{n} {d.format()}"
                                         for n, d in data["softmax_minus"].items())
            for objective, data in summary["objectives"].items())
        detail = (
            "The claim holds when some sampling estimator ends significantly below softmax-tau "
            "on the nonlinear f (interval of the paired difference above the tolerance) and none "
            "does on the linear twin; it fails when none does on the nonlinear f or some does on "
            f"the linear one. Part decisions: nonlinear {parts['nonlinear'].value}, linear "
            f"{parts['linear'].value}. Final-gap differences softmax-tau minus estimator: "
            f"{diffs_text}.")
        return Verdict(decision, answer, detail,
                       number=f"softmax-tau worse than {len(better['nonlinear'])} of "
                              f"{len(sampling)} sampling estimators on the nonlinear f")

    def _gradient_sentence(self, summary: dict) -> str:
        tau = summary["reference_tau"]
        at = {n: {m: v for m, v in by_tau[tau].items()}
              for n, by_tau in summary["gradients"].items()}
        biased = [n for n, v in summary["squared_bias"].items() if v.above(0)]
        best = max(at, key=lambda n: at[n]["cosine"].estimate)
        return (
            f"With exact gradients ({summary['problem']!r} problem, tau={tau}), "
            f"{len(biased)} of {len(at)} estimators are shown biased (squared bias above the Monte "
            f"Carlo floor: {', '.join(biased) or 'none'}); softmax-tau's gradient has bias "
            f"{at['softmax']['bias'].format()} and cosine {at['softmax']['cosine'].format()} "
            f"to the exact one, the best cosine is {best}'s {at[best]['cosine'].format()}.")

    def tables(self, summary: dict) -> list[Table]:
        tau = summary["reference_tau"]
        rows = []
        for name, by_tau in summary["gradients"].items():
            cells = {m: v.format() for m, v in by_tau[tau].items()}
            rows.append([name, cells["bias"],
                         summary["bias_floor"][name].format(),
                         summary["squared_bias"][name].format(),
                         cells["variance"], cells["cosine"]])
        gradient_table = Table(
            ["estimator", "bias", "Monte Carlo floor", "bias^2 - floor^2", "variance", "cosine"],
            rows,
            f"Gradients against the exact one on the {summary['problem']!r} problem at "
            f"tau={tau}; means over seeds with 95% t intervals. The measured bias "
            "||mean(g_hat) - g|| of an unbiased estimator is about its Monte Carlo floor "
            "sqrt(variance / draws); bias^2 - floor^2 estimates the true squared bias.")
        rows = []
        for objective, data in summary["objectives"].items():
            for name, gap in data["final_gap"].items():
                diff = data["softmax_minus"].get(name)
                rows.append([objective, name, gap.format(),
                             diff.format() if diff else "-",
                             data["p_category_0"][name].format()])
        training_table = Table(
            ["objective", "estimator", "final gap of E f", "softmax-tau minus estimator",
             "final p(z=1)"], rows,
            "Exact expected loss minus its optimum after training, and the learned p(z=1) "
            "(mean over variables; the optimum is 0); 95% t intervals over seeds (the "
            "difference is paired by seed).")
        return [gradient_table, training_table]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        return [self._gradient_figure(summary, directory),
                self._convergence_figure(summary, directory)]

    def _gradient_figure(self, summary: dict, directory: Path) -> Figure:
        taus = summary["taus"]
        styles = {"none": "-", "gumbel": "--", "sampling": ":"}
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        colors = plt.get_cmap("tab10")
        for i, (name, by_tau) in enumerate(summary["gradients"].items()):
            for ax, metric in zip(axes, GRADIENT_METRICS, strict=True):
                cells = [by_tau[f"{t:g}"][metric] for t in taus]
                ax.plot(taus, [c.estimate for c in cells], styles[gk.ESTIMATORS[name].noise],
                        marker=".", color=colors(i), label=name)
                ax.fill_between(taus, [c.low for c in cells], [c.high for c in cells],
                                color=colors(i), alpha=0.12)
        for ax, metric in zip(axes, GRADIENT_METRICS, strict=True):
            ax.set_xscale("log")
            if metric != "cosine":
                ax.set_yscale("log", nonpositive="mask")
            ax.set_xlabel("tau")
            ax.set_title(f"gradient {metric}", fontsize=10)
        axes[2].legend(fontsize=8, ncol=2)
        return Figure(save(fig, directory, "e3_gradients.png"),
                      f"Problem {summary['problem']!r}: bias, variance and mean cosine of each "
                      "estimator's gradient against the exact one, means over "
                      f"{summary['seeds']} seeds with 95% t bands (solid: no noise, "
                      "dashed: Gumbel noise, dotted: other sampling). The measured bias includes "
                      "the Monte Carlo floor sqrt(variance / draws), the level of the unbiased "
                      "reinforce and rloo. Deterministic estimators have zero variance (not "
                      "drawn on the log axis).")

    def _convergence_figure(self, summary: dict, directory: Path) -> Figure:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        for ax, (objective, data) in zip(axes, summary["objectives"].items(), strict=True):
            for name, c in data["curves"].items():
                line, = ax.plot(c["steps"], c["mean"], label=name)
                ax.fill_between(c["steps"], c["min"], c["max"], color=line.get_color(),
                                alpha=0.15)
            ax.set_yscale("log", nonpositive="mask")
            ax.set_xlabel("Adam step")
            ax.set_title(f"{objective} f", fontsize=10)
        axes[0].set_ylabel("exact E f minus its optimum")
        axes[0].legend(fontsize=8)
        return Figure(save(fig, directory, "e3_convergence.png"),
                      "Training the logits: the exact expected loss minus its optimum, mean over "
                      f"{summary['seeds']} seeds (band: min to max), on the nonlinear f and on "
                      "its linear twin (same E f for every distribution). On the linear twin "
                      "st-gs follows gs exactly: same noise, and a linear f's gradient does not "
                      "depend on the forward value.")


EXPERIMENT = ExpectedLoss()
