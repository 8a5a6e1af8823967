"""E11. Pointers: selecting one (or k) of N inputs, with and without Gumbel noise.

The question's own use case: a network that points at one of N inputs ("selecting instances in
the input (i.e. 'pointers') without using the non-differentiable argmax-function"), which the
question says softmax with temperature does as well, without randomness.

Task: sets of N inputs ``x_i ~ N(0, I_d)``; the right one is ``argmax_i w* . x_i`` for a hidden
``w*`` (one per seed). A learned linear scorer ``s_i = w . x_i`` gives the logits of a pointer
``p = gk.sample(s, estimator, tau)`` (a soft mixture for ``softmax`` and ``gs``, a one-hot choice
for ``st-gs`` and ``argmax-st``), and the network reads the pointed-at input through a fixed
downstream function g: the loss is ``(g(sum_i p_i x_i) - g(x_right))^2``, with g linear
(``v . x``: a mixture of inputs reads as the mixture of their values) or nonlinear (``||x||^2``: a
mixture of inputs is not any input). Evaluation, the same for every estimator, is the pointer
used as a pointer: the accuracy of the hard choice ``argmax_i s_i`` on fresh sets.

Hard selection of k of N (the right set: the k largest ``w* . x_i``) uses the k-subset forms of
the same four pointers, Xie and Ermon (2019)'s relaxed top-k ``y = sum_{j<=k} softmax(r^j / tau)``
(``r^1`` the keys, ``r^{j+1} = r^j + log(1 - softmax(r^j / tau))``) of the keys ``r = s`` (no
noise: softmax-tau's k-subset form, and its straight-through ``topk_hot(s)`` for argmax-st) or
``r = s + G`` (Gumbel-top-k, Kool et al. 2019: ``relaxed-topk`` for gs, ``st-topk`` for st-gs);
at k = 1 they are the four pointers above. The accuracy is the share of the right set in the
hard top-k of the scores.

The claim is decided per grid cell (N x readout) by an equivalence test: softmax-tau points as
well as the best pointer trained with Gumbel noise when the 90% interval of its accuracy minus
that one's lies within the pre-registered margin; it fails when the 95% interval lies below it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import gumbelkit as gk

from .._ops import replace_gradient
from ..estimators.subsets import relaxed_topk, topk_hot
from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, equivalence_level, mean_interval, paired_difference
from .base import LabExperiment, across

MARGIN = 0.05  # pre-registered: accuracies within 5 points are the same
NOISY = ("gs", "st-gs")
SUBSET_FORM = {"gs": "relaxed-topk", "st-gs": "st-topk"}  # Gumbel-top-k pointers of k inputs
POINTERS = Claim(
    "Many papers and articles describe it as a way of selecting instances in the input (i.e. "
    "'pointers') without using the non-differentiable argmax-function. The thing that confuses "
    "me is that this effect can be achieved without randomness by just using Softmax with "
    "temperature",
    "the question",
    "Softmax with temperature selects inputs (pointers) as well as Gumbel-Softmax, without "
    "randomness.")


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    items: tuple[int, ...] = (5, 20)
    chosen: tuple[int, ...] = (1, 3)  # k: inputs the pointer selects
    readouts: tuple[str, ...] = ("linear", "nonlinear")
    estimators: tuple[str, ...] = ("softmax", "argmax-st", "gs", "st-gs")
    dimension: int = 8
    tau: float = 0.5
    steps: int = 200
    batch: int = 64
    lr: float = 0.05
    test_sets: int = 2000

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, steps=800, test_sets=10_000)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, items=(5,), chosen=(1, 2), steps=10, batch=16, test_sets=100)


def readout(x: torch.Tensor, v: torch.Tensor, kind: str) -> torch.Tensor:
    """The downstream function g of inputs ``(..., d)``: ``v . x`` or ``||x||^2``."""
    return x @ v if kind == "linear" else x.pow(2).sum(-1)


def point(scores: torch.Tensor, estimator: str, k: int, tau: float,
          generator: torch.Generator) -> torch.Tensor:
    """The pointer at k of the N inputs (last dimension of ``scores``): ``gk.sample`` for k = 1,
    the k-subset forms of the module docstring otherwise."""
    if k == 1:
        return gk.sample(scores, estimator, tau, generator=generator)
    if estimator in SUBSET_FORM:
        return gk.sample_subset(scores, k, SUBSET_FORM[estimator], tau, generator=generator)
    soft = relaxed_topk(scores, k, tau, -1)
    return soft if estimator == "softmax" else replace_gradient(
        topk_hot(scores.detach(), k, -1), soft)


class Pointers(LabExperiment):
    id = "E11"
    title = "Pointers: selecting one or k of N inputs, with and without Gumbel noise"
    claim_summary = POINTERS.summary
    claims = (POINTERS,)
    config_class = Config
    threads = 1

    def setup(self, config: Config) -> str:
        return (f"Sets of N in {list(config.items)} inputs x_i ~ N(0, I_{config.dimension}); the "
                f"pointer selects k in {list(config.chosen)} of them; the right ones maximise "
                "w*.x (w* hidden, one per seed); a linear scorer gives the "
                f"pointer's logits, p = gk.sample(scores, estimator, tau={config.tau:g}) for "
                f"{', '.join(config.estimators)} (for k > 1 their k-subset forms: relaxed top-k "
                "of the scores without noise, Gumbel-top-k's relaxed-topk and st-topk with it); "
                "loss (g(sum_i p_i x_i) - g(sum of the right x_i))^2 with g "
                "linear (v.x) or nonlinear (||x||^2); Adam (lr "
                f"{config.lr:g}), {config.steps} steps of {config.batch} sets; {config.seeds} "
                "seeds, paired (same w*, data and initial scorer for every estimator). Measured: "
                "the accuracy of the hard pointer (the top k of the scores; the share of the "
                f"right inputs it selects) on {config.test_sets:,} fresh sets. The claim holds "
                "in a cell when softmax-tau's accuracy minus the best Gumbel pointer's (gs or "
                "st-gs, by mean) has a 90% interval within "
                f"+-{MARGIN:g} (pre-registered), fails when the 95% interval lies below "
                f"-{MARGIN:g}.")

    def runs(self, config: Config) -> list[dict]:
        return [{"items": n, "chosen": k, "readout": r, "estimator": e, "seed": s}
                for n in config.items for k in config.chosen if k < n for r in config.readouts
                for e in config.estimators for s in range(config.seeds)]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        n, k, seed, d = key["items"], key["chosen"], key["seed"], config.dimension
        task = torch.Generator().manual_seed(seed)
        hidden, v = torch.randn(d, generator=task), torch.randn(d, generator=task)
        scorer = torch.nn.Linear(d, 1, bias=False)
        with torch.no_grad():
            scorer.weight.copy_(0.1 * torch.randn(1, d, generator=task))
        optimizer = torch.optim.Adam(scorer.parameters(), lr=config.lr)
        data = torch.Generator().manual_seed(10_000 + seed)  # the same sets for every pointer
        noise = torch.Generator().manual_seed(20_000 + seed)
        for _ in range(config.steps):
            x = torch.randn(config.batch, n, d, generator=data)
            right = topk_hot(x @ hidden, k, 1)
            pointer = point(scorer(x).squeeze(-1), key["estimator"], k, config.tau, noise)
            chosen = (pointer.unsqueeze(-1) * x).sum(1)
            target = readout((right.unsqueeze(-1) * x).sum(1), v, key["readout"])
            loss = (readout(chosen, v, key["readout"]) - target).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            x = torch.randn(config.test_sets, n, d, generator=data)
            hit = topk_hot(scorer(x).squeeze(-1), k, 1) * topk_hot(x @ hidden, k, 1)
        return {"accuracy": float(hit.sum(1).double().mean() / k)}

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        runs = {(k["items"], k["chosen"], k["readout"], k["estimator"], k["seed"]): r
                for k, r in results}
        seeds = range(config.seeds)
        cells = {}
        for n, k in ((n, k) for n in config.items for k in config.chosen if k < n):
            for kind in config.readouts:
                def accuracy(name: str, n: int = n, k: int = k, kind: str = kind) -> list[float]:
                    return [runs[n, k, kind, name, s]["accuracy"] for s in seeds]

                noisy = [e for e in NOISY if e in config.estimators]
                best = max(noisy, key=lambda e: sum(accuracy(e)))
                cells[f"N={n}, k={k}, {kind}"] = {
                    "accuracy": {e: mean_interval(accuracy(e)) for e in config.estimators},
                    "best_noisy": best,
                    "softmax_minus_best": paired_difference(accuracy("softmax"), accuracy(best)),
                    "softmax_minus_best_90": paired_difference(
                        accuracy("softmax"), accuracy(best), level=equivalence_level()),
                    "chance": k / n,
                }
        return {"cells": cells, "tau": config.tau, "seeds": config.seeds}

    def verdict(self, summary: dict) -> Verdict:
        cells = summary["cells"]
        by_cell = {}
        for cell, data in cells.items():
            difference = data["softmax_minus_best"]
            if difference.below(-MARGIN):
                by_cell[cell] = Decision.NO
            else:
                by_cell[cell] = (Decision.YES if Decision.within(
                    data["softmax_minus_best_90"], -MARGIN, MARGIN) is Decision.YES
                    or difference.above(0) else Decision.UNDECIDED)
        decision, where = across(by_cell)
        evidence = "; ".join(
            f"{cell}: softmax-tau {data['accuracy']['softmax'].format(2)}, "
            f"{data['best_noisy']} {data['accuracy'][data['best_noisy']].format(2)} "
            f"(difference {data['softmax_minus_best'].format(2)}; chance {data['chance']:.2g})"
            for cell, data in cells.items())
        first = next(iter(cells))
        return Verdict(
            decision,
            f"The question's claim {decision.word} ({where}): the hard pointer's accuracy on "
            f"fresh sets, at tau={summary['tau']:g}, is {evidence}. {summary['seeds']} seeds.",
            f"Decided per cell with a margin of {MARGIN:g} (pre-registered): equivalent when the "
            "90% interval of softmax-tau minus the best Gumbel pointer lies within it (or "
            "softmax-tau is significantly better), worse when the 95% interval lies below "
            f"-{MARGIN:g}.",
            number=f"{first}: {cells[first]['softmax_minus_best'].format(2)}")

    def tables(self, summary: dict) -> list[Table]:
        names = list(next(iter(summary["cells"].values()))["accuracy"])
        rows = [[cell, *(data["accuracy"][e] for e in names), data["softmax_minus_best"]]
                for cell, data in summary["cells"].items()]
        return [Table(["cell", *names, "softmax - best Gumbel"], rows,
                      "Accuracy of the hard pointer on fresh sets: means [95% t intervals].")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        cells = summary["cells"]
        names = list(next(iter(cells.values()))["accuracy"])
        fig, ax = plt.subplots(figsize=(8, 3.8))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [data["accuracy"][name] for data in cells.values()]
            ax.bar([j + i * width for j in range(len(cells))], [v.estimate for v in values],
                   width, yerr=[[v.estimate - v.low for v in values],
                                [v.high - v.estimate for v in values]], capsize=2, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cells))], list(cells), fontsize=8)
        ax.set_ylabel("hard-pointer accuracy")
        ax.legend(fontsize=8)
        return [Figure(save(fig, directory, "e11_pointers.png"),
                       f"Accuracy of the learned pointer used as a pointer (argmax), per cell and "
                       f"estimator; means over {summary['seeds']} seeds with 95% t intervals.")]


EXPERIMENT = Pointers()
