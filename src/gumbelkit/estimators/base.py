"""What every estimator is: a way to differentiate E_{c ~ softmax(logits)}[f(c)].

Two families share this interface:

- pathwise estimators build a differentiable stand-in for the sample (soft, or hard with a
  surrogate gradient) and let autograd carry ``f``'s gradient through it;
- score-function estimators sample exactly and weight ``grad log p(c)`` by ``f(c)``.

:meth:`Estimator.expectation` is the one objective they all serve (DESIGN.md section 2).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from .._ops import expand_samples, one_hot, upcast
from ..sampling import sample_index
from .options import Option

ObjectiveFn = Callable[[torch.Tensor], torch.Tensor]


def evaluate(
    f: ObjectiveFn, samples: torch.Tensor, logits: torch.Tensor, dim: int
) -> torch.Tensor:
    """Call ``f`` on samples of shape ``(n, *logits.shape)`` and check what it returns.

    Per-row values ``(n, B)`` need rows along the first dimension of ``logits``, so not ``dim=0``.
    """
    values = f(samples)
    n = samples.shape[0]
    allowed = [(n,)]
    if logits.dim() >= 2 and dim != 0:
        allowed.append((n, logits.shape[0]))
    if not isinstance(values, torch.Tensor) or tuple(values.shape) not in allowed:
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(
            f"f must return a tensor of shape (n_samples,) = {allowed[0]}"
            + (f" or (n_samples, B) = {allowed[1]}" if len(allowed) > 1 else "")
            + f" (one value per sample, or per sample and row of logits), got {got}"
            + ("; per-row values need the rows along the first dimension of logits, which "
               "dim=0 makes the category dimension" if dim == 0 and logits.dim() >= 2 else "")
        )
    return values


class Estimator(ABC):
    """A gradient estimator for categorical variables. Subclasses set the class attributes.

    The class attributes are the estimator's metadata, read by the README's table, ``gumbelkit
    compare``, the lab and the benchmarks instead of lists kept by hand:

    - ``forward``: what the forward value is: ``"soft"`` (a point of the simplex), ``"one-hot"``
      (a sampled category) or ``"mode"`` (the one-hot argmax of the logits);
    - ``noise``: ``"none"``, ``"gumbel"`` (Gumbel perturbations the gradient uses) or
      ``"sampling"`` (only the sampled category is used);
    - ``pathwise``: whether :func:`gumbelkit.sample` gives a differentiable sample (score-function
      estimators work through :func:`gumbelkit.expectation` only);
    - ``reference``: the paper, ``gradient``: the gradient in a few words;
    - ``option_specs``: its options (:class:`~gumbelkit.estimators.options.Option`: default,
      check, help), ``min_samples``: the least ``n_samples`` it takes;
    - ``uses_tau``: whether the call's ``tau`` changes anything, ``advised_tau``: the temperature
      its authors advise, where they do.
    """

    name: ClassVar[str]
    forward: ClassVar[str] = "one-hot"
    noise: ClassVar[str]
    pathwise: ClassVar[bool]
    reference: ClassVar[str]
    gradient: ClassVar[str]
    min_samples: ClassVar[int] = 1
    option_specs: ClassVar[tuple[Option, ...]] = ()
    uses_tau: ClassVar[bool] = True
    advised_tau: ClassVar[str] = ""

    @property
    def citation(self) -> str:
        """``reference`` as cited in the README: three or more authors become "First et al."."""
        short = []
        for work in self.reference.split("; "):
            authors, _, year = work.rpartition(" ")
            if "," in authors:
                authors = authors.split(",")[0] + " et al."
            short.append(f"{authors} {year}".strip())
        return "; ".join(short)

    @property
    def defaults(self) -> dict[str, Any]:
        """Each option's default value."""
        return {spec.name: spec.default for spec in self.option_specs}

    def check_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Fill in defaults; reject options this estimator does not take, or bad values."""
        specs = {spec.name: spec for spec in self.option_specs}
        unknown = sorted(set(options) - set(specs))
        if unknown:
            accepted = ", ".join(sorted(specs)) or "none"
            raise ValueError(
                f"estimator {self.name!r} takes no option {', '.join(map(repr, unknown))}; "
                f"options it accepts: {accepted}"
            )
        return {name: spec.check(options.get(name, spec.default), f"{self.name} option {name}")
                for name, spec in specs.items()}

    @abstractmethod
    def expectation(
        self,
        f: ObjectiveFn,
        logits: torch.Tensor,
        n_samples: int,
        tau: float,
        dim: int,
        generator: torch.Generator | None,
        **options: Any,
    ) -> torch.Tensor:
        """Mean of ``f`` over ``n_samples`` samples; its gradient is this estimator's.

        ``logits`` are validated, ``dim`` is non-negative and ``options`` checked by the caller.
        """

    def __repr__(self) -> str:
        return f"<estimator {self.name!r}>"


class PathwiseEstimator(Estimator):
    """An estimator with a differentiable sample: subclasses implement :meth:`relax`."""

    pathwise = True

    @abstractmethod
    def relax(
        self,
        logits: torch.Tensor,
        tau: float,
        dim: int,
        generator: torch.Generator | None,
        **options: Any,
    ) -> torch.Tensor:
        """The differentiable sample for float32/float64 ``logits`` (validated), same shape."""

    def expectation(self, f, logits, n_samples, tau, dim, generator, **options):
        batch = expand_samples(upcast(logits), n_samples)
        samples = self.relax(batch, tau, dim + 1, generator, **options).to(logits.dtype)
        return evaluate(f, samples, logits, dim).mean(0)


class ScoreFunctionEstimator(Estimator):
    """REINFORCE-style estimators: subclasses implement :meth:`advantages`.

    The surrogate ``mean_s[f_s + A_s * (log p_s - stop_gradient(log p_s))]`` has the value
    ``mean_s f_s`` exactly, the pathwise gradient of ``f`` to its own parameters, and the gradient
    ``mean_s A_s * grad log p_s`` to the logits, where ``log p_s`` is the log-probability of the
    whole sample for a scalar ``f`` and of each row for a per-row ``f``.
    """

    pathwise = False
    noise = "sampling"

    @abstractmethod
    def advantages(self, values: torch.Tensor, **options: Any) -> torch.Tensor:
        """Weights ``A_s`` of the score for detached values of shape ``(n, ...)``."""

    def expectation(self, f, logits, n_samples, tau, dim, generator, **options):
        x = upcast(logits)
        batch = expand_samples(x, n_samples)
        index = sample_index(batch, dim + 1, generator)
        samples = one_hot(index, batch, dim + 1)
        values = evaluate(f, samples.to(logits.dtype), logits, dim)
        log_p = sample_log_prob(x, index, values.shape, dim)
        weights = self.advantages(values.detach(), **options)
        return score_surrogate(values, weights, log_p).mean(0)


def sample_log_prob(
    logits: torch.Tensor, index: torch.Tensor, rows: torch.Size, dim: int
) -> torch.Tensor:
    """log p of each sample, shape ``rows``: ``(n,)`` for the whole sample, ``(n, B)`` per row.

    ``index`` (``(n, *logits.shape)`` without the category dimension ``dim + 1``) holds sampled
    categories of Categorical(softmax(logits)); their log-probabilities are summed within each
    sample, or within each row along the first dimension of ``logits``.
    """
    log_p = torch.log_softmax(logits, dim).unsqueeze(0).expand(index.shape[0], *logits.shape)
    log_p = log_p.gather(dim + 1, index.unsqueeze(dim + 1)).squeeze(dim + 1)
    return log_p.reshape(*rows, math.prod(log_p.shape[len(rows):])).sum(-1)


def score_surrogate(
    values: torch.Tensor, weights: torch.Tensor, log_p: torch.Tensor
) -> torch.Tensor:
    """``values + weights * (log_p - stop_gradient(log_p))``: the value ``values`` exactly, and the
    gradient ``weights * grad log_p`` to the logits (``weights`` are not differentiated there)."""
    return values + (weights.to(log_p.dtype) * (log_p - log_p.detach())).to(values.dtype)


def lookup(registry: Mapping[str, Estimator], name: str | Estimator, kind: str) -> Estimator:
    """The estimator called ``name`` in ``registry`` (one of its instances is returned as is)."""
    if isinstance(name, Estimator) and name in registry.values():
        return name
    try:
        return registry[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(n) for n in registry)
        raise ValueError(f"unknown {kind} {name!r}; known: {known}") from None
