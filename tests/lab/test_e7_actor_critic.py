"""E7: smoke test at the tiny budget, the pairing it relies on, and every verdict every way."""

import dataclasses

import pytest
import torch

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e7_actor_critic import ERROR_MARGIN, EXPERIMENT, MARGIN, NEAR_ONE_HOT, _cell
from gumbelkit.workloads.bandit import Bandit, BatchedCritics

from .helpers import run_tiny

SOFTMAX, GS, ARGMAX_ST, ST_GS = (("relaxed", 0.0), ("relaxed", 1.0), ("straight-through", 0.0),
                                 ("straight-through", 1.0))


def test_e7_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    cells = summary["instances"]["3x2"]["cells"]
    factorial = {_cell(alpha, backward, 0.5) for backward in ("relaxed", "straight-through")
                 for alpha in (0.0, 0.5, 1.0, 2.0)}
    assert set(cells) == factorial | {"exact", "rloo"}
    for label, m in cells.items():
        assert 0.0 <= m["return"].estimate <= 1.0
        assert m["return"].n == 2  # the held-out seeds only (tiny: 1 validation, 2 held out)
        one_hot = label in ("exact", "rloo") or "straight-through" in label
        assert (m["softness"].estimate == 0.0) is one_hot  # one-hot inputs are exactly one-hot
    assert summary["instances"]["3x2"]["chosen_tau"] == 0.5


def test_repeated_seed_ids_are_identical_copies():
    """Runs batch several temperatures of one seed; the copies must be the same problem."""
    ids = [0, 1, 0]
    bandit = Bandit(ids, states=2, components=2, choices=3, device=torch.device("cpu"))
    critics = BatchedCritics(ids, states=2, action_size=6, hidden=8, device=torch.device("cpu"))
    x = torch.rand(4, 1, 2, 2, 3).expand(4, 3, 2, 2, 3)
    torch.testing.assert_close(bandit.value(x)[:, 0], bandit.value(x)[:, 2], rtol=0, atol=0)
    torch.testing.assert_close(critics(x)[:, 0], critics(x)[:, 2], rtol=0, atol=0)
    assert not torch.equal(bandit.value(x)[:, 0], bandit.value(x)[:, 1])


def test_bad_configurations_are_refused():
    for change in ({"instances": ("6by2",)}, {"instances": ()}, {"validation_seeds": 0}):
        with pytest.raises(ValueError):
            EXPERIMENT.check(dataclasses.replace(EXPERIMENT.make_config(), **change))


def _pair(estimate, half):
    """A paired difference: its interval and a narrower equivalence (TOST) interval."""
    return {"diff": Interval(estimate, estimate - half, estimate + half, 16),
            "eq": Interval(estimate, estimate - 0.8 * half, estimate + 0.8 * half, 16)}


def _value(estimate, half=0.005):
    return Interval(estimate, estimate - half, estimate + half, 16)


def _instance(deficit=(0.0, 0.01), excess=(0.0, 0.005), softness=0.01,
              softness_cost=(0.0, 0.01), noise_cost=(0.1, 0.02)):
    """One bandit's hand-made summary, at taus 0.2 (low, also chosen) and 3 (high)."""
    def method(cell, alpha, tau):
        return {"cell": cell, "alpha": alpha, "tau": tau, "known_as": "",
                "return": _value(0.9), "exact_minus": _pair(*deficit),
                "critic_error": _value(0.05), "onehot_error": _value(0.04),
                "mismatch": _pair(0.001, 0.002), "softness": _value(softness, 0.004)}
    cells = {_cell(alpha, cell, tau): method(cell, alpha, tau)
             for cell, alpha in (SOFTMAX, GS, ARGMAX_ST, ST_GS) for tau in (0.2, 3.0)}
    cells |= {ref: method(ref, None, None) for ref in ("exact", "rloo")}
    contrast = {"noise, relaxed": _pair(0.0, 0.01), "noise, straight-through": _pair(*noise_cost),
                "backward, alpha=0": _pair(*softness_cost), "backward, alpha=1": _pair(0.0, 0.01)}
    probe = {"uniform_error": _value(0.05), "corner_error": _value(0.04), "excess": _pair(*excess)}
    return {"cells": cells, "contrasts": {"0.2": contrast, "3": contrast}, "chosen_tau": 0.2,
            "probe": probe,
            "validation_return": {"0.2": 0.9, "3": 0.8}}


