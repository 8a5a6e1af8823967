"""Decoupled ST-GS (``dst-gs``, Shah et al. 2024): the forward law softmax(logits / tau_forward)
by chi-square, the gradient J(softmax((theta + tau_f G) / tau_b)) g / tau_b per sample, and its
limits (st-gs at tau_forward = 1). Chi-square tests reject at ALPHA (tests/stats.py)."""

from __future__ import annotations

import pytest
import torch

import gumbelkit as gk

from .stats import ALPHA, assert_law, chisquare_pvalue, gen
from .test_estimators import (
    F64,
    FORMULA_THETA,
    LAW_LOGITS,
    NEG_INF,
    assert_one_hot,
    grad_at,
    jvp,
    make_f,
    per_row_gradients,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("tau_forward", [0.4, 1.0, 2.5])
def test_forward_law_is_softmax_of_logits_over_tau_forward(tau_forward):
    # 20,000 one-hot rows, chi-square at ALPHA against the closed form softmax(logits / tau_f);
    # the backward temperature (the call's tau) does not change it.
    n = 20_000
    for tau in (0.3, 3.0):
        s = gk.sample(LAW_LOGITS.expand(n, -1), "dst-gs", tau, generator=gen(40),
                      tau_forward=tau_forward)
        assert_one_hot(s)
        assert_law(s.sum(0), torch.softmax(LAW_LOGITS / tau_forward, -1))


@pytest.mark.parametrize("tau_forward", [0.4, 2.5])
def test_forward_temperature_changes_the_law(tau_forward):
    # Power: with tau_forward != 1 the samples are not softmax(logits): rejected at ALPHA.
    n = 20_000
    s = gk.sample(LAW_LOGITS.expand(n, -1), "dst-gs", generator=gen(41), tau_forward=tau_forward)
    assert chisquare_pvalue(s.sum(0), torch.softmax(LAW_LOGITS, -1)) < ALPHA


def test_masked_categories_are_never_drawn():
    base = torch.tensor([[0.5, NEG_INF, -0.2, 1.0], [NEG_INF, NEG_INF, 0.0, 0.7]])
    s = gk.sample(base.expand(20_000, -1, -1), "dst-gs", generator=gen(42), tau_forward=3.0)
    counts = s.sum(0)
    for row in range(2):
        assert_law(counts[row], torch.softmax(base[row] / 3.0, -1))


@pytest.mark.parametrize("tau_forward,tau_backward", [(0.5, 0.3), (2.0, 1.5), (1.0, 4.0)])
def test_gradient_is_the_formula_per_sample(tau_forward, tau_backward):
    # dst-gs is st-gs of theta / tau_f, whose noise is the kernels' draw for the generator
    # (gumbel_noise from kernels.noise_generator): with the same noise G,
    # D = one_hot(argmax(theta + tau_f G)), gradient J(softmax((theta + tau_f G)/tau_b)) g / tau_b
    # up to float64 rounding. The call's tau (0.7) is overridden by tau_backward.
    f = make_f(3, 4)
    D, grad = per_row_gradients(FORMULA_THETA, "dst-gs", 0.7, 64, 43, f,
                                tau_forward=tau_forward, tau_backward=tau_backward)
    noise = gk.gumbel_noise((64, 3, 4), dtype=F64,
                            generator=gk.kernels.noise_generator(gen(43)))
    perturbed = FORMULA_THETA + tau_forward * noise
    assert torch.equal(D, torch.nn.functional.one_hot(perturbed.argmax(-1), 4).to(F64))
    expected = jvp(torch.softmax(perturbed / tau_backward, -1), grad_at(f, D)) / tau_backward
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)


def test_tau_backward_defaults_to_the_calls_tau():
    f = make_f(3, 4)
    a = per_row_gradients(FORMULA_THETA, "dst-gs", 0.6, 32, 44, f, tau_forward=2.0)
    b = per_row_gradients(FORMULA_THETA, "dst-gs", 5.0, 32, 44, f, tau_forward=2.0,
                          tau_backward=0.6)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_defaults_are_st_gs(tau):
    # tau_forward = 1, tau_backward = tau: the sample and gradient of st-gs, same seed.
    f = make_f(3, 4)
    D, grad = per_row_gradients(FORMULA_THETA, "dst-gs", tau, 64, 45, f)
    D_ref, grad_ref = per_row_gradients(FORMULA_THETA, "st-gs", tau, 64, 45, f)
    assert torch.equal(D, D_ref)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("option", ["tau_forward", "tau_backward"])
@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_temperatures_are_rejected(option, bad):
    with pytest.raises(ValueError, match=option):
        gk.sample(torch.zeros(2, 3), "dst-gs", **{option: bad})


def test_small_tau_forward_is_argmax_st():
    # As tau_forward -> 0 the noise vanishes: at 1e-9 (Gumbels here are at most ~40 in float64)
    # the sample is the mode and the gradient argmax-st's, J(softmax(theta / tau_b)) g / tau_b,
    # to 1e-6 relative.
    f = make_f(3, 4)
    D, grad = per_row_gradients(FORMULA_THETA, "dst-gs", 0.8, 64, 46, f, tau_forward=1e-9)
    D_ref, grad_ref = per_row_gradients(FORMULA_THETA, "argmax-st", 0.8, 64, 46, f)
    assert torch.equal(D, D_ref)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-6, atol=1e-9)
