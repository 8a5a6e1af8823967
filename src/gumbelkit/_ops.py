"""Small tensor operations shared by the sampling primitives and the estimators."""

from __future__ import annotations

import torch


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
