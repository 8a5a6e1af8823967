"""E3: smoke test at the tiny budget, the linear twin, and the verdict every way."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e3_expected_loss import EXPERIMENT, OBJECTIVES, linear_twin
from gumbelkit.workloads.problems import make_problem

from .helpers import run_tiny

SAMPLING = ("gs", "st-gs", "reinmax", "gr", "rloo")


def test_e3_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["gradients"]) == set(EXPERIMENT.make_config("tiny").estimators)
    assert {"zgr", "dst-gs"} <= set(summary["gradients"])  # the registry's, untuned ones aside
    assert set(summary["objectives"]) == set(OBJECTIVES)
    nonlinear = summary["objectives"]["nonlinear"]
    assert set(nonlinear["softmax_minus"]) == set(SAMPLING)
    assert summary["gradients"]["softmax"]["1"]["variance"].high == 0.0  # deterministic


def test_linear_twin_agrees_with_f_on_one_hot_points_and_is_linear():
    problem = make_problem("poly", 0)
    f_lin = linear_twin(problem.f, 8, 2)
    logits = torch.randn(8, 2, dtype=torch.float64)
    # same expected loss for every distribution, and the relaxation of a linear f is exact
    assert torch.allclose(gk.exact.expectation(f_lin, logits),
                          gk.exact.expectation(problem.f, logits))
    mean = torch.softmax(logits, -1).unsqueeze(0)
    assert torch.allclose(f_lin(mean)[0], gk.exact.expectation(f_lin, logits))
    assert not torch.allclose(problem.f(mean)[0], gk.exact.expectation(problem.f, logits))


def test_linear_twin_rejects_a_coupled_f():
    def coupled(samples):
        return samples[..., 0].prod(-1)

    with pytest.raises(ValueError, match="linear twin"):
        linear_twin(coupled, 3, 2)


def _interval(estimate: float, half_width: float = 0.0005) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, 5)


def _objective(differences: dict[str, float], width: float = 0.0005) -> dict:
    gaps = {"softmax": _interval(0.045), **{n: _interval(0.045 - d) for n, d in
                                            differences.items()}}
    return {"final_gap": gaps,
            "softmax_minus": {n: _interval(d, width) for n, d in differences.items()},
            "p_category_0": {n: _interval(10 * g.estimate) for n, g in gaps.items()},
            "curves": {}}


def _summary(nonlinear: dict[str, float], linear: dict[str, float],
             width: float = 0.0005) -> dict:
    point = {"bias": _interval(0.3), "variance": _interval(0.2), "cosine": _interval(0.7)}
    return {
        "seeds": 5, "problem": "toy", "taus": [1.0], "reference_tau": "1",
        "gradients": {"softmax": {"1": point}, "rloo": {"1": point}},
        "bias_floor": {"softmax": _interval(0.0, 0.0), "rloo": _interval(0.2)},
        "squared_bias": {"softmax": _interval(0.09), "rloo": _interval(0.0, 0.01)},
        "train_tau": 1.0, "steps": 300, "f_range": 0.1, "tolerance": 0.001,
        "objectives": {"nonlinear": _objective(nonlinear, width),
                       "linear": _objective(linear, width)},
    }


NONE_BETTER = dict.fromkeys(SAMPLING, 0.0)


def test_e3_verdict_holds_when_sampling_wins_only_on_the_nonlinear_f():
    nonlinear = {**NONE_BETTER, "rloo": 0.0445, "reinmax": 0.039}
    verdict = EXPERIMENT.verdict(_summary(nonlinear, NONE_BETTER))
    assert verdict.decision is Decision.YES
    assert "worse than 2 of 5 sampling estimators (reinmax, rloo)" in verdict.answer
    assert "reinmax 0.006 [0.0055, 0.0065]" in verdict.answer  # its final gap
    assert "softmax-tau is worse than 0 of 5" in verdict.answer
    assert "1 of 2 estimators are shown biased (squared bias above the Monte Carlo floor: " \
           "softmax)" in verdict.answer


def test_e3_verdict_fails_when_no_sampling_estimator_does_better():
    verdict = EXPERIMENT.verdict(_summary(NONE_BETTER, NONE_BETTER))
    assert verdict.decision is Decision.NO
    assert "worse than 0 of 5 sampling estimators" in verdict.answer


def test_e3_verdict_fails_when_sampling_also_wins_on_the_linear_f():
    nonlinear = {**NONE_BETTER, "rloo": 0.0445}
    linear = {**NONE_BETTER, "gs": 0.01}
    verdict = EXPERIMENT.verdict(_summary(nonlinear, linear))
    assert verdict.decision is Decision.NO
    assert "softmax-tau is worse than 1 of 5 (gs)" in verdict.answer


def test_e3_verdict_inconclusive_when_intervals_straddle_the_tolerance():
    nonlinear = {**NONE_BETTER, "rloo": 0.002}
    verdict = EXPERIMENT.verdict(_summary(nonlinear, NONE_BETTER, width=0.003))
    assert verdict.decision is Decision.UNDECIDED
    assert "worse than 0 of 5 sampling estimators" in verdict.answer
