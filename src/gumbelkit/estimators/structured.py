"""What the estimators of k-subsets and binary vectors share: score functions, registry look-up.

The estimator is the categorical one's (:mod:`gumbelkit.estimators.score_function`): its options
and its advantages ``A_s`` (``f`` itself for ``reinforce``, the leave-one-out difference for
``rloo``). Only the sampler and the log-probability ``log p(x)`` of a sample change; the surrogate

    mean_s [f(x_s) + A_s (log p(x_s) - stop_gradient(log p(x_s)))]

has the value ``mean_s f(x_s)`` and the gradient ``mean_s A_s grad log p(x_s)`` to the logits,
unbiased for ``E[f(x)]`` (Williams 1992), with ``log p`` summed over the whole sample for a scalar
``f`` and over each row for a per-row ``f``, as in :class:`~.base.ScoreFunctionEstimator`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch

from .._ops import upcast
from .base import Estimator, ScoreFunctionEstimator, evaluate


class StructuredScoreFunction(Estimator):
    """The score-function estimator ``source`` for the variable that :meth:`draw` samples.

    ``structure`` names the keyword arguments that describe the variable (``k`` for subsets);
    :meth:`expectation` passes them to :meth:`draw` and the options to ``source``'s advantages.
    """

    pathwise = False
    noise = "sampling"
    structure: ClassVar[tuple[str, ...]] = ()

    def __init__(self, source: ScoreFunctionEstimator) -> None:
        self.source = source
        self.name = source.name
        self.option_specs = source.option_specs
        self.min_samples = source.min_samples

    @abstractmethod
    def draw(
        self, logits: torch.Tensor, n_samples: int, dim: int,
        generator: torch.Generator | None, **structure: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact samples ``(n, *logits.shape)`` and the log-probabilities of their parts, of
        shape ``(n, ...)`` with the rows of ``logits`` first (summed here within rows)."""

    def expectation(self, f, logits, n_samples, tau, dim, generator, **options):
        structure = {name: options.pop(name) for name in self.structure}
        samples, log_p = self.draw(upcast(logits), n_samples, dim, generator, **structure)
        values = evaluate(f, samples.to(logits.dtype), logits, dim)
        log_p = log_p.reshape(*values.shape, -1).sum(-1)
        weights = self.source.advantages(values.detach(), **options).to(log_p.dtype)
        return (values + (weights * (log_p - log_p.detach())).to(values.dtype)).mean(0)

