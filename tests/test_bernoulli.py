"""gk.bernoulli: the law of the samples, each estimator's gradient against its formula and against
exact enumeration over {0,1}^n, Hard Concrete gates and their expected L0 penalty, bad input.

References written from the papers, independently of src/ (g = df/db at the sample b):

- st (Bengio et al. 2013):           sigmoid'(theta / tau) g / tau
- concrete (Maddison et al. 2017):   d f(sigmoid((theta + L) / tau)) / d theta, L = G1 - G2
- st-concrete:                       sigmoid'((theta + L) / tau) g / tau at b = [theta + L > 0]
- DisARM (Dong et al. 2020), reinforce, rloo: unbiased for d E f / d theta
- Hard Concrete (Louizos et al. 2018): P(z != 0) = sigmoid(theta - beta log(-gamma / zeta)),
  P(z == 1) = sigmoid(theta - beta log((1 - gamma) / (zeta - 1)))

Statistical tolerances from tests/stats.py: binomial tests reject at p < ALPHA, Monte Carlo means
within Z_TOL standard errors estimated from the draws.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats

import gumbelkit as gk

from .stats import ALPHA, assert_mean_close, gen

F64 = torch.float64
INF = float("inf")
THETA = torch.tensor([[0.4, -1.1, 2.0], [-0.3, INF, -INF]], dtype=F64)
PATHWISE_HARD = ["st", "st-concrete"]
UNBIASED = [("disarm", 2), ("disarm", 4), ("reinforce", 1), ("rloo", 2)]

pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny operations


def make_f(seed=0):
    """A non-linear f coupling the 6 variables of one (2, 3) sample: (..., 2, 3) -> (...)."""
    g = gen(seed)
    a = torch.randn(6, 4, generator=g, dtype=F64)
    b = torch.randn(4, generator=g, dtype=F64)
    return lambda s: torch.tanh(s.to(F64).flatten(-2) @ a) @ b + s[..., 0, 0] * s[..., 1, 0]


def grad_at(f, s):
    leaf = s.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(leaf).sum(), leaf)
    return g


def assert_binomial(ones, n, p):
    """Each entry's count of ones among n draws: two-sided exact binomial test at ALPHA; entries
    of probability 0 or 1 must be exactly 0 or n."""
    for count, prob in zip(ones.flatten().tolist(), p.flatten().tolist(), strict=True):
        if prob in (0.0, 1.0):
            assert count == n * prob
        else:
            pvalue = stats.binomtest(int(count), n, prob).pvalue
            assert pvalue >= ALPHA, f"{count}/{n} ones against p = {prob}: p-value {pvalue:.2e}"


# --------------------------------------------------------------------------------------------
# The law


@pytest.mark.parametrize("tau", [0.2, 1.0, 5.0])
@pytest.mark.parametrize("name", PATHWISE_HARD)
def test_hard_samples_follow_sigmoid_at_any_tau(name, tau):
    n = 20_000
    s = gk.bernoulli.sample(THETA.expand(n, -1, -1), name, tau, generator=gen(1))
    assert s.shape == (n, 2, 3) and s.dtype == F64
    assert ((s == 0) | (s == 1)).all()
    assert_binomial(s.sum(0), n, torch.sigmoid(THETA))


def test_binomial_test_has_power():
    # Guard: samples of sigmoid(theta) tested against sigmoid(theta + 0.1) are rejected.
    n = 20_000
    s = gk.bernoulli.sample(THETA.expand(n, -1, -1), "st", generator=gen(2))
    with pytest.raises(AssertionError):
        assert_binomial(s.sum(0)[0], n, torch.sigmoid(THETA[0] + 0.1))


@pytest.mark.parametrize("name", ["disarm", "reinforce", "rloo"])
def test_samples_seen_by_f_follow_sigmoid(name):
    # disarm: both halves (b and its antithetic b~) have the law sigmoid(theta) entry by entry.
    seen = []

    def f(s):
        seen.append(s.detach().clone())
        return s.sum((1, 2))

    gk.bernoulli.expectation(f, THETA, name, n_samples=20_000, generator=gen(3))
    (s,) = seen
    assert s.shape == (20_000, 2, 3)
    for half in s.chunk(2):
        assert_binomial(half.sum(0), 10_000, torch.sigmoid(THETA))


def test_concrete_is_binary_concrete_and_generator_reproduces():
    a = gk.bernoulli.sample(THETA, "concrete", 0.5, generator=gen(4))
    assert torch.equal(a, gk.relaxed_bernoulli(THETA, 0.5, generator=gen(4)))
    assert ((a > 0) & (a < 1))[0].all() and a[1, 1] == 1 and a[1, 2] == 0
    half = gk.bernoulli.sample(THETA.half(), "st", generator=gen(5))
    assert half.dtype == torch.float16


# --------------------------------------------------------------------------------------------
# Gradients per sample against the formulas (deterministic, float64)


def draw(name, tau, rows, seed):
    f = make_f()
    leaf = THETA.expand(rows, -1, -1).clone().requires_grad_(True)
    s = gk.bernoulli.sample(leaf, name, tau, generator=gen(seed))
    (grad,) = torch.autograd.grad(f(s).sum(), leaf)
    return s.detach(), grad, f


def sigmoid_prime(x):
    return torch.sigmoid(x) * torch.sigmoid(-x)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_st_gradient_formula(tau):
    s, grad, f = draw("st", tau, 64, 6)
    expected = sigmoid_prime(THETA / tau) * grad_at(f, s) / tau
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    assert (grad[:, 1, 1:] == 0).all()  # certain outcomes: no gradient


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("name", ["concrete", "st-concrete"])
def test_concrete_gradients_use_the_same_logistic_noise(name, tau):
    # relaxed_bernoulli draws gumbel_noise((2, *shape)) and uses L = G[0] - G[1].
    s, grad, f = draw(name, tau, 64, 7)
    gumbels = gk.gumbel_noise((2, 64, 2, 3), dtype=F64, generator=gen(7))
    noisy = THETA + (gumbels[0] - gumbels[1])
    if name == "concrete":
        leaf = THETA.expand(64, -1, -1).clone().requires_grad_(True)
        y = torch.sigmoid((leaf + (gumbels[0] - gumbels[1])) / tau)
        torch.testing.assert_close(s, y.detach(), rtol=1e-12, atol=1e-15)
        (expected,) = torch.autograd.grad(f(y).sum(), leaf)
    else:
        assert torch.equal(s, (noisy > 0).to(F64))
        expected = sigmoid_prime(noisy / tau) * grad_at(f, s) / tau
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


def test_disarm_gradient_formula_per_pair():
    # disarm draws torch.rand((pairs, *shape)) first: reproduce u; per pair the gradient is
    # 1/2 (f(b) - f(b~)) (-1)^{b~} [b != b~] sigmoid(|theta|), averaged over the pairs, with
    # b = [u < sigmoid(theta)], b~ = [1 - u < sigmoid(theta)].
    f = make_f()
    for pairs in (1, 3):
        leaf = THETA.clone().requires_grad_(True)
        value = gk.bernoulli.expectation(f, leaf, "disarm", 2 * pairs, generator=gen(8))
        (grad,) = torch.autograd.grad(value, leaf)
        u = torch.rand((pairs, 2, 3), dtype=F64, generator=gen(8))
        p = torch.sigmoid(THETA)
        b, anti = (u < p).to(F64), (1 - u < p).to(F64)
        torch.testing.assert_close(value, torch.cat([f(b), f(anti)]).mean())
        weight = 0.5 * (f(b) - f(anti))[:, None, None]
        expected = weight * (-1) ** anti * (b != anti) * torch.sigmoid(THETA.abs())
        torch.testing.assert_close(grad, expected.mean(0), rtol=1e-12,
                                   atol=1e-15)


# --------------------------------------------------------------------------------------------
# Expected gradients against exact enumeration over {0,1}^6


def configurations():
    """All 2**6 samples of THETA's shape and their probabilities, by the definition."""
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)), dtype=F64)
    bits = bits.reshape(-1, 2, 3)
    p1 = torch.sigmoid(THETA)
    probs = torch.where(bits.bool(), p1, 1 - p1).flatten(1).prod(1)
    return bits, probs


