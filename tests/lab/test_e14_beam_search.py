"""E14: smoke test at the tiny budget; the verdict fed synthetic summaries giving every outcome
(holds, does not hold, undecided, depends); the exact pieces (sequence law, beam search, the law
of ordered draws without replacement) against brute force; the estimators' (un)biasedness."""

import itertools
import math

import pytest
import torch

from gumbelkit.estimators.subsets import ordered_log_prob
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e14_beam_search import (
    EXPERIMENT,
    GAIN_MARGIN,
    beam_search,
    entropy_estimates,
    ordered_law,
    sequence_log_probs,
)

from .helpers import run_tiny


def test_e14_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["cells"]) == {"K=10, scale=4"}


def test_e14_width_one_is_greedy_and_gains_nothing(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path, beam=1)
    cell = summary["cells"]["K=10, scale=4"]
    assert cell["gain"].estimate == 0 and cell["gain"].low == cell["gain"].high == 0
    assert EXPERIMENT.verdict(summary).decision is Decision.NO


@pytest.mark.parametrize("override", [{"beam": 10}, {"length": 8}, {"calls": 10**6},
                                      {"models": 0}])
def test_e14_refuses_what_it_cannot_run(override):
    with pytest.raises(ValueError):
        EXPERIMENT.check(EXPERIMENT.make_config("quick", **override))


def _interval(estimate, half):
    return Interval(estimate, estimate - half, estimate + half, 10)


POSITIVE = _interval(10 * GAIN_MARGIN, 2 * GAIN_MARGIN)  # above 0, beyond the margin
NEGLIGIBLE = _interval(0.0, GAIN_MARGIN / 2)  # within the margin
UNSURE = _interval(GAIN_MARGIN, 2 * GAIN_MARGIN)  # straddles 0 and the margin


def _cell(gain=POSITIVE, softmax_share=1.0):
    some = _interval(0.1, 0.01)
    law = {"min_p_value": 0.3, "rejected": False, "tv": some}
    return {
        "search": {name: {"gap": some, "hit": some} for name in ("greedy", "beam",
                                                                 "gumbel-top-k")},
        "gain": gain, "gain_90": gain, "sampled_minus_beam": _interval(-1.0, 0.1),
        "softmax_top_k": {"1": softmax_share, "0.01": 0.5},
        "gumbel_top_k_exact": some, "gumbel_top_k_share": some,
        "law": {"gumbel-top-k": law, "reference": law}, "tv_minus_reference": some,
        "diversity": {name: {"distinct": some, "mass": some} for name in ("top-k",
                                                                         "gumbel-top-k")},
        "bias": {name: some for name in ("top-k", "first draw", "Kool et al.")},
        "rmse": {name: some for name in ("top-k", "first draw", "Kool et al.")},
    }


def _summary(*cells):
    return {"cells": {f"K={10 * (i + 1)}, scale=4": c for i, c in enumerate(cells)},
            "threshold": 1e-4, "beam": 3, "calls": 10, "seeds": 10, "models": 4, "draws": 100}


@pytest.mark.parametrize(("cells", "expected"), [
    ([_cell(), _cell()], Decision.YES),
    ([_cell(NEGLIGIBLE), _cell(NEGLIGIBLE)], Decision.NO),
    ([_cell(_interval(-0.5, 0.1)), _cell(_interval(-0.5, 0.1))], Decision.NO),
    ([_cell(softmax_share=0.9), _cell(softmax_share=0.9)], Decision.NO),
    ([_cell(UNSURE), _cell()], Decision.UNDECIDED),
    ([_cell(), _cell(NEGLIGIBLE)], Decision.DEPENDS),
])
def test_e14_verdict_every_way(cells, expected):
    verdict = EXPERIMENT.verdict(_summary(*cells))
    assert verdict.decision is expected and expected.word in verdict.answer
    if expected is Decision.DEPENDS:
        assert "K=20, scale=4" in verdict.answer  # names the cell where it fails


def _bigram(models=2, size=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    initial = torch.log_softmax(torch.randn(models, size, generator=gen, dtype=torch.float64), -1)
    transition = torch.log_softmax(torch.randn(models, size, size, generator=gen,
                                               dtype=torch.float64) * 2, -1)
    return initial, transition


def test_sequence_log_probs_are_the_chain_rule_at_the_flat_index():
    initial, transition = _bigram()
    table = sequence_log_probs(initial, transition, 3)
    for m, (a, b, c) in itertools.product(range(2), itertools.product(range(4), repeat=3)):
        expected = initial[m, a] + transition[m, a, b] + transition[m, b, c]
        assert table[m, (a * 4 + b) * 4 + c] == pytest.approx(float(expected), abs=1e-12)
    assert torch.allclose(table.exp().sum(1), torch.ones(2, dtype=torch.float64))


def test_beam_search_greedy_and_full_width_against_brute_force():
    for seed in range(5):
        initial, transition = _bigram(models=3, size=5, seed=seed)
        table = sequence_log_probs(initial, transition, 2)
        # width K keeps every first token: exact at length 2
        assert torch.equal(beam_search(initial, transition, 2, 5), table.argmax(1))
        first = initial.argmax(1)
        second = transition[torch.arange(3), first].argmax(1)
        assert torch.equal(beam_search(initial, transition, 2, 1), first * 5 + second)


def test_ordered_law_is_the_law_of_draws_without_replacement():
    logits = torch.randn(5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    law = ordered_law(torch.softmax(logits, 0), 3)
    assert law.sum().item() == pytest.approx(1.0, abs=1e-12)
    for tuple_ in itertools.product(range(5), repeat=3):
        if len(set(tuple_)) < 3:
            assert law[tuple_] == 0
        else:
            expected = ordered_log_prob(logits, torch.tensor(tuple_)).exp()
            assert law[tuple_].item() == pytest.approx(expected.item(), rel=1e-10)


def test_entropy_estimates_sampled_unbiased_top_k_biased():
    log_probs = torch.log_softmax(torch.randn(20, generator=torch.Generator().manual_seed(1),
                                              dtype=torch.float64) * 2, 0)
    entropy = float(-(log_probs.exp() * log_probs).sum())
    draws = 200_000
    estimates = entropy_estimates(log_probs, 3, draws, torch.Generator().manual_seed(2))
    for name in ("first draw", "Kool et al."):
        values = estimates[name]
        # unbiased: the mean lies within 5 standard errors (a false failure has p < 1e-6)
        assert abs(float(values.mean()) - entropy) < 5 * float(values.std()) / math.sqrt(draws)
    # the top-3 hold the most probable choices, whose -log p is smallest: H underestimated
    assert float(estimates["top-k"]) < entropy - 0.1
