"""Tests for gumbelkit.noise: Gumbel(0, 1) noise and Gumbel noise conditioned on the argmax.

Statistical tests use fixed seeds; each states its tolerance (chi-square / KS at ALPHA, means
within Z_TOL standard errors computed from the known variance).
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import gumbelkit as gk

from .stats import ALPHA, Z_TOL, gen

EULER_GAMMA = 0.5772156649015329  # mean of Gumbel(0, 1)
GUMBEL_VAR = math.pi**2 / 6  # variance of Gumbel(0, 1)
GUMBEL_EXCESS_KURTOSIS = 12 / 5


# --------------------------------------------------------------------------- gumbel_noise


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gumbel_noise_mean_and_variance(dtype):
    """Sample mean and variance of Gumbel(0, 1) draws are Euler's gamma and pi^2/6."""
    n = 1_000_000
    g = gk.gumbel_noise(n, dtype=dtype, generator=gen(0)).double()
    # Mean: standard error sqrt(Var / n) from the known variance pi^2/6.
    se_mean = math.sqrt(GUMBEL_VAR / n)
    assert abs(g.mean().item() - EULER_GAMMA) < Z_TOL * se_mean
    # Sample variance: standard error sqrt((mu4 - sigma^4) / n) = sigma^2 sqrt((kurt_excess + 2)/n).
    se_var = GUMBEL_VAR * math.sqrt((GUMBEL_EXCESS_KURTOSIS + 2) / n)
    assert abs(g.var().item() - GUMBEL_VAR) < Z_TOL * se_var


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gumbel_noise_ks(dtype):
    """Kolmogorov-Smirnov test of the draws against scipy's gumbel_r (Gumbel(0, 1)), at ALPHA."""
    g = gk.gumbel_noise(200_000, dtype=dtype, generator=gen(1)).double().numpy()
    assert stats.kstest(g, "gumbel_r").pvalue >= ALPHA


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gumbel_noise_always_finite(dtype):
    """No inf or NaN over 10 million draws."""
    g = gk.gumbel_noise((10, 1_000_000), dtype=dtype, generator=gen(2))
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_gumbel_noise_finite_at_uniform_extremes(monkeypatch, dtype):
    """Uniforms of exactly 0 (possible from uniform_) and just below 1 give finite noise."""
    def extreme_uniform_(self, *args, generator=None):
        u = torch.tensor([0.0, torch.finfo(dtype).tiny, 0.5, 1.0 - torch.finfo(dtype).eps / 2],
                         dtype=dtype)
        assert u[-1] < 1
        return self.copy_(u.repeat(math.prod(self.shape) // 4).reshape(self.shape))

    monkeypatch.setattr(torch.Tensor, "uniform_", extreme_uniform_)
    g = gk.gumbel_noise((2, 4), dtype=dtype)
    monkeypatch.undo()
    assert torch.isfinite(g).all()
    # Monotone in u: the u = 0 draw is the smallest, the u = 1 - eps/2 draw the largest.
    assert (g[:, 0] <= g[:, 1]).all() and (g[:, 1] < g[:, 2]).all() and (g[:, 2] < g[:, 3]).all()


def test_gumbel_noise_reproducible():
    """The same generator seed gives the same draws, another seed different ones."""
    a = gk.gumbel_noise((100,), generator=gen(7))
    b = gk.gumbel_noise((100,), generator=gen(7))
    c = gk.gumbel_noise((100,), generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_gumbel_noise_generator_leaves_global_rng_alone():
    """Drawing with an explicit generator does not advance torch's global RNG."""
    state = torch.get_rng_state()
    gk.gumbel_noise((1000,), generator=gen(3))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_gumbel_noise_dtypes(dtype):
    """Each float dtype is returned as asked, finite, with mean gamma within Z_TOL SEs."""
    n = 200_000
    g = gk.gumbel_noise(n, dtype=dtype, generator=gen(4))
    assert g.dtype == dtype
    assert torch.isfinite(g).all()
    # Rounding to half precision moves each draw by < 0.5%, far below Z_TOL * SE = 0.013.
    assert abs(g.double().mean().item() - EULER_GAMMA) < Z_TOL * math.sqrt(GUMBEL_VAR / n)


def test_gumbel_noise_rejects_integer_dtype():
    """A non-float dtype raises TypeError."""
    with pytest.raises(TypeError):
        gk.gumbel_noise(3, dtype=torch.int64)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [(5, (5,)), ((2, 3), (2, 3)), ([4, 1, 2], (4, 1, 2)), (torch.Size([3, 2]), (3, 2)),
     ((0, 3), (0, 3)), ((), ())],
)
def test_gumbel_noise_shape(shape, expected):
    """The shape may be an int, a tuple, a list or a torch.Size; the device follows the request."""
    g = gk.gumbel_noise(shape, device="cpu", generator=gen(5))
    assert tuple(g.shape) == expected
    assert g.device.type == "cpu"


# --------------------------------------------------------------------- conditional_gumbel

LOGITS = torch.tensor([1.0, 0.0, -0.5, 0.3])


@pytest.mark.parametrize(
    ("dtype", "offset"),
    [(torch.float32, 0.0), (torch.float64, 0.0), (torch.float32, 1e4), (torch.float64, 1e4),
     (torch.float16, 0.0), (torch.bfloat16, 0.0)],
    ids=["f32", "f64", "f32-offset1e4", "f64-offset1e4", "f16", "bf16"],
)
def test_conditional_gumbel_argmax_is_index(dtype, offset):
    """Every returned row has its unique argmax at the conditioning index, in its own dtype."""
    base = torch.tensor([[2.0, 0.5, 0.0, -1.0, -3.0],
                         [0.0, 0.0, 0.0, 0.0, 0.0],
                         [-2.0, 4.0, 1.0, 0.5, 0.0]])
    logits = (base + offset).to(dtype)
    index = torch.tensor([4, 2, 0])  # includes the least likely category of each row
    v = gk.conditional_gumbel(logits, index, 50_000, generator=gen(10))
    assert v.shape == (50_000, 3, 5)
    assert v.dtype == dtype
    wrong = v.argmax(-1) != index
    assert not wrong.any(), f"{int(wrong.sum())} rows have their argmax elsewhere (ties)"


def test_conditional_gumbel_masked_stay_masked():
    """-inf logits stay -inf in every draw; the other entries are finite."""
    logits = torch.tensor([[0.5, -math.inf, 1.0, -math.inf], [-math.inf, 0.0, 0.0, 2.0]])
    index = torch.tensor([0, 1])
    v = gk.conditional_gumbel(logits, index, 1000, generator=gen(11))
    masked = torch.isneginf(logits).expand_as(v)
    assert torch.isneginf(v[masked]).all()
    assert torch.isfinite(v[~masked]).all()
    assert (v.argmax(-1) == index).all()


@pytest.mark.parametrize("index", [0, 2])
def test_conditional_gumbel_max_is_gumbel_at_logsumexp(index):
    """The winning coordinate v_D is Gumbel(logsumexp(logits), 1) whatever D is (KS at ALPHA)."""
    v = gk.conditional_gumbel(LOGITS, torch.tensor(index), 100_000, generator=gen(12))
    loc = LOGITS.double().logsumexp(0).item()
    top = v[:, index].double().numpy()
    assert stats.kstest(top, "gumbel_r", args=(loc, 1.0)).pvalue >= ALPHA


@pytest.mark.parametrize("index", [2, 0])
def test_conditional_gumbel_matches_rejection_sampling(index):
    """The law of logits + G given argmax == D equals the law of the conditional draws.

    Reference: unconditional v = logits + G, kept where argmax(v) == D. Two-sample KS tests at
    ALPHA of every coordinate and of the gap between the max and the runner-up.
    """
    n_ref = 400_000  # P(D = 2) = 0.107, so about 43,000 accepted draws
    ref = LOGITS.double() + gk.gumbel_noise((n_ref, 4), dtype=torch.float64, generator=gen(13))
    ref = ref[ref.argmax(-1) == index]
    assert len(ref) > 30_000
    cond = gk.conditional_gumbel(LOGITS.double(), torch.tensor(index), 40_000, generator=gen(14))

    def gap(v):
        top2 = v.topk(2, -1).values
        return top2[:, 0] - top2[:, 1]

    for i in range(4):
        p = stats.ks_2samp(ref[:, i].numpy(), cond[:, i].numpy()).pvalue
        assert p >= ALPHA, f"coordinate {i}: KS p-value {p:.2e}"
    p = stats.ks_2samp(gap(ref).numpy(), gap(cond).numpy()).pvalue
    assert p >= ALPHA, f"gap: KS p-value {p:.2e}"


def test_conditional_gumbel_dim0():
    """With dim=0 the categories run down the columns: shape, argmax and law of the max."""
    logits = torch.tensor([[1.0, -1.0, 0.0], [0.0, 2.0, 0.0], [-0.5, 0.0, -math.inf]])  # (K, B)
    index = torch.tensor([2, 0, 1])  # one index per column
    n = 50_000
    v = gk.conditional_gumbel(logits, index, n, dim=0, generator=gen(15))
    assert v.shape == (n, 3, 3)
    assert (v.argmax(1) == index).all()
    assert torch.isneginf(v[:, 2, 2]).all()
    lse = logits.logsumexp(0)
    for b in range(3):
        top = (v[:, index[b], b] - lse[b]).double().numpy()
        assert stats.kstest(top, "gumbel_r").pvalue >= ALPHA, f"column {b}"


def test_conditional_gumbel_reproducible_and_detached():
    """Same seed, same draws; the result carries no gradient."""
    logits = LOGITS.clone().requires_grad_()
    a = gk.conditional_gumbel(logits, torch.tensor(1), 10, generator=gen(16))
    b = gk.conditional_gumbel(logits, torch.tensor(1), 10, generator=gen(16))
    c = gk.conditional_gumbel(logits, torch.tensor(1), 10, generator=gen(17))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not a.requires_grad


def test_conditional_gumbel_rejects_integer_logits():
    """Integer logits raise TypeError."""
    with pytest.raises(TypeError):
        gk.conditional_gumbel(torch.tensor([1, 2]), torch.tensor(0), 3)


def test_conditional_gumbel_mixture_is_unconditional():
    """Mixing the conditional laws with weights softmax(logits) gives back logits + G.

    Take round(n * P(D)) conditional draws for each D; the mixture's coordinates must be
    Gumbel(logits_i, 1) (KS at ALPHA; rounding moves each weight by < 1/n).
    """
    n = 60_000
    counts = (n * LOGITS.double().softmax(0)).round().long().tolist()
    draws = [gk.conditional_gumbel(LOGITS.double(), torch.tensor(d), c, generator=gen(18 + d))
             for d, c in enumerate(counts) if c > 0]
    v = torch.cat(draws)
    for i in range(4):
        p = stats.kstest(v[:, i].numpy(), "gumbel_r", args=(LOGITS[i].item(), 1.0)).pvalue
        assert p >= ALPHA, f"coordinate {i}: KS p-value {p:.2e}"
