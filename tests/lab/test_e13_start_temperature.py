"""E13: smoke test at the tiny budget, the annealed schedule, and the verdict every way."""

import pytest

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e13_start_temperature import EXPERIMENT, SCHEDULES, Config

from .helpers import run_tiny


def test_e13_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    for data in summary["cells"].values():
        assert set(data["schedules"]) == set(SCHEDULES)
        for values in data["schedules"].values():
            assert values["variation"].estimate >= 0 and values["spike"].estimate >= 1
            assert values["gap"].estimate >= -1e-9  # the best configuration is the floor


def test_the_annealed_run_starts_moderate_and_ends_small():
    config = Config(steps=100)
    schedule = config.tau("annealed")
    assert schedule(0) == config.moderate_tau
    assert schedule(60) == pytest.approx(config.small_tau) and schedule(99) == config.small_tau


def _cell(difference):
    values = {m: Interval(1.0, 0.9, 1.1, 10) for m in ("variation", "spike", "gap")}
    return {"schedules": {s: values for s in SCHEDULES},
            "small_minus_annealed": Interval(difference, difference - 0.05, difference + 0.05,
                                             10),
            "small_minus_moderate": Interval(0.0, -0.05, 0.05, 10)}


def verdict(*differences):
    cells = {f"p{i}, gs": _cell(d) for i, d in enumerate(differences)}
    return EXPERIMENT.verdict({"cells": cells, "seeds": 10, "small_tau": 0.1,
                               "moderate_tau": 1.0})


def test_the_verdict_every_way():
    assert verdict(0.3, 0.4).decision is Decision.YES
    assert verdict(-0.3).decision is Decision.NO
    assert verdict(0.0).decision is Decision.UNDECIDED
    assert verdict(0.3, -0.3).decision is Decision.DEPENDS
