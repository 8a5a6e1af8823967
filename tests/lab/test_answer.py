"""The lab's report: a table of every claim with its verdict and a link to the evidence, the
claims grouped by verdict, and the README's block rebuilt from results.json alone."""

import json
import re

from gumbelkit.harness.protocol import Claim, Verdict
from gumbelkit.harness.statistics import Decision
from gumbelkit.lab.answer import README_END, README_START, readme_block, run_lab

from ..harness.fake import FakeExperiment, experiments


class TwoAuthors(FakeExperiment):
    """Two claims of two authors, each with its own verdict."""

    claims = (Claim("the mean is positive", "Alice, answer 1", "The mean is positive."),
              Claim("the mean is above a million", "Bob, a comment", "The mean is huge."))

    def verdicts(self, summary):
        mean = summary["mean"]
        return [Verdict(Decision.above(mean), f"mean {mean.format()}", number=mean.format(),
                        claims=self.claims[:1]),
                Verdict(Decision.above(mean, 1e6), "far below", number="1e6",
                        claims=self.claims[1:])]


def test_every_claim_has_a_row_a_verdict_and_a_link(tmp_path):
    exps = {**experiments("F1"), "F2": TwoAuthors("F2")}
    outcome = run_lab(tmp_path, exps, show_progress=False)
    html = outcome.paths["html"].read_text()
    table = html.split('<table class="claims">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="claim">(.*?)</tr>', table)
    assert len(rows) == 3  # one per claim
    assert [re.search(r'href="#(\w+)"', row).group(1) for row in rows] == ["f1", "f2", "f2"]
    assert "Alice, answer 1" in rows[1] and 'class="badge holds"' in rows[1]
    assert "Bob, a comment" in rows[2] and 'class="badge does-not-hold"' in rows[2]
    assert "Verdict on the claim of Bob, a comment: it does not hold." in html
    markdown = outcome.paths["markdown"].read_text()
    answer = markdown.split("## The answer", 1)[1].split("The evidence", 1)[0]
    right = answer.split("The thread is right", 1)[1].split("The thread is wrong", 1)[0]
    assert "[F1](#f1) The mean is positive." in right and "[F2](#f2) The mean is positive." in right
    assert "[F2](#f2) The mean is huge." in answer.split("The thread is wrong", 1)[1]
    assert "From a practical and theoretical perspective" in markdown  # the question, quoted


def test_the_readme_block_is_rebuilt_from_the_results_alone(tmp_path):
    outcome = run_lab(tmp_path, {**experiments("F1"), "F2": TwoAuthors("F2")},
                      show_progress=False)
    block = readme_block(json.loads(outcome.paths["results"].read_text()),
                         json.loads(outcome.paths["run"].read_text()), "lab-report/report.md")
    assert block.startswith(README_START) and block.endswith(README_END)
    assert "| Bob, a comment | the mean is above a million | **does not hold** | 1e6 | " \
           "[F2](lab-report/report.md#f2) |" in block
    assert "- [F2](lab-report/report.md#f2) The mean is huge." in block


def test_settings_and_overrides_reach_the_configurations(tmp_path):
    outcome = run_lab(tmp_path, experiments("F1", "F2"), settings={"F2": {"seeds": 2}},
                      overrides={"threshold": 0.25, "no_such_field": 1}, show_progress=False)
    configs = {s.id: s.config for s in outcome.sections}
    assert (configs["F1"]["seeds"], configs["F2"]["seeds"]) == (4, 2)
    assert configs["F1"]["threshold"] == configs["F2"]["threshold"] == 0.25
