"""Exact expectations by enumeration, and estimators' gradients measured against the exact one.

For ``L`` independent categoricals with ``K`` categories each (logits of shape ``(L, K)``), the
``K**L`` joint configurations can be listed when that number is small; then

    E[f(c)] = sum_c p(c) f(c),   p(c) = prod_l softmax(logits_l)[c_l],

is a differentiable function of the logits and its autograd gradient is the exact gradient that
every estimator tries to approximate.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from ._ops import upcast
from ._validate import check_count, check_logits, check_tau
from .estimators import ESTIMATORS, get_estimator
from .estimators.base import ObjectiveFn, evaluate
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
