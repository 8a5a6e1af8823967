"""E5. Conditional generation ("Obama/Trump"): does a noise-free softmax code lose the voices?

Measured: the data are two well-separated "voices" in the plane, Obama with probability ``s`` and
Trump with ``1 - s`` (isotropic Gaussian clusters); two instances, ``s = 0.3`` (answer 2's
example) and ``s = 0.1``. A model draws a two-category code ``c`` from learnable logits, feeds it
to a small generator MLP ``g`` and adds the voices' known within-cluster noise,
``x = g(c) + sigma eps``. Nothing else is random, so the only way to produce two voices is the
code. The model is trained to match the data distribution with the energy distance (Szekely and
Rizzo 2013), a sample-based distribution loss (no encoder, no pairing):

    D(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,   X, X' ~ P (model), Y, Y' ~ Q (data),

estimated on a generated and a data batch by its U-statistic (unbiased: the pairs i = j are left
out of the within-sample means). A method's code is ``gk.expectation`` over ``samples`` batches
of codes with that method's estimator: the eight cells of the noise factorial
(:mod:`gumbelkit.workloads.factorial`: noise scale alpha in {0, 0.5, 1, 2} x relaxed or
straight-through backward; alpha = 0 relaxed is softmax-tau, alpha = 1 relaxed is gs, alpha = 1
straight-through is st-gs), ReinMax (Liu et al. 2023), and two references: ``rloo`` (REINFORCE
with a leave-one-out baseline, Kool et al. 2019: exact one-hot samples, unbiased gradient) and the
exact gradient. The exact objective enumerates the code: with the code law ``p = softmax(logits)``,

    D = sum_{k,l} p_k p_l h(e_k, e_l),   h(e_k, e_l) = a_k + a_l - b_kl - E|Y - Y'|,
    a_k = E|g(e_k) + sigma eps - Y|,     b_kl = E|g(e_k) + sigma eps - g(e_l) - sigma eps'|,

an expectation over a pair of independent codes, computed by enumerating the four pairs (what
``gk.exact.expectation`` does for logits (2, 2), here batched over seeds; the noise and the data
stay Monte Carlo batches).

After training, outputs are generated twice: with codes drawn the way the method draws them in
training ("as trained": the constant softmax(logits/tau) for softmax-tau, relaxed samples for the
relaxed cells, one-hot samples for the straight-through ones and the references) and with exact
one-hot samples of softmax(logits) ("one-hot", the categorical variable the code stands for).
Each output is near Obama, near Trump (within ``radius`` of a voice's centre) or a hybrid (far
from both). The mode error is the total-variation distance between these three shares and the
data's ``(s, 1 - s, 0)``: a model that collapses onto the majority voice has mode error ``s``, an
all-hybrid model 1. Every tau is chosen per method and instance on validation seeds (lowest mean
energy distance of its outputs to fresh data, the training objective) and the verdicts read the
other seeds. Seeds run together as a batch (Adam acts per element, so they stay independent).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from .._validate import check_count
from ..estimators import get_estimator
from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import (
    Decision,
    Interval,
    equivalence_level,
    mean_interval,
    paired_difference,
)
from ..workloads.factorial import CELLS, Cell
from .base import LabExperiment, across

# recovered: a mode error below half of what a collapse onto the majority voice makes (s / 2)
RECOVERED_FRACTION = 0.5
# "produces hybrids": more than half of the outputs are far from both voices
HYBRID_SHARE = 0.5
# collapsed onto one voice: the other keeps less than a fifth of its data share (words only)
COLLAPSED_FRACTION = 0.2
# pre-registered: one-hot codes at prediction that change the energy distance of the outputs to
# the data by less than a tenth of what the training code's outputs already cost have no
# out-of-domain cost. The energy distance, not the mode error: the total variation does not move
# when outputs go from an over-represented voice to the hybrids, which is what an out-of-domain
# input would do to a collapsed generator
OOD_MARGIN = 0.1
GENERATIONS = ("as_trained", "one_hot")
SHARES = ("obama", "trump", "hybrid")
METRICS = (*SHARES, "mode_error", "energy")
REFERENCES = ("rloo", "exact")  # no tau: exact one-hot samples, unbiased or exact gradient
CELL_OF = {cell.label: cell for cell in CELLS}
SOFTMAX = Cell(0.0, "relaxed").label
GS = Cell(1.0, "relaxed").label
ARGMAX_ST = Cell(0.0, "straight-through").label
ST_GS = Cell(1.0, "straight-through").label
EXAMPLE_POINTS = 250  # outputs of seed 0 kept for the figure

SPEAKER = Claim(
    "Suppose there is a network needing a sample but not a distribution of a categorical "
    "variable, e.g. a network need a categorical variable representing whose speech I wanna "
    "generate: Obama or Trump. Say 70% of the chance the training data is from Trump and 30% of "
    "time is from Obama, Then 70% of time the variable should be [0 1] and 30 % of time should "
    "be [1 0]. If we use softmax here instead, the variable will always be about [0.3 0.7], "
    "thus it becomes a constant, so it can be ignored by the network.",
    "answer 2",
    "A softmax code is a constant the generator can ignore, so it cannot give the 0.7/0.3 "
    "voices, while a sampled (Gumbel-Softmax) code can.")
HYBRID = Claim(
    "To mitigate the training loss penalty, the resulting network is very probable to produce "
    "the hybrid sound a bit like Obama and a bit more like Trump.",
    "answer 2",
    "A generator trained on the constant softmax code produces hybrids between the two voices.")
OUT_OF_DOMAIN = Claim(
    "What's more [0.7 0.3] during training is never used during predicting, this is also a "
    "problem about out-of-domain prediction.",
    "answer 2",
    "A softmax-trained generator does worse on the one-hot codes it meets at prediction time, "
    "inputs it never saw in training.")


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    # seeds on which each method's tau is chosen, apart from those the verdicts are measured on
    # (only when there is a tau to choose)
    validation_seeds: int = 3
    obama_shares: tuple[float, ...] = (0.3, 0.1)  # the instances: the minority voice's share
    # run beside the factorial's eight cells and the references (rloo, exact)
    estimators: tuple[str, ...] = ("reinmax",)
    taus: tuple[float, ...] = (0.5, 1.0)
    separation: float = 4.0  # distance between the two voices' centres
    noise: float = 0.25  # within-voice standard deviation (data and generator)
    radius: float = 1.0  # an output within this distance of a centre is that voice
    hidden: int = 16
    steps: int = 300
    batch: int = 64  # codes per sample (and data points per step)
    samples: int = 2  # batches of codes per step, for every method (rloo needs 2)
    lr: float = 0.05
    eval_samples: int = 1000
    energy_points: int = 300  # of the eval outputs, per seed, in the energy distance (cost n^2)

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, validation_seeds=6, steps=1000, eval_samples=2000,
                   energy_points=600)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, validation_seeds=1, steps=20, batch=16, eval_samples=200,
                   energy_points=100)


def _validation(config: Config) -> int:
    """Validation seeds run only when there is a tau to choose."""
    return config.validation_seeds if len(config.taus) > 1 else 0


def _tau_methods(config: Config) -> list[str]:
    """The methods that take a tau: the factorial's cells, then the other estimators."""
    return [cell.label for cell in CELLS] + list(config.estimators)


