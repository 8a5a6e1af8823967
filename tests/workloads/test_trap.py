"""The deceptive objective: its optima, and its batched exact expectation."""

import torch

import gumbelkit as gk
from gumbelkit.workloads.trap import Trap


def test_trap_is_deceptive_and_its_batched_expectation_is_exact():
    trap = Trap(variables=3, categories=3, global_value=5.0)
    one_hot = torch.eye(3)
    assert trap(one_hot[[0, 1, 0]]) == 2.0  # local optimum: no variable on the last option
    assert trap(one_hot[[2, 2, 0]]) == 0.0  # close to the global optimum, yet the worst value
    assert trap(one_hot[[2, 2, 2]]) == 5.0  # global optimum
    logits = torch.randn(4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([gk.exact.expectation(trap, row) for row in logits])
    torch.testing.assert_close(trap.expectation(logits), expected)
