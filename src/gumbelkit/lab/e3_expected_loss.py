"""E3. The expected loss E_c[f(c)]: exact gradients, f(E[c]) vs E[f(c)], and fitting a density.

Part 1 (gradients). On a small nonlinear problem whose expectation can be enumerated
(:mod:`gumbelkit.workloads.problems`, one draw of logits per seed), ``gk.exact.compare`` measures
every estimator's gradient of one ``gk.expectation`` call against the exact gradient, at each
temperature: bias ``||E g_hat - g||``, variance ``sum_i Var g_hat_i`` and mean cosine to ``g``.

Part 2 (optimisation). Logits of L independent categoricals, ``p = softmax(logits)``, are trained
with Adam through ``gk.expectation`` by every cell of the noise factorial
(:mod:`gumbelkit.workloads.factorial`: noise scale alpha x relaxed or straight-through backward;
alpha = 0 relaxed is softmax-tau, which feeds f the relaxation ``softmax(logits / tau)`` and no
noise), by the exact gradient (``gk.exact.expectation``) and by further sampling estimators (rloo,
reinmax, gr). The grid of nuisance parameters is two problem instances x two losses:

- instances: the polynomial programme of Liu et al. (2023) (``problems.poly``, K = 2: 8 binary
  variables, ``f = mean_l (z_l - 0.45)^2``) and its graded version on K = 10 ordered categories
  (:func:`graded`: 3 variables, ``f = mean_l (v . c_l - 0.45)^2``, ``v_k = k / 9``);
- losses: the expected loss ``E_p[f(c)]``, whose minimum over distributions is a point mass on
  the best configuration (its gap: ``E_p f - min_c f``), and the density-fitting loss
  ``E_p[f(c)] - T H(p)`` (answer 3's "fitting a density" and "consider the categorical KL
  divergence as a loss"), minimised by the non-degenerate ``p*(c) = exp(-f(c) / T) / Z``, with
  ``(E_p f - T H(p)) / T + log Z = KL(p || p*)`` as its gap. H(p) of the factorised p is exact
  (analytic) for every method: only ``E_p f`` is estimated.

Each loss is run on f and on its linear twin ``f_lin(c) = mean_l h(c_l)`` (:func:`linear_twin`),
equal to f on every one-hot configuration, hence with the same ``E_p f`` for every p, but linear,
so that ``f_lin(E[c]) = E[f_lin(c)]`` and the relaxation at tau = 1 is exact. With a nonlinear f
softmax-tau at tau = 1 minimises ``f(E[c])`` instead of ``E[f(c)]`` (poly: at ``p(z = 1) = 0.45``
instead of 0).

Gaps are computed exactly by enumeration. Seeds (random initial logits) run together as a batch;
Adam acts per element, so they stay independent, and every method starts from the same logits
(paired by seed). The best sampling estimator of each grid cell and f is chosen on validation
seeds; softmax-tau's final gap is compared with its gap on held-out seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk
from gumbelkit.estimators.base import Estimator, ObjectiveFn

from .._validate import check_count
from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import (
    Decision,
    Interval,
    equivalence_level,
    mean_interval,
    paired_difference,
)
from ..workloads.factorial import ALPHAS, BACKWARDS, CELLS, Cell
from ..workloads.problems import Problem, make_problem
from .base import LabExperiment, across

GRADIENT_METRICS = ("bias", "variance", "cosine")
# pre-registered margins: below them softmax-tau is "okay", above them "highly suboptimal"
EXPECTED_MARGIN = 0.01  # a fraction of f's range: gaps that differ by less are the same loss
KL_MARGIN = 0.05  # nats, about KL(Bernoulli(0.5) || Bernoulli(0.66)): a density closer than
# that to p* is as good a fit; one further off is a visibly different distribution
OBJECTIVES = ("nonlinear", "linear")
LOSSES = {"expected": "E f", "kl": "KL(p || p*)"}
VALIDATION_OFFSET = 1000  # validation seeds: 1000, 1001, ... (held-out seeds: 0, 1, ...)
SOFTMAX = Cell(0.0, "relaxed").label  # softmax-tau
EXACT = "exact gradient"
CELL_BY_LABEL = {cell.label: cell for cell in CELLS}
GRADED_VALUES = torch.linspace(0.0, 1.0, 10, dtype=torch.float64)
TARGET = 0.45  # poly's target, used by the graded instance too

CLAIM = Claim(
    "The \"probabilistic\" interpretation of a non-random quantization such as an LSTM would "
    "essentially be mode-seeking behavior in fitting a density. You have loss function that "
    "takes in categorical decisions c, so the expected loss E_c[f(c)] is minimized by learning "
    "some distribution p(c). Quantizing a softmax without sampling the Gumbel noise (e.g. just "
    "using a sigmoid or softmax) is akin to choosing the same c every time. For some f this is "
    "okay, and for other f this is highly suboptimal (consider the categorical KL divergence as "
    "a loss).",
    "answer 3",
    "Without noise the relaxation minimises f(E[c]) rather than E[f(c)]: fine for some f, "
    "highly suboptimal for others, such as a density-fitting (KL) loss.")


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10  # held-out seeds, in both parts
    problem: str = "toy"  # part 1
    taus: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    n_draws: int = 80
    n_samples: int = 2  # per gradient estimate, for every estimator (rloo needs 2)
    # every estimator of the registry but those whose control variates are tuned first (rebar,
    # relax: untuned, they are a slower REINFORCE with a control variate)
    estimators: tuple[str, ...] = tuple(
        name for name, est in gk.ESTIMATORS.items()
        if not any(spec.learnable for spec in est.option_specs))
    # part 2: trained beside the factorial's cells and the exact gradient
    train_estimators: tuple[str, ...] = ("rloo", "reinmax", "gr")
    validation_seeds: int = 10  # choose the best sampling estimator on these
    density_temperature: float = 0.01  # T of p* = exp(-f / T) / Z
    # a grid dimension: at tau=1 softmax-tau feeds f exactly E[c] = p, at other tau it does not
    train_taus: tuple[float, ...] = (1.0, 0.5)
    steps: int = 300
    lr: float = 0.1
    record_every: int = 10

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, validation_seeds=20, n_draws=200, steps=1000,
                   taus=tuple(float(t) for t in np.round(np.logspace(-1, 1, 9), 6)))

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, validation_seeds=2, n_draws=4, taus=(1.0,), steps=20)


def graded(seed: int) -> Problem:
    """The polynomial programme on K = 10 ordered categories: 3 variables, ``v_k = k / 9``,
    ``f(c) = mean_l (v . c_l - 0.45)^2``; logits U(-0.01, 0.01) as in ``problems.poly``.

    Its optimum puts every variable on the category nearest 0.45 (``v = 4/9``), while ``f(E[c])``
    is 0 at every mixture of mean 0.45 (the near-uniform start among them).
    """
    generator = torch.Generator().manual_seed(seed)
    n_variables, n_categories = 3, len(GRADED_VALUES)
    logits = (torch.rand(n_variables, n_categories, generator=generator,
                         dtype=torch.float64) - 0.5) * 0.02

    def f(samples: torch.Tensor) -> torch.Tensor:
        return (samples @ GRADED_VALUES.to(samples.dtype) - TARGET).pow(2).mean(-1)

    return Problem("graded", "f(c) = mean_l (v . c_l - 0.45)^2, v = linspace(0, 1, 10), "
                   "3 variables x 10 categories", logits, f)


INSTANCES: dict[str, Callable[[int], Problem]] = {
    "K=2": lambda seed: make_problem("poly", seed), "K=10": graded}


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


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """``H(p) = -sum_l sum_k p_lk log p_lk`` of the factorised ``p = softmax(logits)``, for
    logits ``(..., L, K)``: shape ``(...)``."""
    return -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum((-2, -1))


def expected(values: torch.Tensor, index: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Exact ``E_p f = sum_c p(c) f(c)``, ``log p(c) = sum_l log softmax(logits_l)[c_l]``, of
    each seed's logits ``(S, L, K)``: shape (S,). The batched form of gk.exact.expectation, with
    f enumerated once: ``values`` = f at the configurations ``index`` (N, L)."""
    log_p = torch.log_softmax(logits, -1)[:, torch.arange(index.shape[1]), index]  # (S, N, L)
    return log_p.sum(-1).exp() @ values


