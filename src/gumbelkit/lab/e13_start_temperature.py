"""E13. Training stability at a small starting temperature.

Answer 2 advises against a small temperature at the start of training, "for this makes the
training more stable". Measured: the same problems trained from the same logits with a Gumbel
estimator at a constant tau, small or not, and, as the answer recommends, annealed from tau = 1
down to the small tau. Stability is the variability of the gradient along training, scale-free:
the coefficient of variation (standard deviation over mean) of the gradient norm over the steps,
and the largest norm over the median one; quality is the exact expected objective at the end
(enumerated), as a gap to the best configuration's value.

Problems (:mod:`gumbelkit.workloads.problems`): ``toy`` (a random two-layer network of 3
categoricals of 4 categories) and ``quadratic`` (4 of 5), a fresh instance per seed; estimators
``gs`` and ``st-gs``. The claim holds when, for both estimators and problems, the gradient's
variability at the small constant tau lies above that of the run started at tau = 1 and annealed
(paired by seed), and fails when it lies below.
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
from ..workloads.problems import make_problem
from .base import LabExperiment

SCHEDULES = ("small", "moderate", "annealed")
START = Claim(
    "the tau is not too small at the beginning of training for this makes the training more "
    "stable",
    "answer 2",
    "A temperature that is not too small at the start makes training more stable.")


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    problems: tuple[str, ...] = ("toy", "quadratic")
    estimators: tuple[str, ...] = ("gs", "st-gs")
    small_tau: float = 0.1
    moderate_tau: float = 1.0
    steps: int = 300
    lr: float = 0.05
    samples: int = 4

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, steps=1500)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, problems=("toy",), steps=10)

    def tau(self, schedule: str) -> float | gk.schedules.Schedule:
        if schedule == "small":
            return self.small_tau
        if schedule == "moderate":
            return self.moderate_tau
        rate = math.log(self.moderate_tau / self.small_tau) / (0.6 * self.steps)
        return gk.schedules.Exponential(self.moderate_tau, rate, tau_min=self.small_tau)


class StartTemperature(LabExperiment):
    id = "E13"
    title = "Training stability at a small starting temperature"
    claim_summary = START.summary
    claims = (START,)
    config_class = Config
    threads = 1

    def setup(self, config: Config) -> str:
        return (f"Problems {', '.join(config.problems)} (gumbelkit.workloads.problems, a fresh "
                f"instance per seed), estimators {', '.join(config.estimators)} with "
                f"{config.samples} samples a step, Adam (lr {config.lr:g}), {config.steps} steps "
                f"from the same logits, at a constant tau = {config.small_tau:g} ('small'), "
                f"tau = {config.moderate_tau:g} ('moderate'), or annealed exponentially from "
                f"{config.moderate_tau:g} to {config.small_tau:g} over 60% of the steps. "
                "Stability: the coefficient of variation of the gradient norm over the steps "
                "and the largest norm over the median; quality: the exact E f at the end minus "
                f"the best configuration's f. {config.seeds} seeds, paired.")

    def runs(self, config: Config) -> list[dict]:
        return [{"problem": p, "estimator": e, "schedule": s, "seed": seed}
                for p in config.problems for e in config.estimators for s in SCHEDULES
                for seed in range(config.seeds)]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        problem = make_problem(key["problem"], seed=key["seed"])
        variables, categories = problem.logits.shape
        every = torch.nn.functional.one_hot(gk.exact.configurations(variables, categories),
                                            categories).to(problem.logits.dtype)
        best = float(problem.f(every).min())
        logits = problem.logits.clone().requires_grad_()
        optimizer = torch.optim.Adam([logits], lr=config.lr)
        tau = config.tau(key["schedule"])
        noise = torch.Generator().manual_seed(3000 + key["seed"])
        norms = []
        for _ in range(config.steps):
            loss = gk.expectation(problem.f, logits, key["estimator"], config.samples, tau,
                                  generator=noise)
            optimizer.zero_grad()
            loss.backward()
            norms.append(float(logits.grad.norm()))
            optimizer.step()
            if isinstance(tau, gk.schedules.Schedule):
                tau.step()
        norms_array = np.asarray(norms)
        with torch.no_grad():
            final = float(gk.exact.expectation(problem.f, logits))
        return {"variation": float(norms_array.std() / norms_array.mean()),
                "spike": float(norms_array.max() / np.median(norms_array)),
                "gap": final - best}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        runs = {(k["problem"], k["estimator"], k["schedule"], k["seed"]): r for k, r in results}
        seeds = range(config.seeds)
        cells = {}
        for p in config.problems:
            for e in config.estimators:
                def values(schedule: str, name: str, p: str = p, e: str = e) -> list[float]:
                    return [runs[p, e, schedule, s][name] for s in seeds]

                cells[f"{p}, {e}"] = {
                    "schedules": {s: {m: mean_interval(values(s, m))
                                      for m in ("variation", "spike", "gap")}
                                  for s in SCHEDULES},
                    "small_minus_annealed": paired_difference(values("small", "variation"),
                                                              values("annealed", "variation")),
                    "small_minus_moderate": paired_difference(values("small", "variation"),
                                                              values("moderate", "variation")),
                }
        return {"cells": cells, "seeds": config.seeds, "small_tau": config.small_tau,
                "moderate_tau": config.moderate_tau}

    def verdict(self, summary: dict) -> Verdict:
        cells = summary["cells"]
        by_cell = {c: Decision.above(d["small_minus_annealed"]) for c, d in cells.items()}
        found = set(by_cell.values())
        if len(found) == 1:
            decision, where = found.pop(), "for every problem and estimator"
        else:
            decision = (Decision.DEPENDS if {Decision.YES, Decision.NO} <= found
                        else Decision.UNDECIDED)
            where = "; ".join(f"it {d.word} for " + ", ".join(c for c, e in by_cell.items()
                                                                if e is d)
                              for d in Decision if d in found)
        evidence = "; ".join(
            f"{c}: gradient-norm variation at tau={summary['small_tau']:g} "
            f"{d['schedules']['small']['variation'].format(2)}, annealed from "
            f"{summary['moderate_tau']:g} {d['schedules']['annealed']['variation'].format(2)} "
            f"(difference {d['small_minus_annealed'].format(2)}); final gap "
            f"{d['schedules']['small']['gap'].format(2)} against "
            f"{d['schedules']['annealed']['gap'].format(2)}" for c, d in cells.items())
        first = next(iter(cells))
        return Verdict(
            decision,
            f"Answer 2's advice {decision.word} ({where}): {evidence}. {summary['seeds']} "
            "seeds, paired.",
            "Stability is the gradient norm's coefficient of variation over training; the claim "
            "holds for a problem and estimator when it is larger at the small constant tau than "
            "for the run started at the moderate tau and annealed (paired interval above 0), "
            "and fails when it is smaller.",
            number=f"{first}: {cells[first]['small_minus_annealed'].format(2)}")

    def tables(self, summary: dict) -> list[Table]:
        rows = [[cell, schedule, v["variation"], v["spike"], v["gap"]]
                for cell, data in summary["cells"].items()
                for schedule, v in data["schedules"].items()]
        return [Table(["problem, estimator", "tau", "gradient-norm variation", "max / median",
                       "final gap"], rows, "Means [95% t intervals] over seeds.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        cells = summary["cells"]
        fig, ax = plt.subplots(figsize=(8, 3.6))
        width = 0.8 / len(SCHEDULES)
        for i, schedule in enumerate(SCHEDULES):
            values = [d["schedules"][schedule]["variation"] for d in cells.values()]
            ax.bar([j + i * width for j in range(len(cells))], [v.estimate for v in values],
                   width, yerr=[[v.estimate - v.low for v in values],
                                [v.high - v.estimate for v in values]], capsize=2,
                   label=schedule)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cells))], list(cells), fontsize=8)
        ax.set_ylabel("gradient-norm coefficient of variation")
        ax.legend(fontsize=8)
        return [Figure(save(fig, directory, "e13_stability.png"),
                       f"Means over {summary['seeds']} seeds with 95% t intervals.")]


EXPERIMENT = StartTemperature()
