"""E8. Exploration: does Gumbel noise make training explore more, and does that help it escape?

Objective: a trap over ``variables`` independent categoricals of ``categories`` options each
(:class:`~gumbelkit.workloads.trap.Trap`): with ``u`` the number of variables on their last
option, ``f = (variables - 1) - u`` while ``u < variables`` (the local optimum: no variable on
its last option) and ``f = global_value`` at ``u = variables`` (the global optimum). Relaxed
inputs use the soft count ``u = sum_l x_l[last]``, so the relaxed objective's gradient points to
the local optimum everywhere except near the global one.

Every method maximises ``E[f]`` under softmax(theta) with Adam from the same random logits per
seed (paired), all seeds and temperatures of a method in one batch (Adam acts per element, so
they stay independent). The methods:

- the noise factorial (:data:`~gumbelkit.workloads.factorial.CELLS`): ``softmax((theta + alpha
  G) / tau)``, relaxed or straight-through, ``alpha`` in {0, 0.5, 1, 2} (alpha 0: softmax-tau and
  argmax-st, no noise; alpha 1: gs and st-gs, Jang et al. 2017);
- parameter noise (answer 3's "other ways"), one per backward: the noise-free cell (alpha 0)
  evaluated at perturbed parameters ``theta + sigma eps``, ``eps ~ N(0, I)``, ``sigma`` the
  Gumbel's standard deviation, one perturbation per sample and step, the gradient taken there and
  applied to theta (the perturbed-parameter scheme of Plappert et al. 2018 and Fortunato et al.
  2018). Here the parameters are the logits, so this is Gaussian noise where the cells put
  Gumbel noise: its argmax is not a sample of softmax(theta) (no Gumbel-max property), which is
  what makes it "other" noise;
- the references: the exact gradient of ``E[f]`` (enumeration: no noise, no relaxation bias) and
  REINFORCE with a leave-one-out baseline (``rloo``: sampling noise, no relaxation bias).

Measured per seed, on held-out seeds (tau chosen per method and trap, from the grid, by the mean
final ``E[f]`` on validation seeds):

- exploration: the number of distinct configurations the method's decisions visit during the
  first ``explore_steps`` steps, before convergence; a decision is the argmax of each sample's
  (perturbed) logits, i.e. the configuration a hard sample takes (for the exact gradient and the
  noise-free cells: the mode of softmax(theta), which moves as theta moves). Also whether the
  global optimum was among them (found);
- escaping: success, the mode of the final softmax(theta) being the global optimum, and the
  exact final ``E[f]``.

The question's guess is decided on exploration: Gumbel noise (alpha 1) minus none (alpha 0), at
each backward and trap, paired by seed; answer 3's remark on parameter noise minus none. Whether
exploration turned into escaping is reported beside each, from the success rates.
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
from ..harness.statistics import Decision, Interval, mean_interval, paired_difference
from ..workloads.factorial import ALPHAS, BACKWARDS, CELLS, Cell
from ..workloads.trap import Trap
from .base import LabExperiment, across

GUMBEL_STD = math.pi / math.sqrt(6)  # standard deviation of Gumbel(0, 1)
VALIDATION_OFFSET = 1_000_000  # the validation seeds' initialisations: disjoint from the test seeds
CELL = {cell.label: cell for cell in CELLS}
PARAMETER = {f"parameter noise, {backward}": backward for backward in BACKWARDS}
REFERENCES = ("exact", "rloo")  # no tau; the expected objective itself, without and with noise
METHODS = (*CELL, *PARAMETER, *REFERENCES)
MEASURES = ("distinct", "found", "success", "value")
CONTRASTED = ("distinct", "success")  # the measures each contrast is paired on


@dataclass
class Config(ExperimentConfig):
    seeds: int = 128  # held-out seeds, on which everything is measured
    validation_seeds: int = 48  # seeds on which each method's tau is chosen
    variables: tuple[int, ...] = (2, 3)  # the trap instances: one per count of variables
    categories: int = 4
    global_value: float = 3.0
    init_scale: float = 1.0
    steps: int = 300
    explore_steps: int = 100  # exploration is counted over these first steps
    lr: float = 0.05
    samples: int = 4  # samples per step for every sampling method
    taus: tuple[float, ...] = (0.25, 0.5, 1.0)
    parameter_std: float = GUMBEL_STD

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=512, validation_seeds=192, steps=1000, explore_steps=300)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=8, validation_seeds=4, steps=10, explore_steps=5, taus=(0.5, 1.0))


def _trap_name(variables: int, categories: int) -> str:
    return f"{variables}x{categories}"


def _cell_name(trap: str, backward: str) -> str:
    return f"trap {trap}, {backward}"


def _seeds(config: Config) -> list[int]:
    """The held-out seeds, then the validation seeds: one initialisation each."""
    validation = range(VALIDATION_OFFSET, VALIDATION_OFFSET + config.validation_seeds)
    return [*range(config.seeds), *validation]


def _decide(trap: Trap, method: str, theta: torch.Tensor, tau: torch.Tensor, config: Config,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's objective (batch,) and decisions (draws, batch, variables): the configuration
    each draw's hard sample takes (the mode for the exact gradient)."""
    if method == "exact":
        return trap.expectation(theta), theta.detach().argmax(-1).unsqueeze(0)
    if method in PARAMETER:
        noise = torch.randn((config.samples, *theta.shape), generator=generator,
                            device=theta.device)
        x = gk.sample(theta + config.parameter_std * noise, Cell(0.0, PARAMETER[method]).estimator,
                      tau)
        return trap(x).mean(0), x.detach().argmax(-1)
    drawn = []

    def f(x: torch.Tensor) -> torch.Tensor:
        drawn.append(x.detach().argmax(-1))
        return trap(x)

    if method == "rloo":
        estimator, draws = "rloo", config.samples
    else:  # without noise every draw is the same: one is enough
        estimator, draws = CELL[method].estimator, config.samples if CELL[method].alpha else 1
    objective = gk.expectation(f, theta, estimator, draws, tau, generator=generator)
    return objective, drawn[0]


