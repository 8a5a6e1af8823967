"""Small tensor operations shared by the sampling primitives and the estimators."""

from __future__ import annotations

import math

import torch
from torch.autograd import forward_ad


def compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    """float16 and bfloat16 are computed in float32; float32 and float64 stay as they are."""
    return torch.float32 if tensor.dtype in (torch.float16, torch.bfloat16) else tensor.dtype


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(compute_dtype(tensor))


def one_hot(index: torch.Tensor, like: torch.Tensor, dim: int) -> torch.Tensor:
    """One-hot tensor shaped and typed like ``like``, with a 1 at ``index`` along ``dim``."""
    return torch.zeros_like(like).scatter_(dim, index.unsqueeze(dim), 1.0)


def replace_gradient(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Return exactly ``value`` in the forward pass, with the gradient of ``surrogate``.

    ``surrogate - surrogate.detach()`` is exactly zero for finite values, so hard one-hot values
    stay exactly 0 and 1 (unlike ``value - surrogate.detach() + surrogate``).
    """
    return value + (surrogate - surrogate.detach())


def shifted_to(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` in value, with the identity as its gradient to ``logits``.

    This is ``logits + stop_gradient(target - logits)``; masked entries (-inf in ``logits``, and
    then in ``target``) stay -inf instead of becoming ``-inf - -inf = nan``.
    """
    shift = (target - logits).masked_fill(torch.isneginf(logits), 0.0)
    return logits + shift.detach()


def expand_samples(logits: torch.Tensor, n_samples: int) -> torch.Tensor:
    """A view of ``logits`` with a leading sample dimension of size ``n_samples``."""
    return logits.unsqueeze(0).expand(n_samples, *logits.shape)


def tracing() -> bool:
    """Whether the code runs under ``torch.compile``, ``torch.export``, ``torch.jit.trace`` or an
    ONNX export: values are symbolic there, so checks run on the device and nothing reads them."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()  # ONNX export traces


def portable() -> bool:
    """Whether the work must be written in plain PyTorch operations (no gumbelkit custom op, no
    C++ kernel): under torch.func transforms (whose autograd rules custom ops do not serve), in
    forward-mode AD (``torch.autograd.forward_ad``: the ops and the C++ kernels have no forward
    derivative, and their outputs would silently carry no tangent) and while a graph is
    recorded for another runtime (``torch.export``, ``torch.jit.trace``, ONNX)."""
    if torch.compiler.is_compiling():
        return torch.compiler.is_exporting()
    return _transformed()


def plain_eager() -> bool:
    """Whether the code runs eagerly, outside every case of :func:`portable` and outside
    ``torch.compile``: where the fixed-function fast paths (the C++ kernels) may run."""
    return not torch.compiler.is_compiling() and not _transformed()


def _transformed() -> bool:
    """An eager call under a torch.func transform, forward-mode AD or a tracer (torch.jit.trace,
    ONNX export); ``torch.jit.is_tracing()`` without its Python frame: on every eager call, it
    counts."""
    return (torch._C._are_functorch_transforms_active() or torch._C._is_tracing()
            or forward_ad._current_level >= 0)


def tau_floor(dtype: torch.dtype) -> float:
    """The smallest temperature used in ``dtype``'s arithmetic: below it ``x / tau`` could
    overflow for the values a sample divides (at most 64 in size: shifted logits are <= 0 and a
    Gumbel draw is < 37). Any tau under it gives the same samples (one-hot up to ties)."""
    return 64.0 / torch.finfo(dtype).max


def shifted(logits: torch.Tensor, dim: int) -> torch.Tensor:
    """``logits - max(logits, dim)``, the shift held constant: every entry <= 0, the maximum 0.

    The laws of every sampler are invariant to this shift, and with it they stay exact at any
    offset of the logits (no rounding of ``logits + noise`` at large magnitudes) and no
    ``logits / tau`` overflows. A fully masked row (all -inf, refused while validation is on)
    becomes NaN.
    """
    if logits.numel() == 0:
        return logits
    return logits - logits.detach().amax(dim, keepdim=True)


def floored(tau: float | torch.Tensor, dtype: torch.dtype) -> float | torch.Tensor:
    """``tau`` in ``dtype``'s arithmetic, raised to :func:`tau_floor` where it is below."""
    if isinstance(tau, torch.Tensor):
        return tau.to(dtype).clamp(min=tau_floor(dtype))
    return max(tau, tau_floor(dtype))


SHORT_ROW = 16  # categories below which torch's CPU softmax is faster across rows than along them
SHORT_ROW_ENTRIES = 4 * SHORT_ROW * SHORT_ROW  # and the entries from which it pays


def short_rows(x: torch.Tensor, dim: int) -> bool:
    """Whether the softmax of CPU ``x`` along ``dim`` is better computed across its rows: torch's
    CPU kernel for a dim of fewer than :data:`SHORT_ROW` contiguous entries runs a row at a time
    (65536x10 float32, 1 thread: 10.2 ms, against 2.9 ms over the first dim of the transpose,
    the copy back to a contiguous result included; its backward 3.9 ms, against 1.0 ms for
    ``y g - y <g, y>`` along the rows: ``python scripts/measure_short_softmax.py``)."""
    return (x.dim() > 1 and x.shape[dim] < SHORT_ROW and x.numel() >= SHORT_ROW_ENTRIES
            and x.device.type == "cpu")


class _SoftmaxAcrossRows(torch.autograd.Function):
    """``softmax(x, dim)`` over the transposed layout (:func:`short_rows`), contiguous; its
    backward is ``J(y) g = y g - y <g, y>`` along ``dim`` (faster there than torch's softmax
    backward, the same formula as the op's), contiguous, and differentiable again."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.softmax(x.movedim(dim, 0), 0).movedim(0, dim).contiguous()

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.dim = inputs[1]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (y,) = ctx.saved_tensors
        return softmax_backward_along_rows(grad, y, ctx.dim).contiguous(), None


def softmax_backward_along_rows(grad: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    """The softmax's vector-Jacobian product ``J(y) g = y g - y <g, y>`` along ``dim``, in three
    elementwise passes and a sum: on the CPU faster than torch's softmax backward for
    :func:`short_rows`."""
    product = grad * y
    return torch.addcmul(product, y, product.sum(dim, keepdim=True), value=-1)


def softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``torch.softmax(x, dim)``, over the transposed layout for :func:`short_rows` (the same
    values up to rounding; the result and its gradient contiguous)."""
    if not short_rows(x, dim):
        return torch.softmax(x, dim)
    if torch.is_grad_enabled() and x.requires_grad:
        return _SoftmaxAcrossRows.apply(x, dim % x.dim())
    return _SoftmaxAcrossRows.forward(x, dim % x.dim())


def over_tau(scores: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
    """``scores / tau``, where ``-inf`` scores (masked categories) stay ``-inf`` with a zero
    gradient to a tensor ``tau``: plain division would give it NaN there (``d(s / tau) / d tau =
    -s / tau^2 = inf``, times the zero gradient a masked entry gets)."""
    if not isinstance(tau, torch.Tensor):
        return scores / tau
    masked = scores.isneginf()
    return (scores.masked_fill(masked, 0.0) / tau).masked_fill(masked, -math.inf)


def tempered_softmax(logits: torch.Tensor, tau: float | torch.Tensor, dim: int) -> torch.Tensor:
    """``softmax(logits / tau, dim)`` computed without overflow for any tau > 0 and any logits."""
    return softmax(over_tau(shifted(logits, dim), floored(tau, logits.dtype)), dim)
