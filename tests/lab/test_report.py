"""The report: a valid, self-contained HTML file whose answer names every experiment."""

import re
from html.parser import HTMLParser

from gumbelkit.lab.runner import run_lab

from .fake import FakeExperiment


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.refs, self.ids = [], [], [], set()

    VOID = {"meta", "img", "br", "link", "input", "hr"}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("src", "href"):
            if name in attrs:
                self.refs.append((tag, attrs[name]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_report_is_self_contained_html_and_answers_with_every_experiment(tmp_path):
    experiments = {"F1": FakeExperiment("F1"), "F2": FakeExperiment("F2")}
    paths = run_lab(tmp_path, experiments, show_progress=False)
    text = paths["html"].read_text()
    assert text.startswith("<!DOCTYPE html>")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, "tags are balanced"
    for tag, ref in parser.refs:  # nothing is fetched: images inline, links are anchors
        assert ref.startswith(("data:image/png;base64,", "#")), (tag, ref)
    assert sum(1 for tag, _ in parser.refs if tag == "img") == 2
    answer = text.split('<h2 id="answer">', 1)[1].split("The evidence", 1)[0]
    assert re.findall(r'href="(#\w+)"', answer) == ["#f1", "#f2"]
    assert "The mean is positive." in answer and "The thread is right" in answer
    assert {"f1", "f2"} <= parser.ids

    markdown = paths["markdown"].read_text()
    answer = markdown.split("## The answer", 1)[1].split("### The evidence", 1)[0]
    assert "[F1](#f1)" in answer and "[F2](#f2)" in answer
    assert (tmp_path / "figures" / "f1_line.png").exists()
