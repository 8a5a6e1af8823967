"""Tests for gumbelkit.exact: enumeration, exact expectations and gradient diagnostics."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

import gumbelkit as gk
from gumbelkit.exact import configurations, gradient_statistics

from .stats import Z_TOL

pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny operations


REQUIRED_KEYS = {"estimator", "bias", "variance", "mse", "cosine", "snr", "seconds",
                 "tau", "n_samples", "n_draws"}


def _weights(L: int, K: int) -> torch.Tensor:
    return torch.linspace(-1.5, 2.0, L * K, dtype=torch.float64).reshape(L, K)


def _nonlinear(w: torch.Tensor):
    """A scalar f of the whole (n, L, K) sample, nonlinear in it (sin and a cross term)."""

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(3 * (x * w).sum((1, 2))) + x[:, 0, 0] * x[:, 1, 1]

    return f


def _brute_force(f, logits: torch.Tensor) -> torch.Tensor:
    """sum_c p(c) f(c) by a Python loop over itertools.product, one configuration at a time."""
    L, K = logits.shape
    probs = torch.softmax(logits, -1)
    total = 0.0
    for config in itertools.product(range(K), repeat=L):
        p = math.prod(float(probs[row, c]) for row, c in enumerate(config))
        if p == 0.0:
            continue  # masked configuration: weight exactly 0
        x = torch.zeros(1, L, K, dtype=logits.dtype)
        for row, c in enumerate(config):
            x[0, row, c] = 1.0
        total = total + p * f(x)[0]
    return torch.as_tensor(total, dtype=logits.dtype)


# ----------------------------------------------------------------------------- configurations


@pytest.mark.parametrize(("L", "K"), [(1, 1), (1, 5), (3, 2), (2, 4), (4, 3)])
def test_configurations_shape_distinct_valid(L, K):
    configs = configurations(L, K)
    assert configs.shape == (K**L, L)
    assert configs.dtype == torch.long
    assert ((configs >= 0) & (configs < K)).all()
    assert len({tuple(row) for row in configs.tolist()}) == K**L
    # documented order: the last variable fastest, i.e. itertools.product's order
    assert configs.tolist() == [list(c) for c in itertools.product(range(K), repeat=L)]


# ----------------------------------------------------------------------------- expectation


def test_expectation_matches_brute_force_nonlinear_f():
    logits = torch.tensor([[0.5, -0.3, 0.1, 1.2], [-0.2, 0.4, 0.0, -1.0],
                           [0.9, -0.7, 0.3, 0.2]], dtype=torch.float64)
    f = _nonlinear(_weights(3, 4))
    got = gk.exact.expectation(f, logits)
    assert got.shape == ()
    # float64 summation of 64 terms in a different order: agreement to ~1e-15 relative
    torch.testing.assert_close(got, _brute_force(f, logits), rtol=1e-12, atol=1e-12)


def test_expectation_per_row_f():
    # f returns (n, L) with entry l depending only on row l: E is then per row,
    # E_l = sum_k p_lk * g(w_lk) with g(v) = v**2 + cos(v) (closed form, no enumeration)
    logits = torch.tensor([[0.5, -0.3, 0.1], [-0.2, 0.4, 0.0], [2.0, -1.0, 0.3]],
                          dtype=torch.float64)
    w = _weights(3, 3)

    def f(x):
        v = (x * w).sum(-1)
        return v**2 + torch.cos(v)

    got = gk.exact.expectation(f, logits)
    assert got.shape == (3,)
    expected = (torch.softmax(logits, -1) * (w**2 + torch.cos(w))).sum(-1)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for row in range(3):
        brute = _brute_force(lambda x, row=row: f(x)[:, row], logits)
        torch.testing.assert_close(got[row], brute, rtol=1e-12, atol=1e-12)


def test_expectation_masked_entries_weigh_zero():
    inf = float("inf")
    logits = torch.tensor([[0.5, -inf, 0.1], [-inf, 0.4, 0.0]], dtype=torch.float64,
                          requires_grad=True)
    w = _weights(2, 3)

    def f(x):
        # a huge value on any configuration that uses a masked category: must weigh exactly 0
        masked = x[:, 0, 1] + x[:, 1, 0]
        return torch.sin(3 * (x * w).sum((1, 2))) + 1e12 * masked

    got = gk.exact.expectation(f, logits)
    assert torch.isfinite(got)
    # the same problem without the masked categories (2 x 2 configurations)
    sub_logits = logits.detach()[:, [0, 2]].clone()
    sub_logits[1] = logits.detach()[1, [1, 2]]
    sub_w = torch.stack([w[0, [0, 2]], w[1, [1, 2]]])

    def sub_f(x):
        return torch.sin(3 * (x * sub_w).sum((1, 2)))

    torch.testing.assert_close(got.detach(), _brute_force(sub_f, sub_logits),
                               rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(got, logits)
    assert torch.isfinite(grad).all()
    assert grad[0, 1] == 0 and grad[1, 0] == 0


def test_expectation_gradient_closed_form_single_variable():
    # L = 1: E = sum_k p_k f_k, so dE/dtheta = p * (f - p . f)
    logits = torch.tensor([[0.3, -1.2, 0.8, 0.0, 2.1]], dtype=torch.float64, requires_grad=True)
    values = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.7], dtype=torch.float64)

    def f(x):
        return (x[:, 0] * values).sum(-1)

    (grad,) = torch.autograd.grad(gk.exact.expectation(f, logits), logits)
    p = torch.softmax(logits.detach()[0], -1)
    expected = p * (values - (p * values).sum())
    torch.testing.assert_close(grad[0], expected, rtol=1e-12, atol=1e-14)


def test_expectation_gradient_to_f_parameters():
    # d/dw E[sum_l w_{l, c_l}] = softmax(logits): the gradient reaches f's own parameters
    logits = torch.tensor([[0.3, -1.2, 0.8], [0.0, 0.5, -0.5]], dtype=torch.float64)
    w = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    value = gk.exact.expectation(lambda x: (x * w).sum((1, 2)), logits)
    (grad,) = torch.autograd.grad(value, w)
    torch.testing.assert_close(grad, torch.softmax(logits, -1), rtol=1e-12, atol=1e-14)


def test_expectation_gradcheck():
    logits = torch.tensor([[0.5, -0.3, 0.1], [-0.2, 0.4, 0.0]], dtype=torch.float64,
                          requires_grad=True)
    f = _nonlinear(_weights(2, 3))
    assert torch.autograd.gradcheck(lambda t: gk.exact.expectation(f, t), (logits,))
    w = _weights(2, 3)

    def per_row(x):
        return torch.sin(2 * (x * w).sum(-1))

    assert torch.autograd.gradcheck(lambda t: gk.exact.expectation(per_row, t), (logits,))


def test_expectation_too_many_configurations():
    logits = torch.zeros(3, 4)
    f = _nonlinear(_weights(3, 4).float())
    with pytest.raises(ValueError, match="max_configurations"):
        gk.exact.expectation(f, logits, max_configurations=63)
    gk.exact.expectation(f, logits, max_configurations=64)  # 4**3 = 64 is allowed
    # default limit 2**20: 2**21 configurations refused before anything is allocated
    with pytest.raises(ValueError, match="max_configurations"):
        gk.exact.expectation(lambda x: x.sum((1, 2)), torch.zeros(21, 2))


@pytest.mark.parametrize("shape", [(4,), (2, 2, 2)])
def test_expectation_needs_2d_logits(shape):
    with pytest.raises(ValueError, match=r"\(L, K\)"):
        gk.exact.expectation(lambda x: x.sum(tuple(range(1, x.dim()))), torch.zeros(shape))


# ----------------------------------------------------------------------------- compare

LOGITS = torch.tensor([[0.5, -0.3, 0.1], [-0.2, 0.4, 0.0]], dtype=torch.float64)
F = _nonlinear(_weights(2, 3))


def _exact_grad(f, logits):
    leaf = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gk.exact.expectation(f, leaf).sum(), leaf)
    return grad


def test_compare_rows_and_identities():
    rows = gk.exact.compare(F, LOGITS, ["softmax", "argmax-st", "st-gs"], n_draws=50,
                            generator=torch.Generator().manual_seed(1))
    assert [row["estimator"] for row in rows] == ["softmax", "argmax-st", "st-gs"]
    for row in rows:
        assert set(row) >= REQUIRED_KEYS
        assert row["tau"] == 1.0 and row["n_samples"] == 1 and row["n_draws"] == 50
        # mse = bias^2 + variance is an identity for the population variance; both sides are
        # float64 sums of a few dozen O(1) terms, so they agree to ~1e-13 relative
        assert math.isclose(row["mse"], row["bias"] ** 2 + row["variance"],
                            rel_tol=1e-9, abs_tol=1e-12)
        assert -1.0 <= row["cosine"] <= 1.0
        assert row["seconds"] > 0
        assert row["bias"] >= 0 and row["variance"] >= 0


def test_compare_deterministic_estimators():
    rows = gk.exact.compare(F, LOGITS, ["softmax", "argmax-st"], n_draws=20)
    exact = _exact_grad(F, LOGITS)
    for row in rows:
        # no noise: every draw is the same float64 computation, so the variance is exactly 0
        assert row["variance"] == 0.0
        assert row["snr"] == math.inf
        # and the bias is the distance of that one deterministic gradient to the exact one
        leaf = LOGITS.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(gk.expectation(F, leaf, row["estimator"]), leaf)
        assert math.isclose(row["bias"], float((grad - exact).norm()), rel_tol=1e-9)
        assert row["bias"] > 0.1  # a deterministic relaxation is biased for this nonlinear f


def test_compare_reinforce_unbiased_st_biased():
    # reinforce is unbiased: by the CLT each coordinate of mean(g_hat) - g is ~ N(0, Var_i / n),
    # so bias^2 = ||mean - g||^2 is a Gaussian quadratic form with expectation variance / n.
    # For t >= 1.54 the tail P(sum_i lambda_i z_i^2 >= t * sum_i lambda_i) is largest for a
    # single term (Szekely and Bakirov 2003), so P(bias > Z_TOL * sqrt(variance / n)) <=
    # P(|z| > Z_TOL) = 7e-6. The check has power: for this f the "st" estimator's exact mean
    # gradient (by enumeration) is 0.889 away from g with variance 0.0547, i.e. 76 noise floors
    # sqrt(0.0547 / 400) at n = 400, so st must fail the same bound.
    n = 400
    w = 3 * _weights(2, 3)

    def f(x):
        return torch.sin(3 * (x * w).sum((1, 2))) + x[:, 0, 0] * x[:, 1, 1]

    rows = gk.exact.compare(f, LOGITS, ["reinforce", "st"], n_draws=n,
                            generator=torch.Generator().manual_seed(2))
    reinforce, st = rows
    assert reinforce["bias"] <= Z_TOL * math.sqrt(reinforce["variance"] / n)
    assert st["bias"] > Z_TOL * math.sqrt(st["variance"] / n)
    # snr = ||E g_hat|| / sqrt(variance), and ||E g_hat|| is within bias of ||g|| (triangle
    # inequality), so snr * sqrt(variance) must lie in ||g|| -+ bias
    exact_norm = float(_exact_grad(f, LOGITS).norm())
    for row in rows:
        assert 0 < row["variance"] < math.inf
        mean_norm = row["snr"] * math.sqrt(row["variance"])
        assert abs(mean_norm - exact_norm) <= row["bias"] + 1e-12


def test_compare_options_passed_through():
    seed = 3
    rows = gk.exact.compare(F, LOGITS, ["gr"], n_draws=30,
                            generator=torch.Generator().manual_seed(seed),
                            options={"gr": {"k": 3}})
    # recompute the draws by hand with k=3 and the same generator stream
    gen = torch.Generator().manual_seed(seed)
    draws = []
    for _ in range(30):
        leaf = LOGITS.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(gk.expectation(F, leaf, "gr", generator=gen, k=3), leaf)
        draws.append(grad.flatten())
    expected = gradient_statistics(torch.stack(draws), _exact_grad(F, LOGITS).flatten())
    for key in ("bias", "variance", "mse", "cosine", "snr"):
        assert math.isclose(rows[0][key], expected[key], rel_tol=1e-12), key
    default = gk.exact.compare(F, LOGITS, ["gr"], n_draws=30,
                               generator=torch.Generator().manual_seed(seed))
    assert default[0]["variance"] != rows[0]["variance"]  # k=10 differs from k=3
    # an option gr does not take is rejected, so options really reach the estimator
    with pytest.raises(ValueError, match="gap"):
        gk.exact.compare(F, LOGITS, ["gr"], n_draws=2, options={"gr": {"gap": 1.0}})


def test_compare_tau_schedule_and_n_samples():
    schedule = gk.schedules.Linear(2.0, 0.5, steps=3)
    schedule.step()
    rows = gk.exact.compare(F, LOGITS, ["softmax"], n_draws=2, tau=schedule)
    assert rows[0]["tau"] == pytest.approx(1.5)
    # the schedule's current value is what is used: same result as the float
    float_rows = gk.exact.compare(F, LOGITS, ["softmax"], n_draws=2, tau=1.5)
    assert rows[0]["bias"] == float_rows[0]["bias"]
    rows = gk.exact.compare(F, LOGITS, ["rloo"], n_draws=5, n_samples=4,
                            generator=torch.Generator().manual_seed(0))
    assert rows[0]["n_samples"] == 4


def test_compare_bad_n_draws():
    with pytest.raises(ValueError, match="n_draws"):
        gk.exact.compare(F, LOGITS, ["softmax"], n_draws=1)


def test_gradient_statistics_known_answers():
    target = torch.tensor([1.0, 1.0], dtype=torch.float64)
    draws = torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    stats = gradient_statistics(draws, target)
    # mean (2, 0): bias ||(1, -1)|| = sqrt 2; population variances (1, 0) sum to 1;
    # squared errors 1 and 5, mse 3 = 2 + 1; both cosines 1/sqrt 2; snr ||(2, 0)|| / 1 = 2
    assert stats["bias"] == pytest.approx(math.sqrt(2), rel=1e-15)
    assert stats["variance"] == pytest.approx(1.0, rel=1e-15)
    assert stats["mse"] == pytest.approx(3.0, rel=1e-15)
    assert stats["cosine"] == pytest.approx(1 / math.sqrt(2), rel=1e-15)
    assert stats["snr"] == pytest.approx(2.0, rel=1e-15)
    # a zero estimate counts as cosine 0; opposite direction -1; identical draws: variance 0
    stats = gradient_statistics(torch.tensor([[0.0, 0.0], [-2.0, -2.0]], dtype=torch.float64),
                                target)
    assert stats["cosine"] == pytest.approx(-0.5, rel=1e-15)
    stats = gradient_statistics(torch.tensor([[0.5, 2.0]] * 4, dtype=torch.float64), target)
    assert stats["variance"] == 0.0 and stats["snr"] == math.inf
    assert stats["bias"] == pytest.approx(math.hypot(0.5, 1.0), rel=1e-15)


# ----------------------------------------------------------------------------- bad input


def _integer_valued(dtype: torch.dtype):
    """f counting the variables in category 0, returned as ``dtype`` (not floating point)."""
    return lambda x: (x[..., 0] == 1).sum(-1).to(dtype)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("path", ["exact", "st-gs", "gs", "reinforce", "rloo"])
def test_non_floating_f_is_a_type_error_in_every_path(path, dtype):
    # exact and Monte Carlo share one check: integer values raise the same TypeError everywhere
    # (they used to give tensor(0) by enumeration and a raw torch error by Monte Carlo)
    f = _integer_valued(dtype)
    with pytest.raises(TypeError, match="f must return floating-point values"):
        if path == "exact":
            gk.exact.expectation(f, LOGITS)
        else:
            gk.expectation(f, LOGITS, path, n_samples=2, generator=torch.Generator())
    # converted in f, as the message says, the exact value is the expected count sum_l p_l0, or,
    # for bool, the probability that some variable is in category 0 (float64: ~1e-16 relative)
    p0 = torch.softmax(LOGITS, -1)[:, 0]
    expected = 1 - (1 - p0).prod() if dtype == torch.bool else p0.sum()
    exact = gk.exact.expectation(lambda x: f(x).to(x.dtype), LOGITS)
    torch.testing.assert_close(exact, expected, rtol=1e-12, atol=0)


def _counting(calls: list):
    """F, recording each call: a bad argument must be refused before f is ever called."""

    def f(x):
        calls.append(x.shape)
        return F(x)

    return f


@pytest.mark.parametrize("estimators", ["gr", "st-gs", b"gr", 3])
def test_compare_estimators_must_be_a_list_of_names(estimators):
    calls = []
    with pytest.raises(TypeError, match="list of estimator names"):
        gk.exact.compare(_counting(calls), LOGITS, estimators, n_draws=2)
    assert calls == []


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [({"GR": {"k": 3}}, ValueError, "'GR'"),
     ({"gr": {"k": 3}, "st_gs": {}}, ValueError, "'st_gs'"),
     ({"gr": 3}, TypeError, r"options\['gr'\]"),
     ({"gr": ["k"]}, TypeError, r"options\['gr'\]"),
     ([("gr", {"k": 3})], TypeError, "options must map"),
     ({"gr": {"gap": 1.0}}, ValueError, "'gap'")],
    ids=["misspelt", "one-misspelt", "number", "list", "pairs", "wrong-option"],
)
def test_compare_bad_options_raise_before_any_work(options, error, match):
    calls = []
    with pytest.raises(error, match=match):
        gk.exact.compare(_counting(calls), LOGITS, ["st-gs", "gr"], n_draws=2, options=options)
    assert calls == []


def test_compare_options_of_an_estimator_not_compared_are_unused():
    # documented: the CLI passes gr's and gst's options whatever estimators it compares
    rows = gk.exact.compare(F, LOGITS, ["st-gs"], n_draws=3, options={"gr": {"k": 2}},
                            generator=torch.Generator().manual_seed(0))
    reference = gk.exact.compare(F, LOGITS, ["st-gs"], n_draws=3,
                                 generator=torch.Generator().manual_seed(0))
    assert rows[0]["bias"] == reference[0]["bias"]


@pytest.mark.parametrize(
    ("L", "K", "match"),
    [(-1, 3, "n_variables"), (2.5, 3, "n_variables"), (True, 3, "n_variables"),
     (2, -2, "n_categories"), (2, 3.0, "n_categories"), (64, 3, "max_configurations")],
    ids=["negative", "float", "bool", "negative-K", "float-K", "overflow"],
)
def test_configurations_bad_counts_raise(L, K, match):
    # were a raw RuntimeError (-1), float "indices" (2.5), 1 variable (True), OverflowError (3**64)
    with pytest.raises(ValueError, match=match):
        configurations(L, K)


def test_configurations_limit():
    assert configurations(3, 2, max_configurations=8).shape == (8, 3)
    with pytest.raises(ValueError, match="max_configurations=7"):
        configurations(3, 2, max_configurations=7)
    assert configurations(0, 5).shape == (1, 0)  # no variables: one empty configuration


@pytest.mark.parametrize("limit", [True, "10", 0, 5.5, None])
def test_expectation_bad_max_configurations(limit):
    with pytest.raises(ValueError, match="max_configurations must be an integer"):
        gk.exact.expectation(F, LOGITS, max_configurations=limit)


@pytest.mark.parametrize(
    ("logits", "error"),
    [(LOGITS.long(), TypeError), (LOGITS.tolist(), TypeError), (LOGITS[0], ValueError)],
    ids=["integer", "list", "1-d"],
)
def test_compare_bad_logits_raise_before_any_work(logits, error):
    # integer and list logits gave raw torch errors from requires_grad_ and detach
    calls = []
    with pytest.raises(error, match="logits"):
        gk.exact.compare(_counting(calls), logits, ["st-gs"], n_draws=2)
    assert calls == []


def test_compare_f_that_ignores_its_sample():
    # pathwise estimates of a constant f have no graph to the logits: their gradient estimate is
    # exactly 0, as is the exact gradient (autograd used to raise "does not require grad")
    def constant(x):
        return torch.full(x.shape[:1], 2.0, dtype=x.dtype)

    rows = gk.exact.compare(constant, LOGITS, ["softmax", "st-gs", "gr", "reinmax"], n_draws=3,
                            generator=torch.Generator().manual_seed(0))
    # the exact gradient 2 * d(sum_c p(c)) is 0 up to float64 rounding of 9 terms (~1e-16)
    exact = gk.exact.exact_gradient(constant, LOGITS)
    torch.testing.assert_close(exact, torch.zeros_like(LOGITS), rtol=0, atol=1e-14)
    for row in rows:  # every draw is exactly 0: no variance, a zero estimate has cosine 0
        assert row["variance"] == 0.0 and row["cosine"] == 0.0, row
        assert row["bias"] == pytest.approx(float(exact.norm()), rel=1e-12, abs=0)


def test_compare_empty_logits_no_warning():
    # 0 variables: an empty gradient; the statistics are 0, without torch's var() warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (row,) = gk.exact.compare(lambda x: x.sum((1, 2)), torch.zeros(0, 3), ["st"],
                                  n_draws=2)
    assert row["bias"] == row["variance"] == row["mse"] == 0.0
