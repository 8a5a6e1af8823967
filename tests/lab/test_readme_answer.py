"""The README's answer is generated: it is what the recorded lab results in benchmarks/lab/ give,
and those are a lab run's own files."""

import json
from pathlib import Path

from gumbelkit.lab import EXPERIMENTS
from gumbelkit.lab.answer import README_END, README_START, readme_block

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "benchmarks" / "lab"


def test_the_readme_answer_is_generated_from_the_recorded_results():
    results = json.loads((RECORDED / "results.json").read_text())
    run = json.loads((RECORDED / "run.json").read_text())
    text = (ROOT / "README.md").read_text()
    start = text.index(README_START)
    block = text[start:text.index(README_END) + len(README_END)]
    assert block == readme_block(results, run, "lab-report/report.md")
    assert set(results["experiments"]) == set(EXPERIMENTS)  # the whole lab, as registered
    assert run["command"].startswith("gumbelkit lab") and "--smoke" not in run["command"]
