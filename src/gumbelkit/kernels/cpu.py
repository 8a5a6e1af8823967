"""CPU fast path: Gumbel-max and Gumbel-Softmax in row chunks that stay in the cache.

For categories along the last dim (or with only size-1 dims after it). Same formulas as the
reference path (:mod:`gumbelkit.kernels.reference`); what changes is the work. Torch's own
``gumbel_softmax`` draws its noise with ``exponential_()``, which on the CPU costs about five
times ``uniform_()`` and two logarithms, and writes a full-size temporary at each of its steps.
Here the noise is drawn and used chunk by chunk (``CHUNK`` entries, about 1 MiB of float32) in
one scratch buffer: ``G = -log(-log U)`` in place, plus the shifted logits
``logits - max(logits)``, divided by tau, then the softmax (or the argmax) written straight into
the result. These are the implementations of the custom ops of :mod:`gumbelkit.kernels.ops`,
which register their gradient. In eager calls (:mod:`gumbelkit.kernels` decides) float32 and
float64 tensors go to the C++ kernels of :mod:`gumbelkit.kernels.cpu_native`, which do this in
one call with the same values, chunks and gradients; where they do not serve, a tensor that fits
one chunk goes to :func:`differentiable_gumbel_softmax`: the same operations under torch's own
autograd, without the custom op's dispatch and its Python backward, which at small sizes are
most of the time of a call.

Torch draws CPU uniforms on one thread, in order: the uniforms here are those of the generator
seeded with ``seed`` (:func:`gumbelkit.kernels.reference.seeded`), in the reference path's
order, so for a given seed the results are the reference path's bit for bit. (Drawing them on
several threads from streams seeded by the generator was tried: on a 2-core machine it was
slower, the threads of torch's own pool competing for the cores.)
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .._ops import compute_dtype, over_tau, replace_gradient, short_rows, softmax
from .reference import seeded

__all__ = ["differentiable_gumbel_softmax", "fits_one_chunk", "gumbel_max", "gumbel_softmax"]

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


def fits_one_chunk(x: torch.Tensor) -> bool:
    """Whether ``x`` is worked on whole, in one chunk."""
    return x.numel() <= CHUNK


def _perturbed_chunks(x: torch.Tensor, seed: torch.Tensor
                      ) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(rows, shifted logits[rows] + G)`` chunk by chunk for a (rows, K) matrix, G drawn in
    place in one scratch buffer from the generator of ``seed``."""
    generator = seeded(seed)
    size = (_rows_per_chunk(x.shape[1]), x.shape[1])
    scratch, shifted = torch.empty(size, dtype=x.dtype), torch.empty(size, dtype=x.dtype)
    for rows in _chunks(*x.shape):
        n = rows.stop - rows.start
        yield rows, _perturbed(x[rows], scratch[:n].uniform_(generator=generator), shifted[:n],
                               -1)


def _log_log_(uniform: torch.Tensor) -> torch.Tensor:
    """``log(-log u)`` in place, ``u`` clamped at the dtype's smallest normal: the Gumbel draw
    ``-log(-log u)`` with its sign left to the sum that uses it."""
    return uniform.clamp_(min=torch.finfo(uniform.dtype).tiny).log_().neg_().log_()


def _perturbed(x: torch.Tensor, uniform: torch.Tensor, shifted: torch.Tensor | None,
               dim: int) -> torch.Tensor:
    """``x - max(x, dim) + G`` in ``uniform`` (uniform draws, contiguous, shaped like ``x``):
    ``-log(-log u)`` in place as :func:`gumbelkit.noise.gumbel_` computes it, one negation
    folded into the sum (the same bits); ``shifted`` is scratch for ``x - max`` (None: a new
    tensor)."""
    log_log = _log_log_(uniform)
    top = x.amax(dim, keepdim=True)  # a fully masked row gives NaN, as the reference path does
    return torch.sub(torch.sub(x, top, out=shifted) if shifted is not None else x - top,
                     log_log, out=uniform)


