"""CPU fast path: Gumbel-max and Gumbel-Softmax in row chunks that stay in the cache.

For categories along the last dim (of size > 1). Same formulas and the same kernels as the
reference path (:mod:`gumbelkit.kernels.reference`); what changes is the work. Torch's own
``gumbel_softmax`` draws its noise with ``exponential_()``, which on the CPU costs about five
times ``uniform_()`` and two logarithms, and writes a full-size temporary at each of its steps.
Here the noise is drawn and used chunk by chunk (``CHUNK`` entries, about 1 MiB of float32) in
one scratch buffer: ``G = -log(-log U)`` in place, plus the logits, divided by tau, then the
softmax (or the argmax) written straight into the result. Hard mode keeps the soft sample for
backward (one tensor of the logits' size, as torch does); soft mode keeps its output. Backward
is ``y * (g - <g, y>) / tau`` chunk by chunk, the kernels autograd would use.

Torch draws CPU uniforms on one thread, in order: the uniforms here are the generator's own, in
the reference path's order, so for a given generator state the results are the reference path's
bit for bit. (Drawing them on several threads from streams seeded by the generator was tried:
on a 2-core machine it was slower, the threads of torch's own pool competing for the cores.)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .._ops import compute_dtype
from ..noise import gumbel_

__all__ = ["gumbel_max", "gumbel_softmax"]

CHUNK = 1 << 18  # entries per chunk: 1 MiB of float32, within a core's L2 cache


def _as_rows(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` as a contiguous (rows, K) matrix, K the size of ``dim`` (a view when it can be)."""
    if x.shape[dim + 1:].numel() != 1:
        raise ValueError("the CPU path takes the categories along the last non-trivial dim")
    return x.reshape(-1, x.shape[dim])


def _rows_per_chunk(K: int) -> int:
    return max(1, CHUNK // max(K, 1))


def _chunks(n_rows: int, K: int) -> Iterator[slice]:
    step = _rows_per_chunk(K)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _perturbed_chunks(x: torch.Tensor, generator: torch.Generator | None
                      ) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(rows, logits[rows] + G)`` chunk by chunk, G drawn in place in one scratch buffer."""
    scratch = torch.empty(min(x.shape[0], _rows_per_chunk(x.shape[1])), x.shape[1],
                          dtype=x.dtype)
    for rows in _chunks(*x.shape):
        noise = gumbel_(scratch[:rows.stop - rows.start], generator)
        yield rows, noise.add_(x[rows])


def gumbel_max(logits: torch.Tensor, dim: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``argmax(logits + G, dim)``, G ~ Gumbel(0, 1), without a full-size temporary."""
    x = _as_rows(logits.detach().to(compute_dtype(logits)), dim)
    index = torch.empty(x.shape[0], dtype=torch.int64)
    for rows, perturbed in _perturbed_chunks(x, generator):
        torch.argmax(perturbed, -1, out=index[rows])
    return index.reshape(logits.shape[:dim] + logits.shape[dim + 1:])


class _GumbelSoftmax(torch.autograd.Function):
    """``softmax((logits + G) / tau)``, or its one-hot argmax with the soft sample's gradient."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, tau: float, hard: bool, dim: int,
                generator: torch.Generator | None) -> torch.Tensor:
        x = _as_rows(logits.to(compute_dtype(logits)), dim)
        soft = torch.empty_like(x, memory_format=torch.contiguous_format)
        index = torch.empty(x.shape[0], 1, dtype=torch.int64) if hard else None
        for rows, perturbed in _perturbed_chunks(x, generator):
            if hard:
                torch.argmax(perturbed, -1, keepdim=True, out=index[rows])
            torch.ops.aten._softmax.out(perturbed.div_(tau), -1, False, out=soft[rows])
        ctx.tau, ctx.dim, ctx.shape, ctx.dtype = tau, dim, logits.shape, logits.dtype
        ctx.save_for_backward(soft)
        value = torch.zeros_like(soft).scatter_(-1, index, 1.0) if hard else soft
        return value.reshape(logits.shape).to(logits.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (soft,) = ctx.saved_tensors
        grad = _as_rows(grad.to(soft.dtype), ctx.dim)
        dx = torch.empty_like(soft)
        for rows in _chunks(*soft.shape):
            torch.ops.aten._softmax_backward_data.out(grad[rows], soft[rows], -1, soft.dtype,
                                                      grad_input=dx[rows])
            if ctx.tau != 1.0:
                dx[rows].div_(ctx.tau)
        return dx.reshape(ctx.shape).to(ctx.dtype), None, None, None, None


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool, dim: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Gumbel-Softmax sample along ``dim`` (soft, or one-hot with ``hard``), differentiable with
    respect to ``logits``."""
    return _GumbelSoftmax.apply(logits, tau, hard, dim, generator)