def gap(values: torch.Tensor, index: torch.Tensor, logits: torch.Tensor, loss: str,
        temperature: float) -> torch.Tensor:
    """The exact gap of each seed's loss to its minimum over distributions, shape (S,).

    ``expected``: ``E_p f - min_c f(c)``. ``kl``: with ``p* = exp(-f / T) / Z``,
    ``(E_p f - T H(p)) / T + log Z = KL(p || p*)``. ``values``, ``index``: as :func:`expected`.
    """
    mean = expected(values, index, logits)
    if loss == "expected":
        return mean - values.min()
    return mean / temperature - entropy(logits) + torch.logsumexp(-values / temperature, 0)


def _method(name: str) -> Estimator | str:
    """A cell of the factorial by its label, or an estimator of the registry by its name."""
    cell = CELL_BY_LABEL.get(name)
    return cell.estimator if cell else name


def methods(config: Config) -> list[str]:
    """Every method of part 2: the factorial's cells, the exact gradient, the estimators."""
    return [*(cell.label for cell in CELLS), EXACT, *config.train_estimators]


def sampling(config: Config) -> list[str]:
    """The methods that sample: cells with noise (alpha > 0) and the train estimators."""
    return [*(cell.label for cell in CELLS if cell.alpha > 0), *config.train_estimators]