def _perturbed_whole(x: torch.Tensor, seed: torch.Tensor, dim: int) -> torch.Tensor:
    """:func:`_perturbed` of a tensor that fits one chunk, in its own shape, with the fewest
    operations (small tensors are where the time per operation counts)."""
    return _perturbed(x, torch.rand(x.shape, dtype=x.dtype, generator=seeded(seed)), None, dim)


def gumbel_max(logits: torch.Tensor, dim: int, seed: torch.Tensor) -> torch.Tensor:
    """``argmax(logits + G, dim)``, G ~ Gumbel(0, 1), without a full-size temporary."""
    x = logits.to(compute_dtype(logits))
    if fits_one_chunk(x):
        return _perturbed_whole(x, seed, dim).argmax(dim)
    x = _as_rows(x, dim)
    index = torch.empty(x.shape[0], dtype=torch.int64)
    for rows, perturbed in _perturbed_chunks(x, seed):
        torch.argmax(perturbed, -1, out=index[rows])
    return index.reshape(logits.shape[:dim] + logits.shape[dim + 1:])


def gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor, hard: bool, dim: int,
                   seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample (soft, or one-hot with ``hard``) and the soft sample along ``dim``, for the
    noise of ``seed``; ``tau`` is a tensor broadcastable to ``logits``, already floored. The
    outputs are fresh tensors (not views)."""
    x = logits.to(compute_dtype(logits))
    tau = tau.to(x.dtype)
    if fits_one_chunk(x):
        perturbed = _perturbed_whole(x, seed, dim)
        index = perturbed.argmax(dim, keepdim=True) if hard else None
        soft = softmax(perturbed.div_(tau), dim)
    else:
        soft = torch.empty(x.shape, dtype=x.dtype)  # the output: its own tensor, not a view
        index = _chunked_softmax(_as_rows(x, dim), tau.reshape(()) if tau.numel() == 1 else
                                 _as_rows(tau.expand(x.shape), dim), hard, seed,
                                 soft.view(-1, x.shape[dim]))
        index = None if index is None else index.view(x.shape[:dim] + (1,) + x.shape[dim + 1:])
    soft = soft.to(logits.dtype)
    if not hard:
        return soft, soft.new_empty(0)
    return torch.zeros_like(soft).scatter_(dim, index, 1.0), soft


def _chunked_softmax(x: torch.Tensor, tau: torch.Tensor, hard: bool, seed: torch.Tensor,
                     soft: torch.Tensor) -> torch.Tensor | None:
    """The soft sample of a (rows, K) matrix into ``soft`` and, with ``hard``, each row's
    argmax (returned), chunk by chunk; ``tau`` a 0-dim tensor or one of x's shape."""
    index = torch.empty(x.shape[0], 1, dtype=torch.int64) if hard else None
    for rows, perturbed in _perturbed_chunks(x, seed):
        if hard:
            torch.argmax(perturbed, -1, keepdim=True, out=index[rows])
        perturbed.div_(tau if tau.dim() == 0 else tau[rows])
        if short_rows(perturbed, -1):
            soft[rows] = softmax(perturbed, -1)
        else:
            torch.ops.aten._softmax.out(perturbed, -1, False, out=soft[rows])
    return index


def differentiable_gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor, hard: bool, dim: int,
                                  seed: torch.Tensor) -> torch.Tensor:
    """The sample of :func:`gumbel_softmax` for a tensor that fits one chunk, differentiable by
    torch's autograd: the same operations on the same noise (the same values, bit for bit), and
    the gradient the op registers, ``J(y) g / tau`` to the logits and its ``d tau``, from torch's
    softmax and division backward (double backward included)."""
    x = logits.to(compute_dtype(logits))
    with torch.no_grad():  # the noise and the shift by the row maximum carry no gradient
        log_log = _log_log_(torch.rand(x.shape, dtype=x.dtype, generator=seeded(seed)))
        top = x.amax(dim, keepdim=True)
    perturbed = (x - top) - log_log
    soft = softmax(over_tau(perturbed, tau.to(x.dtype)), dim).to(logits.dtype)
    if not hard:
        return soft
    index = perturbed.detach().argmax(dim, keepdim=True)
    return replace_gradient(torch.zeros_like(soft).scatter_(dim, index, 1.0), soft)
