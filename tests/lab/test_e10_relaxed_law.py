"""E10: smoke test at the tiny budget, the moment fit, and each claim's verdict every way."""

import math

import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e10_relaxed_law import EXPERIMENT, NOT_EXACT, REPARAMETERIZATION, fit_gumbel

from .helpers import run_tiny


def test_e10_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    for by_tau in summary["cells"].values():
        # at tau = 1 the claimed law is the exact one: both fit equally
        assert by_tau["1"]["claimed_error"] == by_tau["1"]["exact_error"]
        assert by_tau["0.5"]["claimed_error"].low > by_tau["0.5"]["exact_error"].high


def test_the_moment_fit_recovers_a_gumbel_law():
    """200,000 draws of Gumbel(mu, beta): the fit's standard error is about beta * 0.003, so
    a tolerance of 0.02 beta holds with a wide margin."""
    g = gk.gumbel_noise((200_000, 3), dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0))
    mu, beta = torch.tensor([-2.0, 0.0, 5.0], dtype=torch.float64), 0.5
    location, scale = fit_gumbel(mu + beta * g)
    assert torch.allclose(location, mu, atol=0.02 * beta)
    assert torch.allclose(scale, torch.full((3,), beta, dtype=torch.float64), atol=0.02 * beta)
    assert math.isclose(float(scale.mean()), beta, rel_tol=0.02)


def _interval(value, half=0.001):
    return Interval(value, value - half, value + half, 10)


def _summary(claimed_at_2=0.5, distance=(0.2, 0.19, 0.21)):
    def point(claimed, distance):
        return {"claimed_error": _interval(claimed), "exact_error": _interval(0.01),
                "bias_over_floor": _interval(0.05),
                "distance_to_choice": Interval(*distance, 10), "exactly_a_choice": _interval(0)}

    return {"cells": {"K=10, scale=1": {"1": point(0.01, distance),
                                        "2": point(claimed_at_2, distance)}},
            "taus": ["1", "2"], "seeds": 10}


def verdicts(**parts):
    reparameterization, not_exact = EXPERIMENT.verdicts(_summary(**parts))
    assert reparameterization.claims == (REPARAMETERIZATION,)
    assert not_exact.claims == (NOT_EXACT,)
    return reparameterization, not_exact


def test_each_claim_every_way():
    reparameterization, not_exact = verdicts()
    assert reparameterization.decision is Decision.DEPENDS
    assert "it holds at tau in [1] and fails at tau in [2]" in reparameterization.answer
    assert not_exact.decision is Decision.YES
    everywhere, exact = verdicts(claimed_at_2=0.01, distance=(1e-9, 0.0, 2e-9))
    assert everywhere.decision is Decision.YES and exact.decision is Decision.NO
    _, unclear = verdicts(distance=(0.0005, -0.0001, 0.0011))
    assert unclear.decision is Decision.UNDECIDED  # its interval reaches down to 0
    nowhere, _ = verdicts(claimed_at_2=0.5)
    summary = _summary(claimed_at_2=0.5)
    summary["cells"]["K=10, scale=1"]["1"]["claimed_error"] = _interval(0.5)
    assert EXPERIMENT.verdicts(summary)[0].decision is Decision.NO
