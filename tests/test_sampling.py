"""Tests for gumbelkit.sampling: gumbel_max, gumbel_topk, softmax_t, gumbel_softmax and
relaxed_bernoulli (laws, agreement with torch, gradients, bad input, dtypes and shapes).

Statistical tests use fixed seeds; each states its tolerance (chi-square / KS at ALPHA, means
within Z_TOL standard errors).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

import gumbelkit as gk
from gumbelkit.sampling import perturbed_softmax

from .stats import ALPHA, Z_TOL, assert_law, chisquare_pvalue, gen

INF = math.inf
# Draws per law test: a category of p = 0.25 off by 5% moves its count by 9 standard errors.
N = 100_000


def softmax64(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Reference probabilities, in float64 from the logits as stored (after any rounding)."""
    return logits.double().softmax(dim)


# ----------------------------------------------------------------------------- gumbel_max

LAW_CASES = {
    "small": [1.0, 0.0, -1.0, 2.0],
    "masked": [0.5, -INF, 0.0, -INF, 1.5],
    "scaled-1e3": [1000.0, 1010.0, 0.0, 1009.0],  # p = (3.3e-5, 0.73, 0, 0.27)
    "near-deterministic": [1000.0, 1010.0, 0.0],  # p = (4.5e-5, 1 - 4.5e-5, 0)
    "offset-1e4": [1e4, 1e4 + 0.5, 1e4 - 0.3, 1e4 + 1.0],
    "offset-neg1e4": [-1e4, -1e4 + 0.5, -1e4 - 0.3, -1e4 + 1.0],
    "tiny-differences": [0.0, 1e-3, 2e-3, -1e-3],
    "uniform": [0.3] * 6,
}


@pytest.mark.parametrize("name", list(LAW_CASES))
def test_gumbel_max_law(name):
    """Chi-square goodness of fit of gumbel_max draws against softmax(logits), at ALPHA.

    chisquare_pvalue also asserts that categories of probability 0 (masked, or underflowed at
    scale 1e3) are never drawn.
    """
    logits = torch.tensor(LAW_CASES[name])
    idx = gk.gumbel_max(logits.expand(N, -1), generator=gen(0))
    counts = torch.bincount(idx, minlength=len(logits))
    assert not counts[torch.isneginf(logits)].any()
    assert_law(counts, softmax64(logits))


def test_gumbel_max_large_k():
    """1000 categories with a few heavy ones: chi-square at ALPHA, rare categories pooled."""
    k = 1000
    logits = torch.randn(k, generator=gen(1))
    logits[[3, 500, 998]] += 6.0  # heavy: p ~ 0.12 each
    logits[10] = -INF
    chunks = [gk.gumbel_max(logits.expand(10_000, -1), generator=gen(100 + i)) for i in range(10)]
    counts = torch.bincount(torch.cat(chunks), minlength=k)
    assert counts[10] == 0
    p = chisquare_pvalue(counts, softmax64(logits))
    assert p >= ALPHA, f"chi-square p-value {p:.2e}"


def test_gumbel_max_dim_not_last():
    """Categories along dim=1 of a (n, K, 3) tensor: each of the 3 columns follows its own law."""
    laws = torch.tensor([[0.0, 1.0, -1.0], [2.0, -INF, 0.0], [0.0, 0.0, 3.0]])  # (column, K)
    logits = laws.T.expand(N, 3, 3)  # (n, K, column)
    idx = gk.gumbel_max(logits, dim=1, generator=gen(2))
    assert idx.shape == (N, 3) and idx.dtype == torch.int64
    for c in range(3):
        assert_law(torch.bincount(idx[:, c], minlength=3), softmax64(laws[c]))


def test_gumbel_max_dim0():
    """dim=0 on a (K, n) tensor samples down the columns."""
    logits = torch.tensor([0.5, -0.5, 1.0, -INF])
    idx = gk.gumbel_max(logits[:, None].expand(4, N), dim=0, generator=gen(3))
    assert idx.shape == (N,)
    assert_law(torch.bincount(idx, minlength=4), softmax64(logits))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_gumbel_max_dtypes(dtype):
    """float64 and half inputs sample softmax of the stored logits (chi-square at ALPHA)."""
    logits = torch.tensor([0.7, -1.3, 0.1, 2.2, -INF]).to(dtype)
    idx = gk.gumbel_max(logits.expand(N, -1), generator=gen(4))
    assert idx.dtype == torch.int64
    assert_law(torch.bincount(idx, minlength=5), softmax64(logits))


