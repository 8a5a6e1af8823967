"""E14. Beam search and the second or third most probable choices, against Gumbel-top-k.

Answer 2 says that softmax is usually not sharpened by a temperature because we need a
distribution, not a near one-hot vector: "in some cases, like beam search, we need to get the
second or third most probable choices". Two ways to get k choices out of logits z:

- deterministic: ``topk(softmax(z / tau), k)``, the k most probable choices (at any tau > 0 in
  exact arithmetic, since softmax-tau keeps the order of z); beam search keeps, at each step,
  the k most probable extensions of its k prefixes (width k; greedy search is width 1);
- sampled: Gumbel-top-k, ``topk(z + G, k)`` with G i.i.d. Gumbel(0, 1) (``gk.gumbel_topk``): k
  distinct draws without replacement from softmax(z), in sampled order, whose ordered tuple
  ``(i_1, ..., i_k)`` has the probability ``prod_j p_{i_j} / (1 - sum_{l<j} p_{i_l})`` (Kool,
  van Hoof and Welling 2019, "Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick for
  Sampling Sequences Without Replacement"). On sequences, Gumbel-top-k over every sequence's
  log-probability is the law of their stochastic beam search.

Model: per seed and grid cell (K tokens x logit confidence), ``models`` random bigram models
of sequences of ``length`` tokens: initial logits and a K x K transition table of logits, all
``~ N(0, scale^2)``; the K^length sequences are enumerated, so the most probable sequence (MAP)
and every law are exact. Measured, with k = ``beam``:

- search: the log-probability of the sequence found by greedy search, by beam search of width
  k and by the best of k sequences drawn by Gumbel-top-k over the sequences, against the MAP's;
- the k most probable choices: whether ``topk(softmax(z / tau))`` (float32) of the first token's
  logits z is the k most probable (by the order of z), at tau = 1 and at each tau of ``taus``,
  and the probability that Gumbel-top-k's ordered draw is that tuple (exact, from the law);
- (a) the law of Gumbel-top-k's ordered draws of the first token, from ``draws`` draws, against
  the exact law by chi-square tests (the joint law of the ordered k-tuple, rare tuples pooled,
  and the law of each of its k positions) and the total-variation distance (TV), beside
  torch.multinomial without replacement as an exact reference;
- (b) diversity: the distinct choices and the probability mass covered by ``calls`` repeated
  calls of each;
- (c) an estimate of the entropy ``H = E_p[-log p]`` of the first token from the k choices: the
  deterministic top-k renormalised, ``sum_{i in S} p_i f_i / sum_{i in S} p_i``; Gumbel-top-k's
  first draw, ``f(i_1)``; and Kool et al.'s unbiased estimator with the threshold kappa, the
  (k+1)-th largest perturbed logit: ``sum_{i in S} p_i f_i / q_i(kappa)``, ``q_i(kappa) =
  1 - exp(-exp(log p_i - kappa))`` (their section 4; priority sampling, Duffield, Lund and
  Thorup 2007); relative bias ``(estimate - H) / H``, f = -log p.

The claim is decided per cell on what it says: beam search needs the second and third choices
when keeping them finds more probable sequences than greedy search (the gain's interval above 0
and not within the pre-registered margin), and does not when the gain is below 0 or within the
margin (equivalence, 90% interval); and softmax gives them when its top-k is the k most probable
choices in every model and seed. Gumbel-top-k's rows say what the noise gives instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from .._validate import check_count
from ..harness.plotting import errorbar, plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import (
    Decision,
    equivalence_level,
    goodness_of_fit,
    level,
    mean_interval,
    paired_difference,
)
from .base import LabExperiment, across, by_logit_cell, logit_grid

# pre-registered: a search that finds sequences less than 0.01 nats more probable (1% in
# probability) than greedy search's gains nothing worth keeping k prefixes for
GAIN_MARGIN = 0.01
SEARCHES = ("greedy", "beam", "gumbel-top-k")
ESTIMATORS = ("top-k", "first draw", "Kool et al.")

BEAM = Claim(
    "What's more, in some cases, like beam search, we need to get the second or third most "
    "probable choices to explore global optimal searches.",
    "answer 2",
    "Searches for the most probable sequence, such as beam search, need the second and third "
    "most probable choices, which the softmax gives.")
MAX_ENUMERATED = 10**7  # outcomes enumerated for an exact law, at most (memory)


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    categories: tuple[int, ...] = (10, 100)
    scales: tuple[float, ...] = (0.5, 4.0)  # logit confidence: low, high
    beam: int = 3  # k: the width of the beam, the choices kept
    length: int = 3
    models: int = 16
    draws: int = 10_000
    calls: int = 10
    taus: tuple[float, ...] = (0.01, 0.1, 10.0)

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, models=32, draws=50_000)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, categories=(10,), scales=(4.0,), models=2, draws=600, calls=3)



def sequence_log_probs(initial: torch.Tensor, transition: torch.Tensor, length: int
                       ) -> torch.Tensor:
    """``log p(x_1..x_L) = log p(x_1) + sum_t log p(x_t | x_{t-1})`` of every sequence, for
    log-probabilities ``initial`` (M, K) and ``transition`` (M, K, K) (rows: the previous token):
    (M, K^L), sequence ``(x_1, ..., x_L)`` at the flat index ``sum_t x_t K^(L-t)``."""
    models, size = initial.shape
    out = initial
    for _ in range(length - 1):
        out = (out.view(models, -1, size, 1) + transition.unsqueeze(1)).reshape(models, -1)
    return out


def beam_search(initial: torch.Tensor, transition: torch.Tensor, length: int, width: int
                ) -> torch.Tensor:
    """Beam search of ``width`` on the bigram model of :func:`sequence_log_probs`: keep, at each
    step, the ``width`` most probable extensions of the kept prefixes (greedy at width 1).
    Returns the flat index of the most probable sequence kept at the end, (M,)."""
    models, size = initial.shape
    rows = torch.arange(models).unsqueeze(1)
    scores, index = initial.topk(width, 1)  # (M, width): log-probabilities, flat prefixes
    for _ in range(length - 1):
        candidates = scores.unsqueeze(2) + transition[rows, index % size]  # (M, width, K)
        scores, best = candidates.reshape(models, -1).topk(width, 1)
        index = index.gather(1, best // size) * size + best % size
    return index[:, 0]


def ordered_law(probs: torch.Tensor, k: int) -> torch.Tensor:
    """The probability of every ordered draw ``(i_1, ..., i_k)`` of k without replacement from
    ``probs`` (K,): ``prod_j p_{i_j} / (1 - sum_{l<j} p_{i_l})``, 0 where an index repeats;
    shape (K,) * k."""
    size = probs.shape[0]
    law, taken = probs, probs  # taken: the probability of the indices drawn so far
    for j in range(1, k):
        new = torch.arange(size)
        repeats = torch.zeros((size,) * (j + 1), dtype=torch.bool)
        for i in range(j):
            repeats |= new.view(*(size if a == i else 1 for a in range(j)), 1) == new
        rest = (1 - taken).clamp_min(torch.finfo(probs.dtype).tiny).unsqueeze(-1)
        law = (law.unsqueeze(-1) * probs / rest).masked_fill(repeats, 0.0)
        taken = taken.unsqueeze(-1) + probs
    return law


def _codes(index: torch.Tensor, size: int) -> torch.Tensor:
    """The flat code ``sum_j i_j K^(k-j)`` of ordered k-tuples (..., k)."""
    powers = size ** torch.arange(index.shape[-1] - 1, -1, -1)
    return (index * powers).sum(-1)


def _laws(draws: torch.Tensor, exact: torch.Tensor) -> list[dict[str, float]]:
    """Goodness of fit of ordered draws (n, k) to the exact law (K,) * k: the joint law of the
    tuple, then the law of each position."""
    size, k = exact.shape[0], exact.dim()
    counts = torch.bincount(_codes(draws, size), minlength=size ** k).view(exact.shape)
    fits = [goodness_of_fit(counts.numpy(), exact.numpy())]
    for j in range(k):
        others = tuple(i for i in range(k) if i != j)
        fits.append(goodness_of_fit(counts.sum(others).numpy(), exact.sum(others).numpy()))
    return fits


def _coverage(sets: torch.Tensor, probs: torch.Tensor, calls: int) -> tuple[float, float]:
    """The mean number of distinct choices and the mean probability mass covered by the union
    of ``calls`` consecutive k-sets of ``sets`` (n, k)."""
    groups = sets[: len(sets) // calls * calls].reshape(-1, calls * sets.shape[1])
    covered = torch.zeros(len(groups), len(probs), dtype=torch.bool)
    covered.scatter_(1, groups, True)
    return float(covered.sum(1).double().mean()), float((covered.double() @ probs).mean())


def entropy_estimates(log_probs: torch.Tensor, k: int, draws: int, generator: torch.Generator
                      ) -> dict[str, torch.Tensor]:
    """The three estimates of ``H = E_p[-log p]`` of the module docstring, (c): the
    deterministic top-k (one value), and ``draws`` values of each sampled one."""
    probs, f = log_probs.exp(), -log_probs
    top = log_probs.topk(k).indices
    perturbed = log_probs + gk.gumbel_noise((draws, len(probs)), dtype=log_probs.dtype,
                                            generator=generator)
    values, index = perturbed.topk(k + 1, 1)
    chosen, kappa = index[:, :k], values[:, k:]
    inclusion = -torch.expm1(-torch.exp(log_probs[chosen] - kappa))  # q_i(kappa)
    return {"top-k": (probs[top] * f[top]).sum(0, keepdim=True) / probs[top].sum(),
            "first draw": f[chosen[:, 0]],
            "Kool et al.": (probs[chosen] * f[chosen] / inclusion).sum(1)}


class BeamSearch(LabExperiment):
    id = "E14"
    title = "Beam search and the second or third most probable choices, against Gumbel-top-k"
    claim_summary = BEAM.summary
    claims = (BEAM,)
    config_class = Config
    threads = 1  # small tensors: extra threads only add synchronisation

    def check(self, config: Config) -> None:
        super().check(config)
        for name in ("models", "calls", "beam", "length"):
            check_count(getattr(config, name), name)
        if config.beam >= min(config.categories):  # Kool et al.'s threshold: a (k+1)-th
            raise ValueError(f"beam must be below the fewest categories "
                             f"({min(config.categories)}), got {config.beam}")
        for name in ("length", "beam"):  # K^length sequences, K^beam ordered draws
            if max(config.categories) ** getattr(config, name) > MAX_ENUMERATED:
                raise ValueError(f"{name}: K^{name} outcomes are enumerated, at most "
                                 f"{MAX_ENUMERATED:.0e}, got {name}={getattr(config, name)}")
        if config.calls > config.draws:
            raise ValueError(f"calls must not exceed draws, got {config.calls}")

    def setup(self, config: Config) -> str:
        k = config.beam
        return (f"Grid: K in {list(config.categories)} tokens x logit scale in "
                f"{list(config.scales)}; per seed and cell {config.models} random bigram models "
                f"of {config.length}-token sequences (initial and transition logits ~ N(0, "
                "scale^2)), every sequence enumerated; "
                f"{config.seeds} seeds. Search: greedy, beam search of width {k} and the best of "
                f"{k} sequences drawn by Gumbel-top-{k} over all sequences, against the most "
                f"probable sequence. Choices: whether top-{k} of softmax(z / tau) in float32 "
                f"(first token's logits z; tau = 1 and tau in {list(config.taus)}) is the {k} "
                f"most probable, and the exact probability that Gumbel-top-{k} draws them. (a) "
                f"{config.draws:,} draws of gk.gumbel_topk and of torch.multinomial without "
                "replacement (exact reference) against the exact law of ordered draws without "
                "replacement: chi-square tests of the ordered tuple (rare tuples pooled) and of "
                "each position (Bonferroni over tests, seeds and cells), and the TV of the tuple's "
                f"law. (b) Distinct choices and mass covered by {config.calls} calls. (c) "
                "Relative bias of three estimates of the first token's entropy from the choices: "
                f"top-{k} renormalised, Gumbel-top-{k}'s first draw, and Kool et al.'s (2019) "
                "unbiased estimator with the (k+1)-th perturbed logit as threshold. The search "
                f"needs the second and third choices in a cell when beam search's log-probability "
                "minus greedy search's (mean over the models of a seed, paired by seed) lies "
                f"above 0 and its 90% interval not within +-{GAIN_MARGIN:g} nats "
                "(pre-registered); it does not when that difference lies below 0 or its 90% "
                "interval within the margin. Tables: means [95% t intervals] over seeds.")

    def runs(self, config: Config) -> list[dict]:
        return logit_grid(config)

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        size, k, seed = key["categories"], config.beam, key["seed"]
        gen = torch.Generator().manual_seed(1000 * size + seed)
        logits = torch.randn(config.models, size, generator=gen, dtype=torch.float64)
        logits = logits * key["scale"]
        transition = torch.randn(config.models, size, size, generator=gen, dtype=torch.float64)
        transition = torch.log_softmax(transition * key["scale"], -1)
        initial = torch.log_softmax(logits, -1)
        sequences = sequence_log_probs(initial, transition, config.length)
        best = sequences.max(1).values
        rows = torch.arange(config.models).unsqueeze(1)
        found = {"greedy": beam_search(initial, transition, config.length, 1).unsqueeze(1),
                 "beam": beam_search(initial, transition, config.length, k).unsqueeze(1),
                 # float32 halves the cost; its rounding of log p (1e-7) does not move the law
                 "gumbel-top-k": gk.gumbel_topk(sequences.float(), k, generator=gen)}
        found_lp = {name: sequences[rows, index].max(1).values for name, index in found.items()}
        search = {name: {"log_prob": float(lp.mean()),
                         "gap": float((best - lp).mean()),
                         "hit": float((lp == best).double().mean())}
                  for name, lp in found_lp.items()}

        top = initial.topk(k, 1).indices  # the k most probable, by the order of the logits
        softmax = {f"{tau:g}": float((gk.softmax_t(logits.float(), tau).topk(k, 1).indices
                                      == top).all(1).double().mean())
                   for tau in (1.0, *config.taus)}

        first = initial[0]  # the first model's first token: the categorical of (a), (b), (c)
        probs = first.exp()
        exact = ordered_law(probs, k)
        batch = first.expand(config.draws, size)
        drawn = {"gumbel-top-k": gk.gumbel_topk(batch, k, generator=gen),
                 "reference": torch.multinomial(probs.expand(config.draws, size), k,
                                                replacement=False, generator=gen)}
        laws = {name: _laws(index, exact) for name, index in drawn.items()}
        distinct, mass = _coverage(drawn["gumbel-top-k"], probs, config.calls)
        top_first = first.topk(k).indices
        estimates = entropy_estimates(first, k, config.draws, gen)
        entropy = float(-(probs * first).sum())
        return {
            "search": search,
            "softmax_top_k": softmax,
            "gumbel_top_k_exact": float(exact[tuple(top_first)]),
            "gumbel_top_k_share": float((drawn["gumbel-top-k"] == top_first).all(1)
                                        .double().mean()),
            "law": {name: {"p_values": [f["p_value"] for f in fits], "tv": fits[0]["tv"]}
                    for name, fits in laws.items()},
            "diversity": {"gumbel-top-k": {"distinct": distinct, "mass": mass},
                          "top-k": {"distinct": float(k), "mass": float(probs[top_first].sum())}},
            "entropy": entropy,
            "bias": {name: float((e.mean() - entropy) / entropy) for name, e in estimates.items()},
            "rmse": {name: float((e - entropy).pow(2).mean().sqrt() / entropy)
                     for name, e in estimates.items()},
        }

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        grouped = by_logit_cell(results)
        tests = config.beam + 1
        threshold = (1 - level()) / (len(results) * tests)  # Bonferroni: tests, seeds, cells
        cells = {}
        for cell, runs in grouped.items():
            def search(name: str, measure: str, runs: list[dict] = runs) -> list[float]:
                return [r["search"][name][measure] for r in runs]

            def law(name: str, runs: list[dict] = runs) -> dict:
                p_value = min(min(r["law"][name]["p_values"]) for r in runs)
                return {"min_p_value": p_value, "rejected": p_value < threshold,
                        "tv": mean_interval([r["law"][name]["tv"] for r in runs], lowest=0.0)}

            tv = {name: [r["law"][name]["tv"] for r in runs] for name in ("gumbel-top-k",
                                                                           "reference")}
            cells[cell] = {
                "search": {name: {"gap": mean_interval(search(name, "gap"), lowest=0.0),
                                  "hit": mean_interval(search(name, "hit"), lowest=0.0)}
                           for name in SEARCHES},
                "gain": paired_difference(search("beam", "log_prob"),
                                          search("greedy", "log_prob")),
                "gain_90": paired_difference(search("beam", "log_prob"),
                                             search("greedy", "log_prob"),
                                             level=equivalence_level()),
                "sampled_minus_beam": paired_difference(search("gumbel-top-k", "log_prob"),
                                                        search("beam", "log_prob")),
                "softmax_top_k": {tau: float(min(r["softmax_top_k"][tau] for r in runs))
                                  for tau in runs[0]["softmax_top_k"]},
                "gumbel_top_k_exact": mean_interval([r["gumbel_top_k_exact"] for r in runs],
                                                    lowest=0.0),
                "gumbel_top_k_share": mean_interval([r["gumbel_top_k_share"] for r in runs],
                                                    lowest=0.0),
                "law": {name: law(name) for name in tv},
                "tv_minus_reference": paired_difference(tv["gumbel-top-k"], tv["reference"]),
                "diversity": {name: {m: mean_interval([r["diversity"][name][m] for r in runs])
                                     for m in ("distinct", "mass")}
                              for name in ("top-k", "gumbel-top-k")},
                "bias": {name: mean_interval([r["bias"][name] for r in runs])
                         for name in ESTIMATORS},
                "rmse": {name: mean_interval([r["rmse"][name] for r in runs], lowest=0.0)
                         for name in ESTIMATORS},
            }
        return {"cells": cells, "threshold": threshold, "beam": config.beam,
                "calls": config.calls, "seeds": config.seeds, "models": config.models,
                "draws": config.draws}

    @staticmethod
    def _needed(cell: dict) -> Decision:
        """Does keeping the k most probable choices find more probable sequences than greedy
        search? (module docstring)"""
        gain = cell["gain"]
        if gain.below(0) or Decision.within(cell["gain_90"], -GAIN_MARGIN,
                                            GAIN_MARGIN) is Decision.YES:
            return Decision.NO
        return Decision.YES if gain.above(0) else Decision.UNDECIDED

    def verdict(self, summary: dict) -> Verdict:
        cells, k = summary["cells"], summary["beam"]
        by_cell = {c: Decision.all_of([self._needed(data),
                                       Decision.of(data["softmax_top_k"]["1"] == 1.0)])
                   for c, data in cells.items()}
        decision, where = across(by_cell)

        def each(text: Callable[[dict], str]) -> str:
            return "; ".join(f"{c}: {text(data)}" for c, data in cells.items())

        answer = (
            f"Answer 2's claim {decision.word} ({where}): beam search of width {k} (the {k} "
            "most probable extensions kept at each step, not only the first) finds sequences "
            "more probable than greedy search by "
            + each(lambda d: f"{d['gain'].format(2)} nats (most probable sequence found in "
                             f"{d['search']['beam']['hit'].format(2)} of models, greedy "
                             f"{d['search']['greedy']['hit'].format(2)})")
            + f"; top-{k} of softmax(logits) is the {k} most probable choices in a share of "
            "models of at least " + each(lambda d: f"{d['softmax_top_k']['1']:.3g}")
            + f". With Gumbel noise, Gumbel-top-{k} draws those {k} choices in order with "
            "probability " + each(lambda d: d["gumbel_top_k_exact"].format(2))
            + f", and the best of {k} sequences it draws has a log-probability minus beam "
            "search's of " + each(lambda d: f"{d['sampled_minus_beam'].format(2)} nats")
            + f". {summary['seeds']} seeds x {summary['models']} models.")
        taus = [t for t in next(iter(cells.values()))["softmax_top_k"] if t != "1"]
        detail = (
            "At other temperatures, top-k of softmax(logits/tau) in float32 is the k most "
            "probable choices in a share of models of at least "
            + "; ".join(f"tau={t}: " + ", ".join(f"{d['softmax_top_k'][t]:.3g}"
                                                for d in cells.values()) for t in taus)
            + " (cells in the order above; softmax-tau keeps the order of the logits, and "
            "float32 rounds the smaller probabilities of a steep softmax to ties at 0). "
            f"Gumbel-top-{k} drew the {k} most probable choices in order in a share of draws "
            + each(lambda d: d["gumbel_top_k_share"].format(2))
            + ". What it gives instead: (a) its ordered "
            "draws against the exact law without replacement: smallest p "
            + each(lambda d: f"{d['law']['gumbel-top-k']['min_p_value']:.2g} (reference "
                             f"{d['law']['reference']['min_p_value']:.2g})")
            + f", rejected at p < {summary['threshold']:.2g} in "
            f"{sum(d['law']['gumbel-top-k']['rejected'] for d in cells.values())} of "
            f"{len(cells)} cells; TV minus the exact sampler's "
            + each(lambda d: d["tv_minus_reference"].format(2))
            + f"; (b) {summary['calls']} calls cover "
            + each(lambda d: f"{d['diversity']['gumbel-top-k']['distinct'].format(2)} distinct "
                             f"choices and mass {d['diversity']['gumbel-top-k']['mass'].format(2)}"
                             f" (top-{k}: {k}, mass {d['diversity']['top-k']['mass'].format(2)})")
            + "; (c) relative bias of the entropy estimate: "
            + each(lambda d: ", ".join(f"{name} {d['bias'][name].format(2)}"
                                       for name in ESTIMATORS))
            + f". Margin: {GAIN_MARGIN:g} nats (pre-registered); the claim holds in a cell when "
            "the search needs the choices and softmax's top-k gives them.")
        first = next(iter(cells))
        return Verdict(decision, answer, detail, claims=(BEAM,),
                       number=f"{first}: beam minus greedy {cells[first]['gain'].format(2)} nats")

    def tables(self, summary: dict) -> list[Table]:
        k = summary["beam"]
        search = [[cell, name, data["search"][name]["gap"], data["search"][name]["hit"]]
                  for cell, data in summary["cells"].items() for name in SEARCHES]
        sampling = []
        for cell, data in summary["cells"].items():
            for name in ("top-k", "gumbel-top-k"):
                estimator = "top-k" if name == "top-k" else "Kool et al."
                law = data["law"].get(name)
                sampling.append([
                    cell, name, data["diversity"][name]["distinct"],
                    data["diversity"][name]["mass"], data["bias"][estimator],
                    data["rmse"][estimator],
                    f"{law['min_p_value']:.2g}" if law else "deterministic"])
        return [
            Table(["cell", "search", "log p(MAP) - log p(found) (nats)", "share finding the MAP"],
                  search, f"Greedy search, beam search of width {k}, and the best of {k} "
                  f"sequences drawn by Gumbel-top-{k} over all sequences; means [95% t "
                  "intervals] over seeds of the mean over models."),
            Table(["cell", "choices", f"distinct in {summary['calls']} calls", "mass covered",
                   "relative bias of H", "relative RMSE of one call", "smallest p (law)"],
                  sampling, f"The first token's k = {k} choices: deterministic top-k, and "
                  "Gumbel-top-k with Kool et al.'s estimator of the entropy H; the law's "
                  "chi-square tests against the exact law without replacement.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        cells = summary["cells"]
        x = np.arange(len(cells))
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for i, name in enumerate(SEARCHES):
            errorbar(axes[0], x + 0.1 * (i - 1), [d["search"][name]["gap"] for d in
                                                  cells.values()], fmt="o", label=name)
        axes[0].set_ylabel("log p(MAP) - log p(found), nats")
        for i, name in enumerate(ESTIMATORS):
            errorbar(axes[1], x + 0.1 * (i - 1), [d["bias"][name] for d in cells.values()],
                     fmt="o", label=name)
        axes[1].axhline(0, color="black", linewidth=0.8)
        axes[1].set_ylabel("relative bias of the entropy estimate")
        for i, name in enumerate(("top-k", "gumbel-top-k")):
            errorbar(axes[2], x + 0.1 * (2 * i - 1),
                     [d["diversity"][name]["distinct"] for d in cells.values()], fmt="o",
                     label=name)
        axes[2].set_ylabel(f"distinct choices in {summary['calls']} calls")
        for ax in axes:
            ax.set_xticks(x, list(cells), fontsize=8)
            ax.legend(fontsize=8)
        return [Figure(save(fig, directory, "e14_beams.png"),
                       "Left: how far below the most probable sequence each search ends; middle: "
                       "the relative bias of the entropy estimates from the k choices; right: "
                       "the distinct choices of repeated calls. Means over seeds with 95% t "
                       "intervals.")]


EXPERIMENT = BeamSearch()
