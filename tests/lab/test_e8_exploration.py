"""E8: smoke test at the tiny budget, the trap's exact expectation, and the verdict every way."""


from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e8_exploration import EXPERIMENT

from .helpers import run_tiny


def test_e8_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert {"softmax tau=0.5", "gs tau=0.5", "st-gs tau=0.5", "softmax + gaussian noise tau=0.5",
            "reinmax tau=1", "exact", "rloo"} <= set(summary["methods"])
    assert summary["seeds"] == 8
    for m in summary["methods"].values():
        assert 0.0 <= m["success"].estimate <= 1.0


def _interval(estimate, low, high, n=128):
    return Interval(estimate, low, high, n)


def _summary(gs_minus_softmax, gaussian_minus_gs, gaussian_minus_softmax=(0.1, 0.05, 0.15)):
    rate = _interval(0.2, 0.15, 0.25)
    value = _interval(1.5, 1.4, 1.6)
    methods = {name: {"method": name, "tau": 1.0, "success": rate, "value": value}
               for name in ("exact", "rloo")}
    diff = {"gs_minus_softmax": _interval(*gs_minus_softmax),
            "st-gs_minus_softmax": _interval(-0.05, -0.08, -0.02),
            "gaussian_minus_softmax": _interval(*gaussian_minus_softmax),
            "gaussian_minus_gs": _interval(*gaussian_minus_gs)}
    return {"methods": methods, "seeds": 128, "taus": [0.5], "optima": [1.0, 3.0],
            "per_tau": {"0.5": diff},
            "pooled": {"rates": {m: rate for m in ("softmax", "gaussian", "gs", "st-gs")}, **diff},
            "rloo_minus_exact": _interval(-0.05, -0.1, 0.0),
            "gs_minus_exact": _interval(-0.15, -0.2, -0.1)}


def verdicts(gs_minus_softmax, gaussian_minus_gs, *gaussian_minus_softmax):
    """The question's verdict and answer 3's, each on its own claim."""
    question, other = EXPERIMENT.verdicts(_summary(gs_minus_softmax, gaussian_minus_gs,
                                                   *gaussian_minus_softmax))
    assert question.claims == EXPERIMENT.claims[:1] and other.claims == EXPERIMENT.claims[1:]
    return question, other


def test_e8_verdict_every_way():
    helps, other = verdicts((0.11, 0.07, 0.15), (0.0, -0.04, 0.05))
    assert helps.decision is Decision.YES and "escapes more often" in helps.answer
    assert "0.11 [0.07, 0.15]" in helps.answer and "as often as Gumbel" in helps.answer
    assert other.decision is Decision.YES and "helps too" in other.answer  # gaussian +0.1

    hurts, _ = verdicts((-0.11, -0.15, -0.07), (0.2, 0.1, 0.3))
    assert hurts.decision is Decision.NO and "escapes less often" in hurts.answer
    assert "more often than Gumbel" in hurts.answer

    _, other = verdicts((0.11, 0.07, 0.15), (0.0, -0.04, 0.05), (-0.1, -0.15, -0.05))
    assert other.decision is Decision.NO and "hurts" in other.answer
    _, other = verdicts((0.11, 0.07, 0.15), (0.0, -0.04, 0.05), (0.01, -0.05, 0.07))
    assert other.decision is Decision.UNDECIDED

    unclear, _ = verdicts((0.02, -0.03, 0.07), (-0.2, -0.3, -0.1))
    assert unclear.decision is Decision.UNDECIDED and "not shown" in unclear.answer
    assert "less often than Gumbel" in unclear.answer
