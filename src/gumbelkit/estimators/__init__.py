"""The estimators, one module per family, and the registry ``ESTIMATORS`` (name -> estimator).

Each estimator carries its metadata (see :class:`~gumbelkit.estimators.base.Estimator`): adding
one is its module and one line below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .base import Estimator, PathwiseEstimator, ScoreFunctionEstimator, lookup
from .decoupled import DecoupledStraightThroughGumbel
from .gumbel_rao import GumbelRao
from .options import Option
from .rebar import Rebar, Relax
from .reinmax import ReinMax
from .relaxed import GumbelSoftmax, Softmax
from .score_function import LeaveOneOut, Reinforce
from .straight_through import (
    ArgmaxStraightThrough,
    GappedStraightThrough,
    StraightThrough,
    StraightThroughGumbel,
)
from .zgr import ZGR

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "Option",
    "PathwiseEstimator",
    "ScoreFunctionEstimator",
    "get_estimator",
]

ESTIMATORS: Mapping[str, Estimator] = MappingProxyType(
    {
        estimator.name: estimator
        for estimator in (
            Softmax(),
            ArgmaxStraightThrough(),
            GumbelSoftmax(),
            StraightThroughGumbel(),
            DecoupledStraightThroughGumbel(),
            StraightThrough(),
            GumbelRao(),
            ZGR(),
            GappedStraightThrough(),
            ReinMax(),
            Reinforce(),
            LeaveOneOut(),
            Rebar(),
            Relax(),
        )
    }
)


def get_estimator(name: str | Estimator) -> Estimator:
    """The registered estimator called ``name`` (an Estimator instance is returned as is)."""
    return name if isinstance(name, Estimator) else lookup(ESTIMATORS, name, "estimator")
