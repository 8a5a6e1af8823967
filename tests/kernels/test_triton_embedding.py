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
from gumbelkit.portable import portable_gumbel, portable_gumbel_max
from tests.kernels.conftest import KERNEL_DEVICE
from tests.stats import assert_law, gen
from tests.test_embedding import (
    DTYPES,
    LAYOUTS,
    NOISES,
    RESTRICTIONS,
    check_against_the_composition,
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
    """4,000 rows of 6 categories: the sampled row of an identity table is the argmax of the
    logits plus the noise (portable_gumbel_max's token with the portable noise), and the counts
    pass a chi-square test against softmax(logits) at level 1e-4 (tests/stats.py)."""
    monkeypatch.setattr(kernels, "BLOCK_R", 512)  # few programs for the interpreter
    probs_logits = torch.tensor([1.0, -0.5, 0.0, 2.0, -1.0, 0.5])
    logits = probs_logits.expand(4000, 6).to(KERNEL_DEVICE)
    table = torch.eye(6, device=KERNEL_DEVICE)
    drawn = embedding.soft_embedding_noise(logits, generator=gen(12), noise=noise)
    for mode in ("st-gs", "reinmax"):
        with torch.no_grad():  # no soft outputs are computed: the value alone
            out = gk.soft_embedding(logits, table, 0.5, estimator=mode, generator=gen(12),
                                    noise=noise)
        assert torch.equal(out.sum(1), torch.ones(4000, device=KERNEL_DEVICE))
        tokens = out.argmax(1)
        assert torch.equal(tokens, (logits + drawn).argmax(1))
        if noise == "portable":
            assert torch.equal(tokens.cpu(), portable_gumbel_max(logits.cpu(), seed_of(12)))
        assert_law(torch.bincount(tokens.cpu(), minlength=6), torch.softmax(probs_logits, 0))


def test_the_noise_is_the_kernels_and_ignores_the_tiling(kernels, monkeypatch):
    """soft_embedding_noise returns the noise the kernels add (the hard sample is its argmax,
    and the soft sample its softmax) for both noises, whatever the tiles; the portable noise is
    portable_gumbel's, bit for bit."""
    logits = torch.randn(5, 40, generator=gen(20)).to(KERNEL_DEVICE)
    weight = torch.randn(40, 3, generator=gen(21)).to(KERNEL_DEVICE)
    for noise in NOISES:
        drawn = embedding.soft_embedding_noise(logits, generator=gen(22), noise=noise)
        if noise == "portable":
            assert torch.equal(drawn.cpu(), portable_gumbel((5, 40), seed_of(22)))
        soft = gk.soft_embedding(logits, weight, 0.5, generator=gen(22), noise=noise)
        ref = torch.softmax((logits + drawn) / 0.5, -1) @ weight
        assert torch.allclose(soft, ref, rtol=1e-5, atol=1e-6)
        monkeypatch.setattr(kernels, "BLOCK_V", 32)
        monkeypatch.setattr(kernels, "TILE_V", 64)
        assert torch.allclose(gk.soft_embedding(logits, weight, 0.5, generator=gen(22),
                                                noise=noise), soft, rtol=1e-6, atol=1e-7)
        monkeypatch.setattr(kernels, "BLOCK_V", 16)
        monkeypatch.setattr(kernels, "TILE_V", 16)


def test_memory_held_for_backward_is_rows_by_d(kernels):
    """What the Triton path keeps for backward besides the inputs: the soft output (rows x d,
    float32), and per row its shift, log-sum-exp and 1 / tau's input (the floored tau)."""
    rows, size, width = 8, 40, 3
    logits = torch.randn(rows, size, generator=gen(9)).to(KERNEL_DEVICE).requires_grad_(True)
    weight = torch.randn(size, width, generator=gen(10)).to(KERNEL_DEVICE).requires_grad_(True)
    tau = torch.full((rows, 1), 0.5, device=KERNEL_DEVICE, requires_grad=True)
    inputs = {logits.data_ptr(), weight.data_ptr()}
    saved = []

    def pack(tensor):
        if tensor.data_ptr() not in inputs:
            saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        gk.soft_embedding(logits, weight, tau, generator=gen(11)).sum().backward()
    assert sum(saved) <= 4 * (rows * width + 4 * rows)


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