@pytest.mark.parametrize(("shape", "dim", "expected"),
                         [((5,), -1, ()), ((2, 3, 5), 1, (2, 5)), ((2, 3, 5), -1, (2, 3)),
                          ((4, 1), 1, (4,))])
def test_gumbel_max_shape_and_dtype(shape, dim, expected):
    """The result is int64 of the logits' shape without dim, on the logits' device, in range."""
    logits = torch.randn(shape, generator=gen(5))
    idx = gk.gumbel_max(logits, dim, generator=gen(6))
    assert idx.dtype == torch.int64
    assert tuple(idx.shape) == expected
    assert idx.device == logits.device
    assert ((idx >= 0) & (idx < shape[dim])).all()


def test_gumbel_max_reproducible():
    """The same generator seed gives the same draws, another seed different ones."""
    logits = torch.zeros(1000, 10)
    a = gk.gumbel_max(logits, generator=gen(7))
    assert torch.equal(a, gk.gumbel_max(logits, generator=gen(7)))
    assert not torch.equal(a, gk.gumbel_max(logits, generator=gen(8)))


# ---------------------------------------------------------------------------- gumbel_topk


def plackett_luce(p: np.ndarray, k: int) -> np.ndarray:
    """P(i1, ..., ik) = prod_j p_ij / (1 - sum_{l<j} p_il) over the K**k grid (0 if repeated)."""
    K = len(p)
    probs = np.zeros([K] * k)
    for tup in itertools.product(range(K), repeat=k):
        if len(set(tup)) < k:
            continue
        prob, left = 1.0, 1.0
        for i in tup:
            prob *= p[i] / left if left > 0 else 0.0
            left -= p[i]
        probs[tup] = prob
    return probs


def tuple_counts(idx: torch.Tensor, K: int) -> np.ndarray:
    """Counts of the ordered tuples in the rows of idx, on the K**k grid (row-major codes)."""
    k = idx.shape[-1]
    code = (idx * K ** torch.arange(k - 1, -1, -1)).sum(-1)
    return torch.bincount(code, minlength=K**k).numpy().reshape([K] * k)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("logits", [[1.0, 0.2, -0.5, 0.6], [1.0, -INF, 0.2, -0.5, 0.6]],
                         ids=["K4", "K5-masked"])
def test_gumbel_topk_plackett_luce_law(logits, k):
    """Ordered k-tuples follow the without-replacement (Plackett-Luce) law: chi-square at ALPHA
    over all ordered tuples; tuples with a repeat or a masked category have probability 0."""
    logits = torch.tensor(logits)
    K = len(logits)
    if k > int(torch.isfinite(logits).sum()):
        pytest.skip("k exceeds the unmasked count (tested separately)")
    idx = gk.gumbel_topk(logits.expand(N, -1), k, generator=gen(10 + k))
    assert idx.shape == (N, k) and idx.dtype == torch.int64
    probs = plackett_luce(softmax64(logits).numpy(), k)
    assert abs(probs.sum() - 1) < 1e-12
    assert_law(tuple_counts(idx, K), probs)


def test_gumbel_topk_too_many():
    """k above the number of categories, or above a row's unmasked count, raises ValueError."""
    with pytest.raises(ValueError):
        gk.gumbel_topk(torch.zeros(3, 4), 5)
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, -INF, 1.0, -INF]])
    with pytest.raises(ValueError):
        gk.gumbel_topk(logits, 3)
    assert gk.gumbel_topk(logits, 2, generator=gen(0)).shape == (2, 2)


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_gumbel_topk_bad_k(k):
    """A negative, fractional or boolean k raises ValueError."""
    with pytest.raises(ValueError):
        gk.gumbel_topk(torch.zeros(4), k)


@pytest.mark.parametrize(("shape", "k", "dim", "expected"),
                         [((6,), 3, -1, (3,)), ((3, 6, 2), 4, 1, (3, 4, 2)),
                          ((3, 6, 2), 2, 0, (2, 6, 2)), ((2, 5), 5, -1, (2, 5))])
