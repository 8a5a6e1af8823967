"""E1: smoke test at the tiny budget; each verdict fed synthetic summaries giving every outcome
it can take (holds, does not hold, undecided, depends); the goodness-of-fit helper."""

import numpy as np
import pytest

from gumbelkit.harness.statistics import Decision, Interval, goodness_of_fit
from gumbelkit.lab.e1_gumbel_max import EXPERIMENT, REFERENCE, TV_MARGIN

from .helpers import run_tiny

ZERO = Interval(0.0, 0.0, 0.0, 10)
WITHIN = Interval(0.0, -TV_MARGIN / 4, TV_MARGIN / 4, 10)  # inside the margin
STRADDLES = Interval(TV_MARGIN, -TV_MARGIN / 2, 2 * TV_MARGIN, 10)  # neither in nor out
ABOVE = Interval(3 * TV_MARGIN, 2 * TV_MARGIN, 4 * TV_MARGIN, 10)  # beyond the margin


def test_e1_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["cells"]) == {"K=2, scale=4", "K=10, scale=4"}
    assert "gumbel-max" in summary["cells"]["K=2, scale=4"]["methods"]


def _method(difference=WITHIN, rejected=False, mode_share=0.6):
    return {"tv": Interval(0.01, 0.005, 0.02, 10), "tv_minus_reference": difference,
            "tv_minus_reference_90": difference, "min_p_value": 1e-9 if rejected else 0.4,
            "rejected": rejected, "min_mode_share": mode_share}


def _cell(gumbel=None, argmax_share=1.0):
    return {"methods": {REFERENCE: _method(ZERO), "gumbel-max": gumbel or _method(),
                        "st-gs hard, tau=1": _method(),
                        "argmax softmax-tau, tau=1": _method(ABOVE, True, argmax_share)},
            "mode_probability": Interval(0.6, 0.5, 0.7, 10),
            "example": {"probs": [0.6, 0.4], "counts": {}}}


def _summary(*cells):
    return {"cells": {f"K={2 + i}, scale=4": cell for i, cell in enumerate(cells)},
            "threshold": 1e-3, "draws": 1000, "seeds": 10}


@pytest.mark.parametrize(("gumbel", "expected"), [
    ([_method(), _method()], Decision.YES),
    ([_method(rejected=True), _method(rejected=True)], Decision.NO),
    ([_method(ABOVE), _method(ABOVE)], Decision.NO),
    ([_method(STRADDLES), _method()], Decision.UNDECIDED),
    ([_method(), _method(rejected=True)], Decision.DEPENDS),
])
def test_e1_samples_verdict_every_way(gumbel, expected):
    verdict = EXPERIMENT.verdicts(_summary(*(_cell(g) for g in gumbel)))[0]
    assert verdict.decision is expected and expected.word in verdict.answer
    if expected is Decision.DEPENDS:
        assert "K=3, scale=4" in verdict.answer  # names the cell where it fails


@pytest.mark.parametrize(("shares", "expected"), [
    ([1.0, 1.0], Decision.YES), ([0.99, 0.5], Decision.NO), ([1.0, 0.99], Decision.DEPENDS)])
def test_e1_mode_verdict_every_way(shares, expected):
    verdict = EXPERIMENT.verdicts(_summary(*(_cell(argmax_share=s) for s in shares)))[1]
    assert verdict.decision is expected and expected.word in verdict.answer


def test_goodness_of_fit_pools_rare_categories_and_measures_tv():
    probs = np.array([0.5, 0.3, 0.2 - 1e-6, 1e-6])  # the last is pooled
    exact = goodness_of_fit(np.array([500, 300, 200, 0]), probs)
    assert exact["p_value"] > 0.99 and exact["tv"] == pytest.approx(1e-6, abs=1e-9)
    biased = goodness_of_fit(np.array([600, 250, 150, 0]), probs)
    assert biased["p_value"] < 1e-6 and biased["tv"] == pytest.approx(0.1, abs=1e-6)
