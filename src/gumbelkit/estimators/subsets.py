r"""Differentiable k-subsets: choose k of the n entries of ``logits`` along ``dim``.

A sample is a k-hot vector (exactly k ones, the rest exactly zero; ``-inf`` logits are masks, never
chosen). Two laws over subsets appear in the papers, and each estimator says which it samples
(its ``law`` attribute):

- ``"without-replacement"``: k successive draws without replacement from softmax(logits), order
  forgotten; ``topk(logits + G, k)`` with G i.i.d. Gumbel(0, 1) draws it exactly (Gumbel-top-k;
  Kool, van Hoof and Welling 2019, "Stochastic Beams and Where to Find Them"). An ordered draw
  ``(i_1, ..., i_k)`` has probability ``prod_j w_{i_j} / (Z - sum_{l<j} w_{i_l})``, with
  ``w = exp(logits)`` and ``Z = sum w``; a subset's is the sum over its k! orders.
- ``"conditional-poisson"``: independent Bernoulli(sigmoid(logits)) entries conditioned on exactly
  k ones, ``p(S) = prod_{i in S} w_i / e_k(w)`` with ``e_k`` the k-th elementary symmetric
  polynomial (the k-subset distribution of Ahmed et al. 2023). ``e_k`` and the exact samples take
  O(nk) with the recursion ``e_j(w_1..w_i) = e_j(w_1..w_{i-1}) + w_i e_{j-1}(w_1..w_{i-1})``.

Estimators (``SUBSET_ESTIMATORS``):

- ``relaxed-topk`` (Xie and Ermon 2019, "Reparameterizable Subset Sampling via Continuous
  Relaxations", section 3): with keys ``r = logits + G``, ``a^1 = softmax(r / tau)``,
  ``r^{j+1} = r^j + log(1 - a^j)``, ``a^{j+1} = softmax(r^{j+1} / tau)``; the sample is the relaxed
  k-hot ``y = sum_{j=1}^k a^j`` (entries >= 0 summing to k), reparameterized. As tau -> 0 it
  becomes ``topk(r, k)``, a without-replacement draw.
- ``st-topk`` (the straight-through form of the same paper): ``topk_hot(r, k)`` forward, the
  gradient of ``y`` with the same G.
- ``imle`` (Niepert, Minervini and Franceschi 2021, "Implicit MLE: Backpropagating Through Discrete
  Exponential Family Distributions"): the forward value is the MAP of the perturbed logits,
  ``z = topk_hot(logits + G, k)`` (with Gumbel noise, an exact without-replacement draw); with
  ``g = df/dz`` the gradient is ``(z - topk_hot(logits - lam g + G, k)) / lam`` with the same G,
  option ``lam`` (lambda, default 1). The paper's estimate is ``z - z'``; the ``1 / lam`` makes the
  scale independent of lam (both agree at the default lam = 1). The paper's Sum-of-Gamma noise is
  not offered: Gumbel noise keeps the forward law exact.
- ``simple`` (Ahmed, Zeng, Niepert and Van den Broeck 2023, "SIMPLE: A Gradient Estimator for
  k-Subset Sampling"): an exact sample of the conditional-Poisson law forward, the gradient of its
  exact marginals ``mu_i = P(i in S) = d log e_k / d logits_i`` backward (``J_mu^T g``).
- ``reinforce``, ``rloo``: the score function of the ordered Gumbel-top-k draw (its log-probability
  above; Kool et al. 2019), with the categorical estimators' baselines; unbiased for the
  without-replacement law.

The public entries are :func:`sample_subset` and :func:`subset_expectation` rather than a ``k=``
option of ``gk.sample``/``gk.expectation``: k changes what a sample is (k-hot, not one-hot) and the
law, and the estimators form their own registry, so ``gk.expectation``'s contract stays as it is.
``f`` follows that contract: k-hot samples ``(n_samples, *logits.shape)`` in, ``(n_samples,)`` or
``(n_samples, B)`` out. ``gk.exact.subset_expectation`` enumerates the subsets exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch

from .._ops import expand_samples, replace_gradient, upcast
from .._validate import check_count, check_logits, check_tau, validation_enabled
from ..kernels.reference import perturb
from ..noise import gumbel_noise
from ..schedules import Schedule
from .base import ObjectiveFn, PathwiseEstimator, lookup
from .options import Option, positive
from .score_function import LeaveOneOut, Reinforce
from .structured import StructuredScoreFunction

__all__ = [
    "CONDITIONAL_POISSON",
    "SUBSET_ESTIMATORS",
    "WITHOUT_REPLACEMENT",
    "conditional_marginals",
    "ordered_log_prob",
    "sample_subset",
    "subset_expectation",
]

WITHOUT_REPLACEMENT = "without-replacement"
CONDITIONAL_POISSON = "conditional-poisson"
NEG_INF = float("-inf")


def check_subset(logits: torch.Tensor, k: object, dim: int) -> tuple[int, int]:
    """Validate logits and k for k-subsets along ``dim``; return ``(dim, k)``, dim non-negative."""
    dim = check_logits(logits, dim)
    k = check_count(k, "k (the subset size)")
    n = logits.shape[dim]
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} entries along dim={dim}: choose k <= {n}")
    if validation_enabled() and logits.numel() > 0:
        unmasked = torch.isfinite(logits).sum(dim)
        if (unmasked < k).any():
            raise ValueError(
                f"a row has only {int(unmasked.min())} unmasked (finite) entries along dim={dim}, "
                f"fewer than k={k}: at most n - k = {n - k} entries per row may be -inf"
            )
    return dim, k


def topk_hot(scores: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """The k-hot vector of the k largest ``scores`` along ``dim`` (exactly 0 and 1)."""
    return torch.zeros_like(scores).scatter_(dim, scores.topk(k, dim).indices, 1.0)


def relaxed_topk(keys: torch.Tensor, k: int, tau: float, dim: int) -> torch.Tensor:
    """Xie and Ermon (2019)'s relaxed k-hot: ``sum_j softmax(r^j / tau)``, r^1 = keys."""
    tiny = torch.finfo(keys.dtype).tiny  # log(1 - a) stays finite where a rounds to 1
    total = torch.zeros_like(keys)
    for _ in range(k):
        soft = torch.softmax(keys / tau, dim)
        total = total + soft
        keys = keys + torch.log((1 - soft).clamp_min(tiny))
    return total


