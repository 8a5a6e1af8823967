"""E4: smoke test at the tiny budget, the choice of tau on validation images, and the verdict every
way it can come out (holds, does not hold, inconclusive, depends on the latent code)."""

from __future__ import annotations

import pytest
import torch

from gumbelkit.harness.statistics import Decision, Interval
from gumbelkit.lab.answer import run_lab
from gumbelkit.lab.e4_vae import EXPERIMENT, METRICS
from gumbelkit.workloads.vae import code_shape

from .helpers import run_tiny


def test_e4_runs_end_to_end(tmp_path, fashion_dir):
    summary = run_tiny(EXPERIMENT, tmp_path, data_dir=str(fashion_dir))
    assert set(summary["cells"]) == {f"{code}, {n} steps" for code in ("4x4", "2x2")
                                     for n in (5, 10)}  # codes x training lengths
    cell = summary["cells"]["4x4, 10 steps"]
    assert set(cell["by_estimator"]) == {"softmax", "gs"} and set(cell["softmax_minus"]) == {"gs"}
    entry = cell["by_estimator"]["gs"]
    assert {"tau", "discrete_elbo", "iw_bound", "relaxed", "kl"} <= set(entry)
    assert entry["discrete_elbo"].n == 2 and entry["tau"] in (0.5, 1.0)
    assert len(cell["generated"]["softmax"]) == 4
    assert len(cell["generated"]["softmax"][0]) == 64  # the 8x8 test images


def test_without_the_data_e4_is_reported_as_not_run(tmp_path):
    outcome = run_lab(tmp_path, {"E4": EXPERIMENT}, budget="tiny",
                      overrides={"data_dir": str(tmp_path / "nowhere")}, show_progress=False)
    (section,) = outcome.sections
    assert "dataset-fashion-mnist" in section.not_run and not section.verdicts
    assert outcome.runs == 0
    text = outcome.paths["markdown"].read_text()
    assert "**Not run.**" in text and "| **not run** |" in text


def test_validation_images_that_overlap_the_test_images_are_refused(tmp_path, fashion_dir):
    config = EXPERIMENT.make_config("tiny", data_dir=str(fashion_dir), validation_size=21)
    key = EXPERIMENT.runs(config)[0]
    with pytest.raises(ValueError, match="overlap the test images"):
        EXPERIMENT.run(config, key, torch.device("cpu"))


def test_codes_are_checked():
    assert code_shape("20x10") == (20, 10)
    for bad in ("20", "0x4", "ax4", "2x3x4"):
        with pytest.raises(ValueError, match="codes"):
            EXPERIMENT.check(EXPERIMENT.make_config("tiny", codes=(bad,)))
    with pytest.raises(ValueError, match="softmax"):
        EXPERIMENT.check(EXPERIMENT.make_config("tiny", estimators=("gs", "st-gs")))


def test_each_tau_is_chosen_on_the_validation_images_not_the_test_images():
    """Validation favours tau=1 for every estimator, the test images tau=0.5: tau=1 is shown."""
    config = EXPERIMENT.make_config("tiny", codes=("4x4",))
    results = []
    for key in EXPERIMENT.runs(config):
        test = 100.0 if key["tau"] == 0.5 else 200.0
        result = {m: test + key["seed"] for m in METRICS}
        result.update(validation_elbo=300.0 if key["tau"] == 0.5 else 250.0, data="d",
                      image_shape=[2, 2], mean_image_nll=1.0, generated=[[0, 0, 0, 0]])
        results.append((key, result))
    cell = EXPERIMENT.summarize(config, results)["cells"]["4x4, 10 steps"]
    assert {e["tau"] for e in cell["by_estimator"].values()} == {1.0}
    assert cell["by_estimator"]["gs"]["discrete_elbo"].estimate == pytest.approx(200.5)


def _interval(estimate: float, half_width: float = 2.0, n: int = 10) -> Interval:
    return Interval(estimate, estimate - half_width, estimate + half_width, n)


def _cell(elbo_gap: float, iw_gap: float) -> dict:
    """softmax minus gs: elbo_gap and iw_gap nats (intervals +-2)."""
    entry = {"tau": 1.0, "discrete_elbo": _interval(80.0), "iw_bound": _interval(76.0),
             "relaxed": _interval(79.0), "kl": _interval(3.0)}
    softmax = {**entry, "tau": 0.5, "discrete_elbo": _interval(80.0 + elbo_gap),
               "iw_bound": _interval(76.0 + iw_gap), "relaxed": _interval(68.25)}
    return {"by_estimator": {"softmax": softmax, "gs": entry},
            "softmax_minus": {"gs": {"discrete_elbo": _interval(elbo_gap),
                                     "iw_bound": _interval(iw_gap)}},
            "generated": {}}


def _summary(**cells: tuple[float, float]) -> dict:
    return {"data": "Fashion-MNIST", "seeds": 10, "steps": [300], "validation_size": 500,
            "test_size": 500, "iw_samples": 50, "mean_image_nll": 386.4, "image_shape": [14, 14],
            "cells": {code.replace("c", ""): _cell(*gaps) for code, gaps in cells.items()}}


def test_e4_verdict_holds_when_softmax_is_worse_on_both_bounds_for_every_code():
    verdict = EXPERIMENT.verdict(_summary(c8x4=(90.5, 15.5), c16x2=(60.0, 4.5)))
    assert verdict.decision is Decision.YES
    assert "in every cell of the grid" in verdict.answer and "training steps" in verdict.answer
    assert "90.5" in verdict.answer and "15.5" in verdict.answer and "68.2" in verdict.answer
    assert "16x2: softmax" in verdict.answer and "tau=0.5" in verdict.answer
    assert verdict.number.startswith("8x4, softmax minus gs")


def test_e4_verdict_fails_when_softmax_is_better():
    verdict = EXPERIMENT.verdict(_summary(c8x4=(-12.0, -6.0), c16x2=(90.0, -6.0)))
    assert verdict.decision is Decision.NO
    assert "significantly better" in verdict.answer and "-12" in verdict.answer


def test_e4_verdict_inconclusive_when_generation_does_not_separate():
    verdict = EXPERIMENT.verdict(_summary(c8x4=(90.0, 0.5), c16x2=(90.0, 0.25)))
    assert verdict.decision is Decision.UNDECIDED
    assert "not significantly worse" in verdict.answer and "0.5" in verdict.answer


def test_e4_verdict_depends_on_the_latent_code():
    verdict = EXPERIMENT.verdict(_summary(c8x4=(90.0, 15.5), c16x2=(90.0, -6.0)))
    assert verdict.decision is Decision.DEPENDS
    assert "it holds in 8x4; it does not hold in 16x2" in verdict.answer