def test_gumbel_topk_shape_and_distinct(shape, k, dim, expected):
    """The result has dim of size k, is int64, and its k indices along dim are distinct."""
    logits = torch.randn(shape, generator=gen(20))
    idx = gk.gumbel_topk(logits, k, dim, generator=gen(21))
    assert tuple(idx.shape) == expected and idx.dtype == torch.int64
    srt = idx.sort(dim).values
    assert (srt.diff(dim=dim) > 0).all()


def test_gumbel_topk_first_is_gumbel_max():
    """The first top-k index is the Gumbel-max sample of the same noise (the noise of
    gumbel_topk is drawn from the generator itself)."""
    logits = torch.randn(500, 7, generator=gen(22))
    top = gk.gumbel_topk(logits, 3, generator=gen(23))
    noise = gk.gumbel_noise(logits.shape, generator=gen(23))
    assert torch.equal(top[:, 0], (logits - logits.amax(-1, keepdim=True) + noise).argmax(-1))


# ------------------------------------------------------------------------------ softmax_t


@pytest.mark.parametrize("tau", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_t_matches_torch(tau, dim):
    """softmax_t(x, tau, dim) equals torch.softmax(x / tau, dim)."""
    x = torch.randn(4, 5, 3, generator=gen(30))
    torch.testing.assert_close(gk.softmax_t(x, tau, dim), torch.softmax(x / tau, dim))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_softmax_t_dtypes(dtype):
    """Half precision is computed in float32 and returned in its own dtype; float64 stays."""
    x = torch.randn(4, 6, generator=gen(31)).to(dtype)
    y = gk.softmax_t(x, 0.5)
    assert y.dtype == dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    expected = torch.softmax(x.to(work) / 0.5, -1).to(dtype)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_softmax_t_masked_and_schedule():
    """-inf entries get probability exactly 0; a Schedule is accepted as tau."""
    x = torch.tensor([[0.0, -INF, 1.0], [2.0, 1.0, -INF]])
    y = gk.softmax_t(x, gk.schedules.Constant(0.5))
    assert (y[torch.isneginf(x)] == 0).all()
    torch.testing.assert_close(y, gk.softmax_t(x, 0.5))


def test_softmax_t_gradcheck():
    """gradcheck of softmax_t in float64."""
    x = torch.randn(3, 5, dtype=torch.float64, generator=gen(32), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: gk.softmax_t(t, 0.7, 0), (x,))


# ------------------------------------------------------------------------- gumbel_softmax

GS_LOGITS = torch.tensor([0.5, -1.0, 1.2, 0.0])


def torch_gumbel_softmax(logits, seed, **kwargs):
    """torch's gumbel_softmax with the global RNG seeded, leaving the caller's RNG state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return F.gumbel_softmax(logits, **kwargs)


def torch_noise(like, seed):
    """The Gumbel noise torch's gumbel_softmax draws after torch.manual_seed(seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return -torch.empty_like(like).exponential_().log()


@pytest.mark.parametrize("tau", [0.3, 2.0])
def test_gumbel_softmax_hard_law(tau):
    """Hard samples of gk and of torch both follow softmax(logits) (chi-square at ALPHA)."""
    x = GS_LOGITS.expand(N, -1)
    y_gk = gk.gumbel_softmax(x, tau, hard=True, generator=gen(40))
    y_t = torch_gumbel_softmax(x, 41, tau=tau, hard=True)
    assert_law(y_gk.sum(0), softmax64(GS_LOGITS))
    assert_law(y_t.detach().round().sum(0), softmax64(GS_LOGITS))


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.0])
def test_gumbel_softmax_soft_moments_match_torch(tau):
    """Means and second moments of gk's and torch's soft samples agree: two-sample z < Z_TOL,
    standard errors from each sample's variance."""
    x = GS_LOGITS.expand(N, -1)
    y_gk = gk.gumbel_softmax(x, tau, generator=gen(42)).double()
    y_t = torch_gumbel_softmax(x, 43, tau=tau).double()
    for power in (1, 2):
        a, b = y_gk**power, y_t**power
        se = (a.var(0) / N + b.var(0) / N).sqrt()
        z = (a.mean(0) - b.mean(0)) / se
        assert (z.abs() < Z_TOL).all(), f"moment {power}: z = {z.tolist()}"


