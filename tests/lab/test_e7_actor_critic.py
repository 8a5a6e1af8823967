"""E7: smoke test at the tiny budget, the critic and bandit pieces, and the verdict every way."""


from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e7_actor_critic import EXPERIMENT

from .helpers import run_tiny


def test_e7_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    labels = set(summary["methods"])
    assert {"softmax tau=0.5", "gs tau=0.5", "st-gs tau=1", "reinmax tau=1", "rloo (critic)",
            "rloo (reward)"} <= labels
    for m in summary["methods"].values():
        assert 0.0 <= m["return"].estimate <= 1.0
        assert m["return"].n == 2
    assert summary["reference"]["actors"] and summary["one_hot"]["actors"]


def _interval(estimate, low, high, n=16):
    return Interval(estimate, low, high, n)


def _summary(softmax_diffs, softness=(0.2, 0.19, 0.21)):
    """A hand-made summary: softmax-tau return differences (estimate, low, high) by tau."""
    def method(estimator, tau, diff=(0.0, -0.01, 0.01)):
        return {"estimator": estimator, "tau": tau, "target": "critic",
                "return": _interval(0.9 + diff[0], 0.88 + diff[0], 0.92 + diff[0]),
                "gap": _interval(0.1, 0.08, 0.12),
                "greedy_return": _interval(0.93, 0.91, 0.95),
                "greedy_minus_reference": _interval(-0.02, -0.03, -0.01),
                "critic_error": _interval(0.05, 0.045, 0.055),
                "error_minus_one_hot": _interval(0.01, 0.005, 0.015),
                "softness": _interval(*softness),
                "return_minus_reference": _interval(*diff),
                "curve_steps": [0, 10], "curve_mean": [0.5, 0.9]}
    methods = {f"softmax tau={tau:g}": method("softmax", tau, diff)
               for tau, diff in softmax_diffs.items()}
    methods["st-gs tau=1"] = method("st-gs", 1.0)
    return {"methods": methods, "seeds": 16, "margin": 0.01,
            "reference": {"actors": ["st-gs tau=1"], "return": _interval(0.95, 0.94, 0.96),
                          "greedy_return": _interval(0.96, 0.95, 0.97)},
            "one_hot": {"actors": ["st-gs tau=1"], "critic_error": _interval(0.03, 0.028, 0.032)}}


def verdicts(diffs, **options):
    """Answer 3's verdict (with ejang's comment, the same author) and Grady S's."""
    answer3, grady = EXPERIMENT.verdicts(_summary(diffs, **options))
    assert answer3.claims == EXPERIMENT.claims[:2] and grady.claims == EXPERIMENT.claims[2:]
    return answer3, grady


def test_e7_verdict_every_way():
    worse, _ = verdicts({0.2: (-0.2, -0.22, -0.18), 3.0: (-0.05, -0.07, -0.03)})
    assert worse.decision is Decision.YES and "cannot substitute" in worse.answer
    assert "-0.05 [-0.07, -0.03]" in worse.answer and "0.95 [0.94, 0.96]" in worse.answer

    substitutes, _ = verdicts({0.2: (-0.2, -0.22, -0.18), 3.0: (0.002, -0.004, 0.008)})
    assert substitutes.decision is Decision.NO and "can substitute" in substitutes.answer
    assert "0.002 [-0.004, 0.008]" in substitutes.answer

    unclear, _ = verdicts({0.2: (-0.2, -0.22, -0.18), 3.0: (-0.01, -0.03, 0.01)})
    assert unclear.decision is Decision.UNDECIDED and "not separated" in unclear.answer


def test_grady_s_objection_every_way():
    near = (0.01, 0.008, 0.012)
    _, holds = verdicts({0.2: (-0.2, -0.22, -0.18), 3.0: (-0.05, -0.07, -0.03)}, softness=near)
    assert holds.decision is Decision.YES and "lacks is sampling" in holds.answer
    _, fails = verdicts({0.2: (0.01, -0.005, 0.03), 3.0: (-0.05, -0.07, -0.03)}, softness=near)
    assert fails.decision is Decision.NO and "softness was the problem" in fails.answer
    _, soft = verdicts({0.2: (-0.2, -0.22, -0.18), 3.0: (-0.05, -0.07, -0.03)})
    assert soft.decision is Decision.UNDECIDED  # the lowest tau's inputs are not near one-hot