def _shown(config: Config) -> list[str]:
    """The methods whose outputs the figure shows."""
    return [SOFTMAX, GS, ST_GS, *config.estimators, *REFERENCES]


def _display(method: str) -> str:
    """A method's name for the report: a factorial cell with its registry name, where it has one."""
    cell = CELL_OF.get(method)
    if cell is None or not cell.known_as:
        return method
    return f"{'softmax-tau' if cell.known_as == 'softmax' else cell.known_as} ({method})"


def _instance(share: float) -> str:
    """An instance's name (a cell of the robustness grid)."""
    return f"Obama {share:g} / Trump {1 - share:g}"


def _centres(config: Config, device: torch.device) -> torch.Tensor:
    """Obama's centre (row 0) and Trump's (row 1)."""
    half = config.separation / 2
    return torch.tensor([[-half, 0.0], [half, 0.0]], device=device)


def _data(config: Config, share: float, shape: tuple[int, int], gen: torch.Generator
          ) -> torch.Tensor:
    """Data points of shape ``(*shape, 2)``: Obama with probability ``share``."""
    trump = (torch.rand(shape, generator=gen, device=gen.device) >= share).long()
    noise = torch.randn(*shape, 2, generator=gen, device=gen.device)
    return _centres(config, gen.device)[trump] + config.noise * noise


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances ``(..., M, N)`` of ``(..., M, 2)`` and ``(..., N, 2)``, through
    one (batched) matrix product: small tensors, fast on CPU."""
    squared = ((x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2)
               - 2 * x @ y.transpose(-1, -2))
    return squared.clamp_min(1e-12).sqrt()


def _within(x: torch.Tensor) -> torch.Tensor:
    """U-statistic of E|X - X'| over one sample ``(..., M, 2)``: the pairs i = j left out."""
    distances, m = _distances(x, x), x.shape[-2]
    diagonal = distances.diagonal(dim1=-2, dim2=-1).sum(-1)
    return (distances.sum((-1, -2)) - diagonal) / (m * (m - 1))


