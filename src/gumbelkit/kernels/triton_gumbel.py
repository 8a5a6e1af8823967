"""Triton kernels: Gumbel-max and Gumbel-Softmax (soft and hard) on CUDA.

One program handles ``BLOCK_R`` rows (a row: the ``K`` entries along ``dim``). A row that fits in
one tile (``K <= MAX_BLOCK_K``) is read once and written once; a longer row is walked in tiles
of ``MAX_BLOCK_K`` with an online max and sum (Milakov and Gimelshein 2018, "Online normalizer
calculation for softmax").

Noise. Counter-based: Philox-4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as
1, 2, 3") keyed by a 64-bit seed, with counter ``row * ceil(K / 4) + k // 4`` for entry ``k`` of
``row``; each counter gives four 32-bit words, one per entry of a group of four. The noise of an
entry is a function of (seed, row, k) alone, whatever the tile sizes, so the soft and the hard
sample of a seed share their noise. The seed is drawn from torch's generator (the default or
``generator=``) as a one-element device tensor (:mod:`gumbelkit.kernels`), so
``torch.manual_seed`` reproduces results and no host synchronisation is needed. A word ``b``
becomes ``u = (b + 1/2) / 2**32`` (in float32 capped at ``1 - 2**-24``, the largest float32
below 1): a uniform on the open interval.

The logits are shifted by their row maximum before the noise is added (from the tile in
registers; one more read of a row longer than a tile), so the law is exact at any offset.
Arithmetic is in float32, in base 2: with ``log2(e)`` folded in,
``G * log2(e) = -log2(ln 2) - log2(-log2 u)`` and ``softmax(v)_k = 2**(v_k log2 e - m) / s``; the
logarithms come from the hardware's ``lg2.approx``. Float64 input is computed in float64 (what the
interpreter tests with gradcheck), but compiled kernels hold their constants in float32, so the
dispatch keeps float64 CUDA tensors on the reference path.

These are the CUDA kernels of the custom ops (:mod:`gumbelkit.kernels.ops`), which register the
gradient. Hard mode writes the one-hot sample and, in a second launch, the soft sample its
gradient needs (kept as torch keeps it). For long rows, soft mode uses its output as scratch
between its two passes over the row (in the output's dtype).
"""

from __future__ import annotations

import functools
import math
import os

import torch
import triton
import triton.language as tl

from .._ops import compute_dtype

__all__ = ["gumbel_max", "gumbel_softmax", "gumbel_noise", "gumbel_tile", "finite"]

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
def finite(v):
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
def gumbel_tile(seed, rows, col0, KQ, BLOCK_K: tl.constexpr, COMPUTE: tl.constexpr):
    """``G`` itself for the tile of columns ``col0 .. col0 + BLOCK_K`` of ``rows``: the noise of
    :func:`gumbel_noise`, and of the soft embedding's kernels (:mod:`.triton_embedding`)."""
    return _gumbel2(seed, rows, col0, KQ, BLOCK_K, COMPUTE) / LOG2E


@triton.jit
def _load(x_ptr, offs, mask, COMPUTE: tl.constexpr):
    """A tile of logits in the compute dtype, -inf where masked."""
    return tl.load(x_ptr + offs, mask=mask, other=float("-inf")).to(COMPUTE)


@triton.jit
def _perturbed2(x, seed, rows, col0, KQ, scale, shift, BLOCK_K: tl.constexpr,
                COMPUTE: tl.constexpr):
    """``(logits - shift + G) * log2(e) / tau`` for a tile ``x`` of logits (``scale = 1 / tau``,
    ``shift`` the row's largest logit)."""
    return ((x - shift[:, None]) * LOG2E + _gumbel2(seed, rows, col0, KQ, BLOCK_K, COMPUTE)) \
        * scale


