"""gk.soft_embedding against its oracle, the plain composition ``softmax((logits + G) / tau) @ E``
with the same noise (``soft_embedding_noise``), for both noises (torch's generator, portable):
forward and gradients in every dtype, gradcheck in float64, the hard samples' law, masks,
errors, and the memory held for backward."""

import math

import pytest
import torch
from torch.autograd import forward_ad

import gumbelkit as gk
from gumbelkit import embedding
from gumbelkit._ops import compute_dtype, replace_gradient, shifted_to
from gumbelkit.embedding import CHUNK, soft_embedding_noise
from gumbelkit.portable import portable_gumbel, portable_gumbel_max
from tests.stats import assert_law, gen

# (shape, dim, chunk_size): several chunks and row blocks (TILE is shrunk to 8 entries below),
# the categories not last, one chunk holding every category
LAYOUTS = [((5, 7), -1, 3), ((3, 40), -1, 16), ((4, 6, 3), 1, 4), ((2, 37), -1, 4096)]
DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
NOISES = ["torch", "portable"]
# half precision is computed in float32 and rounded once to the output dtype: relative error at
# most the unit roundoff u, 2**-8 in bfloat16 and 2**-11 in float16; 2u of the largest value is
# allowed (the oracle gets the same half-precision inputs and output gradient, in float64)
ROUNDING = {torch.float64: 0.0, torch.float32: 0.0, torch.bfloat16: 2**-8,
            torch.float16: 2**-11}


def seed_of(generator_seed: int) -> int:
    """The seed soft_embedding draws from ``gen(generator_seed)`` (its documented contract)."""
    return int(torch.randint(2**62, (), generator=gen(generator_seed)))


def oracle(logits, weight, tau, mode, noise):
    """The composition with the same ``noise`` (G), categories last, in float64."""
    x, table = logits.double(), weight.double()
    z = x + noise.double()
    hot = torch.nn.functional.one_hot(z.argmax(-1), x.shape[-1]).double()
    if mode == "reinmax":  # as gumbelkit.estimators.reinmax, with the sample argmax(x + G)
        with torch.no_grad():
            log_pi_1 = ((hot + torch.softmax(x / tau, -1)) / 2).log()
        surrogate = 2 * torch.softmax(shifted_to(x, log_pi_1), -1) - torch.softmax(x, -1) / 2
        return replace_gradient(hot, surrogate) @ table
    masked = z.isneginf()  # -inf / tau differentiated in a tensor tau is NaN: divide the rest
    soft = torch.softmax((z.masked_fill(masked, 0.0) / tau).masked_fill(masked, -math.inf), -1)
    return (soft if mode == "gs" else replace_gradient(hot, soft)) @ table


def tolerance(dtype, scores, reference, rounded_sample=0.0):
    """|error| allowed against the float64 oracle. Each y_j = exp(s_j - lse) is rounded in the
    exponent's argument, relative error (|s| + |lse|) eps <= 2 S eps with S = max |s|, and the
    sums over V categories add log2(V) eps (pairwise) of the largest term; a factor 8 covers the
    few such steps a value goes through; half precision adds the rounding of the result, and
    ``rounded_sample``, the bound on what rounding the sample y to half precision before a
    product with it moves (the Triton path's, as the composition's)."""
    eps = torch.finfo(torch.float32 if ROUNDING[dtype] else dtype).eps
    magnitude = float(reference.detach().abs().max())
    scores = scores.detach()
    steps = 2 * float(scores[scores.isfinite()].abs().max()) + math.log2(scores.shape[-1]) + 1
    return magnitude * (8 * eps * steps + 2 * ROUNDING[dtype]) + rounded_sample + 1e-300


@pytest.fixture
def small_tiles(monkeypatch):
    monkeypatch.setattr(embedding, "TILE", 8)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