def _optimise(config: Config, variables: int, method: str, taus: list[float],
              device: torch.device) -> dict[str, np.ndarray]:
    """Train ``method`` on the trap with ``variables`` variables, every seed and tau at once.

    Returns each measure of the module docstring, shape (taus, seeds) with the held-out seeds
    first."""
    gen = torch.Generator(device=device).manual_seed(1)
    trap = Trap(variables, config.categories, config.global_value)
    init = torch.stack([torch.randn(variables, config.categories,
                                    generator=torch.Generator().manual_seed(seed))
                        for seed in _seeds(config)])
    seeds = init.shape[0]
    theta = (config.init_scale * init).repeat(len(taus), 1, 1).to(device).requires_grad_()
    tau = torch.tensor(taus, device=device).repeat_interleave(seeds).view(-1, 1, 1)
    powers = config.categories ** torch.arange(variables - 1, -1, -1, device=device)
    visited = torch.zeros(theta.shape[0], config.categories ** variables, dtype=torch.bool,
                          device=device)
    optimiser = torch.optim.Adam([theta], lr=config.lr)
    for step in range(config.steps):
        objective, decisions = _decide(trap, method, theta, tau, config, gen)
        if step < config.explore_steps:
            visited.scatter_(1, (decisions * powers).sum(-1).T, True)
        optimiser.zero_grad()
        (-objective.sum()).backward()
        optimiser.step()
    with torch.no_grad():
        final = {"distinct": visited.sum(-1), "found": visited[:, -1],  # code K^L - 1: global
                 "success": (theta.argmax(-1) == config.categories - 1).all(-1),
                 "value": trap.expectation(theta)}
    return {name: value.double().view(len(taus), seeds).cpu().numpy()
            for name, value in final.items()}


def _choose(validation: np.ndarray) -> int:
    """The index of the tau whose validation seeds reach the highest mean final E[f] (taus,
    seeds); the first such on a tie."""
    return int(np.argmax(validation.mean(1)))


def _contrast(test: dict[str, dict[str, np.ndarray]], a: str, b: str) -> dict[str, Interval]:
    """Method ``a`` minus method ``b``, paired by seed, on each contrasted measure."""
    return {m: paired_difference(test[a][m], test[b][m]) for m in CONTRASTED}


