"""E2: smoke test at the tiny budget, and the verdict every way."""

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e2_temperature import EXPERIMENT, METRICS

from .helpers import run_tiny

TAUS = ("0.01", "1", "100")


def test_e2_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["curves"]) == {"softmax", "gs", "st-gs", "reinmax"}
    assert set(summary["curves"]["gs"]) == set(TAUS)
    assert set(summary["curves"]["gs"]["1"]) == set(METRICS)
    assert summary["min_exact_one_hot"]["st-gs"] == 1.0  # hard samples are exactly one-hot
    assert summary["curves"]["softmax"]["1"]["flip_rate"].high == 0.0  # no noise, no flips


def _interval(estimate: float, half_width: float = 0.001) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, 6)


def _point(gap: float, distance: float, tv: float, mode: float, flips: float,
           share: float) -> dict:
    values = {"one_hot_gap": gap, "uniform_distance": distance, "tv_softmax": tv,
              "tv_mode": mode, "tv_excess": tv - 0.005, "flip_rate": flips, "noise_share": share}
    return {metric: _interval(value) for metric, value in values.items()}


def _summary(share_change: float, change_width: float = 0.01, exact: float = 1.0,
             low_gap: float = 0.004) -> dict:
    """Curves where softmax-tau picks the mode and GS samples; the rest is set by the arguments."""
    soft = {"0.01": _point(0.001, 0.999, 0.43, 0.0, 0.0, 0.0),
            "1": _point(0.44, 0.58, 0.43, 0.0, 0.0, 0.0),
            "100": _point(0.897, 0.006, 0.43, 0.0, 0.0, 0.0)}
    gs = {"0.01": _point(low_gap, 0.997, 0.007, 0.43, 0.55, 0.61),
          "1": _point(0.36, 0.65, 0.006, 0.43, 0.55, 0.5),
          "100": _point(0.896, 0.0074, 0.008, 0.43, 0.55, 0.61 + share_change)}
    hard = {tau: _point(0.0, 1.0, 0.006, 0.43, 0.55, 0.61) for tau in TAUS}
    return {
        "seeds": 6, "draws": 10_000, "categories": 10, "taus": [0.01, 1.0, 100.0],
        "tau_low": "0.01", "tau_high": "100",
        "curves": {"softmax": soft, "gs": gs, "st-gs": hard},
        "reference_tv": _interval(0.005), "expected_flip_rate": _interval(0.55),
        "noise_share_change": _interval(share_change, change_width),
        "flip_rate_change": _interval(0.0),
        "hard": ["st-gs"],
        "exact_one_hot": {"softmax": dict.fromkeys(TAUS, 0.0), "gs": dict.fromkeys(TAUS, 0.0),
                          "st-gs": dict.fromkeys(TAUS, exact)},
        "min_exact_one_hot": {"softmax": 0.0, "gs": 0.0, "st-gs": exact},
        "example": {"probs": [0.5, 0.5], "vectors": {}},
    }


def test_e2_verdict_holds_when_the_noise_gains_significance():
    verdict = EXPERIMENT.verdict(_summary(share_change=0.2))
    assert verdict.decision is Decision.YES
    assert "the noise gains significance" in verdict.answer
    assert "0.81 [0.809, 0.811]" in verdict.answer  # GS noise share at tau=100
    assert "0.55 [0.549, 0.551]" in verdict.answer  # GS flip rate


def test_e2_verdict_fails_when_the_noise_loses_significance():
    verdict = EXPERIMENT.verdict(_summary(share_change=-0.3))
    assert verdict.decision is Decision.NO
    assert "Observation 1 holds" in verdict.answer
    assert "Observation 2 does not hold" in verdict.answer
    assert "-0.3 [-0.31, -0.29]" in verdict.answer
    assert "loses significance" in verdict.answer


def test_e2_verdict_inconclusive_when_the_change_is_not_resolved():
    verdict = EXPERIMENT.verdict(_summary(share_change=0.05, change_width=0.1))
    assert verdict.decision is Decision.UNDECIDED
    assert "no change in the noise's significance is resolved" in verdict.answer


def test_e2_verdict_fails_when_hard_samples_are_not_one_hot():
    verdict = EXPERIMENT.verdict(_summary(share_change=0.2, exact=0.9))
    assert verdict.decision is Decision.NO
    assert "Answer 4's PS does not hold: 0 of 1 hard samplers" in verdict.answer


def test_e2_verdict_fails_when_gs_is_not_near_one_hot_at_low_tau():
    verdict = EXPERIMENT.verdict(_summary(share_change=0.2, low_gap=0.2))
    assert verdict.decision is Decision.NO
    assert "Observation 1 does not hold" in verdict.answer
    assert "0.2 [0.199, 0.201] for GS" in verdict.answer
