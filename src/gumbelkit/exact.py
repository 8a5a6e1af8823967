"""Exact expectations by enumeration, and estimators' gradients measured against the exact one.

For ``L`` independent categoricals with ``K`` categories each (logits of shape ``(L, K)``), the
``K**L`` joint configurations can be listed when that number is small; then

    E[f(c)] = sum_c p(c) f(c),   p(c) = prod_l softmax(logits_l)[c_l],

is a differentiable function of the logits and its autograd gradient is the exact gradient that
every estimator tries to approximate.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ._ops import upcast
from ._validate import check_count, check_logits, check_tau
from .estimators import ESTIMATORS, get_estimator
from .estimators.base import ObjectiveFn, evaluate, lookup
from .estimators.bernoulli import BERNOULLI_ESTIMATORS, check_bernoulli_logits
from .estimators.bernoulli import expectation as mc_bernoulli_expectation
from .estimators.subsets import (
    CONDITIONAL_POISSON,
    SUBSET_ESTIMATORS,
    WITHOUT_REPLACEMENT,
    check_subset,
    log_elementary,
    logsumexp,
    ordered_log_prob,
)
from .estimators.subsets import subset_expectation as mc_subset_expectation
from .expectation import expectation as mc_expectation
from .expectation import floating_objective
from .schedules import Schedule

__all__ = ["configurations", "expectation", "compare"]

MAX_CONFIGURATIONS = 2**20


def configurations(
    n_variables: int,
    n_categories: int,
    *,
    device: torch.device | str | None = None,
    max_configurations: int = MAX_CONFIGURATIONS,
) -> torch.Tensor:
    """All ``K**L`` indices as a LongTensor of shape ``(K**L, L)``, the last variable fastest.

    Raises ValueError when ``K**L`` exceeds ``max_configurations``, or for counts that are not
    integers >= 0.
    """
    n_variables = check_count(n_variables, "n_variables", minimum=0)
    n_categories = check_count(n_categories, "n_categories", minimum=0)
    max_configurations = check_count(max_configurations, "max_configurations")
    total = n_categories**n_variables
    if total > max_configurations:
        raise ValueError(
            f"enumerating K**L = {n_categories}**{n_variables} = {total} configurations exceeds "
            f"max_configurations={max_configurations}; use gk.expectation (Monte Carlo) instead, "
            "or raise max_configurations if memory allows"
        )
    codes = torch.arange(total, device=device)
    powers = n_categories ** torch.arange(n_variables - 1, -1, -1, device=device)
    return (codes.unsqueeze(1) // powers) % n_categories


def _check_2d(logits: torch.Tensor) -> None:
    check_logits(logits, -1)
    if logits.dim() != 2:
        raise ValueError(
            f"exact enumeration needs logits of shape (L, K) (L independent categoricals), "
            f"got shape {tuple(logits.shape)}"
        )


def expectation(
    f: ObjectiveFn, logits: torch.Tensor, *, max_configurations: int = MAX_CONFIGURATIONS
) -> torch.Tensor:
    """Exact ``E_{c ~ softmax(logits)}[f(c)]`` for logits of shape ``(L, K)``, differentiable.

    ``f`` follows the contract of :func:`gumbelkit.expectation`: it receives one-hot samples of
    shape ``(N, L, K)`` (here all ``N = K**L`` configurations) and returns shape ``(N,)`` or
    ``(N, L)`` in a floating-point dtype (else TypeError, as there). The result is a scalar or
    shape ``(L,)``.
    """
    _check_2d(logits)
    x = upcast(logits)
    n_variables, n_categories = x.shape
    index = configurations(n_variables, n_categories, device=x.device,
                           max_configurations=max_configurations)
    samples = torch.zeros(*index.shape, n_categories, dtype=logits.dtype, device=x.device)
    samples.scatter_(2, index.unsqueeze(2), 1.0)
    values = evaluate(floating_objective(f), samples, logits, dim=1)
    log_p = torch.log_softmax(x, 1)
    log_p = log_p.gather(1, index.T).T.sum(1)  # (N,): log-probability of each configuration
    weights = log_p.exp().to(values.dtype)
    if values.dim() == 2:
        weights = weights.unsqueeze(1)
    return (weights * values).sum(0)


def exact_gradient(f: ObjectiveFn, logits: torch.Tensor) -> torch.Tensor:
    """Gradient of the (summed) exact expectation with respect to ``logits``."""
    _check_2d(logits)  # before detach(), which a non-tensor lacks
    leaf = logits.detach().requires_grad_(True)
    return _gradient(expectation(f, leaf), leaf)


def _gradient(value: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    """The gradient of ``value.sum()`` to ``leaf``: zero where the value does not depend on it.

    A pathwise estimate of an f that ignores its sample has no graph to the logits; its gradient
    estimate is then exactly zero (autograd would raise instead).
    """
    if value.requires_grad:
        (grad,) = torch.autograd.grad(value.sum(), leaf, allow_unused=True)
        if grad is not None:
            return grad
    return torch.zeros_like(leaf)


def compare(
    f: ObjectiveFn,
    logits: torch.Tensor,
    estimators: Iterable[str],
    n_draws: int = 1000,
    tau: float | Schedule = 1.0,
    n_samples: int = 1,
    *,
    generator: torch.Generator | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each estimator's gradient of one ``gk.expectation`` call against the exact gradient ``g``.

    For ``n_draws`` independent estimates ``g_hat`` (each from ``n_samples`` samples) returns, per
    estimator, a dict with:

    - ``bias``: ``||mean(g_hat) - g||_2``;
    - ``variance``: ``sum_i Var(g_hat_i)`` (population variance over the draws, so that
      ``mse == bias**2 + variance`` holds exactly);
    - ``mse``: ``mean ||g_hat - g||^2``;
    - ``cosine``: ``mean cos(g_hat, g)`` (0 for a zero estimate);
    - ``snr``: ``||mean(g_hat)|| / sqrt(variance)`` (inf when the variance is 0);
    - ``bias_se``: ``sqrt(variance / n_draws)``, the Monte Carlo noise floor of ``bias``: an
      unbiased estimator shows a ``bias`` of about this size;
    - ``seconds``: wall time per estimate (forward and backward);

    plus ``estimator``, ``tau``, ``n_samples`` and ``n_draws``. ``estimators`` is a list of names
    (a bare string is a TypeError). ``options`` maps an estimator name to its options, e.g.
    ``{"gr": {"k": 100}}``; a name that is no estimator raises ValueError, and the options of a
    known estimator that is not compared are unused.
    """
    n_draws = check_count(n_draws, "n_draws", minimum=2)
    tau_value = check_tau(tau)
    if isinstance(estimators, str | bytes) or not isinstance(estimators, Iterable):
        raise TypeError(
            f"estimators must be a list of estimator names, e.g. [{estimators!r}], "
            f"got {estimators!r}"
        )
    chosen = [get_estimator(name) for name in estimators]
    options = _check_options_by_name(options, {*ESTIMATORS, *(e.name for e in chosen)})
    settings = {}
    for estimator in chosen:  # reject bad options before spending time on any estimator
        check_count(n_samples, f"n_samples for {estimator.name!r}", estimator.min_samples)
        settings[estimator.name] = estimator.check_options(options.get(estimator.name, {}))
    target = exact_gradient(f, logits).flatten().double()
    rows = []
    for estimator in chosen:
        draws = torch.empty(n_draws, target.numel(), dtype=torch.float64)
        start = time.perf_counter()
        for i in range(n_draws):
            leaf = logits.detach().requires_grad_(True)
            value = mc_expectation(f, leaf, estimator, n_samples, tau, generator=generator,
                                   **settings[estimator.name])
            draws[i] = _gradient(value, leaf).flatten()
        seconds = (time.perf_counter() - start) / n_draws
        rows.append({"estimator": estimator.name, "tau": tau_value,
                     "n_samples": n_samples, "n_draws": n_draws,
                     **gradient_statistics(draws, target), "seconds": seconds})
    return rows


