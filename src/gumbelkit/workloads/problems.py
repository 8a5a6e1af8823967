"""Small objectives over categorical variables whose exact expectation can be enumerated.

Each problem is logits of shape ``(L, K)`` and an ``f`` that follows the contract of
:func:`gumbelkit.expectation` (one-hot samples ``(n, L, K)`` in, values ``(n,)`` out), small enough
for :func:`gumbelkit.exact.expectation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Problem", "PROBLEMS", "make_problem"]


@dataclass(frozen=True)
class Problem:
    name: str
    description: str
    logits: torch.Tensor
    f: Callable[[torch.Tensor], torch.Tensor]


def toy(generator: torch.Generator, **_: float) -> Problem:
    """3 categoricals of 4 categories feeding a fixed random two-layer network."""
    logits = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    hidden = torch.randn(12, 8, generator=generator, dtype=torch.float64)
    out = torch.randn(8, generator=generator, dtype=torch.float64)

    def f(samples: torch.Tensor) -> torch.Tensor:
        return torch.tanh(samples.flatten(1) @ hidden) @ out

    return Problem("toy", "f(c) = tanh(c W1) w2, 3 variables x 4 categories, random weights",
                   logits, f)


def quadratic(generator: torch.Generator, **_: float) -> Problem:
    """(sum_l v[c_l] - t)^2: a quadratic coupling 4 categoricals of 5 categories."""
    n_variables, n_categories = 4, 5
    logits = torch.randn(n_variables, n_categories, generator=generator, dtype=torch.float64)
    values = torch.linspace(0.0, 1.0, n_categories, dtype=torch.float64)
    target = 0.45 * n_variables

    def f(samples: torch.Tensor) -> torch.Tensor:
        return ((samples @ values).sum(1) - target) ** 2

    return Problem("quadratic", "f(c) = (sum_l v[c_l] - 0.45 L)^2, v = linspace(0, 1, 5), "
                   "4 variables x 5 categories", logits, f)


def poly_loss(samples: torch.Tensor, power: float) -> torch.Tensor:
    """Liu et al. (2023)'s loss ``mean_l |z_l - 0.45|^p`` over the variables (the next-to-last
    dimension of one-hot samples ``(..., L, 2)``), with ``z_l = 1`` for category 0."""
    return (samples[..., 0] - 0.45).abs().pow(power).mean(-1)


def poly(generator: torch.Generator, power: float = 2.0, **_: float) -> Problem:
    """Polynomial programming of Liu et al. (2023), section 6.1, at 8 variables.

    ``z_l = 1`` when variable l takes category 0 (of 2); ``f = (1/L) sum_l |z_l - 0.45|^p``; logits
    initialised U(-0.01, 0.01) as in the paper (which uses 128 variables; 8 keep it enumerable).
    """
    n_variables = 8
    logits = (torch.rand(n_variables, 2, generator=generator, dtype=torch.float64) - 0.5) * 0.02

    def f(samples: torch.Tensor) -> torch.Tensor:
        return poly_loss(samples, power)

    return Problem("poly", f"f(c) = mean_l |z_l - 0.45|^{power:g}, z_l = [c_l == 0], "
                   "8 variables x 2 categories (Liu et al. 2023)", logits, f)


PROBLEMS: dict[str, Callable[..., Problem]] = {"toy": toy, "quadratic": quadratic, "poly": poly}


def make_problem(name: str, seed: int = 0, **parameters: float) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; known problems: {', '.join(PROBLEMS)}")
    return PROBLEMS[name](torch.Generator().manual_seed(seed), **parameters)


@dataclass(frozen=True)
class SubsetProblem(Problem):
    """``k`` of the ``n`` entries of each row of logits ``(L, n)``: for gk.subset_expectation."""

    k: int = 2


@dataclass(frozen=True)
class BernoulliProblem(Problem):
    """Independent binary variables of log-odds ``logits``: for gk.bernoulli.expectation."""


def _network(generator: torch.Generator, inputs: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A fixed random two-layer network ``tanh(x W1) w2`` of flattened samples ``(n, ...)``."""
    hidden = torch.randn(inputs, 8, generator=generator, dtype=torch.float64)
    out = torch.randn(8, generator=generator, dtype=torch.float64)

    def f(samples: torch.Tensor) -> torch.Tensor:
        return torch.tanh(samples.flatten(1) @ hidden) @ out

    return f


def subset(generator: torch.Generator, **_: float) -> SubsetProblem:
    """2 of 6 entries in each of 2 rows (15**2 = 225 configurations) feeding a random network."""
    logits = torch.randn(2, 6, generator=generator, dtype=torch.float64)
    return SubsetProblem("subset", "f(S) = tanh(S W1) w2, k = 2 of n = 6 entries in each of 2 "
                         "rows, random weights", logits, _network(generator, 12), k=2)


def bernoulli(generator: torch.Generator, **_: float) -> BernoulliProblem:
    """8 binary variables (2**8 = 256 configurations) feeding a random network."""
    logits = torch.randn(8, generator=generator, dtype=torch.float64)
    return BernoulliProblem("bernoulli", "f(b) = tanh(b W1) w2, 8 Bernoulli(sigmoid(logits)) "
                            "variables, random weights", logits, _network(generator, 8))


PROBLEMS.update(subset=subset, bernoulli=bernoulli)