def trained_tau(method: str, tau: float, config: Config) -> float:
    """The training temperature a method's run at ``tau`` is recorded under: the first of the
    grid for the methods that tau does not change (the exact gradient, rloo), trained once."""
    uses_tau = method != EXACT and (method in CELL_BY_LABEL
                                    or gk.ESTIMATORS[method].uses_tau)
    return tau if uses_tau else config.train_taus[0]


def _seeds(config: Config) -> list[int]:
    return [*range(config.seeds),
            *(VALIDATION_OFFSET + s for s in range(config.validation_seeds))]


def _train(config: Config, key: dict) -> dict:
    """Adam on every seed's logits at once, for both losses (one block of the batch each); the
    exact gaps recorded along the way."""
    torch.manual_seed(0)
    problems = [INSTANCES[key["instance"]](seed) for seed in _seeds(config)]
    n_variables, n_categories = problems[0].logits.shape
    f = problems[0].f  # the same f for every seed: only the initial logits are random
    if key["objective"] == "linear":
        f = linear_twin(f, n_variables, n_categories)
    index = gk.exact.configurations(n_variables, n_categories)
    values = f(torch.nn.functional.one_hot(index, n_categories).double())
    temperature, n_seeds, held_out = config.density_temperature, len(problems), config.seeds
    # the entropy term's weight: 0 in the expected loss's block, T in the density fit's
    weight = torch.tensor([temperature if loss == "kl" else 0.0 for loss in LOSSES],
                          dtype=torch.float64).repeat_interleave(n_seeds)
    logits = torch.stack([p.logits for p in problems]).repeat(len(LOSSES), 1, 1)
    logits.requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=config.lr)
    gen = torch.Generator().manual_seed(3000)
    method = key["method"]
    steps, curve = [], []
    for step in range(config.steps + 1):
        if step % config.record_every == 0 or step == config.steps:
            with torch.no_grad():
                gaps = [gap(values, index, block, loss, temperature)
                        for block, loss in zip(logits.split(n_seeds), LOSSES, strict=True)]
            steps.append(step)
            curve.append(torch.stack([g[:held_out] for g in gaps]))
        if step < config.steps:
            optimizer.zero_grad()
            estimate = (expected(values, index, logits) if method == EXACT else
                        gk.expectation(f, logits, _method(method), config.n_samples,
                                       key["tau"], generator=gen))
            (estimate - weight * entropy(logits)).sum().backward()
            optimizer.step()
    curves = torch.stack(curve, 1)  # (losses, records, held-out seeds)
    entropies = entropy(logits.detach()).split(n_seeds)
    optimum = torch.softmax(-values / temperature, 0)  # p* of the density fit
    target = {"expected": 0.0,  # a point mass: f has one minimiser
              "kl": float(-(optimum * optimum.log()).sum())}
    return {"steps": steps, "f_range": float(values.max() - values.min()),
            **{loss: {"mean": c.mean(1).tolist(), "min": c.min(1).values.tolist(),
                      "max": c.max(1).values.tolist(), "gap": g[:held_out].tolist(),
                      "validation_gap": g[held_out:].tolist(),
                      "entropy": h[:held_out].tolist(), "target_entropy": target[loss]}
               for loss, c, g, h in zip(LOSSES, curves, gaps, entropies, strict=True)}}


