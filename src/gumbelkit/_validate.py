"""Input checks shared by every public function.

The checks that read tensor values (NaN, +inf, fully masked rows) cost a pass over the data and,
on a GPU, a synchronisation; ``set_validation(False)`` skips them, as
``torch.distributions.Distribution.set_default_validate_args`` does. Type, shape and ``dim`` checks
are free and always run.
"""

from __future__ import annotations

import math
import numbers

import torch

from .schedules import Schedule

__all__ = ["set_validation", "validation_enabled"]

_enabled = True


def set_validation(enabled: bool) -> None:
    """Turn the value checks on logits (NaN, +inf, all-masked rows) on or off globally."""
    global _enabled
    _enabled = bool(enabled)


def validation_enabled() -> bool:
    return _enabled


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
        if torch.isnan(logits).any():
            raise ValueError("logits contain NaN; check the layer that produced them")
        if torch.isposinf(logits).any():
            raise ValueError(
                "logits contain +inf; use large finite values, or -inf to mask categories out"
            )
        if torch.isneginf(logits).all(dim=dim).any():
            raise ValueError(
                f"a row of logits along dim={dim} is -inf everywhere (every category masked); "
                "at least one category per row must have a finite logit"
            )
    return dim


def _rows(logits: torch.Tensor, dim: int) -> int:
    return math.prod(size for i, size in enumerate(logits.shape) if i != dim)


def check_tau(tau: object) -> float:
    """Resolve a temperature (a positive number or a :class:`~gumbelkit.schedules.Schedule`)."""
    if isinstance(tau, Schedule):
        tau = tau.value
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(
            f"tau must be a number or a gumbelkit.schedules.Schedule, got {type(tau).__name__}"
        )
    tau = float(tau)
    if not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau}")
    return tau


def check_count(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
