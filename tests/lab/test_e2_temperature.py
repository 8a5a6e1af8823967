"""E2: smoke test at the tiny budget, the measures' invariances, and each claim's verdict every
way, including depends."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e2_temperature import (
    EXPERIMENT,
    MEASURES,
    NOISE_MEASURES,
    OBSERVATION_1,
    OBSERVATION_2,
    PS,
    SHARE_MARGIN,
    measure,
)

from .helpers import run_tiny


def test_e2_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["cells"]) == {"K=2, scale=1", "K=10, scale=1"}
    for cell in summary["cells"].values():
        assert set(cell["curves"]["1"]) == set(MEASURES)
        assert cell["hard_exact"]  # hard samples are exactly one-hot
        # tau divides logits and noise alike: these do not move with tau
        for name in ("flip_rate", "noise_to_logit", "log_ratio_share"):
            assert abs(cell["change"][name].estimate) < 1e-6, name


def test_measures_at_the_limits():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(10, generator=gen) * 2
    g = gk.gumbel_noise((2000, 10), generator=gen)
    cold, hot = measure(z, g, 0.01), measure(z, g, 100.0)
    assert cold["one_hot_gap"] < 0.01 and cold["softmax_one_hot_gap"] < 0.01
    assert hot["uniform_distance"] < 0.02 and hot["softmax_uniform_distance"] < 0.02
    assert cold["flip_rate"] == hot["flip_rate"] > 0.2  # the decision does not involve tau
    assert cold["noise_to_logit"] == pytest.approx(hot["noise_to_logit"], rel=1e-9)
    assert cold["log_ratio_share"] == pytest.approx(hot["log_ratio_share"], rel=1e-9)
    assert cold["exact_one_hot"] > 0.5 and hot["exact_one_hot"] == 0.0


def _interval(value, half=0.001):
    return Interval(value, value - half, value + half, 10)


def _cell(log_ratio_change=0.0, euclid_change=0.05, flips=0.3, hot_distance=0.01, hard=True):
    curve = {m: _interval(0.01) for m in MEASURES}
    cold = {**curve, "flip_rate": _interval(flips)}
    hot = {**curve, "uniform_distance": _interval(hot_distance)}
    change = {m: _interval(0.0, 0.0) for m in NOISE_MEASURES}
    change["log_ratio_share"] = _interval(log_ratio_change)
    change["euclidean_share"] = _interval(euclid_change)
    return {"curves": {"0.01": cold, "1": curve, "100": hot}, "change": change,
            "change_90": change, "hard_exact": hard}


def _summary(**cells):
    return {"cells": cells, "taus": [0.01, 1.0, 100.0], "tau_low": "0.01", "tau_high": "100",
            "seeds": 10, "draws": 1000}


def verdicts(summary):
    return {v.claims[0]: v for v in EXPERIMENT.verdicts(summary)}


def test_each_claim_is_decided_separately():
    result = verdicts(_summary(a=_cell(), b=_cell(euclid_change=-0.05)))
    assert result[OBSERVATION_1].decision is Decision.YES
    assert result[OBSERVATION_2].decision is Decision.NO  # the noise does not gain significance
    assert "rises in a and falls in b" in result[OBSERVATION_2].answer
    assert result[PS].decision is Decision.YES
    assert all(len(v.claims) == 1 for v in result.values())  # one claim, one author each


def test_a_verdict_can_come_out_every_way():
    gains = verdicts(_summary(a=_cell(log_ratio_change=3 * SHARE_MARGIN)))
    assert gains[OBSERVATION_2].decision is Decision.YES
    unclear = verdicts(_summary(a=_cell(log_ratio_change=SHARE_MARGIN)))
    assert unclear[OBSERVATION_2].decision is Decision.UNDECIDED
    no_flips = verdicts(_summary(a=_cell(flips=0.0)))
    assert no_flips[OBSERVATION_1].decision is Decision.NO
    not_exact = verdicts(_summary(a=_cell(hard=False)))
    assert not_exact[PS].decision is Decision.NO


def test_a_verdict_that_turns_on_the_grid_depends_and_names_the_cells():
    result = verdicts(_summary(**{"K=2": _cell(flips=0.0), "K=10": _cell()}))
    verdict = result[OBSERVATION_1]
    assert verdict.decision is Decision.DEPENDS
    assert "it holds in K=10; it does not hold in K=2" in verdict.answer
    partly = verdicts(_summary(**{"K=2": _cell(flips=0.01), "K=10": _cell()}))
    assert partly[OBSERVATION_1].decision is Decision.UNDECIDED  # holds where it is decided