def test_gumbel_softmax_soft_law():
    """Soft samples have the Concrete law: tau * (log y_i - log y_0) - (x_i - x_0) is the
    difference of two Gumbels, Logistic(0, 1) (KS at ALPHA), in float64."""
    tau = 0.5
    x = GS_LOGITS.double()
    y = gk.gumbel_softmax(x.expand(50_000, -1), tau, generator=gen(44))
    assert y.dtype == torch.float64
    log_y = y.log()
    for i in range(1, 4):
        z = tau * (log_y[:, i] - log_y[:, 0]) - (x[i] - x[0])
        assert stats.kstest(z.numpy(), "logistic").pvalue >= ALPHA, f"coordinate {i}"


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("dim", [-1, 0])
def test_gumbel_softmax_same_noise_as_torch(hard, dim):
    """For the noise torch draws, perturbed_softmax gives torch's value and gradient.

    The noise is recovered from torch's RNG and checked against torch's soft output first.
    Hard: gk's value is exactly one-hot at torch's index, torch's equals it up to rounding.
    """
    tau, seed = 0.6, 45
    x = torch.randn(6, 5, generator=gen(46), requires_grad=True)
    g = torch_noise(x, seed)
    soft_t = torch_gumbel_softmax(x, seed, tau=tau, dim=dim)
    torch.testing.assert_close(soft_t, torch.softmax((x + g) / tau, dim))

    w = torch.randn(6, 5, generator=gen(47))
    y_t = torch_gumbel_softmax(x, seed, tau=tau, hard=hard, dim=dim)
    (grad_t,) = torch.autograd.grad((y_t * w).sum(), x)
    y_gk = perturbed_softmax(x, g, tau, hard, dim)
    (grad_gk,) = torch.autograd.grad((y_gk * w).sum(), x)
    torch.testing.assert_close(y_gk, y_t)
    torch.testing.assert_close(grad_gk, grad_t)
    if hard:
        assert torch.equal(y_gk, y_gk.round())
        assert torch.equal(y_gk.argmax(dim), y_t.argmax(dim))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=str)
@pytest.mark.parametrize("dim", [-1, 0])
def test_gumbel_softmax_hard_exact_one_hot(dtype, dim):
    """Hard samples are exactly 0 and 1 with row sums exactly 1, in the input dtype, with the
    soft sample's gradient (same generator seed)."""
    x = (torch.randn(50, 7, generator=gen(48)) * 3).to(dtype).requires_grad_()
    y = gk.gumbel_softmax(x, 0.5, True, dim=dim, generator=gen(49))
    assert y.dtype == dtype
    assert torch.equal(y, y.round())
    assert (y.sum(dim) == 1).all()
    soft = gk.gumbel_softmax(x, 0.5, False, dim=dim, generator=gen(49))
    assert torch.equal(y.argmax(dim), soft.argmax(dim))
    w = torch.randn(50, 7, generator=gen(50)).to(dtype)
    (g_hard,) = torch.autograd.grad((y * w).sum(), x)
    (g_soft,) = torch.autograd.grad((soft * w).sum(), x)
    torch.testing.assert_close(g_hard, g_soft)


def test_gumbel_softmax_call_forms():
    """torch's positional signature (logits, tau, hard, eps, dim), the dim keyword and a Schedule
    tau all work; a generator makes draws reproducible and leaves the global RNG alone."""
    x = torch.randn(8, 4, generator=gen(51))
    y = gk.gumbel_softmax(x, 0.5, True, generator=gen(52))
    assert torch.equal(y.sum(-1), torch.ones(8))
    y0 = gk.gumbel_softmax(x, 0.5, True, 1e-10, 0, generator=gen(52))
    assert torch.equal(y0.sum(0), torch.ones(4))
    y0k = gk.gumbel_softmax(x, tau=0.5, hard=True, dim=0, generator=gen(52))
    assert torch.equal(y0, y0k)
    ys = gk.gumbel_softmax(x, gk.schedules.Constant(0.5), generator=gen(53))
    torch.testing.assert_close(ys, gk.gumbel_softmax(x, 0.5, generator=gen(53)))
    state = torch.get_rng_state()
    a = gk.gumbel_softmax(x, generator=gen(54))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a, gk.gumbel_softmax(x, generator=gen(54)))
    assert not torch.equal(a, gk.gumbel_softmax(x, generator=gen(55)))


