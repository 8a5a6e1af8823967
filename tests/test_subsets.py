"""k-subsets: the laws of the k-hot samples, each estimator's gradient against its paper's formula
and against exact enumeration over subsets, gradcheck, and bad input.

The references below are written from the papers, independently of src/:

- without-replacement law (Kool et al. 2019): P(ordered i_1..i_k) = prod_j p_{i_j} / (1 - sum_{l<j}
  p_{i_l}), p = softmax(theta); a subset's probability sums its k! orders;
- conditional-Poisson law (Ahmed et al. 2023): P(S) proportional to prod_{i in S} exp(theta_i);
- relaxed top-k (Xie and Ermon 2019): y = sum_j softmax(r^j / tau), r^{j+1} = r^j + log(1 - a^j);
- I-MLE (Niepert et al. 2021): (z - topk_hot(theta + G - lam g)) / lam, same G as z;
- SIMPLE (Ahmed et al. 2023): J_mu^T g with mu the exact marginals, here by enumeration.

Statistical tolerances come from tests/stats.py: chi-square tests reject at p < ALPHA, Monte Carlo
means must lie within Z_TOL standard errors estimated from the draws themselves.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit.estimators.subsets import conditional_marginals, log_elementary

from .stats import ALPHA, assert_law, assert_mean_close, chisquare_pvalue, gen

F64 = torch.float64
NEG_INF = float("-inf")
HARD = ["st-topk", "imle", "simple"]
SCORE = ["reinforce", "rloo"]
THETA = torch.tensor([0.3, -1.0, 1.2, 0.5, NEG_INF], dtype=F64)

pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny operations


def all_subsets(n, k):
    return list(itertools.combinations(range(n), k))


def wor_probs(theta, k):
    """P(S) of every k-subset under sequential sampling without replacement, by its definition."""
    p = torch.softmax(theta, -1)
    probs = []
    for subset in all_subsets(len(theta), k):
        total = 0.0
        for order in itertools.permutations(subset):
            prob, used = 1.0, 0.0
            for i in order:
                prob *= float(p[i]) / (1.0 - used) if used < 1 else 0.0
                used += float(p[i])
            total += prob
        probs.append(total)
    return torch.tensor(probs, dtype=F64)


def conditional_probs(theta, k):
    """P(S) proportional to prod_{i in S} exp(theta_i), normalised over the k-subsets."""
    w = torch.tensor([math.exp(float(theta[list(s)].sum())) for s in all_subsets(len(theta), k)],
                     dtype=F64)
    return w / w.sum()


def subset_counts(samples, k):
    """Counts of each k-subset (in the order of all_subsets) among k-hot rows (N, n)."""
    n = samples.shape[-1]
    code = {s: i for i, s in enumerate(all_subsets(n, k))}
    counts = torch.zeros(len(code), dtype=F64)
    for row in samples.nonzero()[:, 1].reshape(-1, k).tolist():
        counts[code[tuple(row)]] += 1
    return counts


def assert_k_hot(s, k, dim=-1):
    assert ((s == 0) | (s == 1)).all(), "k-hot sample has values other than exactly 0 and 1"
    assert (s.sum(dim) == k).all(), f"k-hot sample rows do not have exactly {k} ones"


LAWS = {"st-topk": wor_probs, "imle": wor_probs, "simple": conditional_probs,
        "reinforce": wor_probs, "rloo": wor_probs}


# --------------------------------------------------------------------------------------------
# The laws


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("name", HARD)
def test_hard_sample_law_over_subsets(name, k):
    # 20,000 k-hot rows of 5 entries (one masked); chi-square over the C(5, k) subsets against
    # the estimator's law at ALPHA (subsets with the masked entry have probability 0: asserted
    # never drawn by chisquare_pvalue).
    n = 20_000
    s = gk.sample_subset(THETA.expand(n, -1), k, name, generator=gen(10 * k + HARD.index(name)))
    assert s.shape == (n, 5) and s.dtype == F64
    assert_k_hot(s, k)
    assert_law(subset_counts(s, k), LAWS[name](THETA, k))


@pytest.mark.parametrize("name", SCORE)
def test_score_function_samples_follow_the_without_replacement_law(name):
    seen = []

    def f(s):
        seen.append(s.detach().clone())
        return s.sum((1, 2))

    gk.subset_expectation(f, THETA.expand(2, -1), 2, name, n_samples=10_000, generator=gen(7))
    (s,) = seen
    assert s.shape == (10_000, 2, 5)
    assert_k_hot(s, 2)
    assert_law(subset_counts(s.reshape(-1, 5), 2), wor_probs(THETA, 2))


def test_the_two_laws_differ_and_the_test_can_tell():
    # Guard that the law tests can fail: without-replacement samples (st-topk) tested against
    # the conditional-Poisson law, and the reverse, are rejected at ALPHA with 20,000 draws.
    n, theta = 20_000, THETA[:4]
    wor = gk.sample_subset(theta.expand(n, -1), 2, "st-topk", generator=gen(1))
    cond = gk.sample_subset(theta.expand(n, -1), 2, "simple", generator=gen(2))
    assert chisquare_pvalue(subset_counts(wor, 2), conditional_probs(theta, 2)) < ALPHA
    assert chisquare_pvalue(subset_counts(cond, 2), wor_probs(theta, 2)) < ALPHA


def test_masks_leave_exactly_k_entries():
    # With exactly k unmasked entries every estimator must choose all of them.
    theta = torch.tensor([[NEG_INF, 0.2, NEG_INF, -3.0, NEG_INF]]).expand(100, -1)
    for name in HARD:
        s = gk.sample_subset(theta, 2, name, generator=gen(0))
        assert torch.equal(s, torch.isfinite(theta).float()), name


def test_relaxed_topk_sums_to_k_and_hardens_at_small_tau():
    theta = THETA.expand(500, -1)
    y = gk.sample_subset(theta, 2, "relaxed-topk", tau=0.5, generator=gen(3))
    assert (y >= 0).all() and (y[:, 4] == 0).all()
    torch.testing.assert_close(y.sum(-1), torch.full((500,), 2.0, dtype=F64))
    # As tau -> 0 the relaxation becomes topk_hot(theta + G) with the same G (Xie and Ermon 2019):
    # at tau = 1e-3, rows whose three largest keys are 0.05 = 50 tau apart or more are k-hot
    # within 1e-9 (softmax weights of order exp(-50)); nearly all rows are such rows.
    cold = gk.sample_subset(theta, 2, "relaxed-topk", tau=1e-3, generator=gen(3))
    hard = gk.sample_subset(theta, 2, "st-topk", tau=1e-3, generator=gen(3))
    top = (theta + gk.gumbel_noise((500, 5), dtype=F64, generator=gen(3))).topk(3, -1).values
    apart = (top[:, :-1] - top[:, 1:]).amin(-1) > 0.05
    assert apart.float().mean() > 0.9
    assert (cold - hard)[apart].abs().max() < 1e-9


def test_dtype_dim_and_generator_follow_the_conventions():
    theta = torch.randn(4, 6, generator=gen(0))
    for name in HARD:
        a = gk.sample_subset(theta, 3, name, generator=gen(5))
        b = gk.sample_subset(theta, 3, name, generator=gen(5))
        assert a.dtype == torch.float32 and torch.equal(a, b)
        t = gk.sample_subset(theta.T.contiguous(), 3, name, dim=0, generator=gen(5))
        assert_k_hot(t, 3, dim=0)
        half = gk.sample_subset(theta.half(), 3, name, generator=gen(5))
        assert half.dtype == torch.float16 and torch.equal(half.float(), a)


# --------------------------------------------------------------------------------------------
# The exact enumerator and the O(nk) marginals


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_law_matches_its_definition(k):
    for law, reference in (("without-replacement", wor_probs),
                           ("conditional-poisson", conditional_probs)):
        probs = gk.exact.subset_log_probs(THETA, k, law).exp()
        torch.testing.assert_close(probs, reference(THETA, k), rtol=1e-10, atol=1e-14)
    if k == 1:  # one draw: both laws are softmax(theta)
        torch.testing.assert_close(probs, torch.softmax(THETA, -1))


def test_exact_subset_expectation_of_a_linear_f_is_the_marginals():
    # E[sum_i c_i S_i] = sum_i c_i P(i in S); the marginals of the conditional law by enumeration
    # against the O(nk) recursion, and the recursion's log e_k against the definition.
    theta = torch.tensor([[0.3, -1.0, 1.2, 0.5, -0.2, 0.8]], dtype=F64)
    c = torch.randn(6, generator=gen(1), dtype=F64)
    k = 3
    subsets = torch.tensor(all_subsets(6, k))
    hot = torch.zeros(len(subsets), 6, dtype=F64).scatter_(1, subsets, 1.0)
    marginals = conditional_probs(theta[0], k) @ hot
    torch.testing.assert_close(conditional_marginals(theta, k)[0], marginals)
    exact = gk.exact.subset_expectation(lambda s: s[:, 0] @ c, theta, k, "conditional-poisson")
    torch.testing.assert_close(exact, marginals @ c)
    e_k = sum(math.exp(float(theta[0, list(s)].sum())) for s in all_subsets(6, k))
    torch.testing.assert_close(log_elementary(theta, k)[0, -1, -1], torch.tensor(math.log(e_k),
                                                                                 dtype=F64))


def test_exact_subset_expectation_of_independent_rows():
    # Two rows: f(S) = S_0[0] * S_1[1] factorises, E f = P(0 in S_0) P(1 in S_1).
    theta = torch.stack([THETA, THETA.flip(0)])
    p = wor_probs(THETA, 2)
    subsets = all_subsets(5, 2)
    p0 = sum(float(q) for q, s in zip(p, subsets, strict=True) if 0 in s)
    p1 = sum(float(q) for q, s in zip(wor_probs(THETA.flip(0), 2), subsets, strict=True) if 1 in s)
    exact = gk.exact.subset_expectation(lambda s: s[:, 0, 0] * s[:, 1, 1], theta, 2)
    torch.testing.assert_close(exact, torch.tensor(p0 * p1, dtype=F64))
    per_row = gk.exact.subset_expectation(lambda s: s[:, :, 0], theta, 2)
    assert per_row.shape == (2,)


def test_gradcheck_of_the_exact_laws_and_the_marginals():
    # float64 gradcheck (and second order for the marginals, the SIMPLE gradient's Jacobian),
    # with a masked entry; the relaxed top-k for fixed noise. I-MLE's backward is a difference of
    # MAP states, not a derivative: its formula is tested per draw below instead.
    theta = THETA.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: conditional_marginals(t, 2), (theta,))
    assert torch.autograd.gradgradcheck(lambda t: conditional_marginals(t, 2), (theta,))
    finite = THETA[:4].clone().requires_grad_(True)  # finite differences need finite logits
    assert torch.autograd.gradcheck(
        lambda t: gk.sample_subset(t, 2, "relaxed-topk", 0.7, generator=gen(0)), (finite,))
    f = make_f(5)
    for law in ("without-replacement", "conditional-poisson"):
        assert torch.autograd.gradcheck(
            lambda t, law=law: gk.exact.subset_expectation(f, t.unsqueeze(0), 2, law), (theta,))


# --------------------------------------------------------------------------------------------
# Gradients, per sample, against the papers' formulas (deterministic, float64)


def make_f(n, seed=0):
    """A non-linear f of one k-hot row: (..., n) -> (...)."""
    g = gen(seed)
    a = torch.randn(n, 4, generator=g, dtype=F64)
    b = torch.randn(4, generator=g, dtype=F64)
    return lambda s: torch.tanh(s.to(F64) @ a) @ b


def grad_at(f, s):
    leaf = s.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(leaf).sum(), leaf)
    return g


def draw(name, k, rows, seed, tau=1.0, **options):
    """One sample of ``rows`` independent copies of THETA, and the gradient of f summed over them
    (row r's gradient is that of its own sample)."""
    f = make_f(5)
    leaf = THETA.expand(rows, -1).clone().requires_grad_(True)
    s = gk.sample_subset(leaf, k, name, tau, generator=gen(seed), **options)
    (grad,) = torch.autograd.grad(f(s).sum(), leaf)
    return s.detach(), grad, f


def relaxed_reference(theta, noise, k, tau):
    r, total = theta + noise, 0
    for _ in range(k):
        a = torch.softmax(r / tau, -1)
        total = total + a
        r = r + torch.log(torch.clamp(1 - a, min=torch.finfo(F64).tiny))
    return total


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.0])
@pytest.mark.parametrize("name", ["relaxed-topk", "st-topk"])
def test_topk_gradients_are_xie_ermon_with_the_same_noise(name, tau):
    # Both draw gumbel_noise(logits.shape) first: reproduce it with an identically seeded
    # generator. st-topk: value topk_hot(theta + G), gradient of the relaxation at the same G.
    s, grad, f = draw(name, 2, 64, 11, tau)
    noise = gk.gumbel_noise((64, 5), dtype=F64, generator=gen(11))
    leaf = THETA.expand(64, -1).clone().requires_grad_(True)
    y = relaxed_reference(leaf, noise, 2, tau)
    if name == "st-topk":
        hard = torch.zeros(64, 5, dtype=F64).scatter_(1, (THETA + noise).topk(2, -1).indices, 1.0)
        assert torch.equal(s, hard)
        (expected,) = torch.autograd.grad(y, leaf, grad_at(f, s))
    else:
        torch.testing.assert_close(s, y.detach(), rtol=1e-12, atol=1e-15)
        (expected,) = torch.autograd.grad(f(y).sum(), leaf)
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    assert (grad[:, 4] == 0).all()


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_imle_gradient_is_the_map_difference(lam):
    s, grad, f = draw("imle", 2, 64, 12, lam=lam)
    keys = THETA + gk.gumbel_noise((64, 5), dtype=F64, generator=gen(12))
    z = torch.zeros(64, 5, dtype=F64).scatter_(1, keys.topk(2, -1).indices, 1.0)
    assert torch.equal(s, z)
    target_keys = keys - lam * grad_at(f, s)
    target = torch.zeros(64, 5, dtype=F64).scatter_(1, target_keys.topk(2, -1).indices, 1.0)
    torch.testing.assert_close(grad, (z - target) / lam, rtol=0, atol=0)
    assert (grad != 0).any(), "the objective should move some MAP state"


