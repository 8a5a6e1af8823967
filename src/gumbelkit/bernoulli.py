"""``gk.bernoulli``: estimators for binary variables and Hard Concrete L0 gates.

Re-exports :mod:`gumbelkit.estimators.bernoulli` (its docstring has the formulas and papers).
"""

from .estimators.bernoulli import (
    BERNOULLI_ESTIMATORS as ESTIMATORS,
)
from .estimators.bernoulli import (
    expectation,
    hard_concrete,
    l0_penalty,
    sample,
)

__all__ = ["ESTIMATORS", "expectation", "hard_concrete", "l0_penalty", "sample"]
