"""The categorical VAE: shapes, the KL in closed form, the bounds against enumeration, training.

A small model (L=3 variables of C=4 categories, 64 codes) lets the tests enumerate every code, so
the Monte Carlo bounds are checked against the exact ELBO and the exact -log p(x).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import gumbelkit as gk
from gumbelkit.workloads import vae

D, L, C = 16, 3, 4


@pytest.fixture
def model() -> vae.CategoricalVAE:
    torch.manual_seed(0)
    net = vae.CategoricalVAE(D, L, C, hidden=(32, 16))
    with torch.no_grad():  # sharper posteriors than at initialisation, so the bounds differ
        net.encoder[-1].weight.mul_(8.0)
    return net


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(8, D, generator=torch.Generator().manual_seed(1))


def _all_codes() -> torch.Tensor:
    """Every one-hot code, shape (C**L, L, C)."""
    index = torch.tensor(list(itertools.product(range(C), repeat=L)))
    return F.one_hot(index, C).float()


def _exact(model: vae.CategoricalVAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact negative ELBO and the exact -log p(x), per example, by enumeration."""
    with torch.no_grad():
        codes = _all_codes()  # (K, L, C)
        log_q = torch.log_softmax(model.logits(x), -1)  # (B, L, C)
        log_q_codes = torch.einsum("klc,blc->kb", codes, log_q)
        pixel_logits = model.pixel_logits(codes)  # (K, D)
        log_lik = -F.binary_cross_entropy_with_logits(
            pixel_logits[:, None].expand(-1, len(x), -1), x.expand(len(codes), -1, -1),
            reduction="none").sum(-1)  # (K, B)
        log_prior = -L * math.log(C)
        elbo = (log_q_codes.exp() * (log_lik + log_prior - log_q_codes)).sum(0)
        marginal = torch.logsumexp(log_lik + log_prior, 0)
    return -elbo, -marginal


def test_shapes(model, images):
    gen = torch.Generator().manual_seed(0)
    assert model.logits(images).shape == (8, L, C)
    assert model.decode(_all_codes()).shape == (C**L, D)
    assert vae.relaxed_negative_elbo(model, images, "gs", 0.5, generator=gen).shape == (8,)
    assert vae.discrete_negative_elbo(model, images, 3, generator=gen).shape == (8,)
    assert vae.negative_iw_bound(model, images, 5, generator=gen).shape == (8,)
    generated = vae.generate(model, 6, generator=gen)
    assert generated.shape == (6, D) and generated.min() >= 0 and generated.max() <= 1
    grid = vae.image_grid(generated, (4, 4), columns=4)
    assert grid.shape == (2 * 4 + 1, 4 * 4 + 3)


def test_kl_matches_closed_form():
    logits = torch.randn(5, L, C, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    q = torch.softmax(logits, -1)
    closed_form = (q * torch.log(q * C)).sum((-2, -1))
    torch.testing.assert_close(vae.kl_to_uniform(logits), closed_form)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=logits),
        torch.distributions.Categorical(logits=torch.zeros_like(logits))).sum(-1)
    torch.testing.assert_close(vae.kl_to_uniform(logits), reference)
    assert vae.kl_to_uniform(torch.zeros(2, L, C)).abs().max() < 1e-6


def test_discrete_elbo_matches_enumeration(model, images):
    exact_elbo, _ = _exact(model, images)
    estimate = vae.discrete_negative_elbo(model, images, 20_000,
                                          generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(estimate, exact_elbo, rtol=0, atol=0.05)


def test_iw_bound_between_elbo_and_marginal(model, images):
    exact_elbo, exact_nll = _exact(model, images)
    assert (exact_elbo - exact_nll).min() > 0.05  # the test model has a real gap to close
    gen = torch.Generator().manual_seed(4)

    def mean_bound(m: int, repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
        big = images.repeat(repeats, 1)  # independent draws for each copy
        draws = vae.negative_iw_bound(model, big, m, generator=gen).view(repeats, -1)
        return draws.mean(0), draws.std(0) / math.sqrt(repeats)  # mean, its standard error

    (one, _), (ten, _), (many, many_se) = mean_bound(1, 4000), mean_bound(10, 400), \
        mean_bound(200, 40)
    # at m = 1 the bound is the one-sample ELBO in expectation (tolerance: about 5 standard errors)
    torch.testing.assert_close(one, exact_elbo, rtol=0, atol=0.1)
    # on average it tightens with m: ELBO >= IW(10) >= IW(200) >= -log p(x)
    assert (ten < exact_elbo - 0.02).all() and (many < ten).all()
    # IW(200) >= -log p(x) in expectation; its mean over 40 repeats has a standard error of
    # about 0.025 here, so the check allows 4 standard errors (each of 8 images: a false alarm
    # with probability below 8 * 3.2e-5)
    assert (many >= exact_nll - 4 * many_se).all()
    torch.testing.assert_close(many, exact_nll, rtol=0, atol=0.05)


def test_evaluation_uses_one_hot_codes(model, images, monkeypatch):
    seen = []
    original = model.pixel_logits

    def spy(z):
        seen.append(z)
        return original(z)

    monkeypatch.setattr(model, "pixel_logits", spy)
    gen = torch.Generator().manual_seed(5)
    vae.discrete_negative_elbo(model, images, 2, generator=gen)
    vae.negative_iw_bound(model, images, 2, generator=gen)
    vae.generate(model, 3, generator=gen)
    for z in seen:
        assert set(z.unique().tolist()) <= {0.0, 1.0} and (z.sum(-1) == 1).all()


@pytest.mark.parametrize("estimator", ["softmax", "gs", "st-gs", "reinmax", "gr"])
def test_training_lowers_the_loss(estimator):
    patterns = (torch.rand(4, D, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    batch = patterns.repeat(2, 1)  # 8 images, 4 distinct: learnable in a few steps
    torch.manual_seed(0)
    net = vae.CategoricalVAE(D, L, C, hidden=(32, 16))
    gen = torch.Generator().manual_seed(6)
    before = vae.relaxed_negative_elbo(net, batch, estimator, 1.0, generator=gen).mean().item()
    losses = vae.train(net, batch, 60, estimator, 1.0, generator=gen, lr=1e-2, batch_size=8)
    assert len(losses) == 60
    after = vae.relaxed_negative_elbo(net, batch, estimator, 1.0, generator=gen).mean().item()
    assert after < before - 1.5  # from about 10.9 nats to about 8


def test_training_steps_a_schedule(images):
    torch.manual_seed(0)
    net = vae.CategoricalVAE(D, L, C, hidden=(32, 16))
    schedule = gk.schedules.Exponential(1.0, 0.1, tau_min=0.5)
    vae.train(net, images, 12, "gs", schedule, generator=torch.Generator().manual_seed(7),
              batch_size=4)
    assert schedule.last_step == 12 and schedule.value == 0.5
