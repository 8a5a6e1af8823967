"""Sampling primitives: Gumbel-max, Gumbel-top-k, tempered softmax, Gumbel-Softmax, binary Concrete.

Gumbel-max trick: if ``G_i`` are i.i.d. Gumbel(0, 1), ``argmax_i (logits_i + G_i)`` is distributed
as Categorical(softmax(logits)) (Gumbel 1954; Maddison, Tarlow and Minka 2014). Taking the top k
instead of the argmax gives k draws without replacement, in sampled order (Kool, van Hoof and
Welling 2019, "Stochastic Beams and Where to Find Them"). Replacing the argmax by a softmax at
temperature tau gives the Gumbel-Softmax / Concrete relaxation (Jang, Gu and Poole 2017; Maddison,
Mnih and Teh 2017).

Every function validates its input (see :mod:`gumbelkit._validate`), computes half precision in
float32, and returns the dtype of its input. ``-inf`` logits are masks: never sampled.
"""

from __future__ import annotations

import torch

from . import kernels
from ._ops import floored, replace_gradient, tempered_softmax, upcast
from ._validate import (
    NAN,
    check_count,
    check_logits,
    check_tau,
    check_tensor,
    require,
    validation_enabled,
)
from .kernels.reference import perturb, perturbed_softmax
from .noise import gumbel_like
from .restricted import check_restriction, restricted
from .schedules import Schedule

__all__ = [
    "gumbel_max",
    "gumbel_topk",
    "softmax_t",
    "gumbel_softmax",
    "perturbed_softmax",
    "relaxed_bernoulli",
]

Tau = float | torch.Tensor | Schedule


def sample_index(
    logits: torch.Tensor, dim: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Gumbel-max without validation: indices distributed as Categorical(softmax(logits)).

    The work goes to the fastest path for the tensor (see :mod:`gumbelkit.kernels`).
    """
    return kernels.gumbel_max(logits, dim, generator)


def gumbel_max(
    logits: torch.Tensor,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> torch.Tensor:
    """Exact samples of Categorical(softmax(logits)) along ``dim``, as a LongTensor of indices.

    ``argmax_i (logits_i + G_i)``, G_i ~ Gumbel(0, 1) i.i.d. The result has the shape of ``logits``
    without ``dim``. Categories with logit ``-inf`` are never chosen. ``top_k``, ``top_p`` and
    ``min_p`` restrict the support first (:func:`gumbelkit.restrict`): the samples then follow
    the renormalised restricted law exactly.
    """
    dim = check_logits(logits, dim)
    logits = restricted(logits, dim, *check_restriction(top_k, top_p, min_p))
    return sample_index(logits, dim, generator)


def gumbel_topk(
    logits: torch.Tensor,
    k: int,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """k draws without replacement from Categorical(softmax(logits)), in sampled order.

    ``topk(logits + G, k)`` (Gumbel-top-k; Kool et al. 2019): the first index is a draw from
    softmax(logits), the second a draw from the renormalised rest, and so on. The result has the
    shape of ``logits`` with ``dim`` of size k.
    """
    dim = check_logits(logits, dim)
    k = check_count(k, "k", minimum=0)
    size = logits.shape[dim]
    if k > size:
        raise ValueError(f"k={k} exceeds the number of categories ({size}) along dim={dim}")
    if validation_enabled() and logits.numel() > 0 and k > 0:
        require(torch.isfinite(logits.detach()).sum(dim) >= k,
                f"k={k} exceeds the number of unmasked (finite) categories in some row; draws "
                "without replacement must stay unmasked")
    return perturb(logits, generator, dim).topk(k, dim).indices


def softmax_t(logits: torch.Tensor, tau: Tau = 1.0, dim: int = -1) -> torch.Tensor:
    """Tempered softmax, ``y_i = exp(logits_i / tau) / sum_j exp(logits_j / tau)``: no noise.

    Computed as ``softmax((logits - max logits) / tau)``, finite for any tau > 0. ``tau`` may be a
    tensor broadcastable to ``logits`` (a learnable temperature gets its gradient).
    """
    dim = check_logits(logits, dim)
    tau = check_tau(tau, logits)
    return tempered_softmax(upcast(logits), tau, dim).to(logits.dtype)


def gumbel_softmax(
    logits: torch.Tensor,
    tau: Tau = 1.0,
    hard: bool = False,
    eps: float = 1e-10,
    dim: int = -1,
    *,
    generator: torch.Generator | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> torch.Tensor:
    """Drop-in for ``torch.nn.functional.gumbel_softmax``: same signature, same distribution.

    ``y = softmax((logits + G) / tau)`` with G ~ Gumbel(0, 1) (Jang et al. 2017; Maddison et al.
    2017). ``hard=True`` returns ``one_hot(argmax(logits + G))``, exactly 0 and 1, with the
    gradient of ``y``. ``eps`` is accepted for compatibility and unused, as in torch. Unlike
    torch's: the noise is always finite, ``generator`` is supported, -inf logits are masks that
    are never sampled, bad input raises, half precision is computed in float32, and the work
    goes to fused kernels on CUDA and a chunked fast path on the CPU (:mod:`gumbelkit.kernels`).
    ``top_k``, ``top_p`` and ``min_p`` (keywords only) restrict the support first
    (:func:`gumbelkit.restrict`): masked categories are exactly 0 and get zero gradient, and the
    hard samples follow the renormalised restricted law.
    """
    del eps  # unused, as in torch (deprecated there)
    dim = check_logits(logits, dim)
    tau = check_tau(tau, logits)
    logits = restricted(logits, dim, *check_restriction(top_k, top_p, min_p))
    return kernels.gumbel_softmax(logits, tau, hard, dim, generator)


def relaxed_bernoulli(
    logits: torch.Tensor,
    tau: Tau = 1.0,
    hard: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binary Concrete (relaxed Bernoulli) sample, ``y = sigmoid((logits + L) / tau)``.

    ``L = G1 - G2`` is Logistic(0, 1) noise (the difference of two Gumbels), so ``logits + L > 0``
    has probability ``sigmoid(logits)`` (Maddison et al. 2017, section 3.3; Jang et al. 2017).
    ``hard=True`` returns exactly 0 or 1 with the gradient of ``y``. Here ``logits`` are the
    log-odds of each element being 1; +-inf are allowed (certain outcomes), NaN is not.
    """
    logits = check_tensor(logits)
    tau = check_tau(tau, logits)
    if validation_enabled() and logits.numel() > 0:
        require(~torch.isnan(logits.detach()), NAN)
    x = upcast(logits)
    gumbels = [gumbel_like(x, generator) for _ in range(2)]
    perturbed = x + (gumbels[0] - gumbels[1])
    soft = torch.sigmoid(perturbed / floored(tau, x.dtype))
    if hard:
        soft = replace_gradient((perturbed.detach() > 0).to(soft.dtype), soft)
    return soft.to(logits.dtype)
