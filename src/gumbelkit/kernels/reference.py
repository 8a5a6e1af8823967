"""The reference path: Gumbel-max and Gumbel-Softmax written with plain PyTorch operations.

It runs anywhere torch does (any device, any floating dtype, under every torch.func transform and
tracer), keeps every temporary that autograd needs, and is what the fast paths of
:mod:`gumbelkit.kernels` are tested against. Every formula adds the noise to the shifted logits
``logits - max(logits)`` (:func:`gumbelkit._ops.shifted`), which leaves the law unchanged and
keeps it exact at any offset of the logits.

Two sources of noise: the functions taking ``generator`` draw it from torch's generator; those
taking ``seed`` (a one-element int64 tensor) draw it from a generator seeded with it, so the
same seed gives the same noise, and the CPU fast path, which draws the same uniforms in the same
order, gives the same values bit for bit.
"""

from __future__ import annotations

import threading

import torch

from .._ops import floored, one_hot, over_tau, replace_gradient, shifted, softmax, upcast
from ..noise import gumbel_like

__all__ = ["perturb", "perturbed_softmax", "gumbel_max", "gumbel_softmax", "seeded",
           "seeded_noise", "gumbel_max_seeded", "gumbel_softmax_seeded"]


def perturbed_softmax(
    logits: torch.Tensor,
    noise: torch.Tensor,
    tau: float | torch.Tensor = 1.0,
    hard: bool = False,
    dim: int = -1,
) -> torch.Tensor:
    """Gumbel-Softmax for given noise: ``softmax((logits + noise) / tau)``, no validation.

    With ``hard=True`` the value is ``one_hot(argmax(logits + noise))`` (exactly 0 and 1) and the
    gradient is the soft sample's (straight-through Gumbel-Softmax, Jang et al. 2017). This is the
    deterministic core of :func:`gumbelkit.gumbel_softmax` and of the ``gs`` and ``st-gs``
    estimators. ``tau`` is a number or a tensor broadcastable to ``logits`` (then it gets a
    gradient), raised to :func:`gumbelkit._ops.tau_floor`, below which the shifted logits plus
    the noise could overflow when divided by it.
    """
    return _hard_and_soft(shifted(logits, dim) + noise, tau, hard, dim)[0]


def _hard_and_soft(perturbed: torch.Tensor, tau: float | torch.Tensor, hard: bool, dim: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample (hard or soft) and the soft sample, for perturbed logits."""
    soft = softmax(over_tau(perturbed, floored(tau, perturbed.dtype)), dim)
    if not hard:
        return soft, soft
    return replace_gradient(one_hot(perturbed.detach().argmax(dim), soft, dim), soft), soft


def perturb(logits: torch.Tensor, generator: torch.Generator | None = None,
            dim: int = -1) -> torch.Tensor:
    """``shifted(logits) + G`` with G ~ Gumbel(0, 1), in the compute dtype, no gradient."""
    x = upcast(logits.detach())
    return shifted(x, dim) + gumbel_like(x, generator)


def gumbel_max(logits: torch.Tensor, dim: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``argmax(logits + G, dim)`` with G ~ Gumbel(0, 1), computed in the compute dtype."""
    return perturb(logits, generator, dim).argmax(dim)


def gumbel_softmax(logits: torch.Tensor, tau: float | torch.Tensor, hard: bool, dim: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``perturbed_softmax`` with fresh Gumbel noise, half precision computed in float32."""
    x = upcast(logits)
    return perturbed_softmax(x, gumbel_like(x, generator), tau, hard, dim).to(logits.dtype)


_local = threading.local()


def seeded(seed: torch.Tensor) -> torch.Generator:
    """A generator on the seed's device seeded with it (one per thread and device, re-seeded).

    On a GPU this reads the seed on the host: a synchronisation, which :func:`seeded_noise`
    avoids where Triton is installed.
    """
    device = seed.device
    generators = _local.__dict__.setdefault("generators", {})
    generator = generators.get(device)
    if generator is None:
        generator = generators[device] = torch.Generator(device=device)
    return generator.manual_seed(int(seed))


def seeded_noise(x: torch.Tensor, dim: int, seed: torch.Tensor) -> torch.Tensor:
    """Gumbel noise shaped like ``x`` (in its compute dtype) for ``seed``: drawn from
    :func:`seeded` on the CPU; on CUDA with Triton installed, the Triton kernels' own noise of
    the seed, generated on the device without a host synchronisation."""
    from . import _triton_available

    if seed.device.type == "cuda" and _triton_available():
        from .triton_gumbel import gumbel_noise

        return gumbel_noise(x.shape, dim, seed, x.dtype)
    return gumbel_like(x, seeded(seed))


def gumbel_max_seeded(logits: torch.Tensor, dim: int, seed: torch.Tensor) -> torch.Tensor:
    """:func:`gumbel_max` with the noise of ``seed``."""
    x = upcast(logits.detach())
    return (shifted(x, dim) + seeded_noise(x, dim, seed)).argmax(dim)


def gumbel_softmax_seeded(logits: torch.Tensor, tau: torch.Tensor, hard: bool, dim: int,
                          seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample and the soft sample of :func:`gumbel_softmax` for the noise of ``seed``,
    without autograd (the custom op's implementation; its gradient is registered with it)."""
    x = upcast(logits)
    noise = seeded_noise(x, dim, seed)
    value, soft = _hard_and_soft(shifted(x, dim) + noise, tau, hard, dim)
    value = value.to(logits.dtype)
    return value, soft.to(logits.dtype) if hard else value.new_empty(0)
