"""The Triton kernels against the reference formulas: same output and gradient for the kernels'
own noise, the right law, reproducible, finite, masks respected, and gradcheck in float64.

Without a GPU they run in Triton's interpreter (see conftest.py), on small shapes; long rows are
exercised by shrinking ``MAX_BLOCK_K`` so that a row spans several tiles.
"""

import math
import warnings

import pytest
import torch

from tests.kernels.conftest import KERNEL_DEVICE
from tests.stats import ALPHA, chisquare_pvalue, gen

DEV = KERNEL_DEVICE
# the interpreter divides by zero in padding rows whose results are masked out on store
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# (shape, dim, longest tile): one tile per row, several tiles per row, categories not last
LAYOUTS = [((5, 7), 1, 4096), ((3, 40), 1, 16), ((4, 6, 3), 1, 4096), ((2, 37, 3), 1, 16),
           ((6, 2), 1, 4096), ((37, 4), 0, 16)]
# relative tolerance per dtype: float64 and float32 compute the same formula in another order (a
# few ulps); half precision rounds the result (relative error 2**-9 in bfloat16, 2**-12 in
# float16), and long rows round twice (the unnormalised exponentials are kept in the output's
# dtype between the two passes)
# float64: the interpreter computes in float64 throughout; compiled Triton holds Python float
# constants and arguments (log2 e, 1 / tau) in float32, relative error 2**-24 each, which moves
# z = (x + G) log2(e) / tau by about 2**-22 |z| and y by as much relative to |z| <= 30 (why the
# dispatch keeps float64 on CUDA on the reference path)
TOLERANCE = {torch.float64: 1e-12 if DEV == "cpu" else 30 * 2**-22, torch.float32: 2e-6,
             torch.bfloat16: 2 * 2**-8, torch.float16: 2 * 2**-11}


def seed_tensor(value: int) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.int64, device=DEV)


def tau_tensor(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


@pytest.fixture
def ops(triton_gumbel, monkeypatch):
    """The custom ops, with the Triton kernels as their implementation for every tensor (in
    the interpreter without a GPU)."""
    from gumbelkit.kernels import ops

    monkeypatch.setattr(ops, "backend_for", lambda *args: "triton")
    return ops


def shifted(x, dtype, dim):
    x = x.to(dtype)
    return x - x.amax(dim, keepdim=True)


def reference(x, noise, tau, hard, dim):
    """The pure-PyTorch formula in the kernels' compute dtype, for the kernels' noise."""
    soft = torch.softmax((shifted(x, noise.dtype, dim) + noise) / tau, dim)
    if not hard:
        return soft
    hot = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
    return hot + (soft - soft.detach())


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("shape,dim,tile", LAYOUTS, ids=str)
def test_same_output_and_gradient_as_the_formula(triton_gumbel, ops, monkeypatch, shape, dim,
                                                 tile, hard, dtype):
    monkeypatch.setattr(triton_gumbel, "MAX_BLOCK_K", tile)
    x = (3 * torch.randn(shape, generator=gen(1), dtype=torch.float64)).to(dtype).to(DEV)
    seed = seed_tensor(77)
    noise = triton_gumbel.gumbel_noise(shape, dim, seed, dtype)
    leaf = x.clone().requires_grad_(True)
    y, soft = ops.gumbel_softmax(leaf, tau_tensor(0.6), hard, dim, seed)
    assert y.dtype == dtype and y.shape == x.shape
    ref_leaf = x.clone().requires_grad_(True)
    expected = reference(ref_leaf, noise, 0.6, hard, dim)
    tol = TOLERANCE[dtype]
    if hard:
        assert torch.equal(y, expected.detach().to(dtype))  # exactly 0 and 1, same argmax
        soft_expected = reference(x, noise, 0.6, False, dim)
        torch.testing.assert_close(soft.double(), soft_expected.double(), rtol=tol, atol=tol)
    else:
        torch.testing.assert_close(y.double(), expected.double(), rtol=tol, atol=tol)
    grad = torch.randn(shape, generator=gen(2), dtype=torch.float64).to(dtype).to(DEV)
    y.backward(grad)
    expected.backward(grad.to(expected.dtype))
    # dx = y * (g - <g, y>) / tau: an error tol * y in y moves dx by at most
    # tol * y * (|g| + |<g, y>| + max|g|) / tau <= 3 tol max|g| / tau; one more for rounding dx
    atol = 4 * tol * grad.abs().max().item() / 0.6
    torch.testing.assert_close(leaf.grad.double(), ref_leaf.grad.double(), rtol=tol, atol=atol)


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=str)
@pytest.mark.parametrize("shape,dim,tile", LAYOUTS, ids=str)
def test_gumbel_max_is_the_argmax_of_the_perturbed_logits(triton_gumbel, monkeypatch, shape,
                                                          dim, tile, dtype):
    monkeypatch.setattr(triton_gumbel, "MAX_BLOCK_K", tile)
    x = torch.randn(shape, generator=gen(3), dtype=torch.float64).to(dtype).to(DEV)
    seed = seed_tensor(5)
    noise = triton_gumbel.gumbel_noise(shape, dim, seed, dtype)
    index = triton_gumbel.gumbel_max(x, dim, seed)
    assert index.dtype == torch.int64
    assert torch.equal(index, (shifted(x, noise.dtype, dim) + noise).argmax(dim))


