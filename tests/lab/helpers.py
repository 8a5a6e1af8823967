"""Shared checks for the lab's experiments, at their tiny (seconds-long) budget."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from gumbelkit.harness.executors import torch_threads
from gumbelkit.harness.protocol import Experiment, Figure, Table, Verdict
from gumbelkit.harness.report import to_jsonable


def run_tiny(experiment: Experiment, tmp_path: Path, **overrides: object) -> dict:
    """Run every run of the tiny budget (with ``overrides`` of its configuration), then
    summarise, judge, tabulate and draw.

    Checks the shapes the report relies on and returns the summary.
    """
    config = experiment.make_config("tiny", **overrides)
    keys = experiment.runs(config)
    assert keys, "an experiment has at least one run"
    results = []
    with torch_threads(experiment.threads):  # as the runner does
        for key in keys:
            result = experiment.run(config, key, torch.device("cpu"))
            json.dumps(result)  # run records are JSON
            results.append((key, result))
        again = experiment.run(config, keys[0], torch.device("cpu"))
    assert json.dumps(again, sort_keys=True) == json.dumps(results[0][1], sort_keys=True), \
        "a run is deterministic given its key"
    summary = experiment.summarize(config, results)
    json.dumps(to_jsonable(summary), allow_nan=False)  # results.json is strict JSON
    verdicts = experiment.verdicts(summary)
    assert verdicts and all(isinstance(v, Verdict) and v.answer for v in verdicts)
    decided = [c for v in verdicts for c in (v.claims or experiment.claims)]
    assert set(decided) == set(experiment.claims), "every claim gets a verdict"
    assert isinstance(experiment.setup(config), str)
    assert experiment.claims and all(c.quote and c.source for c in experiment.claims)
    for table in experiment.tables(summary):
        assert isinstance(table, Table)
        assert all(len(row) == len(table.columns) for row in table.rows)
    figures = experiment.figures(summary, tmp_path)
    for figure in figures:
        assert isinstance(figure, Figure)
        assert figure.filename.startswith(experiment.id.lower() + "_")
        assert (tmp_path / figure.filename).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return summary
