"""Gumbel-Rao (Paulus, Maddison and Krause 2021, "Rao-Blackwellizing the Straight-Through
Gumbel-Softmax Gradient Estimator").

The forward value is ``D = one_hot(argmax(logits + G))``, a draw of Categorical(softmax(logits)).
The gradient is the straight-through Gumbel-Softmax gradient averaged over the Gumbel noise
*given* the sample, estimated with ``k`` conditional draws ``v_j`` (see
:func:`gumbelkit.noise.conditional_gumbel`):

    gradient = (1 / k) sum_j J(softmax(v_j / tau)) g / tau,

with ``J(p) = diag(p) - p p^T`` and ``g`` the gradient of f at D. It has the same expectation as
``st-gs`` and, by Rao-Blackwell, no larger variance (the paper's GR-MCk, default k = 10).
"""

from __future__ import annotations

from .._ops import one_hot, replace_gradient, shifted_to, tempered_softmax
from ..noise import conditional_gumbel
from ..sampling import sample_index
from .base import PathwiseEstimator
from .options import Option, check_count


class GumbelRao(PathwiseEstimator):
    """Rao-Blackwellized straight-through Gumbel-Softmax: option ``k`` (default 10)."""

    name = "gr"
    noise = "gumbel"
    reference = "Paulus, Maddison and Krause 2021"
    gradient = "mean over `k` conditional Gumbels"
    option_specs = (Option("k", 10, check_count, "conditional Gumbel draws per sample", int),)

    def relax(self, logits, tau, dim, generator, k):
        index = sample_index(logits, dim, generator)
        perturbed = conditional_gumbel(logits, index, k, dim, generator=generator)
        surrogate = tempered_softmax(shifted_to(logits, perturbed), tau, dim + 1).mean(0)
        return replace_gradient(one_hot(index, logits, dim), surrogate)