def simple_jacobian(theta, k):
    """d mu / d theta of the conditional law's marginals, by enumeration: Cov(S) (exponential
    family: the Jacobian of the mean parameters is the covariance of the sufficient statistic)."""
    subsets = torch.tensor(all_subsets(len(theta), k))
    hot = torch.zeros(len(subsets), len(theta), dtype=F64).scatter_(1, subsets, 1.0)
    p = conditional_probs(theta, k)
    mu = p @ hot
    return hot.T @ (p[:, None] * hot) - torch.outer(mu, mu), hot, p


def test_simple_gradient_is_the_marginals_jacobian():
    s, grad, f = draw("simple", 2, 64, 13)
    jac, _, _ = simple_jacobian(THETA[:4], 2)  # the masked entry has marginal 0 and no gradient
    expected = grad_at(f, s)[:, :4] @ jac
    torch.testing.assert_close(grad[:, :4], expected, rtol=1e-9, atol=1e-12)
    assert (grad[:, 4] == 0).all()


# --------------------------------------------------------------------------------------------
# Expected gradients against exact enumeration over subsets


def mean_gradient(name, k, rows, seed, n_samples=1, **options):
    """``rows`` independent gradient estimates, each from one gk.subset_expectation call on its
    own row of a (rows, 5) leaf with a per-row f."""
    f = make_f(5)
    leaf = THETA.expand(rows, -1).clone().requires_grad_(True)
    value = gk.subset_expectation(f, leaf, k, name, n_samples=n_samples,
                                  generator=gen(seed), **options)
    assert value.shape == (rows,)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return grad, f


