"""E6: smoke test at the tiny budget, the two forms of the loss, and the verdict every way."""

import math

import pytest
import torch

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e6_next_token import EXPERIMENT, MARGIN, cross_entropy, transitions

from .helpers import run_tiny


def test_e6_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    config = EXPERIMENT.make_config("tiny")
    assert list(summary["cells"]) == [f"V={v}" for v in config.vocabularies]
    for cell in summary["cells"].values():
        settings = cell["settings"]
        assert len(settings) == 2 * 2 * len(config.taus)  # estimators x forms x taus
        for entry in settings.values():
            assert entry["excess_nll"].estimate >= 0
            assert 0 <= entry["nonfinite_steps"].estimate <= 1
            assert entry["worst_to_bound"] <= 1.001  # the gradient bound sqrt(2)/tau, float32
        stable = [e for e in settings.values() if e["form"] == "log_softmax"]
        assert all(e["nonfinite_steps"].high == 0 for e in stable)


def test_the_two_forms_agree_until_the_probability_underflows():
    logits = torch.tensor([[0.0, 1.0, -2.0], [0.0, 200.0, 0.0]])
    target = torch.tensor([[1], [0]])
    naive, stable = (cross_entropy(logits, target, form) for form in ("log", "log_softmax"))
    torch.testing.assert_close(naive[0], stable[0])
    assert math.isinf(naive[1]) and stable[1] == pytest.approx(200.0)


def test_transitions_are_distributions():
    law = transitions(8)
    assert torch.allclose(law.sum(1), torch.ones(8, dtype=torch.float64))
    assert sorted(law[0][law[0] > 0].tolist()) == [0.4, 0.6]


def _interval(estimate, low, high):
    return Interval(estimate, low, high, 10)


def _setting(estimator, tau, form, nonfinite=(0.0, 0.0, 0.0), ratio=(1.2, 1.0, 1.4),
             bound=0.9):
    entry = {"estimator": estimator, "tau": tau, "form": form,
             "nonfinite_steps": _interval(*nonfinite), "excess_nll": _interval(0.01, 0.0, 0.02),
             "worst_to_bound": bound, "max_norm": _interval(1.0, 0.9, 1.1)}
    if estimator == "gs":
        entry["ratio_to_softmax"] = _interval(*ratio)
        entry["ratio_to_softmax_90"] = _interval(ratio[0], (ratio[0] + ratio[1]) / 2,
                                                 (ratio[0] + ratio[2]) / 2)
    return entry


def _cell(naive_nonfinite=(0.0, 0.0, 0.0), ratio=(1.2, 1.0, 1.4)):
    settings = {}
    for tau in (0.1, 1.0):
        for estimator in ("softmax", "gs"):
            for form in ("log", "log_softmax"):
                nonfinite = naive_nonfinite if (estimator, form, tau) == ("gs", "log", 0.1) \
                    else (0.0, 0.0, 0.0)
                settings[f"{estimator}, tau={tau:g}, {form}"] = _setting(
                    estimator, tau, form, nonfinite, ratio if tau == 0.1 else (1.1, 1.0, 1.2))
    return {"settings": settings,
            "softmax_cold_to_warm": _interval(9.5, 9.0, 10.0), "traces": {}, "learned": {},
            "true_first_contexts": transitions(8)[:2].tolist()}


def _summary(*cells, **one):
    cells = cells or (one,)
    return {"cells": {f"V={8 * 8 ** i}": _cell(**c) for i, c in enumerate(cells)},
            "seeds": 10, "taus": [0.1, 1.0]}


def test_e6_verdict_every_way():
    precision = EXPERIMENT.verdict(_summary(naive_nonfinite=(0.02, 0.01, 0.03)))
    assert precision.decision is Decision.DEPENDS
    assert "floating-point precision" in precision.answer and "9.5 [9, 10]" in precision.answer
    assert "tau=0.1: 0.02 [0.01, 0.03]" in precision.answer

    calm = EXPERIMENT.verdict(_summary())
    assert calm.decision is Decision.NO and "no explosion" in calm.answer

    real = EXPERIMENT.verdict(_summary(ratio=(2 * MARGIN, 1.5 * MARGIN, 2.5 * MARGIN)))
    assert real.decision is Decision.YES and "a real explosion" in real.answer

    unclear = EXPERIMENT.verdict(_summary(ratio=(MARGIN, 1.0, 2 * MARGIN)))
    assert unclear.decision is Decision.UNDECIDED

    mixed = EXPERIMENT.verdict(_summary({}, {"ratio": (2 * MARGIN, 1.5 * MARGIN, 2.5 * MARGIN)}))
    assert mixed.decision is Decision.DEPENDS
    assert "it holds in V=64; it does not hold in V=8" in mixed.answer
