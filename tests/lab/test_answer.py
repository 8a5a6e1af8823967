"""The lab's report: the answer groups every experiment by its verdict and links to it."""

import re

from gumbelkit.lab.answer import run_lab

from ..harness.fake import experiments


def test_the_answer_names_every_experiment_and_links_to_its_evidence(tmp_path):
    outcome = run_lab(tmp_path, experiments("F1", "F2"), show_progress=False)
    text = outcome.paths["html"].read_text()
    answer = text.split('<h2 id="answer">', 1)[1].split("The evidence", 1)[0]
    assert re.findall(r'href="(#\w+)"', answer) == ["#f1", "#f2"]
    assert "The mean is positive." in answer and "The thread is right" in answer
    assert "From a practical and theoretical perspective" in text  # the question, quoted
    markdown = outcome.paths["markdown"].read_text()
    answer = markdown.split("## The answer", 1)[1].split("The evidence", 1)[0]
    assert "[F1](#f1)" in answer and "[F2](#f2)" in answer


def test_settings_and_overrides_reach_the_configurations(tmp_path):
    outcome = run_lab(tmp_path, experiments("F1", "F2"), settings={"F2": {"seeds": 2}},
                      overrides={"threshold": 0.25, "no_such_field": 1}, show_progress=False)
    configs = {s.id: s.config for s in outcome.sections}
    assert (configs["F1"]["seeds"], configs["F2"]["seeds"]) == (4, 2)
    assert configs["F1"]["threshold"] == configs["F2"]["threshold"] == 0.25
