"""ZGR (Shekhovtsov 2023, "Cold Analysis of Rao-Blackwellized Straight-Through Gumbel-Softmax
Gradient Estimator", ICML 2023): the zero-temperature limit of Gumbel-Rao.

As tau -> 0 the Gumbel-Rao gradient (``gr``) tends to the mean of two gradients of the sampled
one-hot ``D ~ softmax(logits)``: straight-through's ``J(p) g`` and DARN's (Gregor et al. 2014,
"Deep AutoRegressive Networks") ``(D - p) (D - p)^T g``. With ``p = softmax(logits)``,
``J(p) = diag(p) - p p^T`` and ``g`` the gradient of f at D:

    gradient = (J(p) g + (D - p) <D - p, g>) / 2.

It is the gradient of the surrogate ``(p + stop_gradient(D - p) log p_D) / 2``, since
``d log p_D / d logits = D - p``. There is no temperature (the call's ``tau`` is not used).
Since ``E[(D - p)(D - p)^T] = Cov(D) = J(p)`` it is unbiased for linear f, and Shekhovtsov (2023)
shows it exactly unbiased for quadratic f (over several independent categoricals too); for other
f it is biased. Expanding both formulas for a one-hot D shows that it is also ``reinmax`` at
``tau = 1`` (Liu et al. 2023): ``2 J((D + p) / 2) - J(p) / 2`` is the same matrix.
"""

from __future__ import annotations

import torch

from .._ops import one_hot, replace_gradient
from ..sampling import sample_index
from .base import PathwiseEstimator


class ZGR(PathwiseEstimator):
    """Mean of straight-through and DARN (Shekhovtsov 2023); no temperature."""

    name = "zgr"
    noise = "sampling"
    reference = "Shekhovtsov 2023"
    gradient = "mean of ST and DARN: `gr` as τ → 0; unbiased for quadratic f"
    uses_tau = False

    def relax(self, logits, tau, dim, generator):
        sample = one_hot(sample_index(logits, dim, generator), logits, dim)
        log_p = torch.log_softmax(logits, dim)
        p = log_p.exp()
        # select before multiplying: 0 * -inf at a masked category would be NaN
        log_p_sample = torch.where(sample.bool(), log_p, 0.0).sum(dim, keepdim=True)
        surrogate = (p + (sample - p.detach()) * log_p_sample) / 2
        return replace_gradient(sample, surrogate)
