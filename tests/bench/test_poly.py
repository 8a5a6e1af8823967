"""The polynomial programming benchmark: exact loss, per-seed vectorisation, end to end, resume."""

import csv
import json

import pytest
import torch

import gumbelkit as gk
from gumbelkit.bench import poly
from gumbelkit.cli import main
from gumbelkit.harness.executors import torch_threads
from gumbelkit.harness.runner import run_sweep
from gumbelkit.workloads.problems import make_problem

OPTIONS = {"gr": {"k": 4}}  # a small k keeps the tests fast; the benchmark uses 100

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    """Many tiny operations: one thread, as the benchmark runs (20x faster than 2 threads on a
    loaded 2-core machine)."""
    with torch_threads(poly.EXPERIMENT.threads):
        yield


def gradient(f, theta, estimator, seed, n_samples=8):
    """The estimator's gradient of sum(gk.expectation(f, theta)) for a fixed generator seed."""
    theta = theta.detach().clone().requires_grad_()
    value = gk.expectation(f, theta, estimator, n_samples=n_samples,
                           generator=torch.Generator().manual_seed(seed),
                           **OPTIONS.get(estimator, {}))
    value.sum().backward()
    return theta.grad


@pytest.mark.parametrize("power", poly.POWERS)
def test_exact_loss_matches_enumeration(power):
    """0.45^p + exact_gap is E[f] enumerated over the 2^6 configurations, row by row."""
    theta = torch.randn(3, 6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = make_problem("poly", power=power).f
    enumerated = torch.stack([gk.exact.expectation(f, row) for row in theta])
    closed = poly.optimum(power) + poly.exact_gap(theta, power)
    torch.testing.assert_close(closed, enumerated, rtol=1e-12, atol=1e-12)
    # the minimum 0.45^p, at P(z_i = 1) = 0
    assert poly.exact_gap(torch.tensor([[[-50.0, 50.0]]], dtype=torch.float64), power) < 1e-40


def test_seed_losses_is_the_problem_loss_row_by_row():
    samples = torch.rand(5, 3, 7, 2, generator=torch.Generator().manual_seed(1))
    f = make_problem("poly", power=1.5).f
    values = poly.seed_losses(1.5)(samples)
    assert values.shape == (5, 3)
    torch.testing.assert_close(values, torch.stack([f(samples[:, s]) for s in range(3)], 1))


@pytest.mark.parametrize("estimator", poly.ESTIMATORS)
def test_one_seed_is_the_single_run(estimator):
    """With one seed, the per-row run draws the same noise and gives the same gradient as a plain
    run of the (L, 2) problem with a scalar f."""
    theta = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    single = gradient(make_problem("poly", power=2.0).f, theta, estimator, seed=3)
    batched = gradient(poly.seed_losses(2.0), theta.unsqueeze(0), estimator, seed=3)
    torch.testing.assert_close(batched[0], single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("estimator", poly.ESTIMATORS)
def test_a_seeds_gradient_ignores_the_other_seeds(estimator):
    """Changing the other rows' logits leaves row 0's gradient unchanged, bit for bit."""
    draw = torch.Generator().manual_seed(4)
    theta = torch.randn(3, 5, 2, generator=draw, dtype=torch.float64)
    other = theta.clone()
    other[1:] = torch.randn(2, 5, 2, generator=draw, dtype=torch.float64)
    f = poly.seed_losses(3.0)
    assert torch.equal(gradient(f, theta, estimator, seed=5)[0],
                       gradient(f, other, estimator, seed=5)[0])


def test_a_scalar_f_would_couple_the_seeds():
    """The check above has power: with one scalar loss summed over seeds, REINFORCE weights each
    seed's score by every seed's loss."""
    draw = torch.Generator().manual_seed(4)
    theta = torch.randn(3, 5, 2, generator=draw, dtype=torch.float64)
    other = theta.clone()
    other[1:] = torch.randn(2, 5, 2, generator=draw, dtype=torch.float64)

    def total(samples):
        return poly.seed_losses(3.0)(samples).sum(1)

    assert not torch.equal(gradient(total, theta, "reinforce", seed=5)[0],
                           gradient(total, other, "reinforce", seed=5)[0])


@pytest.mark.parametrize("estimator", poly.ESTIMATORS)
def test_seed_gradients_follow_the_single_run_law(estimator):
    """Rows with equal logits give independent draws of the single-run gradient: same mean
    (4.5 standard errors) and variance (within a factor 1.6) as 400 single runs."""
    theta = 0.5 * torch.randn(4, 2, generator=torch.Generator().manual_seed(6),
                              dtype=torch.float64)
    draws = 400
    rows = gradient(poly.seed_losses(2.0), theta.expand(draws, 4, 2), estimator, seed=7)
    f = make_problem("poly", power=2.0).f
    singles = torch.stack([gradient(f, theta, estimator, seed=100 + i) for i in range(draws)])
    mean_rows, mean_singles = rows.mean(0), singles.mean(0)
    var_rows, var_singles = rows.var(0), singles.var(0)
    se = ((var_rows + var_singles) / draws).sqrt()
    assert ((mean_rows - mean_singles).abs() <= 4.5 * se + 1e-12).all()
    assert (var_rows <= 1.6 * var_singles + 1e-12).all()
    assert (var_singles <= 1.6 * var_rows + 1e-12).all()


def test_training_seeds_together_is_training_them_apart():
    """softmax is noise-free: seed 0 of a 3-seed run (one Adam over all rows) follows exactly the
    trajectory of a 1-seed run."""
    config = poly.PolyConfig(seeds=3, steps=40, variables=16, lr=0.05)
    together = poly.train(config, 2.0, "softmax", CPU)
    alone = poly.train(poly.PolyConfig(seeds=1, steps=40, variables=16, lr=0.05), 2.0,
                       "softmax", CPU)
    torch.testing.assert_close(torch.tensor(together["gap"][0]), torch.tensor(alone["gap"][0]))
    assert together["train_last"][0] == pytest.approx(alone["train_last"][0], rel=1e-6)


def test_estimators_reach_their_optima():
    """At a large learning rate, reinforce and (much faster) rloo approach the true optimum
    P(z=1) = 0, while softmax settles at the relaxed one, P(z=1) = 0.45."""
    config = poly.PolyConfig(seeds=4, steps=150, variables=16, lr=0.05)
    start = poly.exact_gap(poly.initial_logits(config), 2.0)
    for estimator, fraction in (("reinforce", 0.7), ("rloo", 0.05)):
        final = torch.tensor([curve[-1]
                              for curve in poly.train(config, 2.0, estimator, CPU)["gap"]])
        assert (final < fraction * start).all(), estimator
    final = torch.tensor([curve[-1] for curve in poly.train(config, 2.0, "softmax", CPU)["gap"]])
    relaxed = 0.45 * (0.55**2 - 0.45**2)
    torch.testing.assert_close(final, torch.full_like(final, relaxed), rtol=0.02, atol=0)


def test_bench_poly_end_to_end_and_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "poly"
    args = ["bench", "poly", "--steps", "6", "--seeds", "3", "--gr-k", "3", "--powers", "1.5,3",
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| p | estimator | train loss | exact loss | gap to 0.45^p | ms/step |" in printed
    for name in ("report.md", "report.html", "results.json", "tables/poly-1.csv",
                 "figures/poly_p1.5.png", "figures/poly_p3.png", "runs.sqlite"):
        assert (out / name).stat().st_size > 0, name
    with (out / "tables" / "poly-1.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(float(r["p"]), r["estimator"]) for r in rows] == [
        (p, e) for p in (1.5, 3.0) for e in poly.ESTIMATORS]
    for row in rows:
        power = float(row["p"])
        gap, exact = float(row["gap to 0.45^p"]), float(row["exact loss"])
        assert exact == pytest.approx(poly.optimum(power) + gap)
        assert float(row["gap to 0.45^p_low"]) <= gap <= float(row["gap to 0.45^p_high"])
        assert 0 < gap < 0.55**power - poly.optimum(power)
        assert 0 <= float(row["train loss"]) <= 0.55**power
        assert float(row["ms/step"]) > 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiments"]["POLY"]["config"]["steps"] == 6
    assert len(saved["experiments"]["POLY"]["summary"]["rows"]) == len(rows)

    # the same configuration again: every result comes from runs.sqlite, nothing trains
    def no_training(*args, **kwargs):
        raise AssertionError("a recorded result was trained again")

    monkeypatch.setattr(poly, "train", no_training)
    again = sweep(out, poly.PolyConfig(steps=6, seeds=3, gr_k=3, powers=(1.5, 3.0)))
    assert again.reused == again.runs == len(rows)
    assert [r.gap.estimate for r in again.sections[0].summary["rows"]] == pytest.approx(
        [float(r["gap to 0.45^p"]) for r in rows])
    # another configuration has no records to reuse
    with pytest.raises(AssertionError, match="trained again"):
        sweep(out, poly.PolyConfig(steps=7, seeds=3, gr_k=3, powers=(3.0,),
                                   estimators=("rloo",)))


def sweep(out, config):
    return run_sweep(out, [(poly.EXPERIMENT, config)], title="poly", show_progress=False)


def test_runs_split_over_processes_merge_into_one_table(tmp_path, monkeypatch):
    """Estimators run into separate output directories (as separate processes, on any device)
    merge into one whose single run reuses every result."""
    parts = {name: sweep(tmp_path / name, poly.PolyConfig(steps=6, seeds=3, gr_k=3,
                                                          powers=(2.0,), estimators=(name,)))
             for name in ("rloo", "gr")}
    for name in parts:
        assert main(["merge-runs", str(tmp_path / "all" / "runs.sqlite"),
                     str(tmp_path / name / "runs.sqlite")]) == 0

    def no_training(*args, **kwargs):
        raise AssertionError("a recorded result was trained again")

    monkeypatch.setattr(poly, "train", no_training)
    merged = sweep(tmp_path / "all", poly.PolyConfig(steps=6, seeds=3, gr_k=3, powers=(2.0,),
                                                     estimators=("gr", "rloo")))
    assert merged.reused == merged.runs == 2
    assert [row.gap for row in merged.sections[0].summary["rows"]] == [
        parts[name].sections[0].summary["rows"][0].gap for name in ("gr", "rloo")]


def test_bench_poly_rejects_bad_input(tmp_path, capsys):
    assert main(["bench", "poly", "--estimators", "nope", "--out", str(tmp_path)]) == 2
    assert "known estimators" in capsys.readouterr().err
    assert main(["bench", "poly", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "steps must be" in capsys.readouterr().err
    assert main(["bench", "poly", "--tau", "0", "--out", str(tmp_path)]) == 2
    assert "tau must be" in capsys.readouterr().err
    assert main(["bench", "poly", "--smoke", "--full", "--out", str(tmp_path)]) == 2
    assert "exclusive" in capsys.readouterr().err
    assert not (tmp_path / "runs.sqlite").exists()  # refused before any work