def _gradients(config: Config, key: dict) -> dict:
    """gk.exact.compare of every estimator at one temperature (wall times left out)."""
    torch.manual_seed(key["seed"])
    problem = make_problem(config.problem, key["seed"])
    gen = torch.Generator().manual_seed(4000 + key["seed"])
    rows = gk.exact.compare(problem.f, problem.logits, config.estimators, config.n_draws,
                            key["tau"], config.n_samples, generator=gen)
    keep = (*GRADIENT_METRICS, "bias_se")
    return {"rows": {row["estimator"]: {m: row[m] for m in keep} for row in rows}}


def worse(difference: Interval, difference_90: Interval, margin: float) -> Decision:
    """Whether softmax-tau ends worse than a method by more than ``margin``.

    ``difference``: its final gap minus the method's, paired by seed; ``difference_90``: the
    same at :func:`equivalence_level`. YES when ``difference`` lies above the margin; NO when
    softmax-tau is as good (``difference_90`` within +-margin: TOST) or better (``difference``
    below 0); UNDECIDED otherwise.
    """
    if difference.above(margin):
        return Decision.YES
    if difference.below(0) or Decision.within(difference_90, -margin, margin) is Decision.YES:
        return Decision.NO
    return Decision.UNDECIDED


NEGATION = {Decision.YES: Decision.NO, Decision.NO: Decision.YES}


def cell_decision(cell: dict) -> Decision:
    """The claim in one grid cell: softmax-tau highly suboptimal on the nonlinear f (worse than
    the best sampling estimator by more than the margin) and okay on the linear twin (not)."""
    parts = []
    for objective, bad in (("nonlinear", True), ("linear", False)):
        data = cell["objectives"][objective]
        decision = worse(data["softmax_minus_best"], data["softmax_minus_best_90"],
                         cell["margin"])
        parts.append(decision if bad else NEGATION.get(decision, decision))
    return Decision.all_of(parts)


def _label(method: str) -> str:
    """A method's name for reading: a cell's label with its registry name, if it has one."""
    cell = CELL_BY_LABEL.get(method)
    return f"{method} ({cell.known_as})" if cell and cell.known_as else method


