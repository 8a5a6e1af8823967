r"""Binary choices: estimators for independent ``b_i ~ Bernoulli(sigmoid(logits_i))``, and L0 gates.

Every entry of ``logits`` is the log-odds of its own binary variable (there is no category
dimension); ``+inf`` and ``-inf`` are allowed (certain outcomes), NaN is not. With ``u ~ U(0, 1)``
and ``L = log u - log(1 - u)`` (Logistic(0, 1) noise), ``b = [u < sigmoid(logits)] =
[logits + L > 0]``. Estimators (``BERNOULLI_ESTIMATORS``), with ``g = df/db`` at the sample:

- ``st`` (Bengio, Leonard and Courville 2013): ``b`` forward, the gradient of
  ``sigmoid(logits / tau)``: ``sigmoid'(logits / tau) g / tau``.
- ``concrete`` (binary Concrete; Maddison, Mnih and Teh 2017, section 3.3; Jang, Gu and Poole
  2017): ``y = sigmoid((logits + L) / tau)`` in (0, 1), reparameterized.
- ``st-concrete``: ``b = [logits + L > 0]`` forward, the gradient of ``y`` with the same L.
- ``disarm`` (Dong, Mnih and Tucker 2020, "DisARM: An Antithetic Gradient Estimator for Binary
  Latent Variables"): antithetic pairs ``b = [u < sigmoid(logits)]``, ``b~ = [1 - u <
  sigmoid(logits)]``; per pair, ``grad_i = 1/2 (f(b) - f(b~)) (-1)^{b~_i} [b_i != b~_i]
  sigmoid(|logits_i|)``, averaged over ``n_samples / 2`` pairs (n_samples even: f sees as many
  samples as for the other estimators). Unbiased; no temperature.
- ``reinforce``, ``rloo``: the categorical score-function estimators with
  ``log p(b) = sum_i [b_i log sigmoid(logits_i) + (1 - b_i) log sigmoid(-logits_i)]``. Unbiased.

Hard Concrete gates (Louizos, Welling and Kingma 2018, "Learning Sparse Neural Networks through L0
Regularization", section 4): ``s = sigmoid((logits + L) / beta)`` stretched to ``(gamma, zeta)``
and clipped, ``z = min(1, max(0, s (zeta - gamma) + gamma))``, exactly 0 or 1 with positive
probability, reparameterized in between. The expected L0 penalty has the closed form
``E[sum_i [z_i != 0]] = sum_i sigmoid(logits_i - beta log(-gamma / zeta))``
(:func:`l0_penalty`); defaults ``beta = 2/3, gamma = -0.1, zeta = 1.1`` as in the paper.

The public face is the ``gk.bernoulli`` namespace (``gk.bernoulli.sample``,
``gk.bernoulli.expectation``, ``gk.bernoulli.ESTIMATORS``, ``gk.bernoulli.hard_concrete``,
``gk.bernoulli.l0_penalty``) rather than options of ``gk.sample``/``gk.expectation``: Bernoulli
logits have no category dimension and no softmax, so the categorical validation (a ``dim``, no
``+inf``, no fully masked row) does not apply. ``f`` follows gk.expectation's contract: samples
``(n_samples, *logits.shape)`` in, ``(n_samples,)`` or ``(n_samples, B)`` out, with B the first
dimension of ``logits`` (of at least 2 dimensions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F

from .._ops import expand_samples, replace_gradient, upcast
from .._validate import check_count, check_tau, check_tensor, validation_enabled
from ..sampling import relaxed_bernoulli
from ..schedules import Schedule
from .base import Estimator, ObjectiveFn, PathwiseEstimator, evaluate, lookup
from .options import positive
from .score_function import LeaveOneOut, Reinforce
from .structured import StructuredScoreFunction

__all__ = [
    "BERNOULLI_ESTIMATORS",
    "expectation",
    "hard_concrete",
    "l0_penalty",
    "sample",
]


def check_bernoulli_logits(logits: object) -> torch.Tensor:
    """Float tensor of log-odds; NaN raises ValueError while validation is on (+-inf allowed)."""
    logits = check_tensor(logits)
    if validation_enabled() and torch.isnan(logits).any():
        raise ValueError("logits contain NaN; check the layer that produced them")
    return logits


def _uniform(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(like.shape, dtype=like.dtype, device=like.device, generator=generator)


def _per_row(terms: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Sum ``terms`` (shaped like the logits) within each row of ``values`` (``()`` or ``(B,)``)."""
    return terms.reshape(*values.shape, -1).sum(-1)


