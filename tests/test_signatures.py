"""Positional orders that follow torch's, as the README says (issue 13)."""

from __future__ import annotations

import inspect

import torch

import gumbelkit as gk


def _positional(fn) -> list[str]:
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]


def test_gumbel_softmax_positional_order_is_torchs():
    # (logits, tau, hard, eps, dim): the 4th positional argument is eps, not dim
    assert _positional(gk.gumbel_softmax) == _positional(torch.nn.functional.gumbel_softmax)
    assert _positional(gk.gumbel_softmax)[3] == "eps"
