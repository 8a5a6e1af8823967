"""E5: smoke test at the tiny budget, the exact objective and the loss, the tau chosen on the
validation seeds, and each of the three verdicts every way."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e5_conditional_generation import (
    CELL_OF,
    EXPERIMENT,
    GENERATIONS,
    GS,
    HYBRID,
    OOD_MARGIN,
    OUT_OF_DOMAIN,
    REFERENCES,
    SOFTMAX,
    SPEAKER,
    _behaviour,
    _energy,
    _tau_methods,
    pair_expectation,
)

from .helpers import run_tiny


def test_e5_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    config = EXPERIMENT.make_config("tiny")
    assert len(summary["instances"]) == len(config.obama_shares)
    for inst in summary["instances"].values():
        assert set(inst["methods"]) == {*CELL_OF, *config.estimators, *REFERENCES}
        for method, entry in inst["methods"].items():
            assert (entry["tau"] is None) == (method in REFERENCES)
            for generation in GENERATIONS:
                shares = [entry[generation][k].estimate for k in ("obama", "trump", "hybrid")]
                assert abs(sum(shares) - 1) < 1e-6
                assert 0 <= entry[generation]["mode_error"].estimate <= 1
            assert 0 <= entry["p_minority"].estimate <= 0.5
        assert set(inst["contrasts"]) == {"noise, relaxed", "noise, straight-through",
                                          "backward, alpha=1"}


def test_the_exact_objective_is_the_enumeration_over_pairs_of_codes():
    """pair_expectation is gk.exact.expectation over two i.i.d. codes, value and gradient."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(3, 2, 2, generator=gen, dtype=torch.float64)
    logits = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    batched = pair_expectation(h, logits)
    (grad,) = torch.autograd.grad(batched.sum(), logits)
    for row in range(3):
        leaf = logits.detach()[row].clone().requires_grad_(True)
        exact = gk.exact.expectation(
            lambda c, h=h[row]: torch.einsum("nk,kl,nl->n", c[:, 0], h, c[:, 1]),
            leaf.expand(2, 2))
        (exact_grad,) = torch.autograd.grad(exact, leaf)
        torch.testing.assert_close(batched[row], exact)
        torch.testing.assert_close(grad[row], exact_grad)