@pytest.mark.parametrize("shape,dim,chunk", LAYOUTS, ids=str)
def test_equals_the_composition_for_the_same_noise(small_tiles, shape, dim, chunk, mode, dtype,
                                                   noise):
    check_against_the_composition(shape, dim, chunk, mode, dtype, noise, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
@pytest.mark.parametrize("shape,dim,chunk", LAYOUTS[:3], ids=str)
def test_on_a_gpu_equals_the_composition_and_portable_noise_is_the_cpu_s(
        small_tiles, shape, dim, chunk, mode, dtype, noise):
    """The same checks on CUDA tensors; the portable noise drawn there is compared bit for bit
    with the CPU's (``portable_gumbel`` on the CPU, below)."""
    check_against_the_composition(shape, dim, chunk, mode, dtype, noise, "cuda")


def check_against_the_composition(shape, dim, chunk, mode, dtype, noise, device):
    """Forward and gradients of gk.soft_embedding on ``device`` against the float64 oracle with
    the same noise, within :func:`tolerance`; hard samples exactly the sampled table row."""
    size = shape[dim]
    logits = (2 * torch.randn(shape, generator=gen(1), dtype=torch.float64)).to(device, dtype)
    weight = torch.randn(size, 5, generator=gen(2), dtype=torch.float64).to(device, dtype)
    tau_shape = list(shape)
    tau_shape[dim] = 1
    tau = (0.5 + torch.rand(tau_shape, generator=gen(3), dtype=torch.float64)).to(device, dtype)
    leaves = [t.clone().requires_grad_(True) for t in (logits, weight, tau)]
    out = gk.soft_embedding(leaves[0], leaves[1], leaves[2], estimator=mode, dim=dim,
                            generator=gen(4), noise=noise, chunk_size=chunk)
    assert out.dtype == dtype and out.shape == logits.movedim(dim, -1).shape[:-1] + (5,)
    drawn = soft_embedding_noise(logits, dim, generator=gen(4), noise=noise, chunk_size=chunk)
    assert drawn.shape == logits.shape and drawn.dtype == compute_dtype(logits)
    wide = [t.detach().double().requires_grad_(t.requires_grad) for t in leaves]
    moved = wide[0].movedim(dim, -1)
    g = drawn.double().movedim(dim, -1)
    if noise == "portable":  # whatever the tiling and the device
        cpu_noise = portable_gumbel(moved.shape, seed_of(4), dtype=drawn.dtype)
        assert torch.equal(g.cpu(), cpu_noise.double())
    ref = oracle(moved, wide[1], wide[2].movedim(dim, -1), mode, g)
    scores = (moved + g) / wide[2].movedim(dim, -1)
    # the Triton path rounds the sample to half precision before its products with the table
    # (relative error u per entry; the composition's rounding): that moves y @ E by at most
    # u max|E| (y sums to 1), y^T g by at most u max_j sum_i y_ij |g_i|, and the centre
    # c = <g, y @ E> of the logits' and tau's gradients by at most u max_j |g . E_j|, which
    # reaches d logits_j = y_j (g . E_j - c) / tau as at most 2 u max|g E^T| max(1, 1 / tau)
    # (ReinMax: 2 pi_1 dc_1 + pi_0 dc_0 / 2) and d tau = -sum_j s_j y_j (g . E_j - c) / tau as
    # at most u max|g E^T| max|s| / tau
    rounded = ROUNDING[dtype] if embedding._on_triton(logits) else 0.0
    y = torch.softmax(scores.detach(), -1).reshape(-1, size)
    if mode == "gs":
        allowed = tolerance(dtype, scores, ref, rounded * float(weight.abs().max()))
        assert (out.double() - ref).abs().max() <= allowed
    else:  # the table's row of the sampled category, exactly
        assert torch.equal(out.double(), ref)
    grad = torch.randn(out.shape, generator=gen(5), dtype=torch.float64).to(device, dtype)
    out.backward(grad)
    ref.backward(grad.double())
    table_rounding = rounded * float((y.T @ grad.double().abs().reshape(-1, 5)).max())
    centre_rounding = rounded * float((grad.double().reshape(-1, 5) @ weight.double().T)
                                      .abs().max())
    inverse_tau = 1 / float(tau.double().min())
    largest_score = float(scores.detach()[scores.isfinite()].abs().max())
    extra = [2 * centre_rounding * max(1.0, inverse_tau), table_rounding,
             centre_rounding * largest_score * inverse_tau]
    for k, (mine, theirs) in enumerate(zip(leaves, wide, strict=True)):
        if theirs.grad is None:  # tau in reinmax, as in gumbelkit.estimators.reinmax
            assert mine.grad is None
            continue
        assert mine.grad.dtype == dtype and mine.grad.shape == theirs.shape
        error = (mine.grad.double() - theirs.grad).abs().max()
        allowed = tolerance(dtype, scores, theirs.grad, extra[k])
        assert error <= allowed, (k, error, theirs.grad.abs().max())


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("tau_kind", ["tensor", "float"])
def test_gradcheck_in_float64(small_tiles, tau_kind, noise):
    logits = torch.randn(3, 2, 9, generator=gen(6), dtype=torch.float64, requires_grad=True)
    logits.data[0, 0, 4] = -math.inf  # a mask: its gradient is 0
    weight = torch.randn(9, 4, generator=gen(7), dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([[0.7], [1.6]], dtype=torch.float64, requires_grad=True)
    inputs = (logits, weight, tau) if tau_kind == "tensor" else (logits, weight)

    def fn(*args):
        return gk.soft_embedding(*args[:2], args[2] if len(args) > 2 else 0.8,
                                 generator=gen(8), noise=noise, chunk_size=4)

    # finite differences skip the masked entry: a -inf logit moved by eps stays -inf; every call
    # draws the same noise (a fresh generator of the same seed), so fn is deterministic
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-8)


def test_memory_held_for_backward_is_rows_by_d(monkeypatch):
    """At (64, 5000, 32) the composition keeps the (rows, V) sample for backward; soft_embedding
    keeps the inputs themselves, its output (rows x d) and two numbers per row."""
    rows, size, width = 64, 5000, 32
    logits = torch.randn(rows, size, generator=gen(9), requires_grad=True)
    weight = torch.randn(size, width, generator=gen(10), requires_grad=True)
    tau = torch.full((rows, 1), 0.5, requires_grad=True)

    def held(fn):
        """Bytes saved for backward other than the inputs' own storage."""
        saved = []
        inputs = {logits.data_ptr(), weight.data_ptr()}

        def pack(tensor):
            if tensor.data_ptr() not in inputs:
                saved.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            fn().sum().backward()
        return sum(saved)

    fused = held(lambda: gk.soft_embedding(logits, weight, tau, generator=gen(11)))
    # the output, and per row: its max logit, log-sum-exp and tau (the floored values, and their
    # input kept by the floor's clamp)
    assert fused <= 4 * (rows * width + 4 * rows)
    composed = held(lambda: gk.gumbel_softmax(logits, tau, generator=gen(11)) @ weight)
    assert composed >= 4 * rows * size
    noise = portable_gumbel((rows, size), 1)
    same_noise = held(lambda: torch.softmax((logits + noise) / tau, -1) @ weight)
    assert same_noise >= 4 * rows * size


def check_hard_samples(rows, noise, device, chunk=CHUNK):
    """``rows`` rows of 6 categories: the sampled row of an identity table is the argmax of the
    logits plus the call's noise (portable_gumbel_max's token for the seed with the portable
    noise), and the counts pass a chi-square test against softmax(logits) at level 1e-4
    (tests/stats.py); ``hard=True`` is st-gs. No gradient is asked for: the value alone is
    computed (test_hard_samples_without_gradient_are_the_same_rows checks it is the same)."""
    probs_logits = torch.tensor([1.0, -0.5, 0.0, 2.0, -1.0, 0.5])
    logits = probs_logits.expand(rows, 6).to(device)
    table = torch.eye(6, device=device)
    drawn = soft_embedding_noise(logits, generator=gen(12), noise=noise, chunk_size=chunk)
    for mode in ("st-gs", "reinmax"):
        out = gk.soft_embedding(logits, table, 0.5, estimator=mode, generator=gen(12),
                                noise=noise, chunk_size=chunk)
        assert torch.equal(out.sum(1), torch.ones(rows, device=device))  # exactly 0 and 1
        tokens = out.argmax(1)
        assert torch.equal(tokens, (logits + drawn).argmax(1))
        if noise == "portable":
            assert torch.equal(tokens.cpu(), portable_gumbel_max(logits.cpu(), seed_of(12)))
        assert_law(torch.bincount(tokens.cpu(), minlength=6), torch.softmax(probs_logits, 0))
    hard = gk.soft_embedding(logits, table, 0.5, hard=True, generator=gen(12), noise=noise,
                             chunk_size=chunk)
    assert torch.equal(hard, out)


@pytest.mark.parametrize("noise", NOISES)
def test_hard_samples_are_the_gumbel_max_and_follow_softmax(noise):
    """20,000 rows over two chunks of categories (check_hard_samples)."""
    check_hard_samples(20_000, noise, "cpu", chunk=4)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mode", ["st-gs", "reinmax"])
def test_hard_samples_without_gradient_are_the_same_rows(small_tiles, mode, noise):
    """Without a gradient to compute (torch.no_grad) the hard samples skip the softmaxes that
    only their gradient uses: the same table rows as with one, for the same seed."""
    logits = torch.randn(7, 30, generator=gen(45), requires_grad=True)
    weight = torch.randn(30, 3, generator=gen(46))
    with_grad = gk.soft_embedding(logits, weight, 0.5, estimator=mode, generator=gen(47),
                                  noise=noise, chunk_size=4)
    with torch.no_grad():
        without = gk.soft_embedding(logits, weight, 0.5, estimator=mode, generator=gen(47),
                                    noise=noise, chunk_size=4)
    assert with_grad.requires_grad and not without.requires_grad
    assert torch.equal(with_grad.detach(), without)


@pytest.mark.parametrize("noise", NOISES)
def test_masks_offsets_and_seeds(noise):
    logits = torch.randn(6, 30, generator=gen(13), dtype=torch.float64) + 1e4
    logits[:, ::3] = -math.inf
    logits.requires_grad_(True)
    weight = torch.randn(30, 3, generator=gen(14), dtype=torch.float64)
    soft = gk.soft_embedding(logits, weight, 0.3, generator=gen(15), noise=noise)
    drawn = soft_embedding_noise(logits, generator=gen(15), noise=noise)
    ref = oracle(logits - 1e4, weight, 0.3, "gs", drawn)  # exact at any offset
    assert torch.allclose(soft, ref, rtol=0, atol=1e-12)
    soft.sum().backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[:, ::3] == 0).all()
    for mode in ("st-gs", "reinmax"):
        hard = gk.soft_embedding(logits, weight, 0.3, estimator=mode, generator=gen(16),
                                 noise=noise)
        tokens = (logits.detach() + soft_embedding_noise(logits, generator=gen(16),
                                                         noise=noise)).argmax(1)
        assert (tokens % 3 != 0).all() and torch.equal(hard, weight[tokens])
    torch.manual_seed(17)
    first = gk.soft_embedding(logits, weight, noise=noise)
    torch.manual_seed(17)
    assert torch.equal(gk.soft_embedding(logits, weight, noise=noise), first)
    assert not torch.equal(gk.soft_embedding(logits, weight, noise=noise), first)
    generator, once = gen(15), gen(15)
    gk.soft_embedding(logits, weight, generator=generator, noise=noise)
    torch.randint(2**62, (), generator=once)  # a call takes one draw of the generator, its seed
    assert torch.equal(generator.get_state(), once.get_state())


