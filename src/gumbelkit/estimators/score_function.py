"""Score-function estimators: exact samples, gradient ``E[(f(c) - b) grad log p(c)]``.

``reinforce`` (Williams 1992, "Simple Statistical Gradient-Following Algorithms for Connectionist
Reinforcement Learning"): ``(1/n) sum_s (f(c_s) - b) grad log p(c_s)`` with an optional constant
baseline ``b`` (option ``baseline``, default none): a finite number, or a tensor that broadcasts to
f's values without enlarging them (a scalar, or one value per row for a per-row f). Unbiased for
any ``b`` that does not depend on the samples. It is subtracted in f's dtype (half precision in
float32); a NaN or infinite baseline, or one beyond that dtype's range, raises ValueError (for a
tensor, while validation is on: see :func:`gumbelkit.set_validation`).

``rloo`` (Kool, van Hoof and Welling 2019, "Buy 4 REINFORCE Samples, Get a Baseline for Free!"):
each sample's baseline is the mean of the other ``n - 1``:
``(1/n) sum_s (f(c_s) - mean_{t != s} f(c_t)) grad log p(c_s)
= 1/(n-1) sum_s (f(c_s) - mean_t f(c_t)) grad log p(c_s)``. Unbiased; needs ``n_samples >= 2``.

Neither has a differentiable sample: use them through :func:`gumbelkit.expectation`.
"""

from __future__ import annotations

import torch

from .._ops import upcast
from .._validate import validation_enabled
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
        values = upcast(values)  # half-precision values minus a baseline can overflow their range
        if isinstance(baseline, torch.Tensor):
            baseline = baseline.detach()
            if not _broadcasts_to(baseline.shape, values.shape):
                raise ValueError(
                    f"reinforce option baseline of shape {tuple(baseline.shape)} does not "
                    f"broadcast to f's values of shape {tuple(values.shape)}; give a scalar, or "
                    "one value per row of logits for a per-row f"
                )
            # a pass over the values (and, on a GPU, a sync): only while validation is on
            bad = validation_enabled() and not torch.isfinite(baseline.to(values.dtype)).all()
        else:
            bad = abs(baseline) > torch.finfo(values.dtype).max
        if bad:
            raise ValueError(
                f"reinforce option baseline is NaN, infinite or beyond the range of "
                f"{values.dtype}, in which it is subtracted from f's values; give finite values "
                "within that range"
            )
        return values - baseline


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:  # torch's message for shapes that do not broadcast at all
        return False


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
