"""The ``gumbelkit compare`` command and its problems."""

import json
import math

import pytest
import torch

import gumbelkit as gk
from gumbelkit.cli import main
from gumbelkit.workloads.problems import PROBLEMS, BernoulliProblem, SubsetProblem, make_problem

from .commands import strict_json

CATEGORICAL = sorted(name for name in PROBLEMS
                     if not isinstance(make_problem(name), SubsetProblem | BernoulliProblem))


@pytest.mark.parametrize("problem", CATEGORICAL)
def test_compare_prints_a_row_per_estimator(problem, capsys, tmp_path):
    out = tmp_path / "rows.json"
    code = main(["compare", "--problem", problem, "--draws", "5", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    for name in gk.ESTIMATORS:
        assert f"| {name} |" in table
    rows = strict_json(out.read_text())["rows"]
    assert [row["estimator"] for row in rows] == list(gk.ESTIMATORS)
    assert next(r for r in rows if r["estimator"] == "rloo")["n_samples"] == 2


def test_compare_json_is_strict_with_null_for_a_number_that_is_not_finite(capsys, tmp_path):
    """softmax is noise-free: its variance is 0 and its snr infinite, which strict JSON cannot
    hold; the file says null, as --json's help states, and the table still prints inf."""
    out = tmp_path / "rows.json"
    assert main(["compare", "--estimators", "softmax,st", "--draws", "4", "--json",
                 str(out)]) == 0
    assert "| inf |" in capsys.readouterr().out
    text = out.read_text()
    with pytest.raises(ValueError, match="not strict JSON: Infinity"):
        strict_json(text.replace("null", "Infinity", 1))  # the reader does refuse the token
    softmax, st = strict_json(text)["rows"]
    assert softmax["variance"] == 0 and softmax["snr"] is None
    assert math.isfinite(st["snr"]) and st["variance"] > 0
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "null stands for a number that is not finite" in help_text


def test_compare_subset_and_options(capsys):
    assert main(["compare", "--estimators", "gr,gst", "--k", "3", "--gap", "0.5",
                 "--draws", "3", "--tau", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "| gr |" in out and "| gst |" in out and "| st |" not in out
    assert "tau = 0.5" in out and "gr k = 3" in out


def test_compare_rejects_bad_input(capsys):
    assert main(["compare", "--estimators", "nope", "--draws", "3"]) == 2
    assert "unknown estimator 'nope'" in capsys.readouterr().err
    assert main(["compare", "--tau", "0", "--draws", "3", "--estimators", "st"]) == 2
    assert "tau must be" in capsys.readouterr().err


def test_poly_problem_matches_its_closed_form():
    """E f = (1/L) sum_l [p_l |1 - 0.45|^p + (1 - p_l) 0.45^p], p_l = P(category 0)."""
    for power in (1.5, 2.0, 3.0):
        problem = make_problem("poly", seed=1, power=power)
        p0 = torch.softmax(problem.logits, -1)[:, 0]
        closed = (p0 * 0.55**power + (1 - p0) * 0.45**power).mean()
        assert torch.allclose(gk.exact.expectation(problem.f, problem.logits), closed)


def test_unknown_problem():
    with pytest.raises(ValueError, match="known problems"):
        make_problem("nope")


def test_progress_without_tqdm_prints_plain_lines(monkeypatch, capsys):
    """The core install has no tqdm (the lab extra brings it): compare still shows progress."""
    import sys

    from gumbelkit.cli import progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `from tqdm import tqdm` fail
    assert list(progress(["a", "b"], "estimators")) == ["a", "b"]
    assert capsys.readouterr().err.splitlines() == ["estimators [1/2] a", "estimators [2/2] b"]


@pytest.mark.parametrize("problem,registry", [("subset", gk.SUBSET_ESTIMATORS),
                                              ("bernoulli", gk.bernoulli.ESTIMATORS)])
def test_compare_subset_and_bernoulli_problems(problem, registry, capsys, tmp_path):
    out = tmp_path / "rows.json"
    assert main(["compare", "--problem", problem, "--draws", "5", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    for name in registry:
        assert f"| {name} |" in table
    rows = json.loads(out.read_text())["rows"]
    assert [row["estimator"] for row in rows] == list(registry)
    assert next(r for r in rows if r["estimator"] == "rloo")["n_samples"] == 2
    if problem == "subset":
        assert {row["law"] for row in rows} == {"without-replacement", "conditional-poisson"}
    assert main(["compare", "--problem", problem, "--draws", "3", "--estimators", "st-gs"]) == 2
    assert "unknown" in capsys.readouterr().err


def test_subset_and_bernoulli_problems_are_enumerable():
    # Unbiased estimators' bias within 4.5 bias_se of 0 at 400 draws (exact.compare's noise floor).
    subset = make_problem("subset")
    rows = gk.exact.subset_compare(subset.f, subset.logits, subset.k, ["rloo"], n_draws=400,
                                   generator=torch.Generator().manual_seed(0))
    assert rows[0]["bias"] < 4.5 * rows[0]["bias_se"]
    binary = make_problem("bernoulli")
    rows = gk.exact.bernoulli_compare(binary.f, binary.logits, ["disarm", "rloo"], n_draws=400,
                                      generator=torch.Generator().manual_seed(0))
    assert all(row["bias"] < 4.5 * row["bias_se"] for row in rows)


@pytest.mark.parametrize("command", [["lab"], ["bench", "poly"], ["bench", "kernels"]])
def test_the_help_says_what_null_means_in_the_json_written(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "null stands for a number that is not finite" in " ".join(
        capsys.readouterr().out.split())