@pytest.mark.parametrize("tile", [4096, 4], ids=["one-tile", "tiled"])
@pytest.mark.parametrize("mode", ["index", "hard"])
def test_law_is_the_categorical(triton_gumbel, monkeypatch, tile, mode):
    # 40,000 draws of a 6-way categorical (one row per draw); chi-square rejects at p < ALPHA
    monkeypatch.setattr(triton_gumbel, "MAX_BLOCK_K", tile)
    logits = torch.tensor([1.5, 0.0, -1.0, 0.7, -3.0, 0.2], device=DEV)
    rows = logits.expand(40_000, 6)
    if mode == "index":
        index = triton_gumbel.gumbel_max(rows, 1, seed_tensor(11))
    else:
        hard, _ = triton_gumbel.gumbel_softmax(rows, tau_tensor(0.5), True, 1, seed_tensor(11))
        index = hard.argmax(1)
    counts = torch.bincount(index.cpu(), minlength=6)
    assert chisquare_pvalue(counts, torch.softmax(logits, 0).cpu()) > ALPHA


def test_noise_is_standard_gumbel(triton_gumbel):
    # 2**18 draws: mean Euler's gamma, variance pi^2/6, within 4.5 standard errors; the largest
    # float32 draw is -log(-log(1 - 2**-24)) = 16.6, the smallest -log(-log(2**-33)) = -3.14
    g = triton_gumbel.gumbel_noise((512, 512), 1, seed_tensor(3)).double().cpu()
    assert torch.isfinite(g).all()
    n = g.numel()
    assert abs(g.mean().item() - 0.5772156649) < 4.5 * math.sqrt(math.pi**2 / 6 / n)
    var_se = math.sqrt((2.4 * (math.pi**2 / 6) ** 2 * 1.0 + 2 * (math.pi**2 / 6) ** 2) / n)
    assert abs(g.var().item() - math.pi**2 / 6) < 4.5 * var_se
    assert g.max() <= 16.7 and g.min() >= -3.2


def test_noise_does_not_depend_on_tiles_and_entries_differ(triton_gumbel, monkeypatch):
    seed = seed_tensor(9)
    one_tile = triton_gumbel.gumbel_noise((3, 50), 1, seed)
    monkeypatch.setattr(triton_gumbel, "MAX_BLOCK_K", 16)
    assert torch.equal(triton_gumbel.gumbel_noise((3, 50), 1, seed), one_tile)
    assert one_tile.unique().numel() == one_tile.numel()
    assert not torch.equal(triton_gumbel.gumbel_noise((3, 50), 1, seed_tensor(10)), one_tile)


