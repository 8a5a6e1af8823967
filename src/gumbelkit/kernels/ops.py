"""The fast paths as ``torch.library`` custom operators: ``gumbelkit::gumbel_max`` and
``gumbelkit::gumbel_softmax``.

Schemas::

    gumbel_max(Tensor logits, int dim, Tensor seed) -> Tensor
    gumbel_softmax(Tensor logits, Tensor tau, bool hard, int dim, Tensor seed)
        -> (Tensor sample, Tensor soft)

``seed`` is a one-element int64 tensor on the logits' device: the noise is a function of the seed
and the position alone, so an op is a pure function of its inputs (what ``torch.compile``,
``torch.export`` and CUDA graphs need) and backward needs no stored noise. ``tau`` is a tensor
broadcastable to the logits, floored (:func:`gumbelkit._ops.tau_floor`); it gets a gradient.
``gumbel_softmax`` returns the sample and, with ``hard``, the soft sample whose gradient the
one-hot sample carries (an empty tensor without ``hard``). Outputs are fresh tensors.

Each op has a CPU kernel (:mod:`gumbelkit.kernels.cpu`, or the reference for categories not
last), a CUDA kernel (:mod:`gumbelkit.kernels.triton_gumbel`, or the reference for float64, a
tensor tau on the GPU, or without Triton: with the Triton kernels' noise where Triton is
installed, so without a host synchronisation) and the reference for every other device; a fake
(meta) implementation for tracing; a vmap rule; and, for ``gumbel_softmax``, its gradient:
with ``y`` the soft sample and ``g`` the gradient of the sample,

    d logits = J(y) g / tau,   d tau = -sum((g - <g, y>) y log y) / tau,

``J(y) = diag(y) - y y^T`` (torch's softmax backward, itself differentiable: double backward
works), the sum over the entries that share a value of tau.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .._ops import short_rows, softmax_backward_along_rows
from . import backend_for, cpu, reference

__all__ = ["gumbel_max", "gumbel_softmax"]

torch.library.define("gumbelkit::gumbel_max", "(Tensor logits, int dim, Tensor seed) -> Tensor")
torch.library.define(
    "gumbelkit::gumbel_softmax",
    "(Tensor logits, Tensor tau, bool hard, int dim, Tensor seed) -> (Tensor, Tensor)",
)
gumbel_max = torch.ops.gumbelkit.gumbel_max.default
gumbel_softmax = torch.ops.gumbelkit.gumbel_softmax.default


def _module(logits: torch.Tensor, dim: int, tau: torch.Tensor | None = None):
    name = backend_for(logits, dim, tau)
    if name == "triton":
        from . import triton_gumbel

        return triton_gumbel
    return cpu if name == "cpu" else _Reference


# the reference path's functions of a seed, under the names the other kernels' modules use
_Reference = SimpleNamespace(gumbel_max=reference.gumbel_max_seeded,
                             gumbel_softmax=reference.gumbel_softmax_seeded)


@torch.library.impl("gumbelkit::gumbel_max", "CompositeExplicitAutograd")
def _gumbel_max(logits: torch.Tensor, dim: int, seed: torch.Tensor) -> torch.Tensor:
    return _module(logits, dim).gumbel_max(logits, dim, seed)


@torch.library.impl("gumbelkit::gumbel_softmax", "CompositeExplicitAutograd")
def _gumbel_softmax(logits: torch.Tensor, tau: torch.Tensor, hard: bool, dim: int,
                    seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _module(logits, dim, tau).gumbel_softmax(logits, tau, hard, dim, seed)


@torch.library.register_fake("gumbelkit::gumbel_max")
def _gumbel_max_fake(logits, dim, seed):
    return logits.new_empty(logits.shape[:dim] + logits.shape[dim + 1:], dtype=torch.int64)


@torch.library.register_fake("gumbelkit::gumbel_softmax")
def _gumbel_softmax_fake(logits, tau, hard, dim, seed):
    return torch.empty_like(logits), torch.empty_like(logits) if hard else logits.new_empty(0)


def _setup_context(ctx, inputs, output):
    _, tau, hard, dim, _ = inputs
    sample, soft = output
    ctx.save_for_backward(soft if hard else sample, tau)
    ctx.dim, ctx.hard = dim, hard
    ctx.set_materialize_grads(False)


def _backward(ctx, grad: torch.Tensor | None, grad_soft: torch.Tensor | None):
    y, tau = ctx.saved_tensors
    if not ctx.hard:  # the second output is an empty placeholder
        grad_soft = None
    if grad is None:
        grad = grad_soft
    elif grad_soft is not None:
        grad = grad + grad_soft
    if grad is None:
        return None, None, None, None, None
    dim, tau_compute = ctx.dim, tau.to(y.dtype)
    d_logits = d_tau = None
    if ctx.needs_input_grad[0]:
        if short_rows(y, dim):  # J(y) g = y g - y <g, y>, across the rows (see short_rows)
            d_logits = softmax_backward_along_rows(grad, y, dim) / tau_compute
        else:
            d_logits = torch._softmax_backward_data(grad, y, dim, y.dtype) / tau_compute
    if ctx.needs_input_grad[1]:
        centred = grad - (grad * y).sum(dim, keepdim=True)
        d_tau = (-(centred * torch.special.xlogy(y, y)) / tau_compute).sum_to_size(tau.shape)
        d_tau = d_tau.to(tau.dtype)
    return d_logits, d_tau, None, None, None


torch.library.register_autograd("gumbelkit::gumbel_softmax", _backward,
                                setup_context=_setup_context)


def _member(in_dims, args, b: int) -> list:
    """The arguments of member ``b`` of a vmap batch (unbatched arguments as they are)."""
    return [arg if bdim is None else arg.select(bdim, b) for arg, bdim in zip(args, in_dims,
                                                                            strict=True)]


# vmap: the op on each member of the batch, with the member's own seed where the seed is batched
# (randomness="different") and the one seed otherwise (randomness="same": the same noise)
def _gumbel_max_vmap(info, in_dims, *args):
    members = [gumbel_max(*_member(in_dims, args, b)) for b in range(info.batch_size)]
    return torch.stack(members), 0


def _gumbel_softmax_vmap(info, in_dims, *args):
    members = [gumbel_softmax(*_member(in_dims, args, b)) for b in range(info.batch_size)]
    samples, softs = zip(*members, strict=True)
    return (torch.stack(samples), torch.stack(softs)), (0, 0)


torch.library.register_vmap("gumbelkit::gumbel_max", _gumbel_max_vmap)
torch.library.register_vmap("gumbelkit::gumbel_softmax", _gumbel_softmax_vmap)