def ordered_log_prob(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Log-probability of the ordered draw ``index`` (..., k) without replacement from
    softmax(logits) (..., n): ``sum_j [logits_{i_j} - logsumexp(logits without i_1..i_{j-1})]``."""
    chosen = torch.zeros(*index.shape, logits.shape[-1], dtype=torch.bool, device=logits.device)
    chosen.scatter_(-1, index.unsqueeze(-1), True)  # (..., k, n): row j marks i_j
    before = chosen.cumsum(-2) > chosen  # row j marks i_1 .. i_{j-1}
    rest = logits.unsqueeze(-2).masked_fill(before, NEG_INF)
    return (logits.gather(-1, index) - torch.logsumexp(rest, -1)).sum(-1)


def logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``torch.logsumexp`` whose gradient is 0, not NaN, where every entry is -inf."""
    empty = torch.isneginf(x).all(dim, keepdim=True)
    return torch.logsumexp(x.masked_fill(empty, 0.0), dim).masked_fill(empty.squeeze(dim),
                                                                       NEG_INF)


def log_elementary(logits: torch.Tensor, k: int) -> torch.Tensor:
    """``T[..., i, j] = log e_j(exp(logits[..., :i]))`` for i <= n, j <= k: shape (..., n+1, k+1).

    The O(nk) recursion ``e_j(w_1..w_i) = e_j(w_1..w_{i-1}) + w_i e_{j-1}(w_1..w_{i-1})`` in log
    space, along the last dimension; differentiable (twice) in ``logits``.
    """
    row = torch.full((*logits.shape[:-1], k + 1), NEG_INF, dtype=logits.dtype,
                     device=logits.device)
    row[..., 0] = 0.0
    rows = [row]
    for i in range(logits.shape[-1]):
        shifted = torch.cat([torch.full_like(row[..., :1], NEG_INF),
                             row[..., :-1] + logits[..., i:i + 1]], -1)
        row = logsumexp(torch.stack([row, shifted]), 0)
        rows.append(row)
    return torch.stack(rows, -2)


def conditional_marginals(logits: torch.Tensor, k: int, dim: int = -1) -> torch.Tensor:
    """``P(i in S)`` under the conditional-Poisson k-subset law, ``d log e_k / d logits``.

    Differentiable in ``logits`` when they require a gradient (the gradient of SIMPLE).
    """
    create_graph = logits.requires_grad and torch.is_grad_enabled()
    with torch.enable_grad():
        x = logits if logits.requires_grad else logits.detach().requires_grad_(True)
        log_z = log_elementary(x.movedim(dim, -1), k)[..., -1, -1]
        (marginals,) = torch.autograd.grad(log_z.sum(), x, create_graph=create_graph)
    return marginals


def sample_conditional(logits: torch.Tensor, k: int, generator: torch.Generator | None
                       ) -> torch.Tensor:
    """Exact k-hot samples of the conditional-Poisson law along the last dimension, no gradient.

    Entry i is taken with probability ``w_i e_{r-1}(w_{i+1..n}) / e_r(w_{i..n})``, r the number
    still to take; an entry is always taken when r equals the unmasked entries left.
    """
    with torch.no_grad():
        suffix = log_elementary(logits.flip(-1), k).flip(-2)  # [..., i, j] = log e_j(w_{i..n})
        unmasked = torch.isfinite(logits)
        left = unmasked.flip(-1).cumsum(-1).flip(-1)
        uniform = torch.rand(logits.shape, dtype=logits.dtype, device=logits.device,
                             generator=generator)
        remaining = torch.full(logits.shape[:-1], k, dtype=torch.long, device=logits.device)
        taken = []
        for i in range(logits.shape[-1]):
            need = remaining.clamp_min(1).unsqueeze(-1)
            log_p = (logits[..., i] + suffix[..., i + 1, :].gather(-1, need - 1).squeeze(-1)
                     - suffix[..., i, :].gather(-1, need).squeeze(-1))
            take = (remaining > 0) & unmasked[..., i] & (
                (uniform[..., i] < log_p.exp()) | (remaining >= left[..., i]))
            taken.append(take)
            remaining = remaining - take.long()
        return torch.stack(taken, -1).to(logits.dtype)


class _PerturbAndMap(torch.autograd.Function):
    """``topk_hot(keys, k)`` forward; I-MLE's ``(z - topk_hot(keys - lam g, k)) / lam`` backward.

    The backward is a finite difference of MAP states, not the derivative of the forward value
    (which is 0 almost everywhere), so ``gradcheck`` does not apply to it.
    """

    @staticmethod
    def forward(ctx, keys, k, dim, lam):
        sample = topk_hot(keys, k, dim)
        ctx.save_for_backward(keys, sample)
        ctx.k, ctx.dim, ctx.lam = k, dim, lam
        return sample

    @staticmethod
    def backward(ctx, grad):
        keys, sample = ctx.saved_tensors
        target = topk_hot(keys - ctx.lam * grad, ctx.k, ctx.dim)
        return (sample - target) / ctx.lam, None, None, None


class RelaxedTopK(PathwiseEstimator):
    """Xie and Ermon (2019)'s relaxed top-k of ``logits + G``, reparameterized."""

    name = "relaxed-topk"
    noise = "gumbel"
    law = WITHOUT_REPLACEMENT
    hard = False

    def relax(self, logits, tau, dim, generator, k):
        keys = logits + gumbel_noise(logits.shape, dtype=logits.dtype, device=logits.device,
                                     generator=generator)
        soft = relaxed_topk(keys, k, tau, dim)
        if not self.hard:
            return soft
        return replace_gradient(topk_hot(keys.detach(), k, dim), soft)


class StraightThroughTopK(RelaxedTopK):
    """``topk_hot(logits + G, k)`` forward, the gradient of ``relaxed-topk`` with the same G."""

    name = "st-topk"
    hard = True


class ImplicitMLE(PathwiseEstimator):
    """I-MLE (Niepert et al. 2021) with Gumbel perturb-and-MAP: option ``lam`` (default 1)."""

    name = "imle"
    noise = "gumbel"
    law = WITHOUT_REPLACEMENT
    option_specs = (Option("lam", 1.0, positive, "I-MLE's lambda: the size of the step along "
                           "-df/dz that gives the target MAP state"),)

    def relax(self, logits, tau, dim, generator, k, lam):
        keys = logits + gumbel_noise(logits.shape, dtype=logits.dtype, device=logits.device,
                                     generator=generator)
        return _PerturbAndMap.apply(keys, k, dim, float(lam))


class Simple(PathwiseEstimator):
    """SIMPLE (Ahmed et al. 2023): an exact conditional-Poisson sample, its marginals' gradient."""

    name = "simple"
    noise = "sampling"
    law = CONDITIONAL_POISSON

    def relax(self, logits, tau, dim, generator, k):
        sample = sample_conditional(logits.detach().movedim(dim, -1), k, generator)
        return replace_gradient(sample.movedim(-1, dim), conditional_marginals(logits, k, dim))


class SubsetScoreFunction(StructuredScoreFunction):
    """A categorical score-function estimator applied to the ordered Gumbel-top-k draw."""

    law = WITHOUT_REPLACEMENT
    structure = ("k",)

    def draw(self, logits, n_samples, dim, generator, k):
        batch = expand_samples(logits, n_samples)
        index = perturb(batch, generator).topk(k, dim + 1).indices
        samples = torch.zeros_like(batch).scatter_(dim + 1, index, 1.0)
        log_p = ordered_log_prob(batch.movedim(dim + 1, -1), index.movedim(dim + 1, -1))
        return samples, log_p


SUBSET_ESTIMATORS: Mapping[str, PathwiseEstimator | SubsetScoreFunction] = MappingProxyType(
    {
        estimator.name: estimator
        for estimator in (
            RelaxedTopK(),
            StraightThroughTopK(),
            ImplicitMLE(),
            Simple(),
            SubsetScoreFunction(Reinforce()),
            SubsetScoreFunction(LeaveOneOut()),
        )
    }
)


def sample_subset(
    logits: torch.Tensor,
    k: int,
    estimator: str = "st-topk",
    tau: float | Schedule = 1.0,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """A differentiable k-subset of the entries of ``logits`` along ``dim``.

    The value and the gradient are the pathwise ``estimator``'s (see ``SUBSET_ESTIMATORS``):
    ``relaxed-topk`` returns a relaxed k-hot vector, the others k-hot vectors, exactly 0 and 1
    with exactly k ones, never at a ``-inf`` logit. tau is the temperature of ``relaxed-topk``
    and ``st-topk`` (unused by ``imle`` and ``simple``). Score-function estimators have no
    differentiable sample: use :func:`subset_expectation`.
    """
    est = lookup(SUBSET_ESTIMATORS, estimator, "subset estimator")
    if not est.pathwise:
        raise ValueError(
            f"{est.name!r} is a score-function estimator: it has no differentiable sample. Use "
            f"gk.subset_expectation(f, logits, k, estimator={est.name!r}, n_samples=...)"
        )
    dim, k = check_subset(logits, k, dim)
    tau = check_tau(tau)
    opts = est.check_options(options)
    return est.relax(upcast(logits), tau, dim, generator, k=k, **opts).to(logits.dtype)


def subset_expectation(
    f: ObjectiveFn,
    logits: torch.Tensor,
    k: int,
    estimator: str = "st-topk",
    n_samples: int = 1,
    tau: float | Schedule = 1.0,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """Monte Carlo estimate of ``E_S[f(S)]`` over k-subsets S, with the estimator's gradient.

    S follows the estimator's ``law`` (see the module docstring). ``f`` receives k-hot samples of
    shape ``(n_samples, *logits.shape)`` and returns ``(n_samples,)`` or ``(n_samples, B)``, as
    for :func:`gumbelkit.expectation`; the result is the mean over samples.
    """
    est = lookup(SUBSET_ESTIMATORS, estimator, "subset estimator")
    dim, k = check_subset(logits, k, dim)
    tau = check_tau(tau)
    n_samples = check_count(n_samples, f"n_samples for {est.name!r}", minimum=est.min_samples)
    opts = est.check_options(options)
    return est.expectation(f, logits, n_samples, tau, dim, generator, k=k, **opts)
