"""Fast paths for Gumbel-max and Gumbel-Softmax, and the one dispatch that chooses among them.

``gumbelkit.gumbel_max``, ``gumbelkit.gumbel_softmax`` and the forward samples of the estimators
(the Gumbel-Softmax of ``gs`` and ``st-gs``, the Gumbel-max of the others) all call
:func:`gumbel_max` or :func:`gumbel_softmax` here. They call the custom operators
``gumbelkit::gumbel_max`` and ``gumbelkit::gumbel_softmax`` (:mod:`gumbelkit.kernels.ops`), with
a seed drawn from torch's generator (the default one or ``generator=``), so ``torch.manual_seed``
reproduces their results; each op picks its kernel by the logits' device and dtype:

- ``triton``: CUDA tensors of float16, bfloat16 or float32, when Triton is installed (the
  ``gpu`` extra) and tau is a scalar on the CPU: fused kernels,
  :mod:`gumbelkit.kernels.triton_gumbel`;
- ``cpu``: CPU tensors of those dtypes or float64, with the categories along the last dim (or
  with only size-1 dims after it): chunked in-place work, :mod:`gumbelkit.kernels.cpu`;
- ``reference``: everything else, and everything while :func:`use_backend` ``("reference")`` is
  in force: :mod:`gumbelkit.kernels.reference`.

Under ``torch.func`` transforms, forward-mode AD (``torch.autograd.forward_ad``),
``torch.export``, ``torch.jit.trace`` and ONNX export the work is the reference path's plain
PyTorch operations instead (:func:`gumbelkit._ops.portable`): torch.func's transforms
differentiate custom ops only through their vmap rule, neither the ops nor the C++ kernels have
a forward derivative, and a recorded graph is then one that any runtime can run (a uniform
draw, two logarithms, a softmax). The
paths draw different noise from the same seed, with the same law. In eager calls on the CPU path
(not while ``torch.compile`` traces) the custom op's dispatch, tens of microseconds of host time
per call, is skipped: a contiguous float32 or float64 tensor (with one temperature that needs
no gradient) goes to the C++ kernels of :mod:`gumbelkit.kernels.cpu_native`, one call (of a
few microseconds at small sizes) that takes the CPU path's chunks in one pass each; where those
are not built, or for other tensors, :func:`gumbel_max` calls the CPU kernel itself and
:func:`gumbel_softmax` of a tensor that fits one chunk runs the kernel's operations under
torch's autograd (:func:`gumbelkit.kernels.cpu.differentiable_gumbel_softmax`). The values
are the op's, bit for bit, on all three. No validation happens here: the public functions
validate first.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .._ops import (
    SHORT_ROW,
    SHORT_ROW_ENTRIES,
    compute_dtype,
    floored,
    plain_eager,
    portable,
    short_rows,
)
from . import cpu, cpu_native, reference

__all__ = ["BACKENDS", "backend_for", "gumbel_max", "gumbel_softmax", "noise_generator",
           "use_backend"]

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


def backend_for(logits: torch.Tensor, dim: int = -1, tau: torch.Tensor | None = None) -> str:
    """The kernel that the ops run for ``logits`` with the categories along ``dim`` (and a
    tensor ``tau``): ``"triton"``, ``"cpu"`` or ``"reference"``."""
    if _state["backend"] == "reference" or logits.numel() == 0 \
            or logits.dtype not in FAST_DTYPES:
        return "reference"
    if logits.device.type == "cpu":
        return "cpu" if logits.shape[dim % logits.dim() + 1:].numel() == 1 else "reference"
    if logits.device.type == "cuda" and logits.dtype in TRITON_DTYPES and _triton_available() \
            and (tau is None or (tau.numel() == 1 and tau.device.type == "cpu")):
        return "triton"
    return "reference"



def _native(logits: torch.Tensor, dim: int, tau: torch.Tensor | None = None) -> bool:
    """An eager call that the C++ kernels serve (:mod:`gumbelkit.kernels.cpu_native`): a
    contiguous float32 or float64 CPU tensor, its categories along ``dim`` with only size-1
    dims after it, and (for Gumbel-Softmax) a temperature of one number, of the logits' dtype,
    that needs no gradient. The checks are ordered and inlined for speed: at a few microseconds
    a call, they are part of its time."""
    if (logits.dtype not in cpu_native.DTYPES or not logits.is_cpu
            or logits.numel() == 0 or not logits.is_contiguous()
            or (dim != logits.dim() - 1 and logits.shape[dim + 1:].numel() != 1)
            or _state["backend"] != "auto" or not plain_eager()):
        return False
    if tau is not None and (tau.requires_grad or tau.numel() != 1 or tau.dtype != logits.dtype
                            or not tau.is_cpu):
        return False
    return cpu_native.library() is not None


def _eager_cpu(logits: torch.Tensor, dim: int, tau: torch.Tensor | None = None) -> bool:
    """An eager call that the CPU kernel serves: the op's dispatch can be skipped (a graph that
    ``torch.compile`` records keeps the op)."""
    return not torch.compiler.is_compiling() and backend_for(logits, dim, tau) == "cpu"


def _seed(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """A 62-bit seed drawn from torch's generator, as a one-element tensor on the logits'
    device (no host synchronisation)."""
    return torch.randint(2**62, (1,), dtype=torch.int64, device=logits.device,
                         generator=generator)


def noise_generator(generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> torch.Generator:
    """The generator whose draws are the noise of the next call given ``generator`` (None: the
    default one) on ``device``: ``gk.gumbel_noise(logits.shape, generator=noise_generator(g))``
    is the noise that ``gk.gumbel_softmax(logits, generator=g)`` adds on the CPU and reference
    paths, for the same state of ``g``. It draws the call's seed from ``generator``.
    """
    return reference.seeded(_seed(torch.empty(0, device=device), generator))


def _tau_tensor(tau: float | torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``tau`` as the ops take it: a tensor, floored in the logits' compute dtype."""
    dtype = compute_dtype(logits)
    if isinstance(tau, torch.Tensor):
        return floored(tau, dtype)
    if torch.compiler.is_compiling():
        return torch.scalar_tensor(floored(tau, dtype), dtype=dtype)
    return _constant(tau, dtype)


