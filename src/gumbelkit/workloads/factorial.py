"""Noise separated from estimator: forward (deterministic or sampled) x backward (relaxed or ST).

The seed thread asks what Gumbel noise adds to a softmax with temperature, but its estimators
differ in two things at once: whether the forward value is sampled, and whether the backward pass
differentiates the relaxation itself or passes a one-hot value straight through. One estimator
with a noise scale ``alpha`` separates them:

    z = logits + alpha * G,   G ~ Gumbel(0, 1)
    relaxed:           y = softmax(z / tau)
    straight-through:  y = one_hot(argmax z), with the gradient of softmax(z / tau)

``alpha = 0`` is softmax-tau (relaxed) and argmax-st (straight-through), the deterministic forward;
``alpha = 1`` is gs and st-gs (Jang et al. 2017), exact samples of softmax(logits) in the
straight-through forward; ``alpha`` in between or above scales the noise (0.5: samples of
softmax(2 logits), 2: of softmax(logits / 2)). An experiment that runs :data:`CELLS` with the exact
gradient and ``rloo`` as references can say what the noise does (``alpha``, at a fixed backward)
and what the relaxation or the straight-through does (the backward, at a fixed ``alpha``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._ops import one_hot, replace_gradient, tempered_softmax
from ..estimators.base import PathwiseEstimator
from ..noise import gumbel_like

__all__ = ["ALPHAS", "BACKWARDS", "CELLS", "Cell", "ScaledNoise"]

ALPHAS = (0.0, 0.5, 1.0, 2.0)
BACKWARDS = ("relaxed", "straight-through")


class ScaledNoise(PathwiseEstimator):
    """softmax((logits + alpha G) / tau), relaxed or straight-through (module docstring)."""

    noise = "gumbel"
    reference = "Jang, Gu and Poole 2017 (alpha = 1); the seed thread's softmax-tau (alpha = 0)"
    gradient = "of softmax((logits + alpha G) / tau)"

    def __init__(self, alpha: float, straight_through: bool) -> None:
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.straight_through = bool(straight_through)
        self.forward = "one-hot" if straight_through else "soft"
        self.name = f"{BACKWARDS[straight_through]} alpha={alpha:g}"

    def relax(self, logits, tau, dim, generator):
        perturbed = logits + self.alpha * gumbel_like(logits, generator) if self.alpha else logits
        soft = tempered_softmax(perturbed, tau, dim)
        if not self.straight_through:
            return soft
        return replace_gradient(one_hot(perturbed.detach().argmax(dim), soft, dim), soft)


@dataclass(frozen=True)
class Cell:
    """One cell of the factorial: a noise scale and a backward pass."""

    alpha: float
    backward: str

    @property
    def estimator(self) -> ScaledNoise:
        return ScaledNoise(self.alpha, self.backward == "straight-through")

    @property
    def label(self) -> str:
        return self.estimator.name

    @property
    def known_as(self) -> str:
        """The registry's name for the cells that have one (softmax, argmax-st, gs, st-gs)."""
        names = {(0.0, "relaxed"): "softmax", (0.0, "straight-through"): "argmax-st",
                 (1.0, "relaxed"): "gs", (1.0, "straight-through"): "st-gs"}
        return names.get((self.alpha, self.backward), "")


CELLS = tuple(Cell(alpha, backward) for backward in BACKWARDS for alpha in ALPHAS)
