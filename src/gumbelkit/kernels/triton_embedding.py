"""Triton kernels of the soft embedding on CUDA (:func:`gumbelkit.embedding.soft_embedding`).

With ``x`` the ``(n, V)`` logits (categories last), ``E`` the ``(V, d)`` table, ``z = x - shift
+ G`` (``shift`` the row's largest logit, so ``x + G`` is exact at any offset), ``s = z / tau``
and ``y = softmax(s) = exp(s - lse)``, the work is split between Triton, for everything of size
``n x V`` that is elementwise or a row reduction, and cuBLAS (``torch.mm``), for the products
with the table, through buffers of at most :data:`BUFFER_ENTRIES` entries: nothing of size
``n x V`` is allocated but the gradient of the logits itself, and nothing of it is kept for
backward.

Forward:

1. one pass over the logits per block of ``BLOCK_R`` rows (:func:`_statistics_kernel`): the
   log-sum-exp of ``s`` with an online max and sum (Milakov and Gimelshein 2018), and the
   running ``argmax z`` of the hard sample; for ReinMax (Liu et al. 2023) the log-sum-exps of
   the noiseless ``x`` and ``x / tau`` instead (its two softmaxes), and the argmax;
2. per block of rows, the probabilities ``y`` written in the logits' dtype into a buffer
   (:func:`_probabilities_kernel`), then ``out = y @ E`` (cuBLAS, float32 accumulation; half
   precision tables on the tensor cores, ``y`` rounded to the logits' dtype as in the
   composition ``F.gumbel_softmax(x) @ E``). The hard samples' value ``E[argmax z]`` is a
   gather; their soft outputs (which backward needs for the centre below) are computed only
   when a gradient will be asked for.

Backward, per chunk of categories (so that each product with the table is one cuBLAS call over
all the rows): ``gv = g @ E_chunk^T`` (float32), then :func:`_backward_kernel` regenerates ``y``
from the saved ``shift``, ``lse`` and the seed, and writes ``d x = y (gv - c) / tau`` (``c =
<g, out>`` per row, from the saved ``(n, d)`` output), the per-tile sums of ``d tau``
(``-sum_j (s_j / tau) y_j (gv_j - c)``, added up by torch in a fixed order: deterministic), and
``y`` itself for ``d E_chunk = y^T g`` (cuBLAS). ReinMax's gradient ``2 J(pi_1) gv - J(pi_0) gv /
2`` (``J(p) v = p (v - <p, v>)``) needs no noise; the hard samples' table gradient is ``g`` added
at the sampled rows.

A restricted support (``top_k``, ``top_p``, ``min_p``) comes as each row's floor, its smallest
kept logit (:func:`gumbelkit.restricted.restriction_floor`): the kernels read the logits below
it as ``-inf``.

Noise: ``"torch"`` is the Gumbel-max kernels' Philox noise (:func:`.triton_gumbel.gumbel_tile`,
counter ``row * ceil(V / 4) + j // 4``), ``"portable"`` the hash of
:mod:`gumbelkit.portable`, its per-row state computed by torch (:func:`~gumbelkit.portable.
row_states`) and the category's round here, in 32-bit integers, ``u`` and the two logarithms in
float64, rounded to the compute dtype as :func:`~gumbelkit.portable.portable_gumbel` rounds: both
are functions of (seed, row, category), whatever the tiles. Arithmetic is in float32 (float64
under Triton's interpreter, which the tests' gradcheck uses).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .. import portable
from .._ops import compute_dtype, upcast
from .triton_gumbel import finite, gumbel_noise, gumbel_tile

__all__ = ["BUFFER_ENTRIES", "backward", "drawn_noise", "forward"]

BUFFER_ENTRIES = 2**26  # entries of a (rows x categories) buffer: 256 MiB of float32
BLOCK_R = 4  # rows per program of the statistics pass, which walks whole rows
BLOCK_V = 1024  # categories per tile of that pass
TILE_R, TILE_V = 16, 256  # the (rows x categories) tile of a program of the other kernels
# the streams of scores: s = (x - shift + G) / tau, x - shift, (x - shift) / tau
RELAXED, PLAIN, TEMPERED = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)
GS, STRAIGHT, REINMAX = tl.constexpr(0), tl.constexpr(1), tl.constexpr(2)  # the estimators
PHILOX, PORTABLE = tl.constexpr(0), tl.constexpr(1)
MODES = {"gs": GS, "st-gs": STRAIGHT, "reinmax": REINMAX}
NOISES = {"torch": PHILOX, "portable": PORTABLE}
GOLDEN = tl.constexpr(portable.GOLDEN)
FMIX_1, FMIX_2 = (tl.constexpr(value) for value in portable.FMIX_MULTIPLIERS)
TWO_POW_M53 = tl.constexpr(2.0**-53)
TWO_POW_26 = tl.constexpr(2**26)


@triton.jit
def _fmix32(x):
    """MurmurHash3's finaliser on uint32 words (as :func:`gumbelkit.portable._fmix32`)."""
    x = x ^ (x >> 16)
    x = x * FMIX_1
    x = x ^ (x >> 13)
    x = x * FMIX_2
    return x ^ (x >> 16)


