"""E5. Conditional generation ("Obama/Trump"): does a noise-free softmax code lose the voices?

Measured: the data are two well-separated "voices" in the plane, Obama with probability 0.3 and
Trump with 0.7 (isotropic Gaussian clusters). A model draws a two-category code from learnable
logits through an estimator (``gk.sample``), feeds it to a small generator MLP, and adds the
voices' known within-cluster noise. Nothing else is random, so the only way to produce two voices
is the code. The model is trained to match the data distribution with the energy distance between a
generated batch and a data batch (a sample-based distribution loss: no encoder, no pairing).

After training, outputs are generated twice: with codes drawn the way the estimator draws them
("as trained": the constant softmax(logits/tau) for softmax-tau, relaxed samples for gs, one-hot
samples for the straight-through estimators) and with exact one-hot codes drawn from
softmax(logits) ("one-hot"). Each output is near Obama, near Trump (within ``radius`` of a voice's
centre) or a hybrid (far from both). The mode error is the total-variation distance between these
three shares and the data's (0.3, 0.7, 0); a model that collapses onto the majority voice has mode
error 0.3, an all-hybrid model 1.0. Also reported: the learned probability of the minority code and
the energy distance of the outputs to fresh data. Intervals are 95% t intervals over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import gumbelkit as gk

from ..harness.plotting import plt, save
from ..harness.protocol import Claim, ExperimentConfig, Figure, Table, Verdict
from ..harness.statistics import Decision, Interval, mean_interval, paired_difference
from .base import LabExperiment

RECOVERED = 0.15  # mode error below this: closer to the data's shares than to a collapsed model
GENERATIONS = ("as_trained", "one_hot")
SHARES = ("obama", "trump", "hybrid")
EXAMPLE_POINTS = 250  # outputs of seed 0 kept for the figure


@dataclass
class Config(ExperimentConfig):
    seeds: int = 10
    estimators: tuple[str, ...] = ("softmax", "gs", "st-gs", "reinmax")
    taus: tuple[float, ...] = (0.5, 1.0)
    # seeds on which the Gumbel-Softmax's tau is chosen, apart from those the verdict is measured
    # on (only when there is a tau to choose)
    validation_seeds: int = 3
    obama_share: float = 0.3
    separation: float = 4.0  # distance between the two voices' centres
    noise: float = 0.25  # within-voice standard deviation (data and generator)
    radius: float = 1.0  # an output within this distance of a centre is that voice
    hidden: int = 16
    steps: int = 300
    batch: int = 128
    lr: float = 0.05
    eval_samples: int = 1000

    @classmethod
    def full(cls) -> Config:
        return cls(seeds=20, estimators=("softmax", "gs", "st-gs", "reinmax", "gr"),
                   taus=(0.25, 0.5, 1.0, 2.0), steps=1500, batch=256, eval_samples=4000,
                   validation_seeds=10)

    @classmethod
    def tiny(cls) -> Config:
        return cls(seeds=2, taus=(1.0,), steps=20, batch=32, eval_samples=200)


def _centres(config: Config, device: torch.device) -> torch.Tensor:
    """Obama's centre (row 0) and Trump's (row 1)."""
    half = config.separation / 2
    return torch.tensor([[-half, 0.0], [half, 0.0]], device=device)


def _data(config: Config, n: int, gen: torch.Generator) -> torch.Tensor:
    device = gen.device
    trump = (torch.rand(n, generator=gen, device=device) >= config.obama_share).long()
    noise = torch.randn(n, 2, generator=gen, device=device)
    return _centres(config, device)[trump] + config.noise * noise


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances through one matrix product (small tensors: fast on CPU)."""
    squared = (x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2 * x @ y.T
    return squared.clamp_min(1e-12).sqrt()


def _energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples (V-statistic)."""
    return 2 * _distances(x, y).mean() - _distances(x, x).mean() - _distances(y, y).mean()


def _shares(config: Config, outputs: torch.Tensor) -> dict[str, float]:
    """Shares of outputs near Obama, near Trump, and hybrid; the mode error against the data."""
    near = _distances(outputs, _centres(config, outputs.device)) < config.radius
    shares = {"obama": near[:, 0].float().mean().item(), "trump": near[:, 1].float().mean().item(),
              "hybrid": (~near.any(1)).float().mean().item()}
    target = {"obama": config.obama_share, "trump": 1 - config.obama_share, "hybrid": 0.0}
    shares["mode_error"] = 0.5 * sum(abs(shares[k] - target[k]) for k in SHARES)
    return shares


def _name(estimator: str, tau: float) -> str:
    return f"{estimator}, tau={tau:g}"


class ConditionalGeneration(LabExperiment):
    id = "E5"
    title = "Conditional generation: a sampled code vs a constant softmax code (Obama/Trump)"
    claim_summary = (
        "A softmax code is a constant mixture the generator cannot use, so it misses the "
        "0.7/0.3 modes, while a sampled code recovers them."
    )
    claims = (
        Claim("Suppose there is a network needing a sample but not a distribution of a "
              "categorical variable, e.g. a network need a categorical variable representing "
              "whose speech I wanna generate: Obama or Trump. Say 70% of the chance the training "
              "data is from Trump and 30% of time is from Obama, Then 70% of time the variable "
              "should be [0 1] and 30 % of time should be [1 0]. If we use softmax here instead, "
              "the variable will always be about [0.3 0.7], thus it becomes a constant, so it can "
              "be ignored by the network. To mitigate the training loss penalty, the resulting "
              "network is very probable to produce the hybrid sound a bit like Obama and a bit "
              "more like Trump.", "answer 2",
              "A softmax code is a constant mixture the generator cannot use, so it misses the "
              "0.7/0.3 voices, while a sampled code recovers them."),
        Claim("What's more [0.7 0.3] during training is never used during predicting, this is "
              "also a problem about out-of-domain prediction.", "answer 2",
              "A softmax-trained generator meets one-hot codes at prediction time as "
              "out-of-domain inputs."),
    )
    config_class = Config
    threads = 1  # tiny tensors: extra threads only add synchronisation

    def setup(self, config: Config) -> str:
        return (f"Data: two voices in the plane, centres {config.separation:g} apart, "
                f"within-voice noise sd {config.noise:g}, Obama with probability "
                f"{config.obama_share:g} and Trump with {1 - config.obama_share:g}. Model: two "
                "learnable code logits (initialised equal) -> code via gk.sample(estimator, tau) "
                f"-> MLP 2-{config.hidden}-2 (tanh) -> output plus the known noise. Loss: energy "
                f"distance between {config.batch} generated and {config.batch} data points; Adam "
                f"(lr {config.lr:g}), {config.steps} steps. Estimators "
                f"{', '.join(config.estimators)} at tau in {list(config.taus)}, {config.seeds} "
                "seeds (paired: a seed fixes the initialisation for every estimator), and "
                f"{config.validation_seeds if len(config.taus) > 1 else 0} more on which "
                "Gumbel-Softmax's tau is chosen (its lowest mean one-hot mode error), apart from "
                "the seeds the verdict is measured on. Evaluation "
                f"on {config.eval_samples} outputs generated with codes drawn as each estimator "
                "draws them ('as trained') and with exact one-hot codes from softmax(logits) "
                f"('one-hot'); an output within {config.radius:g} of a centre is that voice, "
                "otherwise a hybrid. Mode error: total variation between the shares "
                f"(Obama, Trump, hybrid) and ({config.obama_share:g}, "
                f"{1 - config.obama_share:g}, 0); the voices are recovered when its interval lies "
                f"below {RECOVERED:g} (half the error of collapsing onto the majority voice). "
                "Intervals: 95% t intervals over seeds.")

    def runs(self, config: Config) -> list[dict]:
        validation = config.validation_seeds if len(config.taus) > 1 else 0
        return [{"estimator": estimator, "tau": tau, "seed": seed}
                for estimator in config.estimators for tau in config.taus
                for seed in range(config.seeds + validation)]

    def run(self, config: Config, key: dict, device: torch.device) -> dict:
        estimator, tau, seed = key["estimator"], key["tau"], key["seed"]
        torch.manual_seed(seed)
        generator = torch.nn.Sequential(
            torch.nn.Linear(2, config.hidden), torch.nn.Tanh(), torch.nn.Linear(config.hidden, 2),
        ).to(device)
        logits = torch.zeros(2, device=device, requires_grad=True)
        gen = torch.Generator(device=device).manual_seed(seed)
        optimizer = torch.optim.Adam([logits, *generator.parameters()], lr=config.lr)

        def generate(codes: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(codes.shape[0], 2, generator=gen, device=device)
            return generator(codes) + config.noise * noise

        for _ in range(config.steps):
            codes = gk.sample(logits.expand(config.batch, 2), estimator, tau, generator=gen)
            loss = _energy_distance(generate(codes), _data(config, config.batch, gen))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        n = config.eval_samples
        result: dict = {"p_minority": torch.softmax(logits.detach(), 0).min().item()}
        with torch.no_grad():
            batch_logits = logits.expand(n, 2)
            codes = {"as_trained": gk.sample(batch_logits, estimator, tau, generator=gen),
                     "one_hot": torch.nn.functional.one_hot(
                         gk.gumbel_max(batch_logits, generator=gen), 2).float()}
            for generation, code in codes.items():
                outputs = generate(code)
                metrics = _shares(config, outputs)
                metrics["energy"] = _energy_distance(outputs, _data(config, n, gen)).item()
                result[generation] = metrics
                if seed == 0:
                    points = outputs[:EXAMPLE_POINTS].cpu().numpy().round(3)
                    result[f"{generation}_points"] = points.tolist()
            result["energy_floor"] = _energy_distance(_data(config, n, gen),
                                                      _data(config, n, gen)).item()
            if seed == 0:
                data = _data(config, EXAMPLE_POINTS, gen).cpu().numpy().round(3)
                result["data_points"] = data.tolist()
        return result

    def summarize(self, config: Config, results: list[tuple[dict, dict]]) -> dict:
        by_setting: dict[str, list[tuple[int, dict]]] = {}
        validation: dict[float, list[float]] = {}
        for key, result in results:
            if key["seed"] >= config.seeds:  # a validation seed: it only chooses gs's tau
                if key["estimator"] == "gs":
                    validation.setdefault(key["tau"], []).append(result["one_hot"]["mode_error"])
                continue
            by_setting.setdefault(_name(key["estimator"], key["tau"]), []).append(
                (key["seed"], result))
        gs_tau = (min(validation, key=lambda t: np.mean(validation[t])) if validation
                  else config.taus[0])
        settings, examples = {}, {}
        for name, seeded in by_setting.items():
            seeded.sort(key=lambda item: item[0])
            rows = [r for _, r in seeded]
            entry = {"p_minority": mean_interval([r["p_minority"] for r in rows]),
                     # one-hot codes against the codes it was trained on: how much worse the
                     # outputs get, in energy distance to the data, when the codes of
                     # prediction are not those of training
                     "one_hot_minus_as_trained": paired_difference(
                         [r["one_hot"]["energy"] for r in rows],
                         [r["as_trained"]["energy"] for r in rows])}
            for generation in GENERATIONS:
                entry[generation] = {
                    metric: mean_interval([r[generation][metric] for r in rows])
                    for metric in (*SHARES, "mode_error", "energy")}
            settings[name] = entry
            if seeded[0][0] == 0:
                examples[name] = {g: rows[0][f"{g}_points"] for g in GENERATIONS}
                examples["data"] = rows[0]["data_points"]
        softmax_minus_gs = {}
        for tau in config.taus:
            soft, gs = by_setting.get(_name("softmax", tau)), by_setting.get(_name("gs", tau))
            if soft and gs:
                softmax_minus_gs[f"{tau:g}"] = paired_difference(
                    [r["one_hot"]["mode_error"] for _, r in sorted(soft, key=lambda s: s[0])],
                    [r["one_hot"]["mode_error"] for _, r in sorted(gs, key=lambda s: s[0])],
                )
        floor = mean_interval([r["energy_floor"] for _, r in results])
        return {"settings": settings, "softmax_minus_gs_one_hot": softmax_minus_gs,
                "gs_tau": gs_tau, "validation_seeds": len(next(iter(validation.values()), [])),
                "energy_floor": floor, "examples": examples, "seeds": config.seeds,
                "obama_share": config.obama_share, "estimators": list(config.estimators),
                "taus": list(config.taus)}

    def verdicts(self, summary: dict) -> list[Verdict]:
        """Answer 2's two claims (the same author): the constant code and its hybrid, and the
        out-of-domain code at prediction time, each decided on its own."""
        return [self._constant_code(summary), self._out_of_domain(summary)]

    def _out_of_domain(self, summary: dict) -> Verdict:
        settings, taus = summary["settings"], summary["taus"]
        gaps = {tau: settings[_name("softmax", tau)]["one_hot_minus_as_trained"] for tau in taus}
        gs_gaps = {tau: settings[_name("gs", tau)]["one_hot_minus_as_trained"] for tau in taus}
        decision = Decision.all_of(Decision.above(gap) for gap in gaps.values())
        return Verdict(
            decision,
            "Predicting with one-hot codes, which a softmax-tau generator never saw in training, "
            "changes the energy distance of its outputs to the data by "
            + "; ".join(f"tau={t:g}: {g.format(2)}" for t, g in gaps.items())
            + " (positive: worse than with its own training code), against "
            + "; ".join(f"tau={t:g}: {g.format(2)}" for t, g in gs_gaps.items())
            + " for Gumbel-Softmax, whose training codes are samples.",
            "The claim holds when, at every tau, the paired difference (one-hot codes minus the "
            "training code) of softmax-tau's energy distance lies above 0, and fails when it "
            "lies below 0 at some tau.",
            number="; ".join(f"tau={t:g}: {g.format(2)}" for t, g in gaps.items()),
            claims=self.claims[1:])

    def _constant_code(self, summary: dict) -> Verdict:
        settings = summary["settings"]
        taus = summary["taus"]

        def error(name: str, generation: str) -> Interval:
            return settings[name][generation]["mode_error"]

        softmax = [_name("softmax", tau) for tau in taus]
        # softmax-tau fails when its outputs miss the shares however its codes are drawn
        soft_fail = all(error(n, g).above(RECOVERED) for n in softmax for g in GENERATIONS)
        soft_ok = any(error(n, g).below(RECOVERED) for n in softmax for g in GENERATIONS)
        gs = _name("gs", summary["gs_tau"])  # its tau chosen on the validation seeds
        gs_ok = error(gs, "one_hot").below(RECOVERED)
        gs_fail = all(error(_name("gs", tau), "one_hot").above(RECOVERED) for tau in taus)
        decision = (Decision.YES if soft_fail and gs_ok else Decision.NO if soft_ok or gs_fail
                    else Decision.UNDECIDED)

        worst = max(softmax, key=lambda n: error(n, "as_trained").estimate)
        trained = settings[worst]["as_trained"]
        shares = {k: trained[k] for k in SHARES}
        collapsed = max(shares["obama"].estimate, shares["trump"].estimate)
        behaviour = ("collapses onto a single voice rather than a hybrid"
                     if collapsed > shares["hybrid"].estimate else "produces hybrid outputs")
        gs_one_hot = settings[gs]["one_hot"]
        others = [_name(e, t) for e in summary["estimators"] if e not in ("softmax", "gs")
                  for t in taus]
        others_ok = [n for n in others if error(n, "one_hot").below(RECOVERED)]
        others_text = "; ".join(
            f"{n}: Obama {settings[n]['one_hot']['obama'].format(2)}, "
            f"mode error {error(n, 'one_hot').format(2)}" for n in others)
        answer = (
            f"Softmax-tau {'misses' if not soft_ok else 'does not always miss'} the "
            f"{1 - summary['obama_share']:g}/{summary['obama_share']:g} voices: with {worst} the "
            f"outputs are {shares['obama'].format(2)} near Obama (data "
            f"{summary['obama_share']:g}), {shares['trump'].format(2)} near Trump and "
            f"{shares['hybrid'].format(2)} hybrids, i.e. it {behaviour} (mode error "
            f"{error(worst, 'as_trained').format(2)} as trained, "
            f"{error(worst, 'one_hot').format(2)} with one-hot codes). Gumbel-Softmax "
            f"{'recovers' if gs_ok else 'does not clearly recover'} both voices ({gs}, one-hot "
            f"codes): Obama {gs_one_hot['obama'].format(2)}, hybrids "
            f"{gs_one_hot['hybrid'].format(2)}, learned minority code "
            f"probability {settings[gs]['p_minority'].format(2)}, mode error "
            f"{error(gs, 'one_hot').format(2)}; with its own relaxed codes "
            f"{settings[gs]['as_trained']['hybrid'].format(2)} of its outputs "
            f"are hybrids. The straight-through Gumbel estimators recover the voices in "
            f"{len(others_ok)} of {len(others)} settings ({others_text}). "
            f"{summary['seeds']} seeds, 95% t intervals."
        )
        diffs = "; ".join(f"tau={tau}: {d.format(2)}"
                          for tau, d in summary["softmax_minus_gs_one_hot"].items())
        detail = (f"The claim holds when the mode error of softmax-tau lies above {RECOVERED:g} at "
                  "every tau, both as trained and with one-hot codes, while that of Gumbel-Softmax "
                  f"(its best tau, one-hot codes) lies below {RECOVERED:g}; it fails when softmax "
                  f"gets below {RECOVERED:g} anywhere or Gumbel-Softmax stays above it at every "
                  f"tau. Paired difference of one-hot mode errors, softmax minus gs: {diffs}. "
                  "Whether a constant code gives a hybrid or a single voice depends on the loss: "
                  "the best single output under the energy distance is the geometric median of the "
                  "data, inside the majority voice, while under squared error (or a "
                  "Gaussian-kernel MMD much wider than the voices' distance) it is near the mean, "
                  "between them.")
        return Verdict(decision, answer, detail, claims=self.claims[:1],
                       number=f"softmax mode error {error(worst, 'as_trained').format(2)}, gs "
                              f"{error(gs, 'one_hot').format(2)}")

    def tables(self, summary: dict) -> list[Table]:
        rows = []
        for name, entry in summary["settings"].items():
            for generation in GENERATIONS:
                m = entry[generation]
                rows.append([name, generation.replace("_", " "),
                             *(m[k].format(2) for k in SHARES),
                             m["mode_error"].format(2),
                             m["energy"].format(2),
                             entry["p_minority"].format(2)])
        floor = summary["energy_floor"].format(2)
        return [Table(["estimator", "codes at generation", "near Obama", "near Trump", "hybrid",
                       "mode error", "energy distance", "learned minority p(code)"], rows,
                      f"Data: Obama {summary['obama_share']:g}, Trump "
                      f"{1 - summary['obama_share']:g}, hybrid 0. Energy distance between two "
                      f"data samples of the same size (the floor): {floor}. Mean [95% CI] over "
                      f"{summary['seeds']} seeds.")]

    def figures(self, summary: dict, directory: Path) -> list[Figure]:
        examples = summary["examples"]
        names = [n for n in summary["settings"] if n in examples]
        fig, axes = plt.subplots(2, len(names) + 1, figsize=(2.3 * (len(names) + 1), 4.8),
                                 sharex=True, sharey=True, squeeze=False)
        data = np.asarray(examples["data"])
        for row, generation in enumerate(GENERATIONS):
            axes[row, 0].scatter(data[:, 0], data[:, 1], s=4, color="black")
            axes[row, 0].set_title("data", fontsize=8)
            axes[row, 0].set_ylabel(generation.replace("_", " ") + " codes", fontsize=8)
            for col, name in enumerate(names, 1):
                points = np.asarray(examples[name][generation])
                axes[row, col].scatter(points[:, 0], points[:, 1], s=4)
                axes[row, col].set_title(name, fontsize=8)
        for ax in axes.flat:
            ax.tick_params(labelsize=7)
        return [Figure(save(fig, directory, "e5_outputs.png"),
                       "Seed 0: generated outputs next to the data (left; Obama on the left, "
                       "Trump on the right). Top: codes drawn as each estimator draws them; "
                       "bottom: exact one-hot codes from softmax(logits).")]


EXPERIMENT = ConditionalGeneration()
