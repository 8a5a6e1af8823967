"""E5: smoke test at the tiny budget, and the verdict both ways."""

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e5_conditional_generation import EXPERIMENT, GENERATIONS

from .helpers import run_tiny


def test_e5_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    config = EXPERIMENT.make_config("tiny")
    assert len(summary["settings"]) == len(config.estimators) * len(config.taus)
    for entry in summary["settings"].values():
        for generation in GENERATIONS:
            shares = [entry[generation][k].estimate for k in ("obama", "trump", "hybrid")]
            assert abs(sum(shares) - 1) < 1e-6
            assert 0 <= entry[generation]["mode_error"].estimate <= 1
        assert 0 <= entry["p_minority"].estimate <= 0.5
    assert set(summary["softmax_minus_gs_one_hot"]) == {f"{t:g}" for t in config.taus}


def _interval(estimate, low, high):
    return Interval(estimate, low, high, 5)


def _setting(obama, trump, hybrid, error_low, error_high, ood=(0.0, -0.01, 0.01)):
    error = (error_low + error_high) / 2
    shares = {"obama": _interval(obama, obama, obama), "trump": _interval(trump, trump, trump),
              "hybrid": _interval(hybrid, hybrid, hybrid),
              "mode_error": _interval(error, error_low, error_high),
              "energy": _interval(0.1, 0.05, 0.15)}
    return {"p_minority": _interval(0.27, 0.25, 0.29), "as_trained": shares, "one_hot": shares,
            "one_hot_minus_as_trained": _interval(*ood)}


def _summary(softmax, gs, gs_at_1=None, gs_tau=0.5):
    collapsed = _setting(0.0, 0.996, 0.004, 0.29, 0.31)
    return {
        "gs_tau": gs_tau, "validation_seeds": 3,
        "settings": {"softmax, tau=0.5": softmax, "softmax, tau=1": softmax,
                     "gs, tau=0.5": gs, "gs, tau=1": gs_at_1 or gs,
                     "st-gs, tau=0.5": collapsed, "st-gs, tau=1": collapsed},
        "softmax_minus_gs_one_hot": {"0.5": _interval(0.2, 0.18, 0.22),
                                     "1": _interval(0.2, 0.18, 0.22)},
        "energy_floor": _interval(0.004, 0.003, 0.005), "examples": {}, "seeds": 5,
        "obama_share": 0.3, "estimators": ["softmax", "gs", "st-gs"], "taus": [0.5, 1.0],
    }


def constant_code(summary):
    """The verdict on answer 2's first claim (the constant code and its hybrid)."""
    verdict, ood = EXPERIMENT.verdicts(summary)
    assert verdict.claims == EXPERIMENT.claims[:1] and ood.claims == EXPERIMENT.claims[1:]
    return verdict


def test_e5_out_of_domain_every_way():
    good = _setting(0.27, 0.72, 0.01, 0.02, 0.06)
    for ood, decision in (((0.3, 0.2, 0.4), Decision.YES), ((-0.1, -0.2, -0.05), Decision.NO),
                          ((0.1, -0.1, 0.3), Decision.UNDECIDED)):
        softmax = _setting(0.0, 0.1, 0.9, 0.85, 0.95, ood=ood)
        verdict = EXPERIMENT.verdicts(_summary(softmax=softmax, gs=good))[1]
        assert verdict.decision is decision and "never saw in training" in verdict.answer


def test_e5_verdict_both_ways():
    good = _setting(0.27, 0.72, 0.01, 0.02, 0.06)
    hybrid = _setting(0.0, 0.1, 0.9, 0.85, 0.95)
    holds = constant_code(_summary(softmax=hybrid, gs=good))
    assert holds.decision is Decision.YES
    assert "0.9 [0.9, 0.9] hybrids" in holds.answer and "produces hybrid outputs" in holds.answer
    assert "0.27 [0.27, 0.27]" in holds.answer and "0 of 2 settings" in holds.answer

    collapsed = _setting(0.0, 0.996, 0.004, 0.29, 0.31)
    single = constant_code(_summary(softmax=collapsed, gs=good))
    assert single.decision is Decision.YES and "collapses onto a single voice" in single.answer

    softmax_recovers = constant_code(_summary(softmax=good, gs=good))
    assert softmax_recovers.decision is Decision.NO
    assert "does not always miss" in softmax_recovers.answer

    gs_fails = constant_code(_summary(softmax=hybrid, gs=collapsed))
    assert gs_fails.decision is Decision.NO and "does not clearly recover" in gs_fails.answer

    unclear = _setting(0.2, 0.7, 0.1, 0.1, 0.2)
    assert constant_code(_summary(softmax=hybrid, gs=unclear)).decision is Decision.UNDECIDED


def test_gs_is_judged_at_the_tau_the_validation_seeds_chose():
    """The verdict reads gs at the validation seeds' tau, not at the tau best on its own data."""
    good = _setting(0.27, 0.72, 0.01, 0.02, 0.06)
    hybrid = _setting(0.0, 0.1, 0.9, 0.85, 0.95)
    unclear = _setting(0.2, 0.7, 0.1, 0.02, 0.4)
    chosen_well = constant_code(_summary(softmax=hybrid, gs=good, gs_at_1=unclear))
    assert chosen_well.decision is Decision.YES
    chosen_badly = constant_code(_summary(softmax=hybrid, gs=good, gs_at_1=unclear,
                                               gs_tau=1.0))
    assert chosen_badly.decision is Decision.UNDECIDED


def test_validation_seeds_run_only_when_a_tau_is_chosen():
    config = EXPERIMENT.make_config("quick")
    seeds = {key["seed"] for key in EXPERIMENT.runs(config)}
    assert seeds == set(range(config.seeds + config.validation_seeds))
    one_tau = EXPERIMENT.make_config("quick", taus=(1.0,))
    assert {key["seed"] for key in EXPERIMENT.runs(one_tau)} == set(range(config.seeds))