def test_gumbel_softmax_masked_and_extreme():
    """-inf entries are never chosen and get exactly 0 with a zero gradient; huge logits and a
    tiny tau stay finite and exactly one-hot."""
    x = torch.tensor([[0.0, -INF, 1.0, -INF], [-INF, 2.0, -INF, -INF]]).expand(1000, 2, 4)
    x = x.clone().requires_grad_()
    y = gk.gumbel_softmax(x, 0.5, True, generator=gen(56))
    assert (y.detach()[torch.isneginf(x)] == 0).all()
    (grad,) = torch.autograd.grad((y * torch.arange(4.0)).sum(), x)
    assert torch.isfinite(grad).all() and (grad[torch.isneginf(x)] == 0).all()
    big = torch.randn(100, 6, generator=gen(57)) * 1e4
    for hard in (False, True):
        yb = gk.gumbel_softmax(big, 1e-3, hard, generator=gen(58))
        assert torch.isfinite(yb).all()
    yb = gk.gumbel_softmax(big, 1e-3, True, generator=gen(58))
    assert torch.equal(yb, yb.round()) and (yb.sum(-1) == 1).all()


# ---------------------------------------------------------------------- relaxed_bernoulli

RB_LOGITS = torch.tensor([-3.0, -1.0, 0.0, 0.4, 2.0, 5.0])


@pytest.mark.parametrize("tau", [0.2, 1.0, 5.0])
def test_relaxed_bernoulli_hard_law(tau):
    """P(hard = 1) = sigmoid(logits) whatever tau: binomial z < Z_TOL, with the SE
    sqrt(n p (1 - p)) of the known p."""
    y = gk.relaxed_bernoulli(RB_LOGITS.expand(N, -1), tau, hard=True, generator=gen(60))
    p = torch.sigmoid(RB_LOGITS.double())
    z = (y.double().sum(0) - N * p) / (N * p * (1 - p)).sqrt()
    assert (z.abs() < Z_TOL).all(), f"z = {z.tolist()}"


def test_relaxed_bernoulli_soft_law():
    """Soft samples are binary Concrete: tau * logit(y) - logits is Logistic(0, 1) (KS at ALPHA);
    every value lies strictly in (0, 1) in float64."""
    tau = 0.5
    a = RB_LOGITS[:5].double()
    y = gk.relaxed_bernoulli(a.expand(50_000, -1), tau, generator=gen(61))
    assert y.dtype == torch.float64
    assert ((y > 0) & (y < 1)).all()
    z = tau * (y.log() - (-y).log1p()) - a
    for i in range(5):
        assert stats.kstest(z[:, i].numpy(), "logistic").pvalue >= ALPHA, f"logit {a[i].item()}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=str)
def test_relaxed_bernoulli_hard_is_rounded_soft(dtype):
    """With one seed, hard is exactly (soft > 1/2) as 0/1 in the input dtype, with the soft
    sample's gradient; soft values stay in [0, 1]."""
    x = (torch.randn(2000, generator=gen(62)) * 2).to(dtype).requires_grad_()
    soft = gk.relaxed_bernoulli(x, 0.7, generator=gen(63))
    hard = gk.relaxed_bernoulli(x, 0.7, True, generator=gen(63))
    assert soft.dtype == hard.dtype == dtype
    assert ((soft >= 0) & (soft <= 1)).all()
    assert torch.equal(hard, hard.round())
    same_side = (hard == 1) == (soft.float() > 0.5)
    near_half = (soft.float() - 0.5).abs() < 1e-2  # half-precision rounding may land on 0.5
    assert (same_side | near_half).all()
    w = torch.randn(2000, generator=gen(64)).to(dtype)
    (g_hard,) = torch.autograd.grad((hard * w).sum(), x)
    (g_soft,) = torch.autograd.grad((soft * w).sum(), x)
    torch.testing.assert_close(g_hard, g_soft)


def test_relaxed_bernoulli_infinite_logits():
    """+inf logits give exactly 1 and -inf exactly 0, soft and hard."""
    x = torch.tensor([INF, -INF, INF, -INF])
    for hard in (False, True):
        y = gk.relaxed_bernoulli(x, 0.5, hard, generator=gen(65))
        assert torch.equal(y, torch.tensor([1.0, 0.0, 1.0, 0.0]))


