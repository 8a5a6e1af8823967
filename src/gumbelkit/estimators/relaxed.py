"""Relaxed (soft) estimators: the forward value is a point of the simplex, not a category.

``softmax``: ``y = softmax(logits / tau)``, no noise, exact gradient of ``y``. This is the seed
thread's "softmax with temperature": it differentiates ``f(E-ish[c])``, not ``E[f(c)]``.

``gs``: Gumbel-Softmax / Concrete (Jang, Gu and Poole 2017, "Categorical Reparameterization with
Gumbel-Softmax"; Maddison, Mnih and Teh 2017, "The Concrete Distribution"):
``y = softmax((logits + G) / tau)``, G ~ Gumbel(0, 1), reparameterized gradient
``d f(y) / d logits``. As tau -> 0 the samples become one-hot draws of Categorical(softmax(logits)).
"""

from __future__ import annotations

from .. import kernels
from .._ops import tempered_softmax
from .base import PathwiseEstimator


class Softmax(PathwiseEstimator):
    """``softmax(logits / tau)``: deterministic, the exact gradient of that relaxation."""

    name = "softmax"
    forward = "soft"
    noise = "none"
    reference = "the seed thread's \"softmax with temperature\""
    gradient = "exact, of that"

    def relax(self, logits, tau, dim, generator):
        return tempered_softmax(logits, tau, dim)


class GumbelSoftmax(PathwiseEstimator):
    """``softmax((logits + G) / tau)`` with its reparameterized gradient (Jang et al. 2017)."""

    name = "gs"
    forward = "soft"
    noise = "gumbel"
    reference = "Jang, Gu and Poole 2017; Maddison, Mnih and Teh 2017"
    gradient = "reparameterized"
    hard = False

    def relax(self, logits, tau, dim, generator):
        return kernels.gumbel_softmax(logits, tau, self.hard, dim, generator)
