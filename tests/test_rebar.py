"""REBAR and RELAX (estimators/rebar.py) and gk.variance_step.

- the conditional perturbation z~ | b: the values of gk.conditional_gumbel, and a gradient that
  passes gradcheck in float64 (noise fixed by re-seeding);
- unbiased for f that are not differentiable, within Monte Carlo error: a per-row f on logits
  repeated R times in one call gives R independent draws of the (2, 3) problem's estimator (each
  row uses its own log-probability and its own control variate); the mean must lie within Z_TOL
  standard errors of the exact gradient (tests/stats.py), with the power to see a 10% error;
- the variance-minimising step lowers the measured variance (fixed seeds, stated margin).
"""

from __future__ import annotations

import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit.estimators.rebar import conditional_perturbation

from .stats import Z_TOL, assert_mean_close, gen
from .test_estimators import F64, NEG_INF, assert_one_hot

pytestmark = pytest.mark.usefixtures("one_thread")

THETA = torch.tensor([[0.4, -0.3, 0.9], [-0.6, 0.2, NEG_INF]], dtype=F64)
U = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
T = torch.tensor([0.3, -0.8], dtype=F64)
R = 20_000


def kink_f(s):
    """Per-row |2 <s, u> + t_row - 0.4|: continuous, not differentiable at its kink (rows of the
    repeated logits alternate between the two rows of THETA)."""
    return (2 * (s @ U) + T.repeat(s.shape[1] // 2) - 0.4).abs()


def step_f(s):
    """Per-row floor(2 <s, u> + t_row): piecewise constant, a black box to the gradient."""
    return torch.floor(2 * (s @ U) + T.repeat(s.shape[1] // 2))


def exact_gradient(f):
    leaf = THETA.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gk.exact.expectation(f, leaf).sum(), leaf)
    return grad.flatten()


def draws(f, name, seed, rows=R, **options):
    """``rows`` independent gradient draws (rows, 6) of the (2, 3) problem, in one call."""
    leaf = THETA.repeat(rows, 1).requires_grad_(True)
    value = gk.expectation(f, leaf, name, tau=0.5, generator=gen(seed), **options)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return grad.reshape(rows, 6)


def surrogate_net(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16, dtype=F64), torch.nn.Tanh(),
                              torch.nn.Linear(16, 1, dtype=F64))
    return net, (lambda z: net(torch.softmax(z, -1)).squeeze(-1))


def total_variance(d):
    """sum_i Var(d_i) and its standard error (from the per-draw squared deviations)."""
    sq = ((d - d.mean(0)) ** 2).sum(1)
    return float(sq.mean()), float(sq.std() / math.sqrt(len(sq)))


# --------------------------------------------------------------------------------------------
# The conditional perturbation


def test_conditional_perturbation_values_are_conditional_gumbel():
    theta = torch.randn(5, 4, generator=gen(1), dtype=F64)
    index = torch.tensor([0, 3, 1, 1, 2])
    z = conditional_perturbation(theta, index, 1, gen(2))
    ref = gk.conditional_gumbel(theta, index, 1, 1, generator=gen(2))[0]
    torch.testing.assert_close(z.detach(), ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(z.argmax(1), index)


def test_conditional_perturbation_gradcheck():
    # With the generator re-seeded on every evaluation the Gumbels are fixed, so z~ is a smooth
    # function of theta and its autograd gradient must match finite differences (float64).
    theta = torch.randn(3, 4, generator=gen(3), dtype=F64).requires_grad_(True)
    index = torch.tensor([2, 0, 3])
    assert torch.autograd.gradcheck(lambda t: conditional_perturbation(t, index, 1, gen(4)),
                                    (theta,))


def test_conditional_perturbation_with_masks():
    theta = THETA.clone().requires_grad_(True)
    z = conditional_perturbation(theta, torch.tensor([2, 0]), 1, gen(5))
    assert z[1, 2] == NEG_INF and torch.isfinite(z[0]).all()
    (grad,) = torch.autograd.grad(torch.softmax(z, 1)[:, 0].sum(), theta)
    assert torch.isfinite(grad).all() and grad[1, 2] == 0


# --------------------------------------------------------------------------------------------
# Unbiased for f that are not differentiable


@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_unbiased_for_a_continuous_f_with_a_kink(name):
    # rebar, and relax with a (fixed, untrained) surrogate on top of rebar's control variate.
    options = {"surrogate": surrogate_net()[1]} if name == "relax" else {}
    d = draws(kink_f, name, 10, **options)
    exact = exact_gradient(kink_f)
    assert_mean_close(d, exact)
    se = d.std(0) / math.sqrt(R)
    assert (Z_TOL * se < 0.1 * exact.abs().max()).all()  # power: a 10% error would be seen


def test_relax_is_unbiased_for_a_black_box_step_f():
    # eta = 0: f is only ever evaluated at one-hot samples (asserted), the learned surrogate alone
    # is the control variate.
    seen = []

    def black_box(s):
        seen.append(s.detach())
        return step_f(s)

    d = draws(black_box, "relax", 11, eta=0.0, surrogate=surrogate_net()[1])
    assert len(seen) == 1
    assert_one_hot(seen[0])
    exact = exact_gradient(step_f)
    assert_mean_close(d, exact)
    assert (Z_TOL * d.std(0) / math.sqrt(R) < 0.1 * exact.abs().max()).all()


def test_rebar_needs_a_continuous_relaxation():
    # The documented limit: rebar's reparameterized terms differentiate f(softmax(z / lambda)),
    # which for a step f has gradient 0 where it exists, so it is biased there (far beyond 3 Z_TOL
    # standard errors); relax with eta = 0 (above) is the estimator for such f.
    d = draws(step_f, "rebar", 12)
    se = d.std(0) / math.sqrt(R)
    assert ((d.mean(0) - exact_gradient(step_f)).abs() > 3 * Z_TOL * se).any()


def test_rebar_unbiased_for_a_scalar_f_coupling_the_rows():
    # A scalar f (whole-sample log-probability): 1,000 independent calls with n_samples = 4.
    A = torch.randn(6, 4, generator=gen(13), dtype=F64)

    def f(s):
        return (torch.tanh(s.flatten(1) @ A).sum(1) - 0.3).abs()

    leaf = THETA.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(gk.exact.expectation(f, leaf), leaf)
    g = gen(14)
    calls = 1000
    out = torch.empty(calls, 6, dtype=F64)
    for i in range(calls):
        leaf = THETA.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(gk.expectation(f, leaf, "rebar", 4, 0.5, generator=g),
                                      leaf)
        out[i] = grad.flatten()
    assert_mean_close(out, exact.flatten())
    assert (Z_TOL * out.std(0) / math.sqrt(calls) < 0.3 * exact.abs().max()).all()


@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_per_row_f_gets_each_rows_own_gradient(name):
    # result[b] depends on row b only: its gradient to every other row of logits is exactly 0.
    leaf = THETA.repeat(3, 1).requires_grad_(True)
    value = gk.expectation(kink_f, leaf, name, n_samples=3, generator=gen(15))
    for b in range(6):
        (grad,) = torch.autograd.grad(value[b], leaf, retain_graph=True)
        assert (grad[[r for r in range(6) if r != b]] == 0).all()
        assert grad[b].abs().sum() > 0


def test_relax_without_surrogate_is_rebar():
    a, b = draws(kink_f, "relax", 16, rows=50), draws(kink_f, "rebar", 16, rows=50)
    assert torch.equal(a, b)


def test_control_variate_parameters_get_no_gradient_from_the_estimate():
    # Only the logits get the estimator's gradient; eta, the temperature and the surrogate's
    # parameters are tuned by gk.variance_step, not by the objective.
    eta = torch.tensor(0.7, dtype=F64, requires_grad=True)
    log_temperature = torch.tensor(-0.5, dtype=F64, requires_grad=True)
    net, surrogate = surrogate_net()
    leaf = THETA.repeat(4, 1).requires_grad_(True)
    value = gk.expectation(kink_f, leaf, "relax", 2, generator=gen(17), eta=eta,
                           temperature=log_temperature.exp(), surrogate=surrogate)
    value.sum().backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0
    for p in (eta, log_temperature, *net.parameters()):
        assert p.grad is None or (p.grad == 0).all()


# --------------------------------------------------------------------------------------------
# gk.variance_step


def test_variance_step_lowers_rebars_variance():
    # 100 Adam steps on (eta, log temperature) from (1, log 0.5), each on 64 rows (64 independent
    # single-sample estimates of d Var / d phi, summed). Measured on 20,000 draws with the same
    # seed before and after: the variance must fall by at least 25%, and by more than Z_TOL
    # combined standard errors.
    eta = torch.tensor(1.0, dtype=F64, requires_grad=True)
    log_temperature = torch.tensor(math.log(0.5), dtype=F64, requires_grad=True)

    def measure():
        return total_variance(draws(kink_f, "rebar", 20, eta=eta.detach(),
                                    temperature=log_temperature.detach().exp()))

    before, se_before = measure()
    tuner = torch.optim.Adam([eta, log_temperature], lr=0.05)
    g = gen(21)
    for _ in range(100):
        leaf = THETA.repeat(64, 1).requires_grad_(True)
        step = gk.variance_step(kink_f, leaf, tuner, "rebar", generator=g, eta=eta,
                                temperature=log_temperature.exp())
    assert step.gradient.shape == leaf.shape and step.value.shape == (128,)
    after, se_after = measure()
    assert after < 0.75 * before, (before, after)
    assert before - after > Z_TOL * math.hypot(se_before, se_after)


def test_variance_step_lowers_relaxs_variance_with_a_learned_surrogate():
    # The black-box step f, eta = 0: 150 Adam steps (lr 0.01) on the surrogate network's
    # parameters, 64 rows each. The variance must fall by at least 15% and by more than Z_TOL
    # combined standard errors.
    net, surrogate = surrogate_net()

    def measure():
        with torch.no_grad():
            params = [p.clone() for p in net.parameters()]
        result = total_variance(draws(step_f, "relax", 22, eta=0.0, surrogate=surrogate))
        assert all(torch.equal(p, q) for p, q in zip(params, net.parameters(), strict=True))
        return result

    before, se_before = measure()
    tuner = torch.optim.Adam(net.parameters(), lr=0.01)
    g = gen(23)
    for _ in range(150):
        leaf = THETA.repeat(64, 1).requires_grad_(True)
        gk.variance_step(step_f, leaf, tuner, "relax", generator=g, eta=0.0, surrogate=surrogate)
    after, se_after = measure()
    assert after < 0.85 * before, (before, after)
    assert before - after > Z_TOL * math.hypot(se_before, se_after)


def test_variance_step_bad_input():
    eta = torch.tensor(1.0, dtype=F64, requires_grad=True)
    tuner = torch.optim.SGD([eta], lr=0.1)
    leaf = THETA.clone().requires_grad_(True)
    with pytest.raises(ValueError, match="control-variate"):
        gk.variance_step(kink_f, leaf, tuner, "st-gs")
    with pytest.raises(ValueError, match="require grad"):
        gk.variance_step(kink_f, THETA, tuner, "rebar", eta=eta)
    with pytest.raises(ValueError, match="not the logits"):
        gk.variance_step(kink_f, leaf, torch.optim.SGD([leaf, eta], lr=0.1), "rebar", eta=eta)
    with pytest.raises(ValueError, match="pass them as options"):
        gk.variance_step(kink_f, leaf, tuner, "rebar")  # eta not given: nothing to tune


@pytest.mark.parametrize(
    "options,match",
    [({"eta": float("nan")}, "eta"), ({"eta": "1"}, "eta"), ({"temperature": 0.0}, "temperature"),
     ({"temperature": torch.tensor(-1.0)}, "temperature"), ({"surrogate": 3}, "surrogate"),
     ({"surrogate": lambda z: z.sum((1, 2))}, "shape f returns")],
)
def test_relax_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        gk.expectation(kink_f, THETA, "relax", 2, generator=gen(0), **options)


def test_rebar_takes_no_surrogate():
    with pytest.raises(ValueError, match="surrogate"):
        gk.expectation(kink_f, THETA, "rebar", 2, surrogate=surrogate_net()[1])
