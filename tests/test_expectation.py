"""gk.sample and gk.expectation: the contract of DESIGN.md section 2.

Shapes seen by f and returned, the value (the mean of f over the samples), gradients to f's own
parameters, the score-function surrogate (whole-sample log-probability for a scalar f, each row's
own for a per-row f), input validation, dtypes, dims, empty tensors, schedules, and gradcheck of
the differentiable paths. Statistical tolerances come from tests/stats.py (Z_TOL standard errors).
"""

from __future__ import annotations

import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit.kernels import noise_generator

from .stats import Z_TOL, assert_law, assert_mean_close, gen

F64 = torch.float64
NEG_INF = float("-inf")
ALL = list(gk.ESTIMATORS)
SCORE = [name for name, est in gk.ESTIMATORS.items() if not est.pathwise]
PATHWISE = [name for name in ALL if name not in SCORE]
HARD = [name for name in PATHWISE if gk.ESTIMATORS[name].forward != "soft"]
SOFT = [name for name in ALL if gk.ESTIMATORS[name].forward == "soft"]
# These evaluate f at relaxed samples too (their control variate), after the one-hot samples.
CONTROL_VARIATE = ["rebar", "relax"]


pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny operations


def recorder(f0):
    """f0 wrapped to record (detached copies of) the samples it receives."""
    seen = []

    def f(s):
        seen.append(s.detach().clone())
        return f0(s)

    return f, seen


def first_call(name, seen):
    """The samples of f's first call: its only call, but for the control-variate estimators."""
    assert len(seen) == 1 or name in CONTROL_VARIATE
    return seen[0]


def assert_one_hot(s: torch.Tensor, dim: int = -1) -> None:
    assert ((s == 0) | (s == 1)).all()
    assert (s.sum(dim) == 1).all()


LOGITS = torch.tensor([[0.5, -1.0, 0.2, 1.1], [NEG_INF, 0.3, -0.3, 0.0], [2.0, 1.0, 0.0, -1.0]])
WEIGHTS = torch.tensor([0.7, -1.3, 2.1, 0.4])


def scalar_f(s):
    return ((s @ WEIGHTS.to(s.dtype)) ** 2).sum(-1)


def per_row_f(s):
    return (s @ WEIGHTS.to(s.dtype) - 0.5) ** 2


# --------------------------------------------------------------------------------------------
# Shapes


@pytest.mark.parametrize("name", ALL)
def test_f_receives_samples_with_a_leading_sample_dimension(name):
    seen = []

    def f(s):
        seen.append(s)
        return s.sum((1, 2))

    value = gk.expectation(f, LOGITS, name, n_samples=5, generator=gen(0))
    assert seen[0].shape == (5, 3, 4)
    assert seen[0].dtype == LOGITS.dtype
    assert value.shape == ()


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ALL)
def test_f_receives_3d_samples_along_dim(name, dim):
    logits = torch.randn(2, 3, 4, generator=gen(1))
    seen = []

    def f(s):
        seen.append(s.detach())
        return s.flatten(1).sum(1)

    value = gk.expectation(f, logits, name, n_samples=4, dim=dim, generator=gen(2))
    s = first_call(name, seen)
    assert s.shape == (4, 2, 3, 4)
    torch.testing.assert_close(s.sum(dim % 3 + 1), torch.ones(4, *[d for i, d in enumerate(
        logits.shape) if i != dim % 3]))
    if name not in SOFT:
        assert_one_hot(s, dim % 3 + 1)
    assert value.shape == ()


@pytest.mark.parametrize("name", ALL)
def test_per_row_f_gives_one_value_per_row(name):
    value = gk.expectation(per_row_f, LOGITS, name, n_samples=3, generator=gen(3))
    assert value.shape == (3,)


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.sum((1, 2)).unsqueeze(1),  # (n, 1)
        lambda s: s.sum(2).repeat(1, 2),  # (n, 2B)
        lambda s: s.sum(),  # scalar
        lambda s: s.sum(-1, keepdim=True),  # (n, B, 1)
        lambda s: s.sum((0, 2)),  # (B,) without the sample dimension
        lambda s: s.sum((1, 2)).tolist(),  # not a tensor
    ],
)
@pytest.mark.parametrize("name", ALL)
def test_wrong_return_shape_raises(name, bad):
    with pytest.raises(ValueError, match="n_samples"):
        gk.expectation(bad, LOGITS, name, n_samples=2, generator=gen(4))


