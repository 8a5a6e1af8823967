"""The estimators of gk.ESTIMATORS: hard forward law, each paper's gradient formula per sample,
expected gradients against exact enumeration, unbiasedness of the score-function estimators,
Gumbel-Rao against straight-through Gumbel-Softmax, and option / name validation.

The gradient formulas below are written from the papers, independently of src/: with
``J(p) = diag(p) - p p^T`` and ``g = df/dy`` at the one-hot sample ``D``,

- argmax-st, st (Bengio et al. 2013):   J(softmax(theta / tau)) g / tau
- reinmax (Liu et al. 2023, Alg. 2):    2 J(pi1) g - J(pi0) g / 2,
                                        pi0 = softmax(theta), pi1 = (D + softmax(theta / tau)) / 2
- gst (Fan et al. 2022, gap option):    J(softmax(theta~ / tau)) g / tau, with m = max theta,
                                        theta~ = m at D and min(theta_i, m - gap) elsewhere
- zgr (Shekhovtsov 2023):               (J(p) g + (D - p) <D - p, g>) / 2, p = softmax(theta),
                                        no temperature
- st-gs (Jang et al. 2017):             J(softmax((theta + G) / tau)) g / tau, same G as D
- gs:                                   d f(softmax((theta + G) / tau)) / d theta

Statistical tolerances come from tests/stats.py: chi-square tests reject at p < ALPHA, Monte Carlo
means must lie within Z_TOL standard errors (estimated from the draws themselves).
"""

from __future__ import annotations

import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit.kernels import noise_generator

from .stats import ALPHA, Z_TOL, assert_law, assert_mean_close, chisquare_pvalue, gen

F64 = torch.float64
NEG_INF = float("-inf")
# pathwise estimators whose one-hot samples follow softmax(logits) (at their default options)
HARD = [name for name, est in gk.ESTIMATORS.items() if est.pathwise and est.forward == "one-hot"]
SCORE = [name for name, est in gk.ESTIMATORS.items() if not est.pathwise]
DESIGN_NAMES = {
    "softmax", "argmax-st", "gs", "st-gs", "st", "gr", "gst", "reinmax", "reinforce", "rloo",
    "zgr", "dst-gs", "rebar", "relax",
}


pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny operations


# --------------------------------------------------------------------------------------------
# Reference formulas (last dimension = categories), written from the papers.


