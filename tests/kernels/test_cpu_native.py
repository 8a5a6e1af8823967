"""The C++ CPU kernels (``gumbelkit.kernels.cpu_native``) against the Python CPU path they
replace in eager calls, in one chunk and in several: for the same generator state the same
values bit for bit (forward, the gradient, NaN where a row is fully masked), the same draws
from the generator, gradcheck and gradgradcheck in float64, in-place edits of the outputs, and
the calls they leave to the Python path. Exact equality is the tolerance: both paths draw the
same uniforms and round only in the same ATen calls (the logarithms, the softmax and its
backward)."""

import shutil
import subprocess
import sys

import pytest
import torch

import gumbelkit as gk
from gumbelkit import kernels
from gumbelkit._ops import SHORT_ROW, SHORT_ROW_ENTRIES, short_rows
from gumbelkit.kernels import cpu, cpu_native, ops
from tests.stats import gen

pytestmark = pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                                reason="no C++ compiler: the Python path serves every call")

# along the rows; across short rows (the transposed softmax); long rows (ATen's maximum and
# argmax); trailing size-1 dims; one dim; one category; either side of the 227 words of
# mt19937 drawn without its whole state (a float takes one, a double two)
SHAPES = [((1, 16), 1), ((64, 16), 1), ((300, 10), 1), ((100, 8, 4), 2), ((20, 300), 1),
          ((3, 2000), 1), ((5, 7, 1, 1), 1), ((3,), 0), ((2000, 3), 1), ((6, 1), 1),
          ((227,), 0), ((1, 228), 1), ((113,), 0), ((2, 57), 1)]
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(scope="module")
def library():
    built = cpu_native.library()
    assert built is not None, "the C++ kernels were not built although a compiler is there"
    return built


def python_path(logits, tau, hard, dim, generator):
    """The Python CPU path: the one-chunk one, or the op's chunks beyond one chunk."""
    seed = kernels._seed(logits, generator)
    if cpu.fits_one_chunk(logits):
        return cpu.differentiable_gumbel_softmax(logits, tau, hard, dim, seed)
    return ops.gumbel_softmax(logits, tau, hard, dim, seed)[0]


def native_path(library, logits, tau, hard, dim, generator):
    if cpu.fits_one_chunk(logits):
        return library.gumbel_softmax(logits, tau, hard, dim, short_rows(logits, dim), generator)
    return library.gumbel_softmax_chunks(logits, tau, hard, dim, short_rows(logits, dim),
                                         SHORT_ROW, SHORT_ROW_ENTRIES, cpu.CHUNK, generator)


def native_index(library, logits, dim, generator):
    if cpu.fits_one_chunk(logits):
        return library.gumbel_max(logits, dim, generator)
    return library.gumbel_max_chunks(logits, dim, cpu.CHUNK, generator)


@pytest.fixture(params=[None, 40, 1000], ids=["one-chunk", "chunks-of-40", "chunks-of-1000"])
def chunk(request, monkeypatch):
    """The default chunk, and chunks of a few rows (the last one shorter, across short rows
    or not) that both paths take."""
    if request.param is not None:
        monkeypatch.setattr(cpu, "CHUNK", request.param)