def _energy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between samples (..., M, 2)
    and (..., N, 2) (module docstring)."""
    return 2 * _distances(x, y).mean((-1, -2)) - _within(x) - _within(y)


def _init_generators(seeds: list[int], hidden: int, device: torch.device) -> list[torch.Tensor]:
    """One 2-hidden-2 MLP per seed, stacked: ``nn.Linear``'s initialisation U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) drawn from the seed alone, so a seed starts every method alike (paired)."""
    shapes = [((2, hidden), 2), ((1, hidden), 2), ((hidden, 2), hidden), ((1, 2), hidden)]
    per_seed = []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        per_seed.append([(2 * torch.rand(shape, generator=gen) - 1) / fan_in ** 0.5
                         for shape, fan_in in shapes])
    return [torch.stack(params).to(device).requires_grad_(True) for params in zip(*per_seed,
                                                                                  strict=True)]


def _decode(params: list[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
    """The generators' outputs ``g(c) = W2 tanh(W1 c + b1) + b2`` for codes (S, M, 2), seed-wise."""
    w1, b1, w2, b2 = params
    return torch.baddbmm(b2, torch.tanh(torch.baddbmm(b1, codes, w1)), w2)


def _generate(config: Config, params: list[torch.Tensor], codes: torch.Tensor,
              gen: torch.Generator) -> torch.Tensor:
    """Outputs ``g(c) + sigma eps`` for codes (n, S, M, 2): each sample of codes in turn."""
    n, seeds, m, _ = codes.shape
    flat = codes.transpose(0, 1).reshape(seeds, n * m, 2)
    outputs = _decode(params, flat).reshape(seeds, n, m, 2).transpose(0, 1)
    return outputs + config.noise * torch.randn(outputs.shape, generator=gen,
                                                device=gen.device)


def pair_expectation(h: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``E_{c, c' ~ softmax(logits) i.i.d.}[h(c, c')] = sum_{k,l} p_k p_l h_kl`` per row, for
    ``h`` of shape (S, K, K) and logits (S, K): the enumeration over the K^2 pairs of codes that
    ``gk.exact.expectation`` makes for logits (2, K), batched over rows (the tests check that
    the two agree)."""
    p = torch.softmax(logits, -1)
    return torch.einsum("sk,skl,sl->s", p, h, p)


def _exact_loss(config: Config, params: list[torch.Tensor], logits: torch.Tensor,
                data: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The energy distance of the model's law to the data, exact in the code (module docstring):
    ``sum_{k,l} p_k p_l h(e_k, e_l)``, summed over seeds."""
    seeds, m = data.shape[:2]
    codes = torch.eye(2, device=data.device).expand(seeds, 2, 2)
    centres = _decode(params, codes).unsqueeze(2)  # (S, 2, 1, 2): the output at code e_k

    def outputs() -> torch.Tensor:
        return centres + config.noise * torch.randn(seeds, 2, m, 2, generator=gen,
                                                    device=gen.device)

    x, x_prime = outputs(), outputs()  # independent noise for X and X'
    a = _distances(x, data.unsqueeze(1)).mean((-1, -2))  # (S, 2)
    b = _distances(x.unsqueeze(2), x_prime.unsqueeze(1)).mean((-1, -2))  # (S, 2, 2)
    h = a.unsqueeze(2) + a.unsqueeze(1) - b - _within(data)[:, None, None]
    return pair_expectation(h, logits).sum()


def _shares(config: Config, share: float, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per seed: the shares of outputs (S, n, 2) near Obama, near Trump and hybrid, and the mode
    error (total variation) against the data's (share, 1 - share, 0)."""
    near = _distances(outputs, _centres(config, outputs.device)) < config.radius
    shares = {"obama": near[..., 0].float().mean(-1), "trump": near[..., 1].float().mean(-1),
              "hybrid": (~near.any(-1)).float().mean(-1)}
    target = {"obama": share, "trump": 1 - share, "hybrid": 0.0}
    shares["mode_error"] = 0.5 * sum((shares[k] - target[k]).abs() for k in SHARES)
    return shares


def _example(points: torch.Tensor) -> list:
    """Seed 0's first points (S, n, 2), rounded, for the figure."""
    return points[0, :EXAMPLE_POINTS].cpu().numpy().round(3).tolist()


def _behaviour(metrics: dict[str, Interval], share: float) -> str:
    """What a model's outputs do, in words, with the shares behind them: it recovers the mixture
    when the interval of its mode error lies below the recovery line (as the verdicts decide);
    the other words describe the means."""
    obama, trump, hybrid = (metrics[k].estimate for k in SHARES)
    if metrics["mode_error"].below(RECOVERED_FRACTION * share):
        what = f"recovers the {1 - share:g}/{share:g} mixture"
    elif hybrid > HYBRID_SHARE:
        what = "produces hybrids"
    elif obama < COLLAPSED_FRACTION * share:
        what = "collapses onto the majority voice"
    elif trump < COLLAPSED_FRACTION * (1 - share):
        what = "collapses onto the minority voice"
    else:
        what = (f"{'over' if obama > share else 'under'}-represents the minority voice"
                + (" with hybrids" if hybrid > RECOVERED_FRACTION * share else ""))
    return (f"{what} (Obama {metrics['obama'].format(2)}, Trump {metrics['trump'].format(2)}, "
            f"hybrids {metrics['hybrid'].format(2)}; mode error {metrics['mode_error'].format(2)})")


class ConditionalGeneration(LabExperiment):
    id = "E5"
    title = "Conditional generation: a sampled code vs a constant softmax code (Obama/Trump)"
    claim_summary = SPEAKER.summary
    claims = (SPEAKER, HYBRID, OUT_OF_DOMAIN)
    config_class = Config
    threads = 1  # tiny tensors: extra threads only add synchronisation

    def check(self, config: Config) -> None:
        super().check(config)
        check_count(config.samples, "samples", minimum=2)  # rloo's leave-one-out baseline
        check_count(config.validation_seeds, "validation_seeds",
                    minimum=1 if len(config.taus) > 1 else 0)
        score_function = [e for e in config.estimators if not get_estimator(e).pathwise]
        if score_function:  # rloo runs as a reference; a code needs a differentiable sample
            raise ValueError(f"estimators must be pathwise (rloo is a reference already), got "
                             f"{', '.join(score_function)}")
        if not all(0 < share <= 0.5 for share in config.obama_shares) or not config.obama_shares:
            raise ValueError("obama_shares are the minority voice's shares, in (0, 0.5], got "
                             f"{config.obama_shares}")

    def setup(self, config: Config) -> str:
        return (f"Data: two voices in the plane, centres {config.separation:g} apart, "
                f"within-voice noise sd {config.noise:g}; instances Obama share in "
                f"{list(config.obama_shares)} (Trump the rest). Model: two learnable code logits "
                "(initialised equal) -> code -> MLP 2-"
                f"{config.hidden}-2 (tanh) -> output plus the known noise. Loss: unbiased energy "
                f"distance between {config.samples} batches of {config.batch} generated points "
                f"and {config.batch} data points (gk.expectation); Adam (lr {config.lr:g}), "
                f"{config.steps} steps. Methods: the noise factorial's eight cells (alpha in "
                "{0, 0.5, 1, 2} x relaxed / straight-through backward), "
                f"{', '.join(config.estimators)} at tau in {list(config.taus)}, rloo, and the "
                "exact gradient (enumerating the four pairs of codes; noise and data by "
                f"Monte Carlo). {config.seeds} seeds (paired: a seed fixes the initialisation "
                "and the data for every method)"
                + (f" and {_validation(config)} validation seeds on which each method's tau is "
                   "chosen (lowest mean energy distance to fresh data, as trained)"
                   if _validation(config) else "")
                + f". Evaluation on {config.eval_samples} outputs per seed (the energy distance "
                f"on {min(config.energy_points, config.eval_samples)} of them), with codes drawn "
                "as in training ('as trained') and with exact one-hot samples of softmax(logits) "
                f"('one-hot'); an output within {config.radius:g} of a centre is that voice, "
                "otherwise a hybrid. Mode error: total variation between the shares (Obama, "
                "Trump, hybrid) and the data's (s, 1 - s, 0); a method recovers the mixture when "
                f"its interval lies below {RECOVERED_FRACTION:g} s (half the error of collapsing "
                f"onto the majority voice); softmax-tau produces hybrids when over "
                f"{HYBRID_SHARE:g} of its outputs are hybrids; the out-of-domain cost is the "
                "paired change of softmax-tau's energy distance to the data from its own code to "
                "one-hot codes, relative to the mean with its own code, none when its 90% "
                f"interval lies within +-{OOD_MARGIN:g} (pre-registered). Intervals: "
                "95% t intervals over seeds.")

    def runs(self, config: Config) -> list[dict]:
        keys = []
        for share in config.obama_shares:
            keys += [{"obama_share": share, "method": method, "tau": tau}
                     for method in _tau_methods(config) for tau in config.taus]
            keys += [{"obama_share": share, "method": method} for method in REFERENCES]
        return keys

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        # the references have no tau (rloo ignores the one it is given)
        share, method, tau = key["obama_share"], key["method"], key.get("tau", 1.0)
        seeds = list(range(config.seeds + _validation(config)))
        params = _init_generators(seeds, config.hidden, device)
        logits = torch.zeros(len(seeds), 2, device=device, requires_grad=True)
        optimizer = torch.optim.Adam([logits, *params], lr=config.lr)
        # the same data for every method of an instance; the method's own noise
        data_gen = torch.Generator(device=device).manual_seed(int(round(1000 * share)))
        gen = torch.Generator(device=device).manual_seed(
            zlib.crc32(json.dumps(key, sort_keys=True).encode()))
        cell = CELL_OF.get(method)
        estimator = cell.estimator if cell else method

        for _ in range(config.steps):
            data = _data(config, share, (len(seeds), config.batch), data_gen)
            if method == "exact":
                loss = _exact_loss(config, params, logits, data, gen)
            else:
                def f(codes: torch.Tensor, data: torch.Tensor = data) -> torch.Tensor:
                    return _energy(_generate(config, params, codes, gen),
                                   data.expand(codes.shape[0], *data.shape))

                loss = gk.expectation(f, logits.unsqueeze(1).expand(-1, config.batch, 2),
                                      estimator, config.samples, tau, generator=gen).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        with torch.no_grad():
            batch_logits = logits.detach().unsqueeze(1).expand(-1, config.eval_samples, 2)

            def one_hot() -> torch.Tensor:
                index = gk.gumbel_max(batch_logits, generator=gen)
                return torch.nn.functional.one_hot(index, 2).to(batch_logits.dtype)

            codes = {"as_trained": (one_hot() if method in REFERENCES
                                    else gk.sample(batch_logits, estimator, tau, generator=gen)),
                     "one_hot": one_hot()}
            points = min(config.energy_points, config.eval_samples)
            shape = (len(seeds), points)
            result: dict = {"p_minority": torch.softmax(logits.detach(), 1).min(1).values.tolist(),
                            "energy_floor": _energy(_data(config, share, shape, data_gen),
                                                    _data(config, share, shape, data_gen)).tolist(),
                            "points": {}}
            data = _data(config, share, shape, data_gen)
            for generation, code in codes.items():
                outputs = _generate(config, params, code.unsqueeze(0), gen)[0]
                metrics = _shares(config, share, outputs)
                metrics["energy"] = _energy(outputs[:, :points], data)
                # rounded: float32 shares carry rounding noise of order 1e-8
                result[generation] = {k: v.double().round(decimals=6).tolist()
                                      for k, v in metrics.items()}
                result["points"][generation] = _example(outputs)
            result["points"]["data"] = _example(data)
        return result

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        test = config.seeds  # seeds 0..seeds-1 decide; the rest chose the taus
        instances = {}
        for share in config.obama_shares:
            runs = {(k["method"], k.get("tau")): r for k, r in results
                    if k["obama_share"] == share}
            methods, examples = {}, {}
            for method in [*_tau_methods(config), *REFERENCES]:
                taus = [None] if method in REFERENCES else list(config.taus)
                validation = {t: float(np.mean(runs[method, t]["as_trained"]["energy"][test:]))
                              for t in taus if t is not None and _validation(config)}
                tau = min(validation, key=validation.get) if validation else taus[0]
                run = runs[method, tau]
                errors = {g: run[g]["mode_error"][:test] for g in GENERATIONS}
                energies = {g: np.asarray(run[g]["energy"][:test]) for g in GENERATIONS}
                # energy distances relative to the mean with the training code (paired by seed)
                scale = abs(float(energies["as_trained"].mean())) or 1.0
                relative = (energies["one_hot"] / scale, energies["as_trained"] / scale)
                methods[method] = {
                    "tau": tau, "validation": {f"{t:g}": v for t, v in validation.items()},
                    "p_minority": mean_interval(run["p_minority"][:test]),
                    **{g: {m: mean_interval(run[g][m][:test]) for m in METRICS}
                       for g in GENERATIONS},
                    # one-hot codes at prediction against the codes of training (paired by seed)
                    "ood": paired_difference(*relative),
                    "ood_90": paired_difference(*relative, level=equivalence_level()),
                    "ood_mode_error": paired_difference(errors["one_hot"], errors["as_trained"]),
                    # seeds whose mode error lies below the recovery line
                    "recovered_seeds": {g: sum(e < RECOVERED_FRACTION * share for e in errors[g])
                                        for g in GENERATIONS},
                    "errors": errors["one_hot"],
                }
                if method in _shown(config):
                    examples[method] = run["points"]
            errors = {m: methods[m].pop("errors") for m in methods}
            instances[_instance(share)] = {
                "share": share, "recovered": RECOVERED_FRACTION * share, "methods": methods,
                # the noise factorial's contrasts on the one-hot mode error, paired by seed
                "contrasts": {
                    "noise, relaxed": paired_difference(errors[GS], errors[SOFTMAX]),
                    "noise, straight-through": paired_difference(errors[ST_GS], errors[ARGMAX_ST]),
                    "backward, alpha=1": paired_difference(errors[ST_GS], errors[GS]),
                },
                "energy_floor": mean_interval(runs[SOFTMAX, config.taus[0]]["energy_floor"]),
                "examples": examples,
            }
        return {"instances": instances, "seeds": config.seeds,
                "validation_seeds": _validation(config), "estimators": list(config.estimators),
                "taus": list(config.taus)}

    def verdicts(self, summary: dict) -> list[Verdict]:
        """Answer 2's three claims, each decided on its own, per instance, across instances."""
        return [self._speaker(summary), self._hybrid(summary), self._out_of_domain(summary)]

    @staticmethod
    def _at(method: str, entry: dict) -> str:
        tau = entry["tau"]
        return _display(method) + ("" if tau is None else f", tau={tau:g}")

    def _describe(self, method: str, entry: dict, generation: str, share: float,
                  seeds: int) -> str:
        """A method's outputs with the codes of ``generation``, its learned code law, and in how
        many seeds it recovers the mixture."""
        return (f"{self._at(method, entry)} {_behaviour(entry[generation], share)}, learned "
                f"minority p(code) {entry['p_minority'].format(2)}, recovered in "
                f"{entry['recovered_seeds'][generation]} of {seeds} seeds")

    def _speaker(self, summary: dict) -> Verdict:
        instances, seeds = summary["instances"], summary["seeds"]
        by_cell, parts, details = {}, [], []
        for name, inst in instances.items():
            methods, share, recovered = inst["methods"], inst["share"], inst["recovered"]
            soft, gs = methods[SOFTMAX], methods[GS]
            soft_miss = all(soft[g]["mode_error"].above(recovered) for g in GENERATIONS)
            soft_ok = any(soft[g]["mode_error"].below(recovered) for g in GENERATIONS)
            gs_error = gs["one_hot"]["mode_error"]
            by_cell[name] = (Decision.YES if soft_miss and gs_error.below(recovered)
                             else Decision.NO if soft_ok or gs_error.above(recovered)
                             else Decision.UNDECIDED)
            sampled = [GS, ST_GS, *summary["estimators"], *REFERENCES]
            parts.append(
                f"{name} (recovery line: mode error {recovered:g}): "
                + "; ".join([self._describe(SOFTMAX, soft, "as_trained", share, seeds)]
                            + [self._describe(m, methods[m], "one_hot", share, seeds)
                               for m in sampled]))
            contrasts = "; ".join(f"{k} {d.format(2)}" for k, d in inst["contrasts"].items())
            others = "; ".join(self._describe(m, methods[m], "as_trained", share, seeds)
                               for m in methods if m not in (SOFTMAX, *sampled))
            details.append(f"{name}: {contrasts}. The other cells, with the codes they were "
                           f"trained on (their own noise scale): {others}.")
        decision, where = across(by_cell)
        first = next(iter(instances.values()))
        answer = (f"The claim {decision.word} ({where}). With its own constant code "
                  "softmax-tau, and with one-hot samples of the learned softmax(logits) every "
                  "sampling method: " + ". ".join(parts) + f". {summary['seeds']} held-out seeds.")
        detail = (
            "Decided per instance: the claim holds when softmax-tau's mode error lies above the "
            "recovery line both with its own code and with one-hot codes while Gumbel-Softmax's "
            "(one-hot samples; the answer's method) lies below it; it fails when softmax-tau "
            "gets below the line or Gumbel-Softmax stays above it. 'Recovers' reads the interval "
            "as the decision does; the other words (collapses, hybrids, over- or "
            "under-represents) describe the means. "
            + ("Each tau was chosen on the validation seeds. " if summary["validation_seeds"]
               else "One tau: none was chosen. ")
            + "Noise factorial, the paired difference of one-hot "
            "mode errors (what the noise does: alpha=1 minus alpha=0 at each backward; what the "
            "backward does: straight-through minus relaxed at alpha=1; negative: closer to the "
            "data): "
            + " ".join(details) + " rloo and the exact gradient draw the same one-hot samples "
            "as st-gs with an unbiased or exact gradient: where they recover the mixture and "
            "st-gs does not, the failure is the straight-through gradient's, not the sample's.")
        soft, gs = first["methods"][SOFTMAX], first["methods"][GS]
        return Verdict(decision, answer, detail, claims=(SPEAKER,),
                       number=f"{next(iter(instances))}: softmax-tau mode error "
                              f"{soft['as_trained']['mode_error'].format(2)}, gs "
                              f"{gs['one_hot']['mode_error'].format(2)}")

    def _hybrid(self, summary: dict) -> Verdict:
        instances = summary["instances"]
        by_cell, parts = {}, []
        for name, inst in instances.items():
            soft = inst["methods"][SOFTMAX]
            by_cell[name] = Decision.above(soft["as_trained"]["hybrid"], HYBRID_SHARE)
            parts.append(f"{name}: {self._at(SOFTMAX, soft)} "
                         f"{_behaviour(soft['as_trained'], inst['share'])}")
        decision, where = across(by_cell)
        first = next(iter(instances))
        return Verdict(
            decision,
            f"The claim {decision.word} ({where}). With the constant code it was trained on, "
            "the softmax-tau generator's outputs: " + "; ".join(parts)
            + f". {summary['seeds']} held-out seeds.",
            f"The claim holds in an instance when the share of hybrid outputs (farther than the "
            f"radius from both voices) lies above {HYBRID_SHARE:g}, and fails when it lies "
            "below. A constant code gives one output law, a single blob; which blob the loss "
            "prefers is the loss's geometry: under the energy distance the best single location "
            "minimises E|x - Y|, the data's geometric median, which lies inside the majority "
            "voice; under squared error, or a Gaussian-kernel MMD much wider than the voices' "
            "distance, it is near the mean, between the voices (a hybrid).",
            number=f"{first}: hybrid share "
                   f"{instances[first]['methods'][SOFTMAX]['as_trained']['hybrid'].format(2)}",
            claims=(HYBRID,))

    def _out_of_domain(self, summary: dict) -> Verdict:
        instances = summary["instances"]
        by_cell, parts = {}, []
        for name, inst in instances.items():
            soft, gs = inst["methods"][SOFTMAX], inst["methods"][GS]
            change = soft["ood"]
            by_cell[name] = (
                Decision.YES if change.above(OOD_MARGIN)
                else Decision.NO if change.below(-OOD_MARGIN)
                or Decision.within(soft["ood_90"], -OOD_MARGIN, OOD_MARGIN) is Decision.YES
                else Decision.UNDECIDED)
            parts.append(f"{name}: {change.format(2)} (mode error "
                         f"{soft['ood_mode_error'].format(2)}; {self._at(SOFTMAX, soft)}), against "
                         f"{gs['ood'].format(2)} (mode error {gs['ood_mode_error'].format(2)}) for "
                         f"{self._at(GS, gs)}")
        decision, where = across(by_cell)
        first = next(iter(instances))
        return Verdict(
            decision,
            f"The claim {decision.word} ({where}). Predicting with one-hot codes "
            "(samples of the learned softmax(logits)), which a softmax-tau generator never saw "
            "in training, instead of its own constant code changes the energy distance of its "
            "outputs to the data by (one-hot minus own code, as a share of the own code's; "
            "positive: worse) " + "; ".join(parts)
            + f". {summary['seeds']} held-out seeds.",
            "Decided per instance on softmax-tau's paired change of the energy distance of its "
            "outputs to the data, relative to the mean with its own code: the claim holds "
            f"when it lies above {OOD_MARGIN:g} (pre-registered margin), fails when it lies "
            f"below -{OOD_MARGIN:g} or when its 90% interval lies within +-{OOD_MARGIN:g} (an "
            "equivalence test: no out-of-domain cost), and is undecided otherwise. A generator "
            "that ignores its constant code gives the same outputs for any code, so one-hot "
            "codes cost nothing more than the constant code already does.",
            number=f"{first}: relative change of energy distance "
                   f"{instances[first]['methods'][SOFTMAX]['ood'].format(2)}",
            claims=(OUT_OF_DOMAIN,))

    def tables(self, summary: dict) -> list[Table]:
        rows, factorial, contrasts, validation = [], [], [], []
        for name, inst in summary["instances"].items():
            for method, entry in inst["methods"].items():
                rows.append([name, _display(method),
                             "" if entry["tau"] is None else f"{entry['tau']:g}",
                             *(entry[g][m] for g in GENERATIONS for m in (*SHARES, "mode_error")),
                             entry["one_hot"]["energy"], entry["p_minority"]])
                if entry["validation"]:
                    validation.append([name, _display(method),
                                       *(f"{v:.3g}" for v in entry["validation"].values()),
                                       f"{entry['tau']:g}"])
            for generation in GENERATIONS:
                for backward in ("relaxed", "straight-through"):
                    cells = [c for c in CELLS if c.backward == backward]
                    factorial.append([name, generation.replace("_", " "), backward,
                                      *(inst["methods"][m][generation]["mode_error"]
                                        for m in [c.label for c in cells] + list(REFERENCES))])
            contrasts.append([name, *inst["contrasts"].values()])
        alphas = [f"alpha={c.alpha:g}" for c in CELLS if c.backward == "relaxed"]
        columns = [f"{m} ({g.replace('_', ' ')})" for g in GENERATIONS
                   for m in ("Obama", "Trump", "hybrid", "mode error")]
        tables = [
            Table(["instance", "method", "tau", *columns, "energy distance (one-hot)",
                   "learned minority p(code)"], rows,
                  f"Shares of outputs near each voice and hybrid, and the mode error, with codes "
                  f"as trained and one-hot, at each method's validated tau; mean [95% t "
                  f"interval] over {summary['seeds']} held-out seeds. Energy distance between "
                  "two data samples of the same size (the floor): "
                  + "; ".join(f"{name} {inst['energy_floor'].format(2)}"
                              for name, inst in summary["instances"].items()) + "."),
            Table(["instance", "codes", "backward", *alphas, *REFERENCES], factorial,
                  "Noise factorial: mode error of each cell (alpha = 0 relaxed is softmax-tau, "
                  "alpha = 1 relaxed gs, alpha = 0 straight-through argmax-st, alpha = 1 "
                  "straight-through st-gs), beside the references (the same in both backward "
                  "rows), with the codes of training and with one-hot samples of "
                  "softmax(logits) (the law of training only at alpha = 1: alpha scales the "
                  "noise, so other cells sample softmax(logits / alpha)); mean [95% t "
                  "interval]."),
            Table(["instance", *next(iter(summary["instances"].values()))["contrasts"]],
                  contrasts,
                  "Factorial contrasts, paired by seed, of the one-hot mode error: the noise "
                  "(alpha=1 minus alpha=0) at each backward, the backward (straight-through "
                  "minus relaxed) at alpha=1; mean [95% t interval]."),
        ]
        if validation:
            tables.append(Table(["instance", "method",
                                 *(f"tau={t:g}" for t in summary["taus"]), "chosen tau"],
                                validation,
                                f"Mean energy distance to fresh data (as trained) on the "
                                f"{summary['validation_seeds']} validation seeds, which choose "
                                "each method's tau."))
        return tables

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        name, inst = next(iter(summary["instances"].items()))
        examples = inst["examples"]
        shown = [m for m in inst["methods"] if m in examples]
        fig, axes = plt.subplots(2, len(shown) + 1, figsize=(2.3 * (len(shown) + 1), 4.8),
                                 sharex=True, sharey=True, squeeze=False)
        data = np.asarray(examples[SOFTMAX]["data"])
        for row, generation in enumerate(GENERATIONS):
            axes[row, 0].scatter(data[:, 0], data[:, 1], s=4, color="black")
            axes[row, 0].set_title("data", fontsize=8)
            axes[row, 0].set_ylabel(generation.replace("_", " ") + " codes", fontsize=8)
            for col, method in enumerate(shown, 1):
                points = np.asarray(examples[method][generation])
                axes[row, col].scatter(points[:, 0], points[:, 1], s=4)
                axes[row, col].set_title(self._at(method, inst["methods"][method]), fontsize=7)
        for ax in axes.flat:
            ax.tick_params(labelsize=7)
        return [Figure(save(fig, directory, "e5_outputs.png"),
                       f"{name}, seed 0: generated outputs next to the data (left; Obama on the "
                       "left, Trump on the right). Top: codes drawn as each method draws them "
                       "in training; bottom: one-hot samples of softmax(logits).")]


EXPERIMENT = ConditionalGeneration()
