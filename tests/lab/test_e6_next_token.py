"""E6: smoke test at the tiny budget, and the verdict both ways."""

import torch

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e6_next_token import EXPERIMENT, transitions

from .helpers import run_tiny


def test_e6_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    config = EXPERIMENT.make_config("tiny")
    assert len(summary["settings"]) == len(config.estimators) * len(config.taus)
    reference = summary["settings"][summary["reference"]]
    assert reference["max_ratio"].estimate == 1.0
    assert reference["nonfinite_steps"].estimate == 0.0
    for entry in summary["settings"].values():
        assert entry["excess_nll"].estimate >= 0
        assert 0 <= entry["nonfinite_steps"].estimate <= 1


def test_transitions_are_distributions():
    law = transitions(8)
    assert torch.allclose(law.sum(1), torch.ones(8, dtype=torch.float64))
    assert sorted(law[0][law[0] > 0].tolist()) == [0.4, 0.6]


def _interval(estimate, low, high):
    return Interval(estimate, low, high, 5)


def _setting(estimator, tau, ratio=(1.0, 0.9, 1.1), nonfinite=(0.0, 0.0, 0.0),
             excess=(0.007, 0.006, 0.008), excess_diff=(0.0, 0.0, 0.0)):
    return {"estimator": estimator, "tau": tau,
            "max_norm": _interval(0.7, 0.6, 0.8), "p99_norm": _interval(0.6, 0.5, 0.7),
            "median_norm": _interval(0.1, 0.1, 0.1), "nonfinite_steps": _interval(*nonfinite),
            "infinite_loss_examples": _interval(0.0, 0.0, 0.0),
            "excess_nll": _interval(*excess), "max_ratio": _interval(*ratio),
            "p99_ratio": _interval(*ratio), "max_ratio_same_tau": _interval(1.0, 0.9, 1.1),
            "excess_nll_minus_reference": _interval(*excess_diff)}


def _summary(gs_small_tau):
    settings = {"softmax, tau=0.1": _setting("softmax", 0.1, ratio=(15.0, 14.0, 16.0)),
                "softmax, tau=1": _setting("softmax", 1.0),
                "gs, tau=0.1": gs_small_tau,
                "gs, tau=1": _setting("gs", 1.0, excess=(0.025, 0.022, 0.028),
                                      excess_diff=(0.018, 0.015, 0.021)),
                "st-gs, tau=1": _setting("st-gs", 1.0, ratio=(0.14, 0.13, 0.15),
                                         excess=(2.9, 2.7, 3.0), excess_diff=(2.9, 2.7, 3.0))}
    return {"settings": settings, "traces": {}, "learned": {}, "seeds": 5,
            "reference": "softmax, tau=1", "true_first_contexts": transitions(8)[:2].tolist()}


def test_e6_verdict_both_ways():
    nonfinite = _setting("gs", 0.1, ratio=(10.0, 9.9, 10.2), nonfinite=(0.015, 0.011, 0.019))
    holds = EXPERIMENT.verdict(_summary(nonfinite))
    assert holds.decision is Decision.YES and "blows up (at gs, tau=0.1)" in holds.answer
    assert "0.015 [0.011, 0.019]" in holds.answer and "10 [9.9, 10]" in holds.answer
    assert "in 2 of 3 Gumbel settings" in holds.answer and "st-gs, tau=1: 2.9 [2.7, 3]" in \
        holds.answer

    large = EXPERIMENT.verdict(_summary(_setting("gs", 0.1, ratio=(40.0, 30.0, 50.0))))
    assert large.decision is Decision.YES

    calm = EXPERIMENT.verdict(_summary(_setting("gs", 0.1, ratio=(2.0, 1.8, 2.2))))
    assert calm.decision is Decision.NO and "does not blow up (at no tau)" in calm.answer

    unclear = EXPERIMENT.verdict(_summary(_setting("gs", 0.1, ratio=(10.0, 8.0, 12.0))))
    assert unclear.decision is Decision.UNDECIDED and "does not clearly blow up" in unclear.answer