def jvp(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """J(p) g with J(p) = diag(p) - p p^T, along the last dimension."""
    return p * g - p * (p * g).sum(-1, keepdim=True)


def st_formula(theta, D, g, tau):
    return jvp(torch.softmax(theta / tau, -1), g) / tau


def reinmax_formula(theta, D, g, tau):
    pi0 = torch.softmax(theta, -1)
    pi1 = (D + torch.softmax(theta / tau, -1)) / 2
    return 2 * jvp(pi1, g) - jvp(pi0, g) / 2


def gst_formula(theta, D, g, tau, gap=1.0):
    m = theta.amax(-1, keepdim=True)
    tilde = torch.where(D.bool(), m, torch.minimum(theta, m - gap))
    return jvp(torch.softmax(tilde / tau, -1), g) / tau


def zgr_formula(theta, D, g, tau):
    p = torch.softmax(theta, -1)
    return (jvp(p, g) + (D - p) * ((D - p) * g).sum(-1, keepdim=True)) / 2


FORMULAS = {
    "argmax-st": st_formula,
    "st": st_formula,
    "reinmax": reinmax_formula,
    "gst": gst_formula,
    "zgr": zgr_formula,
}


def make_f(L: int, K: int, seed: int = 0):
    """A non-linear objective coupling the L rows: f(y) for y of shape (..., L, K) -> (...)."""
    g = gen(seed)
    A = torch.randn(L * K, 5, generator=g, dtype=F64)
    b = torch.randn(5, generator=g, dtype=F64)
    w = torch.randn(K, generator=g, dtype=F64)
    t = torch.randn(L, generator=g, dtype=F64)

    def f(y: torch.Tensor) -> torch.Tensor:
        y = y.to(F64)
        return torch.tanh(y.flatten(-2) @ A) @ b + ((y @ w - t) ** 2).sum(-1)

    return f


def grad_at(f, D: torch.Tensor) -> torch.Tensor:
    """g = df/dy at the one-hot D (rows of the leading dimensions are independent)."""
    leaf = D.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(f(leaf).sum(), leaf)
    return g


def assert_one_hot(s: torch.Tensor, dim: int = -1) -> None:
    assert ((s == 0) | (s == 1)).all(), "hard sample has values other than exactly 0 and 1"
    assert (s.sum(dim) == 1).all(), "hard sample rows do not sum to exactly 1"


def per_row_gradients(theta, name, tau, R, seed, f, **options):
    """R independent gradient draws of ``name`` for logits ``theta`` (L, K): one sample of a
    (R, L, K) leaf, f summed over the R independent rows, one backward."""
    leaf = theta.expand(R, *theta.shape).clone().requires_grad_(True)
    s = gk.sample(leaf, name, tau, generator=gen(seed), **options)
    (grad,) = torch.autograd.grad(f(s).sum(), leaf)
    return s.detach(), grad


# --------------------------------------------------------------------------------------------
# Hard forward law


LAW_LOGITS = torch.tensor([1.0, -0.5, 0.3, 2.0, -1.5])


@pytest.mark.parametrize("tau", [0.1, 1.0, 5.0])
@pytest.mark.parametrize("name", HARD)
def test_hard_sample_law_is_softmax_at_any_tau(name, tau):
    # 20,000 one-hot rows; chi-square against softmax(logits) at ALPHA. The law must not depend
    # on tau: the same test at tau = 0.1, 1, 5.
    n = 20_000
    logits = LAW_LOGITS.expand(n, -1)
    s = gk.sample(logits, name, tau, generator=gen(100 + HARD.index(name)))
    assert s.shape == logits.shape and s.dtype == logits.dtype
    assert_one_hot(s)
    assert_law(s.sum(0), torch.softmax(LAW_LOGITS, -1))


@pytest.mark.parametrize("name", HARD)
def test_hard_sample_does_not_depend_on_tau_for_fixed_seed(name):
    # The one-hot value is a function of the noise only: same seed, any tau -> the same sample.
    logits = torch.randn(50, 6, generator=gen(3))
    ref = gk.sample(logits, name, 1.0, generator=gen(9))
    for tau in (0.1, 5.0):
        assert torch.equal(gk.sample(logits, name, tau, generator=gen(9)), ref)


@pytest.mark.parametrize("name", HARD)
def test_hard_sample_law_with_masks(name):
    # Masked (-inf) categories are never drawn (chisquare_pvalue asserts zero counts there);
    # the rest follows the renormalised softmax (chi-square at ALPHA), per row.
    n = 20_000
    base = torch.tensor([[0.5, NEG_INF, -0.2, 1.0], [NEG_INF, NEG_INF, 0.0, 0.7]])
    logits = base.expand(n, -1, -1)
    s = gk.sample(logits, name, 0.5, generator=gen(200 + HARD.index(name)))
    assert_one_hot(s)
    counts = s.sum(0)
    probs = torch.softmax(base, -1)
    for row in range(2):
        assert_law(counts[row], probs[row])


@pytest.mark.parametrize("name", HARD)
def test_hard_sample_law_large_k(name):
    # K = 512 categories (one masked), 10,000 draws, chi-square at ALPHA with categories of
    # expected count < 5 pooled (tests/stats.py).
    K, n = 512, 10_000
    base = torch.randn(K, generator=gen(5)) * 1.5
    base[17] = NEG_INF
    opts = {"k": 2} if name == "gr" else {}
    s = gk.sample(base.expand(n, -1), name, 1.0, generator=gen(300 + HARD.index(name)), **opts)
    assert_one_hot(s)
    assert s[:, 17].sum() == 0
    assert_law(s.sum(0), torch.softmax(base, -1))


def test_argmax_st_returns_the_mode():
    logits = torch.randn(200, 7, generator=gen(1))
    logits[:, 3] = NEG_INF
    for tau in (0.1, 1.0, 5.0):
        s = gk.sample(logits, "argmax-st", tau, generator=gen(2))
        expected = torch.nn.functional.one_hot(logits.argmax(-1), 7).float()
        assert torch.equal(s, expected)


@pytest.mark.parametrize("name", SCORE)
def test_score_function_samples_follow_softmax(name):
    # The one-hot samples f sees: chi-square per row against softmax(logits) at ALPHA.
    base = torch.tensor([[0.2, -1.0, 1.3], [NEG_INF, 0.4, -0.4]])
    seen = []

    def f(s):
        seen.append(s.detach().clone())
        return s.sum((1, 2))

    gk.expectation(f, base, name, n_samples=20_000, generator=gen(400))
    s = seen[0]  # rebar and relax then evaluate f at relaxed samples (their control variate)
    assert s.shape == (20_000, 2, 3)
    assert_one_hot(s)
    probs = torch.softmax(base, -1)
    for row in range(2):
        assert_law(s[:, row].sum(0), probs[row])


def test_chisquare_has_power_against_a_wrong_law():
    # Guard that the law tests can fail: st-gs samples tested against softmax(logits / 2) must
    # be rejected at ALPHA with these sample sizes.
    n = 20_000
    s = gk.sample(LAW_LOGITS.expand(n, -1), "st-gs", 1.0, generator=gen(101))
    assert chisquare_pvalue(s.sum(0), torch.softmax(LAW_LOGITS / 2, -1)) < ALPHA


# --------------------------------------------------------------------------------------------
# Gradient formulas, per sample (deterministic, float64)


FORMULA_THETA = torch.tensor(
    [[0.3, -1.2, 0.8, NEG_INF], [1.5, 0.1, -0.4, 0.2], [-0.3, -0.3, 0.9, 2.2]], dtype=F64
)


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("name", list(FORMULAS))
def test_gradient_is_paper_formula_per_sample(name, tau):
    # Per sample D (read from the forward value), autograd of f(sample) must equal the formula at
    # (theta, D, g(D)) up to float64 rounding (rtol 1e-9). 64 rows x 3 seeds cover many D.
    f = make_f(3, 4)
    for seed in (0, 1, 2):
        D, grad = per_row_gradients(FORMULA_THETA, name, tau, 64, seed, f)
        assert_one_hot(D)
        assert (D[..., 3][:, 0] == 0).all()  # masked category never drawn
        if name == "argmax-st":
            mode = torch.nn.functional.one_hot(FORMULA_THETA.argmax(-1), 4).to(F64)
            assert torch.equal(D, mode.expand_as(D))
        theta = FORMULA_THETA.expand_as(D)
        expected = FORMULAS[name](theta, D, grad_at(f, D), tau)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gap", [0.25, 3.0])
def test_gst_gradient_formula_with_gap_option(gap):
    f = make_f(3, 4)
    for tau in (0.5, 2.0):
        D, grad = per_row_gradients(FORMULA_THETA, "gst", tau, 64, 7, f, gap=gap)
        expected = gst_formula(FORMULA_THETA.expand_as(D), D, grad_at(f, D), tau, gap=gap)
        torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", [*FORMULAS, "st-gs"])
def test_gradient_formula_dim0_layout(name):
    # Categories along dim 0: logits (K, L). The formula is applied to the transposed layout.
    f = make_f(3, 4)
    theta_t = FORMULA_THETA.T.contiguous()
    for seed in range(8):
        leaf = theta_t.clone().requires_grad_(True)
        s = gk.sample(leaf, name, 0.7, dim=0, generator=gen(seed))
        assert_one_hot(s, dim=0)
        (grad,) = torch.autograd.grad(f(s.T), leaf)
        D = s.detach().T
        g = grad_at(f, D)
        if name == "st-gs":
            noise = gk.gumbel_noise(theta_t.shape, dtype=F64,
                                      generator=noise_generator(gen(seed))).T
            perturbed = FORMULA_THETA + noise
            assert torch.equal(D, torch.nn.functional.one_hot(perturbed.argmax(-1), 4).to(F64))
            expected = jvp(torch.softmax(perturbed / 0.7, -1), g) / 0.7
        else:
            expected = FORMULAS[name](FORMULA_THETA, D, g, 0.7)
        torch.testing.assert_close(grad.T, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tau", [0.3, 1.0, 3.0])
def test_st_gs_gradient_uses_the_same_gumbel_noise(tau):
    # st-gs draws its noise from the generator of a seed drawn first (noise_generator);
    # D = one_hot(argmax(theta + G)), gradient J(softmax((theta + G)/tau)) g / tau.
    f = make_f(3, 4)
    D, grad = per_row_gradients(FORMULA_THETA, "st-gs", tau, 64, 11, f)
    noise = gk.gumbel_noise((64, 3, 4), dtype=F64, generator=noise_generator(gen(11)))
    perturbed = FORMULA_THETA + noise
    assert torch.equal(D, torch.nn.functional.one_hot(perturbed.argmax(-1), 4).to(F64))
    expected = jvp(torch.softmax(perturbed / tau, -1), grad_at(f, D)) / tau
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tau", [0.3, 1.0, 3.0])
def test_gs_gradient_is_reparameterized(tau):
    # gs draws its noise from the generator of a seed drawn first: with the same noise G,
    # the value is softmax((theta + G)/tau), the gradient d f(softmax((theta + G)/tau)) / d theta.
    f = make_f(3, 4)
    y, grad = per_row_gradients(FORMULA_THETA, "gs", tau, 64, 12, f)
    noise = gk.gumbel_noise((64, 3, 4), dtype=F64, generator=noise_generator(gen(12)))
    leaf = FORMULA_THETA.expand(64, 3, 4).clone().requires_grad_(True)
    ref = torch.softmax((leaf + noise) / tau, -1)
    (ref_grad,) = torch.autograd.grad(f(ref).sum(), leaf)
    torch.testing.assert_close(y, ref.detach(), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    assert (grad[..., 0, 3] == 0).all()  # masked entry: no gradient


@pytest.mark.parametrize("name", [name for name, est in gk.ESTIMATORS.items() if est.pathwise])
def test_masked_logits_give_a_learned_tau_a_finite_gradient(name):
    """-inf logits (masks) with a tensor tau: tau's gradient is finite, eagerly and under
    torch.func.grad (plain division gave NaN there: -inf / tau differentiated in tau is inf,
    times the zero gradient of a masked entry). For gs it is the gradient of the sample over
    the unmasked categories alone, for the same noise."""
    theta = torch.randn(4, 6, generator=gen(60), dtype=F64)
    theta[:, 2] = NEG_INF
    weights = torch.randn(4, 6, generator=gen(61), dtype=F64)

    def loss(tau, generator):
        return (gk.sample(theta, name, tau=tau, generator=generator) * weights).sum()

    tau = torch.full((4, 1), 0.7, dtype=F64, requires_grad=True)
    value = loss(tau, gen(62))
    if not value.requires_grad:  # zgr and reinmax give tau no gradient
        return
    (eager,) = torch.autograd.grad(value, tau)
    transformed = torch.func.grad(lambda t: loss(t, gen(62)))(tau.detach())
    assert torch.isfinite(eager).all() and torch.isfinite(transformed).all()
    if name == "gs":
        noise = gk.gumbel_noise((4, 6), dtype=F64, generator=noise_generator(gen(62)))
        kept = [0, 1, 3, 4, 5]
        leaf = tau.detach().clone().requires_grad_(True)
        ref = torch.softmax((theta[:, kept] + noise[:, kept]) / leaf, -1)
        (expected,) = torch.autograd.grad((ref * weights[:, kept]).sum(), leaf)
        torch.testing.assert_close(eager, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Expected gradients against exact enumeration


ENUM_THETA = torch.tensor([[0.4, -0.3, 0.9], [-0.6, 0.2, 0.0]], dtype=F64)


def enumerate_configurations(theta):
    """All K**L one-hot configurations (N, L, K) and their probabilities (N,)."""
    L, K = theta.shape
    index = gk.exact.configurations(L, K)
    D = torch.nn.functional.one_hot(index, K).to(theta.dtype)
    p = torch.softmax(theta, -1).gather(1, index.T).T.prod(1)
    return D, p


def test_enumeration_matches_exact_expectation():
    # The enumeration used as the reference below: probabilities sum to 1, each configuration
    # appears once, and sum_D p(D) f(D) is gk.exact.expectation.
    f = make_f(2, 3)
    D, p = enumerate_configurations(ENUM_THETA)
    assert D.shape == (9, 2, 3)
    assert len({tuple(d.argmax(-1).tolist()) for d in D}) == 9
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=F64))
    torch.testing.assert_close((p * f(D)).sum(), gk.exact.expectation(f, ENUM_THETA))


@pytest.mark.parametrize("tau", [0.5, 2.0])
@pytest.mark.parametrize("name", list(FORMULAS))
def test_expected_gradient_is_formula_summed_over_configurations(name, tau):
    # E[grad] = sum_D p(D) formula(D) (argmax-st: p is a point mass at the mode). The mean of
    # R = 40,000 independent gradient draws must lie within Z_TOL standard errors of it.
    f = make_f(2, 3)
    D, p = enumerate_configurations(ENUM_THETA)
    if name == "argmax-st":
        mode = torch.nn.functional.one_hot(ENUM_THETA.argmax(-1), 3).to(F64)
        p = (mode == D).all(-1).all(-1).to(F64)
    per_config = FORMULAS[name](ENUM_THETA.expand_as(D), D, grad_at(f, D), tau)
    exact = (p[:, None, None] * per_config).sum(0)
    R = 40_000
    _, grads = per_row_gradients(ENUM_THETA, name, tau, R, 500, f)
    draws = grads.reshape(R, -1)
    assert_mean_close(draws, exact.flatten())
    # power: the standard errors are small next to the gradient (a 5% error would be seen)
    se = draws.std(0) / math.sqrt(R)
    assert (Z_TOL * se <= 0.05 * exact.abs().max()).all()


def test_st_is_biased_on_a_nonlinear_f():
    # The check above can tell formulas apart: st's expected gradient (the formula summed) is not
    # the exact gradient of E[f], by far more than the Monte Carlo tolerance (40,000 draws).
    f = make_f(2, 3)
    D, p = enumerate_configurations(ENUM_THETA)
    st_mean = (p[:, None, None] * st_formula(ENUM_THETA, D, grad_at(f, D), 1.0)).sum(0)
    leaf = ENUM_THETA.clone().requires_grad_(True)
    (true_grad,) = torch.autograd.grad(gk.exact.expectation(f, leaf), leaf)
    _, grads = per_row_gradients(ENUM_THETA, "st", 1.0, 40_000, 501, f)
    se = grads.reshape(40_000, -1).std(0) / 200.0
    assert ((st_mean - true_grad).abs().flatten() > 3 * Z_TOL * se).any()


# --------------------------------------------------------------------------------------------
# Score-function estimators: unbiased


@pytest.mark.parametrize(
    "name,n_samples,options,calls",
    [
        ("reinforce", 1, {}, 2000),
        ("reinforce", 10, {}, 600),
        ("reinforce", 10, {"baseline": 0.8}, 600),
        ("reinforce", 10, {"baseline": torch.tensor(-1.5, dtype=F64)}, 600),
        ("rloo", 2, {}, 1500),
        ("rloo", 4, {}, 1500),
    ],
)
def test_score_function_unbiased(name, n_samples, options, calls):
    # `calls` independent gk.expectation calls with a scalar non-linear f; the mean of their
    # gradients must be within Z_TOL standard errors (estimated from the calls) of the exact
    # gradient (autograd of gk.exact.expectation).
    f = make_f(2, 3, seed=4)
    leaf = ENUM_THETA.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(gk.exact.expectation(f, leaf), leaf)
    g = gen(600 + n_samples)
    draws = torch.empty(calls, 6, dtype=F64)
    for i in range(calls):
        leaf = ENUM_THETA.clone().requires_grad_(True)
        value = gk.expectation(f, leaf, name, n_samples=n_samples, generator=g, **options)
        (grad,) = torch.autograd.grad(value, leaf)
        draws[i] = grad.flatten()
    assert_mean_close(draws, exact.flatten())
    # power: Z_TOL standard errors stay below 30% of the largest exact coordinate
    se = draws.std(0) / math.sqrt(calls)
    assert (Z_TOL * se < 0.3 * exact.abs().max()).all()


def test_rloo_needs_two_samples():
    with pytest.raises(ValueError, match="n_samples"):
        gk.expectation(lambda s: s.sum((1, 2)), ENUM_THETA, "rloo", n_samples=1)


# --------------------------------------------------------------------------------------------
# Gumbel-Rao against straight-through Gumbel-Softmax


@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_gr_same_mean_and_lower_variance_than_st_gs(tau):
    # R = 20,000 independent draws each. Same mean: per coordinate the difference of the means is
    # within Z_TOL * sqrt(SE_gr^2 + SE_stgs^2). Lower variance (Rao-Blackwell: gr with k draws is
    # the mean of k conditionally independent st-gs gradients given D): total variance
    # V = sum_i Var(grad_i), with the standard error of each V estimated from the per-draw squared
    # deviations; st-gs's V must exceed gr's by more than Z_TOL combined standard errors.
    f = make_f(2, 3, seed=2)
    R = 20_000
    _, gr = per_row_gradients(ENUM_THETA, "gr", tau, R, 700, f, k=10)
    _, st = per_row_gradients(ENUM_THETA, "st-gs", tau, R, 701, f)
    gr, st = gr.reshape(R, -1), st.reshape(R, -1)
    se = ((gr.var(0) + st.var(0)) / R).sqrt()
    diff = (gr.mean(0) - st.mean(0)).abs()
    assert (diff <= Z_TOL * se).all(), f"means differ by {diff} with SE {se}"

    def total_variance(x):
        sq = ((x - x.mean(0)) ** 2).sum(1)
        return sq.mean(), sq.std() / math.sqrt(R)

    v_gr, se_gr = total_variance(gr)
    v_st, se_st = total_variance(st)
    assert v_st - v_gr > Z_TOL * math.hypot(se_gr, se_st), (v_gr, v_st, se_gr, se_st)


def test_gr_is_exact_one_hot_and_reproducible():
    logits = torch.randn(30, 5, generator=gen(8))
    a = gk.sample(logits, "gr", 0.5, generator=gen(1), k=3)
    b = gk.sample(logits, "gr", 0.5, generator=gen(1), k=3)
    assert_one_hot(a)
    assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------
# Options and names


def test_estimators_registry_has_the_design_names():
    assert set(gk.ESTIMATORS) == DESIGN_NAMES
    assert len(gk.ESTIMATORS) == 14


@pytest.mark.parametrize("k", [0, -1, 2.5, "3", None, True])
def test_gr_option_k_must_be_a_positive_int(k):
    with pytest.raises(ValueError, match="k"):
        gk.sample(torch.zeros(2, 3), "gr", k=k)


def test_gr_option_k_one_is_accepted():
    s = gk.sample(torch.zeros(2, 3), "gr", k=1, generator=gen(0))
    assert_one_hot(s)


@pytest.mark.parametrize("gap", [0, 0.0, -1.0, float("inf"), float("nan"), "1"])
def test_gst_option_gap_must_be_positive(gap):
    with pytest.raises(ValueError, match="gap"):
        gk.sample(torch.zeros(2, 3), "gst", gap=gap)


@pytest.mark.parametrize(
    "name,option,accepted",
    [("gr", "gap", ["k"]), ("gst", "k", ["gap"]), ("reinforce", "k", ["baseline"]),
     ("st", "k", ["none"]), ("rloo", "baseline", ["none"]), ("zgr", "k", ["none"]),
     ("dst-gs", "tau_f", ["tau_backward", "tau_forward"]),
     ("rebar", "surrogate", ["eta", "temperature"]),
     ("relax", "k", ["eta", "surrogate", "temperature"])],
)
def test_unknown_option_names_accepted_options(name, option, accepted):
    call = (
        (lambda: gk.expectation(lambda s: s.sum((1, 2)), torch.zeros(2, 3), name, n_samples=2,
                                **{option: 1}))
        if name in SCORE
        else (lambda: gk.sample(torch.zeros(2, 3), name, **{option: 1}))
    )
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert repr(option) in message
    for word in accepted:
        assert word in message


@pytest.mark.parametrize("bad", ["gumbel", "ST", "", 3])
def test_unknown_estimator_lists_known_names(bad):
    for call in (
        lambda: gk.sample(torch.zeros(2, 3), bad),
        lambda: gk.expectation(lambda s: s.sum((1, 2)), torch.zeros(2, 3), bad),
    ):
        with pytest.raises(ValueError) as info:
            call()
        for name in DESIGN_NAMES:
            assert repr(name) in str(info.value)


@pytest.mark.parametrize(
    "baseline",
    [float("nan"), float("inf"), -float("inf"), torch.tensor(float("nan")),
     torch.tensor(float("inf"), dtype=F64), torch.tensor([0.0, -float("inf")])],
    ids=["nan", "inf", "-inf", "tensor-nan", "tensor-inf", "tensor-row-inf"],
)
def test_reinforce_non_finite_baseline_raises(baseline):
    # a NaN or inf baseline made the value NaN without a word
    with pytest.raises(ValueError, match="baseline"):
        gk.expectation(lambda s: s[..., 0], torch.zeros(2, 3), "reinforce", n_samples=2,
                       baseline=baseline)


def test_reinforce_tensor_baseline_value_check_follows_set_validation(no_validation):
    # a tensor's values are checked while validation is on (a host sync), skipped when it is off
    def f(s):
        return s.sum((1, 2))

    value = gk.expectation(f, torch.zeros(2, 3), "reinforce", n_samples=2,
                           baseline=torch.tensor(float("nan")))
    assert value.isnan()  # the documented cost of turning validation off
    with pytest.raises(ValueError, match="baseline"):  # a number is checked always: free
        gk.expectation(f, torch.zeros(2, 3), "reinforce", n_samples=2, baseline=float("nan"))


@pytest.mark.parametrize(
    ("baseline", "per_row"),
    [(torch.zeros(3), False), (torch.zeros(3), True), (torch.zeros(2), False),
     (torch.zeros(5, 2), True), (torch.tensor(True), False), (torch.zeros((), dtype=torch.cfloat),
                                                               False)],
    ids=["3-scalar-f", "3-per-row-f", "rows-scalar-f", "too-many-dims", "bool", "complex"],
)
def test_reinforce_bad_tensor_baseline_raises(baseline, per_row):
    def f(s):
        return s[..., 0] if per_row else s[..., 0].sum(1)

    with pytest.raises(ValueError, match="baseline"):
        gk.expectation(f, torch.zeros(2, 3), "reinforce", n_samples=4, baseline=baseline)


def test_reinforce_per_row_baseline():
    # for a per-row f, row l's gradient involves only row l's values and log-probability: a
    # baseline (b_0, b_1) gives row l the gradient of the scalar baseline b_l (same samples)
    logits = torch.tensor([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]], dtype=F64)

    def grad(baseline):
        leaf = logits.clone().requires_grad_(True)
        value = gk.expectation(lambda s: 2.0 * s[..., 0], leaf, "reinforce", n_samples=3,
                               generator=gen(7), baseline=baseline)
        return torch.autograd.grad(value.sum(), leaf)[0]

    both = grad(torch.tensor([0.25, -0.5], dtype=F64))
    torch.testing.assert_close(both[0], grad(0.25)[0], rtol=1e-15, atol=0)
    torch.testing.assert_close(both[1], grad(-0.5)[1], rtol=1e-15, atol=0)
    assert not torch.allclose(both, grad(None))


def test_reinforce_baseline_with_half_precision_values():
    # f16 values minus a baseline of 1e5 overflowed float16 (max 65504) and made the value NaN;
    # the advantages are computed in float32, so the estimate is the float32 one, rounded
    logits = torch.tensor([[0.3, -0.2, 0.5], [1.0, 0.0, -1.0]])

    def estimate(dtype):
        leaf = logits.to(dtype).requires_grad_(True)
        value = gk.expectation(lambda s: s[..., 0].sum(1), leaf, "reinforce", n_samples=4,
                               generator=gen(8), baseline=1e5)
        return value, torch.autograd.grad(value, leaf)[0]

    value, grad = estimate(torch.float16)
    reference_value, reference = estimate(torch.float32)  # the same samples (computed in f32)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    # gradients of size ~1e4 rounded to float16: relative error up to 2**-11 < 1e-3
    torch.testing.assert_close(grad.float(), reference, rtol=1e-3, atol=0)
    torch.testing.assert_close(value.float(), reference_value, rtol=1e-3, atol=0)


@pytest.mark.parametrize("baseline", [1e300, torch.tensor(-1e300, dtype=F64)],
                         ids=["number", "float64-tensor"])
def test_reinforce_baseline_beyond_the_values_dtype_raises(baseline):
    # finite, but values - 1e300 is -inf in float32: a clear error instead of a NaN value
    with pytest.raises(ValueError, match="range of torch.float32"):
        gk.expectation(lambda s: s[..., 0].sum(1), torch.zeros(2, 3), "reinforce", n_samples=2,
                       baseline=baseline)
    # in float64 the same baseline is within range
    value = gk.expectation(lambda s: s[..., 0].sum(1), torch.zeros(2, 3, dtype=F64), "reinforce",
                           n_samples=2, baseline=baseline)
    assert torch.isfinite(value)