# -------------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("dim", [-1, 0])
def test_perturbed_softmax_gradcheck(dim):
    """gradcheck in float64 of the soft Gumbel-Softmax for fixed noise, in logits and noise."""
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen(70), requires_grad=True)
    g = gk.gumbel_noise((3, 4), dtype=torch.float64, generator=gen(71)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: perturbed_softmax(a, b, 0.6, False, dim), (x, g))


@pytest.mark.parametrize("dim", [-1, 0])
def test_gumbel_softmax_gradcheck(dim):
    """gradcheck in float64 of gk.gumbel_softmax (soft) with the noise fixed by re-seeding."""
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen(72), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: gk.gumbel_softmax(a, 0.6, dim=dim, generator=gen(73)), (x,))


def test_relaxed_bernoulli_gradcheck():
    """gradcheck in float64 of gk.relaxed_bernoulli (soft) with the noise fixed by re-seeding."""
    x = torch.randn(3, 4, dtype=torch.float64, generator=gen(74), requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: gk.relaxed_bernoulli(a, 0.6, generator=gen(75)), (x,))


# ------------------------------------------------------------------------------ bad input

CATEGORICAL = {
    "gumbel_max": lambda x, **kw: gk.gumbel_max(x, **kw),
    "gumbel_topk": lambda x, **kw: gk.gumbel_topk(x, 2, **kw),
    "softmax_t": lambda x, **kw: gk.softmax_t(x, 0.5, **kw),
    "gumbel_softmax": lambda x, **kw: gk.gumbel_softmax(x, 0.5, **kw),
    "gumbel_softmax_hard": lambda x, **kw: gk.gumbel_softmax(x, 0.5, hard=True, **kw),
}
ALL = {**CATEGORICAL, "relaxed_bernoulli": lambda x, **kw: gk.relaxed_bernoulli(x, 0.5, **kw)}
WITH_TAU = {
    "softmax_t": lambda x, tau: gk.softmax_t(x, tau),
    "gumbel_softmax": lambda x, tau: gk.gumbel_softmax(x, tau),
    "gumbel_softmax_hard": lambda x, tau: gk.gumbel_softmax(x, tau, hard=True),
    "relaxed_bernoulli": lambda x, tau: gk.relaxed_bernoulli(x, tau),
}
# Shape of the result for logits of shape (rows, K) with categories along the last dim.
OUT_SHAPE = {
    "gumbel_max": lambda s: s[:-1],
    "gumbel_topk": lambda s: (*s[:-1], 2),
}


@pytest.mark.parametrize("tau", [0.0, -1.0, math.nan, INF, -INF])
@pytest.mark.parametrize("name", list(WITH_TAU))
def test_bad_tau(name, tau):
    """tau <= 0 or non-finite raises ValueError."""
    with pytest.raises(ValueError):
        WITH_TAU[name](torch.zeros(2, 3), tau)


@pytest.mark.parametrize("tau", ["1", None, True])
@pytest.mark.parametrize("name", list(WITH_TAU))
def test_tau_not_a_number(name, tau):
    """A tau that is not a number (or a bool) raises TypeError."""
    with pytest.raises(TypeError):
        WITH_TAU[name](torch.zeros(2, 3), tau)


BAD_LOGITS = {
    "nan": [[0.0, math.nan, 1.0], [0.0, 1.0, 2.0]],
    "posinf": [[0.0, INF, 1.0], [0.0, 1.0, 2.0]],
    "all-masked-row": [[0.0, 1.0, 2.0], [-INF, -INF, -INF]],
}


@pytest.mark.parametrize("bad", list(BAD_LOGITS))
@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_bad_logit_values(name, bad):
    """NaN, +inf, or a row with every entry -inf raises ValueError while validation is on."""
    assert gk.validation_enabled()
    with pytest.raises(ValueError):
        CATEGORICAL[name](torch.tensor(BAD_LOGITS[bad]))


def test_relaxed_bernoulli_nan():
    """relaxed_bernoulli rejects NaN logits (its +-inf logits are legal, certain outcomes)."""
    with pytest.raises(ValueError):
        gk.relaxed_bernoulli(torch.tensor([0.0, math.nan]))


@pytest.mark.parametrize("bad", list(BAD_LOGITS))
@pytest.mark.parametrize("name", list(ALL))
def test_validation_off_skips_value_checks(no_validation, name, bad):
    """set_validation(False) skips the value checks: bad logits raise no ValueError."""
    assert not gk.validation_enabled()
    out = ALL[name](torch.tensor(BAD_LOGITS[bad]))
    assert out.shape[0] == 2


