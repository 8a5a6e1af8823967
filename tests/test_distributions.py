"""Tests for gumbelkit.distributions.GumbelSoftmax, checked against torch.distributions."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import (
    Categorical,
    Distribution,
    OneHotCategorical,
    RelaxedOneHotCategorical,
)

import gumbelkit as gk
from gumbelkit.distributions import GumbelSoftmax

from .stats import assert_law

INF = float("inf")
LOGITS = torch.tensor([1.0, -0.5, 0.3, 0.0, -2.0], dtype=torch.float64)
BATCH_LOGITS = torch.tensor([[0.2, -1.0, 1.5], [0.0, 0.0, -0.3]], dtype=torch.float64)
MASKED = torch.tensor([[0.5, -INF, 1.0, -0.2], [-INF, -INF, 0.3, 0.0]], dtype=torch.float64)


def _assert_one_hot(x: torch.Tensor) -> None:
    assert ((x == 0) | (x == 1)).all()
    assert (x.sum(-1) == 1).all()


def test_is_a_distribution_with_shapes():
    d = GumbelSoftmax(logits=BATCH_LOGITS, tau=0.5)
    assert isinstance(d, Distribution) and d.has_rsample
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    assert d.sample().shape == (2, 3)
    assert d.sample((4,)).shape == (4, 2, 3)
    assert d.sample((4, 5)).shape == (4, 5, 2, 3)
    assert d.rsample((7,)).shape == (7, 2, 3)


def test_sample_law_is_softmax():
    # 10^5 draws: a chi-square goodness-of-fit test at ALPHA against softmax(logits)
    d = GumbelSoftmax(logits=LOGITS)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x = d.sample((100_000,))
    _assert_one_hot(x)
    assert not x.requires_grad
    assert_law(x.sum(0), torch.softmax(LOGITS, -1))


def test_sample_batch_law_per_row():
    d = GumbelSoftmax(logits=BATCH_LOGITS)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        x = d.sample((50_000,))
    for row in range(2):
        assert_law(x[:, row].sum(0), torch.softmax(BATCH_LOGITS[row], -1))


def test_sample_masked_never_drawn():
    d = GumbelSoftmax(logits=MASKED)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        x = d.sample((20_000,))
    assert (x[..., 0, 1] == 0).all() and (x[..., 1, :2] == 0).all()
    for row in range(2):
        assert_law(x[:, row].sum(0), torch.softmax(MASKED[row], -1))


@pytest.mark.parametrize("estimator", ["st-gs", "gr", "st", "reinmax", "gst"])
def test_rsample_hard_estimators_exact_one_hot_law_and_gradient(estimator):
    logits = LOGITS.clone().requires_grad_(True)
    d = GumbelSoftmax(logits=logits, tau=0.7, estimator=estimator)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        x = d.rsample((20_000,))
    _assert_one_hot(x)  # hard: exactly 0 and 1
    assert_law(x.detach().sum(0), torch.softmax(LOGITS, -1))
    w = torch.linspace(-1.0, 2.0, 5, dtype=torch.float64)
    (grad,) = torch.autograd.grad(((x * w).sum(-1) ** 2).mean(), logits)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_rsample_gs_is_soft():
    logits = LOGITS.clone().requires_grad_(True)
    d = GumbelSoftmax(logits=logits, tau=1.0, estimator="gs")
    x = d.rsample((1000,))
    assert ((x > 0) & (x < 1)).any(-1).all()  # every draw is a point inside the simplex
    torch.testing.assert_close(x.detach().sum(-1), torch.ones(1000, dtype=torch.float64))
    (grad,) = torch.autograd.grad((x[:, 0] ** 2).mean(), logits)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_rsample_uses_the_estimator_sample():
    # rsample is gk.sample on the (normalised) logits: same global-RNG stream, same value
    d = GumbelSoftmax(logits=BATCH_LOGITS, tau=0.6, estimator="gs")
    normalised = BATCH_LOGITS - BATCH_LOGITS.logsumexp(-1, keepdim=True)
    with torch.random.fork_rng():
        torch.manual_seed(4)
        got = d.rsample((3,))
        torch.manual_seed(4)
        want = gk.sample(normalised.expand(3, 2, 3), "gs", 0.6)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_log_prob_matches_one_hot_categorical():
    d = GumbelSoftmax(logits=BATCH_LOGITS)
    ref = OneHotCategorical(logits=BATCH_LOGITS)
    value = torch.eye(3, dtype=torch.float64).unsqueeze(1).expand(3, 2, 3)  # every category
    torch.testing.assert_close(d.log_prob(value), ref.log_prob(value), rtol=1e-12, atol=1e-12)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        x = d.sample((10,))
    torch.testing.assert_close(d.log_prob(x), ref.log_prob(x), rtol=1e-12, atol=1e-12)


def test_log_prob_masked_finite_for_unmasked_values():
    logits = MASKED.clone().requires_grad_(True)
    d = GumbelSoftmax(logits=logits)
    value = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]], dtype=torch.float64)
    lp = d.log_prob(value)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp.detach(), torch.log_softmax(MASKED, -1)[[0, 1], [0, 3]],
                               rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(lp.sum(), logits)
    assert torch.isfinite(grad).all()
    # a masked category has probability 0
    masked_value = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert d.log_prob(masked_value)[0] == -INF


def test_log_prob_of_rsample_with_masks_has_finite_gradient():
    # log q(z) of a straight-through sample z = q.rsample() (e.g. a categorical VAE's KL term):
    # the gradient reaches the logits through both z and q; masked entries must not give NaN.
    # Without masks the same computation is finite, so only the -inf handling is tested here.
    for base in (MASKED, MASKED.nan_to_num(neginf=-3.0)):
        logits = base.clone().requires_grad_(True)
        d = GumbelSoftmax(logits=logits)
        with torch.random.fork_rng():
            torch.manual_seed(9)
            z = d.rsample((4,))
        (grad,) = torch.autograd.grad(d.log_prob(z).sum(), logits)
        assert torch.isfinite(grad).all(), base


def test_entropy_matches_categorical():
    for logits in (LOGITS, BATCH_LOGITS, MASKED):
        got = GumbelSoftmax(logits=logits).entropy()
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, Categorical(logits=logits).entropy(),
                                   rtol=1e-12, atol=1e-12)


def test_entropy_gradient_with_masks():
    # d H / d logits = -p * (log p - sum_j p_j log p_j), 0 at masked entries, as torch gives
    logits = MASKED.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(GumbelSoftmax(logits=logits).entropy().sum(), logits)
    assert torch.isfinite(grad).all()
    ref_logits = MASKED.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(Categorical(logits=ref_logits).entropy().sum(), ref_logits)
    torch.testing.assert_close(grad, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tau", [0.3, 1.0, 2.5])
def test_relaxed_log_prob_matches_torch(tau):
    # float64, the same closed form (Maddison et al. 2017, eq. 3): agreement to ~1e-12
    ref = RelaxedOneHotCategorical(torch.tensor(tau, dtype=torch.float64), logits=BATCH_LOGITS)
    with torch.random.fork_rng():
        torch.manual_seed(6)
        y = ref.rsample((50,))
    d = GumbelSoftmax(logits=BATCH_LOGITS, tau=tau)
    torch.testing.assert_close(d.relaxed_log_prob(y), ref.log_prob(y), rtol=1e-10, atol=1e-10)


def test_relaxed_log_prob_uses_schedule_value():
    s = gk.schedules.Linear(2.0, 0.5, steps=2)
    d = GumbelSoftmax(logits=LOGITS, tau=s)
    y = gk.gumbel_softmax(LOGITS, 1.0, generator=torch.Generator().manual_seed(7))
    s.step()  # tau is now 1.25
    ref = RelaxedOneHotCategorical(torch.tensor(1.25, dtype=torch.float64), logits=LOGITS)
    torch.testing.assert_close(d.relaxed_log_prob(y), ref.log_prob(y), rtol=1e-10, atol=1e-10)


def test_probs_constructor():
    probs = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    d = GumbelSoftmax(probs=probs)
    torch.testing.assert_close(d.probs, probs, rtol=1e-12, atol=1e-15)
    value = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(d.log_prob(value), OneHotCategorical(probs=probs).log_prob(value),
                               rtol=1e-12, atol=1e-12)
    # a zero probability is a mask: never sampled
    d = GumbelSoftmax(probs=torch.tensor([0.5, 0.0, 0.5]))
    with torch.random.fork_rng():
        torch.manual_seed(8)
        assert (d.sample((2000,))[:, 1] == 0).all()


def test_logits_and_probs_both_or_neither():
    with pytest.raises(ValueError, match="exactly one"):
        GumbelSoftmax()
    with pytest.raises(ValueError, match="exactly one"):
        GumbelSoftmax(logits=LOGITS, probs=torch.softmax(LOGITS, -1))


@pytest.mark.parametrize("estimator", ["reinforce", "rloo"])
def test_score_function_estimator_rejected(estimator):
    with pytest.raises(ValueError, match="score-function"):
        GumbelSoftmax(logits=LOGITS, estimator=estimator)


def test_bad_arguments():
    with pytest.raises(ValueError):
        GumbelSoftmax(logits=LOGITS, tau=0.0)
    with pytest.raises(ValueError, match="unknown estimator"):
        GumbelSoftmax(logits=LOGITS, estimator="nope")
    with pytest.raises(ValueError):
        GumbelSoftmax(logits=torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError):
        GumbelSoftmax(logits=LOGITS, estimator="st-gs", k=3)  # st-gs takes no option k


def test_expand_keeps_parameters():
    d = GumbelSoftmax(logits=LOGITS, tau=0.4, estimator="gr", k=3)
    e = d.expand((4, 2))
    assert e.batch_shape == (4, 2) and e.event_shape == (5,)
    assert e.estimator.name == "gr" and e.options == {"k": 3} and e.tau == 0.4
    torch.testing.assert_close(e.probs, torch.softmax(LOGITS, -1).expand(4, 2, 5))
    assert e.sample((3,)).shape == (3, 4, 2, 5)
    assert e.rsample().shape == (4, 2, 5)


def test_mean_and_mode():
    d = GumbelSoftmax(logits=BATCH_LOGITS)
    torch.testing.assert_close(d.mean, torch.softmax(BATCH_LOGITS, -1), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(d.mode, OneHotCategorical(logits=BATCH_LOGITS).mode)
    masked = GumbelSoftmax(logits=MASKED)
    assert masked.mode.tolist() == [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    assert masked.mean[0, 1] == 0 and masked.mean[1, 0] == 0


@pytest.mark.parametrize("method", ["rsample", "sample"])
def test_generator_keyword(method):
    # torch's convention: generator= decides the draws, and the global RNG is left alone
    d = GumbelSoftmax(logits=BATCH_LOGITS, tau=0.6, estimator="gs")
    draw = getattr(d, method)
    state = torch.get_rng_state()
    first = draw((4,), generator=torch.Generator().manual_seed(11))
    again = draw((4,), generator=torch.Generator().manual_seed(11))
    other = draw((4,), generator=torch.Generator().manual_seed(12))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # it is gk.sample's (rsample) or gk.gumbel_max's (sample) stream for the same generator
    normalised = (BATCH_LOGITS - BATCH_LOGITS.logsumexp(-1, keepdim=True)).expand(4, 2, 3)
    if method == "rsample":
        want = gk.sample(normalised, "gs", 0.6, generator=torch.Generator().manual_seed(11))
    else:
        index = gk.gumbel_max(normalised, generator=torch.Generator().manual_seed(11))
        want = torch.nn.functional.one_hot(index, 3).to(first.dtype)
    torch.testing.assert_close(first, want, rtol=0, atol=0)


def test_sample_with_generator_law():
    d = GumbelSoftmax(logits=LOGITS)
    x = d.sample((20_000,), generator=torch.Generator().manual_seed(13))
    _assert_one_hot(x)
    assert_law(x.sum(0), torch.softmax(LOGITS, -1))


# --------------------------------------------------------------------------------------------
# torch.distributions conventions: support, value validation (issue 11, item 6)


def test_support_is_one_hot_like_torch_one_hot_categorical():
    d = GumbelSoftmax(logits=BATCH_LOGITS)
    assert d.support is OneHotCategorical.support
    with torch.random.fork_rng():
        torch.manual_seed(10)
        x = d.sample((50,))
        h = GumbelSoftmax(logits=BATCH_LOGITS, estimator="gr").rsample((50,))
    assert d.support.check(x).all() and d.support.check(h.detach()).all()


BAD_VALUES = {
    "nan": torch.tensor([[float("nan"), 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64),
    "not one-hot": torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64),
    "two ones": torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64),
}


@pytest.mark.parametrize("kind", list(BAD_VALUES))
def test_log_prob_rejects_values_off_the_support(kind):
    d = GumbelSoftmax(logits=BATCH_LOGITS, validate_args=True)
    with pytest.raises(ValueError, match="one-hot"):
        d.log_prob(BAD_VALUES[kind])


@pytest.mark.parametrize("shape", [(2, 4), (4,), (3, 3)])
def test_log_prob_rejects_a_value_of_the_wrong_shape(shape):
    # last dimension not the 3 categories, or a batch shape (3,) that does not broadcast with (2,)
    d = GumbelSoftmax(logits=BATCH_LOGITS, validate_args=True)
    value = torch.zeros(shape, dtype=torch.float64)
    value[..., 0] = 1.0
    with pytest.raises(ValueError, match="batch shape"):
        d.log_prob(value)


def test_log_prob_without_validation_does_not_check():
    # validate_args=False skips the check (for speed, as torch does): a number comes back
    d = GumbelSoftmax(logits=BATCH_LOGITS, validate_args=False)
    assert d.log_prob(BAD_VALUES["not one-hot"]).shape == (2,)


def test_log_prob_accepts_broadcasting_one_hot_values():
    d = GumbelSoftmax(logits=BATCH_LOGITS, validate_args=True)
    value = torch.eye(3, dtype=torch.float64).unsqueeze(1)  # (3, 1, 3) against batch (2,)
    ref = OneHotCategorical(logits=BATCH_LOGITS, validate_args=True)
    torch.testing.assert_close(d.log_prob(value), ref.log_prob(value), rtol=1e-12, atol=1e-12)


def test_relaxed_log_prob_checks_the_simplex():
    d = GumbelSoftmax(logits=BATCH_LOGITS, tau=0.5, validate_args=True)
    y = gk.gumbel_softmax(BATCH_LOGITS, 0.5, generator=torch.Generator().manual_seed(11))
    assert torch.isfinite(d.relaxed_log_prob(y)).all()
    for bad in (y * 2, y.masked_fill(y > 0.5, float("nan")), -y):
        with pytest.raises(ValueError, match="simplex"):
            d.relaxed_log_prob(bad)
    with pytest.raises(ValueError, match="categories"):
        d.relaxed_log_prob(y[..., :2])


def test_probs_must_be_a_float_tensor_of_non_negative_values():
    with pytest.raises(TypeError, match="probs must be a torch.Tensor"):
        GumbelSoftmax(probs=[0.5, 0.5])
    with pytest.raises(ValueError, match="probs must be >= 0"):
        GumbelSoftmax(probs=torch.tensor([0.5, -0.1, 0.6]))
    d = GumbelSoftmax(probs=torch.tensor([1.0, 3.0]))  # normalised along the last dim
    torch.testing.assert_close(d.probs, torch.tensor([0.25, 0.75]))
