"""Score-function estimators: exact samples, gradient ``E[(f(c) - b) grad log p(c)]``.

``reinforce`` (Williams 1992, "Simple Statistical Gradient-Following Algorithms for Connectionist
Reinforcement Learning"): ``(1/n) sum_s (f(c_s) - b) grad log p(c_s)`` with an optional constant
baseline ``b`` (option ``baseline``, default none). Unbiased for any ``b`` that does not depend on
the samples.

``rloo`` (Kool, van Hoof and Welling 2019, "Buy 4 REINFORCE Samples, Get a Baseline for Free!"):
each sample's baseline is the mean of the other ``n - 1``:
``(1/n) sum_s (f(c_s) - mean_{t != s} f(c_t)) grad log p(c_s)
= 1/(n-1) sum_s (f(c_s) - mean_t f(c_t)) grad log p(c_s)``. Unbiased; needs ``n_samples >= 2``.

Neither has a differentiable sample: use them through :func:`gumbelkit.expectation`.
"""

from __future__ import annotations

import torch

from .base import ScoreFunctionEstimator
from .options import Option, optional_real


class Reinforce(ScoreFunctionEstimator):
    """REINFORCE with an optional constant baseline (Williams 1992)."""

    name = "reinforce"
    reference = "Williams 1992"
    gradient = "score function, optional `baseline`"
    uses_tau = False
    option_specs = (Option("baseline", None, optional_real,
                           "a constant subtracted from f (default none)"),)

    def advantages(self, values, baseline):
        if baseline is None:
            return values
        if isinstance(baseline, torch.Tensor):
            baseline = baseline.detach()
        return values - baseline


class LeaveOneOut(ScoreFunctionEstimator):
    """REINFORCE with the leave-one-out baseline (Kool et al. 2019)."""

    name = "rloo"
    reference = "Kool, van Hoof and Welling 2019"
    gradient = "leave-one-out baseline, n ≥ 2"
    uses_tau = False
    min_samples = 2

    def advantages(self, values):
        n = values.shape[0]
        return (values - values.mean(0)) * (n / (n - 1))
