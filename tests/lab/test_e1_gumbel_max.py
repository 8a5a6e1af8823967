"""E1: smoke test at the tiny budget, and the verdict both ways."""

import copy

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e1_gumbel_max import EXPERIMENT

from .helpers import run_tiny


def test_e1_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert "gumbel-max" in summary["methods"]


def _summary(gumbel_rejected: bool, argmax_rejected: bool) -> dict:
    interval = Interval(0.01, 0.005, 0.02, 3)
    def method(rejected):
        return {"tv": interval, "tv_minus_reference": interval, "min_p_value": 1e-9 if rejected
                else 0.4, "rejected": rejected}
    return {
        "methods": {"torch.multinomial (reference)": method(False),
                    "gumbel-max": method(gumbel_rejected),
                    "st-gs hard, tau=1": method(False),
                    "argmax softmax-tau, tau=1": method(argmax_rejected)},
        "bonferroni_threshold": 0.003, "draws": 1000, "seeds": 3,
        "example": {"probs": [0.5, 0.5], "counts": {}},
    }


def test_e1_verdict_both_ways():
    holds = EXPERIMENT.verdict(_summary(gumbel_rejected=False, argmax_rejected=True))
    assert holds.decision is Decision.YES and "matches" in holds.answer
    fails = EXPERIMENT.verdict(_summary(gumbel_rejected=True, argmax_rejected=True))
    assert fails.decision is Decision.NO and "does not match" in fails.answer
    mode_sampler = EXPERIMENT.verdict(copy.deepcopy(_summary(False, argmax_rejected=False)))
    assert mode_sampler.decision is Decision.NO
