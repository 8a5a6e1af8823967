"""``gk.sample`` and ``gk.expectation``: every estimator behind one call."""

from __future__ import annotations

import functools
from typing import Any

import torch

from ._ops import expand_samples, upcast
from ._validate import check_count, check_logits, check_tau
from .estimators import Estimator, get_estimator
from .estimators.base import ObjectiveFn, evaluate
from .restricted import check_restriction, restricted
from .schedules import Schedule

__all__ = ["sample", "expectation"]


def floating_objective(f: ObjectiveFn) -> ObjectiveFn:
    """``f``, raising TypeError when it returns a tensor that is not floating point.

    Every expectation (Monte Carlo here, exact in :mod:`gumbelkit.exact`) needs floating values of
    f: an integer or bool result cannot carry a gradient through the samples, so a pathwise
    estimator would differentiate nothing, and torch defines no mean of integers.
    """

    @functools.wraps(f)
    def checked(samples: torch.Tensor) -> torch.Tensor:
        values = f(samples)
        if isinstance(values, torch.Tensor) and not values.is_floating_point():
            raise TypeError(
                f"f must return floating-point values, got dtype {values.dtype}; convert them in "
                "f, e.g. return values.to(samples.dtype)"
            )
        return values

    return checked


def sample(
    logits: torch.Tensor,
    estimator: str | Estimator = "st-gs",
    tau: float | torch.Tensor | Schedule = 1.0,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    **options: Any,
) -> torch.Tensor:
    """A differentiable sample of Categorical(softmax(logits)) along ``dim``.

    The forward value and the gradient are the pathwise ``estimator``'s (see ``gk.ESTIMATORS``);
    ``options`` are its options (``k`` for ``gr``, ``gap`` for ``gst``). Hard estimators return
    one-hot values that are exactly 0 and 1 and, whatever tau, follow softmax(logits) (``argmax-st``
    returns the mode). Score-function estimators have no differentiable sample: use
    :func:`expectation`. ``top_k``, ``top_p`` and ``min_p`` restrict the support first
    (:func:`gumbelkit.restrict`), for every estimator: it then sees the masked logits, so hard
    samples follow the renormalised restricted law and masked categories get zero gradient.
    """
    est = get_estimator(estimator)
    if not est.pathwise:
        raise ValueError(
            f"{est.name!r} is a score-function estimator: it has no differentiable sample. "
            f"Use gk.expectation(f, logits, estimator={est.name!r}, n_samples=...), which "
            "differentiates the expected value of f"
        )
    dim = check_logits(logits, dim)
    tau = check_tau(tau, logits)
    opts = est.check_options(options)
    restriction = check_restriction(top_k, top_p, min_p)
    if logits.numel() == 0:  # an empty result (the estimators' reductions refuse empty dims)
        return logits.clone()
    x = restricted(upcast(logits), dim, *restriction)
    return est.relax(x, tau, dim, generator, **opts).to(logits.dtype)


def expectation(
    f: ObjectiveFn,
    logits: torch.Tensor,
    estimator: str | Estimator = "st-gs",
    n_samples: int = 1,
    tau: float | torch.Tensor | Schedule = 1.0,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """Monte Carlo estimate of ``E_{c ~ softmax(logits)}[f(c)]`` whose gradient is the estimator's.

    ``f`` receives samples of shape ``(n_samples, *logits.shape)`` and returns shape
    ``(n_samples,)``, or ``(n_samples, B)`` with ``B = logits.shape[0]`` when entry b depends
    only on row b, in a floating-point dtype (else TypeError). The result is the mean over
    samples: a scalar, or shape ``(B,)``. Its gradient to ``logits`` and to ``f``'s parameters is
    the estimator's; score-function estimators use the log-probability of the whole sample for a
    scalar f, of each row for a per-row f.
    """
    est = get_estimator(estimator)
    dim = check_logits(logits, dim)
    tau = check_tau(tau, logits)
    n_samples = check_count(n_samples, f"n_samples for {est.name!r}", minimum=est.min_samples)
    opts = est.check_options(options)
    if logits.numel() == 0:  # no categorical to sample: f of the empty samples
        return evaluate(floating_objective(f), expand_samples(logits, n_samples).clone(), logits,
                        dim).mean(0)
    return est.expectation(floating_objective(f), logits, n_samples, tau, dim, generator, **opts)
