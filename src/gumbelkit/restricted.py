"""Restricted support: top-k, top-p (nucleus) and min-p truncation of a categorical law.

Each rule keeps a set S of categories per row and masks the rest to ``-inf``, so every sampler
afterwards draws exactly from the renormalised restricted law ``p_i / sum_{j in S} p_j`` for i in
S (0 elsewhere), with ``p = softmax(logits)``: the law of masking the rest and then sampling.

- ``top_k``: the k largest logits, and every category tied with the k-th (so a row may keep
  more than k when ties straddle the boundary; the set does not depend on which of the tied
  entries ``torch.topk`` returns). A k at least the number of categories keeps them all, as in
  HF transformers' ``TopKLogitsWarper``.
- ``top_p`` (nucleus sampling; Holtzman, Buys, Du, Forbes and Choi 2020, "The Curious Case of
  Neural Text Degeneration"): the smallest set of most probable categories whose probability
  reaches p, ``sum_{i in S} p_i >= top_p``, and every category tied with the least probable of
  that set. The most probable category is always kept (as HF's ``TopPLogitsWarper`` keeps at
  least one token); ``top_p = 1`` keeps every category.
- ``min_p`` (Nguyen, Baker, Neo, Roush, Kirsch and Shwartz-Ziv 2024, "Turning Up the Heat:
  Min-p Sampling for Creative and Coherent LLM Outputs"): the categories with
  ``p_i >= min_p * max_j p_j``, computed as ``logits_i - max_j logits_j >= log(min_p)``;
  ``min_p = 0`` keeps every category, ``min_p = 1`` the most probable ones.

Given together, they apply in that order, each on the renormalised result of the one before:
top_k, then top_p (on the law renormalised over the top k), then min_p (a ratio to the
maximum, which renormalising does not change). Sets are chosen in float32 for half-precision
logits (the compute dtype) and in the logits' own dtype otherwise; the comparisons are floating
point, so a mass that equals ``top_p`` up to rounding may fall on either side.

No rule sorts the whole vocabulary where a selection suffices: top-k is one ``torch.topk``,
min-p one maximum, and top-p a growing ``topk`` (k from 64, at least doubling, until every
row's kept mass reaches p; one number is read from the device per step), which costs about a
full sort only when the nucleus is a large part of the vocabulary, and under ``torch.compile``,
``torch.func`` transforms and graph exports, where a data-dependent loop cannot run (one
``topk`` of every category there).

The selection is not differentiated (the set is piecewise constant in the logits): masked
entries get zero gradient, kept ones the gradient of whatever uses the masked logits.
"""

from __future__ import annotations

import math
import numbers

import torch

from ._ops import portable, shifted, tracing, upcast
from ._validate import check_count, check_logits

__all__ = ["restrict"]

_TOP_P_START = 64  # the first k of top-p's growing topk: most nuclei of language models fit
FLOOR_BLOCK = 2**22  # entries of a block of rows in restriction_floor (16 MiB of float32)


def restrict(
    logits: torch.Tensor,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    dim: int = -1,
) -> torch.Tensor:
    """``logits`` with ``-inf`` outside the restricted support along ``dim`` (module docstring).

    ``top_k``: an integer >= 1 (at least the number of categories: all kept); ``top_p``: a
    number in (0, 1]; ``min_p``: a number in [0, 1]; None skips a rule. The rules apply in the
    order top_k, top_p, min_p, each on the renormalised result of the one before. The result
    has the shape and dtype of ``logits``; kept entries are the logits' values (and get their
    gradient), masked ones ``-inf`` (zero gradient). With no rule given, ``logits`` itself is
    returned.
    """
    dim = check_logits(logits, dim)
    return restricted(logits, dim, *check_restriction(top_k, top_p, min_p))


