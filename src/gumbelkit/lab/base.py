"""What the lab's experiments share: their configurations' common fields, checked before any run.

A lab configuration names estimators (fields ending in ``estimators``), temperatures (``tau``,
``taus`` and fields ending in ``_tau`` or ``_taus``) and counts (``seeds``, ``steps``, ``draws``,
``batch``); a bad value set from the command line (``gumbelkit lab --set E3.estimators=nope``) is
refused with a clear error before the lab computes or writes anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from .._validate import check_count, check_tau
from ..estimators import get_estimator
from ..harness.protocol import Experiment, ExperimentConfig
from ..harness.statistics import Decision

__all__ = ["LabExperiment", "across", "check_fields"]

COUNTS = ("seeds", "steps", "draws", "batch")


def check_fields(config: ExperimentConfig) -> None:
    """ValueError naming the field for an unknown estimator, a bad temperature or count."""
    for field in dataclasses.fields(config):
        name, value = field.name, getattr(config, field.name)
        values = value if isinstance(value, tuple) else (value,)
        if name.endswith("estimators"):
            if not values:
                raise ValueError(f"{name} is empty: give at least one estimator")
            for estimator in values:
                get_estimator(estimator)
        elif name in ("tau", "taus") or name.endswith(("_tau", "_taus")):
            for tau in values:
                try:
                    check_tau(tau)
                except (TypeError, ValueError) as error:
                    raise ValueError(f"{name}: {error}") from None
        elif name in COUNTS:
            check_count(value, name)


def across(by_cell: Mapping[str, Decision]) -> tuple[Decision, str]:
    """A claim's decision over a grid of the nuisance parameters an experiment fixes (one
    decision per cell, keyed by the cell's name), and where it holds, in words.

    The cells' common decision ("in every cell of the grid"); DEPENDS, naming the cells of each
    outcome, when it holds in some cells and fails in others (or a cell itself depends);
    UNDECIDED when some cells cannot decide and the others agree.
    """
    found = set(by_cell.values())
    if len(found) == 1:
        return next(iter(found)), "in every cell of the grid"
    decision = (Decision.DEPENDS if {Decision.YES, Decision.NO} <= found
                or Decision.DEPENDS in found else Decision.UNDECIDED)
    where = "; ".join(f"it {d.word} in " + ", ".join(c for c, e in by_cell.items() if e is d)
                      for d in Decision if d in found)
    return decision, where


def logit_grid(config: ExperimentConfig) -> list[dict]:
    """The runs over the grid of logits: one per seed in each cell of ``config.categories``
    (K) x ``config.scales`` (the logits' confidence)."""
    return [{"categories": k, "scale": scale, "seed": seed} for k in config.categories
            for scale in config.scales for seed in range(config.seeds)]


def by_logit_cell(results: list[tuple[dict, dict]]) -> dict[str, list[dict]]:
    """The results of :func:`logit_grid`'s runs, grouped by their cell (named ``"K=10,
    scale=0.5"``), in the order of the runs."""
    grouped: dict[str, list[dict]] = {}
    for key, result in results:
        grouped.setdefault(f"K={key['categories']}, scale={key['scale']:g}", []).append(result)
    return grouped


class LabExperiment(Experiment):
    """An experiment of the lab: :func:`check_fields` runs before any of its runs."""

    def check(self, config: ExperimentConfig) -> None:
        check_fields(config)
