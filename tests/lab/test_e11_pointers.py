"""E11: smoke test at the tiny budget, the readouts, and the verdict every way."""

import torch

import gumbelkit as gk
from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e11_pointers import EXPERIMENT, MARGIN, point, readout

from .helpers import run_tiny


def test_e11_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    for data in summary["cells"].values():
        assert set(data["accuracy"]) == {"softmax", "argmax-st", "gs", "st-gs"}
        assert all(0 <= a.estimate <= 1 for a in data["accuracy"].values())


def test_k_pointers_select_k_inputs_and_are_the_one_pointers_at_k_1():
    scores = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in ("softmax", "argmax-st", "gs", "st-gs"):
        y = point(scores, name, 3, 0.5, torch.Generator().manual_seed(1))
        torch.testing.assert_close(y.sum(-1), torch.full((6,), 3.0, dtype=torch.float64))
        if name in ("argmax-st", "st-gs"):  # hard: exactly k ones
            assert set(y.unique().tolist()) <= {0.0, 1.0}
        one = point(scores, name, 1, 0.5, torch.Generator().manual_seed(1))
        reference = gk.sample(scores, name, 0.5, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(one, reference)
    # the noise-free hard pointer is the top k of the scores themselves
    hard = point(scores, "argmax-st", 3, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(hard.argsort(-1, descending=True)[:, :3].sort(-1).values,
                       scores.topk(3, -1).indices.sort(-1).values)


def test_a_mixture_reads_as_a_mixture_only_through_a_linear_readout():
    x, v = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([2.0, 3.0])
    half = x.mean(0)
    assert readout(half, v, "linear") == readout(x, v, "linear").mean()
    assert readout(half, v, "nonlinear") == 0.5 != readout(x, v, "nonlinear").mean()


def _cell(difference, half=0.01):
    interval = Interval(difference, difference - half, difference + half, 10)
    accuracy = {e: Interval(0.9, 0.88, 0.92, 10) for e in ("softmax", "gs", "st-gs")}
    return {"accuracy": accuracy, "best_noisy": "gs", "softmax_minus_best": interval,
            "softmax_minus_best_90": interval, "chance": 0.2}


def verdict(*differences):
    cells = {f"N={i}, linear": _cell(*d) for i, d in enumerate(differences)}
    return EXPERIMENT.verdict({"cells": cells, "tau": 0.5, "seeds": 10})


def test_the_verdict_every_way():
    assert verdict((0.0,)).decision is Decision.YES  # the same within the margin
    assert verdict((-3 * MARGIN,)).decision is Decision.NO
    assert verdict((-MARGIN, 2 * MARGIN)).decision is Decision.UNDECIDED
    depends = verdict((0.0,), (-3 * MARGIN,))
    assert depends.decision is Decision.DEPENDS
    assert "it holds in N=0, linear; it does not hold in N=1, linear" in depends.answer
