"""E8: smoke test at the tiny budget, the exploration count against its law, tau chosen on the
validation seeds only, and each verdict every way."""

import copy

import numpy as np
import pytest
import torch

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e8_exploration import EXPERIMENT, METHODS, Config, _optimise
from gumbelkit.workloads.factorial import BACKWARDS, Cell

from .helpers import run_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return run_tiny(EXPERIMENT, tmp_path_factory.mktemp("e8"))


def test_e8_runs_end_to_end(tiny):
    assert set(tiny["traps"]) == {"2x4", "3x4"}
    for data in tiny["traps"].values():
        assert set(data["methods"]) == set(METHODS)
        for m in data["methods"].values():
            assert 1 <= m["distinct"].estimate <= data["configurations"]
            assert 0.0 <= m["found"].estimate <= 1.0 and 0.0 <= m["success"].estimate <= 1.0
        assert data["methods"]["exact"]["tau"] is None
        assert data["methods"][Cell(1.0, "relaxed").label]["tau"] in (0.5, 1.0)


def test_distinct_count_follows_the_occupancy_law_when_theta_stays_put():
    # lr = 0: theta keeps its initial value, so st-gs's M = 5 steps x 4 draws decisions are M
    # independent draws of softmax(theta) (Gumbel-max), and the number of distinct ones has mean
    # sum_c 1 - (1 - p_c)^M. Occupancy indicators are negatively associated, so its variance is
    # at most sum_c Var(I_c) <= 16 / 4 = 4: over 256 seeds the mean's standard error is at most
    # 2 / 16 = 0.125, and 0.5 is 4 of them. The noise-free cell and the exact gradient follow
    # the mode alone: exactly one configuration.
    config = Config(seeds=256, validation_seeds=1, variables=(2,), steps=5, explore_steps=5,
                    lr=0.0)
    cpu = torch.device("cpu")
    sampled = _optimise(config, 2, Cell(1.0, "straight-through").label, [1.0], cpu)
    init = torch.stack([torch.randn(2, 4, generator=torch.Generator().manual_seed(s))
                        for s in range(config.seeds)]).double()
    p = torch.softmax(init, -1)
    joint = (p[:, 0, :, None] * p[:, 1, None, :]).reshape(config.seeds, 16)
    expected = (1 - (1 - joint) ** 20).sum(-1).numpy()
    assert abs(sampled["distinct"][0, :config.seeds].mean() - expected.mean()) < 0.5
    for method in (Cell(0.0, "relaxed").label, "exact"):
        assert np.all(_optimise(config, 2, method, [1.0], cpu)["distinct"] == 1)


def test_tau_is_chosen_on_the_validation_seeds_alone():
    config = Config(seeds=3, validation_seeds=2, variables=(2,), taus=(0.5, 1.0))
    # tau 0.5 is better on the held-out seeds (the first 3), tau 1 on the validation seeds
    value = [[9.0, 9.0, 9.0, 0.0, 0.0], [1.0, 1.0, 1.0, 5.0, 5.0]]
    zeros = [[0.0] * 5, [0.0] * 5]
    results = []
    for method in METHODS:
        taus = [None] if method in ("exact", "rloo") else [0.5, 1.0]
        rows = len(taus)
        results.append(({"variables": 2, "method": method},
                         {"taus": taus, "value": value[-rows:], "distinct": zeros[:rows],
                          "found": zeros[:rows], "success": zeros[:rows]}))
    summary = EXPERIMENT.summarize(config, results)
    chosen = summary["traps"]["2x4"]["methods"][Cell(1.0, "relaxed").label]
    assert chosen["tau"] == 1.0 and chosen["value"].estimate == 1.0


def _interval(estimate, low, high):
    return Interval(estimate, low, high, 128)


ABOVE, BELOW, STRADDLES = (5.0, 4.0, 6.0), (-5.0, -6.0, -4.0), (0.5, -1.0, 2.0)


def _verdict(tiny, which, distinct, success=STRADDLES):
    """The verdict on claim ``which`` (0: the question, 1: answer 3) when its contrast's
    distinct-configuration differences are ``distinct[i]`` in the i-th trap and backward."""
    summary = copy.deepcopy(tiny)
    contrast = ("noise", "parameter")[which]
    cells = [(t, b) for t in summary["traps"] for b in BACKWARDS]
    for (trap, backward), value in zip(cells, distinct, strict=True):
        summary["traps"][trap]["contrasts"][f"{contrast}, {backward}"] = {
            "distinct": _interval(*value), "success": _interval(*success)}
    verdict = EXPERIMENT.verdicts(summary)[which]
    assert verdict.claims == EXPERIMENT.claims[which:which + 1]
    return verdict


@pytest.mark.parametrize("which", [0, 1])
def test_e8_verdict_every_way(tiny, which):
    holds = _verdict(tiny, which, [ABOVE] * 4, success=ABOVE)
    assert holds.decision is Decision.YES and "holds (in every cell" in holds.answer
    assert "difference 5 [4, 6]" in holds.answer
    assert "led out of the trap (a higher success rate with the noise): it holds" in holds.answer

    fails = _verdict(tiny, which, [BELOW] * 4, success=BELOW)
    assert fails.decision is Decision.NO and "does not hold (in every cell" in fails.answer
    assert "the noise): it does not hold" in fails.answer

    unclear = _verdict(tiny, which, [ABOVE, ABOVE, STRADDLES, ABOVE])
    assert unclear.decision is Decision.UNDECIDED
    assert "is undecided in trap 3x4, relaxed" in unclear.answer
    assert "the noise): it is undecided" in unclear.answer

    depends = _verdict(tiny, which, [ABOVE, ABOVE, BELOW, BELOW])
    assert depends.decision is Decision.DEPENDS
    assert "it holds in trap 2x4, relaxed, trap 2x4, straight-through" in depends.answer
    assert "it does not hold in trap 3x4, relaxed, trap 3x4, straight-through" in depends.answer
    assert "trap 3x4, relaxed" in depends.number  # the weakest cell


def test_verdicts_read_their_own_contrast(tiny):
    question, other = EXPERIMENT.verdicts(_with_question_only(tiny))
    assert question.decision is Decision.NO and other.decision is Decision.YES
    assert "Gumbel noise (alpha 1" in question.answer
    assert "parameter noise (N(0, 1.28^2)" in other.answer


def _with_question_only(tiny):
    summary = copy.deepcopy(tiny)
    for data in summary["traps"].values():
        for backward in BACKWARDS:
            data["contrasts"][f"noise, {backward}"]["distinct"] = _interval(*BELOW)
            data["contrasts"][f"parameter, {backward}"]["distinct"] = _interval(*ABOVE)
    return summary


def test_bad_configurations_are_refused():
    for field, value in (("explore_steps", 0), ("explore_steps", 11), ("validation_seeds", 0),
                         ("variables", ())):
        with pytest.raises(ValueError, match="explore_steps|validation_seeds|variables"):
            EXPERIMENT.check(EXPERIMENT.make_config("tiny", **{field: value}))
