"""Everywhere torch's own op goes, gumbelkit's functions go (issue 12, point 4): in-place edits
of every output, torch.func (vmap, grad, jacrev), double backward, torch.compile with
fullgraph, torch.export, both ONNX exporters, torch.jit.trace, and CUDA graphs; validation that
raises its errors under torch.compile too; schedules and tensor temperatures that compile once.

Under torch.compile the noise is drawn by the compiled graph; with
``torch._inductor.config.fallback_random`` it is torch's own generator's, which is how compiled
results are compared with eager ones for the same noise (the same seed).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.autograd import forward_ad

import gumbelkit as gk
from gumbelkit.estimators import ESTIMATORS

from .stats import gen

PATHWISE = [name for name, est in ESTIMATORS.items() if est.pathwise]
HARD_PATHWISE = [name for name in PATHWISE if name not in ("softmax", "gs")]
X = torch.randn(6, 5, generator=gen(0))


def _relaxed_bernoulli(x, hard=False):
    return gk.relaxed_bernoulli(x, 0.5, hard)


# every public function with a differentiable floating output, by name
FUNCTIONS = {
    "gumbel_softmax": lambda x: gk.gumbel_softmax(x, 0.5),
    "gumbel_softmax-hard": lambda x: gk.gumbel_softmax(x, 0.5, hard=True),
    "softmax_t": lambda x: gk.softmax_t(x, 0.5),
    "relaxed_bernoulli": _relaxed_bernoulli,
    "relaxed_bernoulli-hard": lambda x: _relaxed_bernoulli(x, True),
    **{f"sample-{name}": (lambda x, n=name: gk.sample(x, n, 0.5)) for name in PATHWISE},
}
INDEX_FUNCTIONS = {"gumbel_max": gk.gumbel_max, "gumbel_topk": lambda x: gk.gumbel_topk(x, 2)}
NOISE_FUNCTIONS = {"conditional_gumbel": lambda x: gk.conditional_gumbel(x, x.argmax(-1), 2)}


def model(estimator: str = "st-gs", tau=0.5) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 5), gk.nn.GumbelSoftmax(estimator, tau),
                               torch.nn.Linear(5, 3))


# ---------------------------------------------------------------------------------- in place


@pytest.mark.parametrize("name", [*FUNCTIONS, "nn-train", "nn-eval"])
def test_every_output_can_be_edited_in_place(name):
    mask = torch.rand(6, 5, generator=gen(1)) > 0.5
    for edit in (lambda y: y.__setitem__((slice(None), 0), 0.0), lambda y: y.mul_(mask),
                 lambda y: y.masked_fill_(mask, 0.0)):
        x = X.clone().requires_grad_(True)
        if name.startswith("nn"):
            module = gk.nn.GumbelSoftmax().train(name == "nn-train")
            y = module(x)
        else:
            y = FUNCTIONS[name](x)
        before = y.detach().clone()
        edit(y)
        expected = before.clone()
        edit(expected)
        assert torch.equal(y.detach(), expected)
        if y.requires_grad:
            try:
                y.sum().backward()
            except RuntimeError as error:
                # an output that autograd saved (a softmax's): torch's own ops refuse the same
                assert "modified by an inplace operation" in str(error)
                torch_y = torch.softmax(x, -1)
                edit(torch_y)
                with pytest.raises(RuntimeError, match="modified by an inplace"):
                    torch_y.sum().backward()


def test_hard_outputs_edited_in_place_still_backpropagate():
    x = X.clone().requires_grad_(True)
    y = gk.gumbel_softmax(x, 0.5, hard=True, generator=gen(2))
    y[:, 0] = 0.0
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# -------------------------------------------------------------------------------- torch.func


@pytest.mark.parametrize("name", [*FUNCTIONS, *INDEX_FUNCTIONS, *NOISE_FUNCTIONS])
@pytest.mark.parametrize("randomness", ["different", "same"])
def test_vmap(name, randomness):
    function = {**FUNCTIONS, **INDEX_FUNCTIONS, **NOISE_FUNCTIONS}[name]
    batch = torch.randn(3, 6, 5, generator=gen(3))
    out = torch.func.vmap(function, randomness=randomness)(batch)
    single = function(batch[0])
    assert out.shape == (3, *single.shape) and out.dtype == single.dtype
    # each member's value is a value the function can give (one-hot, simplex, index range)
    if out.is_floating_point() and "bernoulli" not in name and name not in NOISE_FUNCTIONS:
        torch.testing.assert_close(out.sum(-1), torch.ones(3, 6))


def test_vmap_same_randomness_shares_the_noise():
    same = X.expand(3, 6, 5)
    out = torch.func.vmap(lambda x: gk.gumbel_softmax(x, 0.5), randomness="same")(same)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    out = torch.func.vmap(lambda x: gk.gumbel_softmax(x, 0.5), randomness="different")(same)
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_grad_and_jacrev_agree(name):
    # under torch.func the work is plain PyTorch operations drawing from torch's generator:
    # the same seed gives the same noise in grad and in jacrev, so the same derivative
    function = FUNCTIONS[name]
    weights = torch.randn(6, 5, generator=gen(4))

    def loss(x):
        return (function(x) * weights).sum()

    torch.manual_seed(5)
    grad = torch.func.grad(loss)(X)
    torch.manual_seed(5)
    jac = torch.func.jacrev(function)(X)
    assert jac.shape == (6, 5, 6, 5) and torch.isfinite(grad).all()
    torch.testing.assert_close((jac * weights[:, :, None, None]).sum((0, 1)), grad,
                               rtol=1e-5, atol=1e-6)
    if name.startswith("sample-") and name not in ("sample-softmax", "sample-argmax-st"):
        return  # noise-free ones only below
    if name in ("softmax_t", "sample-softmax", "sample-argmax-st"):  # no noise: eager agrees
        leaf = X.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(loss(leaf), leaf)
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_forward_mode_ad_gives_the_jacobian_times_the_direction(name):
    """torch.autograd.forward_ad: the tangent is the Jacobian (jacrev, for the same seed) times
    the direction: the work is the plain PyTorch reference path there, as under torch.func (the
    custom ops and the C++ kernels have no forward derivative; their outputs would carry none)."""
    function = FUNCTIONS[name]
    direction = torch.randn(6, 5, generator=gen(9))
    torch.manual_seed(5)
    jac = torch.func.jacrev(function)(X)
    torch.manual_seed(5)
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(function(forward_ad.make_dual(X, direction))).tangent
    assert tangent is not None
    torch.testing.assert_close(tangent, (jac * direction).sum((2, 3)), rtol=1e-5, atol=1e-6)


def test_forward_mode_ad_beyond_one_chunk():
    """A tensor the CPU path works on in chunks: the soft sample's tangent is J(y) v / tau (up to
    the rounding of <v, y> over 600 float32 categories, summed in another order: a relative
    600 eps, about 4e-5) and the hard sample's is the soft sample's for the same seed."""
    x = torch.randn(600, 600, generator=gen(10))  # 360,000 entries > 2^18
    v = torch.randn(600, 600, generator=gen(11))
    tangents = []
    with forward_ad.dual_level():
        for hard in (False, True):
            torch.manual_seed(12)
            y, t = forward_ad.unpack_dual(gk.gumbel_softmax(forward_ad.make_dual(x, v), 0.5,
                                                            hard=hard))
            tangents.append(t)
            if not hard:
                expected = y * (v - (v * y).sum(-1, keepdim=True)) / 0.5
    torch.testing.assert_close(tangents[0], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(tangents[1], tangents[0], rtol=0, atol=0)


# ------------------------------------------------------------------------- double backward


@pytest.mark.parametrize("name", ["gumbel_softmax", "softmax_t", "sample-gs"])
def test_gradgradcheck_float64(name):
    x = torch.randn(4, 5, generator=gen(6), dtype=torch.float64, requires_grad=True)
    function = {
        "gumbel_softmax": lambda v: gk.gumbel_softmax(v, 0.7, generator=gen(7)),
        "softmax_t": lambda v: gk.softmax_t(v, 0.7),
        "sample-gs": lambda v: gk.sample(v, "gs", 0.7, generator=gen(7)),
    }[name]
    assert torch.autograd.gradcheck(function, (x,))
    assert torch.autograd.gradgradcheck(function, (x,))


@pytest.mark.parametrize("name", ["gumbel_softmax", "sample"])
def test_hard_double_backward_is_the_soft_samples(name):
    # a hard value is piecewise constant (finite differences see 0); its first and second
    # derivatives are by definition the soft sample's
    x = torch.randn(4, 5, generator=gen(6), dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, generator=gen(8), dtype=torch.float64)

    def second(hard):
        if name == "sample":
            y = gk.sample(x, "st-gs" if hard else "gs", 0.7, generator=gen(7))
        else:
            y = gk.gumbel_softmax(x, 0.7, hard, generator=gen(7))
        (g,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
        return g, torch.autograd.grad(g.pow(2).sum(), x)[0]

    for hard, soft in zip(second(True), second(False), strict=True):
        torch.testing.assert_close(hard, soft, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------- torch.compile


@pytest.fixture
def same_noise(monkeypatch):
    """Compiled code draws its random numbers with torch's generator, as eager code does."""
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


