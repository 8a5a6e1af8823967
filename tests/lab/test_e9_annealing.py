"""E9: smoke test at the tiny budget, the schedule, the choice of the best constant on validation
seeds and images, and each verdict every way it can come out."""

from __future__ import annotations

import pytest
import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e9_annealing import (
    ANNEALED,
    EXPERIMENT,
    MARGIN,
    Config,
    mean_max_q,
    noise_effect,
    sharpened,
)

from .helpers import run_tiny


def test_e9_runs_end_to_end(tmp_path, fashion_dir):
    summary = run_tiny(EXPERIMENT, tmp_path, data_dir=str(fashion_dir))
    assert set(summary["annealing"]) == {"gs, L x C = 4x4", "gs, L x C = 2x2"}
    gs = summary["annealing"]["gs, L x C = 4x4"]
    assert set(gs["schedules"]) == {"tau=0.5", "tau=1", "annealed"}
    assert gs["best_constant"] in (0.5, 1.0) and gs["annealed_minus_best"].n == 2
    noise = summary["noise"]["4x4"]
    assert summary["noise_taus"] == [0.5, 1.0] and len(noise["trained"]) == 2
    assert len(noise["lower_minus_higher"]) == 1
    assert 0.25 <= noise["max_q"].estimate <= 1  # at least 1/C, at most 1
    assert summary["margin"] == MARGIN


def test_e9_schedule_reaches_tau_min_at_the_set_fraction():
    config = Config(steps=300, anneal_fraction=0.6, anneal_every=1)
    schedule = config.schedule()
    assert schedule(0) == 1.0
    assert schedule(179) > 0.5 and schedule(180) == pytest.approx(0.5)
    assert config.final_tau() == 0.5
    assert config.noise_grid() == sorted({*config.noise_taus, 0.5, 1.0})


def test_e9_checks_its_fields():
    for bad in ("8", "8x0", "8x4x2"):
        with pytest.raises(ValueError, match="codes"):
            EXPERIMENT.check(EXPERIMENT.make_config("tiny", codes=(bad,)))
    with pytest.raises(ValueError, match="need gs"):
        EXPERIMENT.check(EXPERIMENT.make_config("tiny", estimators=("st-gs",)))


def test_the_noise_effect_tends_to_one_minus_max_q_as_tau_falls():
    """At tau -> 0 both codes are one-hot and differ exactly when argmax(z + g) != argmax(z),
    which has probability 1 - max q; 20,000 draws give a standard error below 0.004 (binomial,
    p(1 - p) <= 1/4), so 0.02 is over 5 standard errors."""
    probabilities = torch.tensor([0.9, 0.05, 0.05])
    logits = probabilities.log().expand(20_000, 3)
    effect = noise_effect(logits, 0.01, torch.Generator().manual_seed(0))
    assert effect == pytest.approx(0.1, abs=0.02)
    # and to 0 as tau grows: both codes approach the uniform vector
    assert noise_effect(logits, 1000.0, torch.Generator().manual_seed(0)) < 1e-3
    assert gk.softmax_t(logits, 1000.0)[0].max() < 0.34


def test_the_best_constant_is_chosen_on_validation_seeds_and_images():
    config = EXPERIMENT.make_config("tiny", codes=("4x4",))
    keys = EXPERIMENT.runs(config)
    held = [k for k in keys if k["seed"] >= config.seeds]
    assert {k["seed"] for k in held} == set(range(config.seeds,
                                                  config.seeds + config.validation_seeds))
    assert {k["schedule"] for k in held} == set(config.taus)  # no annealed runs there
    assert len(keys) == len(held) + config.seeds * (len(config.taus) + 1)
    # the validation seeds' validation images favour tau=1, the measured seeds favour tau=0.5
    results = []
    for key in keys:
        if key in held:
            results.append((key, {"validation_elbo": 90.0 if key["schedule"] == 0.5 else 80.0}))
            continue
        elbo = {0.5: 70.0, 1.0: 75.0, ANNEALED: 74.5}[key["schedule"]] + key["seed"]
        result = {"discrete_elbo": elbo, "iw_bound": 60.0, "kl": 3.0, "data": "d"}
        if key["schedule"] == ANNEALED:
            grid = len(config.noise_grid())
            result.update(noise_trained=[0.1] * grid, noise_initial=[0.2] * grid,
                          max_q_trained=0.9, max_q_initial=0.3)
            for q in config.converged_max_q:
                result.update({f"noise_sharpened_{q:g}": [0.05] * grid,
                               f"max_q_sharpened_{q:g}": q})
        results.append((key, result))
    cell = EXPERIMENT.summarize(config, results)["annealing"]["gs, L x C = 4x4"]
    assert cell["best_constant"] == 1.0
    assert cell["annealed_minus_best"].estimate == pytest.approx(-0.5)


def _interval(estimate: float, half_width: float, n: int = 10) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, n)


def _annealing_cell(gain: float, half_width: float) -> dict:
    """Annealed minus best constant = gain nats (interval +-half_width; TOST +-0.8 of it)."""
    schedule = {m: _interval(80.0, 1.0) for m in ("discrete_elbo", "iw_bound", "kl")}
    return {"schedules": {"tau=0.5": schedule, "tau=1": schedule, "annealed": schedule},
            "best_constant": 0.5, "annealed_minus_best": _interval(gain, half_width),
            "annealed_minus_best_tost": _interval(gain, 0.8 * half_width)}


