"""The README's answer is generated: it is what the recorded lab results in benchmarks/lab/ (and,
for the comparison of the budgets, benchmarks/lab-full/) give, and those are lab runs' own
files."""

import json
from pathlib import Path

import pytest

from gumbelkit.lab import EXPERIMENTS
from gumbelkit.lab.answer import (
    BUDGETS_END,
    BUDGETS_START,
    README_END,
    README_START,
    budgets_block,
    read_outcome,
    readme_block,
)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "benchmarks" / "lab"
RECORDED_FULL = ROOT / "benchmarks" / "lab-full"


def readme_between(start: str, end: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index(start):text.index(end) + len(end)]


def test_the_readme_answer_is_generated_from_the_recorded_results():
    results, run = read_outcome(RECORDED)
    assert readme_between(README_START, README_END) == readme_block(results, run,
                                                                    "lab-report/report.md")
    assert set(results["experiments"]) == set(EXPERIMENTS)  # the whole lab, as registered
    assert run["command"].startswith("gumbelkit lab") and "--smoke" not in run["command"]


def test_the_readme_comparison_of_the_budgets_is_generated_from_both_recorded_runs():
    results, _ = read_outcome(RECORDED)
    full_results, full_run = read_outcome(RECORDED_FULL)
    assert readme_between(BUDGETS_START, BUDGETS_END) == budgets_block(results, full_results,
                                                                       full_run)
    assert set(full_results["experiments"]) == set(EXPERIMENTS)
    assert "--full" in full_run["command"].split() and full_run["reused"] == 0


@pytest.mark.parametrize("changed", [False, True])
def test_the_comparison_counts_the_claims_whose_verdict_is_the_same(changed):
    results, _ = read_outcome(RECORDED)
    full = json.loads(json.dumps(results))
    claims = sum(len(s["claims"]) for s in results["experiments"].values())
    if changed:  # E1's first verdict (it decides one claim), flipped
        verdict = full["experiments"]["E1"]["verdicts"][0]
        assert len(verdict["claims"]) == 1
        verdict["decision"] = "holds" if verdict["decision"] == "does not hold" else "does not hold"
    block = budgets_block(results, full, {"command": "gumbelkit lab --full"})
    assert f"{claims - changed} of {claims} claims have the same verdict" in block