def test_portable_noise_ignores_chunking_and_batch():
    """The portable noise is a function of (seed, row position, category): the chunking and the
    batch a row is in change nothing."""
    logits = torch.randn(6, 30, generator=gen(13), dtype=torch.float64)
    weight = torch.randn(30, 3, generator=gen(14), dtype=torch.float64)
    soft = gk.soft_embedding(logits, weight, 0.3, generator=gen(15), noise="portable")
    chunked = gk.soft_embedding(logits, weight, 0.3, generator=gen(15), noise="portable",
                                chunk_size=7)
    assert torch.allclose(chunked, soft, rtol=0, atol=1e-12)
    one = gk.soft_embedding(logits[0], weight, 0.3, generator=gen(15), noise="portable")
    assert one.shape == (3,) and torch.allclose(one, soft[0], rtol=0, atol=1e-12)


_LOGITS, _WEIGHT = torch.randn(4, 5), torch.randn(5, 3)
# (error, message, call): every bad argument named in its error
BAD_CALLS = [
    (ValueError, "weight must be a", lambda: gk.soft_embedding(_LOGITS, torch.randn(6, 3))),
    (TypeError, "weight must have the logits' dtype",
     lambda: gk.soft_embedding(_LOGITS, _WEIGHT.double())),
    (TypeError, "weight must be a torch.Tensor", lambda: gk.soft_embedding(_LOGITS, [[1.0]])),
    (ValueError, "supports the estimators gs, st-gs, reinmax",
     lambda: gk.soft_embedding(_LOGITS, _WEIGHT, estimator="gr")),
    (ValueError, "same for every category",
     lambda: gk.soft_embedding(_LOGITS, _WEIGHT, torch.ones(4, 5))),
    (ValueError, "tau must be", lambda: gk.soft_embedding(_LOGITS, _WEIGHT, -1.0)),
    (ValueError, "chunk_size", lambda: gk.soft_embedding(_LOGITS, _WEIGHT, chunk_size=0)),
    (TypeError, "hard must be a bool", lambda: gk.soft_embedding(_LOGITS, _WEIGHT, hard=1)),
    (ValueError, "noise must be one of 'torch', 'portable'",
     lambda: gk.soft_embedding(_LOGITS, _WEIGHT, noise="philox")),
    (ValueError, "noise must be one of", lambda: soft_embedding_noise(_LOGITS, noise="philox")),
    (ValueError, "top_k", lambda: gk.soft_embedding(_LOGITS, _WEIGHT, top_k=0)),
    (ValueError, "top_p", lambda: gk.soft_embedding(_LOGITS, _WEIGHT, top_p=1.5)),
    (TypeError, "min_p", lambda: gk.soft_embedding(_LOGITS, _WEIGHT, min_p="0.1")),
    (ValueError, "NaN", lambda: gk.soft_embedding(torch.full((2, 5), math.nan), _WEIGHT)),
]


