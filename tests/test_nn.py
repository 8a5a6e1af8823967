"""Tests for gumbelkit.nn.GumbelSoftmax, the module form of the pathwise estimators."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import gumbelkit as gk
from gumbelkit.nn import GumbelSoftmax

from .stats import assert_law

LOGITS = torch.tensor([0.8, -0.4, 0.1, 1.5])
N = 50_000  # draws per law test: chi-square at ALPHA against softmax(LOGITS)


def _rows(n: int = N) -> torch.Tensor:
    return LOGITS.expand(n, 4)


def _assert_one_hot(x: torch.Tensor, dim: int = -1) -> None:
    assert ((x == 0) | (x == 1)).all()
    assert (x.sum(dim) == 1).all()


def test_training_mode_samples_with_the_right_law():
    module = GumbelSoftmax("st-gs", tau=0.5)
    assert module.training
    x = module(_rows(), generator=torch.Generator().manual_seed(0))
    _assert_one_hot(x)
    assert_law(x.sum(0), torch.softmax(LOGITS, -1))
    # it is gk.sample: same generator seed, same value
    torch.testing.assert_close(
        x, gk.sample(_rows(), "st-gs", 0.5, generator=torch.Generator().manual_seed(0)),
        rtol=0, atol=0)


def test_training_mode_gradient_reaches_upstream_linear():
    gen = torch.Generator().manual_seed(1)
    linear = nn.Linear(3, 4).double()
    with torch.no_grad():
        linear.weight.copy_(torch.randn(4, 3, generator=gen, dtype=torch.float64))
    model = nn.Sequential(linear, GumbelSoftmax("st-gs", tau=1.0))
    inputs = torch.randn(16, 3, generator=gen, dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    out = model(inputs)
    _assert_one_hot(out)
    ((out * w).sum(-1) ** 2).mean().backward()
    for param in (linear.weight, linear.bias):
        assert param.grad is not None
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


def test_eval_mode_returns_the_mode_deterministically():
    module = GumbelSoftmax("st-gs", tau=0.5).eval()
    logits = torch.tensor([[0.8, -0.4, 0.1, 1.5], [2.0, -float("inf"), 0.3, 0.0]])
    first = module(logits, generator=torch.Generator().manual_seed(2))
    second = module(logits, generator=torch.Generator().manual_seed(3))
    expected = torch.tensor([[0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert torch.equal(first, expected) and torch.equal(second, expected)
    # back in training mode it samples again: the mode has probability 0.528 per row here, so
    # 1000 rows all equal to it would have probability 0.528**1000 = 8e-278
    x = module.train()(_rows(1000), generator=torch.Generator().manual_seed(4))
    assert (x.argmax(-1) != 3).any()


def test_sample_in_eval_keeps_sampling():
    module = GumbelSoftmax("st-gs", tau=0.5, sample_in_eval=True).eval()
    x = module(_rows(), generator=torch.Generator().manual_seed(5))
    _assert_one_hot(x)
    assert_law(x.sum(0), torch.softmax(LOGITS, -1))


def test_options_passed_to_the_estimator():
    module = GumbelSoftmax("gr", tau=0.5, k=3)
    assert module.options == {"k": 3}
    logits = torch.tensor([[0.8, -0.4, 0.1, 1.5], [0.0, 0.3, -1.0, 0.2]], dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)

    def grad_of(fn):
        leaf = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(((fn(leaf) * w).sum(-1) ** 2).sum(), leaf)
        return grad

    # the module's gradient is gr's with k=3 (same generator stream), not the default k=10
    got = grad_of(lambda t: module(t, generator=torch.Generator().manual_seed(6)))
    k3 = grad_of(lambda t: gk.sample(t, "gr", 0.5, generator=torch.Generator().manual_seed(6),
                                     k=3))
    k10 = grad_of(lambda t: gk.sample(t, "gr", 0.5, generator=torch.Generator().manual_seed(6)))
    torch.testing.assert_close(got, k3, rtol=0, atol=0)
    assert not torch.allclose(got, k10)
    with pytest.raises(ValueError, match="option"):
        GumbelSoftmax("st-gs", k=3)
    with pytest.raises(ValueError):
        GumbelSoftmax("gr", k=0)


@pytest.mark.parametrize("estimator", ["reinforce", "rloo"])
def test_score_function_estimator_rejected(estimator):
    with pytest.raises(ValueError, match="score-function"):
        GumbelSoftmax(estimator)


def test_unknown_estimator_rejected():
    with pytest.raises(ValueError, match="unknown estimator"):
        GumbelSoftmax("nope")


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_tau_rejected(tau):
    with pytest.raises(ValueError, match="tau"):
        GumbelSoftmax("st-gs", tau=tau)


def test_dim_argument():
    # categories along dim 0: columns are independent draws of softmax(LOGITS)
    module = GumbelSoftmax("st-gs", tau=0.5, dim=0)
    columns = LOGITS.unsqueeze(1).expand(4, N)
    x = module(columns, generator=torch.Generator().manual_seed(7))
    assert x.shape == (4, N)
    _assert_one_hot(x, dim=0)
    assert_law(x.sum(1), torch.softmax(LOGITS, -1))
    module.eval()
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0], [0.5, 0.0]])
    assert torch.equal(module(logits), torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(IndexError):
        GumbelSoftmax(dim=2)(logits)


def test_schedule_tau_step_changes_the_value_used():
    schedule = gk.schedules.Exponential(2.0, 1.0, tau_min=0.1)
    module = GumbelSoftmax("gs", tau=schedule)
    logits = LOGITS.double()

    def run():
        return module(logits, generator=torch.Generator().manual_seed(8))

    before = run()
    torch.testing.assert_close(
        before, gk.gumbel_softmax(logits, 2.0, generator=torch.Generator().manual_seed(8)),
        rtol=0, atol=0)
    schedule.step()  # tau = 2 exp(-1) = 0.736
    after = run()
    torch.testing.assert_close(
        after, gk.gumbel_softmax(logits, schedule.value,
                                 generator=torch.Generator().manual_seed(8)),
        rtol=0, atol=0)
    # the same noise at a lower temperature: a sharper sample
    assert after.max() > before.max()


def test_repr_mentions_estimator_and_tau():
    text = repr(GumbelSoftmax("gr", tau=0.5, k=3))
    assert "GumbelSoftmax" in text and "'gr'" in text and "0.5" in text and "k=3" in text


# ----------------------------------------------------------------------------- state_dict


def _checkpoint(module: nn.Module) -> dict:
    """``module.state_dict()`` after torch.save and torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _model(tau) -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), GumbelSoftmax("gs", tau=tau))  # soft: tau shows


