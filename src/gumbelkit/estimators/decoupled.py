"""Decoupled straight-through Gumbel-Softmax (Shah, Yan, Mozer and Liu 2024, "Improving Discrete
Optimisation Via Decoupled Straight-Through Gumbel-Softmax", arXiv:2410.13331; its v2 is titled
"... Via Decoupled Straight-Through Estimator").

What the paper says, as found (the abstracts of arXiv:2410.13331 v1 and v2): a forward
temperature ``tau_f`` controls the forward pass's stochasticity ("exploration and latent space
utilisation") and a backward temperature ``tau_b`` the backward pass's gradient dispersion, tuned
independently; ``tau_f = tau_b`` is ST-GS. The method section was not in the stored text, so the
forward sample is defined here, so that ``tau_f`` does what the paper asks of it. Dividing the
perturbed logits ``logits + G`` by ``tau_f`` cannot change their argmax (a no-op), so ``tau_f``
scales the noise instead:

    D = one_hot(argmax(logits + tau_f G)),  G ~ Gumbel(0, 1),
    S = softmax((logits + tau_f G) / tau_b),   gradient = J(S) g / tau_b,

with ``J(p) = diag(p) - p p^T`` and ``g`` the gradient of f at D. Since
``argmax(logits + tau_f G) = argmax(logits / tau_f + G)``, D follows Categorical(softmax(logits /
tau_f)) (Gumbel-max on tempered logits): ``tau_f > 1`` explores more, ``tau_f < 1`` less, and the
samples follow softmax(logits) only at ``tau_f = 1``. ``tau_f = 1`` is ``st-gs`` at ``tau_b``; as
``tau_f -> 0``, D becomes the mode and S ``softmax(logits / tau_b)``: ``argmax-st``.

Since ``(logits + tau_f G) / tau_b = (logits / tau_f + G) / (tau_b / tau_f)``, the sample is
``st-gs`` of ``logits / tau_f`` at the temperature ``tau_b / tau_f``, which is how it is computed:
the same fused path and the same noise as ``st-gs``.

Options: ``tau_forward`` (default 1) and ``tau_backward`` (default: the call's ``tau``).
"""

from __future__ import annotations

from .. import kernels
from .base import PathwiseEstimator
from .options import Option, optional_positive, positive


class DecoupledStraightThroughGumbel(PathwiseEstimator):
    """ST-GS with a forward temperature (the noise scale) and a backward one (Shah et al. 2024)."""

    name = "dst-gs"
    noise = "gumbel"
    reference = "Shah, Yan, Mozer and Liu 2024"
    gradient = "of softmax((logits+τ_f·g)/τ_b) (`tau_forward`, `tau_backward`)"
    option_specs = (
        Option("tau_forward", 1.0, positive,
               "Gumbel noise scale: the samples follow softmax(logits / tau_forward)"),
        Option("tau_backward", None, optional_positive,
               "temperature of the surrogate softmax (default: the call's tau)"),
    )

    def relax(self, logits, tau, dim, generator, tau_forward, tau_backward):
        tau_b = tau if tau_backward is None else tau_backward
        return kernels.gumbel_softmax(logits / tau_forward, tau_b / tau_forward, True, dim,
                                      generator)
