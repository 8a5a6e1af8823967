"""The runner: records every finished run, resumes after an interruption, selects experiments."""

import json
import sqlite3

import pytest

from gumbelkit.lab.runner import run_lab

from .fake import FakeExperiment


def _experiments(fail_at=None):
    return {"F1": FakeExperiment("F1"), "F2": FakeExperiment("F2", fail_at=fail_at)}


def test_interrupted_lab_resumes_and_writes_the_same_results(tmp_path, capsys):
    out = tmp_path / "lab"
    interrupted = _experiments(fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_lab(out, interrupted, budget="quick", show_progress=False)
    rows = sqlite3.connect(out / "runs.sqlite").execute(
        "SELECT experiment, key FROM runs ORDER BY experiment, key").fetchall()
    # F1 finished (4 runs); F2 finished seeds 0 and 1 before the interruption at seed 2
    assert [r[0] for r in rows] == ["F1"] * 4 + ["F2"] * 2
    assert "run the same command again to resume" in capsys.readouterr().err

    resumed = _experiments()
    paths = run_lab(out, resumed, budget="quick", show_progress=False)
    assert resumed["F1"].calls == 0 and resumed["F2"].calls == 2  # only the unfinished runs
    assert "reused 6 of 8 finished runs" in capsys.readouterr().err

    fresh = run_lab(tmp_path / "fresh", _experiments(), budget="quick", show_progress=False)
    assert paths["results"].read_text() == fresh["results"].read_text()


def test_a_changed_configuration_does_not_reuse_runs(tmp_path):
    run_lab(tmp_path, _experiments(), show_progress=False)
    again = _experiments()
    run_lab(tmp_path, again, overrides={"threshold": 0.5}, show_progress=False)
    assert again["F1"].calls == 4
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiments"]["F1"]["config"]["threshold"] == 0.5


def test_only_selects_experiments_and_rejects_unknown_ids(tmp_path):
    experiments = _experiments()
    paths = run_lab(tmp_path, experiments, only=["f2"], show_progress=False)
    assert list(json.loads(paths["results"].read_text())["experiments"]) == ["F2"]
    assert experiments["F1"].calls == 0
    with pytest.raises(ValueError, match="unknown experiment"):
        run_lab(tmp_path, experiments, only=["E42"], show_progress=False)


def test_bad_budget_and_device(tmp_path):
    with pytest.raises(ValueError, match="budget"):
        run_lab(tmp_path, _experiments(), budget="huge", show_progress=False)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run_lab(tmp_path, _experiments(), device="cuda", show_progress=False)
