"""A categorical VAE: L categorical latents of C categories, any pathwise estimator, one-hot tests.

The model follows the MNIST-VAE protocol of ReinMax (Liu et al. 2023), itself after Jang et al.
(2017): encoder ``D-512-256-(L*C)`` with ReLU and logits without activation, decoder mirrored
``(L*C)-256-512-D`` with a sigmoid output, Bernoulli likelihood (binary cross-entropy against
grayscale pixels), the analytic KL of the encoder's categorical q(z|x) to a uniform prior, and
batches of 100. Hidden sizes, L and C are configurable.

Training estimates the expected reconstruction ``E_q[-log p(x|z)]`` with
``gk.expectation(f, logits, estimator, n_samples, tau, generator=...)`` (tau a number or a
``gk.schedules`` schedule, stepped once per training step), so the decoder sees whatever the
estimator's forward value is: a soft point of the simplex for ``softmax`` and ``gs``, a one-hot
code for the straight-through family and the score-function estimators (``rloo`` needs
``n_samples >= 2``). With one sample and a pathwise estimator this is exactly the code
``gk.sample(logits, estimator, tau, generator=...)`` draws. The optimizer is Adam unless another
is given (the ReinMax protocol uses RAdam for its larger configurations).

Evaluation uses one-hot codes only, whatever estimator trained the model, since the model is a
categorical latent-variable model: the discrete negative ELBO ``E_q[-log p(x|z)] + KL(q || p)``
estimated with hard samples ``z ~ q``, and the negative importance-weighted bound (Burda, Grosse
and Salakhutdinov 2016), ``-log (1/m) sum_i p(x|z_i) p(z_i) / q(z_i|x)`` with ``z_i ~ q``, an upper
bound on ``-log p(x)`` that tightens as m grows and equals the one-sample ELBO in expectation at
m = 1. All losses are in nats per example (lower is better). Generation decodes one-hot codes drawn
from the uniform prior.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..expectation import expectation
from ..sampling import gumbel_max
from ..schedules import Schedule
from .data import DataNotFoundError, ImageData, load_splits

__all__ = [
    "CategoricalVAE",
    "code_shape",
    "discrete_negative_elbo",
    "evaluate",
    "generate",
    "image_grid",
    "initial_model",
    "kl_to_uniform",
    "minibatches",
    "negative_iw_bound",
    "reconstruction",
    "relaxed_negative_elbo",
    "train",
    "validation_elbo",
    "missing_data",
    "train_and_evaluate",
    "Trained",
    "VAERecipe",
    "describe",
]

BATCH_SIZE = 100
EVAL_BATCH = 500


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class CategoricalVAE(nn.Module):
    """Encoder to ``(B, L, C)`` logits, decoder from ``(..., L, C)`` codes to pixel logits."""

    def __init__(self, input_dim: int, latents: int = 20, categories: int = 10,
                 hidden: Sequence[int] = (512, 256)) -> None:
        super().__init__()
        self.input_dim, self.latents, self.categories = input_dim, latents, categories
        code = latents * categories
        self.encoder = _mlp([input_dim, *hidden, code])
        self.decoder = _mlp([code, *reversed(hidden), input_dim])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's logits of q(z|x), shape ``(B, L, C)``."""
        return self.encoder(x).view(-1, self.latents, self.categories)

    def pixel_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder logits (before the sigmoid) for codes of shape ``(..., L, C)``."""
        return self.decoder(z.flatten(-2))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel means in [0, 1] for codes of shape ``(..., L, C)``."""
        return torch.sigmoid(self.pixel_logits(z))


def initial_model(input_dim: int, latents: int, categories: int, hidden: Sequence[int],
                  seed: int, device: torch.device) -> CategoricalVAE:
    """The model a seed starts from, the same whatever trains it; torch's global generator is
    left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CategoricalVAE(input_dim, latents, categories, hidden)
    return model.to(device)


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """``KL(q || Uniform)`` summed over the L variables: ``sum q log q + L log C``, per example."""
    log_q = torch.log_softmax(logits, -1)
    latents, categories = logits.shape[-2:]
    return (log_q.exp() * log_q).sum((-2, -1)) + latents * math.log(categories)


def reconstruction(model: CategoricalVAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``-log p(x|z)`` (binary cross-entropy summed over pixels) of images ``x`` of shape
    ``(B, D)`` decoded from codes ``z`` of shape ``(..., B, L, C)``: shape ``z.shape[:-2]``."""
    logits = model.pixel_logits(z)
    return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits),
                                              reduction="none").sum(-1)


def relaxed_negative_elbo(model: CategoricalVAE, x: torch.Tensor, estimator: str,
                          tau: float | Schedule, *, generator: torch.Generator | None = None,
                          n_samples: int = 1, **options: Any) -> torch.Tensor:
    """The training loss per example, ``(B,)``: reconstruction of the estimator's code + KL.

    The reconstruction is ``gk.expectation`` of :func:`reconstruction` over ``n_samples`` codes,
    per example: its value is the mean reconstruction of the estimator's codes (for a soft
    estimator the relaxed objective the model is trained on, not the model's ELBO), its gradient
    the estimator's.
    """
    logits = model.logits(x)
    expected = expectation(lambda z: reconstruction(model, x, z), logits, estimator,
                              n_samples, tau, generator=generator, **options)
    return expected + kl_to_uniform(logits)