@triton.jit
def _noise(seed, state0, state1, rows, cols, col0, KQ, NOISE: tl.constexpr,
           BLOCK: tl.constexpr, COMPUTE: tl.constexpr):
    """``G`` of the tile ``rows x cols`` (``cols = col0 + arange(BLOCK)``)."""
    if NOISE == PHILOX:
        return gumbel_tile(seed, rows, col0, KQ, BLOCK, COMPUTE)
    else:
        category = cols.to(tl.uint32)[None, :]
        first = _fmix32((state0[:, None] ^ category) + GOLDEN)
        second = _fmix32((state1[:, None] ^ category) + GOLDEN)
        bits = (first >> 5).to(tl.int64) * TWO_POW_26 + (second >> 6).to(tl.int64)
        u = (bits.to(tl.float64) + 0.5) * TWO_POW_M53
        return (-tl.log(-tl.log(u))).to(COMPUTE)


@triton.jit
def _row_inputs(shift_ptr, floor_ptr, scale_ptr, states_ptr, seed_ptr, rows, row_ok, n_rows,
                NOISE: tl.constexpr, TAU_PER_ROW: tl.constexpr, RESTRICTED: tl.constexpr):
    """Each row's shift, floor (the smallest kept logit of a restricted support; -inf) and
    ``1 / tau``, the seed, and the portable noise's row states."""
    shift = tl.load(shift_ptr + rows, mask=row_ok, other=0.0)
    if RESTRICTED:
        floor = tl.load(floor_ptr + rows, mask=row_ok, other=0.0)
    else:
        floor = tl.full(shift.shape, float("-inf"), shift.dtype)
    if TAU_PER_ROW:
        scale = tl.load(scale_ptr + rows, mask=row_ok, other=1.0)
    else:
        scale = tl.load(scale_ptr + rows * 0)
    seed = tl.load(seed_ptr)
    if NOISE == PORTABLE:
        state0 = tl.load(states_ptr + rows, mask=row_ok, other=0).to(tl.uint32)
        state1 = tl.load(states_ptr + n_rows + rows, mask=row_ok, other=0).to(tl.uint32)
    else:
        state0 = rows.to(tl.uint32)  # unused
        state1 = state0
    return shift, floor, scale, seed, state0, state1


@triton.jit
def _logits(x_ptr, rows, cols, mask, V, shift, floor, COMPUTE: tl.constexpr):
    """The tile of ``x - shift``, -inf where masked and below the row's floor."""
    x = tl.load(x_ptr + rows[:, None] * V + cols[None, :], mask=mask, other=float("-inf"))
    x = x.to(COMPUTE)
    return tl.where(x < floor[:, None], float("-inf"), x - shift[:, None])


@triton.jit
def _online(top, total, scores):
    """The running max and sum ``sum_j exp(s_j - top)`` after one more tile of scores."""
    new = tl.maximum(top, tl.max(scores, 1))
    ref = finite(new)
    return new, total * tl.exp(top - ref) + tl.sum(tl.exp(scores - ref[:, None]), 1)