class Exploration(LabExperiment):
    id = "E8"
    title = "Exploration: does Gumbel noise explore more, and does that help escape a trap?"
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
              "answer 3", "Other noise, e.g. on the parameters, makes training explore too."),
    )
    config_class = Config
    threads = 1  # small tensors: extra threads only add synchronisation

    def check(self, config: Config) -> None:
        super().check(config)
        if not 1 <= config.explore_steps <= config.steps:
            raise ValueError(f"explore_steps must lie in [1, steps={config.steps}], got "
                             f"{config.explore_steps}")
        if config.validation_seeds < 1:
            raise ValueError(f"validation_seeds must be >= 1, got {config.validation_seeds}")
        if not config.variables or min(config.variables) < 1 or config.categories < 2:
            raise ValueError("the traps need variables >= 1 (at least one) and categories >= 2")

    def setup(self, config: Config) -> str:
        traps = ", ".join(_trap_name(v, config.categories) for v in config.variables)
        return (
            f"Traps (variables x categories) {traps}: with u the number of variables on their "
            "last option, f = (variables - 1) - u for u < variables (the local optimum at u = 0) "
            f"and f = {config.global_value:g} when every variable is on it (the global optimum); "
            "relaxed inputs use the soft count. Each method maximises E[f] under softmax(theta) "
            f"for {config.steps} Adam steps (lr {config.lr:g}, {config.samples} samples per "
            f"step) from logits N(0, {config.init_scale:g}^2) shared by every method (paired): "
            "the 8 cells of the noise factorial (softmax((theta + alpha G) / tau), alpha in "
            f"{list(ALPHAS)}, relaxed or straight-through; alpha 0 is softmax-tau / argmax-st, "
            "alpha 1 is gs / st-gs), parameter noise (the alpha-0 cell at theta + N(0, "
            f"{config.parameter_std:.3g}^2); the Gumbel's standard deviation is "
            f"{GUMBEL_STD:.3g}; one perturbation per sample and step), the exact gradient "
            "(enumeration) and REINFORCE-LOO. Each "
            f"method's tau is chosen from {list(config.taus)} by its mean final E[f] on "
            f"{config.validation_seeds} validation seeds; everything is measured on "
            f"{config.seeds} other seeds. Exploration: the number of distinct configurations "
            f"taken by the decisions (argmax of each sample's logits) in the first "
            f"{config.explore_steps} steps; found: the global optimum was among them; success: "
            "the mode of the final softmax(theta) is the global optimum. Intervals: 95% t "
            "intervals over seeds; differences are paired by seed.")

    def runs(self, config: Config) -> list[dict]:
        return [{"variables": v, "method": m} for v in config.variables for m in METHODS]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        taus = [1.0] if key["method"] in REFERENCES else list(config.taus)
        measures = _optimise(config, key["variables"], key["method"], taus, device)
        return {"taus": [None] if key["method"] in REFERENCES else taus,
                **{name: value.tolist() for name, value in measures.items()}}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        traps = {}
        for variables in config.variables:
            methods, test = {}, {}
            for key, result in results:
                if key["variables"] != variables:
                    continue
                measures = {m: np.asarray(result[m]) for m in MEASURES}
                chosen = _choose(measures["value"][:, config.seeds:])
                test[key["method"]] = {m: v[chosen, :config.seeds] for m, v in measures.items()}
                methods[key["method"]] = {
                    "tau": result["taus"][chosen],
                    **{m: mean_interval(v) for m, v in test[key["method"]].items()}}
            contrasts = {}
            for backward in BACKWARDS:
                noisy, free = Cell(1.0, backward).label, Cell(0.0, backward).label
                parameter = f"parameter noise, {backward}"
                contrasts[f"noise, {backward}"] = _contrast(test, noisy, free)
                contrasts[f"parameter, {backward}"] = _contrast(test, parameter, free)
                contrasts[f"parameter - gumbel, {backward}"] = _contrast(test, parameter, noisy)
            contrasts["backward"] = _contrast(test, Cell(1.0, BACKWARDS[1]).label,
                                              Cell(1.0, BACKWARDS[0]).label)
            contrasts["gs - exact"] = _contrast(test, Cell(1.0, BACKWARDS[0]).label, "exact")
            contrasts["rloo - exact"] = _contrast(test, "rloo", "exact")
            traps[_trap_name(variables, config.categories)] = {
                "configurations": config.categories ** variables,
                "methods": methods, "contrasts": contrasts}
        return {"traps": traps, "seeds": config.seeds, "explore_steps": config.explore_steps,
                "samples": config.samples, "parameter_std": config.parameter_std}

    def verdicts(self, summary: dict) -> list[Verdict]:
        """The question's guess (Gumbel noise explores) and answer 3's remark (other noise
        explores too), each decided on exploration, per trap and backward."""
        return [self._verdict(summary, "noise", 0), self._verdict(summary, "parameter", 1)]

    def _verdict(self, summary: dict, contrast: str, claim: int) -> Verdict:
        """Exploration of ``contrast`` ("noise": alpha 1 minus alpha 0; "parameter": parameter
        noise minus alpha 0) above 0 in a cell: holds there; below: fails there."""
        traps = summary["traps"]
        cells = {_cell_name(t, b): data["contrasts"][f"{contrast}, {b}"]
                 for t, data in traps.items() for b in BACKWARDS}
        decision, where = across({c: Decision.above(d["distinct"]) for c, d in cells.items()})
        escaped, escaped_where = across({c: Decision.above(d["success"])
                                         for c, d in cells.items()})
        noisy = ("Gumbel noise (alpha 1: gs, st-gs)" if contrast == "noise" else
                 f"parameter noise (N(0, {summary['parameter_std']:.3g}^2) on theta)")

        def evidence(trap: str, backward: str) -> str:
            data = traps[trap]
            with_noise = data["methods"][Cell(1.0, backward).label if contrast == "noise"
                                         else f"parameter noise, {backward}"]
            without = data["methods"][Cell(0.0, backward).label]
            difference = data["contrasts"][f"{contrast}, {backward}"]
            return (f"{_cell_name(trap, backward)}: {with_noise['distinct'].format()} against "
                    f"{without['distinct'].format()} of {data['configurations']} (difference "
                    f"{difference['distinct'].format()}); found the global optimum in "
                    f"{with_noise['found'].estimate:.3g} against {without['found'].estimate:.3g} "
                    f"of seeds, ended on it in {with_noise['success'].estimate:.3g} against "
                    f"{without['success'].estimate:.3g} (difference "
                    f"{difference['success'].format()})")

        answer = (
            f"The claim {decision.word} ({where}). Distinct configurations visited in the first "
            f"{summary['explore_steps']} steps ({summary['samples']} draws each) with {noisy} "
            "against the same backward without noise (alpha 0: softmax-tau, argmax-st), paired "
            f"over {summary['seeds']} held-out seeds: "
            + "; ".join(evidence(t, b) for t in traps for b in BACKWARDS)
            + f". Whether that exploration led out of the trap (a higher success rate with the "
            f"noise): it {escaped.word} ({escaped_where}).")
        weakest = min(cells, key=lambda c: cells[c]["distinct"].low)
        return Verdict(decision, answer, self._detail(summary, contrast),
                       number=f"{weakest}: distinct configurations, difference "
                              f"{cells[weakest]['distinct'].format()}",
                       claims=self.claims[claim:claim + 1])

    def _detail(self, summary: dict, contrast: str) -> str:
        """The factorial's two contrasts and the references, per trap, in words."""
        parts = []
        for trap, data in summary["traps"].items():
            c = data["contrasts"]
            noise = ", ".join(f"{b} {c[f'noise, {b}'][m].format()}" for m in CONTRASTED
                              for b in BACKWARDS)
            other = ", ".join(f"{b} {c[f'parameter - gumbel, {b}'][m].format()}"
                              for m in CONTRASTED for b in BACKWARDS)
            exact = data["methods"]["exact"]
            parts.append(
                f"Trap {trap}: what the noise does (alpha 1 minus 0; distinct configurations, "
                f"then success): {noise}; what the backward does (straight-through minus "
                f"relaxed at alpha 1): {c['backward']['distinct'].format()} distinct, "
                f"{c['backward']['success'].format()} success; parameter minus Gumbel noise: "
                f"{other}. The exact gradient (no noise, no relaxation) visits "
                f"{exact['distinct'].format()} and succeeds in {exact['success'].format()} "
                f"(gs minus exact: {c['gs - exact']['success'].format()}; REINFORCE-LOO minus "
                f"exact, sampling noise without relaxation bias: "
                f"{c['rloo - exact']['success'].format()}).")
        which = ("alpha 1 minus alpha 0" if contrast == "noise"
                 else "parameter noise minus alpha 0")
        return (f"Decided per trap and backward on the distinct configurations ({which}, paired "
                "by seed): holds in a cell when the interval lies above 0, fails when below; "
                "success is reported, not decided on. " + " ".join(parts))

    def tables(self, summary: dict) -> list[Table]:
        rows = [[trap, method, "" if m["tau"] is None else m["tau"],
                 *(m[name] for name in MEASURES)]
                for trap, data in summary["traps"].items()
                for method, m in data["methods"].items()]
        contrasts = [[trap, name, *(d[m] for m in CONTRASTED)]
                     for trap, data in summary["traps"].items()
                     for name, d in data["contrasts"].items()]
        return [
            Table(["trap", "method", "tau (validated)", "distinct configurations",
                   "found global", "success", "final E[f]"], rows,
                  f"The noise factorial and its controls, on {summary['seeds']} held-out seeds: "
                  f"distinct configurations visited in the first {summary['explore_steps']} "
                  "steps, the share that found the global optimum there, the share whose final "
                  "mode is the global optimum, and the exact final E[f]; means [95% t "
                  "intervals]."),
            Table(["trap", "contrast", "distinct configurations", "success"], contrasts,
                  "Paired differences by seed [95% t intervals]: noise = alpha 1 minus alpha 0 "
                  "at a backward; parameter = parameter noise minus alpha 0; parameter - gumbel "
                  "= parameter noise minus alpha 1; backward = straight-through minus relaxed "
                  "at alpha 1; gs - exact and rloo - exact against the exact gradient."),
        ]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        traps = summary["traps"]
        fig, axes = plt.subplots(2, len(traps), figsize=(5 * len(traps), 7), squeeze=False)
        for column, (trap, data) in enumerate(traps.items()):
            methods = data["methods"]
            for row, (measure, name) in enumerate((("distinct", "distinct configurations"),
                                                   ("success", "success rate"))):
                ax = axes[row][column]
                for backward, marker in zip(BACKWARDS, ("o", "s"), strict=True):
                    cis = [methods[Cell(a, backward).label][measure] for a in ALPHAS]
                    ax.errorbar(ALPHAS, [c.estimate for c in cis],
                                yerr=[[c.estimate - c.low for c in cis],
                                      [c.high - c.estimate for c in cis]],
                                marker=marker, capsize=3, label=f"Gumbel noise, {backward}")
                    ci = methods[f"parameter noise, {backward}"][measure]
                    ax.errorbar([1.05], [ci.estimate], yerr=[[ci.estimate - ci.low],
                                                             [ci.high - ci.estimate]],
                                marker=marker, linestyle="none", color="black", mfc="none",
                                capsize=3, label=f"parameter noise, {backward}")
                for method, style in zip(REFERENCES, (":", "-."), strict=True):
                    ax.axhline(methods[method][measure].estimate, color="gray",
                               linestyle=style, label=method)
                ax.set_xlabel("noise scale alpha")
                ax.set_ylabel(name)
                ax.set_title(f"trap {trap}", fontsize=9)
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
        return [Figure(save(fig, directory, "e8_exploration.png"),
                       "Top: distinct configurations visited in the first "
                       f"{summary['explore_steps']} steps; bottom: share of held-out seeds whose "
                       "final mode is the global optimum; per noise scale and backward, each at "
                       "its validated tau; open black markers: parameter noise; gray lines: the "
                       "exact gradient and REINFORCE-LOO. 95% t intervals over seeds.")]


EXPERIMENT = Exploration()
