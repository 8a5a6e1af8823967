"""Tests for gumbelkit.restrict and the top_k / top_p / min_p options of the samplers.

The laws are checked by chi-square goodness of fit at ALPHA = 1e-4 with fixed seeds (tests/stats:
a correct sampler fails one seed in 10,000) against the renormalised restricted law, computed
here from a full sort (an implementation independent of the library's selections).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gumbelkit as gk

from .stats import assert_law, gen

INF = math.inf
# Draws per law test: a kept category of p = 0.1 off by 5% moves its count by 5 standard errors.
N = 100_000


def reference_keep(logits: torch.Tensor, top_k=None, top_p=None, min_p=None) -> np.ndarray:
    """The kept set of each row (last dim) by the documented rules, with numpy's full sort."""
    x = logits.double().numpy().reshape(-1, logits.shape[-1])
    keep = np.isfinite(x)
    for r, row in enumerate(x):
        if top_k is not None and top_k < row.size:
            keep[r] &= row >= np.sort(row)[::-1][top_k - 1]
        if top_p is not None and top_p < 1:
            p = np.where(keep[r], np.exp(row - row.max()), 0.0)
            p /= p.sum()
            desc = np.sort(p)[::-1]
            m = min(int(np.sum(np.cumsum(desc) < top_p)), row.size - 1)
            keep[r] &= p >= desc[m]
        if min_p is not None and min_p > 0:
            keep[r] &= row - row.max() >= math.log(min_p)
    return keep.reshape(logits.shape)


def restricted_law(logits: torch.Tensor, **rules) -> np.ndarray:
    """p_i / sum_{j in S} p_j on the kept set S, 0 elsewhere (float64)."""
    keep = reference_keep(logits, **rules)
    x = logits.double().numpy()
    p = np.where(keep, np.exp(x - x[keep].max()), 0.0)
    return p / p.sum()


def kept(logits: torch.Tensor, **rules) -> np.ndarray:
    return torch.isfinite(gk.restrict(logits, **rules)).numpy()


# p = 0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05, 0 (masked)
LOGITS = torch.tensor([0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05, 0.0]).log()
LAW_RULES = {
    "top_k": {"top_k": 3},
    "top_p": {"top_p": 0.7},
    "min_p": {"min_p": 0.3},
    "all-three": {"top_k": 6, "top_p": 0.8, "min_p": 0.3},
}


# ----------------------------------------------------------------------------- the kept sets

@pytest.mark.parametrize("size", [7, 300, 3000])
@pytest.mark.parametrize("rules", [
    {"top_k": 5}, {"top_p": 0.3}, {"top_p": 0.95}, {"min_p": 0.05},
    {"top_k": 200, "top_p": 0.9, "min_p": 0.01}, {"top_k": 2, "top_p": 0.6},
])
def test_restrict_matches_full_sort_reference(size, rules):
    """Random float64 logits (no ties): the kept sets equal the full-sort reference's. Flat rows
    of 3000 categories with top_p = 0.95 need the growing topk to double up to the whole row."""
    g = gen(size)
    logits = torch.randn(20, size, generator=g, dtype=torch.float64)
    logits[:10] *= 4.0  # peaked rows: small nuclei
    logits[3, 1] = -INF
    assert (kept(logits, **rules) == reference_keep(logits, **rules)).all()


def test_restrict_values_dtype_and_masks():
    """Kept entries keep their values, the others become -inf; shape and dtype are the input's;
    already masked entries stay masked; no rule returns the input itself."""
    logits = torch.tensor([[1.0, -INF, 3.0, 0.5], [2.0, 2.5, -1.0, -INF]])
    out = gk.restrict(logits, top_k=2)
    assert out.shape == logits.shape and out.dtype == logits.dtype
    assert torch.equal(out, torch.tensor([[1.0, -INF, 3.0, -INF], [2.0, 2.5, -INF, -INF]]))
    assert gk.restrict(logits) is logits
    assert torch.equal(gk.restrict(logits, top_p=1.0, min_p=0.0), logits)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        out = gk.restrict(logits.to(dtype), top_p=0.5)
        assert out.dtype == dtype
        assert torch.equal(torch.isfinite(out), torch.isfinite(gk.restrict(logits, top_p=0.5)))


def test_top_k_at_least_the_size_keeps_everything():
    """Documented: k >= the number of categories keeps them all (as HF's TopKLogitsWarper);
    k above the number of finite entries keeps every finite one."""
    logits = torch.tensor([0.0, 1.0, -INF, 2.0])
    assert torch.equal(gk.restrict(logits, top_k=4), logits)
    assert torch.equal(gk.restrict(logits, top_k=10**6), logits)
    assert torch.equal(gk.restrict(logits, top_k=3), logits)


