"""``GumbelSoftmax``: a ``torch.distributions.Distribution`` over one-hot categories.

``sample`` draws exact one-hot categories; ``rsample`` returns the chosen estimator's differentiable
sample; ``log_prob`` is the categorical log-probability of a one-hot value; ``relaxed_log_prob`` is
the density of a relaxed value under the Concrete distribution (Maddison, Mnih and Teh 2017, eq. 3):

    log p(y) = log((K-1)!) + (K-1) log tau + sum_k (log pi_k - (tau+1) log y_k)
               - K logsumexp_k (log pi_k - tau log y_k).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import Distribution, constraints

from ._ops import one_hot
from ._validate import check_logits, check_tau
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
    support = constraints.simplex
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

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        return estimator_sample(self._expanded(sample_shape), self.estimator, self.tau,
                                **self.options)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = ()) -> torch.Tensor:
        with torch.no_grad():
            logits = self._expanded(sample_shape)
            return one_hot(sample_index(logits, -1, None), logits, -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log softmax(logits)[c] for a one-hot ``value`` selecting c."""
        logits, value = torch.broadcast_tensors(self.logits, value)
        # select before multiplying: 0 * -inf would put NaN into the gradient through value
        return (value * torch.where(value != 0, logits, 0.0)).sum(-1)

    def relaxed_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log-density of a point ``value`` of the open simplex under Concrete(probs, tau)."""
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
