"""Tests for gumbelkit.schedules: values, step counter, state, validation, and use as a tau."""

from __future__ import annotations

import io
import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit.schedules import Constant, Cosine, Exponential, Linear, Schedule

# schedule values are a handful of float64 operations: exact to a few ulps
REL = 1e-12


def test_constant():
    s = Constant(0.7)
    assert s.value == 0.7 and s(0) == 0.7 and s(10**6) == 0.7
    assert s.step() == 0.7 and s.last_step == 1


def test_exponential_jang():
    s = Exponential(2.0, 0.1, tau_min=0.3)
    for t in (0, 1, 5, 17):
        assert s(t) == pytest.approx(max(0.3, 2.0 * math.exp(-0.1 * t)), rel=REL)
    # 2 exp(-0.1 t) < 0.3 from t = 19 on: clamped at tau_min
    assert s(19) == 0.3 and s(1000) == 0.3
    assert Exponential(1.0, 1.0)(10) == 0.5  # default tau_min is 0.5


def test_exponential_every_rounds_down():
    s = Exponential(1.0, 0.2, tau_min=0.01, every=3)
    # t rounded down to a multiple of every: 0, 0, 0, 3, 3, 3, 6
    expected = [math.exp(-0.2 * t) for t in (0, 0, 0, 3, 3, 3, 6)]
    assert [s(t) for t in range(7)] == pytest.approx(expected, rel=REL)
    assert s(3) < s(2)


def test_linear_endpoints_midpoint_and_after():
    s = Linear(2.0, 0.5, steps=10)
    assert s(0) == 2.0
    assert s(5) == pytest.approx(1.25, rel=REL)
    assert s(2) == pytest.approx(2.0 - 1.5 * 0.2, rel=REL)
    assert s(10) == pytest.approx(0.5, rel=REL)
    assert s(11) == s(10) and s(1000) == s(10)  # constant after `steps`
    up = Linear(0.5, 1.5, steps=4)  # increasing schedules are allowed
    assert up(2) == pytest.approx(1.0, rel=REL) and up(9) == pytest.approx(1.5, rel=REL)


def test_cosine_endpoints_midpoint_and_after():
    s = Cosine(2.0, 0.5, steps=8)
    assert s(0) == pytest.approx(2.0, rel=REL)
    assert s(4) == pytest.approx(1.25, rel=REL)  # midpoint: the mean of the endpoints
    # a quarter of the way: tau_end + (tau0 - tau_end) (1 + cos(pi / 4)) / 2
    assert s(2) == pytest.approx(0.5 + 1.5 * (1 + math.cos(math.pi / 4)) / 2, rel=REL)
    assert s(8) == pytest.approx(0.5, rel=REL)
    assert s(9) == s(8) and s(100) == s(8)
    values = [s(t) for t in range(9)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))  # strictly decreasing


@pytest.mark.parametrize(
    "schedule",
    [Constant(1.3), Exponential(2.0, 0.3, tau_min=0.2, every=2), Linear(2.0, 0.5, 5),
     Cosine(1.0, 3.0, 5)],
    ids=["constant", "exponential", "linear", "cosine"],
)
def test_step_value_and_purity(schedule):
    assert schedule.last_step == 0
    assert schedule.value == schedule(0)
    seen = []
    for t in range(1, 8):
        new = schedule.step()
        assert schedule.last_step == t
        assert new == schedule.value == schedule(t)
        seen.append(new)
    # calling the schedule is pure: it does not move the counter
    schedule(100)
    assert schedule.last_step == 7
    assert isinstance(schedule, Schedule)
    assert type(schedule).__name__ in repr(schedule)


SCHEDULES = {
    "constant": lambda: Constant(1.3),
    "exponential": lambda: Exponential(2.0, 0.3, tau_min=0.2, every=2),
    "linear": lambda: Linear(2.0, 0.5, 9),
    "cosine": lambda: Cosine(1.0, 3.0, 9),
}