def test_top_k_keeps_every_entry_tied_with_the_kth():
    """Documented: ties straddling the k-th place are all kept; without ties exactly k."""
    logits = torch.tensor([3.0, 2.0, 1.0, 2.0, 2.0, 0.0])
    assert kept(logits, top_k=2).tolist() == [True, True, False, True, True, False]
    assert kept(logits, top_k=4).tolist() == [True, True, False, True, True, False]
    assert kept(logits, top_k=5).sum() == 5
    assert kept(torch.zeros(6), top_k=1).all()  # all tied: all kept
    assert kept(torch.tensor([2.0, 2.0, 1.0]), top_k=1).tolist() == [True, True, False]


def test_top_p_reaches_p_and_ties_at_the_threshold():
    """Documented: the smallest top set whose mass reaches top_p (>=), plus every category tied
    with its least probable member; the most probable category is always kept."""
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64).log()
    mass = logits.softmax(-1).cumsum(-1)
    for m in range(1, 4):
        assert kept(logits, top_p=float(mass[m - 1]) - 1e-9).sum() == m
        assert kept(logits, top_p=float(mass[m - 1]) + 1e-9).sum() == m + 1
    assert kept(logits, top_p=1e-12).tolist() == [True, False, False, False]
    tied = torch.tensor([0.4, 0.2, 0.2, 0.2], dtype=torch.float64).log()
    assert kept(tied, top_p=0.5).all()  # 0.4 + 0.2 reaches 0.5; the other 0.2s are tied
    assert kept(torch.tensor([1.0, 1.0, 0.0]), top_p=0.01).tolist() == [True, True, False]


def test_min_p_threshold_is_inclusive():
    """Documented: p_i >= min_p * max p, as logits_i - max >= log(min_p); min_p = 1 keeps the
    entries tied with the maximum."""
    logits = torch.tensor([0.0, math.log(0.25), math.log(0.25) - 1e-9, -1.0],
                          dtype=torch.float64)
    assert kept(logits, min_p=0.25).tolist() == [True, True, False, True]
    assert kept(torch.tensor([1.0, 1.0, 0.5]), min_p=1.0).tolist() == [True, True, False]


def test_rules_apply_in_order_each_on_the_renormalised_result():
    """top_k, then top_p on the law renormalised over the top k: with p = (.4, .3, .2, .1),
    top_k=2 gives (.57, .43), whose top 0.5 is the first category alone (on the original law it
    would be two)."""
    logits = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
    assert kept(logits, top_p=0.5).sum() == 2
    assert kept(logits, top_k=2, top_p=0.5).tolist() == [True, False, False, False]
    assert kept(logits, top_k=3, min_p=0.6).tolist() == [True, True, False, False]


def test_restrict_along_another_dim_and_empty():
    logits = torch.randn(5, 40, 3, generator=gen(3))
    moved = gk.restrict(logits.transpose(1, 2), top_k=4, top_p=0.8).transpose(1, 2)
    assert torch.equal(gk.restrict(logits, top_k=4, top_p=0.8, dim=1), moved)
    empty = torch.empty(0, 5)
    assert gk.restrict(empty, top_k=2).shape == (0, 5)


def test_restrict_under_vmap_uses_one_topk():
    """Under torch.func transforms the growing topk's loop cannot run: one topk of every
    category gives the same sets."""
    logits = torch.randn(6, 500, generator=gen(4))
    batched = torch.func.vmap(lambda row: gk.restrict(row, top_p=0.9, min_p=0.01))(logits)
    assert torch.equal(batched, gk.restrict(logits, top_p=0.9, min_p=0.01))


# ----------------------------------------------------------------------------- laws

@pytest.mark.parametrize("name", list(LAW_RULES))
def test_gumbel_max_follows_the_restricted_law(name):
    """Chi-square at ALPHA of gumbel_max draws against the renormalised restricted law; categories
    outside the support are never drawn (asserted by assert_law)."""
    rules = LAW_RULES[name]
    law = restricted_law(LOGITS, **rules)
    assert 1 < (law > 0).sum() < 7  # a real restriction, with something left to test
    idx = gk.gumbel_max(LOGITS.expand(N, -1), generator=gen(10), **rules)
    assert_law(torch.bincount(idx, minlength=len(LOGITS)), law)


