"""The CPU fast path against the reference path: for the same seed the same noise, so the same
values bit for bit, across chunk boundaries; the ops' gradients on both paths; and gradcheck."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit import kernels
from gumbelkit.kernels import cpu, ops, reference
from tests.stats import gen

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def seed(value: int) -> torch.Tensor:
    return torch.tensor([value])


@pytest.fixture(params=[cpu.CHUNK, 40], ids=["one-chunk", "many-chunks"])
def chunk(request, monkeypatch):
    """The default chunk, and chunks of a few rows with a short last one."""
    monkeypatch.setattr(cpu, "CHUNK", request.param)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,dim", [((23, 7), 1), ((3, 5, 9), 2), ((4, 6, 1), 1)], ids=str)
def test_same_draws_values_and_gradients_as_the_reference(chunk, shape, dim, dtype):
    x = (torch.randn(shape, generator=gen(0), dtype=torch.float64) + 1e3).to(dtype)
    grad = torch.randn(shape, generator=gen(1), dtype=torch.float64).to(dtype)
    tau = torch.tensor(0.7, dtype=torch.float64)
    assert torch.equal(cpu.gumbel_max(x, dim, seed(2)),
                       reference.gumbel_max_seeded(x, dim, seed(2)))
    # the same kernels when dim is last; with trailing size-1 dims the reference's softmax
    # runs torch's strided kernel, which rounds differently (by a few ulps)
    tol = 0 if dim == len(shape) - 1 else 4 * torch.finfo(dtype).eps
    for hard in (False, True):
        outputs = [path(x, tau, hard, dim, seed(3)) for path in
                   (cpu.gumbel_softmax, reference.gumbel_softmax_seeded)]
        for y, y_ref in zip(*outputs, strict=True):
            assert y.dtype == dtype and y._base is None  # a fresh tensor, not a view
            torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
        grads = []
        for backend in ("auto", "reference"):
            leaf = x.clone().requires_grad_(True)
            with kernels.use_backend(backend):
                value, _ = ops.gumbel_softmax(leaf, tau, hard, dim, seed(3))
            value.backward(grad)
            grads.append(leaf.grad)
        torch.testing.assert_close(*grads, rtol=tol, atol=tol)


def test_gradcheck_and_gradgradcheck_float64(chunk):
    x = torch.randn(8, 5, generator=gen(4), dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    rows_tau = torch.rand(8, 1, generator=gen(7), dtype=torch.float64).add(0.2).requires_grad_()

    def soft(v, t):
        return ops.gumbel_softmax(v, t, False, 1, seed(5))[0]

    for t in (tau, rows_tau):
        assert torch.autograd.gradcheck(soft, (x, t))
        assert torch.autograd.gradgradcheck(soft, (x, t))
    # hard: the value is piecewise constant; the gradient is the soft sample's, to both inputs
    grad = torch.randn(8, 5, generator=gen(6), dtype=torch.float64)
    soft_grads, hard_grads = (
        torch.autograd.grad(ops.gumbel_softmax(x, tau, h, 1, seed(5))[0], (x, tau), grad)
        for h in (False, True))
    for s, h in zip(soft_grads, hard_grads, strict=True):
        assert torch.equal(s, h)
    assert torch.autograd.gradgradcheck(
        lambda v, t: ops.gumbel_softmax(v, t, True, 1, seed(5))[0], (x, tau))


def test_categories_not_last_are_refused_in_chunks(monkeypatch):
    monkeypatch.setattr(cpu, "CHUNK", 4)
    with pytest.raises(ValueError, match="last"):
        cpu.gumbel_max(torch.zeros(3, 4, 2), 1, seed(0))


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
        assert kernels.backend_for(x.cuda(), -1, torch.ones(3, 1, device="cuda")) == "reference"


def test_public_functions_go_through_the_dispatch(monkeypatch):
    """Where the C++ kernels do not serve (here: switched off), the public functions reach the
    CPU kernel through the op (tests/kernels/test_cpu_native.py has the calls they serve)."""
    monkeypatch.setattr(kernels.cpu_native, "library", lambda: None)
    calls = []

    def spy(name):
        original = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a: calls.append(name) or original(*a))

    spy("gumbel_max")
    spy("gumbel_softmax")
    monkeypatch.setattr(cpu, "CHUNK", 8)  # beyond one chunk: the op (small ones skip it)
    x = torch.randn(5, 4)
    gk.gumbel_max(x)
    gk.gumbel_softmax(x, hard=True)
    gk.sample(x, "st-gs", 1.0)
    gk.sample(x, "gs", 1.0)
    gk.sample(x, "reinmax", 1.0)
    assert calls == ["gumbel_max", "gumbel_softmax", "gumbel_softmax", "gumbel_softmax",
                     "gumbel_max"]


def test_noise_generator_gives_the_noise_of_a_call():
    x = torch.randn(6, 5, generator=gen(8))
    noise = gk.gumbel_noise(x.shape, generator=kernels.noise_generator(gen(9)))
    expected = torch.softmax((x - x.amax(-1, keepdim=True) + noise) / 0.5, -1)
    assert torch.equal(gk.gumbel_softmax(x, 0.5, generator=gen(9)), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_eager_small_tensors_skip_the_op_with_its_values_and_gradients(dtype, monkeypatch):
    """An eager call of a tensor that fits one chunk runs the CPU kernel's operations under
    torch's autograd: the op's sample bit for bit, and its gradients to the logits and to a
    tensor tau (the same formula, J(y) g / tau and d tau, computed by torch's backward: equal up
    to rounding, a few ulps of the compute dtype)."""
    x = torch.randn(6, 9, generator=gen(8), dtype=torch.float64).to(dtype)
    grad = torch.randn(6, 9, generator=gen(9), dtype=torch.float64).to(dtype)
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    tol = 8 * torch.finfo(dtype).eps
    for hard in (False, True):
        results = []
        for eager in (True, False):
            monkeypatch.setattr(kernels, "_eager_cpu", lambda *args, e=eager: e)
            leaf = x.clone().requires_grad_(True)
            tau = torch.tensor(0.7, dtype=compute, requires_grad=True)
            y = kernels.gumbel_softmax(leaf, tau, hard, 1, gen(10))
            y.backward(grad)
            results.append((y.detach(), leaf.grad, tau.grad))
        (y, d_x, d_tau), (y_op, d_x_op, d_tau_op) = results
        assert torch.equal(y, y_op) and y.dtype == dtype
        torch.testing.assert_close(d_x, d_x_op, rtol=tol, atol=tol)
        torch.testing.assert_close(d_tau, d_tau_op, rtol=tol, atol=tol)
    monkeypatch.undo()
    assert torch.equal(kernels.gumbel_max(x, 1, gen(11)),
                       ops.gumbel_max(x, 1, kernels._seed(x, gen(11))))


def test_eager_small_tensors_double_backward_float64():
    x = torch.randn(4, 5, generator=gen(12), dtype=torch.float64, requires_grad=True)
    tau = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)

    def soft(v, t):
        return kernels.gumbel_softmax(v, t, False, 1, gen(13))

    assert torch.autograd.gradcheck(soft, (x, tau))
    assert torch.autograd.gradgradcheck(soft, (x, tau))


def test_the_softmax_across_short_rows_is_differentiable_twice_batched_and_contiguous():
    """gumbelkit._ops.softmax on rows of fewer than 16 categories (its own autograd Function):
    gradcheck and gradgradcheck in float64, vmap equal to the loop up to rounding, and a
    contiguous gradient even for an expanded (stride 0) incoming gradient."""
    from gumbelkit._ops import short_rows, softmax

    x = torch.randn(200, 6, generator=gen(30), dtype=torch.float64, requires_grad=True)
    assert short_rows(x, 1) and short_rows(x.t(), 0)
    for dim, value in ((1, x), (0, x.t())):
        assert torch.autograd.gradcheck(lambda v, d=dim: softmax(v, d), (value,))
        assert torch.autograd.gradgradcheck(lambda v, d=dim: softmax(v, d), (value,))
    (grad,) = torch.autograd.grad(softmax(x, 1), x, torch.ones(1, 6, dtype=x.dtype).expand(200, 6))
    assert grad.is_contiguous()
    torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-15, rtol=0)  # sum is 1
    batch = torch.randn(3, 200, 6, generator=gen(31), dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps  # batched kernels may round differently: 4 ulp
    torch.testing.assert_close(torch.func.vmap(lambda v: softmax(v, 1))(batch),
                               torch.stack([softmax(v, 1) for v in batch]), rtol=4 * eps, atol=0)


def test_short_rows_take_the_transposed_softmax_with_the_same_values_and_gradients():
    """Fewer than 16 categories on many rows: the softmax runs across the rows (torch's CPU
    kernel is about 9x faster there) and the op's backward as y g - y <g, y>: both equal
    torch's up to rounding (a few ulps), the CPU path and the reference still bit for bit, and
    the gradients contiguous."""
    from gumbelkit._ops import short_rows, softmax

    x = torch.randn(300, 10, generator=gen(14), dtype=torch.float64)
    assert short_rows(x, 1) and not short_rows(x[:, :1].expand(300, 16), 1)
    torch.testing.assert_close(softmax(x, 1), torch.softmax(x, 1), rtol=1e-14, atol=1e-15)
    tau = torch.tensor(0.7, dtype=torch.float64)
    for hard in (False, True):
        outputs = [path(x, tau, hard, 1, seed(15)) for path in
                   (cpu.gumbel_softmax, reference.gumbel_softmax_seeded)]
        for y, y_ref in zip(*outputs, strict=True):
            assert torch.equal(y, y_ref)
    grad = torch.randn(300, 10, generator=gen(16), dtype=torch.float64)
    grads = []
    for backend in ("auto", "reference"):
        leaf = x.clone().requires_grad_(True)
        with kernels.use_backend(backend):
            value, _ = ops.gumbel_softmax(leaf, tau, False, 1, seed(17))
        value.backward(grad)
        assert leaf.grad.is_contiguous()
        grads.append(leaf.grad)
    torch.testing.assert_close(*grads, rtol=1e-13, atol=1e-14)