class ExpectedLoss(LabExperiment):
    id = "E3"
    title = "Expected loss: exact gradients, f(E[c]) vs E[f(c)], and fitting a density"
    claim_summary = CLAIM.summary
    claims = (CLAIM,)
    config_class = Config
    threads = 1  # tiny tensors: extra threads only add synchronisation

    def check(self, config: Config) -> None:
        super().check(config)
        check_count(config.validation_seeds, "validation_seeds")
        if not config.density_temperature > 0:
            raise ValueError(f"density_temperature must be > 0, got {config.density_temperature}")

    def setup(self, config: Config) -> str:
        return (
            f"{config.seeds} held-out seeds. Part 1: problem {config.problem!r} of "
            "gumbelkit.workloads.problems "
            f"(one random instance per seed); gk.exact.compare of the {len(config.estimators)} "
            f"estimators ({', '.join(config.estimators)}), {config.n_draws} gradient estimates of "
            f"{config.n_samples} samples each at every tau in {list(config.taus)}. Part 2: a grid "
            "of two instances, K=2 (the poly problem of Liu et al. 2023: 8 binary variables, "
            "f = mean_l (z_l - 0.45)^2) and K=10 (3 variables of 10 graded categories v_k = k/9, "
            "f = mean_l (v.c_l - 0.45)^2), logits ~ U(-0.01, 0.01), x two losses, the expected "
            "loss E_p f (optimum: a point mass) and the density fit E_p f - T H(p) with "
            f"T = {config.density_temperature:g} (optimum p* = exp(-f/T)/Z; gap KL(p || p*); H "
            "exact for every method); each on f and on its linear twin (equal to f on every "
            "one-hot configuration, linear in c). Logits trained with Adam (lr "
            f"{config.lr:g}, {config.steps} steps, {config.n_samples} samples per step, "
            f"tau in {list(config.train_taus)}, a dimension of the grid: at tau=1 softmax-tau "
            "feeds f exactly E[c] = p, elsewhere it does not) by the "
            f"8 cells of the noise factorial (alpha in {list(ALPHAS)} x relaxed / "
            "straight-through), the exact gradient and "
            f"{', '.join(config.train_estimators)}; all seeds start from the same logits for "
            "every method. The exact gap (by enumeration) is recorded every "
            f"{config.record_every} steps. The best sampling estimator of each cell and f is "
            f"chosen on {config.validation_seeds} validation seeds; on the held-out seeds "
            "softmax-tau's final gap minus its gap (paired by seed, 95% t interval) counts as "
            f"highly suboptimal above a margin of {EXPECTED_MARGIN:g} x the range of f (E f) "
            f"or {KL_MARGIN:g} nats (KL), and as okay when its 90% interval lies within "
            "+-margin or the difference is below 0 (pre-registered).")

    def runs(self, config: Config) -> list[dict]:
        keys: list[dict] = [{"part": "gradients", "seed": seed, "tau": tau}
                            for seed in range(config.seeds) for tau in config.taus]
        keys += [{"part": "training", "instance": instance, "tau": tau,
                  "objective": objective, "method": method}
                 for instance in INSTANCES for tau in config.train_taus
                 for objective in OBJECTIVES for method in methods(config)
                 if tau == trained_tau(method, tau, config)]
        return keys

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        # tiny tensors: the device is not used
        return _gradients(config, key) if key["part"] == "gradients" else _train(config, key)

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        gradient_runs = [(k, r) for k, r in results if k["part"] == "gradients"]
        training = {(k["instance"], k["tau"], loss, k["objective"], k["method"]):
                    {"steps": r["steps"], "f_range": r["f_range"], **r[loss]}
                    for k, r in results if k["part"] == "training" for loss in LOSSES}
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
        cells = {f"{instance}, {name}, tau={tau:g}": self._cell(config, training, instance, tau,
                                                                 loss)
                 for instance in INSTANCES for tau in config.train_taus
                 for loss, name in LOSSES.items()}
        return {"seeds": config.seeds, "validation_seeds": config.validation_seeds,
                "problem": config.problem, "taus": list(config.taus),
                "reference_tau": reference, "gradients": gradients, "bias_floor": floor,
                "squared_bias": squared_bias, "train_taus": list(config.train_taus),
                "steps": config.steps, "temperature": config.density_temperature,
                "cells": cells}

    @staticmethod
    def _cell(config: Config, training: dict, instance: str, tau: float, loss: str) -> dict:
        """One grid cell: final gaps, entropies, the comparisons and the factorial contrasts."""
        objectives = {}
        for objective in OBJECTIVES:
            runs = {m: training[instance, trained_tau(m, tau, config), loss, objective, m]
                    for m in methods(config)}
            final = {m: r["gap"] for m, r in runs.items()}
            noisy, plain = ({b: final[Cell(a, b).label] for b in BACKWARDS} for a in (1.0, 0.0))
            best = min(sampling(config), key=lambda m: float(np.mean(runs[m]["validation_gap"])))
            objectives[objective] = {
                "gap": {m: mean_interval(final[m], lowest=0.0) for m in runs},
                "entropy": {m: mean_interval(runs[m]["entropy"], lowest=0.0) for m in runs},
                "softmax_minus": {m: paired_difference(final[SOFTMAX], final[m])
                                  for m in runs if m != SOFTMAX},
                "best": best,
                "softmax_minus_best": paired_difference(final[SOFTMAX], final[best]),
                "softmax_minus_best_90": paired_difference(final[SOFTMAX], final[best],
                                                           level=equivalence_level()),
                # the factorial's contrasts: what the noise does, what the backward does
                "noise": {b: paired_difference(noisy[b], plain[b]) for b in BACKWARDS},
                "backward": paired_difference(noisy[BACKWARDS[1]], noisy[BACKWARDS[0]]),
                "curves": {m: {field: runs[m][field] for field in ("steps", "mean", "min", "max")}
                           for m in runs},
            }
        first = training[instance, tau, loss, "nonlinear", SOFTMAX]
        margin = EXPECTED_MARGIN * first["f_range"] if loss == "expected" else KL_MARGIN
        return {"loss": loss, "margin": margin, "target_entropy": first["target_entropy"],
                "objectives": objectives}

    def verdict(self, summary: dict) -> Verdict:
        cells = summary["cells"]
        by_cell = {name: cell_decision(cell) for name, cell in cells.items()}
        decision, where = across(by_cell)

        def versus(name: str, objective: str) -> str:
            data = cells[name]["objectives"][objective]
            best = data["best"]
            return (f"{name}: softmax-tau {data['gap'][SOFTMAX].format()} vs {_label(best)} "
                    f"{data['gap'][best].format()} (difference "
                    f"{data['softmax_minus_best'].format()})")

        answer = (
            f"Answer 3's claim {decision.word} ({where}). After {summary['steps']} Adam steps "
            f"({summary['seeds']} held-out seeds), the final gap "
            "to the optimum (E f minus its minimum, or KL(p || p*) in nats) of softmax-tau "
            "against the best sampling estimator (chosen on validation seeds), on the nonlinear "
            "f, is " + "; ".join(versus(name, "nonlinear") for name in cells)
            + ". On its linear twin (the same E f; softmax-tau's relaxation of it is exact at "
            "tau=1) it is "
            + "; ".join(versus(name, "linear") for name in cells) + ". "
            + self._entropy_sentence(summary) + " " + self._gradient_sentence(summary))
        margins = "; ".join(f"{name} {cell['margin']:.3g}" for name, cell in cells.items())
        detail = (
            "In a cell the claim holds when softmax-tau's final gap minus the best sampling "
            "estimator's lies above the margin on the nonlinear f (highly suboptimal) and not "
            "on the linear twin (okay: the 90% interval within +-margin, or the difference "
            "below 0); it fails when softmax-tau is okay on the nonlinear f or highly "
            f"suboptimal on the linear twin. Margins: {margins}. Cells: "
            + "; ".join(f"{name} {d.value}" for name, d in by_cell.items())
            + ". " + self._factorial_sentence(summary))
        first = next(iter(cells))
        data = cells[first]["objectives"]["nonlinear"]
        return Verdict(decision, answer, detail, claims=(CLAIM,),
                       number=f"{first}, nonlinear f: softmax-tau minus {_label(data['best'])} "
                              f"{data['softmax_minus_best'].format()}")

    @staticmethod
    def _entropy_sentence(summary: dict) -> str:
        parts = []
        for name, cell in summary["cells"].items():
            if cell["loss"] != "kl":
                continue
            data, target = cell["objectives"]["nonlinear"], cell["target_entropy"]
            softmax = data["entropy"][SOFTMAX]
            relation = {1: "above", -1: "below",
                        0: "not distinguishable from"}[softmax.sign(target)]
            parts.append(f"{name}: p* {target:.3g}, softmax-tau {softmax.format()} ({relation} "
                         f"p*'s), {_label(data['best'])} {data['entropy'][data['best']].format()}")
        return ("Entropy of the final p on the nonlinear f (nats, summed over the variables): "
                + "; ".join(parts) + ".")

    @staticmethod
    def _factorial_sentence(summary: dict) -> str:
        """The noise factorial's two contrasts (final gaps, paired by seed), per cell and f, and
        how often each lowers or raises the gap."""
        parts, signs = [], {b: [] for b in (*BACKWARDS, "backward")}
        for name, cell in summary["cells"].items():
            for objective, data in cell["objectives"].items():
                noise = data["noise"]
                parts.append(f"{name}, {objective} f: noise {noise['relaxed'].format()} "
                             f"(relaxed), {noise['straight-through'].format()} "
                             f"(straight-through); backward {data['backward'].format()}")
                for backward in BACKWARDS:
                    signs[backward].append(noise[backward].sign())
                signs["backward"].append(data["backward"].sign())

        def count(which: str) -> str:
            found = signs[which]
            return (f"lowers the gap in {found.count(-1)} and raises it in {found.count(1)} of "
                    f"{len(found)}")

        return ("The noise factorial, final gaps paired by seed: what the noise does (alpha=1 "
                "minus alpha=0, at each backward) and what the backward does (straight-through "
                "minus relaxed, at alpha=1): " + "; ".join(parts) + ". Over the cells and f, "
                f"the noise {count('relaxed')} at the relaxed backward and {count(BACKWARDS[1])} "
                f"at the straight-through one; straight-through instead of relaxed "
                f"{count('backward')}.")

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
        return [self._gradient_table(summary), self._training_table(summary),
                self._factorial_table(summary)]

    @staticmethod
    def _gradient_table(summary: dict) -> Table:
        tau = summary["reference_tau"]
        rows = []
        for name, by_tau in summary["gradients"].items():
            cells = {m: v.format() for m, v in by_tau[tau].items()}
            rows.append([name, cells["bias"],
                         summary["bias_floor"][name].format(),
                         summary["squared_bias"][name].format(),
                         cells["variance"], cells["cosine"]])
        return Table(
            ["estimator", "bias", "Monte Carlo floor", "bias^2 - floor^2", "variance", "cosine"],
            rows,
            f"Gradients against the exact one on the {summary['problem']!r} problem at "
            f"tau={tau}; means over seeds with 95% t intervals. The measured bias "
            "||mean(g_hat) - g|| of an unbiased estimator is about its Monte Carlo floor "
            "sqrt(variance / draws); bias^2 - floor^2 estimates the true squared bias.")

    @staticmethod
    def _training_table(summary: dict) -> Table:
        rows = []
        for name, cell in summary["cells"].items():
            for objective, data in cell["objectives"].items():
                for method, value in data["gap"].items():
                    diff = data["softmax_minus"].get(method)
                    rows.append([name, objective, _label(method)
                                 + (" *" if method == data["best"] else ""), value,
                                 diff if diff else "-", data["entropy"][method]])
        return Table(
            ["cell", "f", "method", "final gap", "softmax-tau minus method", "final H(p)"], rows,
            "Part 2: the exact gap of the loss to its optimum after training (E f minus its "
            "minimum, or KL(p || p*) in nats) and the entropy of the final p (nats; the optimum's: "
            "0 for E f, "
            + ", ".join(f"{n} {c['target_entropy']:.3g}" for n, c in summary["cells"].items()
                        if c["loss"] == "kl")
            + " for the KL); means over held-out seeds with 95% t intervals, differences paired "
            "by seed. *: the best sampling estimator, chosen on validation seeds.")

    @staticmethod
    def _factorial_table(summary: dict) -> Table:
        rows = []
        for name, cell in summary["cells"].items():
            for objective, data in cell["objectives"].items():
                gaps = data["gap"]
                for backward in BACKWARDS:
                    rows.append([name, objective, backward,
                                 *(gaps[Cell(a, backward).label] for a in ALPHAS),
                                 gaps[EXACT], gaps.get("rloo", "-"),
                                 data["noise"][backward],
                                 data["backward"] if backward == BACKWARDS[1] else "-"])
        return Table(
            ["cell", "f", "backward", *(f"alpha={a:g}" for a in ALPHAS), "exact gradient",
             "rloo", "noise: alpha=1 minus 0", "backward: ST minus relaxed at alpha=1"], rows,
            "The noise factorial on part 2: final gaps of each noise scale alpha (0: softmax-tau "
            "and argmax-st; 1: gs and st-gs) and backward, with the exact gradient and rloo as "
            "references (repeated on both rows); the contrasts are paired by seed. Means with "
            "95% t intervals. The exact gradient and rloo see f only at one-hot points, so they "
            "are the same on f and on its linear twin; on the linear twin the two backwards "
            "coincide (a linear f's gradient does not depend on where it is evaluated).")

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
        shown_tau = f"tau={summary['train_taus'][0]:g}"  # one tau of the grid: a column per cell
        cells = {name: cell for name, cell in summary["cells"].items()
                 if name.endswith(shown_tau)}
        fig, axes = plt.subplots(len(OBJECTIVES), len(cells), figsize=(4 * len(cells), 7.5),
                                 squeeze=False)
        for column, (name, cell) in enumerate(cells.items()):
            for row, (objective, data) in enumerate(cell["objectives"].items()):
                ax = axes[row, column]
                shown = dict.fromkeys([SOFTMAX, Cell(0.0, BACKWARDS[1]).label,
                                       *(Cell(1.0, b).label for b in BACKWARDS), EXACT,
                                       data["best"]])
                for method in shown:
                    c = data["curves"][method]
                    line, = ax.plot(c["steps"], c["mean"], label=_label(method))
                    ax.fill_between(c["steps"], c["min"], c["max"], color=line.get_color(),
                                    alpha=0.12)
                ax.set_yscale("log", nonpositive="mask")
                ax.set_xlabel("Adam step")
                ax.set_title(f"{name}, {objective} f", fontsize=9)
                ax.legend(fontsize=6)
        return Figure(save(fig, directory, "e3_convergence.png"),
                      "Part 2: the exact gap of the loss to its optimum (E f minus its minimum, or "
                      f"KL(p || p*)) along training at {shown_tau}, mean over {summary['seeds']} "
                      "held-out seeds "
                      "(band: min to max), for the noise-free cells (softmax-tau, argmax-st), "
                      "gs, st-gs, the exact gradient and the best sampling estimator; top: the "
                      "nonlinear f, bottom: its linear twin (the same E f for every p).")


EXPERIMENT = ExpectedLoss()
