"""E6. Gumbel-Softmax in place of softmax + cross-entropy for next-token prediction.

Measured: a bigram language over a small vocabulary in which every token has two possible
successors, either 0.6/0.4 (ambiguous, like "you" -> "are"/"have") or 0.9/0.1. A small model
(embedding -> tanh -> linear) maps the previous token to logits. It is trained with the
cross-entropy of a sample ``y = gk.sample(logits, estimator, tau)`` of each estimator,
``-log y[target]``: for ``softmax`` at tau = 1 this is the usual softmax + cross-entropy (the
reference), for ``gs`` it is the thread's misuse (the cross-entropy of a Gumbel-Softmax sample).
For the straight-through estimators (``st-gs``, ``reinmax``) y is one-hot, so ``-log y[target]`` is
0 when the sample hits the target and +inf otherwise; those infinite terms are given zero gradient,
the limit of the usual clamp ``-log(max(y, eps))`` as eps -> 0, so the model learns only from the
samples that hit the target (with a finite eps the gradient of a miss would be the surrogate's
times 1/eps, an explosion by construction). The same rule applies to every estimator: a Gumbel-
Softmax coordinate that underflows to exactly 0 is such a miss too. A step whose gradient is still
not finite (the log of a subnormal probability overflows) is skipped, as torch's GradScaler does.

Per step: the norm of the gradient of the batch loss to all parameters. Per run: its maximum and
99th percentile over finite steps, the fraction of steps with a non-finite gradient, the fraction
of examples whose loss was infinite, and, at the end, the exact excess NLL of the learned
distribution over the true one (the KL divergence averaged over contexts; the learned distribution
is softmax(logits / tau) for softmax-tau, and softmax(logits), the law of the samples, for the
Gumbel estimators). Ratios are paired by seed against softmax + cross-entropy (softmax, tau = 1)
and against softmax-tau at the same tau; intervals are 95% t intervals over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from ..harness.plotting import plt, save
from ..harness.protocol import Claim, Experiment, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, Interval, mean_interval, paired_difference

BLOW_UP = 10.0  # a maximum gradient norm this many times the reference's is a blow-up
REFERENCE = ("softmax", 1.0)  # softmax + cross-entropy
AMBIGUOUS = (0.6, 0.4)
SKEWED = (0.9, 0.1)


@dataclass
class Config(ExperimentConfig):
    seeds: int = 5
    estimators: tuple[str, ...] = ("softmax", "gs", "st-gs", "reinmax")
    taus: tuple[float, ...] = (0.1, 0.5, 1.0)
    vocabulary: int = 8
    embedding: int = 16
    steps: int = 300
    batch: int = 256
    lr: float = 0.01

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=12, estimators=("softmax", "gs", "st-gs", "reinmax", "gr"),
                   taus=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0), steps=3000, vocabulary=32)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, taus=(0.1, 1.0), steps=30, batch=32)


def transitions(vocabulary: int) -> torch.Tensor:
    """The true next-token law: token i goes to i+1 or i+3 (0.6/0.4) when i is even, to i+1 or
    i+5 (0.9/0.1) when i is odd (indices modulo the vocabulary)."""
    table = torch.zeros(vocabulary, vocabulary, dtype=torch.float64)
    for token in range(vocabulary):
        (first, second), jump = (AMBIGUOUS, 3) if token % 2 == 0 else (SKEWED, 5)
        table[token, (token + 1) % vocabulary] += first
        table[token, (token + jump) % vocabulary] += second
    return table


def _name(estimator: str, tau: float) -> str:
    return f"{estimator}, tau={tau:g}"


def _ratio(values: list[float], reference: list[float]) -> dict[str, float]:
    """Geometric-mean ratio of paired positive values, with its t interval."""
    log = paired_difference(np.log10(values), np.log10(reference))
    return Interval(10 ** log.estimate, 10 ** log.low, 10 ** log.high, log.n)


class NextTokenPrediction(Experiment):
    id = "E6"
    title = "Next-token prediction: cross-entropy of a Gumbel-Softmax sample vs of a softmax"
    claim_summary = (
        "Cross-entropy on a Gumbel-Softmax sample in place of softmax + cross-entropy leads "
        "to gradient explosion."
    )
    claims = (
        Claim("Another example is for predicting the next word after \"you\" in a sentence. "
              "suppose there are only two options: \"are\" and \"have\". If we use "
              "Gumbel-softmax instead of softmax for representing the probability of the two "
              "words. The cross entropy loss is not close to infinity(-log0) only when the "
              "training process make the correct sampling. The training process will easily get "
              "gradient explosion in this case.", "answer 2"),
    )
    config_class = Config
    threads = 1  # tiny tensors: extra threads only add synchronisation

    def setup(self, config: Config) -> str:
        return (f"Bigram language over {config.vocabulary} tokens: even tokens have two "
                f"successors with probabilities {AMBIGUOUS[0]:g}/{AMBIGUOUS[1]:g}, odd tokens "
                f"{SKEWED[0]:g}/{SKEWED[1]:g}; contexts uniform. Model: embedding "
                f"({config.embedding}) -> tanh -> linear logits; Adam (lr {config.lr:g}), "
                f"{config.steps} steps of {config.batch} fresh pairs. Loss -log y[target] with y "
                f"= gk.sample(logits, estimator, tau) for {', '.join(config.estimators)} at tau in "
                f"{list(config.taus)} (softmax at tau=1 is softmax + cross-entropy, the "
                "reference); an infinite per-example loss (y[target] = 0, always the case for a "
                "missed one-hot sample) gets zero gradient, and a step with a non-finite gradient "
                f"is skipped and counted. {config.seeds} seeds, paired across estimators. "
                f"Blow-up: the fraction of non-finite steps lies above 0, or the maximum gradient "
                f"norm is more than {BLOW_UP:g} times softmax + cross-entropy's (95% t "
                "interval of the seed-paired geometric-mean ratio). Damage: the exact excess "
                "NLL (KL from the true next-token law, averaged over contexts) minus the "
                "reference's.")

    def runs(self, config: Config) -> list[dict]:
        keys = [{"estimator": e, "tau": t, "seed": s} for e in config.estimators
                for t in config.taus for s in range(config.seeds)]
        reference = {"estimator": REFERENCE[0], "tau": REFERENCE[1]}
        if not any(k["estimator"] == REFERENCE[0] and k["tau"] == REFERENCE[1] for k in keys):
            keys += [{**reference, "seed": s} for s in range(config.seeds)]
        return keys

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        estimator, tau, seed = key["estimator"], key["tau"], key["seed"]
        torch.manual_seed(seed)
        v = config.vocabulary
        model = torch.nn.Sequential(torch.nn.Embedding(v, config.embedding), torch.nn.Tanh(),
                                    torch.nn.Linear(config.embedding, v)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        gen = torch.Generator(device=device).manual_seed(seed)
        law = transitions(v).to(device)
        norms, infinite = [], 0
        for _ in range(config.steps):
            context = torch.randint(v, (config.batch,), generator=gen, device=device)
            target = torch.multinomial(law[context].float(), 1, generator=gen)
            y = gk.sample(model(context), estimator, tau, generator=gen)
            picked = y.gather(1, target).squeeze(1)
            hit = picked > 0
            infinite += int((~hit).sum())
            loss = -torch.where(hit, picked, torch.ones_like(picked)).log().sum() / config.batch
            optimizer.zero_grad()
            loss.backward()
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))
            norms.append(norm.item())
            if torch.isfinite(norm):
                optimizer.step()
        with torch.no_grad():
            logits = model(torch.arange(v, device=device)).double()
            learned = torch.log_softmax(logits / (tau if estimator == "softmax" else 1.0), 1)
            positive = law > 0
            kl = torch.where(positive, law * (law.clamp_min(1e-300).log() - learned), 0.0)
            excess_nll = kl.sum(1).mean().item()
            example = learned[:2].exp().cpu().numpy().round(4).tolist()
        trace = np.asarray(norms)
        finite = trace[np.isfinite(trace)]
        result = {
            "max_norm": float(finite.max()) if finite.size else float("nan"),
            "p99_norm": float(np.percentile(finite, 99)) if finite.size else float("nan"),
            "median_norm": float(np.median(finite)) if finite.size else float("nan"),
            "nonfinite_steps": float(1 - finite.size / trace.size),
            "infinite_loss_examples": infinite / (config.steps * config.batch),
            "excess_nll": excess_nll,
            "learned_first_contexts": example,
        }
        if seed == 0:
            result["norm_trace"] = [round(x, 4) if np.isfinite(x) else None for x in norms]
        return result

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        by_setting: dict[str, dict[int, dict]] = {}
        for key, result in results:
            by_setting.setdefault(_name(key["estimator"], key["tau"]), {})[key["seed"]] = result
        reference = by_setting[_name(*REFERENCE)]
        seeds = sorted(reference)
        settings, traces, learned = {}, {}, {}
        for name, runs in by_setting.items():
            rows = [runs[s] for s in seeds]
            estimator, tau = name.split(", tau=")
            same_tau = by_setting.get(_name("softmax", float(tau)))
            entry = {metric: mean_interval([r[metric] for r in rows])
                     for metric in ("max_norm", "p99_norm", "median_norm", "nonfinite_steps",
                                    "infinite_loss_examples", "excess_nll")}
            refs = [reference[s] for s in seeds]
            entry["max_ratio"] = _ratio([r["max_norm"] for r in rows],
                                        [r["max_norm"] for r in refs])
            entry["p99_ratio"] = _ratio([r["p99_norm"] for r in rows],
                                        [r["p99_norm"] for r in refs])
            if same_tau:
                entry["max_ratio_same_tau"] = _ratio(
                    [r["max_norm"] for r in rows], [same_tau[s]["max_norm"] for s in seeds])
            entry["excess_nll_minus_reference"] = paired_difference(
                [r["excess_nll"] for r in rows], [r["excess_nll"] for r in refs])
            entry["estimator"], entry["tau"] = estimator, float(tau)
            settings[name] = entry
            if 0 in runs:
                traces[name] = runs[0]["norm_trace"]
                learned[name] = runs[0]["learned_first_contexts"]
        return {"settings": settings, "traces": traces, "learned": learned, "seeds": len(seeds),
                "reference": _name(*REFERENCE),
                "true_first_contexts": transitions(config.vocabulary)[:2].tolist()}

    def verdict(self, summary: dict) -> Verdict:
        settings = summary["settings"]

        def interval(name: str, metric: str) -> Interval:
            return settings[name][metric]

        def blows_up(name: str) -> bool:
            return (interval(name, "nonfinite_steps").low > 0
                    or interval(name, "max_ratio").above(BLOW_UP))

        def calm(name: str) -> bool:
            return (interval(name, "nonfinite_steps").high == 0
                    and interval(name, "max_ratio").below(BLOW_UP))

        gs = sorted((n for n in settings if settings[n]["estimator"] == "gs"),
                    key=lambda n: settings[n]["tau"])
        exploded = [n for n in gs if blows_up(n)]
        decision = Decision.any_of(Decision.YES if blows_up(n) else Decision.NO if calm(n)
                                   else Decision.UNDECIDED for n in gs)
        shown = exploded[0] if exploded else gs[0]
        outcome = {Decision.YES: "blows up", Decision.UNDECIDED: "does not clearly blow up",
                   Decision.NO: "does not blow up"}
        noisy = [n for n in settings if settings[n]["estimator"] != "softmax"]
        hurt = [n for n in noisy if interval(n, "excess_nll_minus_reference").above(0)]
        straight = [n for n in noisy if settings[n]["estimator"] != "gs"]
        worst = max(straight or noisy, key=lambda n: interval(n, "excess_nll").estimate)
        reference = summary["reference"]
        answer = (
            f"Cross-entropy of a Gumbel-Softmax sample {outcome[decision]} "
            f"({'at ' + ', '.join(exploded) if exploded else 'at no tau'}): at {shown}, a "
            f"fraction {interval(shown, 'nonfinite_steps').format(2)} of steps have a non-finite "
            f"gradient (reference 0) and the largest finite gradient norm is "
            f"{interval(shown, 'max_ratio').format(2)} times softmax + cross-entropy's "
            f"({interval(shown, 'max_ratio_same_tau').format(2)} times softmax-tau's at the same "
            f"tau; 99th percentile {interval(shown, 'p99_ratio').format(2)} times the "
            f"reference's). The learned distribution is worse than the reference's (excess NLL "
            f"{interval(reference, 'excess_nll').format(2)} nats) in {len(hurt)} of {len(noisy)} "
            "Gumbel settings; excess NLL minus the reference's for gs: "
            + ", ".join(f"{n.split(', ')[1]}: "
                        f"{interval(n, 'excess_nll_minus_reference').format(2)}" for n in gs)
            + f" nats; worst {worst}: {interval(worst, 'excess_nll').format(2)} nats. "
            f"{summary['seeds']} seeds, 95% t intervals."
        )
        detail = (
            "The claim (gradient explosion) holds when, for Gumbel-Softmax at some tau, the "
            "interval of the fraction of steps with a non-finite gradient lies above 0 or that of "
            f"the maximum-norm ratio to the reference lies above {BLOW_UP:g}; it fails when every "
            "tau has no non-finite step and a ratio below it. The ratio to softmax-tau at the same "
            "tau separates the noise from the 1/tau scale that any tempered softmax has; the "
            "non-finite gradients come from -log of a probability that underflows, which "
            "log_softmax of the perturbed logits would avoid. Straight-through estimators learn "
            "only from samples that hit the target (a miss has loss +inf), which rewards "
            "putting all the mass on one successor.")
        return Verdict(decision, answer, detail)

    def tables(self, summary: dict) -> list[Table]:
        rows = []
        for name, entry in summary["settings"].items():
            same = entry.get("max_ratio_same_tau")
            rows.append([name, entry["max_norm"].format(2),
                         entry["max_ratio"].format(2),
                         same.format(2) if same else "-",
                         entry["p99_ratio"].format(2),
                         entry["nonfinite_steps"].format(2),
                         entry["infinite_loss_examples"].format(2),
                         entry["excess_nll"].format(2)])
        return [Table(["estimator", "max gradient norm", "max / reference", "max / softmax same "
                       "tau", "p99 / reference", "non-finite steps", "infinite-loss examples",
                       "excess NLL (nats)"], rows,
                      f"Reference: {summary['reference']} (softmax + cross-entropy). Ratios are "
                      f"seed-paired geometric means; mean [95% CI] over {summary['seeds']} seeds.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        settings = summary["settings"]
        taus = sorted({e["tau"] for e in settings.values()})
        estimators = list(dict.fromkeys(e["estimator"] for e in settings.values()))
        fig, axes = plt.subplots(1, len(taus), figsize=(4 * len(taus), 3.2), sharey=True,
                                 squeeze=False)
        for ax, tau in zip(axes[0], taus, strict=True):
            for estimator in estimators:
                trace = summary["traces"].get(_name(estimator, tau))
                if trace is None:
                    continue
                values = np.array([np.nan if x is None else x for x in trace], dtype=float)
                line, = ax.plot(values, lw=0.8, label=estimator)
                bad = np.flatnonzero(np.isnan(values))
                ax.plot(bad, np.full(bad.shape, np.nanmax(values)), "x", color=line.get_color())
            ax.set_yscale("log")
            ax.set_title(f"tau={tau:g}", fontsize=9)
            ax.set_xlabel("step")
        axes[0, 0].set_ylabel("gradient norm")
        axes[0, 0].legend(fontsize=7)
        traces = Figure(save(fig, directory, "e6_gradient_norms.png"),
                        "Seed 0: gradient norm per step (log scale); x marks steps whose gradient "
                        "was not finite (skipped).")

        true = np.asarray(summary["true_first_contexts"])
        fig, axes = plt.subplots(2, len(estimators), figsize=(2.8 * len(estimators), 5),
                                 sharey=True, squeeze=False)
        for context, row in enumerate(axes):
            successors = np.flatnonzero(true[context] > 0)
            x = np.arange(len(successors))
            width = 0.8 / (len(taus) + 1)
            for ax, estimator in zip(row, estimators, strict=True):
                ax.bar(x, true[context, successors], width, color="black", label="true")
                for i, tau in enumerate(taus, 1):
                    law = summary["learned"].get(_name(estimator, tau))
                    if law is not None:
                        ax.bar(x + i * width, np.asarray(law[context])[successors], width,
                               label=f"tau={tau:g}")
                ax.set_xticks(x + 0.4, [f"token {s}" for s in successors], fontsize=7)
                ax.set_title(f"{estimator}, after token {context}", fontsize=8)
        axes[0, 0].set_ylabel("probability")
        axes[0, 0].legend(fontsize=7)
        laws = Figure(save(fig, directory, "e6_learned_law.png"),
                      "Seed 0: learned next-token probabilities after an ambiguous "
                      f"({AMBIGUOUS[0]:g}/{AMBIGUOUS[1]:g}, top) and a skewed "
                      f"({SKEWED[0]:g}/{SKEWED[1]:g}, bottom) context, next to the true ones.")
        return [traces, laws]


EXPERIMENT = NextTokenPrediction()