def check_restriction(
    top_k: object, top_p: object, min_p: object
) -> tuple[int | None, float | None, float | None]:
    """Validate the three options (ValueError or TypeError naming the bad one); rules that keep
    everything (``top_p = 1``, ``min_p = 0``) come back as None."""
    if top_k is not None:
        top_k = check_count(top_k, "top_k", minimum=1)
    top_p = _fraction(top_p, "top_p", open_below=True)
    min_p = _fraction(min_p, "min_p", open_below=False)
    return top_k, (None if top_p == 1.0 else top_p), (None if min_p == 0.0 else min_p)


def _fraction(value: object, name: str, open_below: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    low_ok = value > 0 if open_below else value >= 0
    if not (low_ok and value <= 1):  # also refuses NaN
        interval = "(0, 1]" if open_below else "[0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value}")
    return value


def restricted(
    logits: torch.Tensor, dim: int, top_k: int | None, top_p: float | None, min_p: float | None
) -> torch.Tensor:
    """:func:`restrict` for validated logits, a non-negative ``dim`` and checked options."""
    if (top_k is None and top_p is None and min_p is None) or logits.numel() == 0:
        return logits
    x = upcast(logits.detach())
    size = x.shape[dim]
    drop = torch.zeros_like(x, dtype=torch.bool)
    if top_k is not None and top_k < size:
        drop = x < x.topk(top_k, dim).values.narrow(dim, top_k - 1, 1)
    if top_p is not None:
        drop |= _outside_nucleus(x.masked_fill(drop, -math.inf), top_p, dim)
    if min_p is not None:  # the maximum survives top_k and top_p: the ratio is unchanged
        drop |= shifted(x, dim) < math.log(min_p)
    return logits.masked_fill(drop, -math.inf)


def restriction_floor(
    rows: torch.Tensor, top_k: int | None, top_p: float | None, min_p: float | None
) -> torch.Tensor:
    """The smallest kept logit of each of the ``(n, V)`` logits' rows under the checked
    options (at least one rule given), in the compute dtype: each rule keeps an upper set
    of a row's logits (the largest, a probability or a ratio to the maximum at least a bound,
    each monotone in the logit), so :func:`restricted`'s kept set is exactly ``{x >= floor}``
    (in the compute dtype). Computed over blocks of rows of at most :data:`FLOOR_BLOCK` entries,
    so that no temporary of the logits' size is made: n numbers stand for the whole mask."""
    n, size = rows.shape
    floor = rows.new_empty(n, dtype=upcast(rows[:0]).dtype)
    step = max(1, FLOOR_BLOCK // max(size, 1))
    for start in range(0, n, step):
        kept = restricted(upcast(rows[start:start + step].detach()), 1, top_k, top_p, min_p)
        floor[start:start + step] = kept.masked_fill(kept.isneginf(), math.inf).amin(1)
    return floor


def _outside_nucleus(logits: torch.Tensor, top_p: float, dim: int) -> torch.Tensor:
    """Where the categories outside the top-p set are: probabilities below the m-th largest,
    with m the least count whose m largest probabilities sum to ``top_p`` or more (summed in
    float64; all categories are kept when rounding keeps the whole sum below ``top_p``).

    The m largest come from ``topk(k)`` with k growing until it holds m in every row: it at
    least doubles, and jumps to a lower bound on m when that is larger (each category outside
    the top k has probability at most the k-th largest, so the missing mass needs at least
    ``ceil(missing / kth)`` more of them).
    """
    probs = torch.softmax(logits, dim)
    size = probs.shape[dim]
    k = size if tracing() or portable() else min(size, _TOP_P_START)
    while True:
        top = probs.topk(k, dim).values
        mass = top.to(torch.float64).cumsum(dim)
        if k == size:
            break
        missing = top_p - mass.narrow(dim, k - 1, 1)
        more = (missing / top.narrow(dim, k - 1, 1)).ceil().nan_to_num(0.0, posinf=size)
        more = int(more.amax())  # the one read from the device per step
        if more <= 0:
            break
        k = min(size, max(2 * k, k + more))
    last = (mass < top_p).sum(dim, keepdim=True).clamp(max=k - 1)  # index of the m-th largest
    return probs < top.gather(dim, last)
