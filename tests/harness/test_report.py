"""The report: a valid, self-contained HTML file; strict JSON; every table as CSV."""

import csv
import json
import math
from html.parser import HTMLParser

import pytest

from gumbelkit.harness.report import to_jsonable
from gumbelkit.harness.statistics import Interval

from .fake import experiments
from .test_runner import sweep


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


def test_report_is_self_contained_html_with_a_section_per_experiment(tmp_path):
    outcome = sweep(tmp_path, experiments("F1", "F2"))
    text = outcome.paths["html"].read_text()
    assert text.startswith("<!DOCTYPE html>")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, "tags are balanced"
    for tag, ref in parser.refs:  # nothing is fetched: images inline, links are anchors
        assert ref.startswith(("data:image/png;base64,", "#")), (tag, ref)
    assert sum(1 for tag, _ in parser.refs if tag == "img") == 2
    assert {"f1", "f2"} <= parser.ids
    assert "Verdict: the claim holds." in text
    markdown = outcome.paths["markdown"].read_text()
    assert "## F1. a fake claim" in markdown and "> the mean is positive" in markdown
    assert (tmp_path / "figures" / "f1_line.png").exists()


def test_tables_are_csv_with_intervals_in_three_columns(tmp_path):
    outcome = sweep(tmp_path, experiments("F1"))
    with (tmp_path / "tables" / "f1-1.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["mean", "mean_low", "mean_high"]
    mean = outcome.sections[0].summary["mean"]
    assert [float(v) for v in rows[1]] == [mean.estimate, mean.low, mean.high]


def test_results_are_strict_json():
    """Non-finite numbers become null, intervals and enums plain values."""
    data = to_jsonable({"a": math.inf, "b": [float("nan"), 1.0], "c": Interval(1.0, 0.5, 2.0, 3),
                        (1, 2): (3, 4)})
    text = json.dumps(data, allow_nan=False)

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    assert json.loads(text, parse_constant=refuse) == {
        "a": None, "b": [None, 1.0], "c": {"estimate": 1.0, "low": 0.5, "high": 2.0, "n": 3},
        "(1, 2)": [3, 4]}
    with pytest.raises(ValueError):
        json.dumps(float("nan"), allow_nan=False)
