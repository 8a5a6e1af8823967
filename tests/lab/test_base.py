"""A claim's decision across the grid of an experiment's nuisance parameters, and the grid of
logits that E1, E2, E10 and E14 run over."""

from types import SimpleNamespace

import pytest

from gumbelkit.harness.statistics import Decision
from gumbelkit.lab.base import across, by_logit_cell, logit_grid

YES, NO, OPEN, DEPENDS = Decision.YES, Decision.NO, Decision.UNDECIDED, Decision.DEPENDS


@pytest.mark.parametrize("decision", list(Decision))
def test_a_common_decision_stands_in_every_cell(decision):
    assert across({"K=2": decision, "K=10": decision}) == (decision, "in every cell of the grid")


def test_holding_in_some_cells_and_failing_in_others_depends_and_names_them():
    decision, where = across({"K=2": YES, "K=10": NO, "K=100": OPEN})
    assert decision is DEPENDS
    assert where == ("it holds in K=2; it does not hold in K=10; it is undecided in K=100")


@pytest.mark.parametrize("other", [YES, NO])
def test_undecided_cells_beside_agreeing_ones_leave_the_claim_undecided(other):
    assert across({"a": other, "b": OPEN})[0] is OPEN


def test_a_cell_that_depends_makes_the_claim_depend():
    assert across({"a": YES, "b": DEPENDS})[0] is DEPENDS


def test_the_logit_grid_runs_every_seed_in_every_cell_and_groups_them_back_by_cell():
    config = SimpleNamespace(categories=(2, 10), scales=(0.5, 4.0), seeds=3)
    runs = logit_grid(config)
    assert len(runs) == 2 * 2 * 3 and len({tuple(sorted(r.items())) for r in runs}) == len(runs)
    grouped = by_logit_cell([(key, {"seed": key["seed"]}) for key in runs])
    assert list(grouped) == ["K=2, scale=0.5", "K=2, scale=4", "K=10, scale=0.5", "K=10, scale=4"]
    assert all([r["seed"] for r in results] == [0, 1, 2] for results in grouped.values())
