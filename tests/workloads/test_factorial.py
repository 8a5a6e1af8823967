"""The noise factorial's cells are the registry's estimators at alpha 0 and 1, and alpha scales
the noise: the straight-through forward at alpha samples softmax(logits / alpha)."""

import pytest
import torch

import gumbelkit as gk
from gumbelkit.workloads.factorial import CELLS, Cell, ScaledNoise


def test_alpha_zero_is_softmax_tau_and_argmax_st_exactly():
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for backward, name in (("relaxed", "softmax"), ("straight-through", "argmax-st")):
        cell = Cell(0.0, backward)
        assert cell.known_as == name
        leaf = logits.clone().requires_grad_()
        ours = gk.sample(leaf, cell.estimator, tau=0.7)
        (ours * torch.arange(5.0, dtype=torch.float64)).sum().backward()
        reference = logits.clone().requires_grad_()
        theirs = gk.sample(reference, name, tau=0.7)
        (theirs * torch.arange(5.0, dtype=torch.float64)).sum().backward()
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        torch.testing.assert_close(leaf.grad, reference.grad)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_straight_through_forward_samples_softmax_of_logits_over_alpha(alpha):
    # Gumbel-max: argmax(l + alpha G) = argmax(l / alpha + G) ~ softmax(l / alpha). 40,000 draws:
    # each frequency's standard error is at most 0.0025, so 0.0125 is 5 of them.
    logits = torch.tensor([[1.0, 0.0, -0.5, 0.3]]).expand(40_000, 4)
    y = gk.sample(logits, ScaledNoise(alpha, straight_through=True), tau=0.5,
                  generator=torch.Generator().manual_seed(1))
    assert torch.equal(y.sum(-1), torch.ones(40_000))
    torch.testing.assert_close(y.mean(0), torch.softmax(logits[0] / alpha, -1), rtol=0,
                               atol=0.0125)


def test_gradient_is_that_of_the_relaxed_sample_with_the_same_noise():
    logits = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    weights = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    grads = []
    for straight_through in (False, True):
        leaf = logits.clone().requires_grad_()
        y = gk.sample(leaf, ScaledNoise(1.5, straight_through), tau=0.5,
                      generator=torch.Generator().manual_seed(4))
        (y @ weights).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1])  # f linear: same surrogate, same gradient


def test_cells_cover_every_alpha_and_backward_once():
    assert len({(c.alpha, c.backward) for c in CELLS}) == len(CELLS) == 8
    assert len({c.label for c in CELLS}) == 8
    with pytest.raises(ValueError, match="alpha"):
        ScaledNoise(-1.0, False)
