"""A deceptive objective over independent categoricals: a broad local optimum, a narrow global one.

With ``u`` the number of the ``variables`` on their last category, ``f = (variables - 1) - u``
while ``u < variables`` (best at ``u = 0``: the local optimum) and ``f = global_value`` at
``u = variables`` (the global optimum). Relaxed inputs (rows of the simplex) use the soft count
``u = sum_l x_l[last]`` and the piecewise-linear curve through those points, so the relaxed
objective's gradient points to the local optimum everywhere except near the global one.
"""

from __future__ import annotations

import torch

from ..exact import configurations

__all__ = ["Trap"]


class Trap:
    """The deceptive objective, on one-hot or relaxed inputs, and its exact expectation."""

    def __init__(self, variables: int, categories: int, global_value: float) -> None:
        self.variables, self.categories = variables, categories
        self.global_value = global_value
        self.local_value = float(variables - 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """f of inputs of shape (..., variables, categories): shape (...)."""
        u = x[..., -1].sum(-1)
        climb = self.global_value * (u - self.local_value)
        return torch.where(u <= self.local_value, self.local_value - u, climb)

    def expectation(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact E[f] under softmax(logits) for logits (batch, variables, categories): (batch,).

        The batched form of gk.exact.expectation: the sum over all categories**variables
        configurations of their probability times f.
        """
        index = configurations(self.variables, self.categories, device=logits.device)
        values = self(torch.nn.functional.one_hot(index, self.categories).to(logits.dtype))
        log_p = torch.log_softmax(logits, -1)[:, torch.arange(self.variables), index]
        return (log_p.sum(-1).exp() * values).sum(-1)