def minibatches(images: torch.Tensor, steps: int, batch_size: int,
                generator: torch.Generator | None) -> Iterator[torch.Tensor]:
    """``steps`` batches of ``images`` drawn by epochs: each epoch a fresh permutation, its last
    incomplete batch dropped."""
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.randperm(len(images), generator=generator, device=images.device)
        batch, order = images.index_select(0, order[:batch_size]), order[batch_size:]
        yield batch


def train(model: CategoricalVAE, images: torch.Tensor, steps: int, estimator: str,
          tau: float | Schedule, *, generator: torch.Generator, lr: float = 1e-3,
          batch_size: int = BATCH_SIZE, optimizer: torch.optim.Optimizer | None = None,
          n_samples: int = 1, **options: Any) -> list[float]:
    """``steps`` optimizer steps on the relaxed negative ELBO over :func:`minibatches`; returns
    the losses.

    ``optimizer``: one over the model's parameters, which a later call can continue with (default:
    a new Adam at ``lr``). ``n_samples`` codes per image (``rloo`` needs 2 or more). A schedule
    ``tau`` is stepped after every training step.
    """
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[torch.Tensor] = []  # kept on the device: no synchronisation per step
    for batch in minibatches(images, steps, batch_size, generator):
        loss = relaxed_negative_elbo(model, batch, estimator, tau, generator=generator,
                                     n_samples=n_samples, **options).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if isinstance(tau, Schedule):
            tau.step()
        losses.append(loss.detach())
    return torch.stack(losses).tolist() if losses else []


def _one_hot_samples(logits: torch.Tensor, n: int, generator: torch.Generator | None
                     ) -> torch.Tensor:
    """``n`` one-hot draws from Categorical(softmax(logits)), shape ``(n, *logits.shape)``."""
    index = gumbel_max(logits.expand(n, *logits.shape), generator=generator)
    return F.one_hot(index, logits.shape[-1]).to(logits.dtype)


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(chunk) for chunk in x.split(EVAL_BATCH)])


