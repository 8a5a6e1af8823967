"""Input checks shared by every public function.

The checks that read tensor values (NaN, +inf, fully masked rows, tensor temperatures) cost a
pass over the data; ``set_validation(False)`` skips those on logits, as
``torch.distributions.Distribution.set_default_validate_args`` does. Type, shape and ``dim``
checks are free and always run.

A value check never synchronises with a device and never breaks a graph (:func:`require`): in
eager mode on the CPU it raises ValueError with its message, under ``torch.func`` transforms too
(the check reads the tensor under the transform's wrappers); on CUDA, and under
``torch.compile`` or ``torch.export``, it is ``torch._assert_async`` on the device, which fails
with the same message (a RuntimeError in compiled CPU code, a device-side assert on CUDA) when
the result is computed. Nothing is checked while an ONNX graph is recorded: ONNX cannot raise.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch._C import _functorch

from ._ops import compute_dtype, tracing
from .schedules import Schedule

__all__ = ["set_validation", "validation_enabled"]

_enabled = True


def set_validation(enabled: bool) -> None:
    """Turn the value checks on logits (NaN, +inf, all-masked rows) on or off globally."""
    global _enabled
    _enabled = bool(enabled)


def validation_enabled() -> bool:
    return _enabled


def _unwrapped(tensor: torch.Tensor) -> torch.Tensor:
    """The plain tensor under torch.func's wrappers (every vmap batch, every grad level)."""
    while _functorch.is_batchedtensor(tensor) or _functorch.is_gradtrackingtensor(tensor):
        tensor = _functorch.get_unwrapped(tensor)
    return tensor


def require(ok: torch.Tensor, message: str) -> None:
    """Fail with ValueError(message) unless every entry of the boolean tensor ``ok`` is true,
    without a host synchronisation or a graph break (see the module's docstring)."""
    if torch.onnx.is_in_onnx_export():
        return
    if tracing():
        torch._assert_async(ok.all(), message)
        return
    ok = _unwrapped(ok)
    if ok.device.type != "cpu":
        torch._assert_async(ok.all(), message)
    elif not bool(ok.all()):
        raise ValueError(message)


def check_tensor(logits: object, name: str = "logits") -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {logits.dtype}; "
            f"convert it first, e.g. {name}.float()"
        )
    return logits


def normalize_dim(tensor: torch.Tensor, dim: int, name: str = "logits") -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    ndim = tensor.dim()
    if ndim == 0:
        raise IndexError(f"{name} is a 0-dimensional tensor; it needs a dimension of categories")
    if not -ndim <= dim < ndim:
        raise IndexError(
            f"dim={dim} is out of range for {name} with {ndim} dimension(s) "
            f"(shape {tuple(tensor.shape)}); expected a value in [{-ndim}, {ndim - 1}]"
        )
    return int(dim) % ndim


NAN = "logits contain NaN; check the layer that produced them"
POSINF = "logits contain +inf; use large finite values, or -inf to mask categories out"


def check_logits(logits: object, dim: int) -> int:
    """Check categorical logits along ``dim``; return ``dim`` as a non-negative index.

    Raises TypeError for non-tensors and non-float dtypes, IndexError for a bad ``dim``, and, while
    validation is on, ValueError for NaN or +inf entries and for rows whose entries are all -inf.
    """
    logits = check_tensor(logits)
    dim = normalize_dim(logits, dim)
    if logits.shape[dim] == 0 and _rows(logits, dim) > 0:
        raise ValueError(
            f"logits have an empty category dimension (shape {tuple(logits.shape)}, dim={dim}): "
            "there is nothing to choose from"
        )
    if _enabled and logits.numel() > 0:
        detached = logits.detach()
        if tracing() or not _plain_cpu(detached) or not _finite_sum(detached):
            require(~detached.isnan(), NAN)
            require(~detached.isposinf(), POSINF)
            require(~detached.isneginf().all(dim=dim),
                    f"a row of logits along dim={dim} is -inf everywhere (every category "
                    "masked); at least one category per row must have a finite logit")
    return dim


def _finite_sum(tensor: torch.Tensor) -> bool:
    """Whether the sum is finite: then no entry is NaN or infinite. One reduction, the cheapest
    check on the CPU (a sum that overflows, or -inf masks, send the caller to the full checks)."""
    return math.isfinite(float(tensor.sum(dtype=compute_dtype(tensor))))


def _plain_cpu(tensor: torch.Tensor) -> bool:
    """A CPU tensor outside torch.func transforms: one read of a flag costs nothing there."""
    return tensor.device.type == "cpu" and not torch._C._are_functorch_transforms_active()


def _rows(logits: torch.Tensor, dim: int) -> int:
    return math.prod(size for i, size in enumerate(logits.shape) if i != dim)


def check_tau(tau: object, logits: torch.Tensor | None = None) -> float | torch.Tensor:
    """Resolve a temperature: a number > 0, a :class:`~gumbelkit.schedules.Schedule` (its
    current value), or a floating-point tensor of values > 0 (a learnable temperature, which
    keeps its gradient), broadcastable to ``logits`` when they are given.

    Numbers come back as floats. Under ``torch.compile`` a schedule comes back as its
    :meth:`~gumbelkit.schedules.Schedule.tensor`, so stepping it does not recompile.
    """
    if isinstance(tau, Schedule):
        tensor = tau.tensor()  # made eagerly, before any compiled code reads it
        return tensor if tracing() else tau.value
    if isinstance(tau, torch.Tensor):
        check_tensor(tau, "tau")
        if logits is not None and tau.dim() > 0:
            try:
                shape = torch.broadcast_shapes(tau.shape, logits.shape)
            except RuntimeError:
                shape = None
            if shape != logits.shape:
                raise ValueError(
                    f"a tensor tau must be a scalar or broadcastable to the logits' shape "
                    f"{tuple(logits.shape)}, got shape {tuple(tau.shape)}"
                )
        if tau.numel() > 0:
            detached = tau.detach()
            require((detached > 0) & detached.isfinite(),
                    "tau must be finite and > 0 everywhere; a learnable temperature is often "
                    "kept positive as tau = log_tau.exp() or softplus(raw) + tau_min")
        return tau
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(
            "tau must be a number, a floating-point tensor or a gumbelkit.schedules.Schedule, "
            f"got {type(tau).__name__}"
        )
    tau = float(tau)
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau}")
    return tau


def check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
