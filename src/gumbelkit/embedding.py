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

Each call draws one seed from ``generator``, ``seed = int(torch.randint(2**62, (),
generator=generator))`` (on the generator's device, or on the logits' device from torch's
default generator), and its noise is a function of that seed, regenerated tile by tile in
backward instead of being kept (``noise=``):

- ``"torch"`` (the default): on the chunked path, a private ``torch.Generator`` on the
  logits' device, seeded with the seed, fills each tile with ``gumbel_`` (``-log(-log u)``,
  ``u`` from ``torch.rand``; :mod:`gumbelkit.noise`) in the passes' fixed order (row blocks,
  then chunks); backward seeds a new generator with the same seed and draws the same tiles in
  the same order, so it sees the same noise. The draws depend on the tiling (``chunk_size``,
  :data:`TILE`) and on the device's generator. On the Triton path it is the Gumbel-max kernels'
  counter-based Philox noise keyed by (seed, row, category) (:mod:`gumbelkit.kernels.
  triton_gumbel`), whatever the tiles. It costs a uniform draw and two logarithms per entry,
  in forward and again in backward.
- ``"portable"``: :func:`gumbelkit.portable.portable_gumbel` keyed by each row's flat position
  (the leading dimensions flattened, categories last) and each category, the same on every
  device and for every tiling and batch layout, so ``softmax((logits + portable_gumbel(
  logits.shape, seed)) / tau) @ E`` is the same sample computed the plain way and the hard
  samples can be checked with :func:`gumbelkit.portable.verify_gumbel_max`. Its integer hash
  costs about 30 times ``torch.rand``, paid in forward and again in backward.

:func:`soft_embedding_noise` returns the noise ``G`` a call used (given a generator in the same
state), for tests and for whoever needs the sample's noise.

Hard samples (``hard=True`` with ``"gs"``, or ``estimator="st-gs"``; Jang et al. 2017) have the
forward value ``E[argmax_j z_j]`` exactly (the argmax found in the same chunked pass) and the
gradient of the soft sample to the logits and tau; the table gets ``d E_k = g`` at the sampled
row ``k``, the gradient of ``one_hot(k) @ E``. ``estimator="reinmax"`` (Liu, Dong, Liu, Yu and
Gao 2023, as :mod:`gumbelkit.estimators.reinmax`) has the same forward value and the logits'
gradient ``2 J(pi_1) (g E^T) - J(pi_0) (g E^T) / 2`` with ``pi_0 = softmax(logits)``, ``pi_1 =
(one_hot(k) + softmax(logits / tau)) / 2`` and ``J(p) v = p * (v - <p, v>)``: two noiseless
online softmaxes, whose outputs ``pi @ E`` give the inner products ``<p, g E^T> = g . (p @ E)``;
tau gets no gradient there, as in that estimator. The hard samples' softmaxes serve their
gradient only: without one to compute (``torch.no_grad``, no input requiring it) the forward
pass is the argmax and the gather alone.

Two paths compute it. On CUDA tensors of float16, bfloat16 or float32 with Triton installed
(the ``gpu`` extra), Triton kernels do the elementwise work and the row reductions and cuBLAS the
products with the table, through buffers of bounded size (:mod:`gumbelkit.kernels.
triton_embedding`); there a half-precision sample is rounded to the logits' dtype before its
products with the table (the tensor cores), as in the composition ``F.gumbel_softmax(x) @ E``.
Everywhere else (the CPU, float64) it is plain PyTorch on tiles of about :data:`TILE` entries,
written to reuse its temporaries in place and to take the table once per block of rows in every
pass: at (512, 50257, 768) in float32 on one CPU thread, forward and backward take about 0.7 of
the composition's time (``gumbelkit bench vocab``, benchmarks/RESULTS.md); half precision is
computed in float32 there and returned in the input dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from types import ModuleType

import torch

from ._ops import compute_dtype, floored, portable, upcast
from ._validate import check_count, check_logits, check_tau, check_tensor
from .estimators.reinmax import heun_sample
from .kernels import backend_for
from .kernels.reference import perturbed_softmax
from .noise import gumbel_
from .portable import portable_gumbel
from .restricted import check_restriction, restricted, restriction_floor
from .schedules import Schedule

