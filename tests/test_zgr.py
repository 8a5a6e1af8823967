"""ZGR (Shekhovtsov 2023): exactly unbiased for quadratic f, its formula for other f, no tau.

The expected gradient is computed exactly, not by Monte Carlo: ZGR's gradient is a function of the
sample D only, so the gradient the implementation returns for each configuration D is read off
rows that drew D, and E[g_hat] = sum_D p(D) g_hat(D) is summed in float64 over all K**L
configurations. The per-sample formula itself is checked in tests/test_estimators.py (FORMULAS).
"""

from __future__ import annotations

import pytest
import torch

import gumbelkit as gk

from .stats import gen
from .test_estimators import (
    ENUM_THETA,
    F64,
    enumerate_configurations,
    grad_at,
    make_f,
    per_row_gradients,
    zgr_formula,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def gradient_per_configuration(theta, f, rows=4000, seed=0):
    """g_hat(D) for every configuration D (N, L, K), from rows of one sample that drew it; every
    row that drew the same D must have the same gradient (ZGR is a function of D)."""
    D, p = enumerate_configurations(theta)
    samples, grads = per_row_gradients(theta, "zgr", 1.0, rows, seed, f)
    out = torch.empty_like(D)
    for i, config in enumerate(D):
        drew = (samples == config).all(-1).all(-1)
        assert drew.any(), f"no row drew configuration {i}; use more rows"
        out[i] = grads[drew][0]
        torch.testing.assert_close(grads[drew], out[i].expand_as(grads[drew]), rtol=0, atol=1e-15)
    return D, p, out


def exact_gradient(f, theta):
    leaf = theta.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gk.exact.expectation(f, leaf), leaf)
    return grad


def quadratic_f(seed):
    """f(y) = y^T A y + b^T y over the flattened (L, K) sample: couples the rows, any A."""
    g = gen(seed)
    A = torch.randn(6, 6, generator=g, dtype=F64)
    b = torch.randn(6, generator=g, dtype=F64)

    def f(y):
        y = y.flatten(-2)
        return ((y @ A) * y).sum(-1) + y @ b

    return f


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zgr_is_exactly_unbiased_for_quadratic_f(seed):
    # sum_D p(D) g_hat(D) is the exact gradient of E[f] up to float64 rounding (rtol 1e-10):
    # the claim of Shekhovtsov (2023), with a random A coupling both categoricals.
    f = quadratic_f(seed)
    _, p, grads = gradient_per_configuration(ENUM_THETA, f, seed=seed)
    expected = (p[:, None, None] * grads).sum(0)
    torch.testing.assert_close(expected, exact_gradient(f, ENUM_THETA), rtol=1e-10, atol=1e-12)


def test_zgr_is_biased_for_a_non_quadratic_f_and_equals_its_formula_summed():
    # The test above can fail: for the non-linear f of tests/test_estimators.py the exact sum of
    # g_hat(D) is the paper's formula summed over configurations (rtol 1e-10), and differs from
    # the exact gradient by more than 1e-3 in some coordinate.
    f = make_f(2, 3)
    D, p, grads = gradient_per_configuration(ENUM_THETA, f, seed=3)
    expected = (p[:, None, None] * grads).sum(0)
    formula = (p[:, None, None] * zgr_formula(ENUM_THETA.expand_as(D), D, grad_at(f, D), 1.0)
               ).sum(0)
    torch.testing.assert_close(expected, formula, rtol=1e-10, atol=1e-12)
    assert (expected - exact_gradient(f, ENUM_THETA)).abs().max() > 1e-3


def test_zgr_does_not_use_tau():
    f = make_f(2, 3)
    ref = per_row_gradients(ENUM_THETA, "zgr", 1.0, 64, 5, f)
    for tau in (0.1, 7.0):
        got = per_row_gradients(ENUM_THETA, "zgr", tau, 64, 5, f)
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    assert not gk.ESTIMATORS["zgr"].uses_tau


def test_zgr_masked_category_gets_no_gradient_and_no_nan():
    theta = torch.tensor([[0.3, float("-inf"), 1.0], [0.0, 0.5, -0.5]], dtype=F64)
    samples, grads = per_row_gradients(theta, "zgr", 1.0, 500, 6, make_f(2, 3))
    assert (samples[:, 0, 1] == 0).all()
    assert torch.isfinite(grads).all() and (grads[:, 0, 1] == 0).all()


def test_zgr_is_reinmax_at_tau_one():
    # Expanding both formulas for a one-hot D: 2 J((D + p)/2) - J(p)/2 = (diag(p) + D D^T - D p^T
    # - p D^T) / 2 = (J(p) + (D - p)(D - p)^T) / 2. Both draw D the same way: same seed, same
    # sample, and the gradients agree to float64 rounding.
    f = make_f(2, 3)
    D, grad = per_row_gradients(ENUM_THETA, "zgr", 1.0, 256, 7, f)
    D_ref, grad_ref = per_row_gradients(ENUM_THETA, "reinmax", 1.0, 256, 7, f)
    assert torch.equal(D, D_ref)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)