@pytest.mark.parametrize("error,message,call", BAD_CALLS, ids=[case[1] for case in BAD_CALLS])
def test_bad_input_raises_naming_the_argument(error, message, call):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("noise", NOISES)
def test_no_rows(noise):
    """Zero rows: an empty output and zero gradients (the table's is never left unwritten)."""
    logits = torch.randn(0, 7, requires_grad=True)
    weight = torch.randn(7, 3, requires_grad=True)
    out = gk.soft_embedding(logits, weight, noise=noise)
    assert out.shape == (0, 3)
    out.sum().backward()
    assert torch.equal(weight.grad, torch.zeros(7, 3)) and logits.grad.shape == (0, 7)
    assert soft_embedding_noise(logits, noise=noise).shape == (0, 7)


@pytest.mark.parametrize("rule", [{}, dict(top_k=4, min_p=0.01)], ids=str)
@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
def test_torch_func_transforms_and_forward_mode_ad(mode, noise, rule):
    """Under torch.func and forward-mode AD the soft embedding is the plain composition with the
    chunked path's noise for the seed: torch.func.grad equals autograd's gradient of an eager
    call with the same seed (the same noise: equal up to the order of float64 sums), vmap
    (randomness="same": one seed for the batch) equals the calls per example, and the forward
    tangent equals jacrev's Jacobian times the direction; with a restricted support too."""
    x = torch.randn(2, 3, 9, generator=gen(30), dtype=torch.float64)
    weight = torch.randn(9, 4, generator=gen(31), dtype=torch.float64)

    def embed(logits):
        return gk.soft_embedding(logits, weight, 0.6, estimator=mode, generator=gen(32),
                                 noise=noise, chunk_size=4, **rule)

    leaf = x[0].clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(embed(leaf).pow(2).sum(), leaf)
    got = torch.func.grad(lambda logits: embed(logits).pow(2).sum())(x[0])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    batched = torch.func.vmap(embed, randomness="same")(x)
    torch.testing.assert_close(batched, torch.stack([embed(row) for row in x]), rtol=0,
                               atol=1e-12)
    direction = torch.randn(3, 9, generator=gen(33), dtype=torch.float64)
    jacobian = torch.func.jacrev(embed)(x[0])
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(embed(forward_ad.make_dual(x[0], direction))).tangent
    torch.testing.assert_close(tangent, torch.einsum("rdkv,kv->rd", jacobian, direction),
                               rtol=0, atol=1e-12)