@triton.jit
def _row_max(x_ptr, rows, row_ok, base, K, inner, LAST: tl.constexpr, BLOCK_R: tl.constexpr,
             BLOCK_K: tl.constexpr, COMPUTE: tl.constexpr):
    """The largest logit of each row (0 for a fully masked row) of a row longer than a tile:
    the shift that keeps ``logits + G`` exact at any offset (one more read of the row)."""
    top = tl.full([BLOCK_R], float("-inf"), COMPUTE)
    for col0 in range(0, K, BLOCK_K):
        cols = col0 + tl.arange(0, BLOCK_K)
        mask = row_ok[:, None] & (cols < K)[None, :]
        top = tl.maximum(top, tl.max(_load(x_ptr, _offsets(base, cols, inner, LAST), mask,
                                           COMPUTE), 1))
    return finite(top)


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
        g = gumbel_tile(seed, rows, col0, KQ, BLOCK_K, COMPUTE)
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
        x = _load(x_ptr, offs, mask, COMPUTE)
        z = _perturbed2(x, seed, rows, 0, KQ, scale, finite(tl.max(x, 1)), BLOCK_K, COMPUTE)
        if MODE == INDEX:
            tl.store(index_ptr + rows, tl.argmax(z, 1), mask=row_ok)
        elif MODE == SOFT:
            e = tl.exp2(z - finite(tl.max(z, 1))[:, None])
            y = e / tl.sum(e, 1)[:, None]
            tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)
        else:
            top = tl.argmax(z, 1)
            tl.store(out_ptr + offs, _one_hot(cols, top, out_ptr.dtype.element_ty), mask=mask)
    else:
        shift = _row_max(x_ptr, rows, row_ok, base, K, inner, LAST, BLOCK_R, BLOCK_K, COMPUTE)
        m = tl.full([BLOCK_R], float("-inf"), COMPUTE)  # running max of z
        s = tl.zeros([BLOCK_R], COMPUTE)  # running sum of 2**(z - m)
        top = tl.zeros([BLOCK_R], tl.int64)  # running argmax of z
        for col0 in range(0, K, BLOCK_K):
            cols = col0 + tl.arange(0, BLOCK_K)
            mask = row_ok[:, None] & (cols < K)[None, :]
            offs = _offsets(base, cols, inner, LAST)
            z = _perturbed2(_load(x_ptr, offs, mask, COMPUTE), seed, rows, col0, KQ, scale,
                            shift, BLOCK_K, COMPUTE)
            if MODE == SOFT:
                tile_max = tl.max(z, 1)
            else:
                tile_max, tile_top = tl.max(z, 1, return_indices=True)
                top = tl.where(tile_max > m, col0 + tile_top.to(tl.int64), top)
            if MODE == SOFT:  # keep 2**(z - ref) in the output; rescaled in the second pass
                ref = finite(tl.maximum(m, tile_max))
                e = tl.exp2(z - ref[:, None])
                s = s * tl.exp2(m - ref) + tl.sum(e, 1)
                tl.store(out_ptr + offs, e.to(out_ptr.dtype.element_ty), mask=mask)
                tl.store(stats_ptr + rows * n_tiles + col0 // BLOCK_K, ref, mask=row_ok)
            m = tl.maximum(m, tile_max)
        if MODE == INDEX:
            tl.store(index_ptr + rows, top, mask=row_ok)
        elif MODE == SOFT:
            final = finite(m)
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
            for col0 in range(0, K, BLOCK_K):
                cols = col0 + tl.arange(0, BLOCK_K)
                mask = row_ok[:, None] & (cols < K)[None, :]
                tl.store(out_ptr + _offsets(base, cols, inner, LAST),
                         _one_hot(cols, top, out_ptr.dtype.element_ty), mask=mask)


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


def gumbel_max(logits: torch.Tensor, dim: int, seed: torch.Tensor) -> torch.Tensor:
    """``argmax(logits + G, dim)``, G ~ Gumbel(0, 1) from ``seed``: no temporaries."""
    x = logits.detach().contiguous()
    layout = _layout(x.shape, dim)
    index = torch.empty(x.shape[:dim] + x.shape[dim + 1:], dtype=torch.int64, device=x.device)
    _forward_kernel[layout.grid](x, x, index, x, seed, *layout.sizes(), layout.n_tiles, 1.0,
                                 MODE=INDEX.value, COMPUTE=_compute_type(x.dtype),
                                 **layout.options)
    return index


def _forward(x: torch.Tensor, layout: _Layout, scale: float, mode: tl.constexpr,
             seed: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    stats = x  # the per-tile statistics of long rows in soft mode; unread otherwise
    if mode == SOFT and not layout.single:
        stats = torch.empty((layout.n_rows, layout.n_tiles), dtype=compute_dtype(x),
                            device=x.device)
    _forward_kernel[layout.grid](x, out, x, stats, seed, *layout.sizes(), layout.n_tiles, scale,
                                 MODE=mode.value, COMPUTE=_compute_type(x.dtype),
                                 **layout.options)
    return out


def gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor, hard: bool, dim: int,
                   seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample (soft, or one-hot with ``hard``) and, with ``hard``, the soft sample along
    ``dim`` for the noise of ``seed`` (the same noise in both); ``tau`` is a scalar tensor on the
    CPU, floored (so ``1 / tau`` is finite)."""
    x = logits.detach().contiguous()
    layout = _layout(x.shape, dim)
    scale = 1.0 / float(tau)
    soft = _forward(x, layout, scale, SOFT, seed)
    if not hard:
        return soft, soft.new_empty(0)
    return _forward(x, layout, scale, HARD, seed), soft
