"""Portable Gumbel noise: a pure function of (seed, position, category), the same on every device.

``torch.rand`` draws from a stateful generator whose stream depends on the device (on CUDA, on
the GPU's number of SMs: pytorch#196613) and on how a batch is laid out and chunked. Here the
noise of category ``j`` at position ``r`` under ``seed`` is a hash of the three integers, computed
with 32-bit integer arithmetic that is exact on every device:

    h_s = H_s(seed, r, j)  for the two streams s = 0, 1   (32-bit words; j < 2^32)
    u   = (floor(h_0 / 2^5) * 2^26 + floor(h_1 / 2^6) + 1/2) / 2^53    in (0, 1), float64
    G   = -log(-log u)

``H_s`` chains MurmurHash3's 32-bit finaliser ``fmix32`` (Appleby 2011) over the five 32-bit
words of the key (the seed's two, the position's two, the category): each is xor-ed into the
state, the golden-ratio increment 0x9E3779B9 added, and the state mixed; stream s starts from the
state (s + 1) * 0x9E3779B9. It is a counter-based generator in
the sense of Salmon et al. 2011 ("Parallel random numbers: as easy as 1, 2, 3"), whose draws
depend on nothing but the key. The same seed therefore gives the same sample whatever the batch
shape, the chunking of the categories or the device, and the noise of one position can be
recomputed on its own: :func:`verify_gumbel_max` checks that a token is the Gumbel-max sample of
its logits under a seed, the use of samplers whose outputs must be auditable.

``u`` has 53 random bits, so ``G`` is finite: at most ``-log(-log(2^-54)) = -3.6`` below and
``-log(2^-54) = 37.4`` above.
"""

from __future__ import annotations

import torch

from ._validate import check_count, check_logits

__all__ = ["portable_gumbel", "portable_gumbel_max", "verify_gumbel_max"]

_MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: the increment between the key's words
FMIX_MULTIPLIERS = (0x85EBCA6B, 0xC2B2AE35)  # fmix32's two odd multipliers


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``x * constant mod 2^32`` for 32-bit ``x`` held in int64, without int64 overflow: the
    constant is split in 16-bit halves, so every product stays below 2^48."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's finaliser: a bijection of 32-bit words that mixes every bit into every bit."""
    x = x ^ (x >> 16)
    x = _mul32(x, FMIX_MULTIPLIERS[0])
    x = x ^ (x >> 13)
    x = _mul32(x, FMIX_MULTIPLIERS[1])
    return x ^ (x >> 16)


def _words(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The low and high 32-bit words of non-negative int64 values."""
    return value & _MASK32, (value >> 32) & _MASK32


def _chain(state: torch.Tensor, words: tuple) -> torch.Tensor:
    """``H``'s rounds: each word xor-ed into the state, the golden-ratio increment added, the
    state mixed."""
    for word in words:
        state = _fmix32(((state ^ word) + GOLDEN) & _MASK32)
    return state


def row_states(seed: int, position: torch.Tensor) -> torch.Tensor:
    """The state of ``H_s`` after the seed's and the position's words, for both streams: a
    ``(2, *position.shape)`` int64 tensor of 32-bit words. The category's round, once per
    element, is all that is left (here, and in the soft embedding's Triton kernels)."""
    states = []
    for stream in (0, 1):
        start = torch.full_like(position, (stream + 1) * GOLDEN & _MASK32)
        states.append(_chain(start, (seed & _MASK32, seed >> 32, *_words(position))))
    return torch.stack(states)


def _uniform(seed: int, position: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
    """``u`` for positions ``(rows, 1)`` and categories ``(1, n)``: the rounds of the seed's and
    the position's words run once per row, the category's once per element."""
    first, second = (_chain(state, (category,)) for state in row_states(seed, position))
    return (((first >> 5) * 2**26 + (second >> 6)).double() + 0.5) / 2**53


def _check_seed(seed: object) -> int:
    seed = check_count(seed, "seed", minimum=0)
    if seed >= 2**63:
        raise ValueError(f"seed must be below 2**63, got {seed}")
    return seed


def _positions(rows: int, positions: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if positions is None:
        return torch.arange(rows, device=device)
    if not isinstance(positions, torch.Tensor) or positions.dtype != torch.int64 or (
            positions.numel() != rows or rows and bool((positions < 0).any())):
        raise ValueError(f"positions must be {rows} non-negative int64 values (one per row of "
                         f"logits), got shape {tuple(positions.shape)} and dtype "
                         f"{positions.dtype}")
    return positions.reshape(rows).to(device)


def portable_gumbel(
    shape: tuple[int, ...] | torch.Size,
    seed: int,
    *,
    positions: torch.Tensor | None = None,
    categories: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Gumbel(0, 1) noise of ``shape`` (rows x categories along the last dimension), a pure
    function of ``seed``, each row's position and each category (module docstring).

    ``positions``: one non-negative int64 identity per row (the leading dimensions flattened;
    default ``0, 1, ...``), so that a row's noise does not depend on the batch it is drawn in.
    ``categories``: ``(start, stop)``, the slice of categories to draw (a chunk of a vocabulary;
    default all ``shape[-1]`` of them from 0): chunks drawn apart equal the slice of the whole.
    Computed in float64 and rounded to ``dtype``.
    """
    seed = _check_seed(seed)
    shape = tuple(shape)
    if not shape:
        raise ValueError("shape needs a category dimension")
    start, stop = (0, shape[-1]) if categories is None else categories
    if stop - start != shape[-1] or start < 0 or stop > 2**32:
        raise ValueError(f"categories {categories} must be a range of {shape[-1]} indices in "
                         "[0, 2**32), the last dimension of shape")
    device = torch.device(device) if device is not None else torch.device("cpu")
    rows = 1
    for size in shape[:-1]:
        rows *= size
    position = _positions(rows, positions, device).unsqueeze(1)
    category = torch.arange(start, stop, device=device).unsqueeze(0)
    u = _uniform(seed, position, category)
    return (-torch.log(-torch.log(u))).to(dtype).reshape(shape)


def portable_gumbel_max(
    logits: torch.Tensor, seed: int, *, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """Gumbel-max samples of Categorical(softmax(logits)) along the last dimension with
    :func:`portable_gumbel` noise: the same indices on every device, in every batch layout.

    The perturbed logits ``logits + G`` are compared in float64, so the sample does not depend
    on the dtype the logits are held in beyond their own rounding.
    """
    dim = check_logits(logits, -1)
    noise = portable_gumbel(logits.shape, seed, positions=positions, dtype=torch.float64,
                            device=logits.device)
    return (logits.double() + noise).argmax(dim)


def verify_gumbel_max(
    logits: torch.Tensor, seed: int, tokens: torch.Tensor, *,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Whether each of ``tokens`` is the :func:`portable_gumbel_max` sample of its row of
    ``logits`` under ``seed`` (a BoolTensor of the rows' shape): the noise of each position is
    recomputed from the seed alone, with no state kept from the sampling."""
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.int64 or (
            tokens.shape != logits.shape[:-1]):
        got = (f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor)
               else type(tokens).__name__)
        raise ValueError(f"tokens must be int64 of the shape of logits without its last "
                         f"dimension, {tuple(logits.shape[:-1])}, got {got}")
    return portable_gumbel_max(logits, seed, positions=positions) == tokens
