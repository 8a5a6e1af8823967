"""The reference path: Gumbel-max and Gumbel-Softmax written with plain PyTorch operations.

It runs anywhere torch does (any device, any floating dtype), keeps every temporary that autograd
needs, and is what the fast paths of :mod:`gumbelkit.kernels` are tested against.
"""

from __future__ import annotations

import torch

from .._ops import one_hot, replace_gradient, upcast
from ..noise import gumbel_noise

__all__ = ["perturb", "perturbed_softmax", "gumbel_max", "gumbel_softmax"]


def perturbed_softmax(
    logits: torch.Tensor,
    noise: torch.Tensor,
    tau: float = 1.0,
    hard: bool = False,
    dim: int = -1,
) -> torch.Tensor:
    """Gumbel-Softmax for given noise: ``softmax((logits + noise) / tau)``, no validation.

    With ``hard=True`` the value is ``one_hot(argmax(logits + noise))`` (exactly 0 and 1) and the
    gradient is the soft sample's (straight-through Gumbel-Softmax, Jang et al. 2017). This is the
    deterministic core of :func:`gumbelkit.gumbel_softmax` and of the ``gs`` and ``st-gs``
    estimators.
    """
    perturbed = logits + noise
    soft = torch.softmax(perturbed / tau, dim)
    if not hard:
        return soft
    return replace_gradient(one_hot(perturbed.detach().argmax(dim), soft, dim), soft)


def perturb(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``logits + G`` with G ~ Gumbel(0, 1), in the compute dtype of ``logits``, no gradient."""
    x = upcast(logits.detach())
    return x + gumbel_noise(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def gumbel_max(logits: torch.Tensor, dim: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``argmax(logits + G, dim)`` with G ~ Gumbel(0, 1), computed in the compute dtype."""
    return perturb(logits, generator).argmax(dim)


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool, dim: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``perturbed_softmax`` with fresh Gumbel noise, half precision computed in float32."""
    x = upcast(logits)
    noise = gumbel_noise(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    return perturbed_softmax(x, noise, tau, hard, dim).to(logits.dtype)