def exact_gradient(f):
    leaf = THETA.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gk.exact.bernoulli_expectation(f, leaf), leaf)
    return grad


def test_exact_expectation_matches_the_definition():
    f = make_f()
    bits, probs = configurations()
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=F64))
    torch.testing.assert_close(gk.exact.bernoulli_expectation(f, THETA), (probs * f(bits)).sum())
    # gradcheck in float64 on the finite entries (the infinite ones have no derivative)
    finite = THETA[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: gk.exact.bernoulli_expectation(lambda s: f(torch.stack(
            [s, torch.ones_like(s)], -2)), t), (finite,))


def mean_gradient(name, n_samples, rows, seed, tau=1.0):
    """``rows`` independent estimates: one call on a (rows, 2, 3) leaf with a per-row f."""
    f = make_f()
    leaf = THETA.expand(rows, -1, -1).clone().requires_grad_(True)
    value = gk.bernoulli.expectation(f, leaf, name, n_samples, tau, generator=gen(seed))
    assert value.shape == (rows,)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return grad, f


@pytest.mark.parametrize("name,n_samples", UNBIASED)
def test_unbiased_estimators_match_the_exact_gradient(name, n_samples):
    # 40,000 independent estimates, mean within Z_TOL standard errors of the exact gradient.
    grad, f = mean_gradient(name, n_samples, 40_000, 10 + n_samples)
    assert torch.isfinite(grad).all() and (grad[:, 1, 1:] == 0).all()
    assert_mean_close(grad, exact_gradient(f))


