"""The runner: records every finished run, resumes after an interruption, selects experiments."""

import json
import os
import sqlite3

import numpy as np
import pytest
import torch
from scipy import stats

from gumbelkit.harness.protocol import Claim, Experiment, ExperimentConfig, Verdict
from gumbelkit.harness.runner import corrected_verdicts, run_sweep, select
from gumbelkit.harness.statistics import Decision, mean_interval

from .fake import experiments


def sweep(out, exps, show_progress=False, **fields):
    """Run the fake experiments with configuration fields set on all of them."""
    executor = fields.pop("executor", None)
    chosen = [(e, e.make_config("quick", **fields)) for e in exps.values()]
    return run_sweep(out, chosen, title="fake", executor=executor, show_progress=show_progress)


def recorded(out):
    with sqlite3.connect(out / "runs.sqlite") as db:
        return db.execute("SELECT experiment, key FROM runs ORDER BY experiment, key").fetchall()


def test_interrupted_sweep_resumes_and_writes_the_same_results(tmp_path, capsys):
    out = tmp_path / "sweep"
    first, second = experiments("F1"), experiments("F2")
    sweep(out, first)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while F2's seed 2 runs
        sweep(out, second, interrupt_at=2, driver=os.getpid())
    # F1 finished (4 runs); F2 finished seeds 0 and 1 before the interruption at seed 2
    assert [r[0] for r in recorded(out)] == ["F1"] * 4 + ["F2"] * 2
    assert "run the same command again to resume" in capsys.readouterr().err

    resumed = sweep(out, experiments("F1", "F2"))
    assert (resumed.runs, resumed.reused) == (8, 6)  # only the unfinished runs ran
    assert "reused 6 of 8 finished runs" in capsys.readouterr().err
    fresh = sweep(tmp_path / "fresh", experiments("F1", "F2"))
    assert resumed.paths["results"].read_text() == fresh.paths["results"].read_text()


def test_a_changed_configuration_does_not_reuse_runs(tmp_path):
    sweep(tmp_path, experiments("F1"))
    again = sweep(tmp_path, experiments("F1"), threshold=0.5)
    assert again.reused == 0
    results = json.loads(again.paths["results"].read_text())
    assert results["experiments"]["F1"]["config"]["threshold"] == 0.5
    # a field that only says how runs are made (keyed=False) does not hide the records
    assert sweep(tmp_path, experiments("F1"), threshold=0.5, sleep=0.001).reused == 4


def test_select_keeps_the_order_and_rejects_unknown_ids():
    exps = experiments("F1", "F2", "F3")
    assert [e.id for e in select(exps, ["f3", " F1"])] == ["F1", "F3"]
    assert len(select(exps, None)) == 3
    with pytest.raises(ValueError, match="unknown experiment"):
        select(exps, ["E42"])


def test_bad_device_is_refused_before_any_work(tmp_path):
    exps = experiments("F1")
    chosen = [(e, e.make_config()) for e in exps.values()]
    with pytest.raises(ValueError, match="unknown device|not supported"):
        run_sweep(tmp_path, chosen, title="fake", device="tpu", show_progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            run_sweep(tmp_path, chosen, title="fake", device="cuda", show_progress=False)
    assert not (tmp_path / "runs.sqlite").exists()


def test_verdicts_are_corrected_by_holm_over_the_experiments_claims():
    """Three claims whose one-sample t statistics are fixed: p-values 0.004, 0.02 and 0.04
    (10 values each). Holm at 5%: 0.004 <= 0.05/3 is rejected, then 0.02 <= 0.05/2, then
    0.04 <= 0.05/1; with p = 0.03 for the second instead, 0.03 > 0.025 stops it and the third."""
    def values(p):  # 10 values whose two-sided t test against 0 has p-value p
        base = np.linspace(-1.0, 1.0, 10)
        base = base / base.std(ddof=1)
        return base + stats.t.ppf(1 - p / 2, 9) / np.sqrt(10)

    claims = tuple(Claim(f"claim {i}", f"author {i}") for i in range(3))

    class Three(Experiment):
        id, title, config_class = "H", "holm", ExperimentConfig

        def runs(self, config):
            return []

        def run(self, config, key, device):
            return {}

        def setup(self, config):
            return ""

        def summarize(self, config, results):
            return [mean_interval(values(p)) for p in self.p]

        def verdicts(self, summary):
            return [Verdict(Decision.above(i), "a", claims=(c,))
                    for i, c in zip(summary, claims, strict=True)]

    experiment = Three()
    experiment.p = (0.004, 0.02, 0.04)
    verdicts = corrected_verdicts(experiment, ExperimentConfig(), [],
                                  experiment.summarize(ExperimentConfig(), []))
    assert [v.decision for v in verdicts] == [Decision.YES] * 3
    assert [round(v.level, 4) for v in verdicts] == [0.9833, 0.975, 0.95]
    assert all(v.family == 3 for v in verdicts) and "Holm" in verdicts[0].correction
    experiment.p = (0.004, 0.03, 0.04)
    verdicts = corrected_verdicts(experiment, ExperimentConfig(), [],
                                  experiment.summarize(ExperimentConfig(), []))
    assert [v.decision for v in verdicts] == [Decision.YES, Decision.UNDECIDED,
                                              Decision.UNDECIDED]
    assert [round(v.level, 4) for v in verdicts] == [0.9833, 0.975, 0.975]
