"""A contextual bandit with exact returns, and one critic MLP per seed evaluated as a batch.

There are ``states`` states; an action is ``components`` categorical choices of ``choices``
options each (``choices**components`` joint actions per state). The reward of a joint action is a
sum of unary and pairwise-interaction terms (random per seed, so the best joint action needs
coordination), rescaled per state to [0, 1] over the joint actions (the optimal return is 1). For a
product of marginals ``x`` (one row-stochastic ``(components, choices)`` matrix per state) the
expected reward is the multilinear extension ``R(x)``: the true return of a policy, and the true
value of any soft input shown to a critic.

``seeds`` is a number of seeds or a sequence of seed ids: a repeated id gives an identical copy
(the same reward table, the same critic initialisation), so that several settings of one seed
(temperatures, say) can be batched together and stay paired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..exact import configurations

__all__ = ["Bandit", "BatchedCritics"]


def _ids(seeds: int | Sequence[int]) -> list[int]:
    """The seed ids: ``range(seeds)`` for a number, else the given ids (repeats allowed)."""
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


class Bandit:
    """Per-seed reward tables, as the multilinear extension rescaled to [0, 1] per state."""

    def __init__(self, seeds: int | Sequence[int], states: int, components: int, choices: int,
                 device: torch.device) -> None:
        s, c, k = states, components, choices
        unary, pair = [], []
        for seed in _ids(seeds):
            gen = torch.Generator().manual_seed(10_000 + seed)
            unary.append(0.5 * torch.randn(s, c, k, generator=gen))
            pair.append(torch.randn(s, c, c, k, k, generator=gen))
        upper = torch.triu(torch.ones(c, c), 1)[None, None, :, :, None, None]
        self.unary = torch.stack(unary).to(device)
        self.pair = (torch.stack(pair) * upper).to(device)
        joint = configurations(c, k, device=device)
        actions = torch.nn.functional.one_hot(joint, k).float()[:, None, None]
        raw = self._raw(actions.expand(-1, len(unary), s, c, k))  # (K**L, seeds, states)
        self.low, self.high = raw.min(0).values, raw.max(0).values

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        unary = (x * self.unary).sum((-1, -2))
        return unary + torch.einsum("...bslk,bslmkj,...bsmj->...bs", x, self.pair, x)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """Expected reward of inputs x, shape (..., seeds, states, L, K) -> (..., seeds, states)."""
        return (self._raw(x) - self.low) / (self.high - self.low)


class BatchedCritics(torch.nn.Module):
    """One ReLU MLP ``Q(s, a)`` on [one-hot s, flattened a] per seed, as batched products."""

    def __init__(self, seeds: int | Sequence[int], states: int, action_size: int, hidden: int,
                 device: torch.device) -> None:
        super().__init__()
        sizes = [states + action_size, hidden, hidden, 1]
        gens = [torch.Generator().manual_seed(20_000 + seed) for seed in _ids(seeds)]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / math.sqrt(n_in)  # torch.nn.Linear's default initialisation range
            w = [(torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound for g in gens]
            b = [(torch.rand(n_out, generator=g) * 2 - 1) * bound for g in gens]
            self.weights.append(torch.nn.Parameter(torch.stack(w).to(device)))
            self.biases.append(torch.nn.Parameter(torch.stack(b).to(device)))

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        """Q of actions of shape (n, seeds, states, L, K): shape (n, seeds, states)."""
        n, seeds, states = actions.shape[:3]
        state = torch.eye(states, device=actions.device, dtype=actions.dtype)
        h = torch.cat([state.expand(n, seeds, states, states), actions.flatten(3)], -1)
        h = h.transpose(0, 1).reshape(seeds, n * states, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b.unsqueeze(1), h, w)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h.reshape(seeds, n, states).transpose(0, 1)
