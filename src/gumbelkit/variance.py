"""``gk.variance_step``: tune an estimator's control variate by minimising its variance.

For an unbiased estimator ``g_hat`` of ``grad E[f]`` whose control variate has parameters ``phi``
(``rebar``'s ``eta`` and ``temperature``, ``relax``'s surrogate module too), ``E[g_hat]`` does not
depend on ``phi``, so ``d Var(g_hat) / d phi = d E[||g_hat||^2] / d phi``, and
``d ||g_hat||^2 / d phi = 2 g_hat^T d g_hat / d phi`` from a single estimate is an unbiased
estimate of it: how Tucker et al. (2017) tune REBAR's eta and temperature, and Grathwohl et al.
(2018) RELAX's surrogate (their Algorithm 1).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .estimators import Estimator, get_estimator
from .estimators.base import ObjectiveFn
from .expectation import expectation
from .schedules import Schedule

__all__ = ["VarianceStep", "variance_step"]


class VarianceStep(NamedTuple):
    value: torch.Tensor  # the estimate of E[f] (detached)
    gradient: torch.Tensor  # the estimator's gradient to the logits (detached)
    second_moment: torch.Tensor  # ||gradient||^2, whose gradient the optimizer stepped along


def variance_step(
    f: ObjectiveFn,
    logits: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    estimator: str | Estimator = "relax",
    n_samples: int = 1,
    tau: float | Schedule = 1.0,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> VarianceStep:
    """One step of ``optimizer`` on the control-variate parameters, down ``d ||g_hat||^2 / d phi``.

    ``g_hat`` is the gradient to ``logits`` of ``gk.expectation(f, logits, estimator, ...)`` with
    ``options`` (tensors requiring grad for ``eta`` / ``temperature``, a module for ``surrogate``);
    ``optimizer`` holds those parameters only (not the logits, nor f's parameters). Returns the
    estimate, ``g_hat`` (use it for the logits' own update, e.g. ``logits.grad = step.gradient``)
    and ``||g_hat||^2``. The optimizer's parameters get the gradient of ``||g_hat||^2`` as their
``.grad`` (replacing what was there) before the step.

    Example::

        log_temperature = torch.zeros((), requires_grad=True)
        eta = torch.ones((), requires_grad=True)
        tuner = torch.optim.Adam([eta, log_temperature], lr=1e-2)
        step = gk.variance_step(f, logits, tuner, "rebar", eta=eta,
                                temperature=log_temperature.exp())
    """
    est = get_estimator(estimator)
    if not any(spec.learnable for spec in est.option_specs):
        raise ValueError(f"estimator {est.name!r} has no control-variate parameters to tune; "
                         "use 'rebar' or 'relax'")
    if not isinstance(logits, torch.Tensor) or not logits.requires_grad:
        raise ValueError("logits must require grad: the variance is that of their gradient")
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if any(p is logits for p in parameters):
        raise ValueError("the optimizer must hold the control-variate parameters only, not the "
                         "logits: variance_step returns the logits' gradient for their own update")
    value = expectation(f, logits, est, n_samples, tau, dim, generator=generator, **options)
    (gradient,) = torch.autograd.grad(value.sum(), logits, create_graph=True)
    second_moment = gradient.pow(2).sum()
    tunable = [p for p in parameters if p.requires_grad]
    grads = torch.autograd.grad(second_moment, tunable, allow_unused=True) \
        if second_moment.requires_grad and tunable else [None]
    if all(g is None for g in grads):
        raise ValueError(f"the {est.name!r} estimate does not depend on the optimizer's "
                         "parameters: pass them as options (e.g. eta=eta, "
                         "temperature=log_temperature.exp(), surrogate=module)")
    for p, g in zip(tunable, grads, strict=True):
        p.grad = torch.zeros_like(p) if g is None else g
    optimizer.step()
    return VarianceStep(value.detach(), gradient.detach(), second_moment.detach())