@pytest.mark.parametrize("name", ["top_p", "all-three"])
def test_hard_gumbel_softmax_and_sample_follow_the_restricted_law(name):
    rules = LAW_RULES[name]
    law = restricted_law(LOGITS, **rules)
    batch = LOGITS.expand(N, -1)
    hard = gk.gumbel_softmax(batch, tau=0.5, hard=True, generator=gen(11), **rules)
    assert_law(hard.sum(0), law)
    one_hot = gk.sample(batch, "st-gs", generator=gen(12), **rules)
    assert_law(one_hot.sum(0), law)


def test_soft_samples_are_zero_outside_the_support():
    logits = torch.randn(200, 30, generator=gen(13))
    soft = gk.gumbel_softmax(logits, tau=2.0, generator=gen(14), top_k=5, min_p=0.05)
    outside = torch.isneginf(gk.restrict(logits, top_k=5, min_p=0.05))
    assert torch.equal(soft[outside], torch.zeros(int(outside.sum())))
    assert torch.allclose(soft.sum(-1), torch.ones(200))


# ----------------------------------------------------------------------------- gradients

def _gradient(fn, logits):
    leaf = logits.clone().requires_grad_()
    weights = torch.arange(logits.shape[-1], dtype=logits.dtype).sin()
    (fn(leaf) * weights).sum().backward()
    return leaf.grad


@pytest.mark.parametrize("sampler", ["gumbel_softmax", "sample-st-gs", "sample-gr"])
def test_masked_entries_get_zero_gradient_and_kept_ones_the_samplers(sampler):
    """Same seed: the gradient with top_k/top_p is the sampler's gradient at the masked logits on
    the kept entries, exactly 0 on the masked ones."""
    rules = {"top_k": 6, "top_p": 0.7}
    logits = torch.randn(16, 10, generator=gen(15), dtype=torch.float64)
    if sampler == "gumbel_softmax":
        def draw(x, **kw):
            return gk.gumbel_softmax(x, tau=0.7, generator=gen(16), **kw)
    else:
        def draw(x, **kw):
            return gk.sample(x, sampler.removeprefix("sample-"), generator=gen(16), **kw)
    grad = _gradient(lambda x: draw(x, **rules), logits)
    masked = gk.restrict(logits, **rules)
    outside = torch.isneginf(masked)
    assert outside.any() and (~outside).any()
    assert torch.equal(grad[outside], torch.zeros(int(outside.sum()), dtype=torch.float64))
    expected = _gradient(draw, masked)
    assert torch.isfinite(grad).all()
    assert torch.allclose(grad[~outside], expected[~outside])
    assert grad[~outside].abs().sum() > 0


def test_restrict_gradient_is_identity_on_the_kept_entries():
    logits = torch.randn(4, 12, generator=gen(17), dtype=torch.float64)
    outside = torch.isneginf(gk.restrict(logits, top_p=0.6))
    leaf = logits.clone().requires_grad_()
    out = gk.restrict(leaf, top_p=0.6)
    out.masked_fill(outside, 0.0).sum().backward()
    assert torch.equal(leaf.grad, (~outside).double())


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("rules, error, match", [
    ({"top_k": 0}, ValueError, "top_k must be an integer >= 1"),
    ({"top_k": -3}, ValueError, "top_k"),
    ({"top_k": 2.5}, ValueError, "top_k"),
    ({"top_k": True}, ValueError, "top_k"),
    ({"top_p": 0.0}, ValueError, r"top_p must be a number in \(0, 1\]"),
    ({"top_p": 1.5}, ValueError, "top_p"),
    ({"top_p": -0.1}, ValueError, "top_p"),
    ({"top_p": math.nan}, ValueError, "top_p"),
    ({"top_p": "0.9"}, TypeError, "top_p must be a number"),
    ({"min_p": -0.01}, ValueError, r"min_p must be a number in \[0, 1\]"),
    ({"min_p": 1.01}, ValueError, "min_p"),
    ({"min_p": math.nan}, ValueError, "min_p"),
    ({"min_p": torch.tensor(0.1)}, TypeError, "min_p"),
])
@pytest.mark.parametrize("entry", ["restrict", "gumbel_max", "gumbel_softmax", "sample"])
def test_bad_options_are_rejected(rules, error, match, entry):
    logits = torch.randn(2, 5)
    call = {"restrict": gk.restrict, "gumbel_max": gk.gumbel_max,
            "gumbel_softmax": gk.gumbel_softmax, "sample": gk.sample}[entry]
    with pytest.raises(error, match=match):
        call(logits, **rules)


def test_bad_logits_are_rejected():
    with pytest.raises(TypeError, match="logits"):
        gk.restrict([0.0, 1.0], top_k=1)
    with pytest.raises(ValueError, match="NaN"):
        gk.restrict(torch.tensor([0.0, math.nan]), top_k=1)