def test_unbiasedness_test_has_power():
    # Guard: st's mean gradient is rejected against the exact gradient on this f.
    grad, f = mean_gradient("st", 1, 40_000, 20)
    with pytest.raises(AssertionError):
        assert_mean_close(grad, exact_gradient(f))


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_st_expected_gradient_is_its_formula_summed_over_configurations(tau):
    grad, f = mean_gradient("st", 1, 40_000, 21, tau)
    bits, probs = configurations()
    per_config = sigmoid_prime(THETA / tau) * grad_at(f, bits) / tau
    assert_mean_close(grad, (probs[:, None, None] * per_config).sum(0))


def test_disarm_needs_pairs():
    with pytest.raises(ValueError, match="n_samples must be even"):
        gk.bernoulli.expectation(lambda s: s.sum((1, 2)), THETA, "disarm", n_samples=3)
    with pytest.raises(ValueError, match="n_samples for 'disarm' must be an integer >= 2"):
        gk.bernoulli.expectation(lambda s: s.sum((1, 2)), THETA, "disarm", n_samples=1)


# --------------------------------------------------------------------------------------------
# Hard Concrete gates and the expected L0 penalty


def test_hard_concrete_l0_penalty_closed_form_and_monte_carlo():
    # 40,000 gates per entry: the fraction of non-zero gates within Z_TOL standard errors of the
    # closed form sigmoid(theta - beta log(-gamma / zeta)), and the fraction of gates at exactly
    # 1 within Z_TOL of sigmoid(theta - beta log((1 - gamma) / (zeta - 1))).
    theta = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=F64)
    beta, gamma, zeta = 2 / 3, -0.1, 1.1
    z = gk.bernoulli.hard_concrete(theta.expand(40_000, -1), generator=gen(30))
    assert ((z >= 0) & (z <= 1)).all() and (z == 0).any() and (z == 1).any()
    nonzero = torch.sigmoid(theta - beta * math.log(-gamma / zeta))
    assert_mean_close((z != 0).to(F64), nonzero)
    assert_mean_close((z == 1).to(F64), torch.sigmoid(theta - beta * math.log((1 - gamma) /
                                                                              (zeta - 1))))
    torch.testing.assert_close(gk.bernoulli.l0_penalty(theta), nonzero.sum())
    for b, g, zt in ((0.5, -0.2, 1.3), (1.0, -0.05, 1.05)):
        torch.testing.assert_close(gk.bernoulli.l0_penalty(theta, b, g, zt),
                                   torch.sigmoid(theta - b * math.log(-g / zt)).sum())


def test_hard_concrete_gradcheck():
    theta = torch.tensor([-0.5, 0.3, 1.2], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(gk.bernoulli.l0_penalty, (theta,))
    assert torch.autograd.gradcheck(
        lambda t: gk.bernoulli.hard_concrete(t, generator=gen(31)), (theta,))


# --------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_raises_clear_errors():
    f = lambda s: s.sum((1, 2))  # noqa: E731
    with pytest.raises(ValueError, match="NaN"):
        gk.bernoulli.sample(torch.tensor([0.0, float("nan")]))
    with pytest.raises(TypeError, match="floating-point"):
        gk.bernoulli.sample(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="unknown Bernoulli estimator 'gs'; known: 'st'"):
        gk.bernoulli.sample(THETA, "gs")
    with pytest.raises(ValueError, match="gk.bernoulli.expectation"):
        gk.bernoulli.sample(THETA, "disarm")
    with pytest.raises(ValueError, match="'st' takes no option 'k'"):
        gk.bernoulli.sample(THETA, "st", k=2)
    with pytest.raises(ValueError, match="tau must be"):
        gk.bernoulli.expectation(f, THETA, "concrete", tau=-1.0)
    with pytest.raises(ValueError, match="n_samples for 'rloo' must be an integer >= 2"):
        gk.bernoulli.expectation(f, THETA, "rloo")
    with pytest.raises(ValueError, match="gamma < 0 < 1 < zeta"):
        gk.bernoulli.hard_concrete(THETA, gamma=0.1)
    with pytest.raises(ValueError, match="beta .the Hard Concrete temperature. must be"):
        gk.bernoulli.l0_penalty(THETA, beta=0.0)
    with pytest.raises(ValueError, match="exceeds max_configurations"):
        gk.exact.bernoulli_expectation(lambda s: s.flatten(1).sum(1), torch.zeros(21))