@torch.no_grad()
def discrete_negative_elbo(model: CategoricalVAE, x: torch.Tensor, n_samples: int = 1, *,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """``E_q[-log p(x|z)] + KL(q || p)`` with ``n_samples`` one-hot draws z ~ q, per example."""
    def loss(chunk: torch.Tensor) -> torch.Tensor:
        logits = model.logits(chunk)
        z = _one_hot_samples(logits, n_samples, generator)
        return reconstruction(model, chunk, z).mean(0) + kl_to_uniform(logits)

    return _batched(loss, x)


@torch.no_grad()
def negative_iw_bound(model: CategoricalVAE, x: torch.Tensor, m: int, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``-log (1/m) sum_i p(x|z_i) p(z_i) / q(z_i|x)``, z_i one-hot draws from q, per example."""
    def bound(chunk: torch.Tensor) -> torch.Tensor:
        logits = model.logits(chunk)
        z = _one_hot_samples(logits, m, generator)
        log_q = (z * torch.log_softmax(logits, -1)).sum((-2, -1))
        log_prior = -model.latents * math.log(model.categories)
        log_w = -reconstruction(model, chunk, z) + log_prior - log_q
        return -(torch.logsumexp(log_w, 0) - math.log(m))

    return _batched(bound, x)


@torch.no_grad()
def evaluate(model: CategoricalVAE, x: torch.Tensor, *, elbo_samples: int, iw_samples: int,
             generator: torch.Generator | None = None) -> dict[str, float]:
    """Means over ``x`` (nats per example) of the one-hot evaluations and of the KL term."""
    return {
        "discrete_elbo": discrete_negative_elbo(model, x, elbo_samples,
                                                generator=generator).mean().item(),
        "iw_bound": negative_iw_bound(model, x, iw_samples, generator=generator).mean().item(),
        "kl": _batched(lambda chunk: kl_to_uniform(model.logits(chunk)), x).mean().item(),
    }


@torch.no_grad()
def generate(model: CategoricalVAE, n: int, *, generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """Pixel means of ``n`` images decoded from one-hot codes drawn from the uniform prior."""
    device = next(model.parameters()).device
    uniform = torch.zeros(model.latents, model.categories, device=device)
    return model.decode(_one_hot_samples(uniform, n, generator))


def image_grid(images: torch.Tensor | np.ndarray, image_shape: tuple[int, int], columns: int,
               pad: int = 1) -> np.ndarray:
    """Tile ``(N, H*W)`` images into one 2-D array (rows of ``columns`` images, ``pad`` pixels
    of 1.0 between them) for ``imshow``."""
    images = np.asarray(images, dtype=np.float32).reshape(-1, *image_shape)
    height, width = image_shape
    rows = -(-len(images) // columns)
    grid = np.ones((rows * (height + pad) - pad, columns * (width + pad) - pad), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (height + pad):r * (height + pad) + height,
             c * (width + pad):c * (width + pad) + width] = image
    return grid


@dataclass
class VAERecipe:
    """Data, model, training and evaluation of a categorical VAE (:func:`train_and_evaluate`)."""

    latents: int = 20
    categories: int = 10
    hidden: tuple[int, ...] = (256, 128)
    steps: int = 600
    lr: float = 3e-3
    downsample: int = 1  # shrink images this many times per side (average pooling)
    train_size: int = 0  # 0: the whole training split
    test_size: int = 500
    elbo_samples: int = 10
    iw_samples: int = 50
    data_dir: str = ""  # empty: the Debian package's location (data.FASHION_MNIST_DIR)


VALIDATION_STREAM = 1_000_003  # offset of the validation evaluation's generator seed


def code_shape(code: str) -> tuple[int, int]:
    """``"LxC"`` as (L latents, C categories); ValueError for anything else."""
    parts = code.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"codes: expected LxC with positive integers (e.g. 8x4), got {code!r}")
    return int(parts[0]), int(parts[1])


def validation_elbo(config: VAERecipe, validation_size: int, model: CategoricalVAE, seed: int,
                    device: torch.device) -> float:
    """Mean discrete negative ELBO of ``model`` on the last ``validation_size`` test-split images
    (disjoint from the first ``test_size``, which a verdict measures): where a temperature or an
    estimator is chosen, so that the images a verdict reads do not choose it."""
    _, test = load_splits(config.data_dir or None, config.downsample)
    if config.test_size + validation_size > len(test):
        raise ValueError(f"test_size + validation_size exceed the {len(test)} images of the "
                         "test split: the validation images would overlap the test images")
    images = test.images[len(test) - validation_size:].to(device)
    generator = torch.Generator(device=device).manual_seed(VALIDATION_STREAM + seed)
    return discrete_negative_elbo(model, images, config.elbo_samples,
                                  generator=generator).mean().item()


@dataclass
class Trained:
    """A trained model with its data and its one-hot evaluation on the held-out images."""

    model: CategoricalVAE
    train: ImageData
    test_images: torch.Tensor
    evaluation: dict[str, float]
    generator: torch.Generator


def missing_data(config: VAERecipe) -> str | None:
    """Why :func:`train_and_evaluate` cannot run here (Fashion-MNIST not found), or None."""
    try:
        load_splits(config.data_dir or None, config.downsample)
    except DataNotFoundError as error:
        return str(error)
    return None


def train_and_evaluate(config: VAERecipe, seed: int, estimator: str, tau: float | Schedule,
                       device: torch.device) -> Trained:
    """Load, train from :func:`initial_model` and evaluate, deterministically given the seed."""
    gen = torch.Generator(device=device).manual_seed(seed)
    data, test = load_splits(config.data_dir or None, config.downsample)
    x_train = (data.images[:config.train_size] if config.train_size else data.images).to(device)
    x_test = test.images[:config.test_size].to(device)
    model = initial_model(x_train.shape[1], config.latents, config.categories, config.hidden,
                          seed, device)
    train(model, x_train, config.steps, estimator, tau, generator=gen, lr=config.lr)
    evaluation = evaluate(model, x_test, elbo_samples=config.elbo_samples,
                          iw_samples=config.iw_samples, generator=gen)
    return Trained(model, data, x_test, evaluation, gen)


def describe(config: VAERecipe) -> str:
    """The data, model, training and evaluation of :func:`train_and_evaluate`, in sentences."""
    data, test = load_splits(config.data_dir or None, config.downsample)
    size = min(config.train_size or len(data), len(data))
    return (f"Data: {data.name} ({data.source}), {size:,} training images, the first "
            f"{min(config.test_size, len(test)):,} test images held out; pixels are grayscale in "
            f"[0, 1]. Model: encoder {data.images.shape[1]}-{'-'.join(map(str, config.hidden))}-"
            f"({config.latents}x{config.categories}) with ReLU, decoder mirrored with a sigmoid "
            f"output, Bernoulli likelihood (binary cross-entropy), {config.latents} categorical "
            f"variables of {config.categories} categories, uniform prior, analytic KL. Training: "
            f"Adam (lr {config.lr:g}), batches of {BATCH_SIZE}, {config.steps:,} steps, the "
            "code fed to the decoder being gk.sample(logits, estimator, tau); the same "
            "initialisation for every estimator of a seed. Evaluation, identical for every "
            "model, with one-hot codes only: the discrete negative ELBO (mean over "
            f"{config.elbo_samples} samples z ~ q(z|x)) and the negative importance-weighted "
            f"bound with m = {config.iw_samples} samples from q, in nats per image (lower is "
            "better).")
