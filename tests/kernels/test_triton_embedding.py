"""The soft embedding's Triton kernels (gumbelkit.kernels.triton_embedding) against the same
oracle as the chunked path (tests/test_embedding.py: the composition with the same noise, every
mode, dtype and noise), gradcheck in float64, the hard samples' law and the portable noise.

Without a GPU the kernels run in Triton's interpreter (conftest.py) on CPU tensors, the soft
embedding being sent to them for every tensor; the tiles and buffers are shrunk so that a row
spans several tiles, the forward several blocks of rows and the backward several chunks of
categories.
"""

import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit import embedding
from gumbelkit.bench.vocab import saved_bytes
from gumbelkit.portable import portable_gumbel
from tests.kernels.conftest import KERNEL_DEVICE
from tests.stats import gen
from tests.test_embedding import (
    DTYPES,
    LAYOUTS,
    NOISES,
    RESTRICTIONS,
    check_against_the_composition,
    check_hard_samples,
    check_restricted_support,
    seed_of,
)

# the interpreter divides by zero in padding rows whose results are masked out on store
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def kernels(triton_gumbel, monkeypatch):
    """The soft embedding on the Triton kernels for every tensor, with small tiles: rows of 40
    categories in 3 tiles, blocks of one row forward (64 // 40), chunks of 16 categories
    backward."""
    from gumbelkit.kernels import triton_embedding

    monkeypatch.setattr(embedding, "_on_triton", lambda x: True)
    for name, value in dict(BLOCK_R=2, BLOCK_V=16, TILE_R=2, TILE_V=16,
                            BUFFER_ENTRIES=64).items():
        monkeypatch.setattr(triton_embedding, name, value)
    return triton_embedding


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("dtype", DTYPES if KERNEL_DEVICE == "cpu" else DTYPES[1:], ids=str)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
@pytest.mark.parametrize("shape,dim,chunk", LAYOUTS, ids=str)
def test_equals_the_composition_for_the_same_noise(kernels, shape, dim, chunk, mode, dtype,
                                                   noise):
    check_against_the_composition(shape, dim, chunk, mode, dtype, noise, KERNEL_DEVICE)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
@pytest.mark.parametrize("rule", RESTRICTIONS[::3], ids=str)
def test_restricted_support_is_that_of_the_restricted_logits(kernels, rule, mode, noise):
    check_restricted_support(rule, mode, noise, KERNEL_DEVICE)


@pytest.mark.skipif(KERNEL_DEVICE != "cpu", reason="compiled Triton holds constants in float32")
@pytest.mark.parametrize("noise", NOISES)
def test_gradcheck_in_float64(kernels, noise):
    logits = torch.randn(2, 1, 20, generator=gen(6), dtype=torch.float64, requires_grad=True)
    logits.data[0, 0, 4] = -math.inf  # a mask: its gradient is 0
    weight = torch.randn(20, 2, generator=gen(7), dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([[[0.7]], [[1.6]]], dtype=torch.float64, requires_grad=True)

    def fn(*args):
        return gk.soft_embedding(*args, generator=gen(8), noise=noise)

    # every call draws the same noise (a fresh generator of the same seed): fn is deterministic;
    # two rows of 20 categories (two tiles of the statistics pass) keep the interpreter's
    # calls few
    assert torch.autograd.gradcheck(fn, (logits, weight, tau), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("noise", NOISES)
def test_hard_samples_are_the_gumbel_max_and_follow_softmax(kernels, monkeypatch, noise):
    """4,000 rows (tests/test_embedding.py's check_hard_samples), in few programs for the
    interpreter."""
    monkeypatch.setattr(kernels, "BLOCK_R", 512)
    check_hard_samples(4000, noise, KERNEL_DEVICE)


def test_the_noise_is_the_kernels_and_ignores_the_tiling(kernels, monkeypatch):
    """soft_embedding_noise returns the noise the kernels add (the soft sample is the softmax
    of the logits plus it) for both noises, and other tiles give the same samples; the portable
    noise is portable_gumbel's, bit for bit."""
    logits = torch.randn(5, 40, generator=gen(20)).to(KERNEL_DEVICE)
    weight = torch.randn(40, 3, generator=gen(21)).to(KERNEL_DEVICE)

    def sample(noise):
        return gk.soft_embedding(logits, weight, 0.5, generator=gen(22), noise=noise)

    small_tiles = {}
    for noise in NOISES:
        drawn = embedding.soft_embedding_noise(logits, generator=gen(22), noise=noise)
        if noise == "portable":
            assert torch.equal(drawn.cpu(), portable_gumbel((5, 40), seed_of(22)))
        small_tiles[noise] = sample(noise)
        ref = torch.softmax((logits + drawn) / 0.5, -1) @ weight
        assert torch.allclose(small_tiles[noise], ref, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(kernels, "BLOCK_V", 32)
    monkeypatch.setattr(kernels, "TILE_V", 64)
    for noise in NOISES:
        assert torch.allclose(sample(noise), small_tiles[noise], rtol=1e-6, atol=1e-7)


def test_memory_held_for_backward_is_rows_by_d(kernels):
    """What the Triton path keeps for backward besides the inputs (bench vocab's saved_bytes):
    the soft output (rows x d, float32), and per row its shift, log-sum-exp and 1 / tau's input
    (the floored tau)."""
    rows, size, width = 8, 40, 3
    logits = torch.randn(rows, size, generator=gen(9)).to(KERNEL_DEVICE).requires_grad_(True)
    weight = torch.randn(size, width, generator=gen(10)).to(KERNEL_DEVICE).requires_grad_(True)
    tau = torch.full((rows, 1), 0.5, device=KERNEL_DEVICE, requires_grad=True)
    held = saved_bytes(lambda: gk.soft_embedding(logits, weight, tau, generator=gen(11)),
                       (logits, weight))
    assert 4 * rows * width <= held <= 4 * (rows * width + 4 * rows)


@pytest.mark.parametrize("noise", NOISES)
def test_double_backward_recomputes_with_the_kernels_noise(kernels, noise):
    """create_graph=True: the gradients recomputed through the plain composition with the
    kernels' own noise equal the kernels' gradients, and are differentiable again."""
    logits = torch.randn(3, 40, generator=gen(54)).to(KERNEL_DEVICE).requires_grad_(True)
    weight = torch.randn(40, 4, generator=gen(55)).to(KERNEL_DEVICE).requires_grad_(True)
    upstream = torch.randn(3, 4, generator=gen(56)).to(KERNEL_DEVICE)

    def call():
        return gk.soft_embedding(logits, weight, 0.5, generator=gen(57), noise=noise, top_k=30)

    fused = torch.autograd.grad(call(), (logits, weight), upstream)
    graph = torch.autograd.grad(call(), (logits, weight), upstream, create_graph=True)
    for first, second in zip(fused, graph, strict=True):
        torch.testing.assert_close(first, second, rtol=1e-5, atol=1e-6)
    assert all(g.requires_grad for g in graph)
    sum(g.pow(2).sum() for g in graph).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(weight.grad).all()
