"""E4: smoke test at the tiny budget, and the verdict both ways (and inconclusive)."""

from __future__ import annotations

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.answer import run_lab
from gumbelkit.lab.e4_vae import EXPERIMENT

from .helpers import run_tiny

NOISY = ("gs", "st-gs", "reinmax", "gr")


def test_e4_runs_end_to_end(tmp_path, fashion_dir):
    summary = run_tiny(EXPERIMENT, tmp_path, data_dir=str(fashion_dir))
    assert set(summary["by_estimator"]) == {"softmax", *NOISY}
    assert set(summary["softmax_minus"]) == set(NOISY)
    entry = summary["by_estimator"]["gs"]
    assert {"tau", "discrete_elbo", "iw_bound", "relaxed", "kl"} <= set(entry)
    assert entry["discrete_elbo"].n == 2
    assert len(summary["generated"]["softmax"]) == 4
    assert len(summary["generated"]["softmax"][0]) == 64  # the 8x8 test images


def test_without_the_data_e4_is_reported_as_not_run(tmp_path):
    outcome = run_lab(tmp_path, {"E4": EXPERIMENT}, budget="tiny",
                      overrides={"data_dir": str(tmp_path / "nowhere")}, show_progress=False)
    (section,) = outcome.sections
    assert "dataset-fashion-mnist" in section.not_run and not section.verdicts
    assert outcome.runs == 0
    text = outcome.paths["markdown"].read_text()
    assert "**Not run.**" in text and "| **not run** |" in text


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