def test_under_torch_compile_it_runs_eagerly_with_the_same_seed():
    """A compiled model around the soft embedding gives the eager values and gradients for the
    same torch.manual_seed: the call runs eagerly (a graph break), its seed drawn from torch's
    generator as in eager code (inductor's own random numbers, which a traced seed would come
    from, are other numbers)."""
    logits = torch.randn(4, 30, generator=gen(34), requires_grad=True)
    weight = torch.randn(30, 3, generator=gen(35), requires_grad=True)

    def model(x, table):
        return gk.soft_embedding(x * 2, table, 0.5).tanh()

    torch._dynamo.reset()
    compiled = torch.compile(model)
    torch.manual_seed(36)
    got = compiled(logits, weight)
    torch.manual_seed(36)
    expected = model(logits, weight)
    assert torch.equal(got, expected)
    # inductor's fused tanh and doubling round their backward otherwise than eager code
    torch.testing.assert_close(torch.autograd.grad(got.sum(), (logits, weight)),
                               torch.autograd.grad(expected.sum(), (logits, weight)))


RESTRICTIONS = [dict(top_k=3), dict(top_p=0.6), dict(min_p=0.2),
                dict(top_k=5, top_p=0.8, min_p=0.05)]


def check_restricted_support(rule, mode, noise, device):
    """``top_k``/``top_p``/``min_p`` give the soft embedding of ``gk.restrict(logits, ...)`` for
    the same noise, values and gradients bit for bit: the same entries are -inf in both (their
    gradient 0), the kept ones computed alike. Row 0 ties three logits at the top-k boundary
    (all kept, as restrict keeps them)."""
    logits = (2 * torch.randn(4, 3, 30, generator=gen(40), dtype=torch.float64)).float()
    logits[0, 0, :3] = logits[0, 0].max() - 0.5
    logits = logits.to(device)
    weight = torch.randn(30, 4, generator=gen(41)).to(device)
    tau = torch.full((4, 1, 1), 0.7, device=device)
    results = []
    for restrict_first in (False, True):
        leaves = [t.clone().requires_grad_(True) for t in (logits, weight, tau)]
        x = gk.restrict(leaves[0], **rule) if restrict_first else leaves[0]
        out = gk.soft_embedding(x, leaves[1], leaves[2], estimator=mode, generator=gen(42),
                                noise=noise, chunk_size=8, **({} if restrict_first else rule))
        out.backward(torch.randn(out.shape, generator=gen(43)).to(device))
        results.append([out, *(leaf.grad for leaf in leaves)])
    for mine, theirs in zip(*results, strict=True):
        assert (mine is None and theirs is None) or torch.equal(mine, theirs)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
