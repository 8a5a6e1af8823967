"""Gumbel noise, and Gumbel noise conditioned on which category wins the argmax.

Gumbel(0, 1) is drawn by inversion, ``g = -log(-log(u))`` with ``u`` uniform: the uniform is
clamped below at the dtype's smallest normal number (``torch.rand`` can return exactly 0), and
``torch.rand`` never returns 1, so every draw is finite (in float32: -4.5 <= g <= 16.7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._ops import compute_dtype, upcast
from ._validate import check_tensor, normalize_dim, require, validation_enabled

__all__ = ["gumbel_noise", "gumbel_", "gumbel_like", "conditional_gumbel"]


def gumbel_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill a float32 or float64 ``tensor`` in place with Gumbel(0, 1) draws and return it.

    The uniforms are the ones ``torch.rand`` would give for the same generator state.
    """
    return _inverted_(tensor.uniform_(generator=generator))


def gumbel_like(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel(0, 1) draws shaped like ``tensor`` (contiguous, in its compute dtype): the draws
    of :func:`gumbel_` for the same generator state, written with ``torch.rand_like`` so that
    they are batched under ``torch.func.vmap`` and exported to ONNX as a uniform draw."""
    seeded = {} if generator is None else {"generator": generator}  # ONNX knows no generator
    uniform = torch.rand_like(tensor, dtype=compute_dtype(tensor),
                              memory_format=torch.contiguous_format, **seeded)
    return _inverted_(uniform)


def _inverted_(uniform: torch.Tensor) -> torch.Tensor:
    """``-log(-log(u))`` in place, ``u`` clamped below at the dtype's smallest normal number."""
    uniform.clamp_(min=torch.finfo(uniform.dtype).tiny)
    return uniform.log_().neg_().log_().neg_()


def gumbel_noise(
    shape: int | Sequence[int] | torch.Size,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard Gumbel noise, G = -log(-log U) with U ~ Uniform(0, 1), finite for every draw.

    Half-precision dtypes are drawn in float32 and rounded; float64 is drawn in float64.
    """
    if isinstance(shape, int):
        shape = (shape,)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    work = torch.float64 if dtype == torch.float64 else torch.float32
    noise = gumbel_(torch.empty(tuple(shape), dtype=work, device=device), generator)
    return noise.to(dtype)


def conditional_gumbel(
    logits: torch.Tensor,
    index: torch.Tensor,
    n: int,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` draws of perturbed logits ``v = logits + G`` conditioned on ``argmax(v) == index``.

    The maximum of independent Gumbels ``logits_i + G_i`` is Gumbel(logsumexp(logits)), and given
    the maximum ``M`` the other ones are Gumbels truncated to lie below it (Maddison, Tarlow and
    Minka 2014, "A* Sampling"; used by Paulus, Maddison and Krause 2021, "Rao-Blackwellizing the
    Straight-Through Gumbel-Softmax Gradient Estimator"):

        v_D = logsumexp(logits) + G_D
        v_i = -log(exp(-v_D) + exp(-(logits_i + G_i)))     for i != D

    Returns a tensor of shape ``(n, *logits.shape)`` in the dtype of ``logits``, without
    gradient (half precision is computed in float32). Masked (-inf) logits stay -inf. ``index``
    is a LongTensor with the shape of ``logits`` without ``dim``, and must not pick a masked entry.
    """
    logits = check_tensor(logits).detach()
    dim = normalize_dim(logits, dim)
    rows = logits.shape[:dim] + logits.shape[dim + 1:]
    if index.dtype != torch.int64 or index.shape != rows:
        raise ValueError(
            f"index must be an int64 tensor of shape {tuple(rows)} (logits without dim), "
            f"got {index.dtype} of shape {tuple(index.shape)}"
        )
    index = index.unsqueeze(dim)
    if validation_enabled() and index.numel() > 0:
        require(~torch.isneginf(logits.gather(dim, index)),
                "index picks a masked (-inf) category, which can never win the argmax")
    x = upcast(logits)
    noise = gumbel_like(x.unsqueeze(0).expand(n, *x.shape), generator)
    index = index.unsqueeze(0).expand(n, *index.shape)
    top = x.logsumexp(dim, keepdim=True) + noise.gather(dim + 1, index)
    others = -torch.logaddexp(-top, -(x + noise))
    top, others = top.to(logits.dtype), others.to(logits.dtype)
    # rounding can make a truncated Gumbel equal to the maximum: keep it strictly below
    others = torch.minimum(others, torch.nextafter(top, top.new_tensor(-math.inf)))
    return others.scatter(dim + 1, index, top)