INDUCTOR = ["gumbel_softmax", "gumbel_softmax-hard", "softmax_t", "sample-st-gs",
            "sample-reinmax", "gumbel_max"]


@pytest.mark.parametrize("name,backend", [
    *[(name, "inductor") for name in INDUCTOR],
    # every other function through AOTAutograd's graphs (inductor compiles cost seconds each)
    *[(name, "aot_eager") for name in [*FUNCTIONS, *INDEX_FUNCTIONS] if name not in INDUCTOR],
])
def test_compile_fullgraph_matches_eager_for_the_same_noise(same_noise, name, backend):
    function = {**FUNCTIONS, **INDEX_FUNCTIONS}[name]
    compiled = torch.compile(function, fullgraph=True, backend=backend)
    x = X.clone().requires_grad_(name != "gumbel_max")
    torch.manual_seed(8)
    got = compiled(x)
    torch.manual_seed(8)
    expected = function(x)
    torch.testing.assert_close(got, expected)
    if got.requires_grad:
        (g1,) = torch.autograd.grad(got.pow(2).sum(), x)
        (g2,) = torch.autograd.grad(expected.pow(2).sum(), x)
        torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_compile_fullgraph_of_a_model(same_noise, train):
    net = model().train(train)
    compiled = torch.compile(net, fullgraph=True)
    x = torch.randn(8, 4, generator=gen(9))
    torch.manual_seed(10)
    got = compiled(x)
    torch.manual_seed(10)
    expected = net(x)
    torch.testing.assert_close(got, expected)
    got.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_a_schedule_and_a_tensor_tau_compile_once():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    schedule = gk.schedules.Exponential(2.0, 0.5, tau_min=0.1)
    module = gk.nn.GumbelSoftmax("gs", schedule)
    counter = CompileCounter()
    compiled = torch.compile(module, backend=counter, fullgraph=True)
    x = torch.zeros(2000, 2)  # equal logits: the soft sample's spread tells tau
    spreads = []
    for _ in range(4):
        spreads.append(compiled(x)[:, 0].std().item())
        schedule.step()
    tau = torch.tensor(1.0)
    compiled_fn = torch.compile(lambda v, t: gk.gumbel_softmax(v, t), backend=counter,
                                fullgraph=True)
    for value in (1.0, 0.5, 0.25):
        tau.fill_(value)
        compiled_fn(x, tau)
    assert counter.frame_count == 2  # one graph each, whatever the step or the value
    # tau falls, the soft samples become more one-hot: their spread grows
    assert spreads == sorted(spreads) and spreads[0] < spreads[-1]
    torch._dynamo.reset()