def exact_gradient(f, k, law):
    leaf = THETA.unsqueeze(0).clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gk.exact.subset_expectation(
        lambda s: f(s[:, 0]), leaf, k, law), leaf)
    return grad[0]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("name,n_samples", [("reinforce", 1), ("rloo", 2), ("rloo", 4)])
def test_score_function_is_unbiased_for_the_without_replacement_law(name, n_samples, k):
    # 40,000 independent estimates; their mean within Z_TOL standard errors of the exact
    # gradient of E f under the without-replacement law.
    grad, f = mean_gradient(name, k, 40_000, 20 + k, n_samples)
    assert (grad[:, 4] == 0).all()
    assert_mean_close(grad, exact_gradient(f, k, "without-replacement"))


def test_score_function_bias_test_has_power():
    # Guard: the same draws are rejected against the other law's exact gradient.
    grad, f = mean_gradient("rloo", 2, 40_000, 22, 2)
    with pytest.raises(AssertionError):
        assert_mean_close(grad, exact_gradient(f, 2, "conditional-poisson"))


def test_simple_expected_gradient_is_its_formula_summed_over_subsets():
    # E[grad] = sum_S p(S) J_mu^T g(S) over the conditional law, enumerated; the mean of 40,000
    # estimates within Z_TOL standard errors of it. It differs from the exact gradient of E f.
    grad, f = mean_gradient("simple", 2, 40_000, 30)
    jac, hot, p = simple_jacobian(THETA[:4], 2)
    full = torch.zeros(len(hot), 5, dtype=F64)
    full[:, :4] = hot
    expected = torch.zeros(5, dtype=F64)
    expected[:4] = (p[:, None] * grad_at(f, full)[:, :4]).sum(0) @ jac
    assert_mean_close(grad, expected)
    assert (expected - exact_gradient(f, 2, "conditional-poisson")).norm() > 1e-3


