"""An estimator's options as data: name, default, check, help, and how the command line gives one.

Each estimator lists its options as :class:`Option` values (``Estimator.option_specs``);
:meth:`gumbelkit.estimators.Estimator.check_options` runs their checks in one place, and the
``gumbelkit compare`` command, the lab and the benchmarks read defaults and help from them. The
checks below are the shared ones: each takes the value and a label naming it in the message, and
returns the value to use or raises ValueError.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import check_count, validation_enabled

__all__ = ["Option", "check_count", "positive", "optional_positive", "real", "optional_real",
           "optional_temperature", "optional_callable"]


@dataclass(frozen=True)
class Option:
    """One option of an estimator.

    ``check(value, label)`` returns the value to use or raises ValueError; ``parse`` turns
    command-line text into a value (None: the option cannot be given on a command line, e.g. a
    module); ``learnable``: a control-variate parameter (a tensor or module) that
    :func:`gumbelkit.variance_step` tunes by minimising the estimator's variance.
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any]
    help: str
    parse: Callable[[str], Any] | None = float
    learnable: bool = False


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive(value: object, label: str) -> float:
    """A finite number > 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{label} must be a finite number > 0, got {value!r}")
    return float(value)


def optional_positive(value: object, label: str) -> float | None:
    """None (the call's ``tau``) or a finite number > 0."""
    return None if value is None else positive(value, label)


def real(value: object, label: str) -> float | torch.Tensor:
    """A finite number, or a floating-point tensor (which may require grad) of finite values;
    a tensor's values are read only while validation is on (:func:`gumbelkit.set_validation`)."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or (
                validation_enabled() and not torch.isfinite(value.detach()).all()):
            raise ValueError(f"{label} must hold finite floating-point values, got {value!r}")
        return value
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{label} must be a finite number or a tensor, got {value!r}")
    return float(value)


def optional_real(value: object, label: str) -> float | torch.Tensor | None:
    """None, or what :func:`real` accepts."""
    return None if value is None else real(value, label)


def optional_temperature(value: object, label: str) -> float | torch.Tensor | None:
    """None (the call's ``tau``), a finite number > 0, or a tensor of such values (which may
    require grad)."""
    if value is None:
        return None
    value = real(value, label)
    is_positive = (value.detach() > 0).all() if isinstance(value, torch.Tensor) else value > 0
    if not is_positive:
        raise ValueError(f"{label} must be > 0 (e.g. log_temperature.exp()), got {value!r}")
    return value


def optional_callable(value: object, label: str) -> Callable[..., Any] | None:
    """None, or a callable (a function or a ``torch.nn.Module``)."""
    if value is not None and not callable(value):
        raise ValueError(f"{label} must be a callable such as a torch.nn.Module, got {value!r}")
    return value
