"""E8. Exploration: does Gumbel noise help escape a deceptive local optimum, unlike softmax-tau?

Objective: a trap over ``variables`` independent categoricals of ``categories`` options each. With
``u`` the number of variables on their last option, ``f = (variables - 1) - u`` while
``u < variables`` (the local optimum: no variable on its last option) and ``f = global_value`` at
``u = variables`` (the global optimum: every variable on it). Relaxed inputs (rows of the
simplex) use the soft count ``u = sum_l x_l[last]`` and the piecewise-linear curve through those
points, so the relaxed objective's gradient points to the local optimum everywhere except near
the global one.

Every method starts from the same random logits per seed (paired) and follows its gradient with
Adam: softmax-tau (no noise), gs, st-gs, reinmax, rloo (REINFORCE with a leave-one-out
baseline), the exact gradient of the expected objective (no noise, no bias), and a control that
adds Gaussian noise of the Gumbel's standard deviation to the logits before softmax-tau (answer
3: "many ways to inject exploration noise"). Seeds run together as a batch (Adam acts per
element, so they stay independent).

Every method's distribution is softmax(theta): the estimators differ only in their gradient.
Measured per seed: success, the mode of the final distribution being the global optimum (the mode
does not depend on tau, so a softmax-tau whose output is already one-hot while softmax(theta) is
not yet concentrated is judged by where it went), and the exact expected objective under the
final distribution (enumerated). Success rates are compared paired by seed, at each tau and
pooled over the tau grid (each seed's mean success over the grid).
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
from ..harness.statistics import Decision, mean_interval, paired_difference
from ..workloads.trap import Trap
from .base import LabExperiment

GUMBEL_STD = math.pi / math.sqrt(6)  # standard deviation of Gumbel(0, 1)
TAU_METHODS = ("softmax", "gaussian", "gs", "st-gs")  # run at every tau of the grid
REFERENCES = ("exact", "rloo")  # no tau; the expected objective itself, without and with noise


@dataclass
class Config(ExperimentConfig):
    seeds: int = 128
    variables: int = 2
    categories: int = 4
    global_value: float = 3.0
    init_scale: float = 1.0
    steps: int = 300
    lr: float = 0.05
    samples: int = 4  # samples per step for every sampling method
    taus: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    reinmax_taus: tuple[float, ...] = (1.0, 2.0)
    gaussian_std: float = GUMBEL_STD

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=512, steps=1000, taus=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
                   reinmax_taus=(1.0, 2.0, 4.0))

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=8, steps=10, taus=(0.5,), reinmax_taus=(1.0,))


def _name(method: str) -> str:
    return "softmax + gaussian noise" if method == "gaussian" else method


def _label(key: dict) -> str:
    name = _name(key["method"])
    return name if key["method"] in REFERENCES else f"{name} tau={key['tau']:g}"


def _trap(config: Config) -> Trap:
    return Trap(config.variables, config.categories, config.global_value)


def _optimise(config: Config, key: dict, device: torch.device) -> torch.Tensor:
    """Run one method on every seed at once; returns the final logits (seeds, L, K)."""
    torch.manual_seed(0)
    gen = torch.Generator(device=device).manual_seed(1)
    trap = _trap(config)
    init = [torch.randn(config.variables, config.categories,
                        generator=torch.Generator().manual_seed(seed))
            for seed in range(config.seeds)]
    theta = (config.init_scale * torch.stack(init)).to(device).requires_grad_()
    optimiser = torch.optim.Adam([theta], lr=config.lr)
    method, tau = key["method"], key["tau"]
    for _ in range(config.steps):
        if method == "exact":
            objective = trap.expectation(theta)
        elif method == "gaussian":  # one noise draw per sample, like the sampling methods
            noise = torch.randn((config.samples, *theta.shape), generator=gen, device=device)
            noisy = gk.sample(theta + config.gaussian_std * noise, "softmax", tau)
            objective = trap(noisy).mean(0)
        elif method == "softmax":
            objective = gk.expectation(trap, theta, "softmax", 1, tau)
        else:
            objective = gk.expectation(trap, theta, method, config.samples, tau, generator=gen)
        optimiser.zero_grad()
        (-objective.sum()).backward()
        optimiser.step()
    return theta.detach()


class Exploration(LabExperiment):
    id = "E8"
    title = "Exploration: escaping a deceptive local optimum with and without noise"
    claim_summary = (
        "Gumbel noise makes training explore more before convergence, though other noise "
        "could do the same."
    )
    claims = (
        Claim("My best guess is that the introduction of the Gumbel noise enforces stronger "
              "exploration before convergence, but I can't recall reading any papers that use "
              "this as a motivation to bring in the extra randomness.", "the question",
              "Gumbel noise makes training explore more before convergence."),
        Claim("This is an interesting idea, but there are many ways to inject \"exploration\" "
              "noise into the set of parameters you use in a function approximator.",
              "answer 3", "Other noise could explore as well."),
    )
    config_class = Config
    threads = 1  # small tensors: extra threads only add synchronisation

    def setup(self, config: Config) -> str:
        return (
            f"{config.seeds} seeds, each a random initialisation of the logits "
            f"(N(0, {config.init_scale:g}^2)) shared by every method. Objective: a trap over "
            f"{config.variables} categoricals of {config.categories} options: with u the number "
            f"of variables on their last option, f = {config.variables - 1} - u for u < "
            f"{config.variables} (local optimum {config.variables - 1:g} at u = 0) and f = "
            f"{config.global_value:g} at u = {config.variables} (global optimum); relaxed inputs "
            "use the soft count and the piecewise-linear curve through these points. Each method "
            f"maximises E[f] for {config.steps} Adam steps (lr {config.lr:g}, "
            f"{config.samples} samples per step): softmax-tau, gs and st-gs at tau in "
            f"{list(config.taus)}, reinmax at tau in {list(config.reinmax_taus)}, rloo, the "
            "exact gradient (enumeration), and softmax-tau with N(0, "
            f"{config.gaussian_std:.3g}^2) noise added to the logits (the Gumbel's standard "
            "deviation). Success: the mode of the final distribution softmax(theta) is the "
            "global optimum; E[f]: the exact expected objective under it. Intervals: 95% "
            "t intervals over seeds; differences are paired by seed.")

    def runs(self, config: Config) -> list[dict]:
        keys = [{"method": method, "tau": tau} for method in TAU_METHODS for tau in config.taus]
        keys += [{"method": "reinmax", "tau": tau} for tau in config.reinmax_taus]
        return keys + [{"method": method, "tau": 1.0} for method in REFERENCES]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        logits = _optimise(config, key, device)
        success = (logits.argmax(-1) == config.categories - 1).all(-1)
        return {"value": _trap(config).expectation(logits).tolist(),
                "success": success.tolist()}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        success = {_label(k): np.asarray(r["success"], dtype=float) for k, r in results}
        methods = {}
        for key, result in results:
            label = _label(key)
            methods[label] = {
                "method": key["method"], "tau": key["tau"],
                "success": mean_interval(success[label]),
                "value": mean_interval(result["value"]),
            }

        def pooled(method: str) -> np.ndarray:
            """Each seed's success averaged over the tau grid."""
            return np.mean([success[_label({"method": method, "tau": t})]
                            for t in config.taus], axis=0)

        def compare(a: np.ndarray, b: np.ndarray) -> dict:
            return paired_difference(a, b)

        per_tau = {}
        for tau in config.taus:
            rate = {m: success[_label({"method": m, "tau": tau})] for m in TAU_METHODS}
            per_tau[f"{tau:g}"] = {
                "gs_minus_softmax": compare(rate["gs"], rate["softmax"]),
                "gaussian_minus_softmax": compare(rate["gaussian"], rate["softmax"]),
                "gaussian_minus_gs": compare(rate["gaussian"], rate["gs"]),
            }
        pool = {m: pooled(m) for m in TAU_METHODS}
        return {
            "methods": methods, "per_tau": per_tau, "seeds": config.seeds,
            "optima": [float(config.variables - 1), config.global_value],
            "taus": list(config.taus),
            "pooled": {
                "rates": {m: mean_interval(v) for m, v in pool.items()},
                "gs_minus_softmax": compare(pool["gs"], pool["softmax"]),
                "st-gs_minus_softmax": compare(pool["st-gs"], pool["softmax"]),
                "gaussian_minus_softmax": compare(pool["gaussian"], pool["softmax"]),
                "gaussian_minus_gs": compare(pool["gaussian"], pool["gs"]),
            },
            "rloo_minus_exact": compare(success["rloo"], success["exact"]),
            "gs_minus_exact": compare(pool["gs"], success["exact"]),
        }

    def verdicts(self, summary: dict) -> list[Verdict]:
        """The question's guess (Gumbel noise explores) and answer 3's remark (other noise can
        too), each decided on its own."""
        pooled, methods = summary["pooled"], summary["methods"]
        rates = {m: v for m, v in pooled["rates"].items()}
        gumbel = pooled["gs_minus_softmax"]
        straight_through = pooled["st-gs_minus_softmax"]
        gauss = pooled["gaussian_minus_softmax"]
        gauss_vs_gs = pooled["gaussian_minus_gs"]
        noise_on_exact = summary["rloo_minus_exact"]
        gumbel_vs_exact = summary["gs_minus_exact"]
        exact, rloo = (methods[m]["success"] for m in REFERENCES)
        decision = Decision.above(gumbel)
        helps = {Decision.YES: "escapes more often", Decision.NO: "escapes less often",
                 Decision.UNDECIDED: "is not shown to escape more or less often"}
        gauss_word = ("as often as" if not gauss_vs_gs.excludes(0) else
                      "less often than" if gauss_vs_gs.below(0) else "more often than")
        answer = (
            f"Over {summary['seeds']} seeds started from the same logits and the tau grid "
            f"{summary['taus']}, gs reaches the global optimum in {rates['gs'].format()} of runs "
            f"against {rates['softmax'].format()} for softmax-tau (paired difference "
            f"{gumbel.format()}), so Gumbel noise {helps[decision]} than softmax-tau without noise "
            f"(st-gs, the same noise with one-hot samples, reaches {rates['st-gs'].format()}; "
            f"minus softmax-tau: {straight_through.format()}). Gaussian noise "
            f"of the same scale on the logits reaches {rates['gaussian'].format()} (minus "
            f"softmax-tau: {gauss.format()}; minus gs: {gauss_vs_gs.format()}), i.e. "
            f"{gauss_word} Gumbel noise within the intervals. Without relaxation, the exact "
            f"gradient (no noise) reaches {exact.format()} (gs minus exact: "
            f"{gumbel_vs_exact.format()}) and REINFORCE-LOO {rloo.format()} (sampling noise "
            f"minus none: {noise_on_exact.format()}).")
        per_tau = "; ".join(
            f"tau={tau}: gs - softmax {d['gs_minus_softmax'].format()}, "
            f"gaussian - softmax {d['gaussian_minus_softmax'].format()}"
            for tau, d in summary["per_tau"].items())
        detail = (
            "Rates are each seed's success averaged over the tau grid; the question's guess holds "
            "when the paired interval of gs minus softmax-tau lies above 0, fails when it lies "
            f"below 0. Per tau: {per_tau}. The exact-gradient and REINFORCE rows optimise the "
            "true expected objective, so their difference isolates the effect of sampling noise "
            "from the bias of the relaxation.")
        other = Decision.above(gauss)
        other_words = {Decision.YES: "helps too", Decision.NO: "hurts",
                       Decision.UNDECIDED: "is not shown to help or hurt"}
        other_noise = Verdict(
            other,
            f"Gaussian noise of the Gumbel's scale added to the logits before softmax-tau "
            f"{other_words[other]}: it reaches the global optimum in "
            f"{rates['gaussian'].format()} of runs against {rates['softmax'].format()} without "
            f"noise (paired difference {gauss.format()}), and {gauss_word} Gumbel noise (minus "
            f"gs: {gauss_vs_gs.format()}).",
            "The remark holds when another noise (here Gaussian noise on the logits, a control "
            "the thread suggests) raises the success rate over noise-free softmax-tau, paired "
            "interval above 0; fails when it lowers it.",
            number=f"gaussian - softmax {gauss.format()}", claims=self.claims[1:])
        return [Verdict(decision, answer, detail, number=f"gs - softmax {gumbel.format()}",
                        claims=self.claims[:1]), other_noise]

    def tables(self, summary: dict) -> list[Table]:
        rows = []
        for label, m in summary["methods"].items():
            diff = summary["per_tau"].get(f"{m['tau']:g}", {})
            key = {"gs": "gs_minus_softmax", "gaussian": "gaussian_minus_softmax"}.get(
                m["method"])
            rows.append([label, m["success"].format(),
                         m["value"].format(),
                         diff[key].format() if key else ""])
        return [Table(["method", "success rate [95% CI]", "final E[f] [95% CI]",
                       "success minus softmax-tau (same tau)"], rows,
                      "Success: the mode of the final distribution is the global optimum. E[f]: "
                      f"exact expected objective under it (optima: local {summary['optima'][0]:g}, "
                      f"global {summary['optima'][1]:g}).")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        methods = summary["methods"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, metric, name in zip(axes, ("success", "value"),
                                    ("success rate", "final exact E[f]"), strict=True):
            for method in (*TAU_METHODS, "reinmax"):
                rows = [m for m in methods.values() if m["method"] == method]
                cis = [m[metric] for m in rows]
                ax.errorbar([m["tau"] for m in rows], [c.estimate for c in cis],
                            yerr=[[c.estimate - c.low for c in cis],
                                  [c.high - c.estimate for c in cis]],
                            marker="o", capsize=3, label=_name(method))
            for method, style in zip(REFERENCES, (":", "-."), strict=True):
                ax.axhline(methods[method][metric].estimate,
                           color="gray", linestyle=style, label=method)
            ax.set_xscale("log")
            ax.set_xlabel("tau")
            ax.set_ylabel(name)
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        return [Figure(save(fig, directory, "e8_exploration.png"),
                       "Left: share of seeds that reach the global optimum; right: the final "
                       "exact expected objective; 95% t intervals over seeds. Gray "
                       "lines: the exact gradient and REINFORCE-LOO, which need no tau.")]


EXPERIMENT = Exploration()