def _check_options_by_name(
    options: Mapping[str, Mapping[str, Any]] | None, known: set[str]
) -> Mapping[str, Mapping[str, Any]]:
    """``options`` of :func:`compare` (``{}`` for None), checked to map ``known`` names to dicts."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(
            f"options must map estimator names to their options, e.g. {{'gr': {{'k': 100}}}}, "
            f"got {type(options).__name__}"
        )
    unknown = [name for name in options if name not in known]
    if unknown:
        raise ValueError(
            f"options are keyed by estimator names; {', '.join(map(repr, unknown))} is none "
            f"(a misspelling?); known estimators: {', '.join(map(repr, sorted(known)))}"
        )
    for name, value in options.items():
        if not isinstance(value, Mapping):
            raise TypeError(
                f"options[{name!r}] must be a dict of that estimator's options, got {value!r}"
            )
    return options


def gradient_statistics(draws: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """bias, variance, mse, cosine, snr, bias_se of gradient draws ``(n, d)`` against ``(d,)``."""
    mean = draws.mean(0)
    # population variance (exactly 0 for identical draws); torch's var() warns for d = 0
    variance = draws.var(0, unbiased=False).sum() if draws.shape[1] else draws.new_zeros(())
    norms = draws.norm(dim=1) * target.norm()
    cosines = torch.where(norms > 0, draws @ target / norms.clamp_min(1e-300), 0.0)
    return {
        "bias": float((mean - target).norm()),
        "variance": float(variance),
        "mse": float(((draws - target) ** 2).sum(1).mean()),
        "cosine": float(cosines.mean()),
        "snr": float(mean.norm() / variance.sqrt()) if variance > 0 else float("inf"),
        "bias_se": float((variance / draws.shape[0]).sqrt()),
    }


def subsets(n: int, k: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """All ``C(n, k)`` k-subsets of ``range(n)``, sorted indices: a LongTensor ``(C(n, k), k)``."""
    return torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.long,
                        device=device).reshape(-1, k)


def subset_log_probs(logits: torch.Tensor, k: int, law: str = WITHOUT_REPLACEMENT) -> torch.Tensor:
    """``log p(S)`` of every k-subset S (in the order of :func:`subsets`) for logits ``(..., n)``:
    shape ``(C(n, k), ...)``.

    ``law="without-replacement"`` sums the probabilities of the k! orders of S (Gumbel-top-k's
    law); ``law="conditional-poisson"`` is ``sum_{i in S} logits_i - log e_k(exp(logits))``
    (see :mod:`gumbelkit.estimators.subsets`).
    """
    index = subsets(logits.shape[-1], k, device=logits.device)  # (C, k)
    if law == WITHOUT_REPLACEMENT:
        orders = torch.tensor(list(itertools.permutations(range(k))), device=logits.device)
        ordered = index[:, orders]  # (C, k!, k): each subset in each of its orders
        x = logits.reshape(1, 1, -1, logits.shape[-1])
        log_p = ordered_log_prob(x.expand(*ordered.shape[:2], -1, -1),
                                 ordered.unsqueeze(2).expand(-1, -1, x.shape[2], -1))
        return logsumexp(log_p, 1).reshape(index.shape[0], *logits.shape[:-1])
    if law == CONDITIONAL_POISSON:
        log_z = log_elementary(logits, k)[..., -1, -1]
        chosen = logits.movedim(-1, 0)[index].sum(1)  # (C, ...)
        return chosen - log_z
    raise ValueError(f"unknown law {law!r}; known laws: {WITHOUT_REPLACEMENT!r}, "
                     f"{CONDITIONAL_POISSON!r}")


def subset_expectation(
    f: ObjectiveFn,
    logits: torch.Tensor,
    k: int,
    law: str = WITHOUT_REPLACEMENT,
    *,
    max_configurations: int = MAX_CONFIGURATIONS,
) -> torch.Tensor:
    """Exact ``E_S[f(S)]`` over independent k-subsets of each row of logits ``(L, n)``.

    ``f`` follows the contract of :func:`gumbelkit.subset_expectation`: it receives k-hot samples
    of shape ``(N, L, n)`` (all ``N = C(n, k)**L`` configurations) and returns ``(N,)`` or
    ``(N, L)``. ``law`` is the estimator's (``SUBSET_ESTIMATORS[name].law``). Differentiable.
    """
    check_subset(logits, k, -1)
    if logits.dim() != 2:
        raise ValueError(f"exact enumeration needs logits of shape (L, n) (L independent rows), "
                         f"got shape {tuple(logits.shape)}")
    x = upcast(logits)
    n_rows, n = x.shape
    index = subsets(n, k, device=x.device)
    _check_count(index.shape[0], n_rows, "C(n, k)**L", max_configurations)
    rows = configurations(n_rows, index.shape[0], device=x.device)  # (N, L): a subset per row
    hot = torch.zeros(index.shape[0], n, dtype=logits.dtype, device=x.device)
    hot.scatter_(1, index, 1.0)
    log_p = subset_log_probs(x, k, law)  # (C, L)
    return _weighted_sum(f, hot[rows], log_p.gather(0, rows).sum(1), logits, dim=1)


def bernoulli_expectation(
    f: ObjectiveFn, logits: torch.Tensor, *, max_configurations: int = MAX_CONFIGURATIONS
) -> torch.Tensor:
    """Exact ``E_b[f(b)]`` over independent ``b_i ~ Bernoulli(sigmoid(logits_i))``, differentiable.

    ``f`` follows the contract of :func:`gumbelkit.bernoulli.expectation`: it receives all
    ``N = 2**logits.numel()`` configurations as samples ``(N, *logits.shape)`` of 0 and 1 and
    returns ``(N,)``, or ``(N, B)`` for logits of shape ``(B, ...)``.
    """
    x = upcast(check_bernoulli_logits(logits))
    _check_count(2, x.numel(), "2**numel", max_configurations)
    bits = configurations(x.numel(), 2, device=x.device).bool().reshape(-1, *x.shape)
    log_p = torch.where(bits, F.logsigmoid(x), F.logsigmoid(-x)).flatten(1).sum(1)
    return _weighted_sum(f, bits.to(logits.dtype), log_p, logits, dim=max(logits.dim() - 1, 0))


def _check_count(base: int, power: int, what: str, max_configurations: int) -> None:
    total = base**power
    if total > max_configurations:
        raise ValueError(
            f"enumerating {what} = {base}**{power} = {total} configurations exceeds "
            f"max_configurations={max_configurations}; use Monte Carlo instead, or raise "
            "max_configurations if memory allows"
        )


def _weighted_sum(f: ObjectiveFn, samples: torch.Tensor, log_p: torch.Tensor,
                  logits: torch.Tensor, dim: int) -> torch.Tensor:
    """``sum_c p(c) f(c)`` over configurations ``samples`` (N, ...) of log-probability (N,)."""
    values = evaluate(f, samples, logits, dim)
    weights = log_p.exp().to(values.dtype)
    return (weights.reshape(-1, *[1] * (values.dim() - 1)) * values).sum(0)


__all__ += ["subsets", "subset_log_probs", "subset_expectation", "bernoulli_expectation"]


def measure(estimate: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor,
            target: torch.Tensor, n_draws: int) -> dict[str, float]:
    """:func:`gradient_statistics` of ``n_draws`` gradients of ``estimate(leaf).sum()`` to a leaf
    copy of ``logits``, against the flat ``target``, with ``seconds`` per estimate."""
    draws = torch.empty(n_draws, target.numel(), dtype=torch.float64)
    start = time.perf_counter()
    for i in range(n_draws):
        leaf = logits.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(estimate(leaf).sum(), leaf)
        draws[i] = grad.flatten()
    seconds = (time.perf_counter() - start) / n_draws
    return {**gradient_statistics(draws, target.flatten().double()), "seconds": seconds}



def _compare_family(registry, kind, exact_of, estimate_of, logits, estimators, n_draws, tau,
                    n_samples, options):
    """The rows of :func:`subset_compare` and :func:`bernoulli_compare`: ``exact_of(estimator)``
    is the exact expectation as a function of the logits, ``estimate_of(name, n, options)`` the
    Monte Carlo one."""
    n_draws = check_count(n_draws, "n_draws", minimum=2)
    tau_value = check_tau(tau)
    chosen = [lookup(registry, name, kind) for name in estimators]
    rows = []
    for est in chosen:
        n = max(n_samples, est.min_samples)
        leaf = logits.detach().requires_grad_(True)
        (target,) = torch.autograd.grad(exact_of(est)(leaf).sum(), leaf)
        stats = measure(estimate_of(est.name, n, (options or {}).get(est.name, {})), logits,
                        target, n_draws)
        rows.append({"estimator": est.name, "tau": tau_value, "n_samples": n,
                     "n_draws": n_draws, **stats})
    return rows


def subset_compare(
    f: ObjectiveFn,
    logits: torch.Tensor,
    k: int,
    estimators: Iterable[str],
    n_draws: int = 1000,
    tau: float | Schedule = 1.0,
    n_samples: int = 1,
    *,
    generator: torch.Generator | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """:func:`compare` for k-subsets of logits ``(L, n)``: each estimator of
    ``gk.SUBSET_ESTIMATORS`` against the exact gradient of E f under its own ``law`` (also in its
    row). ``n_samples`` is raised to an estimator's minimum (2 for ``rloo``)."""
    def exact_of(est):
        return lambda t: subset_expectation(f, t, k, est.law)

    def estimate_of(name, n, opts):
        return lambda t: mc_subset_expectation(f, t, k, name, n, tau, generator=generator,
                                               **opts)

    rows = _compare_family(SUBSET_ESTIMATORS, "subset estimator", exact_of, estimate_of, logits,
                           estimators, n_draws, tau, n_samples, options)
    return [{**row, "law": SUBSET_ESTIMATORS[row["estimator"]].law} for row in rows]


def bernoulli_compare(
    f: ObjectiveFn,
    logits: torch.Tensor,
    estimators: Iterable[str],
    n_draws: int = 1000,
    tau: float | Schedule = 1.0,
    n_samples: int = 1,
    *,
    generator: torch.Generator | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """:func:`compare` for Bernoulli variables: each estimator of ``gk.bernoulli.ESTIMATORS``
    against the exact gradient of E f over {0,1}^n. ``n_samples`` is raised to an estimator's
    minimum (2 for ``rloo`` and ``disarm``; ``disarm`` needs it even)."""
    def estimate_of(name, n, opts):
        return lambda t: mc_bernoulli_expectation(f, t, name, n, tau, generator=generator,
                                                  **opts)

    return _compare_family(BERNOULLI_ESTIMATORS, "Bernoulli estimator",
                           lambda est: lambda t: bernoulli_expectation(f, t), estimate_of, logits,
                           estimators, n_draws, tau, n_samples, options)


__all__ += ["measure", "subset_compare", "bernoulli_compare"]