def test_the_energy_distance_is_unbiased_and_sees_a_shift():
    """Two samples of 5 points of one law: the U-statistic has mean 0 (the V-statistic would be
    about 2/5 E|X - X'| = 0.71 too high). 4000 repetitions: the mean lies within 4 standard
    errors of 0 (a 6e-5 chance under the null); a shift of 2 gives a mean far above."""
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randn(4000, 5, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    same = _energy(x, y)
    assert same.mean().abs() < 4 * same.std() / 4000 ** 0.5
    shifted = _energy(x + torch.tensor([2.0, 0.0], dtype=torch.float64), y)
    assert shifted.mean() > 1.0


def test_behaviour_words_follow_the_shares():
    def metrics(obama, trump, hybrid, error):
        return {"obama": _point(obama), "trump": _point(trump), "hybrid": _point(hybrid),
                "mode_error": _point(error)}

    assert _behaviour(metrics(0.28, 0.71, 0.01, 0.02), 0.3).startswith("recovers the 0.7/0.3")
    assert _behaviour(metrics(0.0, 0.1, 0.9, 0.9), 0.3).startswith("produces hybrids")
    assert _behaviour(metrics(0.0, 1.0, 0.0, 0.3), 0.3).startswith("collapses onto the majority")
    assert _behaviour(metrics(0.95, 0.05, 0.0, 0.65), 0.3).startswith("collapses onto the minor")
    assert _behaviour(metrics(0.42, 0.5, 0.08, 0.2), 0.3).startswith("over-represents")
    assert _behaviour(metrics(0.1, 0.7, 0.2, 0.2), 0.3) \
        .startswith("under-represents the minority voice with hybrids")


def _point(value):
    return Interval(value, value, value, 10)


def _interval(estimate, low, high):
    return Interval(estimate, low, high, 10)


def _generation(obama, trump, hybrid, error):
    """Shares as exact numbers and the mode error as an interval (low, high)."""
    return {"obama": _point(obama), "trump": _point(trump), "hybrid": _point(hybrid),
            "mode_error": _interval(sum(error) / 2, *error), "energy": _point(0.1)}


RECOVERED = _generation(0.29, 0.7, 0.01, (0.01, 0.05))
COLLAPSED = _generation(0.0, 1.0, 0.0, (0.29, 0.31))
HYBRIDS = _generation(0.0, 0.1, 0.9, (0.85, 0.95))
UNCLEAR = _generation(0.2, 0.7, 0.1, (0.1, 0.2))
NO_CHANGE = ((0.0, -0.01, 0.01), (0.0, -0.005, 0.005))  # 95% and 90% intervals, within margin


def _method(generation, ood=NO_CHANGE, tau=0.5):
    (change, change_90) = ood
    return {"tau": tau, "validation": {}, "p_minority": _point(0.3),
            "as_trained": generation, "one_hot": generation,
            "ood": _interval(*change), "ood_90": _interval(*change_90),
            "ood_mode_error": _point(0.0),
            "recovered_seeds": {g: 10 * (generation["mode_error"].high < 0.15)
                                for g in GENERATIONS}}


def _instance(softmax, gs, share=0.3):
    methods = {m: _method(COLLAPSED) for m in _tau_methods(EXPERIMENT.make_config("quick"))}
    methods.update({r: _method(RECOVERED, tau=None) for r in REFERENCES})
    methods[SOFTMAX], methods[GS] = softmax, gs
    contrasts = {k: _interval(-0.2, -0.25, -0.15)
                 for k in ("noise, relaxed", "noise, straight-through", "backward, alpha=1")}
    return {"share": share, "recovered": share / 2, "methods": methods, "contrasts": contrasts,
            "energy_floor": _point(0.004), "examples": {}}


def _summary(*instances):
    return {"instances": {f"instance {i}": inst for i, inst in enumerate(instances)},
            "seeds": 10, "validation_seeds": 3, "estimators": ["reinmax"], "taus": [0.5, 1.0]}


def _verdict(summary, claim):
    verdicts = EXPERIMENT.verdicts(summary)
    assert [v.claims for v in verdicts] == [(SPEAKER,), (HYBRID,), (OUT_OF_DOMAIN,)]
    return verdicts[[SPEAKER, HYBRID, OUT_OF_DOMAIN].index(claim)]


def test_speaker_verdict_every_way():
    def decide(*pairs):
        summary = _summary(*(_instance(_method(s), _method(g)) for s, g in pairs))
        return _verdict(summary, SPEAKER)

    holds = decide((COLLAPSED, RECOVERED))
    assert holds.decision is Decision.YES
    assert "softmax-tau (relaxed alpha=0), tau=0.5 collapses onto the majority" in holds.answer
    assert "st-gs (straight-through alpha=1), tau=0.5 collapses onto the" in holds.answer
    assert "exact recovers the 0.7/0.3 mixture" in holds.answer
    assert "recovered in 10 of 10 seeds" in holds.answer and "in 0 of 10 seeds" in holds.answer
    assert "backward, alpha=1 -0.2 [-0.25, -0.15]" in holds.detail
    assert decide((HYBRIDS, RECOVERED)).decision is Decision.YES
    assert decide((RECOVERED, RECOVERED)).decision is Decision.NO  # softmax-tau recovers
    assert decide((COLLAPSED, COLLAPSED)).decision is Decision.NO  # gs fails too
    assert decide((COLLAPSED, UNCLEAR)).decision is Decision.UNDECIDED
    depends = decide((COLLAPSED, RECOVERED), (COLLAPSED, COLLAPSED))
    assert depends.decision is Decision.DEPENDS
    assert "it holds in instance 0; it does not hold in instance 1" in depends.answer


def test_speaker_verdict_needs_softmax_to_miss_with_both_codes():
    softmax = _method(COLLAPSED)
    softmax["one_hot"] = RECOVERED
    summary = _summary(_instance(softmax, _method(RECOVERED)))
    assert _verdict(summary, SPEAKER).decision is Decision.NO


def test_hybrid_verdict_every_way():
    def decide(*generations):
        summary = _summary(*(_instance(_method(g), _method(RECOVERED)) for g in generations))
        return _verdict(summary, HYBRID)

    holds = decide(HYBRIDS)
    assert holds.decision is Decision.YES and "produces hybrids" in holds.answer
    collapsed = decide(COLLAPSED)
    assert collapsed.decision is Decision.NO and "collapses onto the majority" in collapsed.answer
    straddles = _generation(0.0, 0.5, 0.5, (0.45, 0.55))
    straddles["hybrid"] = _interval(0.5, 0.4, 0.6)
    assert decide(straddles).decision is Decision.UNDECIDED
    assert decide(HYBRIDS, COLLAPSED).decision is Decision.DEPENDS


def test_out_of_domain_verdict_every_way():
    def decide(*changes):
        summary = _summary(*(_instance(_method(COLLAPSED, ood=c), _method(RECOVERED))
                             for c in changes))
        return _verdict(summary, OUT_OF_DOMAIN)

    m = OOD_MARGIN
    worse = ((3 * m, 2 * m, 4 * m), (3 * m, 2.2 * m, 3.8 * m))
    better = ((-3 * m, -4 * m, -2 * m), (-3 * m, -3.8 * m, -2.2 * m))
    unclear = ((m, 0.0, 2 * m), (m, 0.2 * m, 1.8 * m))  # neither beyond nor within the margin
    holds = decide(worse)
    assert holds.decision is Decision.YES and "never saw in training" in holds.answer
    assert decide(NO_CHANGE).decision is Decision.NO  # equivalent within the margin
    assert decide(better).decision is Decision.NO
    assert decide(unclear).decision is Decision.UNDECIDED
    assert decide(worse, NO_CHANGE).decision is Decision.DEPENDS


def _fake_result(config, errors_by_seed):
    """A run's result whose every per-seed value is 0 but the mode error and the energy."""
    seeds = len(errors_by_seed)
    zeros = [0.0] * seeds
    generation = {"obama": zeros, "trump": zeros, "hybrid": zeros,
                  "mode_error": errors_by_seed, "energy": errors_by_seed}
    return {"p_minority": zeros, "energy_floor": zeros, "points": {},
            "as_trained": generation, "one_hot": generation}


def test_each_tau_is_chosen_on_the_validation_seeds_and_judged_on_the_others():
    config = EXPERIMENT.make_config("tiny", obama_shares=(0.3,))
    test, validation = config.seeds, config.validation_seeds
    results = []
    for key in EXPERIMENT.runs(config):
        # tau=1 is better on the validation seeds, tau=0.5 on the held-out ones
        good_on_validation = key.get("tau") == 1.0
        errors = [0.1 if good_on_validation else 0.05] * test \
            + [0.05 if good_on_validation else 0.1] * validation
        results.append((key, _fake_result(config, errors)))
    summary = EXPERIMENT.summarize(config, results)
    for method, entry in summary["instances"]["Obama 0.3 / Trump 0.7"]["methods"].items():
        if method in REFERENCES:
            assert entry["tau"] is None
        else:
            assert entry["tau"] == 1.0
            assert entry["one_hot"]["mode_error"].estimate == 0.1  # the held-out seeds' value


def test_bad_configurations_are_refused_before_any_run():
    for overrides in ({"samples": 1}, {"obama_shares": (0.7,)}, {"obama_shares": ()},
                      {"validation_seeds": 0}, {"estimators": ("nope",)},
                      {"estimators": ("rloo",)}):
        with pytest.raises(ValueError):
            EXPERIMENT.check(EXPERIMENT.make_config("quick", **overrides))
    EXPERIMENT.check(EXPERIMENT.make_config("quick", taus=(1.0,), validation_seeds=0))


def test_validation_seeds_run_only_when_a_tau_is_chosen():
    config = EXPERIMENT.make_config("quick")
    keys = EXPERIMENT.runs(config)
    assert len(keys) == len(config.obama_shares) * (
        len(_tau_methods(config)) * len(config.taus) + len(REFERENCES))
    one_tau = EXPERIMENT.make_config("tiny", taus=(1.0,), obama_shares=(0.3,), steps=2)
    result = EXPERIMENT.run(one_tau, {"obama_share": 0.3, "method": "rloo"}, torch.device("cpu"))
    assert len(result["p_minority"]) == one_tau.seeds
    two_taus = EXPERIMENT.make_config("tiny", obama_shares=(0.3,), steps=2)
    result = EXPERIMENT.run(two_taus, {"obama_share": 0.3, "method": "rloo"}, torch.device("cpu"))
    assert len(result["p_minority"]) == two_taus.seeds + two_taus.validation_seeds
