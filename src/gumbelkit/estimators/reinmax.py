"""ReinMax (Liu, Dong, Liu, Yu and Gao 2023, "Bridging Discrete and Backpropagation:
Straight-Through and Beyond", Algorithm 2).

Straight-through is a forward-Euler (first-order) approximation of the gradient of E[f(D)];
ReinMax applies Heun's method to reach second order with no second derivatives:

    pi_0 = softmax(logits),   D ~ pi_0,
    pi_1 = (D + softmax(logits / tau)) / 2,
    gradient = 2 J(pi_1) g - J(pi_0) g / 2,

with ``J(p) = diag(p) - p p^T`` and ``g`` the gradient of f at the one-hot D. The forward value is
D exactly. The authors advise tau >= 1 (where ST-Gumbel prefers tau < 1).
"""

from __future__ import annotations

import torch

from .._ops import one_hot, replace_gradient, shifted_to, tempered_softmax
from ..sampling import sample_index
from .base import PathwiseEstimator


class ReinMax(PathwiseEstimator):
    """Second-order straight-through (Liu et al. 2023)."""

    name = "reinmax"
    noise = "sampling"
    reference = "Liu, Dong, Liu, Yu and Gao 2023"
    gradient = "second-order (Heun) straight-through"
    advised_tau = "τ ≥ 1 (Liu et al. 2023)"

    def relax(self, logits, tau, dim, generator):
        sample = one_hot(sample_index(logits, dim, generator), logits, dim)
        return heun_sample(sample, logits, tau, dim)


def heun_sample(sample: torch.Tensor, logits: torch.Tensor, tau: float | torch.Tensor,
                dim: int) -> torch.Tensor:
    """The one-hot ``sample`` (of softmax(logits)) carrying ReinMax's gradient
    ``2 J(pi_1) g - J(pi_0) g / 2`` to the logits (the module docstring); tau gets none."""
    with torch.no_grad():
        log_pi_1 = ((sample + tempered_softmax(logits, tau, dim)) / 2).log()
    # softmax of logits moved to log(pi_1): value pi_1, Jacobian J(pi_1) to the logits
    pi_1 = torch.softmax(shifted_to(logits, log_pi_1), dim)
    surrogate = 2 * pi_1 - torch.softmax(logits, dim) / 2
    return replace_gradient(sample, surrogate)