@pytest.mark.parametrize("logits,message", [
    (torch.tensor([[0.0, float("nan")]]), "NaN"),
    (torch.tensor([[0.0, float("inf")]]), r"\+inf"),
    (torch.tensor([[float("-inf"), float("-inf")]]), "every category masked"),
], ids=["nan", "posinf", "masked"])
def test_validation_raises_its_errors_under_compile(logits, message):
    torch._dynamo.reset()
    compiled = torch.compile(lambda v: gk.gumbel_softmax(v, 0.5), fullgraph=True,
                             backend="aot_eager")
    with pytest.raises(ValueError, match=message):  # eager
        gk.gumbel_softmax(logits, 0.5)
    # compiled: the same message, raised by torch._assert_async when the check runs
    with pytest.raises(RuntimeError, match=message):
        compiled(logits)
    tau = torch.tensor(-1.0)
    compiled_tau = torch.compile(lambda v, t: gk.gumbel_softmax(v, t), fullgraph=True,
                                 backend="aot_eager")
    with pytest.raises(RuntimeError, match="tau must be finite and > 0"):
        compiled_tau(torch.zeros(1, 2), tau)
    torch._dynamo.reset()


# ---------------------------------------------------------------------- export, ONNX, trace


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_torch_export(train):
    net = model().train(train)
    x = torch.randn(8, 4, generator=gen(11))
    program = torch.export.export(net, (x,))
    out = program.module()(x)
    assert out.shape == (8, 3) and torch.isfinite(out).all()
    if not train:
        torch.testing.assert_close(out, net(x))


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_onnx_export(tmp_path, dynamo, train):
    onnx = pytest.importorskip("onnx")
    if dynamo:
        pytest.importorskip("onnxscript")
    net = model().train(train)
    x = torch.randn(8, 4, generator=gen(12))
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript exporter exports in eval mode unless told otherwise
        mode = {} if dynamo else {"training": torch.onnx.TrainingMode.PRESERVE}
        torch.onnx.export(net, (x,), str(path), dynamo=dynamo, **mode)
    graph = onnx.load(str(path)).graph
    ops = {node.op_type for node in graph.node}
    if train:  # the sampling as a uniform draw and logarithms
        assert any(op.startswith("RandomUniform") for op in ops) and "Log" in ops
    onnx.checker.check_model(onnx.load(str(path)))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_jit_trace(train):
    net = model().train(train)
    x = torch.randn(8, 4, generator=gen(13))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, (x,), check_trace=False)
    out = traced(x)
    assert out.shape == (8, 3)
    if not train:
        torch.testing.assert_close(out, net(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_capture():
    x = torch.randn(64, 50, device="cuda")
    static = {}
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # warm up (Triton compiles outside the capture)
            gk.gumbel_softmax(x, 0.5, hard=True)
            gk.gumbel_max(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static["hard"] = gk.gumbel_softmax(x, 0.5, hard=True)
        static["index"] = gk.gumbel_max(x)
    graph.replay()
    first = static["index"].clone()
    graph.replay()
    torch.cuda.synchronize()
    assert (static["hard"].sum(-1) == 1).all()
    assert not torch.equal(first, static["index"])  # fresh noise at each replay


# --------------------------------------------------------------------- tensor temperatures


@pytest.mark.parametrize("name", ["gumbel_softmax", "gumbel_softmax-hard", "softmax_t",
                                  "relaxed_bernoulli", *[f"sample-{n}" for n in PATHWISE],
                                  "expectation", "nn", "distribution"])
@pytest.mark.parametrize("shape", [(), (6, 1)], ids=["scalar", "per-row"])
def test_a_learnable_tau_gets_the_gradient_of_finite_differences(name, shape):
    # the noise is fixed by a fresh generator per call, so f(tau) is a smooth function of tau;
    # central differences with h = 1e-6 in float64 are accurate to about h**2 * f''' + eps / h
    x = torch.randn(6, 5, generator=gen(14), dtype=torch.float64)
    weights = torch.randn(6, 5, generator=gen(15), dtype=torch.float64)

    if name == "distribution" and shape:
        pytest.skip("the Concrete density takes one temperature per distribution")

    def f(tau):
        g = gen(16)
        if name == "expectation":
            return gk.expectation(lambda s: (s * weights).sum((1, 2)), x, "gs", 2, tau,
                                  generator=g)
        if name == "nn":
            return (gk.nn.GumbelSoftmax("gs", tau)(x, generator=g) * weights).sum()
        if name == "distribution":
            return (gk.distributions.GumbelSoftmax(logits=x, tau=tau, estimator="gs")
                    .relaxed_log_prob(torch.softmax(x, -1))).sum()
        if name.startswith("sample-"):
            return (gk.sample(x, name[7:], tau, generator=g) * weights).sum()
        if name.startswith("gumbel_softmax"):
            return (gk.gumbel_softmax(x, tau, name.endswith("hard"), generator=g)
                    * weights).sum()
        if name == "relaxed_bernoulli":
            return (gk.relaxed_bernoulli(x, tau, generator=g) * weights).sum()
        return (gk.softmax_t(x, tau) * weights).sum()

    tau = torch.full(shape, 0.8, dtype=torch.float64).add(
        0.1 * torch.rand(shape, generator=gen(17), dtype=torch.float64)).requires_grad_(True)
    if name == "sample-reinmax":  # tau enters ReinMax only under a stop-gradient (pi_1)
        assert not f(tau).requires_grad
        return
    if name.startswith("sample-") and not ESTIMATORS[name[7:]].uses_tau:  # zgr: no tau at all
        assert not f(tau).requires_grad
        return
    (grad,) = torch.autograd.grad(f(tau), tau)
    if name in ("sample-argmax-st", "sample-st", "sample-st-gs", "sample-dst-gs", "sample-gst",
                "sample-gr", "gumbel_softmax-hard"):
        # hard values are constant in tau (finite differences see 0): the gradient is the
        # soft surrogate's, which the estimators' own tests check
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
        return
    h = 1e-6
    numeric = torch.zeros_like(tau)
    for i in range(tau.numel()):
        step = torch.zeros_like(tau).flatten()
        step[i] = h
        step = step.view_as(tau)
        numeric.view(-1)[i] = (f(tau.detach() + step) - f(tau.detach() - step)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), float("inf")])
def test_a_bad_tensor_tau_raises(value):
    tau = torch.tensor([0.5, value]).view(2, 1)
    for call in (lambda: gk.gumbel_softmax(torch.zeros(2, 3), tau),
                 lambda: gk.softmax_t(torch.zeros(2, 3), tau),
                 lambda: gk.sample(torch.zeros(2, 3), "st", tau),
                 lambda: gk.relaxed_bernoulli(torch.zeros(2, 3), tau)):
        with pytest.raises(ValueError, match="tau must be finite and > 0"):
            call()


def test_a_tensor_tau_of_the_wrong_shape_or_dtype_raises():
    with pytest.raises(ValueError, match="broadcastable"):
        gk.gumbel_softmax(torch.zeros(2, 3), torch.ones(3, 1))
    with pytest.raises(TypeError, match="floating-point"):
        gk.gumbel_softmax(torch.zeros(2, 3), torch.ones(1, dtype=torch.int64))


# ---------------------------------------------------------------------------- the custom ops


def _op_args():
    from gumbelkit.kernels import ops

    x = torch.randn(4, 5, generator=gen(20), requires_grad=True)
    seed = torch.tensor([21])
    tau = torch.tensor(0.7, requires_grad=True)
    return ops, [(ops.gumbel_softmax, (x, tau, hard, 1, seed)) for hard in (False, True)] + [
        (ops.gumbel_max, (x.detach(), 1, seed))]


def test_opcheck():
    # torch.library's own checks: the schema, the fake (meta) implementation against the real
    # one, the registered autograd, and AOTAutograd's dispatch
    _, cases = _op_args()
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_the_vmap_rules_of_the_ops():
    ops, _ = _op_args()
    batch = torch.randn(3, 4, 5, generator=gen(22))
    tau = torch.tensor(0.7)
    seed = torch.tensor([23])
    # one seed for the batch: each member gets the noise of that seed, as one call would
    out = torch.func.vmap(lambda v: ops.gumbel_softmax(v, tau, True, 1, seed)[1])(batch)
    for b in range(3):
        assert torch.equal(out[b], ops.gumbel_softmax(batch[b], tau, True, 1, seed)[1])
    index = torch.func.vmap(lambda v: ops.gumbel_max(v, 1, seed))(batch)
    assert torch.equal(index[1], ops.gumbel_max(batch[1], 1, seed))
    # a batched seed: each member its own
    seeds = torch.tensor([[1], [2], [3]])
    out = torch.func.vmap(lambda v, s: ops.gumbel_softmax(v, tau, False, 1, s)[0])(batch, seeds)
    assert torch.equal(out[2], ops.gumbel_softmax(batch[2], tau, False, 1, seeds[2])[0])


def test_validation_raises_under_inductor_too():
    torch._dynamo.reset()
    compiled = torch.compile(lambda v: gk.gumbel_softmax(v, 0.5), fullgraph=True)
    assert compiled(torch.zeros(2, 3)).shape == (2, 3)
    with pytest.raises(RuntimeError, match="logits contain NaN"):
        compiled(torch.tensor([[0.0, float("nan")]]))
    torch._dynamo.reset()
