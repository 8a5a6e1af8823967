"""Straight-through estimators: the forward value is a one-hot category, the gradient a surrogate's.

Each returns ``D`` exactly in the forward pass and the gradient of a soft surrogate ``S`` (see
:func:`gumbelkit._ops.replace_gradient`); they differ in ``D`` and ``S``. Below, ``J(p)`` is the
softmax Jacobian ``diag(p) - p p^T`` and ``g`` the gradient of ``f`` at the one-hot sample.

``argmax-st`` (Bengio, Leonard and Courville 2013, "Estimating or Propagating Gradients Through
Stochastic Neurons"; deterministic variant): ``D = one_hot(argmax logits)``,
``S = softmax(logits / tau)``, gradient ``J(softmax(logits / tau)) g / tau``. No sampling.

``st`` (Bengio et al. 2013, the categorical form used by Liu et al. 2023): ``D ~ softmax(logits)``,
``S = softmax(logits / tau)``, gradient ``J(softmax(logits / tau)) g / tau``.

``st-gs`` (Jang et al. 2017, straight-through Gumbel-Softmax): ``D = one_hot(argmax(logits + G))``,
``S = softmax((logits + G) / tau)`` with the same G, gradient ``J(S) g / tau``.

``gst`` (Fan, Chi, Rudnicky and Ramadge 2022, "Training Discrete Deep Generative Models via Gapped
Straight-Through Estimator"): ``D ~ softmax(logits)``; a deterministic perturbation replaces the
Gumbel noise: with ``m = max_i logits_i`` the perturbed logits are ``m`` at the sampled category and
``min(logits_i, m - gap)`` elsewhere, so the sample wins by at least ``gap``. ``S`` is the
softmax at temperature tau of those perturbed logits, the shift being held constant: gradient
``J(S) g / tau``, a function of the sample only.
"""

from __future__ import annotations

import torch

from .._ops import one_hot, replace_gradient, shifted_to, tempered_softmax
from ..sampling import sample_index
from .base import PathwiseEstimator
from .options import Option, positive
from .relaxed import GumbelSoftmax


class ArgmaxStraightThrough(PathwiseEstimator):
    """``one_hot(argmax logits)`` forward, ``softmax(logits / tau)`` gradient (no noise)."""

    name = "argmax-st"
    forward = "mode"
    noise = "none"
    reference = "Bengio, Leonard and Courville 2013"
    gradient = "of softmax(logits/τ)"

    def relax(self, logits, tau, dim, generator):
        soft = tempered_softmax(logits, tau, dim)
        return replace_gradient(one_hot(logits.detach().argmax(dim), soft, dim), soft)


class StraightThrough(PathwiseEstimator):
    """``D ~ softmax(logits)`` forward, ``softmax(logits / tau)`` gradient (Bengio et al. 2013)."""

    name = "st"
    noise = "sampling"
    reference = "Bengio, Leonard and Courville 2013"
    gradient = "of softmax(logits/τ)"

    def relax(self, logits, tau, dim, generator):
        soft = tempered_softmax(logits, tau, dim)
        return replace_gradient(one_hot(sample_index(logits, dim, generator), soft, dim), soft)


class StraightThroughGumbel(GumbelSoftmax):
    """``one_hot(argmax(logits + G))`` forward, ``softmax((logits + G) / tau)`` gradient."""

    name = "st-gs"
    forward = "one-hot"
    reference = "Jang, Gu and Poole 2017"
    gradient = "of the `gs` sample"
    advised_tau = "τ annealed from 1 to 0.5 (Jang et al. 2017)"
    hard = True


class GappedStraightThrough(PathwiseEstimator):
    """Gapped straight-through (Fan et al. 2022): option ``gap`` (default 1.0)."""

    name = "gst"
    noise = "sampling"
    reference = "Fan, Chi, Rudnicky and Ramadge 2022"
    gradient = "gapped deterministic perturbation (`gap`)"
    option_specs = (Option("gap", 1.0, positive, "how far the sampled logit is put above the "
                           "others"),)

    def relax(self, logits, tau, dim, generator, gap):
        sample = one_hot(sample_index(logits, dim, generator), logits, dim)
        with torch.no_grad():
            top = logits.amax(dim, keepdim=True)
            target = torch.where(sample.bool(), top, torch.minimum(logits, top - gap))
        surrogate = tempered_softmax(shifted_to(logits, target), tau, dim)
        return replace_gradient(sample, surrogate)
