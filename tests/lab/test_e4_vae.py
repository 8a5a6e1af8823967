"""E4: smoke test at the tiny budget, and the verdict both ways (and inconclusive)."""

from __future__ import annotations

import torch

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.e4_vae import EXPERIMENT

from .helpers import run_tiny

NOISY = ("gs", "st-gs", "reinmax", "gr")


def test_e4_runs_end_to_end(tmp_path):
    summary = run_tiny(EXPERIMENT, tmp_path)
    assert set(summary["by_estimator"]) == {"softmax", *NOISY}
    assert set(summary["softmax_minus"]) == set(NOISY)
    entry = summary["by_estimator"]["gs"]
    assert {"tau", "discrete_elbo", "iw_bound", "relaxed", "kl"} <= set(entry)
    assert entry["discrete_elbo"].n == 2
    assert len(summary["generated"]["softmax"]) == 4
    assert len(summary["generated"]["softmax"][0]) == 784 or summary["data"].startswith("scikit")


def _interval(estimate: float, half_width: float = 2.0, n: int = 4) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, n)


def _summary(elbo_gap: float, iw_gap: float) -> dict:
    """softmax minus every noisy estimator: elbo_gap and iw_gap nats (intervals +-2)."""
    entry = {"tau": 1.0, "discrete_elbo": _interval(300.0), "iw_bound": _interval(280.0),
             "relaxed": _interval(290.0), "kl": _interval(10.0)}
    softmax = {**entry, "discrete_elbo": _interval(300.0 + elbo_gap),
               "iw_bound": _interval(280.0 + iw_gap), "relaxed": _interval(251.5)}
    return {
        "data": "Fashion-MNIST", "seeds": 4, "test_size": 500, "iw_samples": 50,
        "mean_image_nll": 386.4, "image_shape": [28, 28],
        "by_estimator": {"softmax": softmax, **{n: entry for n in NOISY}},
        "softmax_minus": {n: {"discrete_elbo": _interval(elbo_gap),
                              "iw_bound": _interval(iw_gap)} for n in NOISY},
        "generated": {},
    }


def test_e4_verdict_holds_when_softmax_is_worse_on_both_bounds():
    verdict = EXPERIMENT.verdict(_summary(elbo_gap=137.25, iw_gap=15.5))
    assert verdict.decision is Decision.YES
    assert "437" in verdict.answer and "137" in verdict.answer and "15.5" in verdict.answer
    assert "251" in verdict.answer and "Fashion-MNIST" in verdict.answer
    assert "4 of 4 intervals above 0" in verdict.answer


def test_e4_verdict_fails_when_softmax_is_better():
    verdict = EXPERIMENT.verdict(_summary(elbo_gap=-12.0, iw_gap=-6.0))
    assert verdict.decision is Decision.NO
    assert "significantly better" in verdict.answer and "-12" in verdict.answer
    assert EXPERIMENT.verdict(_summary(elbo_gap=140.0, iw_gap=-6.0)).decision is Decision.NO


def test_e4_verdict_inconclusive_when_generation_does_not_separate():
    verdict = EXPERIMENT.verdict(_summary(elbo_gap=140.0, iw_gap=0.5))
    assert verdict.decision is Decision.UNDECIDED
    assert "not significantly worse" in verdict.answer and "0.5" in verdict.answer


def test_e4_falls_back_to_digits_and_says_so(tmp_path, monkeypatch):
    from gumbelkit.workloads import data

    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path / "absent")
    config = EXPERIMENT.make_config("tiny")
    result = EXPERIMENT.run(config, {"seed": 0, "estimator": "st-gs", "tau": 1.0},
                            torch.device("cpu"))
    assert "fallback" in result["data"] and "digits" in result["data"]
    assert result["image_shape"] == [8, 8] and len(result["generated"][0]) == 64
    assert "digits" in EXPERIMENT.setup(config)