@pytest.mark.parametrize("rule", RESTRICTIONS, ids=str)
def test_restricted_support_is_that_of_the_restricted_logits(small_tiles, rule, mode, noise):
    check_restricted_support(rule, mode, noise, "cpu")


def test_restricted_hard_samples_follow_the_renormalised_law():
    """20,000 rows of 6 categories, top_p=0.7: the hard samples' counts pass a chi-square test
    at level 1e-4 (tests/stats.py) against softmax(logits) restricted to the nucleus and
    renormalised; no count falls outside it."""
    probs_logits = torch.tensor([1.0, -0.5, 0.0, 2.0, -1.0, 0.5])
    out = gk.soft_embedding(probs_logits.expand(20_000, 6), torch.eye(6), 0.5, hard=True,
                            generator=gen(44), top_p=0.7)
    law = torch.softmax(gk.restrict(probs_logits, top_p=0.7), 0)
    counts = torch.bincount(out.argmax(1), minlength=6)
    assert (counts[law == 0] == 0).all() and 0 < int((law == 0).sum()) < 6
    assert_law(counts[law > 0], law[law > 0])


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mode", ["gs", "st-gs", "reinmax"])
def test_double_backward(small_tiles, mode, noise):
    """With create_graph=True the gradients are a graph again (the plain composition recomputed
    with the call's noise and support): equal to the fused gradients (float64, up to the order
    of sums: 1e-12), and their derivatives those of the oracle composition for the same noise
    (for the hard samples, the straight-through surrogate's); gs passes gradgradcheck (the
    hard samples' gradients are a surrogate's, not the derivative of their value)."""
    logits = torch.randn(2, 3, 9, generator=gen(50), dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 4, generator=gen(51), dtype=torch.float64, requires_grad=True)
    tau = torch.tensor([[[0.7]], [[1.6]]], dtype=torch.float64, requires_grad=True)
    inputs = (logits, weight, tau)

    def fn(*args):
        return gk.soft_embedding(*args, estimator=mode, generator=gen(52), noise=noise,
                                 chunk_size=4, top_k=7)

    def penalty(out, leaves):
        """A gradient penalty: the squared norm of the gradients, differentiable again."""
        grads = torch.autograd.grad(out, leaves, upstream, create_graph=True, allow_unused=True)
        return sum(g.pow(2).sum() for g in grads if g is not None), grads

    upstream = torch.randn(2, 3, 4, generator=gen(53), dtype=torch.float64)
    fused = torch.autograd.grad(fn(*inputs), inputs, upstream, allow_unused=True)
    total, graph = penalty(fn(*inputs), inputs)
    for first, second in zip(fused, graph, strict=True):
        assert (first is None and second is None) or torch.allclose(first, second, rtol=0,
                                                                    atol=1e-12)
    mine = torch.autograd.grad(total, inputs, allow_unused=True)
    drawn = soft_embedding_noise(logits, generator=gen(52), noise=noise, chunk_size=4)
    twins = [t.detach().clone().requires_grad_(True) for t in inputs]
    theirs = torch.autograd.grad(
        penalty(oracle(gk.restrict(twins[0], top_k=7), twins[1], twins[2], mode, drawn),
                twins)[0], twins, allow_unused=True)
    for a, b in zip(mine, theirs, strict=True):
        assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-9, atol=1e-10)
    if mode == "gs":
        assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["gs", "st-gs"])
def test_the_output_may_be_edited_in_place(mode):
    """An in-place edit of the output (nothing backward needs is the output itself): the
    gradient of 2 * out, twice that of out."""
    logits = torch.randn(4, 12, generator=gen(58), requires_grad=True)
    weight = torch.randn(12, 3, generator=gen(59))
    grads = []
    for factor in (1.0, 2.0):
        out = gk.soft_embedding(logits, weight, 0.5, estimator=mode, generator=gen(60))
        out.mul_(factor)
        (grad,) = torch.autograd.grad(out.sum(), logits)
        grads.append(grad)
    torch.testing.assert_close(grads[1], 2 * grads[0])