def test_validation_off_skips_topk_unmasked_check(no_validation):
    """With validation off, k above a row's unmasked count is not checked (k <= K still is)."""
    logits = torch.tensor([[0.0, -INF, -INF]])
    assert gk.gumbel_topk(logits, 2, generator=gen(80)).shape == (1, 2)
    with pytest.raises(ValueError):
        gk.gumbel_topk(logits, 4)


def test_set_validation_toggles():
    """set_validation switches validation_enabled, and turning it back on restores the checks."""
    bad = torch.tensor([0.0, math.nan])
    try:
        gk.set_validation(False)
        assert not gk.validation_enabled()
        gk.gumbel_max(bad)
        gk.set_validation(True)
        assert gk.validation_enabled()
        with pytest.raises(ValueError):
            gk.gumbel_max(bad)
    finally:
        gk.set_validation(True)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool], ids=str)
@pytest.mark.parametrize("name", list(ALL))
def test_non_float_logits(name, dtype):
    """Integer or boolean logits, or a non-tensor, raise TypeError."""
    with pytest.raises(TypeError):
        ALL[name](torch.ones(2, 3, dtype=dtype))
    with pytest.raises(TypeError):
        ALL[name]([[0.0, 1.0]])


@pytest.mark.parametrize("dim", [2, -3, 10])
@pytest.mark.parametrize("name", list(CATEGORICAL))
def test_dim_out_of_range(name, dim):
    """A dim outside [-ndim, ndim) raises IndexError, as does a 0-d tensor."""
    with pytest.raises(IndexError):
        CATEGORICAL[name](torch.zeros(2, 3), dim=dim)
    with pytest.raises(IndexError):
        CATEGORICAL[name](torch.tensor(0.0))


@pytest.mark.parametrize("shape", [(0, 5), (2, 0, 5)])
@pytest.mark.parametrize("name", list(ALL))
def test_empty_logits(name, shape):
    """Empty logits give empty results of the right shape."""
    out = ALL[name](torch.zeros(shape))
    expected = OUT_SHAPE.get(name, lambda s: s)(shape)
    assert tuple(out.shape) == tuple(expected)
    assert out.numel() == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64],
                         ids=str)
@pytest.mark.parametrize("name", list(ALL))
def test_output_dtype_and_device(name, dtype):
    """Float outputs keep the input dtype (half included) and are finite; index outputs are
    int64; every output is on the input's device."""
    x = torch.randn(4, 5, generator=gen(81)).to(dtype)
    out = ALL[name](x)
    expected = torch.int64 if name in OUT_SHAPE else dtype
    assert out.dtype == expected
    assert out.device == x.device
    assert torch.isfinite(out.double()).all()


# --------------------------------------------------------------- shift invariance (issue 13)

# Every sampler's law depends on the logits' differences only. An offset c is the float32
# offset 1e4, 1e6 or 1e8 measured in ulps (units in the last place): c * eps(dtype) / eps(f32)
# in another dtype, so each dtype is tested where its rounding is as coarse. The expected law
# is softmax of the differences as the dtype holds them (logits + c rounds: at 1e8 in float32
# the three logits below round to one value, and the law is uniform).
F32_OFFSETS = [0.0, 1e4, 1e6, 1e8]
SHIFT_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def _offset(c: float, dtype: torch.dtype) -> float:
    return c * torch.finfo(torch.float32).eps / torch.finfo(dtype).eps


def _index(name: str):
    """Sampler ``name`` as a function of logits (rows of 3) returning sampled indices."""
    if name == "gumbel_max":
        return lambda x: gk.gumbel_max(x, generator=gen(90))
    if name == "gumbel_topk":
        return lambda x: gk.gumbel_topk(x, 1, generator=gen(90))[:, 0]
    if name == "gumbel_softmax-hard":
        return lambda x: gk.gumbel_softmax(x, 0.5, hard=True, generator=gen(90)).argmax(-1)
    if name == "distribution":
        return lambda x: gk.distributions.GumbelSoftmax(logits=x).sample().argmax(-1)
    return lambda x: gk.sample(x, name, 0.5, generator=gen(90)).argmax(-1)


SHIFT_SAMPLERS = ["gumbel_max", "gumbel_topk", "gumbel_softmax-hard", "distribution", "st-gs",
                  "st", "gr", "gst", "reinmax"]


