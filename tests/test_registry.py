"""The registry's metadata (issue 11, item 7): every estimator carries it, its option specs check
their defaults, the README's estimator table agrees with it row by row, and ``gumbelkit compare``
takes each estimator's options from it (``--option NAME.OPTION=VALUE``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import gumbelkit as gk
from gumbelkit.cli import main
from gumbelkit.estimators import Option

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("name", list(gk.ESTIMATORS))
def test_every_estimator_carries_its_metadata(name):
    est = gk.ESTIMATORS[name]
    assert est.name == name
    assert est.forward in {"soft", "one-hot", "mode"}
    assert est.noise in {"none", "gumbel", "sampling"}
    assert isinstance(est.pathwise, bool) and isinstance(est.uses_tau, bool)
    assert est.reference and est.gradient and est.citation
    assert est.min_samples >= 1
    assert all(isinstance(spec, Option) and spec.help for spec in est.option_specs)
    # every default passes its own check, and check_options fills them all in
    assert est.check_options({}) == {spec.name: spec.check(spec.default, "x")
                                     for spec in est.option_specs}
    assert est.defaults == {spec.name: spec.default for spec in est.option_specs}


def readme_rows():
    """The rows of the README's categorical estimator table (the first table with that header;
    the subset and Bernoulli estimators have a table of their own)."""
    text = README.read_text().split("| name | forward value | gradient | noise | reference |", 1)[1]
    text = text.split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \| (\w+) \| (.*?) \|$", text, re.M)
    return {name: (forward, gradient, noise, reference)
            for name, forward, gradient, noise, reference in rows}


def test_readme_estimator_table_is_the_registry():
    rows = readme_rows()
    assert list(rows) == list(gk.ESTIMATORS)  # every estimator, in the registry's order
    starts = {"soft": "softmax(", "one-hot": "one-hot sample", "mode": "one-hot(argmax"}
    for name, (forward, gradient, noise, reference) in rows.items():
        est = gk.ESTIMATORS[name]
        assert forward.startswith(starts[est.forward]), (name, forward)
        assert gradient == est.gradient, name
        assert noise.lower() == est.noise, name
        assert reference == est.citation, name


def test_citation_shortens_three_or_more_authors():
    assert gk.ESTIMATORS["gr"].citation == "Paulus et al. 2021"
    assert gk.ESTIMATORS["gs"].citation == "Jang et al. 2017; Maddison et al. 2017"
    assert gk.ESTIMATORS["zgr"].citation == "Shekhovtsov 2023"


# --------------------------------------------------------------------------------------------
# gumbelkit compare: options from the registry


def test_compare_option_sets_one_estimators_option(capsys, tmp_path):
    out = tmp_path / "rows.json"
    assert main(["compare", "--estimators", "gr,dst-gs,rebar", "--draws", "3",
                 "--option", "gr.k=3", "--option", "dst-gs.tau_forward=2",
                 "--option", "rebar.temperature=0.25", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for part in ("gr k = 3", "dst-gs tau_forward = 2", "rebar temperature = 0.25",
                 "rebar eta = 1"):
        assert part in text
    assert [r["estimator"] for r in json.loads(out.read_text())["rows"]] == \
        ["gr", "dst-gs", "rebar"]


def test_compare_option_changes_the_estimate(tmp_path):
    # the option reaches the estimator: dst-gs at tau_forward = 3 samples another law, so its
    # gradient statistics differ from the defaults' (same seed)
    def rows(*extra):
        out = tmp_path / "rows.json"
        assert main(["compare", "--estimators", "dst-gs", "--draws", "20", "--json", str(out),
                     *extra]) == 0
        return json.loads(out.read_text())["rows"][0]

    assert rows()["mse"] != rows("--option", "dst-gs.tau_forward=3")["mse"]


def test_compare_min_samples_and_tau_come_from_the_registry(capsys):
    assert main(["compare", "--estimators", "zgr,rloo,reinmax", "--draws", "3"]) == 0
    text = capsys.readouterr().out
    assert "rloo: at least 2" in text and "not used by zgr, rloo" in text
    assert f"advised tau: reinmax: {gk.ESTIMATORS['reinmax'].advised_tau}" in text


@pytest.mark.parametrize(
    "option,match",
    [("gr.k", "ESTIMATOR.OPTION=VALUE"), ("k=3", "ESTIMATOR.OPTION=VALUE"),
     ("nope.k=3", "gr.k"), ("gr.gap=1", "gst.gap"), ("relax.surrogate=x", "relax.eta"),
     ("gst.gap=1", "not among"), ("gr.k=two", "invalid literal"), ("gr.k=0", "integer >= 1")],
)
def test_compare_rejects_bad_options(option, match, capsys):
    assert main(["compare", "--estimators", "gr", "--draws", "3", "--option", option]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_compare_help_lists_the_registrys_options(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    # argparse wraps lines at hyphens ("dst-" / "gs"): join them again
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
    for name, est in gk.ESTIMATORS.items():
        assert name in text
        for spec in est.option_specs:
            if spec.parse is not None:
                assert f"{name}.{spec.name}" in text


def test_sample_with_registry_metadata_is_consistent():
    # forward == "soft" estimators give points of the simplex, the others exact one-hot values
    logits = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    for name, est in gk.ESTIMATORS.items():
        if not est.pathwise:
            continue
        s = gk.sample(logits, name, 0.5, generator=torch.Generator().manual_seed(1))
        one_hot = bool(((s == 0) | (s == 1)).all())
        assert one_hot == (est.forward != "soft"), name