def assert_identical(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,dim", SHAPES, ids=str)
def test_the_python_paths_values_and_gradients_bit_for_bit(library, chunk, shape, dim, dtype):
    x = (torch.randn(shape, generator=gen(1), dtype=torch.float64) * 3 + 100).to(dtype)
    grad = torch.randn(shape, generator=gen(2), dtype=torch.float64).to(dtype)
    tau = kernels._tau_tensor(0.7, x)
    for hard in (False, True):
        results = []
        for path in (python_path, lambda *a: native_path(library, *a)):
            leaf = x.clone().requires_grad_(True)
            y = path(leaf, tau, hard, dim, gen(3))
            (d_x,) = torch.autograd.grad(y, leaf, grad)
            results.append((y.detach(), d_x))
        for a, b in zip(*results, strict=True):
            assert_identical(a, b)
    assert_identical(native_index(library, x, dim, gen(4)),
                     cpu.gumbel_max(x, dim, kernels._seed(x, gen(4))))


@pytest.mark.parametrize("categories", [12, 300])
def test_masked_entries_and_a_fully_masked_row_as_the_python_path(library, chunk, categories):
    """With validation off a fully masked row gives NaN soft samples and index 0, as the
    Python path and the reference do; masked entries are never drawn."""
    x = torch.randn(50, categories, generator=gen(5))
    x[:, ::3] = -torch.inf
    x[7] = -torch.inf
    tau = kernels._tau_tensor(0.5, x)
    for hard in (False, True):
        assert_identical(native_path(library, x, tau, hard, 1, gen(6)),
                         python_path(x, tau, hard, 1, gen(6)))
    index = native_index(library, x, 1, gen(7))
    assert_identical(index, cpu.gumbel_max(x, 1, kernels._seed(x, gen(7))))
    assert index[7] == 0 and (index[torch.arange(50) != 7] % 3 != 0).all()


def test_calls_draw_from_the_generator_as_the_python_path(library):
    """One seed from the generator per call, as the Python path draws it: torch.manual_seed
    reproduces a sequence of calls, and noise_generator gives a call's noise."""
    x = torch.randn(8, 5, generator=gen(8))
    torch.manual_seed(11)
    first = [gk.gumbel_softmax(x, 0.5), gk.gumbel_max(x), gk.gumbel_softmax(x, 0.5, hard=True)]
    after = torch.rand(3)
    torch.manual_seed(11)
    with kernels.use_backend("reference"):  # the seeded generator of each call, drawn alike
        seeds = [kernels._seed(x, None) for _ in range(3)]
    assert torch.equal(torch.rand(3), after)
    tau = kernels._tau_tensor(0.5, x)
    for got, seed, hard in zip((first[0], first[2]), (seeds[0], seeds[2]), (False, True),
                               strict=True):
        assert_identical(got, cpu.differentiable_gumbel_softmax(x, tau, hard, 1, seed))
    assert_identical(first[1], cpu.gumbel_max(x, 1, seeds[1]))
    noise = gk.gumbel_noise(x.shape, generator=kernels.noise_generator(gen(9)))
    expected = torch.softmax((x - x.amax(-1, keepdim=True) + noise) / 0.5, -1)
    assert torch.equal(gk.gumbel_softmax(x, 0.5, generator=gen(9)), expected)


@pytest.mark.parametrize("shape,dim", [((4, 5), 1), ((80, 3), 1), ((3, 4, 1), 1)], ids=str)
def test_gradcheck_and_gradgradcheck_float64(library, shape, dim):
    """The soft sample's gradient J(y) g / tau and its own gradient, against finite
    differences; the hard sample carries the same first and second derivatives (finite
    differences of a one-hot sample are 0, so they are compared with the soft sample's)."""
    x = torch.randn(shape, generator=gen(10), dtype=torch.float64, requires_grad=True)
    tau = kernels._tau_tensor(0.6, x)

    def sample(v, hard=False):
        return native_path(library, v, tau, hard, dim, gen(12))

    assert torch.autograd.gradcheck(sample, (x,))
    assert torch.autograd.gradgradcheck(sample, (x,))
    g, v = (torch.randn(shape, generator=gen(s), dtype=torch.float64) for s in (13, 14))
    derivatives = []
    for hard in (False, True):
        (first,) = torch.autograd.grad(sample(x, hard), x, g, create_graph=True)
        (second,) = torch.autograd.grad(first, x, v)
        derivatives.append((first.detach(), second))
    for soft, hard in zip(*derivatives, strict=True):
        assert_identical(soft, hard)


def test_outputs_are_fresh_and_edited_in_place_like_torchs(library):
    """A hard sample edited in place still backpropagates (the soft sample is what is saved); a
    soft one can be edited, and backward then refuses as torch's softmax does."""
    x = torch.randn(6, 5, generator=gen(13), requires_grad=True)
    tau = kernels._tau_tensor(1.0, x)
    hard = native_path(library, x, tau, True, 1, gen(14))
    assert hard._base is None
    hard[:, 0] = 0
    hard.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    soft = native_path(library, x, tau, False, 1, gen(14))
    soft *= 2
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        soft.sum().backward()


def test_the_public_functions_take_it_and_leave_the_rest_to_the_python_path(library,
                                                                            monkeypatch):
    """Contiguous float32/float64 CPU tensors with one temperature that needs no gradient take
    the C++ kernels, beyond one chunk too; a tau with a gradient, a tau per entry, half
    precision or a non-contiguous tensor take the Python path."""
    calls = []
    for name in cpu_native.OPS:
        original = getattr(library, name)
        monkeypatch.setattr(library, name, lambda *a, n=name, o=original: calls.append(n) or o(*a))
    x = torch.randn(6, 5, generator=gen(15))
    gk.gumbel_max(x)
    gk.gumbel_softmax(x, 0.5, hard=True)
    gk.sample(x, "st-gs", 1.0)
    gk.nn.GumbelSoftmax(tau=0.5)(x)
    assert calls == ["gumbel_max", "gumbel_softmax", "gumbel_softmax", "gumbel_softmax"]
    calls.clear()
    gk.gumbel_softmax(x, torch.tensor(0.5, requires_grad=True))
    gk.gumbel_softmax(x, torch.full((6, 1), 0.5))
    gk.gumbel_softmax(x.half())
    gk.gumbel_softmax(x.t(), dim=0)
    gk.gumbel_max(x.t(), dim=0)
    assert calls == []
    monkeypatch.setattr(cpu, "CHUNK", 8)
    gk.gumbel_softmax(x)
    gk.gumbel_max(x)
    assert calls == ["gumbel_softmax_chunks", "gumbel_max_chunks"]


def test_switched_off_or_not_built_the_python_path_serves_with_a_warning(monkeypatch):
    code = ("from gumbelkit.kernels import cpu_native; import gumbelkit as gk, torch; "
            "assert cpu_native.library() is None; gk.gumbel_softmax(torch.randn(2, 3))")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={"GUMBELKIT_NATIVE": "0", "PATH": ""})
    from torch.utils import cpp_extension

    def fail(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda *a, **k: "/nonexistent")
    cpu_native.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="could not be built .no compiler here."):
            y = gk.gumbel_softmax(torch.randn(2, 3, generator=gen(16)))
        assert torch.isfinite(y).all()
    finally:
        monkeypatch.undo()
        cpu_native.library.cache_clear()
    assert cpu_native.library() is not None