def _noise_code(changes: list[float], sharpened: list[float] | None = None) -> dict:
    """The noise effect when tau falls from each grid value to the next lower one (+-0.01), on
    the trained encoders and (``sharpened``) on them sharpened to max q 0.99."""
    curve = [_interval(0.3, 0.01)] * (len(changes) + 1)
    entry = {"trained": curve, "initial": curve, "max_q": _interval(0.75, 0.01),
             "max_q_initial": _interval(0.3, 0.01),
             "lower_minus_higher": [_interval(c, 0.01) for c in changes], "sharpened": {}}
    if sharpened:
        entry["sharpened"]["0.99"] = {"curve": curve, "max_q": _interval(0.99, 0.001),
                                      "lower_minus_higher": [_interval(c, 0.01)
                                                             for c in sharpened]}
    return entry


def _summary(gains: dict[str, tuple[float, float]], changes: dict[str, list[float]]) -> dict:
    taus = [0.25, 0.5, 1.0, 2.0][:len(next(iter(changes.values()))) + 1]
    return {"data": "Fashion-MNIST (14x14, average-pooled)", "seeds": 10, "steps": 400,
            "margin": MARGIN, "tau0": 1.0, "tau_min": 0.5, "final_tau": 0.5, "noise_taus": taus,
            "annealing": {f"gs, L x C = {code}": _annealing_cell(*gain)
                          for code, gain in gains.items()},
            "noise": {code: _noise_code(*c) if isinstance(c, tuple) else _noise_code(c)
                      for code, c in changes.items()}}


def verdicts(gains: dict[str, tuple[float, float]], changes: dict[str, list[float]] | None = None):
    """The two verdicts: answer 2's annealing claim, answer 4's noise claim."""
    annealing, noise = EXPERIMENT.verdicts(_summary(gains, changes or {"8x4": [-0.05, -0.05]}))
    assert annealing.claims == EXPERIMENT.claims[:1] and noise.claims == EXPERIMENT.claims[1:]
    return annealing, noise


def test_e9_annealing_holds_when_better_by_more_than_the_margin_everywhere():
    annealing, _ = verdicts({"8x4": (-2.75, 0.5), "16x2": (-3.5, 0.5)})
    assert annealing.decision is Decision.YES and "in every cell of the grid" in annealing.answer
    assert "-2.75" in annealing.answer and "annealing better" in annealing.answer


def test_e9_annealing_fails_when_worse():
    annealing, _ = verdicts({"8x4": (1.5, 0.5), "16x2": (2.5, 0.5)})
    assert annealing.decision is Decision.NO and "annealing worse" in annealing.answer


def test_e9_annealing_the_same_as_a_constant_within_the_margin_is_not_needed():
    annealing, _ = verdicts({"8x4": (0.1, 0.3), "16x2": (-0.4, 0.3)})
    assert annealing.decision is Decision.NO
    assert annealing.answer.count("the same within the margin") == 2


def test_e9_annealing_inconclusive_on_a_wide_tie():
    annealing, _ = verdicts({"8x4": (0.25, 1.5), "16x2": (0.1, 0.3)})
    assert annealing.decision is Decision.UNDECIDED
    assert "not shown the same" in annealing.answer


def test_e9_annealing_depends_on_the_latent_code():
    annealing, _ = verdicts({"8x4": (-2.75, 0.5), "16x2": (0.1, 0.3)})
    assert annealing.decision is Decision.DEPENDS
    assert "it holds in gs, L x C = 8x4; it does not hold in gs, L x C = 16x2" in annealing.answer


def test_e9_noise_claim_every_way():
    """The claim is decided on the annealing's range, tau0=1 -> tau_min=0.5 (the grid's second
    pair; the first, 0.5 -> 0.25, lies outside it and decides nothing)."""
    _, noise = verdicts({"8x4": (0.1, 0.3)}, {"8x4": [0.3, -0.125], "16x2": [0.3, -0.2]})
    assert noise.decision is Decision.YES and "-0.125" in noise.answer
    assert "mean max q 0.75" in noise.answer and "tau 0.5 -> 0.25" not in noise.answer
    _, noise = verdicts({"8x4": (0.1, 0.3)}, {"8x4": [-0.3, 0.155]})
    assert noise.decision is Decision.NO and "0.155" in noise.answer
    _, noise = verdicts({"8x4": (0.1, 0.3)}, {"8x4": [-0.05, 0.001]})
    assert noise.decision is Decision.UNDECIDED
    _, noise = verdicts({"8x4": (0.1, 0.3)}, {"8x4": ([0.0, 0.1], [0.0, -0.1])})
    assert noise.decision is Decision.DEPENDS
    assert ("it holds in 8x4, sharpened to max q 0.99, tau 1 -> 0.5; it does not hold in 8x4, "
            "trained, tau 1 -> 0.5") in noise.answer
    assert "mean max q 0.99" in noise.answer


def test_sharpening_reaches_the_asked_max_q_and_keeps_the_ranking():
    logits = torch.randn(50, 8, 4, generator=torch.Generator().manual_seed(0))
    for target in (0.5, 0.9, 0.99):
        sharp = sharpened(logits, target)
        assert mean_max_q(sharp) == pytest.approx(target, abs=1e-6)
        assert torch.equal(sharp.argsort(-1), logits.argsort(-1))
