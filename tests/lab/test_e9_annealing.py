"""E9: smoke test at the tiny budget, the schedule, and the verdict both ways (and inconclusive)."""

from __future__ import annotations

import pytest

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e9_annealing import EXPERIMENT, Config

from .helpers import run_tiny


def test_e9_runs_end_to_end(tmp_path, fashion_dir):
    summary = run_tiny(EXPERIMENT, tmp_path, data_dir=str(fashion_dir))
    assert set(summary["estimators"]) == {"softmax", "gs", "st-gs", "reinmax"}
    gs = summary["estimators"]["gs"]
    assert set(gs["schedules"]) == {"tau=0.5", "tau=1", "annealed"}
    assert gs["best_constant"] in (0.5, 1.0) and gs["annealed_minus_best"].n == 2
    noise = summary["noise"]
    assert noise["taus"] == [0.5, 1.0] and len(noise["by_tau"]) == 2
    assert 0 <= noise["start"].estimate <= 1


def test_e9_schedule_reaches_tau_min_at_the_set_fraction():
    config = Config(steps=300, anneal_fraction=0.6, anneal_every=1)
    schedule = config.schedule()
    assert schedule(0) == 1.0
    assert schedule(179) > 0.5 and schedule(180) == pytest.approx(0.5)
    assert config.final_tau() == 0.5
    assert config.noise_grid() == sorted({*config.noise_taus, 0.5, 1.0})


def _interval(estimate: float, half_width: float, n: int = 4) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, n)


def _summary(anneal_gain: float, noise_change: float, converged: dict | None = None,
             half_width: float = 0.5) -> dict:
    """Annealed minus best constant = anneal_gain nats for every estimator (interval
    +-half_width); noise effect at tau_min minus at tau0 = noise_change (interval +-0.02), on the
    trained logits and, unless ``converged`` says otherwise, at every sharpness."""
    cell = {m: _interval(80.0, 1.0) for m in ("discrete_elbo", "iw_bound", "kl")}
    entry = {"schedules": {"tau=0.5": cell, "tau=1": cell, "annealed": cell},
             "best_constant": 0.5, "annealed_minus_best": _interval(anneal_gain, half_width),
             "annealed_minus_best_90": _interval(anneal_gain, 0.8 * half_width)}
    converged = converged or {0.5: noise_change, 0.9: noise_change}
    return {
        "data": "Fashion-MNIST (14x14, average-pooled)", "seeds": 4, "steps": 300, "tau0": 1.0,
        "tau_min": 0.5, "final_tau": 0.5, "margin": 1.0,
        "estimators": {n: entry for n in ("softmax", "gs", "st-gs", "reinmax")},
        "noise": {"taus": [0.5, 1.0], "by_tau": [_interval(0.6, 0.02), _interval(0.45, 0.02)],
                  "start": _interval(0.48, 0.01), "end": _interval(0.3, 0.01),
                  "end_minus_start": _interval(-0.18, 0.01),
                  "low_minus_high_tau": _interval(noise_change, 0.02), "mean_max_q": 0.7,
                  "converged": {q: _interval(c, 0.02) for q, c in converged.items()}},
    }


def verdicts(**parts):
    """The two verdicts: answer 2's annealing claim, answer 4's noise claim."""
    annealing, noise = EXPERIMENT.verdicts(_summary(**parts))
    assert annealing.claims == EXPERIMENT.claims[:1] and noise.claims == EXPERIMENT.claims[1:]
    return annealing, noise


def test_e9_each_claim_holds_on_its_own_data():
    annealing, noise = verdicts(anneal_gain=-2.75, noise_change=-0.125)
    assert annealing.decision is Decision.YES and noise.decision is Decision.YES
    assert "-2.75" in annealing.answer and "annealing better" in annealing.answer
    assert "-0.125" in noise.answer and "-0.18" in noise.answer and "as claimed" in noise.answer


def test_e9_claims_of_two_authors_are_not_combined():
    annealing, noise = verdicts(anneal_gain=1.5, noise_change=-0.125)
    assert annealing.decision is Decision.NO and noise.decision is Decision.YES
    assert "annealing worse" in annealing.answer and "1.5" in annealing.answer
    annealing, noise = verdicts(anneal_gain=-2.75, noise_change=0.155)
    assert annealing.decision is Decision.YES and noise.decision is Decision.NO
    assert "contrary to the claim" in noise.answer and "0.155" in noise.answer


def test_e9_annealing_the_same_as_a_constant_within_the_margin_is_not_needed():
    annealing, _ = verdicts(anneal_gain=0.1, noise_change=-0.125, half_width=0.3)
    assert annealing.decision is Decision.NO and "the same within the margin" in annealing.answer


def test_e9_verdict_inconclusive_on_a_tie():
    annealing, _ = verdicts(anneal_gain=0.25, noise_change=-0.125, half_width=1.5)
    assert annealing.decision is Decision.UNDECIDED
    assert "no significant difference" in annealing.answer


def test_e9_the_noise_claim_depends_on_how_converged_the_posterior_is():
    _, noise = verdicts(anneal_gain=-2.75, noise_change=0.1, converged={0.5: 0.1, 0.9: -0.1})
    assert noise.decision is Decision.DEPENDS
    assert "as claimed, at max q in [0.9]; larger at [0.5]" in noise.answer


def test_the_best_constant_is_chosen_on_validation_seeds():
    config = EXPERIMENT.make_config("tiny")
    keys = EXPERIMENT.runs(config)
    held = [k for k in keys if k["seed"] >= config.seeds]
    assert {k["seed"] for k in held} == set(range(config.seeds,
                                                  config.seeds + config.validation_seeds))
    assert {k["schedule"] for k in held} == set(config.taus)  # no annealed runs there
    assert len(keys) == len(held) + config.seeds * len(config.estimators) * (len(config.taus) + 1)
