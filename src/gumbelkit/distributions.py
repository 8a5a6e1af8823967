"""``GumbelSoftmax``: a ``torch.distributions.Distribution`` over one-hot categories.

Two paths, side by side:

- hard (the distribution's own law, Categorical(softmax(logits)) over one-hot vectors, its
  ``support`` ``constraints.one_hot`` as in torch's ``OneHotCategorical``): ``sample()`` draws
  exact one-hot categories, and so does ``rsample()`` with a hard estimator (``st-gs``, ``gr``,
  ...), with that estimator's gradient; ``log_prob(value)`` is the categorical
  log-probability ``log softmax(logits)[c]`` of a one-hot ``value`` selecting c;
- relaxed: ``rsample()`` with a soft estimator (``gs``) returns a point of the simplex,
  Concrete(probs, tau) distributed; ``relaxed_log_prob(value)`` is its density (Maddison, Mnih and
  Teh 2017, eq. 3):

      log p(y) = log((K-1)!) + (K-1) log tau + sum_k (log pi_k - (tau+1) log y_k)
                 - K logsumexp_k (log pi_k - tau log y_k).

While argument validation is on (``validate_args``, by default torch's
``Distribution.set_default_validate_args``), ``log_prob`` raises ValueError for a value that is not
one-hot (NaN included) or whose shape does not end in the event shape and broadcast with the batch
shape, and ``relaxed_log_prob`` for a value off the simplex.

How this differs from pyro: ``pyro.distributions.RelaxedOneHotCategoricalStraightThrough.rsample``
also returns one-hot values, but its ``log_prob`` evaluates the *relaxed* (Concrete) density at the
soft sample hidden behind the one-hot value. Here ``log_prob`` of a one-hot value is always the
categorical log-probability of that category, whichever estimator drew it; the Concrete density is
``relaxed_log_prob``, for relaxed values.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import Distribution, constraints

from ._ops import one_hot
from ._validate import check_logits, check_tau, check_tensor, validation_enabled
from .estimators import Estimator, get_estimator
from .expectation import sample as estimator_sample
from .sampling import sample_index
from .schedules import Schedule

__all__ = ["GumbelSoftmax"]


class GumbelSoftmax(Distribution):
    """Categorical(softmax(logits)) over one-hot vectors, with an estimator's ``rsample``.

    Give exactly one of ``logits`` (``-inf`` masks a category) or ``probs``. ``tau`` may be a
    schedule; ``options`` go to the estimator (``k`` for ``gr``, ``gap`` for ``gst``).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}  # checked by gumbelkit's validation
    support = constraints.one_hot
    has_rsample = True

    def __init__(
        self,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
        tau: float | torch.Tensor | Schedule = 1.0,
        estimator: str | Estimator = "st-gs",
        validate_args: bool | None = None,
        **options: Any,
    ) -> None:
        if (logits is None) == (probs is None):
            raise ValueError("give exactly one of logits or probs")
        if logits is None:
            probs = check_tensor(probs, "probs")
            if validation_enabled() and probs.numel() and bool((probs < 0).any()):
                raise ValueError("probs must be >= 0 (they are normalised along the last dim)")
            logits = probs.log()
        check_logits(logits, -1)
        check_tau(tau)
        self.estimator = get_estimator(estimator)
        if not self.estimator.pathwise:
            raise ValueError(
                f"{self.estimator.name!r} is a score-function estimator and has no rsample; "
                "use gk.expectation for it"
            )
        self.options = self.estimator.check_options(options)
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.tau = tau
        super().__init__(self.logits.shape[:-1], self.logits.shape[-1:], validate_args)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.exp()

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return one_hot(self.logits.argmax(-1), self.logits, -1)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return type(self)(logits=self.logits.expand(shape), tau=self.tau,
                          estimator=self.estimator, validate_args=self._validate_args,
                          **self.options)

    def _expanded(self, sample_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        return self.logits.expand(self._extended_shape(torch.Size(sample_shape)))

    def rsample(
        self,
        sample_shape: torch.Size | tuple[int, ...] = (),
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return estimator_sample(self._expanded(sample_shape), self.estimator, self.tau,
                                generator=generator, **self.options)

    def sample(
        self,
        sample_shape: torch.Size | tuple[int, ...] = (),
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        with torch.no_grad():
            logits = self._expanded(sample_shape)
            return one_hot(sample_index(logits, -1, generator), logits, -1)

    def _check_value(self, value: torch.Tensor, support: constraints.Constraint,
                     advice: str) -> None:
        """ValueError, while validation is on, for a value of the wrong shape or off ``support``."""
        if not self._validate_args:
            return
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"value must be a tensor, got {type(value).__name__}")
        shape = tuple(value.shape)
        fits = shape[-1:] == tuple(self.event_shape)
        if fits:
            try:
                torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
            except RuntimeError:
                fits = False
        if not fits:
            raise ValueError(
                f"value of shape {shape} does not fit the distribution: its last dimension must "
                f"be the {self.event_shape[0]} categories and the others must broadcast with the "
                f"batch shape {tuple(self.batch_shape)}"
            )
        if not support.check(value).all():
            raise ValueError(f"value is not in the support {support} (NaN or another value "
                             f"outside it): {advice}")

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log softmax(logits)[c] for a one-hot ``value`` selecting c."""
        self._check_value(value, constraints.one_hot,
                          "log_prob takes one-hot values, as sample() and hard estimators' "
                          "rsample() return; for a relaxed value use relaxed_log_prob")
        logits, value = torch.broadcast_tensors(self.logits, value)
        # select before multiplying: 0 * -inf would put NaN into the gradient through value
        return (value * torch.where(value != 0, logits, 0.0)).sum(-1)

    def relaxed_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log-density of a point ``value`` of the open simplex under Concrete(probs, tau)."""
        self._check_value(value, constraints.simplex,
                          "relaxed_log_prob takes points of the simplex (non-negative, summing "
                          "to 1), as the gs estimator's rsample() returns")
        tau = check_tau(self.tau)
        k = self.logits.shape[-1]
        log_y = value.log()
        log_tau = tau.log() if isinstance(tau, torch.Tensor) else math.log(tau)
        return (
            math.lgamma(k)
            + (k - 1) * log_tau
            + (self.logits - (tau + 1) * log_y).sum(-1)
            - k * (self.logits - tau * log_y).logsumexp(-1)
        )

    def entropy(self) -> torch.Tensor:
        p = self.probs
        return -(p * torch.where(p > 0, self.logits, 0.0)).sum(-1)
