"""REBAR (Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein 2017, "REBAR: Low-variance, unbiased
gradient estimates for discrete latent variable models") and RELAX (Grathwohl, Choi, Wu, Roeder and
Duvenaud 2018, "Backpropagation through the Void: Optimizing control variates for black-box
gradient estimation").

Both are score-function estimators with a control variate ``c`` evaluated at relaxed inputs,
unbiased whether f is differentiable or not, as long as ``c`` is continuous in z (below). With
``z = logits + G`` (G ~ Gumbel(0, 1)), the sample ``b = one_hot(argmax z)`` and ``z~`` a draw of
z given b (the conditional Gumbels of Gumbel-Rao, reparameterized as functions of the logits as
Tucker et al. 2017 do):

    gradient = (f(b) - c(z~)) grad log p(b) + grad c(z) - grad c(z~)

(Grathwohl et al. 2018's discrete RELAX estimator; Tucker et al. 2017's REBAR is the case
``c = eta f(softmax(z / lambda))``).
The last two terms have the same expectation as the part of the first that ``c(z~)`` subtracts, so
every choice of ``c`` keeps the estimator unbiased, and ``c`` can be tuned to lower its variance.

``rebar``: ``c(z) = eta * f(softmax(z / temperature))``; f must accept relaxed (soft) samples,
and be continuous there for ``grad c`` to be the gradient of ``E[c]`` (the reparameterization
trick): a kink such as ``abs`` is fine, a jump such as ``floor`` biases it (tests/test_rebar.py
shows both). For such f, use ``relax`` with ``eta=0``.
``relax``: ``c(z) = eta * f(softmax(z / temperature)) + surrogate(z)``, with ``surrogate`` a
learned module (the paper's ``r_rho``; it receives the perturbed logits ``z``, shape
``(n, *logits.shape)`` with ``-inf`` at masked categories, and returns f's shape). With ``eta=0``
f is only ever evaluated at one-hot samples, so it may be a black box.

The control-variate parameters (``eta``, ``temperature``, the surrogate's parameters) may be
tensors that require grad: :func:`gumbelkit.variance_step` tunes them by minimising the
estimator's variance, as both papers do. The gradient of the result to those parameters is zero,
and to f's own parameters it is the gradient of ``mean f(b)``: only the logits get the estimator's
gradient. Options: ``eta`` (default 1), ``temperature`` (default: the call's ``tau``) and, for
``relax``, ``surrogate`` (default none: then ``relax`` is ``rebar``).
"""

from __future__ import annotations

import math

import torch

from .._ops import expand_samples, one_hot, shifted_to, upcast
from ..noise import conditional_gumbel, gumbel_noise
from .base import Estimator, evaluate, sample_log_prob, score_surrogate
from .options import Option, optional_callable, optional_temperature, real


def conditional_perturbation(
    logits: torch.Tensor, index: torch.Tensor, dim: int, generator: torch.Generator | None
) -> torch.Tensor:
    """A draw of ``z = logits + G`` given ``argmax z = index``, differentiable in ``logits``.

    The values are those of :func:`gumbelkit.noise.conditional_gumbel`; the gradient is that of
    its reparameterization with the Gumbels held fixed: ``z_b = logsumexp(logits) + G_b`` and
    ``z_i = -log(exp(-z_b) + exp(-(logits_i + G_i)))`` for ``i != b``, where each
    ``logits_i + G_i = z_i - log(1 - exp(z_i - z_b))`` is read back from the values.
    """
    values = conditional_gumbel(logits, index, 1, dim, generator=generator)[0]
    at = index.unsqueeze(dim)
    chosen = torch.zeros_like(logits, dtype=torch.bool).scatter_(dim, at, True)
    masked = torch.isneginf(logits)
    safe = logits.masked_fill(masked, 0.0)  # finite everywhere, so no NaN reaches the gradient
    top_value = values.gather(dim, at)
    top = shifted_to(logits.logsumexp(dim, keepdim=True), top_value)
    free = values - torch.log(-torch.expm1(values - top_value))  # logits_i + G_i
    free = torch.where(masked | chosen, safe.detach(), free)
    others = -torch.logaddexp(-top, -shifted_to(safe, free))
    others = torch.where(masked, -math.inf, others)
    return others.scatter(dim, at, top)