def _saved_and_loaded(state: dict) -> dict:
    """``state`` after torch.save and torch.load(weights_only=True), as a checkpoint would be."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("name", SCHEDULES)
def test_state_dict_round_trip_mid_training(name):
    s = SCHEDULES[name]()
    for _ in range(5):
        s.step()
    state = _saved_and_loaded(s.state_dict())
    assert state["last_step"] == 5 and state["schedule"] == type(s).__name__
    fresh = SCHEDULES[name]()
    if name != "constant":
        assert fresh.value != s.value
    fresh.load_state_dict(state)
    # tau after resuming is tau before, and the two go on in step
    assert fresh.last_step == 5 and fresh.value == s.value
    for _ in range(3):
        assert fresh.step() == s.step()
    assert state["last_step"] == 5  # the saved state is a snapshot, not a live view


@pytest.mark.parametrize(
    ("make", "differs"),
    [(lambda: Exponential(2.0, 0.4, tau_min=0.2, every=2), "rate=0.4"),
     (lambda: Exponential(2.0, 0.3, tau_min=0.2, every=3), "every=3"),
     (lambda: Cosine(2.0, 0.5, 9), "Cosine"),
     (lambda: Constant(2.0), "Constant")],
    ids=["rate", "every", "kind", "constant"],
)
def test_load_state_dict_of_another_schedule_raises(make, differs):
    s = Exponential(2.0, 0.3, tau_min=0.2, every=2)
    s.step()
    other = make()
    with pytest.raises(ValueError, match=differs) as info:
        other.load_state_dict(s.state_dict())
    assert "last_step = 1" in str(info.value)  # the message says how to go on on purpose
    assert other.last_step == 0


def test_load_state_dict_same_parameters_other_kind_raises():
    # Linear and Cosine take the same parameters: the kind alone tells them apart
    linear = Linear(2.0, 0.5, 9)
    linear.step()
    with pytest.raises(ValueError, match="Linear"):
        Cosine(2.0, 0.5, 9).load_state_dict(linear.state_dict())


@pytest.mark.parametrize(
    "state",
    [{}, "last_step", None, {"schedule": "Linear", "tau0": 2.0, "tau_end": 0.5, "steps": 9},
     {"last_step": -1}, {"last_step": True}, {"last_step": 2.5}, {"last_step": "3"}],
    ids=["empty", "string", "none", "no-step", "negative", "bool", "float", "str-step"],
)
def test_load_state_dict_malformed_raises(state):
    s = Linear(2.0, 0.5, 9)
    with pytest.raises(ValueError, match="last_step"):
        s.load_state_dict(state)
    assert s.last_step == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Constant(0.0),
        lambda: Constant(-1.0),
        lambda: Constant(float("nan")),
        lambda: Constant(float("inf")),
        lambda: Exponential(0.0, 0.1),
        lambda: Exponential(1.0, -0.1),
        lambda: Exponential(1.0, float("nan")),
        lambda: Exponential(1.0, float("inf")),
        lambda: Exponential(1.0, 0.1, tau_min=0.0),
        lambda: Exponential(1.0, 0.1, every=0),
        lambda: Linear(1.0, 0.0, 10),
        lambda: Linear(-1.0, 0.5, 10),
        lambda: Linear(1.0, 0.5, 0),
        lambda: Cosine(1.0, float("inf"), 10),
        lambda: Cosine(1.0, 0.5, -3),
    ],
)
def test_bad_parameters_raise(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    "make",
    [lambda: Exponential(1.0, 0.1, every=2.5), lambda: Linear(1.0, 0.5, 2.5),
     lambda: Cosine(1.0, 0.5, 10.9)],
    ids=["exponential-every", "linear-steps", "cosine-steps"],
)
def test_non_integer_counts_raise(make):
    # "every/steps must be an integer": a fractional value must not be silently truncated
    with pytest.raises(ValueError):
        make()


# ----------------------------------------------------------------------------- use as a tau


def _stepped() -> Linear:
    """A schedule whose current value (0.8, after two steps) differs from its initial one (2.0)."""
    s = Linear(2.0, 0.2, steps=3)
    s.step()
    s.step()
    assert s.value == pytest.approx(0.8, rel=REL)
    return s


LOGITS = torch.tensor([[0.3, -1.0, 0.5, 2.0], [0.0, 0.1, -0.4, 1.0]], dtype=torch.float64)


def test_schedule_as_tau_softmax_t():
    s = _stepped()
    got = gk.softmax_t(LOGITS, s)
    torch.testing.assert_close(got, gk.softmax_t(LOGITS, s.value), rtol=0, atol=0)
    assert not torch.allclose(got, gk.softmax_t(LOGITS, 2.0))


def test_schedule_as_tau_gumbel_softmax():
    s = _stepped()
    got = gk.gumbel_softmax(LOGITS, s, generator=torch.Generator().manual_seed(4))
    want = gk.gumbel_softmax(LOGITS, s.value, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    other = gk.gumbel_softmax(LOGITS, 2.0, generator=torch.Generator().manual_seed(4))
    assert not torch.allclose(got, other)


def test_schedule_as_tau_sample_and_expectation():
    s = _stepped()
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)

    def f(x):
        return torch.sin((x * w).sum((-2, -1)))

    samples = [gk.sample(LOGITS, "gs", tau, generator=torch.Generator().manual_seed(5))
               for tau in (s, s.value, 2.0)]
    torch.testing.assert_close(samples[0], samples[1], rtol=0, atol=0)
    assert not torch.allclose(samples[0], samples[2])
    grads = []
    for tau in (s, s.value, 2.0):
        leaf = LOGITS.clone().requires_grad_(True)
        value = gk.expectation(f, leaf, "st-gs", n_samples=3, tau=tau,
                               generator=torch.Generator().manual_seed(6))
        grads.append(torch.autograd.grad(value, leaf)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    assert not torch.allclose(grads[0], grads[2])


def test_schedule_as_tau_module_follows_steps():
    s = Linear(2.0, 0.2, steps=3)
    module = gk.nn.GumbelSoftmax("gs", tau=s)
    for _ in range(3):
        got = module(LOGITS, generator=torch.Generator().manual_seed(7))
        want = gk.gumbel_softmax(LOGITS, s.value, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        s.step()
    # after the steps the module uses tau = 0.2, not its initial 2.0
    got = module(LOGITS, generator=torch.Generator().manual_seed(7))
    initial = gk.gumbel_softmax(LOGITS, 2.0, generator=torch.Generator().manual_seed(7))
    assert not torch.allclose(got, initial)


@pytest.mark.parametrize("make", [lambda: gk.schedules.Exponential(1.0, True),
                                  lambda: gk.schedules.Exponential("1.0", 0.1),
                                  lambda: gk.schedules.Constant(True),
                                  lambda: gk.schedules.Linear(1.0, "0.5", 10)])
def test_parameters_must_be_numbers_not_bools_or_strings(make):
    with pytest.raises(TypeError, match="must be a number"):
        make()


def test_exponential_at_steps_before_zero_and_far_beyond():
    """Before step 0 the value is tau0 (as Linear's); a step too large for a float is tau_min,
    not an OverflowError; a zero rate stays at tau0 whatever the step."""
    schedule = gk.schedules.Exponential(1.0, 0.1, tau_min=0.5)
    assert schedule(-5) == 1.0 and schedule(10**400) == 0.5
    assert gk.schedules.Exponential(1.0, 0.0)(10**400) == 1.0
    assert gk.schedules.Exponential(1.0, 1e-9, tau_min=1e-300)(10**400) == 1e-300