class StraightThroughBernoulli(PathwiseEstimator):
    """``b ~ Bernoulli(sigmoid(logits))`` forward, ``sigmoid(logits / tau)``'s gradient."""

    name = "st"
    noise = "sampling"

    def relax(self, logits, tau, dim, generator):
        soft = torch.sigmoid(logits / tau)
        hard = (_uniform(logits, generator) < torch.sigmoid(logits.detach())).to(logits.dtype)
        return replace_gradient(hard, soft)


class BinaryConcrete(PathwiseEstimator):
    """``sigmoid((logits + L) / tau)``, reparameterized (Maddison et al. 2017)."""

    name = "concrete"
    noise = "logistic"
    hard = False

    def relax(self, logits, tau, dim, generator):
        return relaxed_bernoulli(logits, tau, self.hard, generator=generator)


class StraightThroughConcrete(BinaryConcrete):
    """``[logits + L > 0]`` forward, the binary Concrete gradient with the same L."""

    name = "st-concrete"
    hard = True


class DisARM(Estimator):
    """DisARM (Dong et al. 2020): antithetic pairs, ``n_samples`` even (n_samples / 2 pairs)."""

    name = "disarm"
    noise = "sampling"
    pathwise = False
    min_samples = 2

    def expectation(self, f, logits, n_samples, tau, dim, generator):
        if n_samples % 2:
            raise ValueError(f"disarm evaluates f on antithetic pairs: n_samples must be even, "
                             f"got {n_samples}")
        x = upcast(logits)
        uniform = _uniform(expand_samples(x, n_samples // 2), generator)
        p = torch.sigmoid(x.detach())
        b, anti = uniform < p, 1 - uniform < p
        values = evaluate(f, torch.cat([b, anti]).to(logits.dtype), logits, dim)
        first, second = values.detach().to(x.dtype).chunk(2)
        diff = 0.5 * (first - second)
        direction = torch.where(b == anti, 0.0, torch.where(anti, -1.0, 1.0)) * torch.sigmoid(
            x.detach().abs())
        grad = (diff.reshape(*diff.shape, *[1] * (x.dim() + 1 - diff.dim())) * direction).mean(0)
        moved = (x - x.detach()).masked_fill(~torch.isfinite(x), 0.0)  # +-inf: no gradient
        return values.mean(0) + _per_row(grad * moved, values[0]).to(values.dtype)


class BernoulliScoreFunction(StructuredScoreFunction):
    """A categorical score-function estimator applied to independent Bernoulli samples."""

    def draw(self, logits, n_samples, dim, generator):
        batch = expand_samples(logits, n_samples)
        b = _uniform(batch, generator) < torch.sigmoid(batch.detach())
        # log sigmoid(x) = -softplus(-x); F.logsigmoid took ~10 ms on 8 entries here, softplus not
        one, zero = (expand_samples(-F.softplus(x), n_samples) for x in (-logits, logits))
        return b.to(batch.dtype), torch.where(b, one, zero)


BERNOULLI_ESTIMATORS: Mapping[str, Estimator] = MappingProxyType(
    {
        estimator.name: estimator
        for estimator in (
            StraightThroughBernoulli(),
            BinaryConcrete(),
            StraightThroughConcrete(),
            DisARM(),
            BernoulliScoreFunction(Reinforce()),
            BernoulliScoreFunction(LeaveOneOut()),
        )
    }
)


def _rows_dim(logits: torch.Tensor) -> int:
    """The ``dim`` given to the estimators: the last, so that a per-row f may use dimension 0."""
    return max(logits.dim() - 1, 0)


def sample(
    logits: torch.Tensor,
    estimator: str = "st",
    tau: float | Schedule = 1.0,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """A differentiable sample of independent Bernoulli(sigmoid(logits)) variables.

    Value and gradient are the pathwise ``estimator``'s (``st``, ``concrete``, ``st-concrete``):
    ``st`` and ``st-concrete`` return exactly 0 and 1, following sigmoid(logits) whatever tau.
    ``disarm``, ``reinforce`` and ``rloo`` have no differentiable sample: use :func:`expectation`.
    """
    est = lookup(BERNOULLI_ESTIMATORS, estimator, "Bernoulli estimator")
    if not est.pathwise:
        raise ValueError(
            f"{est.name!r} has no differentiable sample. Use gk.bernoulli.expectation(f, logits, "
            f"estimator={est.name!r}, n_samples=...), which differentiates the expected value of f"
        )
    logits = check_bernoulli_logits(logits)
    tau = check_tau(tau)
    opts = est.check_options(options)
    return est.relax(upcast(logits), tau, _rows_dim(logits), generator, **opts).to(logits.dtype)


def expectation(
    f: ObjectiveFn,
    logits: torch.Tensor,
    estimator: str = "st",
    n_samples: int = 1,
    tau: float | Schedule = 1.0,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """Monte Carlo estimate of ``E_b[f(b)]``, ``b_i ~ Bernoulli(sigmoid(logits_i))`` independent,
    whose gradient is the estimator's; ``f`` as for :func:`gumbelkit.expectation`."""
    est = lookup(BERNOULLI_ESTIMATORS, estimator, "Bernoulli estimator")
    logits = check_bernoulli_logits(logits)
    tau = check_tau(tau)
    n_samples = check_count(n_samples, f"n_samples for {est.name!r}", minimum=est.min_samples)
    opts = est.check_options(options)
    return est.expectation(f, logits, n_samples, tau, _rows_dim(logits), generator, **opts)


def _check_stretch(gamma: float, zeta: float) -> tuple[float, float]:
    gamma, zeta = float(gamma), float(zeta)
    if not (gamma < 0 and zeta > 1 and math.isfinite(gamma) and math.isfinite(zeta)):
        raise ValueError(f"the Hard Concrete stretch needs gamma < 0 < 1 < zeta (finite), got "
                         f"gamma={gamma}, zeta={zeta}; the paper uses gamma=-0.1, zeta=1.1")
    return gamma, zeta


def hard_concrete(
    logits: torch.Tensor,
    beta: float = 2 / 3,
    gamma: float = -0.1,
    zeta: float = 1.1,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hard Concrete gates ``z = min(1, max(0, sigmoid((logits + L) / beta) (zeta - gamma) +
    gamma))`` (Louizos et al. 2018), reparameterized; ``logits`` is the paper's ``log alpha``."""
    logits = check_bernoulli_logits(logits)
    beta = positive(beta, "beta (the Hard Concrete temperature)")
    gamma, zeta = _check_stretch(gamma, zeta)
    s = relaxed_bernoulli(logits, beta, generator=generator)
    return (s * (zeta - gamma) + gamma).clamp(0.0, 1.0)


def l0_penalty(
    logits: torch.Tensor, beta: float = 2 / 3, gamma: float = -0.1, zeta: float = 1.1
) -> torch.Tensor:
    """Expected number of non-zero Hard Concrete gates, ``sum_i sigmoid(logits_i - beta
    log(-gamma / zeta))`` (Louizos et al. 2018, eq. 12), differentiable."""
    logits = check_bernoulli_logits(logits)
    beta = positive(beta, "beta (the Hard Concrete temperature)")
    gamma, zeta = _check_stretch(gamma, zeta)
    return torch.sigmoid(upcast(logits) - beta * math.log(-gamma / zeta)).sum().to(logits.dtype)