@functools.lru_cache(maxsize=64)
def _constant(tau: float, dtype: torch.dtype) -> torch.Tensor:
    """One 0-dim tensor per temperature and dtype, floored (eager calls reuse it: nothing
    writes to it)."""
    return torch.scalar_tensor(floored(tau, dtype), dtype=dtype)


def gumbel_max(logits: torch.Tensor, dim: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``argmax(logits + G, dim)`` with G ~ Gumbel(0, 1): indices distributed as
    Categorical(softmax(logits)) (Gumbel 1954)."""
    dim = dim % logits.dim()
    if _native(logits, dim):
        if cpu.fits_one_chunk(logits):
            return cpu_native.library().gumbel_max(logits, dim, generator)
        return cpu_native.library().gumbel_max_chunks(logits, dim, cpu.CHUNK, generator)
    if logits.numel() == 0:  # reductions refuse empty dims, even with no rows
        return logits.new_empty(logits.shape[:dim] + logits.shape[dim + 1:], dtype=torch.int64)
    if portable():
        return reference.gumbel_max(logits, dim, generator)
    if _eager_cpu(logits, dim):
        return cpu.gumbel_max(logits.detach(), dim, _seed(logits, generator))
    return ops.gumbel_max(logits.detach(), dim, _seed(logits, generator))


def gumbel_softmax(logits: torch.Tensor, tau: float | torch.Tensor, hard: bool, dim: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``softmax((logits + G) / tau)`` along ``dim`` (Jang, Gu and Poole 2017; Maddison, Mnih and
    Teh 2017), or with ``hard`` its one-hot argmax carrying the soft sample's gradient.
    ``tau`` is a number or a tensor broadcastable to ``logits``. The result has the dtype of
    ``logits``."""
    dim = dim % logits.dim()
    if logits.numel() == 0:
        return logits.clone()
    if portable():
        return reference.gumbel_softmax(logits, tau, hard, dim, generator)
    tau = _tau_tensor(tau, logits)
    if _native(logits, dim, tau):
        native, across = cpu_native.library(), short_rows(logits, dim)
        if cpu.fits_one_chunk(logits):
            return native.gumbel_softmax(logits, tau, hard, dim, across, generator)
        return native.gumbel_softmax_chunks(logits, tau, hard, dim, across, SHORT_ROW,
                                            SHORT_ROW_ENTRIES, cpu.CHUNK, generator)
    if cpu.fits_one_chunk(logits) and _eager_cpu(logits, dim, tau):
        return cpu.differentiable_gumbel_softmax(logits, tau, hard, dim, _seed(logits, generator))
    sample, _ = ops.gumbel_softmax(logits, tau, hard, dim, _seed(logits, generator))
    return sample


from . import ops  # noqa: E402 (the ops use backend_for, above)