@pytest.mark.parametrize("name", ALL)
def test_one_dimensional_logits(name):
    # A single categorical (logits of shape (K,)): scalar f, result a scalar, gradient (K,).
    logits = LOGITS[0].clone().requires_grad_(True)
    value = gk.expectation(lambda s: (s @ WEIGHTS) ** 2, logits, name, n_samples=3,
                           generator=gen(5))
    assert value.shape == ()
    value.backward()
    assert logits.grad.shape == (4,)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "2", None])
@pytest.mark.parametrize("name", ["st-gs", "reinforce"])
def test_n_samples_validation(name, n):
    with pytest.raises(ValueError, match="n_samples"):
        gk.expectation(scalar_f, LOGITS, name, n_samples=n)


# --------------------------------------------------------------------------------------------
# The value


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("name", ALL)
def test_value_is_the_mean_of_f_over_the_samples(name, per_row):
    f0 = per_row_f if per_row else scalar_f
    logits = LOGITS.double()
    f, seen = recorder(f0)
    value = gk.expectation(f, logits, name, n_samples=6, tau=0.7, generator=gen(6))
    s = first_call(name, seen)
    if name in HARD or name in SCORE:
        assert_one_hot(s)
    if name == "softmax":
        torch.testing.assert_close(s, torch.softmax(logits / 0.7, -1).expand_as(s))
    if name == "argmax-st":
        assert torch.equal(s.argmax(-1), logits.argmax(-1).expand(6, 3))
    torch.testing.assert_close(value, f0(s).mean(0), rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------
# Gradients to f's own parameters


@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("name", ALL)
def test_gradient_flows_to_f_parameters(name, per_row):
    # The gradient to f's parameters is the pathwise gradient of mean_s f(c_s), the samples held
    # fixed, for every estimator (score-function ones included).
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 1, dtype=F64)
    seen = []

    def f(s):
        seen.append(s.detach().clone())
        out = torch.tanh(layer(s).squeeze(-1))  # (n, B)
        return out if per_row else out.sum(-1)

    logits = LOGITS.double().requires_grad_(True)
    value = gk.expectation(f, logits, name, n_samples=4, generator=gen(7))
    value.sum().backward()
    got = [p.grad.clone() for p in layer.parameters()]
    assert all(g.abs().sum() > 0 for g in got)
    layer.zero_grad()
    f(seen[0]).mean(0).sum().backward()
    for g, ref in zip(got, (p.grad for p in layer.parameters()), strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------------------------
# Score-function surrogate: whole-sample log-probability (scalar f), own row's (per-row f)


def score(samples, logits):
    """d log p(c) / d logits per row for one-hot samples: D - softmax(logits)."""
    return samples - torch.softmax(logits, -1)


@pytest.mark.parametrize("n", [1, 3])
def test_reinforce_gradient_formula_scalar_f(n):
    # reinforce, scalar f: grad = mean_s (f(c_s) - b) * sum_rows (D_s - softmax(theta)), i.e. the
    # log-probability of the whole sample; checked per call, exactly (float64 rounding).
    logits = LOGITS.double()
    for baseline in (None, 0.4):
        for seed in range(5):
            f, seen = recorder(scalar_f)
            leaf = logits.clone().requires_grad_(True)
            opts = {} if baseline is None else {"baseline": baseline}
            value = gk.expectation(f, leaf, "reinforce", n_samples=n, generator=gen(seed),
                                   **opts)
            (grad,) = torch.autograd.grad(value, leaf)
            s = seen[0]
            adv = scalar_f(s) - (baseline or 0.0)
            expected = (adv[:, None, None] * score(s, logits)).mean(0)
            torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [2, 5])
