"""E12: smoke test at the tiny budget, the objective's scale, and the verdict every way."""

import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e12_gates import EXPERIMENT, MARGIN, Objective

from .helpers import run_tiny


def test_e12_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["cells"]) == {"coupling=1", "coupling=0.25"}
    for cell in summary["cells"].values():
        for method in cell["methods"].values():
            assert 0 <= method["gap"].estimate <= 1


def test_the_objective_spans_zero_to_one_over_the_patterns():
    f = Objective(6, torch.Generator().manual_seed(0))
    values = f(gk.exact.configurations(6, 2).double())
    assert float(values.min()) == 0.0 and abs(float(values.max()) - 1.0) < 1e-12


def _interval(value, half=0.005):
    return Interval(value, value - half, value + half, 10)


def _cell(gap_difference, bias_difference):
    methods = {m: {"gap": _interval(0.02), "relative_bias": _interval(0.1)}
               for m in ("sigmoid", "st-deterministic", "st", "concrete", "disarm")}
    return {"methods": methods, "best_sampled": "st",
            "deterministic_minus_best": _interval(gap_difference),
            "deterministic_minus_best_90": _interval(gap_difference, 0.004),
            "bias_over_disarm": _interval(bias_difference)}


def verdict(*cells):
    return EXPERIMENT.verdict({"cells": {f"coupling={i}": _cell(*c) for i, c in enumerate(cells)},
                               "seeds": 10, "gates": 10})


def test_the_verdict_every_way():
    assert verdict((0.0, 0.5), (0.0, 0.5)).decision is Decision.YES
    assert verdict((3 * MARGIN, 0.5),).decision is Decision.NO  # the gates train worse
    assert verdict((0.0, -0.5),).decision is Decision.NO  # the gradient is not biased
    assert verdict((MARGIN, 0.5),).decision is Decision.UNDECIDED
    depends = verdict((0.0, 0.5), (3 * MARGIN, 0.5))
    assert depends.decision is Decision.DEPENDS
    assert "it holds in coupling=0; it does not hold in coupling=1" in depends.answer
