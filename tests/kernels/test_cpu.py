"""The CPU fast path against the reference path: for the same generator state the same noise,
so the same values and gradients bit for bit, across chunk boundaries; and gradcheck."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit import kernels
from gumbelkit.kernels import cpu, reference
from tests.stats import gen

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@pytest.fixture(params=[cpu.CHUNK, 40], ids=["one-chunk", "many-chunks"])
def chunk(request, monkeypatch):
    """The default chunk, and chunks of a few rows with a short last one."""
    monkeypatch.setattr(cpu, "CHUNK", request.param)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,dim", [((23, 7), 1), ((3, 5, 9), 2), ((4, 6, 1), 1)], ids=str)
def test_same_draws_values_and_gradients_as_the_reference(chunk, shape, dim, dtype):
    x = torch.randn(shape, generator=gen(0), dtype=torch.float64).to(dtype)
    grad = torch.randn(shape, generator=gen(1), dtype=torch.float64).to(dtype)
    assert torch.equal(cpu.gumbel_max(x, dim, gen(2)), reference.gumbel_max(x, dim, gen(2)))
    for hard in (False, True):
        outputs = []
        for path in (cpu, reference):
            leaf = x.clone().requires_grad_(True)
            y = path.gumbel_softmax(leaf, 0.7, hard, dim, gen(3))
            y.backward(grad)
            outputs.append((y.detach(), leaf.grad))
        (y, dx), (y_ref, dx_ref) = outputs
        assert y.dtype == dtype
        # the same kernels when dim is last; with trailing size-1 dims the reference's softmax
        # runs torch's strided kernel, which rounds differently (by a few ulps)
        tol = 0 if dim == len(shape) - 1 else 4 * torch.finfo(dtype).eps
        torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
        torch.testing.assert_close(dx, dx_ref, rtol=tol, atol=tol)


def test_gradcheck_float64(chunk):
    x = torch.randn(30, 6, generator=gen(4), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: cpu.gumbel_softmax(v, 0.5, False, 1, gen(5)), (x,))
    # hard: the value is piecewise constant; the gradient is the soft sample's
    grad = torch.randn(30, 6, generator=gen(6), dtype=torch.float64)
    soft, hard = (torch.autograd.grad(cpu.gumbel_softmax(x, 0.5, h, 1, gen(5)), x, grad)[0]
                  for h in (False, True))
    assert torch.equal(soft, hard)


def test_categories_not_last_are_refused():
    with pytest.raises(ValueError, match="last"):
        cpu.gumbel_max(torch.zeros(3, 4, 2), 1)


def test_dispatch_picks_the_path():
    x = torch.zeros(3, 4)
    assert kernels.backend_for(x) == "cpu"
    assert kernels.backend_for(torch.zeros(3, 4, 1), 1) == "cpu"
    assert kernels.backend_for(torch.zeros(4, 3), 0) == "reference"  # categories not last
    assert kernels.backend_for(torch.zeros(0, 4)) == "reference"
    with kernels.use_backend("reference"):
        assert kernels.backend_for(x) == "reference"
    assert kernels.backend_for(x) == "cpu"
    with pytest.raises(ValueError, match="backend"), kernels.use_backend("fast"):
        pass
    if torch.cuda.is_available():
        expected = "triton" if kernels._triton_available() else "reference"
        assert kernels.backend_for(x.cuda()) == expected
        assert kernels.backend_for(x.double().cuda()) == "reference"


def test_public_functions_go_through_the_dispatch(monkeypatch):
    calls = []

    def spy(name):
        original = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a: calls.append(name) or original(*a))

    spy("gumbel_max")
    spy("gumbel_softmax")
    x = torch.randn(5, 4)
    gk.gumbel_max(x)
    gk.gumbel_softmax(x, hard=True)
    gk.sample(x, "st-gs", 1.0)
    gk.sample(x, "gs", 1.0)
    gk.sample(x, "reinmax", 1.0)
    assert calls == ["gumbel_max", "gumbel_softmax", "gumbel_softmax", "gumbel_softmax",
                     "gumbel_max"]