def test_generator_reproduces_and_advances(ops):
    from gumbelkit import kernels

    x = torch.randn(64, 10, device=DEV)
    g1, g2 = (torch.Generator(device=DEV).manual_seed(4) for _ in range(2))
    a = kernels.gumbel_softmax(x, 1.0, False, 1, generator=g1)
    assert torch.equal(a, kernels.gumbel_softmax(x, 1.0, False, 1, generator=g2))
    assert not torch.equal(a, kernels.gumbel_softmax(x, 1.0, False, 1, generator=g1))
    torch.manual_seed(8)
    b = kernels.gumbel_max(x, 1)
    torch.manual_seed(8)
    assert torch.equal(b, kernels.gumbel_max(x, 1))


@pytest.mark.parametrize("tile", [4096, 16], ids=["one-tile", "tiled"])
def test_masked_categories_are_never_drawn_and_get_no_gradient(triton_gumbel, ops, monkeypatch,
                                                               tile):
    monkeypatch.setattr(triton_gumbel, "MAX_BLOCK_K", tile)
    x = torch.randn(200, 40, generator=gen(4)).to(DEV)
    x[:, ::3] = -math.inf
    index = triton_gumbel.gumbel_max(x, 1, seed_tensor(1))
    assert (index % 3 != 0).all()
    for hard in (False, True):
        leaf = x.clone().requires_grad_(True)
        y, _ = ops.gumbel_softmax(leaf, tau_tensor(0.3), hard, 1, seed_tensor(2))
        assert (y[:, ::3] == 0).all() and torch.isfinite(y).all()
        y.backward(torch.randn_like(y))
        assert torch.isfinite(leaf.grad).all() and (leaf.grad[:, ::3] == 0).all()


def test_finite_at_extreme_logits_and_temperatures(ops):
    from gumbelkit._ops import tau_floor

    x = torch.tensor([[1e4, -1e4, 0.0, 1e4 - 1.0], [-30.0, 30.0, 0.0, 0.0],
                      [3e38, -3e38, 3e38, 1e38]], device=DEV)
    for tau in (tau_floor(torch.float32), 1e-3, 1.0, 1e3):
        for hard in (False, True):
            leaf = x.clone().requires_grad_(True)
            y, _ = ops.gumbel_softmax(leaf, tau_tensor(tau), hard, 1, seed_tensor(6))
            y.sum().backward()
            assert torch.isfinite(y).all() and torch.isfinite(leaf.grad).all()
            torch.testing.assert_close(y.sum(1).double().cpu(), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("shape,dim,tile", [((3, 5), 1, 4096), ((2, 9, 2), 1, 4)], ids=str)
def test_gradcheck_float64_and_hard_carries_the_soft_gradient(triton_gumbel, ops, monkeypatch,
                                                              shape, dim, tile):
    # the soft sample passes gradcheck; the hard sample is piecewise constant (its numerical
    # Jacobian is 0), and its backward must give exactly the soft sample's gradient
    monkeypatch.setattr(triton_gumbel, "MAX_BLOCK_K", tile)
    x = torch.randn(shape, generator=gen(5), dtype=torch.float64).to(DEV).requires_grad_(True)
    seed = seed_tensor(12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.autograd.gradcheck(
            lambda v: ops.gumbel_softmax(v, tau_tensor(0.8), False, dim, seed)[0], (x,))
    grad = torch.randn(shape, generator=gen(6), dtype=torch.float64).to(DEV)
    soft, hard = (torch.autograd.grad(ops.gumbel_softmax(x, tau_tensor(0.8), h, dim, seed)[0],
                                      x, grad)[0] for h in (False, True))
    torch.testing.assert_close(hard, soft, rtol=1e-12, atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="memory is measured on a CUDA device")
def test_hard_forward_keeps_the_sample_and_the_soft_sample(triton_gumbel):
    x = torch.randn(256, 50257, device="cuda", requires_grad=True)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    from gumbelkit import kernels

    y = kernels.gumbel_softmax(x, 1.0, True, 1)
    torch.cuda.synchronize()
    size = x.numel() * x.element_size()
    held = torch.cuda.memory_allocated() - before
    peak = torch.cuda.max_memory_allocated() - before
    assert held < 2.05 * size and peak < 2.05 * size  # the output and the soft sample
    y.backward(torch.ones_like(y))
    assert torch.isfinite(x.grad).all()