def test_imle_mean_gradient_points_along_the_exact_one():
    # A sanity bound, not a formula: the expectation of I-MLE's gradient over the continuous
    # Gumbel noise has no finite sum (its per-draw formula is tested above). The mean of 20,000
    # estimates must have a cosine above 0.5 with the exact gradient on this f.
    grad, f = mean_gradient("imle", 2, 20_000, 31, lam=1.0)
    exact = exact_gradient(f, 2, "without-replacement")
    cosine = torch.nn.functional.cosine_similarity(grad.mean(0), exact, dim=0)
    assert cosine > 0.5


# --------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_raises_clear_errors():
    theta = torch.randn(3, 5)
    with pytest.raises(ValueError, match="k=6 exceeds the 5 entries"):
        gk.sample_subset(theta, 6)
    with pytest.raises(ValueError, match="k .the subset size. must be an integer >= 1"):
        gk.sample_subset(theta, 0)
    with pytest.raises(ValueError, match="at most n - k = 2 entries per row may be -inf"):
        gk.sample_subset(torch.tensor([0.0, NEG_INF, NEG_INF, NEG_INF, 1.0]), 3)
    with pytest.raises(ValueError, match="'imle' takes no option 'gap'; options it accepts: lam"):
        gk.sample_subset(theta, 2, "imle", gap=1.0)
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        gk.sample_subset(theta, 2, "imle", lam=0.0)
    with pytest.raises(ValueError, match="unknown subset estimator 'st-gs'; known: "):
        gk.sample_subset(theta, 2, "st-gs")
    with pytest.raises(ValueError, match="gk.subset_expectation"):
        gk.sample_subset(theta, 2, "rloo")
    with pytest.raises(ValueError, match="n_samples for 'rloo' must be an integer >= 2"):
        gk.subset_expectation(lambda s: s.sum((1, 2)), theta, 2, "rloo")
    with pytest.raises(ValueError, match="tau must be"):
        gk.sample_subset(theta, 2, tau=0.0)
    with pytest.raises(TypeError, match="floating-point"):
        gk.sample_subset(torch.ones(5, dtype=torch.long), 2)
    with pytest.raises(IndexError):
        gk.sample_subset(theta, 2, dim=2)
    with pytest.raises(ValueError, match="unknown law"):
        gk.exact.subset_expectation(lambda s: s.sum((1, 2)), theta.double(), 2, "nope")
    with pytest.raises(ValueError, match="exceeds max_configurations"):
        gk.exact.subset_expectation(lambda s: s.sum((1, 2)), torch.randn(12, 5), 2)
