"""Triton kernels: Gumbel-max and Gumbel-Softmax (soft and hard) on CUDA, forward and backward.

One program handles ``BLOCK_R`` rows (a row: the ``K`` entries along ``dim``). A row that fits in
one tile (``K <= MAX_BLOCK_K``) is read once and written once; a longer row is walked in tiles
of ``MAX_BLOCK_K`` with an online max and sum (Milakov and Gimelshein 2018, "Online normalizer
calculation for softmax").

Noise. Counter-based: Philox-4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as
1, 2, 3") keyed by a 64-bit seed, with counter ``row * ceil(K / 4) + k // 4`` for entry ``k`` of
``row``; each counter gives four 32-bit words, one per entry of a group of four. The noise of an
entry is a function of (seed, row, k) alone, so backward regenerates the forward's noise instead
of storing it, whatever the tile sizes. The seed is drawn from torch's generator (the default or
``generator=``) as a one-element device tensor, so ``torch.manual_seed`` reproduces results and
no host synchronisation is needed. A word ``b`` becomes ``u = (b + 1/2) / 2**32`` (in float32
capped at ``1 - 2**-24``, the largest float32 below 1): a uniform on the open interval.

Arithmetic is in float32, in base 2: with ``log2(e)`` folded in,
``G * log2(e) = -log2(ln 2) - log2(-log2 u)`` and ``softmax(v)_k = 2**(v_k log2 e - m) / s``; the
logarithms come from the hardware's ``lg2.approx``. Float64 input is computed in float64 (what the
interpreter tests with gradcheck), but compiled kernels hold their constants in float32, so the
dispatch keeps float64 CUDA tensors on the reference path.

Memory. Hard mode returns the one-hot sample and keeps for backward only the seed and, for long
rows, each row's max and normaliser: the soft sample's gradient ``y * (g - <g, y>) / tau`` is
rebuilt from the logits and the regenerated noise. Soft mode keeps its output, as
``torch.softmax`` does. For long rows, soft forward and hard backward use their output as
scratch between their two passes over the row (in the output's dtype).
"""

from __future__ import annotations

import functools
import math
import os

import torch
import triton
import triton.language as tl

from .._ops import compute_dtype

__all__ = ["gumbel_max", "gumbel_softmax", "gumbel_noise"]

MAX_BLOCK_K = 4096  # longest row held in one tile; longer rows are walked in tiles of this size
TILE = 4096  # entries per program for short rows (BLOCK_R * BLOCK_K)
# forward modes, and constants of the kernels (Triton reads globals only as constexpr)
INDEX, SOFT, HARD = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)
NEG_LOG2_LN2 = tl.constexpr(0.5287663729448977)  # -log2(ln 2)
LOG2E = tl.constexpr(1.4426950408889634)
TWO_POW_M32 = tl.constexpr(2.3283064365386963e-10)  # 2**-32
BELOW_ONE_F32 = tl.constexpr(0.99999994039535522)  # 1 - 2**-24, the largest float32 below 1
# compiled code takes float32 logarithms from the hardware's lg2.approx (relative error below
# 2**-22; tl.log2 compiles to libdevice's log2f, about 25 more instructions per call, which made
# the index-only kernel issue-bound); Triton's interpreter runs no PTX and keeps tl.log2
HARDWARE_LOG2 = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") != "1")


@triton.jit
def _finite(v):
    """-inf (a row or tile with nothing unmasked so far) as 0, so that ``v - v`` stays 0."""
    return tl.where(v == float("-inf"), 0.0, v)


@triton.jit
def _one_hot(cols, top, dtype: tl.constexpr):
    """1 where the column is the row's ``top``, else 0 (through float32: Triton's interpreter
    converts booleans to bfloat16 wrongly)."""
    return tl.where(cols[None, :] == top[:, None], 1.0, 0.0).to(dtype)