@triton.jit
def _statistics_kernel(x_ptr, shift_ptr, floor_ptr, scale_ptr, seed_ptr, states_ptr, lse_ptr,
                       index_ptr, n_rows, V, KQ, MODE: tl.constexpr, NOISE: tl.constexpr,
                       TAU_PER_ROW: tl.constexpr, RESTRICTED: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_V: tl.constexpr, COMPUTE: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < n_rows
    shift, floor, scale, seed, state0, state1 = _row_inputs(
        shift_ptr, floor_ptr, scale_ptr, states_ptr, seed_ptr, rows, row_ok, n_rows, NOISE,
        TAU_PER_ROW, RESTRICTED)
    top0 = tl.full([BLOCK_R], float("-inf"), COMPUTE)
    total0 = tl.zeros([BLOCK_R], COMPUTE)
    top1, total1 = top0, total0  # ReinMax's second softmax
    best = top0  # the running max of z, at category index
    index = tl.zeros([BLOCK_R], tl.int64)
    for col0 in range(0, V, BLOCK_V):
        cols = col0 + tl.arange(0, BLOCK_V)
        logit = _logits(x_ptr, rows, cols, row_ok[:, None] & (cols < V)[None, :], V, shift,
                        floor, COMPUTE)
        z = logit + _noise(seed, state0, state1, rows, cols, col0, KQ, NOISE, BLOCK_V, COMPUTE)
        if MODE != GS:
            tile_best, tile_index = tl.max(z, 1, return_indices=True)
            index = tl.where(tile_best > best, col0 + tile_index.to(tl.int64), index)
            best = tl.maximum(best, tile_best)
        if MODE == REINMAX:
            top0, total0 = _online(top0, total0, logit)
            top1, total1 = _online(top1, total1, logit * scale[:, None])
        else:
            top0, total0 = _online(top0, total0, z * scale[:, None])
    tl.store(lse_ptr + rows, finite(top0) + tl.log(total0), mask=row_ok)
    if MODE == REINMAX:
        tl.store(lse_ptr + n_rows + rows, finite(top1) + tl.log(total1), mask=row_ok)
    if MODE != GS:
        tl.store(index_ptr + rows, index, mask=row_ok)


@triton.jit
def _probabilities_kernel(x_ptr, shift_ptr, floor_ptr, scale_ptr, seed_ptr, states_ptr,
                          lse_ptr, y_ptr, row0, n_block, n_rows, V, KQ, STREAM: tl.constexpr,
                          NOISE: tl.constexpr, TAU_PER_ROW: tl.constexpr,
                          RESTRICTED: tl.constexpr, TILE_R: tl.constexpr, TILE_V: tl.constexpr,
                          COMPUTE: tl.constexpr):
    """``exp(s - lse)`` of the stream for rows ``row0 .. row0 + n_block`` into ``y`` (local rows);
    ``lse_ptr`` points at the stream's log-sum-exps."""
    local = tl.program_id(0).to(tl.int64) * TILE_R + tl.arange(0, TILE_R)
    rows = row0 + local
    row_ok = local < n_block
    col0 = tl.program_id(1) * TILE_V
    cols = col0 + tl.arange(0, TILE_V)
    mask = row_ok[:, None] & (cols < V)[None, :]
    shift, floor, scale, seed, state0, state1 = _row_inputs(
        shift_ptr, floor_ptr, scale_ptr, states_ptr, seed_ptr, rows, row_ok, n_rows, NOISE,
        TAU_PER_ROW, RESTRICTED)
    scores = _logits(x_ptr, rows, cols, mask, V, shift, floor, COMPUTE)
    if STREAM == RELAXED:
        scores = (scores + _noise(seed, state0, state1, rows, cols, col0, KQ, NOISE, TILE_V,
                                  COMPUTE)) * scale[:, None]
    elif STREAM == TEMPERED:
        scores = scores * scale[:, None]
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    y = tl.exp(scores - lse[:, None])
    tl.store(y_ptr + local[:, None] * V + cols[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(x_ptr, shift_ptr, floor_ptr, scale_ptr, seed_ptr, states_ptr, lse_ptr,
                     index_ptr, centre_ptr, gv_ptr, gx_ptr, y_ptr, partial_ptr, col_start, width,
                     n_rows, V, KQ, n_tiles, MODE: tl.constexpr, NOISE: tl.constexpr,
                     TAU_PER_ROW: tl.constexpr, RESTRICTED: tl.constexpr, NEED_X: tl.constexpr,
                     NEED_TAU: tl.constexpr, WRITE_Y: tl.constexpr, TILE_R: tl.constexpr,
                     TILE_V: tl.constexpr, COMPUTE: tl.constexpr):
    """The gradients of the chunk of categories ``col_start .. col_start + width`` (``gv`` and
    ``y`` are ``(n_rows, width)``; ``col_start`` a multiple of ``TILE_V``)."""
    rows = tl.program_id(0).to(tl.int64) * TILE_R + tl.arange(0, TILE_R)
    row_ok = rows < n_rows
    local = tl.program_id(1) * TILE_V + tl.arange(0, TILE_V)
    col0 = col_start + tl.program_id(1) * TILE_V
    cols = col_start + local
    mask = row_ok[:, None] & (local < width)[None, :]
    shift, floor, scale, seed, state0, state1 = _row_inputs(
        shift_ptr, floor_ptr, scale_ptr, states_ptr, seed_ptr, rows, row_ok, n_rows, NOISE,
        TAU_PER_ROW, RESTRICTED)
    chunk = rows[:, None] * width + local[None, :]
    gv = tl.load(gv_ptr + chunk, mask=mask, other=0.0).to(COMPUTE)
    centre0 = tl.load(centre_ptr + rows, mask=row_ok, other=0.0)[:, None]
    lse0 = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)[:, None]
    logit = _logits(x_ptr, rows, cols, mask, V, shift, floor, COMPUTE)
    if MODE == REINMAX:
        centre1 = tl.load(centre_ptr + n_rows + rows, mask=row_ok, other=0.0)[:, None]
        lse1 = tl.load(lse_ptr + n_rows + rows, mask=row_ok, other=0.0)[:, None]
        index = tl.load(index_ptr + rows, mask=row_ok, other=0)
        hot = tl.where(cols[None, :] == index[:, None], 1.0, 0.0)
        pi_0 = tl.exp(logit - lse0)
        pi_1 = (hot + tl.exp(logit * scale[:, None] - lse1)) / 2
        grad = 2 * pi_1 * (gv - centre1) - pi_0 * (gv - centre0) / 2
    else:
        s = (logit + _noise(seed, state0, state1, rows, cols, col0, KQ, NOISE, TILE_V, COMPUTE)) \
            * scale[:, None]
        y = tl.exp(s - lse0)
        t = y * (gv - centre0)  # the gradient to s
        grad = t * scale[:, None]
        if NEED_TAU:  # masked entries (s = -inf, y = t = 0) add 0
            tl.store(partial_ptr + rows * n_tiles + col0 // TILE_V,
                     tl.sum(tl.where(y > 0, s * t, 0.0), 1), mask=row_ok)
        if WRITE_Y:
            tl.store(y_ptr + chunk, y.to(y_ptr.dtype.element_ty), mask=mask)
    if NEED_X:
        tl.store(gx_ptr + rows[:, None] * V + cols[None, :], grad.to(gx_ptr.dtype.element_ty),
                 mask=mask)


def _compute_type(x: torch.Tensor):
    return tl.float64 if x.dtype == torch.float64 else tl.float32


# torch.mm(..., out_dtype=) (aten::mm.dtype: half factors, float32 result) is in newer torch
_HALF_PRODUCT_TO_FLOAT32 = hasattr(torch.ops.aten.mm, "dtype")


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in the compute dtype: half-precision factors stay half on CUDA (the tensor
    cores) with a float32 result where torch has that product, else are upcast first."""
    if a.dtype in (torch.float16, torch.bfloat16) and a.is_cuda and _HALF_PRODUCT_TO_FLOAT32:
        return torch.mm(a, b, out_dtype=torch.float32)
    return torch.mm(upcast(a), upcast(b))


class _Call:
    """What every kernel of one call reads: the logits ``(n, V)``, their row shift and floor
    (None: no restriction), ``1 / tau`` (one number, or one per row), the seed and the portable
    noise's row states."""

    def __init__(self, x: torch.Tensor, tau: float | torch.Tensor, shift: torch.Tensor,
                 floor: torch.Tensor | None, noise: str, seed: int) -> None:
        self.x, self.shift = x, shift
        self.restricted = floor is not None
        self.floor = floor if floor is not None else shift
        dtype = compute_dtype(x)
        self.per_row = isinstance(tau, torch.Tensor)
        self.scale = (1 / tau.detach().to(dtype) if self.per_row
                      else torch.full((1,), 1 / tau, dtype=dtype, device=x.device))
        self.seed = torch.tensor([seed], dtype=torch.int64, device=x.device)
        self.noise = NOISES[noise]
        self.states = (portable.row_states(seed, torch.arange(x.shape[0], device=x.device))
                       if noise == "portable" else self.seed)

    def inputs(self) -> tuple:
        return self.x, self.shift, self.floor, self.scale, self.seed, self.states

    def options(self) -> dict:
        return dict(NOISE=self.noise, TAU_PER_ROW=self.per_row, RESTRICTED=self.restricted,
                    COMPUTE=_compute_type(self.x))


def _shift(x: torch.Tensor) -> torch.Tensor:
    """Each row's largest logit in the compute dtype (0 for a row with nothing unmasked)."""
    shift = x.amax(1).to(compute_dtype(x))
    return shift.masked_fill_(shift.isneginf(), 0.0)


def forward(x: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor,
            floor: torch.Tensor | None, mode: str, noise: str, seed: int,
            need_grad: bool) -> tuple[torch.Tensor, tuple]:
    """The value ``(n, d)`` in the logits' dtype and what :func:`backward` needs: the sampled
    index (hard modes), the shift, the log-sum-exps ``(streams, n)`` and the soft outputs
    ``(streams, n, d)`` in the compute dtype (module docstring)."""
    call = _Call(x, tau, _shift(x), floor, noise, seed)
    n, size = x.shape
    dtype = compute_dtype(x)
    lse = x.new_empty((2 if mode == "reinmax" else 1, n), dtype=dtype)
    index = x.new_empty(n if mode != "gs" else 0, dtype=torch.int64)
    _statistics_kernel[(triton.cdiv(n, BLOCK_R),)](
        *call.inputs(), lse, index, n, size, triton.cdiv(size, 4), MODE=MODES[mode],
        BLOCK_R=BLOCK_R, BLOCK_V=BLOCK_V, **call.options())
    streams = () if mode != "gs" and not need_grad else (
        (PLAIN, TEMPERED) if mode == "reinmax" else (RELAXED,))
    outs = x.new_empty((len(streams), n, weight.shape[1]), dtype=dtype)
    if streams:
        rows = max(1, min(n, BUFFER_ENTRIES // size))
        buffer = x.new_empty((rows, size))
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            y = buffer[:stop - start]
            for k, stream in enumerate(streams):
                _probabilities_kernel[(triton.cdiv(stop - start, TILE_R),
                                       triton.cdiv(size, TILE_V))](
                    *call.inputs(), lse[k], y, start, stop - start, n, size, triton.cdiv(size, 4),
                    STREAM=stream, TILE_R=TILE_R, TILE_V=TILE_V, **call.options())
                outs[k, start:stop] = _matmul(y, weight)
    # a copy in any dtype: the output may be edited in place, the saved soft output may not
    value = outs[0].to(x.dtype, copy=True) if mode == "gs" else weight[index]
    return value, (index, call.shift, lse, outs)


def backward(x: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor,
             floor: torch.Tensor | None, saved: tuple, grad: torch.Tensor, mode: str, noise: str,
             seed: int, needs: tuple[bool, bool, bool]) -> tuple:
    """The gradients to the logits ``(n, V)``, the table and (per row) tau, each None where
    ``needs`` says it is not needed."""
    index, shift, lse, outs = saved
    need_x, need_w, need_tau = needs
    need_tau = need_tau and mode != "reinmax"
    call = _Call(x, tau, shift, floor, noise, seed)
    n, size = x.shape
    g = grad.contiguous()
    wide = upcast(g)
    centre = (wide * outs).sum(2)  # <g, out> of each softmax
    if mode == "reinmax":  # and of pi_1 = (one_hot(index) + softmax(x / tau)) / 2
        centre[1] = (centre[1] + (wide * upcast(weight[index])).sum(1)) / 2
    grad_x = torch.empty_like(x) if need_x else None
    write_y = need_w and mode == "gs"
    grad_w = None
    if need_w:  # the hard samples' value is one_hot(index) @ E
        grad_w = (torch.empty_like(weight) if write_y
                  else torch.zeros_like(weight, dtype=wide.dtype).index_add_(0, index, wide))
    n_tiles = triton.cdiv(size, TILE_V)
    partial = x.new_empty((n, n_tiles), dtype=lse.dtype) if need_tau else lse
    if need_x or need_tau or write_y:
        width = max(1, BUFFER_ENTRIES // (n * TILE_V)) * TILE_V
        for start in range(0, size, width):
            stop = min(start + width, size)
            gv = _matmul(g, weight[start:stop].T)
            y = x.new_empty((n, stop - start)) if write_y else gv
            _backward_kernel[(triton.cdiv(n, TILE_R), triton.cdiv(stop - start, TILE_V))](
                *call.inputs(), lse, index, centre, gv, grad_x if need_x else x, y, partial,
                start, stop - start, n, size, triton.cdiv(size, 4), n_tiles, MODE=MODES[mode],
                NEED_X=need_x, NEED_TAU=need_tau, WRITE_Y=write_y, TILE_R=TILE_R, TILE_V=TILE_V,
                **call.options())
            if write_y:
                torch.mm(y.T, g, out=grad_w[start:stop])
    grad_tau = -partial.sum(1) * call.scale if need_tau else None
    return grad_x, None if grad_w is None else grad_w.to(weight.dtype), grad_tau


def drawn_noise(x: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    """The noise ``G`` ``(n, V)`` that the kernels add for ``seed`` (the compute dtype); the
    portable noise is :func:`gumbelkit.portable.portable_gumbel`'s, whichever computes it."""
    if kind == "portable":
        return portable.portable_gumbel(x.shape, seed, dtype=compute_dtype(x), device=x.device)
    seed_tensor = torch.tensor([seed], dtype=torch.int64, device=x.device)
    return gumbel_noise(x.shape, 1, seed_tensor, x.dtype)