def _verdicts(first, second=None):
    """The three verdicts of a summary of two bandits (the second like the first unless given)."""
    instances = {"6x2": _instance(**first), "2x10": _instance(**(first if second is None
                                                                  else second))}
    summary = {"instances": instances, "seeds": 16, "validation_seeds": 8, "warmup": 100,
               "low_tau": 0.2, "high_tau": 3.0}
    verdicts = EXPERIMENT.verdicts(summary)
    assert [v.claims for v in verdicts] == [(c,) for c in EXPERIMENT.claims]  # one per author
    return verdicts


def test_answer_3_every_way():
    big, nil = (3 * MARGIN, 0.02), (0.0, 0.01)
    holds = _verdicts({"deficit": big})[0]
    assert holds.decision is Decision.YES and "in every cell of the grid" in holds.answer
    assert "falls short of the exact policy gradient by 0.09 [0.07, 0.11]" in holds.answer
    assert "the lack of noise costs more than the margin" in holds.answer  # the deficit's source
    assert "6x2 at tau=0.2: noise 0 [-0.01, 0.01] relaxed" in holds.detail  # the factorial
    assert _verdicts({"deficit": nil})[0].decision is Decision.NO
    gain = (-2 * MARGIN, 0.04)  # softmax-tau better than the reference: not equivalent, a gain
    assert _verdicts({"deficit": gain})[0].decision is Decision.NO
    near_margin = (MARGIN, 0.02)  # interval straddles the margin
    assert _verdicts({"deficit": near_margin})[0].decision is Decision.UNDECIDED
    depends = _verdicts({"deficit": big}, {"deficit": nil})[0]
    assert depends.decision is Decision.DEPENDS
    assert "holds in 6x2" in depends.answer and "does not hold in 2x10" in depends.answer


def test_ejang_every_way():
    big, nil = (3 * ERROR_MARGIN, 0.01), (0.0, 0.005)
    holds = _verdicts({"excess": big})[1]
    assert holds.decision is Decision.YES and "excess 0.045 [0.035, 0.055]" in holds.answer
    assert "softmax-tau's mismatch is tau=0.2 0.001" in holds.answer  # reported, not deciding
    assert _verdicts({"excess": nil})[1].decision is Decision.NO
    assert _verdicts({"excess": (-0.02, 0.01)})[1].decision is Decision.NO  # better at x=1/K
    assert _verdicts({"excess": (ERROR_MARGIN, 0.01)})[1].decision is Decision.UNDECIDED
    assert _verdicts({"excess": big}, {"excess": nil})[1].decision is Decision.DEPENDS


def test_grady_s_objection_every_way():
    big, nil = (3 * MARGIN, 0.02), (0.0, 0.01)
    holds = _verdicts({"softness_cost": nil, "noise_cost": big})[2]
    assert holds.decision is Decision.YES
    assert "softness costs practically nothing" in holds.answer
    helps = _verdicts({"softness_cost": (-2 * MARGIN, 0.01), "noise_cost": big})[2]
    assert helps.decision is Decision.YES and "softness helps" in helps.answer
    no_noise_needed = _verdicts({"noise_cost": nil})[2]
    assert no_noise_needed.decision is Decision.NO
    assert "the lack of noise costs practically nothing" in no_noise_needed.answer
    softness_matters = _verdicts({"softness_cost": big})[2]
    assert softness_matters.decision is Decision.NO
    not_near = _verdicts({"softness": 2 * NEAR_ONE_HOT})[2]  # the premise cannot be tested
    assert not_near.decision is Decision.UNDECIDED and "not tested here" in not_near.answer
    unclear = _verdicts({"noise_cost": (MARGIN, 0.02)})[2]
    assert unclear.decision is Decision.UNDECIDED
    assert _verdicts({}, {"noise_cost": nil})[2].decision is Decision.DEPENDS