class Relax(Estimator):
    """RELAX (Grathwohl et al. 2018): control variate ``eta f(softmax(z/temperature)) + r(z)``."""

    name = "relax"
    noise = "gumbel"
    pathwise = False
    reference = "Grathwohl, Choi, Wu, Roeder and Duvenaud 2018"
    gradient = ("score function, learned control variate `surrogate` (+ rebar's), tuned by "
                "`gk.variance_step`")
    option_specs = (
        Option("eta", 1.0, real, "weight of f(softmax(z / temperature)) in the control variate",
               learnable=True),
        Option("temperature", None, optional_temperature,
               "temperature of the relaxed sample in the control variate (default: the call's "
               "tau)", learnable=True),
        Option("surrogate", None, optional_callable,
               "learned part r(z) of the control variate: perturbed logits (n, *logits.shape) "
               "to f's shape (default none)", parse=None, learnable=True),
    )

    def expectation(self, f, logits, n_samples, tau, dim, generator, eta, temperature,
                    surrogate=None):
        x = upcast(logits)
        batch = expand_samples(x, n_samples)
        noise = gumbel_noise(batch.shape, dtype=x.dtype, device=x.device, generator=generator)
        z = batch + noise
        index = z.detach().argmax(dim + 1)
        values = evaluate(f, one_hot(index, batch, dim + 1).to(logits.dtype), logits, dim)
        z_tilde = conditional_perturbation(batch, index, dim + 1, generator)
        lam = tau if temperature is None else temperature
        masked = torch.isneginf(batch)

        def control(perturbed: torch.Tensor) -> torch.Tensor:
            total = values.new_zeros(values.shape)
            if isinstance(eta, torch.Tensor) or eta != 0:
                # divide finite values only: -inf / lam would put NaN into lam's gradient
                scaled = (perturbed.masked_fill(masked, 0.0) / lam).masked_fill(masked, -math.inf)
                relaxed = torch.softmax(scaled, dim + 1).to(logits.dtype)
                total = total + eta * evaluate(f, relaxed, logits, dim)
            if surrogate is not None:
                learned = surrogate(perturbed.to(logits.dtype))
                if not isinstance(learned, torch.Tensor) or learned.shape != values.shape:
                    got = getattr(learned, "shape", type(learned).__name__)
                    raise ValueError(f"{self.name} option surrogate must return the shape f "
                                     f"returns, {tuple(values.shape)}, got {got}")
                total = total + learned
            return total

        c_tilde = control(z_tilde)
        log_p = sample_log_prob(x, index, values.shape, dim)
        score = score_surrogate(values, values.detach() - c_tilde, log_p).mean(0)
        tuned = any(isinstance(v, torch.Tensor) and v.requires_grad for v in (eta, lam)) or \
            surrogate is not None
        return score + pathwise_term(control(z) - c_tilde, x, tuned).to(score.dtype)


class Rebar(Relax):
    """REBAR (Tucker et al. 2017): control variate ``eta f(softmax(z / temperature))``."""

    name = "rebar"
    reference = "Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein 2017"
    gradient = ("score function, control variate η f(softmax(z/λ)), `eta` and `temperature` "
                "tuned by `gk.variance_step`")
    option_specs = Relax.option_specs[:2]


def pathwise_term(difference: torch.Tensor, logits: torch.Tensor, tuned: bool) -> torch.Tensor:
    """Zero in value; its gradient to ``logits`` is that of ``difference.mean(0)`` (each row's own,
    for per-row values ``(n, B)``), and to nothing else.

    ``grad = d difference.mean(0) / d logits`` enters as
    ``grad * (logits - stop_gradient(logits))``,
    so f's parameters get no gradient from the control variate. With ``tuned`` (control-variate
    parameters that require grad), ``grad`` keeps its graph, so that the estimate is
    differentiable in them (for :func:`gumbelkit.variance_step`).
    """
    rows = difference.shape[1:]
    if not (torch.is_grad_enabled() and logits.requires_grad and difference.requires_grad):
        return logits.new_zeros(rows)
    (grad,) = torch.autograd.grad(difference.mean(0).sum(), logits, retain_graph=True,
                                  create_graph=tuned,
                                  allow_unused=True, materialize_grads=True)
    masked = torch.isneginf(logits)  # -inf - -inf would be NaN
    safe = logits.masked_fill(masked, 0.0)
    term = grad.masked_fill(masked, 0.0) * (safe - safe.detach())
    return term.sum() if len(rows) == 0 else term.flatten(1).sum(1)
