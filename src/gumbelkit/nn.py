"""``GumbelSoftmax``: a module that turns logits into (differentiable) categorical samples."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ._ops import one_hot
from ._validate import check_logits, check_tau
from .estimators import Estimator, get_estimator
from .expectation import sample
from .schedules import Schedule

__all__ = ["GumbelSoftmax"]


class GumbelSoftmax(nn.Module):
    """Samples with a pathwise estimator in training mode; returns the one-hot mode in eval mode.

    ``tau`` may be a :class:`~gumbelkit.schedules.Schedule`; the module reads its current value
    at every call (advance it with ``schedule.step()``; compiled, the module reads the schedule's
    tensor and does not recompile). A tensor ``tau`` (e.g. an ``nn.Parameter``, then registered
    with the module) is a learnable temperature. ``sample_in_eval=True`` keeps sampling in
    eval mode. ``options`` go to the estimator (``k`` for ``gr``, ``gap`` for ``gst``).

    The module's ``state_dict`` holds its temperature (as the extra state ``_extra_state``, plain
    values that ``torch.load(..., weights_only=True)`` reads): the schedule's state with its step,
    or the constant tau. ``load_state_dict`` restores the step of a schedule of the same kind and
    parameters, accepts the same constant, and raises ValueError for any other temperature (a
    schedule into a constant or the reverse, other parameters, another constant), so that resuming
    never changes tau silently. To load weights under another tau on purpose, first replace the
    checkpoint's ``..._extra_state`` entry of this module by ``module.get_extra_state()``.
    """

    def __init__(
        self,
        estimator: str | Estimator = "st-gs",
        tau: float | torch.Tensor | Schedule = 1.0,
        dim: int = -1,
        *,
        sample_in_eval: bool = False,
        **options: Any,
    ) -> None:
        super().__init__()
        self.estimator = get_estimator(estimator)
        if not self.estimator.pathwise:
            raise ValueError(
                f"{self.estimator.name!r} is a score-function estimator: a module cannot return a "
                "differentiable sample for it; use gk.expectation"
            )
        check_tau(tau)
        if not isinstance(sample_in_eval, bool):
            raise TypeError(f"sample_in_eval must be True or False, got {sample_in_eval!r}")
        self.tau = tau
        self.dim = dim
        self.sample_in_eval = sample_in_eval
        self.options = self.estimator.check_options(options)

    def forward(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.training or self.sample_in_eval:
            return sample(logits, self.estimator, self.tau, self.dim, generator=generator,
                          **self.options)
        dim = check_logits(logits, self.dim)
        if logits.numel() == 0:
            return logits.detach().clone()
        return one_hot(logits.argmax(dim), logits.detach(), dim)

    def get_extra_state(self) -> Any:
        """``{"tau": schedule.state_dict()}`` for a schedule, ``{"tau": tau}`` otherwise (a float,
        or a tensor temperature's values as nested lists).

        Torch's TorchScript-based exporters (``torch.jit.trace``, ``torch.onnx.export(...,
        dynamo=False)``) detach every entry of the state they read: for them the state is the
        current temperature as a tensor.
        """
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return torch.as_tensor(self.tau.value if isinstance(self.tau, Schedule)
                                   else self.tau, dtype=torch.float32).detach().clone()
        if isinstance(self.tau, Schedule):
            return {"tau": self.tau.state_dict()}
        if isinstance(self.tau, torch.Tensor):
            return {"tau": self.tau.detach().cpu().tolist()}
        return {"tau": float(self.tau)}

    def set_extra_state(self, state: Any) -> None:
        """Restore the schedule's step from :meth:`get_extra_state`'s output (see the class doc)."""
        saved = state.get("tau") if isinstance(state, Mapping) else None
        if isinstance(self.tau, Schedule) and isinstance(saved, Mapping):
            self.tau.load_state_dict(saved)  # ValueError if another schedule saved it
        elif saved != self.get_extra_state()["tau"]:
            raise ValueError(
                f"the checkpoint's temperature of this GumbelSoftmax module ({saved!r}) is not the "
                f"module's (tau={self.tau!r}); build the module with the checkpoint's tau, or, to "
                "load the weights under this tau on purpose, first replace the checkpoint's "
                "'..._extra_state' entry of this module by module.get_extra_state()"
            )

    def extra_repr(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"estimator={self.estimator.name!r}, tau={self.tau!r}, dim={self.dim}{options}"
