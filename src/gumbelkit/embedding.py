"""A fused soft embedding: the Gumbel-Softmax sample of the logits times an embedding table, with
nothing of the size of the logits held for backward.

With ``z = logits + G`` (G ~ Gumbel(0, 1)), ``y = softmax(z / tau)`` (Jang, Gu and Poole 2017;
Maddison, Mnih and Teh 2017) and a table ``E`` of shape ``(V, d)``, :func:`soft_embedding` returns
``out = y @ E``, of shape ``(..., d)``. The composition ``gumbel_softmax(logits) @ E`` keeps
``y`` (and more) for backward, ``rows x V`` numbers; here the categories are walked in chunks
with an online max and sum (Milakov and Gimelshein 2018, "Online normalizer calculation for
softmax"), the running output ``sum_j exp(s_j - m) E_j`` being rescaled whenever the running max
``m`` grows (as in FlashAttention, Dao et al. 2022). Backward keeps only the logits (the input,
which the caller holds anyway), the table, the output (``rows x d``), per-row statistics (the
log-sum-exp ``lse``, the logits' row max) and the seed, and regenerates ``y_j = exp(s_j - lse)``
chunk by chunk. With ``g`` the gradient of ``out``, ``c = <g, out>`` and ``(g E^T)_j = g . E_j``:

    d logits_j = y_j (g . E_j - c) / tau,     d E_j = y_j g,
    d tau      = -sum_j (z_j / tau^2) y_j (g . E_j - c),

the last per row, for a temperature tensor that is the same for every category of a row.

The noise is :func:`gumbelkit.portable.portable_gumbel` under one seed per call, ``seed =
int(torch.randint(2**62, (), generator=generator))`` (drawn on the generator's device, or on the
logits' device from torch's default generator), keyed by each row's flat position (the leading
dimensions flattened, categories last) and each category: a pure function of the key, so forward
and backward regenerate the same noise chunk by chunk, and ``softmax((logits + portable_gumbel(
logits.shape, seed)) / tau) @ E`` is the same sample computed the plain way.

Hard samples (``hard=True`` with ``"gs"``, or ``estimator="st-gs"``; Jang et al. 2017) have the
forward value ``E[argmax_j z_j]`` exactly (the argmax found in the same chunked pass) and the
gradient of the soft sample to the logits and tau; the table gets ``d E_k = g`` at the sampled
row ``k``, the gradient of ``one_hot(k) @ E``. ``estimator="reinmax"`` (Liu, Dong, Liu, Yu and
Gao 2023, as :mod:`gumbelkit.estimators.reinmax`) has the same forward value and the logits'
gradient ``2 J(pi_1) (g E^T) - J(pi_0) (g E^T) / 2`` with ``pi_0 = softmax(logits)``, ``pi_1 =
(one_hot(k) + softmax(logits / tau)) / 2`` and ``J(p) v = p * (v - <p, v>)``: two noiseless
online softmaxes, whose outputs ``pi @ E`` give the inner products ``<p, g E^T> = g . (p @ E)``;
tau gets no gradient there, as in that estimator.

All of it is plain PyTorch on tiles of about :data:`TILE` entries, on the CPU and on CUDA alike
(no Triton kernel yet). Half precision is computed in float32 and returned in the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.autograd.function import once_differentiable

from ._ops import compute_dtype, floored, upcast
from ._validate import check_count, check_logits, check_tau, check_tensor
from .portable import portable_gumbel
from .schedules import Schedule

__all__ = ["soft_embedding"]

SUPPORTED = ("gs", "st-gs", "reinmax")
TILE = 2**16  # entries of a (rows x categories) tile of the chunked passes: its temporaries
# (the noise's 64-bit hashes among them) stay within a core's L2 cache


def soft_embedding(
    logits: torch.Tensor,
    weight: torch.Tensor,
    tau: float | torch.Tensor | Schedule = 1.0,
    hard: bool = False,
    estimator: str = "gs",
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """``softmax((logits + G) / tau) @ weight`` along ``dim``, computed in chunks of categories
    and differentiated without keeping anything of the logits' size (module docstring).

    ``logits``: ``(..., V)`` (the categories along ``dim``), ``weight``: ``(V, d)`` of the same
    dtype and device; the result is ``(..., d)``: the logits' shape without ``dim``, then ``d``.
    ``tau``: a number, a schedule, or a tensor broadcastable to the logits with size 1 along
    ``dim`` (one temperature per row), which gets its gradient. ``estimator``: ``"gs"`` (soft;
    ``hard=True`` makes it ``"st-gs"``), ``"st-gs"`` or ``"reinmax"`` (hard whatever ``hard``:
    the value is the table's row of the sampled category ``argmax(logits + G)``). The noise is
    ``portable_gumbel(logits.shape, seed)`` (categories last) with ``seed =
    int(torch.randint(2**62, (), generator=generator))``. ``chunk_size``: categories per chunk,
    with rows taken in blocks of ``TILE // chunk_size`` (tiles of about :data:`TILE` entries).
    ``-inf`` logits are masks, never sampled. The function has no rule for ``torch.func``
    transforms and no Triton kernel: on CUDA it runs the same chunked PyTorch code.
    """
    dim = check_logits(logits, dim)
    weight = _check_weight(weight, logits, dim)
    tau = check_tau(tau, logits)
    chunk_size = check_count(chunk_size, "chunk_size")
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be a bool, got {type(hard).__name__}")
    if estimator not in SUPPORTED:
        raise ValueError(f"soft_embedding supports the estimators {', '.join(SUPPORTED)}; got "
                         f"{estimator!r}")
    mode = "st-gs" if estimator == "gs" and hard else estimator
    seed = _seed(generator, logits.device)
    out = _SoftEmbedding.apply(logits, weight, _row_tau(tau, logits, dim), dim, mode, seed,
                               chunk_size)
    return out.reshape(logits.shape[:dim] + logits.shape[dim + 1:] + weight.shape[1:])


def _check_weight(weight: object, logits: torch.Tensor, dim: int) -> torch.Tensor:
    weight = check_tensor(weight, "weight")
    if weight.dim() != 2 or weight.shape[0] != logits.shape[dim]:
        raise ValueError(f"weight must be a (V, d) table with V = {logits.shape[dim]} rows (the "
                         f"logits' size along dim={dim}), got shape {tuple(weight.shape)}")
    if weight.dtype != logits.dtype or weight.device != logits.device:
        raise TypeError(f"weight must have the logits' dtype and device ({logits.dtype}, "
                        f"{logits.device}), got {weight.dtype}, {weight.device}")
    return weight


def _seed(generator: torch.Generator | None, device: torch.device) -> int:
    """The call's seed, drawn from ``generator`` (None: torch's default one for ``device``)."""
    device = generator.device if generator is not None else device
    return int(torch.randint(2**62, (), generator=generator, device=device))


def _row_tau(tau: float | torch.Tensor, logits: torch.Tensor, dim: int) -> float | torch.Tensor:
    """``tau`` floored in the compute dtype: a float, or one value per row (flat, ``(rows,)``),
    differentiable (autograd sums the rows' gradients back to the shape of ``tau``)."""
    dtype = compute_dtype(logits)
    if not isinstance(tau, torch.Tensor):
        return floored(tau, dtype)
    tau = tau.reshape((1,) * (logits.dim() - tau.dim()) + tuple(tau.shape))
    if tau.shape[dim] != 1:
        raise ValueError(f"a tensor tau must be the same for every category (size 1 along "
                         f"dim={dim}), got shape {tuple(tau.shape)}")
    shape = list(logits.shape)
    shape[dim] = 1
    rows = tau.to(logits.device).expand(shape).movedim(dim, -1).reshape(-1)
    return floored(rows, dtype)


def _rows(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """``logits`` as ``(rows, V)``, categories last: a view when they are last already."""
    moved = logits.movedim(dim, -1)
    return moved.reshape(-1, moved.shape[-1])


def _tiles(rows: int, size: int, chunk: int) -> Iterator[tuple[slice, list[slice]]]:
    """The row blocks of the passes, each with its chunks of categories, as slices."""
    chunk = min(chunk, max(size, 1))
    block = max(1, TILE // chunk)
    chunks = [slice(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    for start in range(0, rows, block):
        yield slice(start, min(start + block, rows)), chunks


def _block_tau(tau: float | torch.Tensor, block: slice) -> float | torch.Tensor:
    return tau if not isinstance(tau, torch.Tensor) else tau[block, None]


def _noise(seed: int, block: slice, chunk: slice, like: torch.Tensor) -> torch.Tensor:
    """The noise of a tile, in the dtype and on the device of ``like``."""
    positions = torch.arange(block.start, block.stop, device=like.device)
    return portable_gumbel((block.stop - block.start, chunk.stop - chunk.start), seed,
                           positions=positions, categories=(chunk.start, chunk.stop),
                           dtype=like.dtype, device=like.device)


class _OnlineSoftmax:
    """``softmax(s) @ E`` of a block of rows over chunks of categories: the running max ``m``, sum
    ``sum_j exp(s_j - m)`` and output ``sum_j exp(s_j - m) E_j``, both rescaled by
    ``exp(m_old - m_new)`` as ``m`` grows. ``m`` is kept finite (0 while every score so far is
    -inf, when the sums are 0 and the rescaling is moot)."""

    def __init__(self, rows: int, width: int, like: torch.Tensor) -> None:
        self.max = like.new_full((rows,), -math.inf)
        self.sum = like.new_zeros(rows)
        self.out = like.new_zeros(rows, width)

    def add(self, scores: torch.Tensor, table: torch.Tensor) -> None:
        new = torch.maximum(self.max, scores.amax(1))
        new = new.masked_fill(new.isneginf(), 0.0)
        decay = torch.exp(self.max - new)
        p = torch.exp(scores - new[:, None])
        self.sum = self.sum * decay + p.sum(1)
        self.out = self.out * decay[:, None] + p @ table
        self.max = new

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``softmax(s) @ E`` and ``logsumexp(s)``."""
        return self.out / self.sum[:, None], self.max + self.sum.log()


class _SoftEmbedding(torch.autograd.Function):
    """The chunked forward and backward of :func:`soft_embedding` (module docstring); ``mode`` is
    ``"gs"``, ``"st-gs"`` or ``"reinmax"``; outputs ``(rows, d)``."""

    @staticmethod
    def forward(ctx, logits, weight, tau, dim, mode, seed, chunk):
        x = _rows(logits, dim)
        dtype = compute_dtype(x)
        rows, width = x.shape[0], weight.shape[1]
        streams = 2 if mode == "reinmax" else 1  # reinmax: softmax(logits), softmax(logits/tau)
        outs = [x.new_empty((rows, width), dtype=dtype) for _ in range(streams)]
        lse = x.new_empty((streams, rows), dtype=dtype)
        shift = x.amax(1).to(dtype) if x.numel() else x.new_empty(rows, dtype=dtype)
        index = None if mode == "gs" else x.new_empty(rows, dtype=torch.int64)
        for block, chunks in _tiles(rows, x.shape[1], chunk):
            scale = _block_tau(tau, block)
            online = [_OnlineSoftmax(block.stop - block.start, width, shift) for _ in outs]
            best = shift.new_full((block.stop - block.start,), -math.inf)
            top = torch.zeros_like(best, dtype=torch.int64)
            for part in chunks:
                logit = upcast(x[block, part]) - shift[block, None]
                z = logit + _noise(seed, block, part, logit)
                if index is not None:  # the running argmax of z
                    tile_best, tile_top = z.max(1)
                    top = torch.where(tile_best > best, tile_top + part.start, top)
                    best = torch.maximum(best, tile_best)
                scores = [logit, logit / scale] if mode == "reinmax" else [z / scale]
                for stream, s in zip(online, scores, strict=True):
                    stream.add(s, upcast(weight[part]))
            for k, stream in enumerate(online):
                outs[k][block], lse[k, block] = stream.result()
            if index is not None:
                index[block] = top
        ctx.dim, ctx.mode, ctx.seed, ctx.chunk = dim, mode, seed, chunk
        ctx.float_tau = None if isinstance(tau, torch.Tensor) else tau
        ctx.save_for_backward(logits, weight, tau if ctx.float_tau is None else None, index,
                              shift, lse, *outs)
        return outs[0].to(logits.dtype) if index is None else weight[index]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        logits, weight, tau, index, shift, lse, *outs = ctx.saved_tensors
        tau = ctx.float_tau if tau is None else tau
        need_x, need_w, need_tau = ctx.needs_input_grad[:3]
        need_tau = need_tau and ctx.mode != "reinmax"
        x = _rows(logits, ctx.dim)
        g = upcast(grad)
        grad_x = torch.empty_like(x) if need_x else None
        grad_w = torch.zeros_like(weight, dtype=g.dtype) if need_w else None
        grad_tau = torch.zeros_like(tau) if need_tau else None
        if need_w and index is not None:  # the value is one_hot(index) @ E
            grad_w.index_add_(0, index, g)
        if need_x or need_tau or (need_w and index is None):
            for block, chunks in _tiles(x.shape[0], x.shape[1], ctx.chunk):
                scale = _block_tau(tau, block)
                gb = g[block]
                # <g, out> of each softmax, and of the sample for reinmax's pi_1
                centre = [(gb * out[block]).sum(1, keepdim=True) for out in outs]
                if ctx.mode == "reinmax":
                    sampled = (gb * upcast(weight[index[block]])).sum(1, keepdim=True)
                    centre[1] = (centre[1] + sampled) / 2
                for part in chunks:
                    table = upcast(weight[part])
                    logit = upcast(x[block, part]) - shift[block, None]
                    gv = gb @ table.T
                    if ctx.mode == "reinmax":
                        pi_0 = torch.exp(logit - lse[0, block, None])
                        hot = index[block, None] == torch.arange(part.start, part.stop,
                                                                 device=x.device)
                        pi_1 = (hot + torch.exp(logit / scale - lse[1, block, None])) / 2
                        if need_x:
                            grad_x[block, part] = 2 * pi_1 * (gv - centre[1]) \
                                - pi_0 * (gv - centre[0]) / 2
                        continue
                    s = (logit + _noise(seed=ctx.seed, block=block, chunk=part,
                                        like=logit)) / scale
                    y = torch.exp(s - lse[0, block, None])
                    t = y * (gv - centre[0])  # the gradient to s = z / tau
                    if need_x:
                        grad_x[block, part] = t / scale
                    if need_tau:  # ds/dtau = -s / tau; masked entries (s = -inf, t = 0) add 0
                        grad_tau[block] -= torch.where(y > 0, s * t, 0.0).sum(1) / scale[:, 0]
                    if need_w and index is None:
                        grad_w[part] += y.T @ gb
        if grad_x is not None:
            moved = logits.movedim(ctx.dim, -1).shape
            grad_x = grad_x.reshape(moved).movedim(-1, ctx.dim)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        return grad_x, grad_w, grad_tau, None, None, None, None