def test_rloo_gradient_formula_scalar_f(n):
    # rloo: grad = (1/n) sum_s (f_s - mean_{t != s} f_t) * score(c_s).
    logits = LOGITS.double()
    for seed in range(5):
        f, seen = recorder(scalar_f)
        leaf = logits.clone().requires_grad_(True)
        value = gk.expectation(f, leaf, "rloo", n_samples=n, generator=gen(seed))
        (grad,) = torch.autograd.grad(value, leaf)
        s = seen[0]
        v = scalar_f(s)
        adv = v - (v.sum() - v) / (n - 1)
        expected = (adv[:, None, None] * score(s, logits)).mean(0)
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["reinforce", "rloo"])
def test_per_row_f_uses_each_rows_own_log_probability(name):
    # Per-row f: result[b] depends on row b only, so its gradient to every other row of logits is
    # exactly 0 (it would not be with the whole sample's log-probability), and its gradient to row
    # b is mean_s A_sb * (D_sb - softmax(theta_b)).
    logits = LOGITS.double()
    n = 4
    for seed in range(3):
        f, seen = recorder(per_row_f)
        leaf = logits.clone().requires_grad_(True)
        value = gk.expectation(f, leaf, name, n_samples=n, generator=gen(seed))
        s = seen[0]
        v = per_row_f(s)  # (n, B)
        adv = v if name == "reinforce" else v - (v.sum(0) - v) / (n - 1)
        expected = (adv[:, :, None] * score(s, logits)).mean(0)
        for b in range(3):
            (grad,) = torch.autograd.grad(value[b], leaf, retain_graph=True)
            others = [r for r in range(3) if r != b]
            assert (grad[others] == 0).all()
            torch.testing.assert_close(grad[b], expected[b], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,n", [("reinforce", 1), ("rloo", 4)])
def test_per_row_score_function_gradient_unbiased(name, n):
    # Per-row f on logits (2, 3) (one entry masked): the exact reference is the gradient of the
    # sum of gk.exact.expectation with the same per-row f (result (2,)). Monte Carlo: the two rows
    # repeated R = 20,000 times as logits (2R, 3) in one call; with each row's own
    # log-probability the R gradient copies are independent draws of the (2, 3) problem's
    # estimator. Mean within Z_TOL standard errors.
    theta = torch.tensor([[0.4, -0.3, 0.9], [-0.6, 0.2, NEG_INF]], dtype=F64)
    t = torch.tensor([0.3, -0.8], dtype=F64)
    u = torch.tensor([1.0, -2.0, 0.5], dtype=F64)

    def f(s):  # (N, B, 3) -> (N, B), row b depends only on row b (rows alternate 0, 1)
        return torch.sin(s @ u + t.repeat(s.shape[1] // 2)) + 0.5 * (s @ u) ** 2

    leaf = theta.clone().requires_grad_(True)
    exact_value = gk.exact.expectation(f, leaf)
    assert exact_value.shape == (2,)
    (exact,) = torch.autograd.grad(exact_value.sum(), leaf)
    R = 20_000
    leaf = theta.repeat(R, 1).requires_grad_(True)
    value = gk.expectation(f, leaf, name, n_samples=n, generator=gen(800))
    assert value.shape == (2 * R,)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    draws = grad.reshape(R, 6)
    assert_mean_close(draws, exact.flatten())
    se = draws.std(0) / math.sqrt(R)
    assert (Z_TOL * se < 0.1 * exact.abs().max()).all()  # power: a 10% error would be seen


@pytest.mark.parametrize("name", ["reinforce", "st-gs"])
def test_per_row_f_with_categories_along_dim0_is_rejected(name):
    """With dim=0 the first dimension holds categories, not rows: every estimator says so."""
    with pytest.raises(ValueError, match="per sample and row"):
        gk.expectation(lambda s: s.sum(2), LOGITS.T.contiguous(), name, n_samples=2, dim=0)


# --------------------------------------------------------------------------------------------
# gk.sample


@pytest.mark.parametrize("name", SCORE)
def test_sample_with_score_function_points_to_expectation(name):
    with pytest.raises(ValueError, match=r"gk\.expectation"):
        gk.sample(LOGITS, name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", PATHWISE)
def test_half_precision_samples_keep_their_dtype(name, dtype):
    logits = LOGITS.to(dtype).requires_grad_(True)
    s = gk.sample(logits, name, 0.5, generator=gen(9))
    assert s.dtype == dtype
    if name in HARD:
        assert_one_hot(s)
    (s * WEIGHTS.to(dtype)).sum().backward()
    assert logits.grad.dtype == dtype
    assert torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_computed_in_float32(dtype):
    # gs and st-gs on half logits equal the float32 computation with float32 noise, then rounded.
    logits = torch.randn(50, 6, generator=gen(10)).to(dtype)
    x = logits.float()
    noise = gk.gumbel_noise(x.shape, dtype=torch.float32, generator=noise_generator(gen(11)))
    expected = torch.softmax((x - x.amax(-1, keepdim=True) + noise) / 0.3, -1)
    assert torch.equal(gk.sample(logits, "gs", 0.3, generator=gen(11)), expected.to(dtype))
    hard = gk.sample(logits, "st-gs", 0.3, generator=gen(11))
    assert torch.equal(hard.argmax(-1), (x + noise).argmax(-1))
    assert torch.equal(gk.sample(logits, "softmax", 0.3),
                       torch.softmax(x / 0.3, -1).to(dtype))
    seen = []
    gk.expectation(lambda s: seen.append(s) or s.float().sum((1, 2)), logits, "reinforce",
                   n_samples=2, generator=gen(12))
    assert seen[0].dtype == dtype


@pytest.mark.parametrize("name", PATHWISE)
def test_float64_stays_float64(name):
    logits = LOGITS.double().requires_grad_(True)
    s = gk.sample(logits, name, 0.5, generator=gen(13))
    assert s.dtype == F64
    (s * WEIGHTS.double()).sum().backward()
    assert logits.grad.dtype == F64


def test_float64_gs_uses_float64_noise():
    logits = LOGITS.double()
    noise = gk.gumbel_noise(logits.shape, dtype=F64, generator=noise_generator(gen(14)))
    torch.testing.assert_close(gk.sample(logits, "gs", 0.5, generator=gen(14)),
                               torch.softmax((logits + noise) / 0.5, -1), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", HARD)
def test_sample_along_dim0_of_3d_logits_follows_softmax(name):
    # Categories along dim 0 of a (4, 2, 5000) tensor (two rows x 5,000 repeats): one-hot along
    # dim 0; chi-square per row against softmax along dim 0, at ALPHA.
    base = torch.tensor([[0.3, 1.0], [-0.5, NEG_INF], [1.2, 0.0], [0.0, 0.4]])
    logits = base.unsqueeze(-1).expand(4, 2, 5000)
    s = gk.sample(logits, name, 0.5, dim=0, generator=gen(15))
    assert s.shape == logits.shape
    assert_one_hot(s, 0)
    probs = torch.softmax(base, 0)
    for row in range(2):
        if name == "argmax-st":
            assert (s[:, row].argmax(0) == base[:, row].argmax()).all()
        else:
            assert_law(s[:, row].sum(-1), probs[:, row])


@pytest.mark.parametrize("name", PATHWISE)
def test_sample_along_middle_dim(name):
    logits = torch.randn(2, 5, 3, generator=gen(16))
    s = gk.sample(logits, name, 1.0, dim=1, generator=gen(17))
    assert s.shape == (2, 5, 3)
    torch.testing.assert_close(s.sum(1), torch.ones(2, 3))
    same = gk.sample(logits, name, 1.0, dim=-2, generator=gen(17))
    assert torch.equal(s, same)


@pytest.mark.parametrize("name", PATHWISE)
def test_empty_logits_give_empty_samples(name):
    for shape in [(0, 4), (2, 0, 3)]:
        logits = torch.empty(shape, requires_grad=True)
        s = gk.sample(logits, name, generator=gen(18))
        assert s.shape == shape


@pytest.mark.parametrize("name", ALL)
def test_empty_logits_in_expectation(name):
    logits = torch.empty(0, 4, requires_grad=True)
    value = gk.expectation(lambda s: s.sum(2), logits, name, n_samples=2, generator=gen(19))
    assert value.shape == (0,)
    value = gk.expectation(lambda s: s.sum((1, 2)), logits, name, n_samples=2, generator=gen(19))
    assert value.shape == () and value.item() == 0
    value.backward()
    assert logits.grad.shape == (0, 4)


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("tau", [0, 0.0, -1.0, float("inf"), float("nan")])
@pytest.mark.parametrize("name", ["st-gs", "gr", "reinforce", "zgr", "dst-gs", "rebar"])
def test_bad_tau_raises_value_error(name, tau):
    with pytest.raises(ValueError, match="tau"):
        gk.expectation(scalar_f, LOGITS, name, n_samples=2, tau=tau)
    if name not in SCORE:
        with pytest.raises(ValueError, match="tau"):
            gk.sample(LOGITS, name, tau)


@pytest.mark.parametrize("tau", ["1", None, True])
def test_non_numeric_tau_raises_type_error(tau):
    with pytest.raises(TypeError, match="tau"):
        gk.sample(LOGITS, "st-gs", tau)


BAD_LOGITS = {
    "nan": torch.tensor([[0.0, float("nan"), 1.0]]),
    "posinf": torch.tensor([[0.0, float("inf"), 1.0]]),
    "all-masked": torch.tensor([[0.0, 1.0, 2.0], [NEG_INF, NEG_INF, NEG_INF]]),
}


@pytest.mark.parametrize("kind", list(BAD_LOGITS))
@pytest.mark.parametrize("name", ["st", "gs", "rloo", "zgr", "dst-gs", "relax"])
def test_bad_logits_raise_while_validation_is_on(name, kind):
    logits = BAD_LOGITS[kind]
    with pytest.raises(ValueError, match="logits"):
        gk.expectation(lambda s: s.sum((1, 2)), logits, name, n_samples=2)
    if name not in SCORE:
        with pytest.raises(ValueError, match="logits"):
            gk.sample(logits, name)


def test_validation_can_be_turned_off():
    assert gk.validation_enabled()
    gk.set_validation(False)
    try:
        gk.sample(BAD_LOGITS["nan"], "st-gs", generator=gen(0))  # no value check, no error
    finally:
        gk.set_validation(True)
    with pytest.raises(ValueError):
        gk.sample(BAD_LOGITS["nan"], "st-gs")


@pytest.mark.parametrize("name", ["st-gs", "reinforce"])
def test_type_and_dim_errors(name):
    def call(logits, dim=-1):
        return gk.expectation(lambda s: s.flatten(1).sum(1), logits, name, n_samples=2, dim=dim)

    with pytest.raises(TypeError):
        call(torch.tensor([[1, 2, 3]]))
    with pytest.raises(TypeError):
        call([[0.0, 1.0]])
    with pytest.raises(IndexError):
        call(LOGITS, dim=2)
    with pytest.raises(IndexError):
        call(LOGITS, dim=-3)
    with pytest.raises(IndexError):
        call(torch.tensor(1.0))


# --------------------------------------------------------------------------------------------
# Schedules as tau


@pytest.mark.parametrize("name", ["softmax", "gs", "st-gs", "gr", "reinmax", "dst-gs"])
def test_schedule_is_accepted_as_tau(name):
    logits = LOGITS.double().requires_grad_(True)

    def grad_of(tau):
        s = gk.sample(logits, name, tau, generator=gen(20))
        (g,) = torch.autograd.grad((s * WEIGHTS.double()).sum() ** 2, logits)
        return s, g

    s_ref, g_ref = grad_of(0.5)
    s, g = grad_of(gk.schedules.Constant(0.5))
    assert torch.equal(s, s_ref) and torch.equal(g, g_ref)
    schedule = gk.schedules.Exponential(2.0, 0.3, tau_min=0.1)
    schedule.step()
    schedule.step()
    s, g = grad_of(schedule)
    s_at, g_at = grad_of(2.0 * math.exp(-0.6))
    torch.testing.assert_close(s, s_at, rtol=1e-14, atol=0)
    torch.testing.assert_close(g, g_at, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(g, g_ref)  # the temperature actually matters here


def test_schedule_is_accepted_by_expectation():
    a = gk.expectation(scalar_f, LOGITS, "gs", n_samples=4, tau=gk.schedules.Constant(0.5),
                       generator=gen(21))
    b = gk.expectation(scalar_f, LOGITS, "gs", n_samples=4, tau=0.5, generator=gen(21))
    assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------
# gradcheck (float64) of the differentiable paths, noise fixed


GC_LOGITS = torch.tensor([[0.4, -0.3, 0.9], [-0.6, 0.2, 0.0]], dtype=F64)


def test_gradcheck_exact_expectation():
    u = torch.tensor([1.0, -2.0, 0.5], dtype=F64)

    def scalar(s):
        return torch.tanh(s.flatten(1) @ torch.arange(6, dtype=F64)) + (s @ u).prod(-1)

    def per_row(s):
        return torch.sin(s @ u) * (s @ u)

    x = GC_LOGITS.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: gk.exact.expectation(scalar, t), (x,))
    assert torch.autograd.gradcheck(lambda t: gk.exact.expectation(per_row, t), (x,))


@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_gradcheck_softmax_estimator(tau):
    x = GC_LOGITS.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: gk.sample(t, "softmax", tau), (x,))
    assert torch.autograd.gradcheck(
        lambda t: gk.expectation(lambda s: torch.sin(s.flatten(1) * 3).sum(1), t, "softmax",
                                 n_samples=2, tau=tau), (x,))


@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_gradcheck_gs_with_fixed_noise(tau):
    # The generator is re-seeded inside the function, so every evaluation uses the same noise and
    # the function is a smooth function of the logits.
    x = GC_LOGITS.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: gk.sample(t, "gs", tau, generator=gen(22)), (x,))
    assert torch.autograd.gradcheck(
        lambda t: gk.expectation(lambda s: (s.flatten(1) ** 2).sum(1), t, "gs", n_samples=3,
                                 tau=tau, generator=gen(23)), (x,))