def _exponential() -> gk.schedules.Exponential:
    return gk.schedules.Exponential(1.0, 1.0, tau_min=0.1)


def test_state_dict_restores_the_schedule_step():
    # the case: after one step tau = exp(-1) = 0.368; a fresh module starts at 1.0
    schedule = _exponential()
    model = _model(schedule)
    schedule.step()
    checkpoint = _checkpoint(model)
    resumed_schedule = _exponential()
    resumed = _model(resumed_schedule)
    assert resumed_schedule.value == 1.0
    resumed.load_state_dict(checkpoint)
    assert resumed_schedule.value == schedule.value == pytest.approx(0.36787944117144233)
    torch.testing.assert_close(resumed[0].weight, model[0].weight, rtol=0, atol=0)
    # the resumed module samples as the original one did, and both go on in step
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(9))

    def run(m):
        return m[1](m[0](x), generator=torch.Generator().manual_seed(10))

    for _ in range(3):
        torch.testing.assert_close(run(resumed), run(model), rtol=0, atol=0)
        assert resumed_schedule.step() == schedule.step()
    # the same weights with the schedule reset (the silent tau = 1.0) sample differently
    reset = _model(_exponential())
    reset[0].load_state_dict(model[0].state_dict())
    assert not torch.allclose(run(resumed), run(reset))


def test_state_dict_constant_tau_round_trip():
    model = _model(0.5)
    checkpoint = _checkpoint(model)
    assert checkpoint["1._extra_state"] == {"tau": 0.5}
    resumed = _model(0.5)
    resumed.load_state_dict(checkpoint)
    torch.testing.assert_close(resumed[0].weight, model[0].weight, rtol=0, atol=0)


def test_state_dict_round_trip_of_a_tensor_tau_per_category():
    # a tensor temperature broadcast over the categories, fixed or learned (a Parameter)
    for kind in (torch.tensor, lambda values: torch.nn.Parameter(torch.tensor(values))):
        checkpoint = GumbelSoftmax(tau=kind([0.5, 1.0, 2.0])).state_dict()
        assert checkpoint["_extra_state"] == {"tau": [0.5, 1.0, 2.0]}
        GumbelSoftmax(tau=kind([0.5, 1.0, 2.0])).load_state_dict(checkpoint)
        with pytest.raises(ValueError, match="tau"):
            GumbelSoftmax(tau=torch.tensor([0.5, 1.0, 3.0])).load_state_dict(
                {"_extra_state": checkpoint["_extra_state"]}, strict=False)


@pytest.mark.parametrize(
    ("saved", "loaded"),
    [(_exponential, lambda: 1.0), (lambda: 1.0, _exponential), (lambda: 0.5, lambda: 1.0),
     (_exponential, lambda: gk.schedules.Exponential(1.0, 2.0, tau_min=0.1)),
     (_exponential, lambda: gk.schedules.Constant(1.0))],
    ids=["schedule-into-constant", "constant-into-schedule", "other-constant",
         "other-rate", "other-kind"],
)
def test_load_state_dict_with_another_tau_raises(saved, loaded):
    source = saved()
    checkpoint = _checkpoint(_model(source))
    target_tau = loaded()
    target = _model(target_tau)
    with pytest.raises(ValueError, match="schedule|tau"):
        target.load_state_dict(checkpoint)
    if isinstance(target_tau, gk.schedules.Schedule):
        assert target_tau.last_step == 0
    # the documented way to load the weights under another tau on purpose
    checkpoint["1._extra_state"] = target[1].get_extra_state()
    target.load_state_dict(checkpoint)


def test_load_state_dict_without_the_tau_entry_fails_loudly():
    # a state_dict without the module's temperature is a missing key, not a silent reset
    checkpoint = _checkpoint(_model(_exponential()))
    del checkpoint["1._extra_state"]
    with pytest.raises(RuntimeError, match="_extra_state"):
        _model(_exponential()).load_state_dict(checkpoint)


@pytest.mark.parametrize("state", [None, {}, {"tau": "fast"}, 1.0])
def test_set_extra_state_malformed_raises(state):
    with pytest.raises(ValueError, match="temperature"):
        GumbelSoftmax(tau=1.0).set_extra_state(state)


@pytest.mark.parametrize("flag", ["no", 0, None, torch.tensor(False)])
def test_sample_in_eval_must_be_a_bool(flag):
    # a truthy string such as "no" used to make the module sample in eval mode
    with pytest.raises(TypeError, match="sample_in_eval"):
        GumbelSoftmax(sample_in_eval=flag)