__all__ = ["soft_embedding", "soft_embedding_noise"]

SUPPORTED = ("gs", "st-gs", "reinmax")
NOISES = ("torch", "portable")
TILE = 2**18  # entries of a (rows x categories) tile of the chunked passes (1 MiB in float32)
CHUNK = 512  # the default chunk_size: blocks of 512 rows, whose products with 512 rows of the
# table ran at the CPU's matmul speed; each pass reads the table once per block of rows


def soft_embedding(
    logits: torch.Tensor,
    weight: torch.Tensor,
    tau: float | torch.Tensor | Schedule = 1.0,
    hard: bool = False,
    estimator: str = "gs",
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    noise: str = "torch",
    chunk_size: int = CHUNK,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> torch.Tensor:
    """``softmax((logits + G) / tau) @ weight`` along ``dim``, computed in chunks of categories
    and differentiated without keeping anything of the logits' size (module docstring).

    ``logits``: ``(..., V)`` (the categories along ``dim``), ``weight``: ``(V, d)`` of the same
    dtype and device; the result is ``(..., d)``: the logits' shape without ``dim``, then ``d``.
    ``tau``: a number, a schedule, or a tensor broadcastable to the logits with size 1 along
    ``dim`` (one temperature per row), which gets its gradient. ``estimator``: ``"gs"`` (soft;
    ``hard=True`` makes it ``"st-gs"``), ``"st-gs"`` or ``"reinmax"`` (hard whatever ``hard``:
    the value is the table's row of the sampled category ``argmax(logits + G)``). ``noise``:
    ``"torch"`` (``torch.rand`` draws of a private generator seeded once per call from
    ``generator``: fast) or ``"portable"`` (:func:`gumbelkit.portable.portable_gumbel`: the
    same on every device, verifiable); :func:`soft_embedding_noise` returns the ``G`` of a call.
    ``chunk_size``: categories per chunk, with rows taken in blocks of ``TILE // chunk_size``
    (tiles of about :data:`TILE` entries) on the chunked path; the Triton path on CUDA has
    its own tiles, which its noise does not depend on. ``-inf`` logits are masks, never
    sampled. ``top_k``, ``top_p`` and ``min_p`` restrict the support first, as
    :func:`gumbelkit.restrict` does (the same kept set, so the sample is that of the restricted
    logits, with the same noise), held as one number per row, the smallest kept logit
    (:func:`gumbelkit.restricted.restriction_floor`), not as a mask of the logits' size.
    Under ``torch.func`` transforms, forward-mode AD and graph recorders
    (:func:`gumbelkit._ops.portable`) it is the plain composition ``sample @ weight`` with the
    chunked path's noise for the seed (the same values as an eager call on the CPU), which keeps
    the ``(rows, V)`` sample; under ``torch.compile`` it runs eagerly (a graph break), its seed
    drawn from torch's generator as in an eager call. Double backward (``create_graph=True``)
    recomputes that composition with the call's noise and support and differentiates it,
    holding the ``(rows, V)`` sample while it runs.
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
    noise = _check_noise(noise)
    restriction = check_restriction(top_k, top_p, min_p)
    row_tau = _row_tau(tau, logits, dim)
    # under torch.compile the fused call runs eagerly (torch.compiler.disable imports
    # torch._dynamo: it is applied only while compiling, when that is imported already)
    embed = (_composed if portable() else torch.compiler.disable(_fused)
             if torch.compiler.is_compiling() else _fused)
    out = embed(logits, weight, row_tau, dim, mode, noise, generator, chunk_size, restriction)
    return out.reshape(logits.shape[:dim] + logits.shape[dim + 1:] + weight.shape[1:])


def _fused(logits: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor, dim: int,
           mode: str, noise: str, generator: torch.Generator | None, chunk: int,
           restriction: tuple) -> torch.Tensor:
    """The soft embedding ``(rows, d)`` through :class:`_SoftEmbedding`."""
    need_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in (logits, weight, tau))
    floor = (None if restriction == (None, None, None)  # _rows copies logits not categories-last
             else restriction_floor(_rows(logits, dim), *restriction))
    return _SoftEmbedding.apply(logits, weight, tau, floor, dim, mode, noise,
                                _seed(generator, logits.device), chunk, need_grad)


def _composed(logits: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor, dim: int,
              mode: str, noise: str, generator: torch.Generator | None, chunk: int,
              restriction: tuple) -> torch.Tensor:
    """The soft embedding ``(rows, d)`` as the plain composition ``sample @ weight`` with the
    chunked path's noise for the call's seed (the same law; the same values on the CPU), for
    the transforms and recorders that differentiate or record plain PyTorch operations only
    (:func:`gumbelkit._ops.portable`): it keeps the ``(rows, V)`` sample for backward."""
    x = upcast(restricted(_rows(logits, dim), 1, *restriction))
    drawn = _chunked_noise(x.detach(), noise, _seed(generator, logits.device), chunk)
    return _plain(x, weight, tau, mode, drawn).to(logits.dtype)


def _plain(x: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor, mode: str,
           drawn: torch.Tensor) -> torch.Tensor:
    """``sample @ weight`` in plain PyTorch operations, in the compute dtype, for ``(rows, V)``
    logits ``x`` in the compute dtype (``-inf`` outside a restricted support), the noise
    ``drawn`` and ``tau`` a number or one per row."""
    scale = tau if not isinstance(tau, torch.Tensor) else tau[:, None]
    sample = perturbed_softmax(x, drawn, scale, mode != "gs", -1)  # shifted as the passes shift
    if mode == "reinmax":
        sample = heun_sample(sample.detach(), x, scale, -1)
    return sample @ upcast(weight)


def soft_embedding_noise(
    logits: torch.Tensor,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    noise: str = "torch",
    chunk_size: int = CHUNK,
) -> torch.Tensor:
    """The Gumbel noise ``G`` (the logits' shape, in their compute dtype) that
    :func:`soft_embedding` adds to ``logits`` when called with the same ``dim``, ``noise``,
    ``chunk_size`` and a ``generator`` in the same state (this call draws the same seed from
    it): ``softmax((logits + G) / tau) @ weight`` is then the same sample computed the plain
    way. With ``noise="torch"`` the draws depend on the tiling (``chunk_size``, :data:`TILE`)
    on the chunked path, not on the Triton path (module docstring); with ``"portable"`` they
    are ``portable_gumbel`` of the logits' shape (categories last), whatever the tiling."""
    dim = check_logits(logits, dim)
    chunk_size = check_count(chunk_size, "chunk_size")
    x = _rows(logits.detach(), dim)
    noise, seed = _check_noise(noise), _seed(generator, logits.device)
    out = _call_noise(x, noise, seed, chunk_size, _on_triton(x) and not portable())
    return out.reshape(logits.movedim(dim, -1).shape).movedim(-1, dim)


def _call_noise(x: torch.Tensor, noise: str, seed: int, chunk: int, triton: bool) -> torch.Tensor:
    """The noise ``(rows, V)`` of a call with ``seed``: the Triton kernels' where ``triton``,
    else the chunked passes'."""
    if triton:
        return _triton_kernels().drawn_noise(x, noise, seed)
    return _chunked_noise(x, noise, seed, chunk)


def _chunked_noise(x: torch.Tensor, noise: str, seed: int, chunk: int) -> torch.Tensor:
    """The noise ``(rows, V)`` that the chunked passes add for ``seed``, in their tiles' order."""
    tiles = _TileNoise(noise, seed, x.device)
    out = torch.empty_like(x, dtype=compute_dtype(x))
    for block, chunks in _tiles(x.shape[0], x.shape[1], chunk):
        for part in chunks:
            out[block, part] = tiles.draw(block, part, out)
    return out


def _check_noise(noise: object) -> str:
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(map(repr, NOISES))}, got {noise!r}")
    return noise


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
    """The row blocks of the passes, each with its chunks of categories, as slices: blocks of
    ``TILE // chunk`` rows (at least one), in this order in every pass."""
    chunk = min(chunk, max(size, 1))
    block = max(1, TILE // chunk)
    chunks = [slice(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    for start in range(0, rows, block):
        yield slice(start, min(start + block, rows)), chunks


def _chunk_logits(x: torch.Tensor, shift: torch.Tensor, floor: torch.Tensor | None,
                  block: slice, part: slice) -> torch.Tensor:
    """A tile of the logits in the compute dtype minus their row's largest, ``-inf`` below the
    row's ``floor`` (the restricted support's smallest kept logit, if any)."""
    raw = upcast(x[block, part])  # a view of x where that is the compute dtype: not written
    logit = raw - shift[block, None]
    return logit if floor is None else logit.masked_fill_(raw < floor[block, None], -math.inf)


def _block_tau(tau: float | torch.Tensor, block: slice) -> float | torch.Tensor:
    return tau if not isinstance(tau, torch.Tensor) else tau[block, None]


class _TileNoise:
    """The Gumbel noise of one call, tile by tile (module docstring): ``"torch"`` draws each
    tile from a private generator seeded with the call's seed, so the tiles must be asked for
    in the same order in every pass (:func:`_tiles`'s); ``"portable"`` computes each tile from
    the seed, the rows' positions and the categories alone, in any order."""

    def __init__(self, kind: str, seed: int, device: torch.device) -> None:
        self.seed = seed
        self.generator = (torch.Generator(device=device).manual_seed(seed) if kind == "torch"
                          else None)

    def draw(self, block: slice, chunk: slice, like: torch.Tensor) -> torch.Tensor:
        """A new tensor of the noise of a tile, in the dtype and on the device of ``like``."""
        shape = (block.stop - block.start, chunk.stop - chunk.start)
        if self.generator is not None:
            return gumbel_(like.new_empty(shape), self.generator)
        positions = torch.arange(block.start, block.stop, device=like.device)
        return portable_gumbel(shape, self.seed, positions=positions,
                               categories=(chunk.start, chunk.stop), dtype=like.dtype,
                               device=like.device)


class _OnlineSoftmax:
    """``softmax(s) @ E`` of a block of rows over chunks of categories: the running max ``m``, sum
    ``sum_j exp(s_j - m)`` and output ``sum_j exp(s_j - m) E_j``, both rescaled by
    ``exp(m_old - m_new)`` as ``m`` grows. ``m`` is kept finite (0 while every score so far is
    -inf, when the sums are 0 and the rescaling is moot)."""

    def __init__(self, rows: int, width: int, like: torch.Tensor) -> None:
        self.max = like.new_full((rows,), -math.inf)
        self.sum = like.new_zeros(rows)
        self.out = like.new_zeros(rows, width)

    def add_(self, scores: torch.Tensor, table: torch.Tensor) -> None:
        """Take in a chunk's ``scores`` (overwritten) and table rows."""
        new = torch.maximum(self.max, scores.amax(1))
        new.masked_fill_(new.isneginf(), 0.0)
        decay = torch.exp(self.max - new)
        p = scores.sub_(new[:, None]).exp_()
        self.sum.mul_(decay).add_(p.sum(1))
        self.out.mul_(decay[:, None]).addmm_(p, table)
        self.max = new

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``softmax(s) @ E`` and ``logsumexp(s)``."""
        return self.out / self.sum[:, None], self.max + self.sum.log()


def _chunked_forward(x: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor,
                     floor: torch.Tensor | None, mode: str, noise: str, seed: int,
                     chunk: int, need_grad: bool) -> tuple[torch.Tensor, tuple]:
    """The value ``(rows, d)`` and what :func:`_chunked_backward` needs, in chunks of PyTorch
    operations (the CPU's path, and CUDA's where Triton is not); the hard samples' softmaxes,
    which only their gradient uses, only when ``need_grad``."""
    dtype = compute_dtype(x)
    rows, width = x.shape[0], weight.shape[1]
    # reinmax: softmax(logits), softmax(logits/tau)
    streams = 0 if mode != "gs" and not need_grad else 2 if mode == "reinmax" else 1
    outs = [x.new_empty((rows, width), dtype=dtype) for _ in range(streams)]
    lse = x.new_empty((streams, rows), dtype=dtype)
    shift = x.amax(1).to(dtype) if x.numel() else x.new_empty(rows, dtype=dtype)
    index = None if mode == "gs" else x.new_empty(rows, dtype=torch.int64)
    tiles = _TileNoise(noise, seed, x.device)
    for block, chunks in _tiles(rows, x.shape[1], chunk):
        scale = _block_tau(tau, block)
        online = [_OnlineSoftmax(block.stop - block.start, width, shift) for _ in outs]
        best = shift.new_full((block.stop - block.start,), -math.inf)
        top = torch.zeros_like(best, dtype=torch.int64)
        for part in chunks:
            logit = _chunk_logits(x, shift, floor, block, part)
            z = tiles.draw(block, part, logit).add_(logit)
            if index is not None:  # the running argmax of z
                tile_best, tile_top = z.max(1)
                top = torch.where(tile_best > best, tile_top + part.start, top)
                best = torch.maximum(best, tile_best)
            if online:
                scores = [logit, logit / scale] if mode == "reinmax" else [z.div_(scale)]
                for stream, s in zip(online, scores, strict=True):
                    stream.add_(s, upcast(weight[part]))
        for k, stream in enumerate(online):
            outs[k][block], lse[k, block] = stream.result()
        if index is not None:
            index[block] = top
    # a copy in any dtype: the output may be edited in place, the saved soft output may not
    value = outs[0].to(x.dtype, copy=True) if index is None else weight[index]
    return value, (index, shift, lse, *outs)


def _chunked_backward(x: torch.Tensor, weight: torch.Tensor, tau: float | torch.Tensor,
                      floor: torch.Tensor | None, saved: tuple, grad: torch.Tensor, mode: str,
                      noise: str, seed: int, chunk: int,
                      needs: tuple[bool, bool, bool]) -> tuple:
    """The gradients to the logits ``(rows, V)``, the table and (per row) tau of
    :func:`_chunked_forward`, each None where ``needs`` says it is not needed."""
    index, shift, lse, *outs = saved
    need_x, need_w, need_tau = needs
    need_tau = need_tau and mode != "reinmax"
    g = upcast(grad)
    grad_x = torch.empty_like(x) if need_x else None
    written = index is None and x.shape[0] > 0  # by the first row block, then added to
    grad_w = None if not need_w else (torch.empty_like if written
                                      else torch.zeros_like)(weight, dtype=g.dtype)
    grad_tau = torch.zeros_like(tau) if need_tau else None
    if need_w and index is not None:  # the value is one_hot(index) @ E
        grad_w.index_add_(0, index, g)
    tiles = _TileNoise(noise, seed, x.device)  # the forward's tiles, in its order
    if need_x or need_tau or (need_w and index is None):
        for block, chunks in _tiles(x.shape[0], x.shape[1], chunk):
            scale = _block_tau(tau, block)
            gb = g[block]
            # <g, out> of each softmax, and of the sample for reinmax's pi_1
            centre = [(gb * out[block]).sum(1, keepdim=True) for out in outs]
            if mode == "reinmax":
                sampled = (gb * upcast(weight[index[block]])).sum(1, keepdim=True)
                centre[1] = (centre[1] + sampled) / 2
            for part in chunks:
                table = upcast(weight[part])
                logit = _chunk_logits(x, shift, floor, block, part)
                gv = gb @ table.T
                if mode == "reinmax":
                    pi_0 = torch.exp(logit - lse[0, block, None])
                    hot = index[block, None] == torch.arange(part.start, part.stop,
                                                             device=x.device)
                    pi_1 = (hot + torch.exp(logit / scale - lse[1, block, None])) / 2
                    if need_x:
                        grad_x[block, part] = 2 * pi_1 * (gv - centre[1]) \
                            - pi_0 * (gv - centre[0]) / 2
                    continue
                s = tiles.draw(block, part, logit).add_(logit).div_(scale)
                y = (s - lse[0, block, None] if need_tau else s.sub_(lse[0, block, None]))
                y = y.exp_()
                t = gv.sub_(centre[0]).mul_(y)  # the gradient to s = z / tau
                if need_x:
                    torch.div(t, scale, out=grad_x[block, part])
                if need_tau:  # ds/dtau = -s / tau; masked entries (s = -inf, t = 0) add 0
                    grad_tau[block] -= torch.where(y > 0, s * t, 0.0).sum(1) / scale[:, 0]
                if need_w and index is None:
                    torch.addmm(grad_w[part], y.T, gb, beta=int(block.start > 0),
                                out=grad_w[part])
    return grad_x, None if grad_w is None else grad_w.to(weight.dtype), grad_tau


def _on_triton(x: torch.Tensor) -> bool:
    """Whether the Triton kernels serve these ``(rows, V)`` logits (:mod:`gumbelkit.kernels`'s
    rule for its own Triton kernels: CUDA, half precision or float32, Triton installed)."""
    return backend_for(x) == "triton"


def _triton_kernels() -> ModuleType:
    """:mod:`gumbelkit.kernels.triton_embedding`, imported on first use (Triton is optional)."""
    from .kernels import triton_embedding

    return triton_embedding


def _differentiable_gradients(ctx, logits: torch.Tensor, weight: torch.Tensor,
                              tau: float | torch.Tensor, floor: torch.Tensor | None,
                              grad: torch.Tensor, needs: tuple[bool, bool, bool]) -> tuple:
    """The gradients of a :class:`_SoftEmbedding` call as a graph (``create_graph=True``, for
    double backward): the plain composition recomputed with the call's noise and support,
    differentiated by autograd. It holds the ``(rows, V)`` sample while it runs."""
    x = upcast(_rows(logits, ctx.dim))
    if floor is not None:
        x = x.masked_fill(x.detach() < floor[:, None], -math.inf)
    drawn = _call_noise(x.detach(), ctx.noise, ctx.seed, ctx.chunk, ctx.triton)
    out = _plain(x, weight, tau, ctx.mode, drawn)
    wanted = [t for t, need in zip((logits, weight, tau), needs, strict=True) if need]
    grads = iter(torch.autograd.grad(out, wanted, upcast(grad), create_graph=True,
                                     allow_unused=True))  # reinmax: tau unused
    return tuple(next(grads) if need else None for need in needs)


class _SoftEmbedding(torch.autograd.Function):
    """The forward and backward of :func:`soft_embedding` (module docstring): Triton's kernels
    (:mod:`gumbelkit.kernels.triton_embedding`) where :func:`_on_triton`, else the chunked
    PyTorch passes; ``mode`` is ``"gs"``, ``"st-gs"`` or ``"reinmax"``, ``noise`` ``"torch"``
    or ``"portable"``; outputs ``(rows, d)``."""

    @staticmethod
    def forward(ctx, logits, weight, tau, floor, dim, mode, noise, seed, chunk, need_grad):
        x = _rows(logits, dim)
        ctx.triton = _on_triton(x)
        if ctx.triton:
            value, saved = _triton_kernels().forward(x.contiguous(), weight, tau, floor, mode,
                                                    noise, seed, need_grad)
        else:
            value, saved = _chunked_forward(x, weight, tau, floor, mode, noise, seed, chunk,
                                            need_grad)
        ctx.dim, ctx.mode, ctx.noise, ctx.seed, ctx.chunk = dim, mode, noise, seed, chunk
        ctx.float_tau = None if isinstance(tau, torch.Tensor) else tau
        ctx.save_for_backward(logits, weight, tau if ctx.float_tau is None else None, floor,
                              *saved)
        return value

    @staticmethod
    def backward(ctx, grad):
        logits, weight, tau, floor, *saved = ctx.saved_tensors
        tau = ctx.float_tau if tau is None else tau
        x = _rows(logits, ctx.dim)
        needs = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # create_graph: gradients that are differentiable again
            return (*_differentiable_gradients(ctx, logits, weight, tau, floor, grad, needs),
                    None, None, None, None, None, None, None)
        if ctx.triton:
            grad_x, grad_w, grad_tau = _triton_kernels().backward(
                x.contiguous(), weight, tau, floor, saved, grad, ctx.mode, ctx.noise, ctx.seed,
                needs)
        else:
            grad_x, grad_w, grad_tau = _chunked_backward(x, weight, tau, floor, saved, grad,
                                                         ctx.mode, ctx.noise, ctx.seed,
                                                         ctx.chunk, needs)
        if grad_x is not None:
            grad_x = grad_x.reshape(logits.movedim(ctx.dim, -1).shape).movedim(-1, ctx.dim)
        return grad_x, grad_w, grad_tau, None, None, None, None, None, None, None
