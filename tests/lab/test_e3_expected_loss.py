"""E3: smoke test at the tiny budget, the linear twin, the exact gaps, and the verdict every way."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e3_expected_loss import (
    EXACT,
    EXPERIMENT,
    LOSSES,
    OBJECTIVES,
    SOFTMAX,
    Config,
    _train,
    entropy,
    expected,
    gap,
    graded,
    linear_twin,
    methods,
    sampling,
    worse,
)
from gumbelkit.workloads.factorial import CELLS
from gumbelkit.workloads.problems import make_problem

from .helpers import run_tiny


def test_e3_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    config = EXPERIMENT.make_config("tiny")
    assert set(summary["gradients"]) == set(config.estimators)
    assert {"zgr", "dst-gs"} <= set(summary["gradients"])  # the registry's, untuned ones aside
    assert summary["gradients"]["softmax"]["1"]["variance"].high == 0.0  # deterministic
    assert set(summary["cells"]) == {f"{instance}, {loss}, tau={tau:g}"
                                     for instance in ("K=2", "K=10")
                                     for loss in ("E f", "KL(p || p*)")
                                     for tau in config.train_taus}
    for cell in summary["cells"].values():
        assert set(cell["objectives"]) == set(OBJECTIVES)
        for data in cell["objectives"].values():
            assert set(data["gap"]) == set(methods(config))  # 8 cells, exact, estimators
            assert data["best"] in sampling(config)
            assert set(data["noise"]) == {"relaxed", "straight-through"}


def test_methods_are_the_factorial_the_exact_gradient_and_the_estimators():
    config = Config(train_estimators=("rloo",))
    assert methods(config) == [*(c.label for c in CELLS), EXACT, "rloo"]
    assert SOFTMAX not in sampling(config) and EXACT not in sampling(config)
    assert len(sampling(config)) == 6 + 1  # the cells with alpha > 0, and rloo


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


def _enumerated(problem):
    index = gk.exact.configurations(*problem.logits.shape)
    return index, problem.f(torch.nn.functional.one_hot(index, problem.logits.shape[1]).double())


@pytest.mark.parametrize("instance", [make_problem("poly", 3), graded(3)])
def test_batched_expectation_and_gaps_are_the_enumerated_ones(instance):
    index, values = _enumerated(instance)
    logits = torch.randn(4, *instance.logits.shape, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    exact = torch.stack([gk.exact.expectation(instance.f, row) for row in logits])
    # float64 sums of the same terms in another order: agreement to rounding
    assert torch.allclose(expected(values, index, logits), exact, rtol=1e-12, atol=0)
    assert torch.all(gap(values, index, logits, "expected", 0.01) >= 0)
    # KL(p || p*) by its definition, over the enumerated configurations
    temperature = 0.01
    log_p = torch.log_softmax(logits, -1)[:, torch.arange(index.shape[1]), index].sum(-1)
    log_target = torch.log_softmax(-values / temperature, 0)
    kl = (log_p.exp() * (log_p - log_target)).sum(-1)
    assert torch.allclose(gap(values, index, logits, "kl", temperature), kl, rtol=1e-9)
    # the factorised entropy is the entropy of the joint
    assert torch.allclose(entropy(logits), -(log_p.exp() * log_p).sum(-1), rtol=1e-12)


def test_graded_optimum_is_every_variable_on_the_category_nearest_the_target():
    problem = graded(0)
    index, values = _enumerated(problem)
    assert index[values.argmin()].tolist() == [4, 4, 4]  # v = 4/9, the nearest to 0.45
    assert problem.logits.abs().max() <= 0.01


def test_exact_gradient_fits_the_density_and_softmax_tau_stops_at_f_of_the_mean():
    config = Config(seeds=2, validation_seeds=1, steps=300, train_estimators=("rloo",))
    linear = _train(config, {"instance": "K=2", "tau": 1.0, "objective": "linear",
                             "method": EXACT})
    # the exact gradient of a smooth loss with an interior optimum (p* has full support):
    # KL(p || p*) -> 0, and H(p) -> H(p*)
    assert max(linear["kl"]["gap"]) < 1e-6
    assert linear["kl"]["entropy"] == pytest.approx([linear["kl"]["target_entropy"]] * 2,
                                                    abs=1e-3)
    nonlinear = _train(config, {"instance": "K=2", "tau": 1.0, "objective": "nonlinear",
                                "method": SOFTMAX})
    # softmax-tau at tau=1 minimises f(E[c]): p(z=1) = 0.45, where E f - min f =
    # 0.45 * 0.55 + 0 - (0 - 0.45)^2 = 0.045 (E (z - t)^2 = p(1 - p) + (p - t)^2)
    assert nonlinear["expected"]["gap"] == pytest.approx([0.045, 0.045], abs=1e-4)
    assert set(nonlinear) == {"steps", "f_range", *LOSSES}


def _interval(estimate: float, half_width: float = 0.001) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, 10)


def test_worse_every_way():
    margin = 0.01
    assert worse(_interval(0.05), _interval(0.05), margin) is Decision.YES
    assert worse(_interval(-0.05), _interval(-0.05), margin) is Decision.NO  # better
    assert worse(_interval(0.002), _interval(0.002), margin) is Decision.NO  # within +-margin
    assert worse(_interval(0.01, 0.02), _interval(0.01, 0.015), margin) is Decision.UNDECIDED


def _objective(difference: float, width: float) -> dict:
    best = "rloo"
    return {"gap": {SOFTMAX: _interval(0.05 + difference), best: _interval(0.05)},
            "entropy": {SOFTMAX: _interval(5.5), best: _interval(4.2)},
            "best": best,
            "softmax_minus_best": _interval(difference, width),
            "softmax_minus_best_90": _interval(difference, 0.8 * width),
            "noise": {"relaxed": _interval(-difference), "straight-through": _interval(-0.01)},
            "backward": _interval(0.003)}


def _summary(cells: dict[str, tuple[float, float]], width: float = 0.001) -> dict:
    """Cells by name: (softmax-tau minus the best on the nonlinear f, on the linear twin)."""
    point = {"bias": _interval(0.3), "variance": _interval(0.2), "cosine": _interval(0.7)}
    return {
        "seeds": 10, "validation_seeds": 10, "problem": "toy", "taus": [1.0],
        "reference_tau": "1",
        "gradients": {"softmax": {"1": point}, "rloo": {"1": point}},
        "bias_floor": {"softmax": _interval(0.0, 0.0), "rloo": _interval(0.2)},
        "squared_bias": {"softmax": _interval(0.09), "rloo": _interval(0.0, 0.01)},
        "train_taus": [1.0], "steps": 300, "temperature": 0.01,
        "cells": {name: {"loss": "kl" if "KL" in name else "expected", "margin": 0.01,
                         "target_entropy": 4.24,
                         "objectives": {"nonlinear": _objective(nonlinear, width),
                                        "linear": _objective(linear, width)}}
                  for name, (nonlinear, linear) in cells.items()},
    }


NAMES = ("K=2, E f", "K=2, KL(p || p*)", "K=10, E f", "K=10, KL(p || p*)")


def test_e3_verdict_holds_when_softmax_tau_fails_only_on_the_nonlinear_f():
    verdict = EXPERIMENT.verdict(_summary(dict.fromkeys(NAMES, (0.04, -0.02))))
    assert verdict.decision is Decision.YES
    assert "Answer 3's claim holds (in every cell of the grid)" in verdict.answer
    assert "K=2, E f: softmax-tau 0.09 [0.089, 0.091] vs rloo 0.05 [0.049, 0.051] " \
           "(difference 0.04 [0.039, 0.041])" in verdict.answer
    assert "K=2, KL(p || p*): p* 4.24, softmax-tau 5.5 [5.5, 5.5] (above p*'s)" \
        in verdict.answer  # entropies
    assert "noise -0.04 [-0.041, -0.039] (relaxed)" in verdict.detail  # the factorial
    assert "the noise lowers the gap in 4 and raises it in 4 of 8 at the relaxed backward" \
        in verdict.detail
    assert "straight-through instead of relaxed lowers the gap in 0 and raises it in 8 of 8" \
        in verdict.detail
    assert "1 of 2 estimators are shown biased" in verdict.answer
    assert verdict.number.startswith("K=2, E f, nonlinear f: softmax-tau minus rloo 0.04")


def test_e3_verdict_fails_when_softmax_tau_is_as_good_on_the_nonlinear_f():
    verdict = EXPERIMENT.verdict(_summary(dict.fromkeys(NAMES, (0.001, 0.0))))
    assert verdict.decision is Decision.NO
    assert "does not hold (in every cell of the grid)" in verdict.answer


def test_e3_verdict_fails_when_softmax_tau_is_also_worse_on_the_linear_twin():
    verdict = EXPERIMENT.verdict(_summary(dict.fromkeys(NAMES, (0.04, 0.04))))
    assert verdict.decision is Decision.NO


def test_e3_verdict_depends_on_the_cell_and_names_it():
    cells = {**dict.fromkeys(NAMES, (0.04, -0.02)), "K=10, E f": (0.0, 0.0)}
    verdict = EXPERIMENT.verdict(_summary(cells))
    assert verdict.decision is Decision.DEPENDS
    assert "it does not hold in K=10, E f" in verdict.answer
    assert "it holds in K=2, E f, K=2, KL(p || p*), K=10, KL(p || p*)" in verdict.answer


def test_e3_verdict_inconclusive_when_intervals_straddle_the_margin():
    verdict = EXPERIMENT.verdict(_summary(dict.fromkeys(NAMES, (0.01, -0.02)), width=0.02))
    assert verdict.decision is Decision.UNDECIDED
    assert "is undecided" in verdict.answer