@pytest.mark.parametrize("dtype", SHIFT_DTYPES, ids=str)
@pytest.mark.parametrize("c", F32_OFFSETS, ids=lambda c: f"{c:g}")
@pytest.mark.parametrize("name", SHIFT_SAMPLERS)
def test_the_law_does_not_depend_on_the_offset_of_the_logits(name, c, dtype):
    # 30,000 draws of a 3-way categorical; chi-square at ALPHA against the law of the rounded
    # differences (before the fix, float32 at +1e7 was off by 0.12 in frequency)
    torch.manual_seed(91)
    logits = (torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64) + _offset(c, dtype)).to(dtype)
    held = logits.double()
    index = _index(name)(logits.expand(30_000, 3))
    assert_law(torch.bincount(index, minlength=3), torch.softmax(held - held.max(), 0))


@pytest.mark.parametrize("value", [-1e9, 1e9], ids=["-1e9", "+1e9"])
@pytest.mark.parametrize("name", SHIFT_SAMPLERS)
def test_equal_rows_are_uniform(name, value):
    # all -1e9 is a common masking constant; before the fix every draw was index 0
    torch.manual_seed(92)
    index = _index(name)(torch.full((20_000, 4), value))
    assert_law(torch.bincount(index, minlength=4), torch.full((4,), 0.25))


OVERFLOW = {  # |logits| / tau beyond the dtype's range
    "tiny-tau": (torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, -1.0]]), 1e-40),
    "tiny-tau-float64": (torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64), 1e-320),
    "huge-logits": (torch.tensor([[3e38, -3e38, 1e38], [3e38, 3e38, 0.0]]), 0.5),
}


@pytest.mark.parametrize("case", list(OVERFLOW))
@pytest.mark.parametrize("name", ["gumbel_softmax", "gumbel_softmax-hard", "softmax_t",
                                  *[n for n, e in gk.ESTIMATORS.items() if e.pathwise]])
def test_overflow_of_logits_over_tau_is_computed_stably(name, case):
    # the values stay on the simplex (one-hot where tau is tiny), finite, with finite gradients
    logits, tau = OVERFLOW[case]
    leaf = logits.clone().requires_grad_(True)
    if name.startswith("gumbel_softmax"):
        y = gk.gumbel_softmax(leaf, tau, hard=name.endswith("hard"), generator=gen(93))
    elif name == "softmax_t":
        y = gk.softmax_t(leaf, tau)
    else:
        y = gk.sample(leaf, name, tau, generator=gen(93))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.sum(-1).double(), torch.ones(len(logits), dtype=torch.float64))
    y.pow(2).sum().backward()
    assert torch.isfinite(leaf.grad).all()
    if case.startswith("tiny-tau") and name in ("gumbel_softmax", "softmax_t", "softmax"):
        assert ((y == 0) | (y == 1) | (y == 0.5)).all()  # one-hot (or a tie split evenly)


@pytest.mark.parametrize("shape,dim", [((0, 0), -1), ((0, 0), 0), ((3, 0), 0), ((3, 0, 0), 1),
                                       ((0, 4), -1)], ids=str)
def test_empty_shapes_give_empty_results(shape, dim):
    # no categorical to draw: every public function returns an empty result, never a raw error
    x = torch.zeros(shape, requires_grad=True)
    rows = tuple(s for i, s in enumerate(shape) if i != dim % len(shape))
    assert gk.gumbel_max(x, dim).shape == rows
    assert gk.gumbel_topk(x, 0, dim).numel() == 0
    assert gk.softmax_t(x, 0.5, dim).shape == shape
    assert gk.relaxed_bernoulli(x).shape == shape
    for hard in (False, True):
        assert gk.gumbel_softmax(x, 0.5, hard, dim=dim).shape == shape
    for name, est in gk.ESTIMATORS.items():
        if est.pathwise:
            assert gk.sample(x, name, 0.5, dim).shape == shape
        value = gk.expectation(lambda s: s.sum(tuple(range(1, s.dim()))), x, name, 2, dim=dim)
        assert value.shape == ()
    assert gk.nn.GumbelSoftmax(dim=dim).eval()(x).shape == shape
    assert gk.nn.GumbelSoftmax(dim=dim)(x).shape == shape
