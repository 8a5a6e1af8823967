"""Temperature schedules.

A schedule is a pure callable ``step -> tau`` that also keeps its own step counter, advanced by
:meth:`Schedule.step` the way ``torch.optim.lr_scheduler`` schedulers are. Everywhere gumbelkit
accepts a temperature it accepts a schedule too, and uses the schedule's value at its current step.

The exponential schedule is the one of Jang et al. (2017), "Categorical Reparameterization with
Gumbel-Softmax", section 4: ``tau = max(tau_min, tau0 * exp(-rate * t))`` with ``t`` the step
rounded down to a multiple of ``every`` (the paper updates every N steps).

A schedule's state is its step counter: :meth:`Schedule.state_dict` returns it with the schedule's
kind and parameters (plain Python values, so ``torch.load(..., weights_only=True)`` reads it), and
:meth:`Schedule.load_state_dict` restores the step into a schedule of the same kind and parameters.
Unlike torch's learning-rate schedulers, which overwrite their hyperparameters with the saved ones,
loading into a different schedule raises ValueError: the schedule object is shared with the code
that advances it, and a step of another schedule would give a different temperature without a word.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["Schedule", "Constant", "Exponential", "Linear", "Cosine"]


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _real(name: str, value: float) -> float:
    """``value`` as a float: a real number, not a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def _positive(name: str, value: float) -> float:
    value = _real(name, value)
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

    def _identity(self) -> dict[str, Any]:
        """The schedule's kind and parameters (its constructor's arguments), without the step."""
        parameters = {k: v for k, v in vars(self).items()
                      if k != "last_step" and not k.startswith("_")}
        return {"schedule": type(self).__name__, **parameters}

    def state_dict(self) -> dict[str, Any]:
        """``{"schedule": kind, "last_step": step, **parameters}``: a snapshot in plain values."""
        return {**self._identity(), "last_step": self.last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the step of a :meth:`state_dict` saved by a schedule of this kind and parameters.

        Raises ValueError for a malformed state, or one of another schedule (the message names the
        difference); to resume a different schedule at a saved step, set ``last_step`` instead.
        """
        if not isinstance(state, Mapping) or "last_step" not in state:
            raise ValueError(
                f"a schedule state must be a dict from Schedule.state_dict() with a 'last_step' "
                f"entry, got {state!r}"
            )
        step = state["last_step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"the state's last_step must be an integer >= 0, got {step!r}")
        saved = {k: v for k, v in state.items() if k != "last_step"}
        expected = self._identity()
        if saved != expected:
            raise ValueError(
                f"the state was saved by another schedule ({_describe(saved)}) than this one "
                f"({_describe(expected)}); build the schedule with the saved parameters, or, to "
                f"go on with this one from the saved step, set schedule.last_step = {step}"
            )
        self.last_step = int(step)

    def __repr__(self) -> str:
        return _describe(self._identity())


def _describe(state: Mapping[str, Any]) -> str:
    """``Kind(name=value, ...)`` for a schedule's kind and parameters."""
    fields = ", ".join(f"{k}={v!r}" for k, v in state.items() if k != "schedule")
    return f"{state.get('schedule', '?')}({fields})"


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
        self.rate = _real("rate", rate)
        if not math.isfinite(self.rate) or self.rate < 0:
            raise ValueError(f"rate must be a finite number >= 0, got {rate}")
        self.every = _count("every", every)

    def __call__(self, step: int) -> float:
        # before step 0 it is tau0, as Linear's; a step past 1e300 is as good as infinite
        t = min((max(step, 0) // self.every) * self.every, 10**300)
        exponent = self.rate * t
        return self.tau_min if exponent > 745 else max(  # exp(-745) underflows to 0
            self.tau_min, self.tau0 * math.exp(-exponent))


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