@triton.jit
def _offsets(base, cols, inner, LAST: tl.constexpr):
    """Flat offsets of a [rows, cols] tile: entry k of a row is ``inner`` elements after k-1."""
    if LAST:
        return base[:, None] + cols[None, :]
    else:
        return base[:, None] + cols[None, :].to(tl.int64) * inner


@triton.jit
def _log2(x, COMPUTE: tl.constexpr):
    if HARDWARE_LOG2 and COMPUTE == tl.float32:  # noqa: SIM300 (COMPUTE is the variable)
        return tl.inline_asm_elementwise("lg2.approx.f32 $0, $1;", "=r,r", [x],
                                         dtype=tl.float32, is_pure=True, pack=1)
    else:
        return tl.log2(x)


@triton.jit
def _gumbel2(seed, rows, col0, KQ, BLOCK_K: tl.constexpr, COMPUTE: tl.constexpr):
    """``G * log2(e)`` for the tile of columns ``col0 .. col0 + BLOCK_K`` of ``rows``."""
    counter = rows[:, None] * KQ + (col0 // 4 + tl.arange(0, BLOCK_K // 4))[None, :]
    w0, w1, w2, w3 = tl.randint4x(seed, counter)
    bits = tl.interleave(tl.interleave(w0, w2), tl.interleave(w1, w3))
    u = (bits.to(COMPUTE) + 0.5) * TWO_POW_M32
    if tl.float32 == COMPUTE:
        u = tl.minimum(u, BELOW_ONE_F32)
    return NEG_LOG2_LN2 - _log2(-_log2(u, COMPUTE), COMPUTE)


@triton.jit
def _perturbed2(x_ptr, offs, mask, seed, rows, col0, KQ, scale,
                BLOCK_K: tl.constexpr, COMPUTE: tl.constexpr):
    """``(logits + G) * log2(e) / tau`` for a tile (``scale = 1 / tau``); -inf where masked."""
    x = tl.load(x_ptr + offs, mask=mask, other=float("-inf")).to(COMPUTE)
    return (x * LOG2E + _gumbel2(seed, rows, col0, KQ, BLOCK_K, COMPUTE)) * scale


@triton.jit
def _row_bases(n_rows, K, inner, LAST: tl.constexpr, BLOCK_R: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    if LAST:  # noqa: SIM108 (a statement-level branch on a constexpr compiles only the taken side)
        base = rows * K
    else:
        base = (rows // inner) * K * inner + rows % inner
    return rows, rows < n_rows, base


@triton.jit
def _noise_kernel(out_ptr, seed_ptr, n_rows, K, inner, KQ,
                  LAST: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
                  COMPUTE: tl.constexpr):
    """The kernels' Gumbel noise itself, for testing them against the pure-PyTorch formulas."""
    seed = tl.load(seed_ptr)
    rows, row_ok, base = _row_bases(n_rows, K, inner, LAST, BLOCK_R)
    for col0 in range(0, K, BLOCK_K):
        cols = col0 + tl.arange(0, BLOCK_K)
        mask = row_ok[:, None] & (cols < K)[None, :]
        g = _gumbel2(seed, rows, col0, KQ, BLOCK_K, COMPUTE) / LOG2E
        tl.store(out_ptr + _offsets(base, cols, inner, LAST), g, mask=mask)


@triton.jit
def _forward_kernel(x_ptr, out_ptr, index_ptr, stats_ptr, seed_ptr,
                    n_rows, K, inner, KQ, n_tiles, scale,
                    MODE: tl.constexpr, LAST: tl.constexpr, SINGLE: tl.constexpr,
                    BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr, COMPUTE: tl.constexpr):
    seed = tl.load(seed_ptr)
    rows, row_ok, base = _row_bases(n_rows, K, inner, LAST, BLOCK_R)
    if SINGLE:
        cols = tl.arange(0, BLOCK_K)
        mask = row_ok[:, None] & (cols < K)[None, :]
        offs = _offsets(base, cols, inner, LAST)
        z = _perturbed2(x_ptr, offs, mask, seed, rows, 0, KQ, scale, BLOCK_K, COMPUTE)
        if MODE == INDEX:
            tl.store(index_ptr + rows, tl.argmax(z, 1), mask=row_ok)
        elif MODE == SOFT:
            e = tl.exp2(z - _finite(tl.max(z, 1))[:, None])
            y = e / tl.sum(e, 1)[:, None]
            tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)
        else:
            top = tl.argmax(z, 1)
            tl.store(out_ptr + offs, _one_hot(cols, top, out_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full([BLOCK_R], float("-inf"), COMPUTE)  # running max of z
        s = tl.zeros([BLOCK_R], COMPUTE)  # running sum of 2**(z - m)
        top = tl.zeros([BLOCK_R], tl.int64)  # running argmax of z
        for col0 in range(0, K, BLOCK_K):
            cols = col0 + tl.arange(0, BLOCK_K)
            mask = row_ok[:, None] & (cols < K)[None, :]
            offs = _offsets(base, cols, inner, LAST)
            z = _perturbed2(x_ptr, offs, mask, seed, rows, col0, KQ, scale, BLOCK_K, COMPUTE)
            if MODE == SOFT:
                tile_max = tl.max(z, 1)
            else:
                tile_max, tile_top = tl.max(z, 1, return_indices=True)
                top = tl.where(tile_max > m, col0 + tile_top.to(tl.int64), top)
            if MODE != INDEX:
                ref = _finite(tl.maximum(m, tile_max))
                e = tl.exp2(z - ref[:, None])
                s = s * tl.exp2(m - ref) + tl.sum(e, 1)
                if MODE == SOFT:  # keep 2**(z - ref) in the output; rescaled in the second pass
                    tl.store(out_ptr + offs, e.to(out_ptr.dtype.element_ty), mask=mask)
                    tl.store(stats_ptr + rows * n_tiles + col0 // BLOCK_K, ref, mask=row_ok)
            m = tl.maximum(m, tile_max)
        if MODE == INDEX:
            tl.store(index_ptr + rows, top, mask=row_ok)
        elif MODE == SOFT:
            final = _finite(m)
            for col0 in range(0, K, BLOCK_K):
                cols = col0 + tl.arange(0, BLOCK_K)
                mask = row_ok[:, None] & (cols < K)[None, :]
                offs = _offsets(base, cols, inner, LAST)
                ref = tl.load(stats_ptr + rows * n_tiles + col0 // BLOCK_K, mask=row_ok, other=0.0)
                factor = tl.exp2(ref - final) / s
                e = tl.load(out_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
                tl.store(out_ptr + offs, (e * factor[:, None]).to(out_ptr.dtype.element_ty),
                         mask=mask)
        else:
            tl.store(stats_ptr + rows * 2, _finite(m), mask=row_ok)
            tl.store(stats_ptr + rows * 2 + 1, s, mask=row_ok)
            for col0 in range(0, K, BLOCK_K):
                cols = col0 + tl.arange(0, BLOCK_K)
                mask = row_ok[:, None] & (cols < K)[None, :]
                tl.store(out_ptr + _offsets(base, cols, inner, LAST),
                         _one_hot(cols, top, out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(grad_ptr, y_ptr, x_ptr, stats_ptr, seed_ptr, dx_ptr,
                     n_rows, K, inner, KQ, scale,
                     HARD: tl.constexpr, LAST: tl.constexpr, SINGLE: tl.constexpr,
                     BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr, COMPUTE: tl.constexpr):
    """``dx = y * (g - <g, y>) / tau``, with y the soft sample (rebuilt in hard mode)."""
    rows, row_ok, base = _row_bases(n_rows, K, inner, LAST, BLOCK_R)
    if HARD:
        seed = tl.load(seed_ptr)
    if SINGLE:
        cols = tl.arange(0, BLOCK_K)
        mask = row_ok[:, None] & (cols < K)[None, :]
        offs = _offsets(base, cols, inner, LAST)
        g = tl.load(grad_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
        if HARD:
            z = _perturbed2(x_ptr, offs, mask, seed, rows, 0, KQ, scale, BLOCK_K, COMPUTE)
            e = tl.exp2(z - _finite(tl.max(z, 1))[:, None])
            y = e / tl.sum(e, 1)[:, None]
        else:
            y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
        dot = tl.sum(g * y, 1)
        tl.store(dx_ptr + offs, (y * (g - dot[:, None]) * scale).to(dx_ptr.dtype.element_ty),
                 mask=mask)
    else:
        if HARD:
            ref = tl.load(stats_ptr + rows * 2, mask=row_ok, other=0.0)
            s = tl.load(stats_ptr + rows * 2 + 1, mask=row_ok, other=1.0)
        dot = tl.zeros([BLOCK_R], COMPUTE)
        for col0 in range(0, K, BLOCK_K):
            cols = col0 + tl.arange(0, BLOCK_K)
            mask = row_ok[:, None] & (cols < K)[None, :]
            offs = _offsets(base, cols, inner, LAST)
            g = tl.load(grad_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
            if HARD:  # rebuild y, and keep it in dx for the second pass
                z = _perturbed2(x_ptr, offs, mask, seed, rows, col0, KQ, scale, BLOCK_K, COMPUTE)
                y = tl.exp2(z - ref[:, None]) / s[:, None]
                tl.store(dx_ptr + offs, y.to(dx_ptr.dtype.element_ty), mask=mask)
            else:
                y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
            dot += tl.sum(g * y, 1)
        for col0 in range(0, K, BLOCK_K):
            cols = col0 + tl.arange(0, BLOCK_K)
            mask = row_ok[:, None] & (cols < K)[None, :]
            offs = _offsets(base, cols, inner, LAST)
            g = tl.load(grad_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
            if HARD:
                y = tl.load(dx_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
            else:
                y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
            tl.store(dx_ptr + offs, (y * (g - dot[:, None]) * scale).to(dx_ptr.dtype.element_ty),
                     mask=mask)


class _Layout:
    """``x`` (contiguous) seen as rows along ``dim``: ``outer * inner`` rows of ``K`` entries,
    entry k of row r at ``(r // inner) * K * inner + r % inner + k * inner``; and the tiles."""

    def __init__(self, shape: tuple[int, ...], dim: int, max_block_k: int) -> None:
        self.categories = shape[dim]
        self.inner = 1
        for size in shape[dim + 1:]:
            self.inner *= size
        self.n_rows = math.prod(shape) // self.categories
        self.groups = triton.cdiv(self.categories, 4)
        self.single = self.categories <= max_block_k
        self.block_k = (max(16, triton.next_power_of_2(self.categories)) if self.single
                        else max_block_k)
        rows_per_tile = max(1, TILE // self.block_k)
        self.block_r = min(rows_per_tile, triton.next_power_of_2(self.n_rows))
        self.n_tiles = triton.cdiv(self.categories, self.block_k)
        self.grid = (triton.cdiv(self.n_rows, self.block_r),)
        self.options = dict(LAST=self.inner == 1, SINGLE=self.single, BLOCK_R=self.block_r,
                            BLOCK_K=self.block_k,
                            num_warps=8 if self.block_r * self.block_k >= 2048 else 4)

    def sizes(self) -> tuple[int, int, int, int]:
        return self.n_rows, self.categories, self.inner, self.groups


@functools.lru_cache(maxsize=256)
def _cached_layout(shape: tuple[int, ...], dim: int, max_block_k: int) -> _Layout:
    return _Layout(shape, dim, max_block_k)


def _layout(shape: torch.Size | tuple[int, ...], dim: int) -> _Layout:
    """The layout of logits of ``shape`` along ``dim`` (cached: it is asked for on every call)."""
    return _cached_layout(tuple(shape), dim, MAX_BLOCK_K)


def _compute_type(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _seed(device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """A 62-bit Philox key drawn from torch's generator, as a one-element tensor on ``device``."""
    return torch.randint(2**62, (1,), dtype=torch.int64, device=device, generator=generator)


def gumbel_noise(shape: torch.Size | tuple[int, ...], dim: int, seed: torch.Tensor,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The Gumbel noise the kernels add for ``seed`` to logits of ``shape`` along ``dim``, in
    their compute dtype for ``dtype`` (float64 or float32), on the seed's device."""
    layout = _layout(shape, dim)
    out = torch.empty(shape, dtype=torch.float64 if dtype == torch.float64 else torch.float32,
                      device=seed.device)
    options = {name: value for name, value in layout.options.items() if name != "SINGLE"}
    _noise_kernel[layout.grid](out, seed, *layout.sizes(), COMPUTE=_compute_type(dtype),
                               **options)
    return out


def gumbel_max(logits: torch.Tensor, dim: int, generator: torch.Generator | None = None,
               seed: torch.Tensor | None = None) -> torch.Tensor:
    """``argmax(logits + G, dim)``, G ~ Gumbel(0, 1): one read of the logits, no temporaries."""
    x = logits.detach().contiguous()
    layout = _layout(x.shape, dim)
    seed = _seed(x.device, generator) if seed is None else seed
    index = torch.empty(x.shape[:dim] + x.shape[dim + 1:], dtype=torch.int64, device=x.device)
    _forward_kernel[layout.grid](x, x, index, x, seed, *layout.sizes(), layout.n_tiles, 1.0,
                                 MODE=INDEX.value, COMPUTE=_compute_type(x.dtype),
                                 **layout.options)
    return index


class _GumbelSoftmax(torch.autograd.Function):
    """``softmax((logits + G) / tau)`` or, with ``hard``, its one-hot argmax with the soft
    sample's gradient (Jang, Gu and Poole 2017, "Categorical Reparameterization with
    Gumbel-Softmax")."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, tau: float, hard: bool, dim: int,
                seed: torch.Tensor) -> torch.Tensor:
        x = logits.contiguous()
        layout = _layout(x.shape, dim)
        out = torch.empty_like(x)
        compute = _compute_type(x.dtype)
        stats = None  # per row (hard) or per tile (soft) statistics of long rows
        if not layout.single:
            stats = torch.empty((layout.n_rows, 2) if hard else (layout.n_rows, layout.n_tiles),
                                dtype=compute_dtype(x), device=x.device)
        mode = HARD if hard else SOFT
        _forward_kernel[layout.grid](x, out, x, _or(stats, x), seed, *layout.sizes(),
                                     layout.n_tiles, 1.0 / tau, MODE=mode.value, COMPUTE=compute,
                                     **layout.options)
        ctx.layout, ctx.tau, ctx.hard = layout, tau, hard
        ctx.save_for_backward(*((x, stats, seed) if hard else (out,)))
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        x = stats = seed = y = None
        if ctx.hard:
            x, stats, seed = ctx.saved_tensors
        else:
            (y,) = ctx.saved_tensors
        dx = torch.empty_like(grad)
        layout = ctx.layout
        _backward_kernel[layout.grid](grad, _or(y, grad), _or(x, grad), _or(stats, grad),
                                      _or(seed, grad), dx, *layout.sizes(), 1.0 / ctx.tau,
                                      HARD=ctx.hard, COMPUTE=_compute_type(dx.dtype),
                                      **layout.options)
        return dx, None, None, None, None


def _or(tensor: torch.Tensor | None, placeholder: torch.Tensor) -> torch.Tensor:
    """A pointer argument that the kernel's mode does not read: any tensor will do."""
    return placeholder if tensor is None else tensor


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool, dim: int,
                   generator: torch.Generator | None = None,
                   seed: torch.Tensor | None = None) -> torch.Tensor:
    """Gumbel-Softmax sample along ``dim`` (soft, or one-hot with ``hard``), differentiable with
    respect to ``logits``; the noise comes from ``seed`` (default: drawn from ``generator``)."""
    seed = _seed(logits.device, generator) if seed is None else seed
    return _GumbelSoftmax.apply(logits, tau, hard, dim, seed)
