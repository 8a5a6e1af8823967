"""Temperature schedules.

A schedule is a pure callable ``step -> tau`` that also keeps its own step counter, advanced by
:meth:`Schedule.step` the way ``torch.optim.lr_scheduler`` schedulers are. Everywhere gumbelkit
accepts a temperature it accepts a schedule too, and uses the schedule's value at its current step.

The exponential schedule is the one of Jang et al. (2017), "Categorical Reparameterization with
Gumbel-Softmax", section 4: ``tau = max(tau_min, tau0 * exp(-rate * t))`` with ``t`` the step
rounded down to a multiple of ``every`` (the paper updates every N steps).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["Schedule", "Constant", "Exponential", "Linear", "Cosine"]


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


class Schedule:
    """Base class: subclasses implement :meth:`__call__` (the value at a step)."""

    def __init__(self) -> None:
        self._tensor: torch.Tensor | None = None
        self.last_step = 0

    @property
    def last_step(self) -> int:
        """The current step (set by :meth:`step`, or directly)."""
        return self._last_step

    @last_step.setter
    def last_step(self, step: int) -> None:
        self._last_step = step
        if self._tensor is not None:
            self._tensor.fill_(self(step))

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    @property
    def value(self) -> float:
        """The temperature at the current step."""
        return self(self.last_step)

    def tensor(self) -> torch.Tensor:
        """The temperature at the current step as a 0-dim float64 tensor, one tensor updated in
        place whenever the step changes: compiled code reads it as an input, so stepping the
        schedule does not recompile (a Python float would be a constant of the graph)."""
        if self._tensor is None:
            self._tensor = torch.tensor(self.value, dtype=torch.float64)
        return self._tensor

    def step(self) -> float:
        """Advance the step counter by one and return the new temperature."""
        self.last_step += 1
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step = int(state["last_step"])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Constant(Schedule):
    """``tau(t) = tau``."""

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = _positive("tau", tau)

    def __call__(self, step: int) -> float:
        return self.tau


class Exponential(Schedule):
    """``tau(t) = max(tau_min, tau0 * exp(-rate * every * floor(t / every)))``, Jang et al. 2017."""

    def __init__(self, tau0: float, rate: float, tau_min: float = 0.5, every: int = 1) -> None:
        super().__init__()
        self.tau0 = _positive("tau0", tau0)
        self.tau_min = _positive("tau_min", tau_min)
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"rate must be a finite number >= 0, got {rate}")
        self.rate = float(rate)
        self.every = _count("every", every)

    def __call__(self, step: int) -> float:
        t = (step // self.every) * self.every
        return max(self.tau_min, self.tau0 * math.exp(-self.rate * t))


class _Interpolating(Schedule):
    """From ``tau0`` at step 0 to ``tau_end`` at ``steps``, constant afterwards."""

    def __init__(self, tau0: float, tau_end: float, steps: int) -> None:
        super().__init__()
        self.tau0 = _positive("tau0", tau0)
        self.tau_end = _positive("tau_end", tau_end)
        self.steps = _count("steps", steps)

    def _shape(self, fraction: float) -> float:
        """Fraction of the way from tau0 to tau_end, for a fraction of the steps in [0, 1]."""
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        fraction = min(max(step, 0), self.steps) / self.steps
        return self.tau0 + (self.tau_end - self.tau0) * self._shape(fraction)


class Linear(_Interpolating):
    """``tau(t) = tau0 + (tau_end - tau0) * min(t, steps) / steps``."""

    def _shape(self, fraction: float) -> float:
        return fraction


class Cosine(_Interpolating):
    """``tau(t) = tau_end + (tau0 - tau_end) * (1 + cos(pi * min(t, steps) / steps)) / 2``."""

    def _shape(self, fraction: float) -> float:
        return (1.0 - math.cos(math.pi * fraction)) / 2.0
