"""Fast paths for Gumbel-max and Gumbel-Softmax, and the one dispatch that chooses among them.

``gumbelkit.gumbel_max``, ``gumbelkit.gumbel_softmax`` and the forward samples of the estimators
(the Gumbel-Softmax of ``gs`` and ``st-gs``, the Gumbel-max of the others) all call
:func:`gumbel_max` or :func:`gumbel_softmax` here, which pick by the logits' device and dtype:

- ``triton``: CUDA tensors of float16, bfloat16 or float32, when Triton is installed (the
  ``gpu`` extra): fused kernels, :mod:`gumbelkit.kernels.triton_gumbel`;
- ``cpu``: CPU tensors of those dtypes or float64, with the categories along the last dim (or
  with only size-1 dims after it): chunked in-place work, :mod:`gumbelkit.kernels.cpu`;
- ``reference``: everything else (other devices, empty tensors), and everything while
  :func:`use_backend` ``("reference")`` is in force: :mod:`gumbelkit.kernels.reference`.

Every path draws from torch's generator (the default one or ``generator=``), so
``torch.manual_seed`` reproduces its results; the paths draw different noise from the same seed,
with the same law. No validation happens here: the public functions validate first.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

from . import cpu, reference

__all__ = ["BACKENDS", "backend_for", "gumbel_max", "gumbel_softmax", "use_backend"]

BACKENDS = ("auto", "reference")
FAST_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# compiled Triton code holds Python float constants and arguments in float32, so float64 on CUDA
# keeps the reference path's full precision
TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_state = {"backend": "auto"}


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Within the block, ``"reference"`` sends every call to the pure-PyTorch path; ``"auto"``
    (the default) picks the fastest path available for each tensor."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    previous, _state["backend"] = _state["backend"], name
    try:
        yield
    finally:
        _state["backend"] = previous


@functools.cache  # asked on every CUDA call; finding a module scans sys.path
def _triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def backend_for(logits: torch.Tensor, dim: int = -1) -> str:
    """The path that :func:`gumbel_max` and :func:`gumbel_softmax` take for ``logits`` with the
    categories along ``dim``."""
    if _state["backend"] == "reference" or logits.numel() == 0 \
            or logits.dtype not in FAST_DTYPES:
        return "reference"
    if logits.device.type == "cpu":
        return "cpu" if logits.shape[dim % logits.dim() + 1:].numel() == 1 else "reference"
    if logits.device.type == "cuda" and logits.dtype in TRITON_DTYPES and _triton_available():
        return "triton"
    return "reference"


def _module(logits: torch.Tensor, dim: int) -> ModuleType:
    name = backend_for(logits, dim)
    if name == "triton":
        from . import triton_gumbel

        return triton_gumbel
    return cpu if name == "cpu" else reference


def gumbel_max(logits: torch.Tensor, dim: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``argmax(logits + G, dim)`` with G ~ Gumbel(0, 1): indices distributed as
    Categorical(softmax(logits)) (Gumbel 1954)."""
    return _module(logits, dim).gumbel_max(logits, dim % logits.dim(), generator)


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool, dim: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``softmax((logits + G) / tau)`` along ``dim`` (Jang, Gu and Poole 2017; Maddison, Mnih and
    Teh 2017), or with ``hard`` its one-hot argmax carrying the soft sample's gradient.
    The result has the dtype of ``logits``."""
    return _module(logits, dim).gumbel_softmax(logits, tau, hard, dim % logits.dim(),
                                                 generator)
