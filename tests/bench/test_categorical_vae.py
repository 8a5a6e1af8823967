"""The categorical-VAE benchmark: the exact gradient against enumeration, the diagnostic's power,
the training budget, the plain-PyTorch reference, end to end on small idx files, resume, errors."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch

import gumbelkit as gk
from gumbelkit.bench import categorical_vae as cv
from gumbelkit.cli import main
from gumbelkit.harness.executors import torch_threads
from gumbelkit.workloads import vae

TRAIN_IMAGES = 300  # the fashion_dir fixture's: 3 batches of 100 per epoch


CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _threads():
    with torch_threads(cv.EXPERIMENT.threads):  # as the benchmark runs
        yield


@pytest.fixture
def data_dir(fashion_dir):
    return fashion_dir


def small_model(latents: int = 3, categories: int = 4, dim: int = 16) -> vae.CategoricalVAE:
    torch.manual_seed(0)
    model = vae.CategoricalVAE(dim, latents, categories, hidden=(32, 16))
    with torch.no_grad():  # posteriors away from uniform, so that estimators differ
        model.encoder[-1].weight.mul_(6.0)
    return model


def test_settings_cover_every_estimator_and_configuration():
    assert set(cv.SETTINGS) == set(cv.CONFIGURATIONS)
    for configuration, settings in cv.SETTINGS.items():
        assert set(settings) == set(cv.ESTIMATORS), configuration
    assert set(cv.TRANSCRIBED) < set(cv.ESTIMATORS)
    assert cv.SETTINGS["10x30"]["st"] == (7e-4, 1.4)  # the transcription's 7e-3 read as a typo
    assert cv.SETTINGS["8x4"]["reinmax"] == (5e-4, 1.3)
    assert (cv.CONFIGURATIONS["8x4"].categories, cv.CONFIGURATIONS["8x4"].latents) == (8, 4)
    assert cv.CONFIGURATIONS["10x30"].optimizer == "radam"


def test_exact_reconstruction_is_the_enumerated_expectation():
    """Value and gradient per image match gk.exact over the 4^3 codes of each image alone."""
    model = small_model()
    x = torch.rand(5, 16, generator=torch.Generator().manual_seed(1))
    logits = model.logits(x).detach().requires_grad_()
    values = cv.exact_reconstruction(model, x, logits)
    (grad,) = torch.autograd.grad(values.sum(), logits)
    for b in range(len(x)):
        def f(z, b=b):  # codes (N, L, C) -> reconstruction of image b, (N,)
            return vae.reconstruction(model, x[b:b + 1], z.unsqueeze(-3)).squeeze(-1)

        with torch.no_grad():
            expected = gk.exact.expectation(f, logits[b])
        torch.testing.assert_close(values[b].float(), expected, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(grad[b], gk.exact.exact_gradient(f, logits[b]),
                                   rtol=1e-4, atol=1e-5)


def test_gradient_diagnostic_tells_unbiased_from_biased():
    """rloo is unbiased: its relative bias is within the noise floor's reach; the noise-free
    softmax has no noise floor and a bias far above the others; straight-through is biased."""
    model = small_model()
    x = torch.rand(6, 16, generator=torch.Generator().manual_seed(2))
    generator = torch.Generator().manual_seed(3)
    rloo = cv.gradient_diagnostic(model, x, "rloo", 1.0, 2000, generator, n_samples=2)
    softmax = cv.gradient_diagnostic(model, x, "softmax", 0.5, 4, generator)
    st = cv.gradient_diagnostic(model, x, "st", 1.0, 2000, generator)
    assert rloo["relative_bias"] < 3.5 * rloo["relative_bias_se"]
    assert rloo["cosine_of_mean"] > 0.95 and rloo["cosine"] < rloo["cosine_of_mean"]
    assert softmax["relative_bias_se"] == 0 and softmax["variance"] == 0
    assert softmax["cosine"] == pytest.approx(softmax["cosine_of_mean"])
    assert st["relative_bias"] > 5 * st["relative_bias_se"]
    assert softmax["relative_bias"] > st["relative_bias"] > rloo["relative_bias"]
    assert rloo["exact_norm"] == pytest.approx(st["exact_norm"])


def config(data_dir, **overrides) -> cv.VAEBenchConfig:
    """A seconds-long configuration on the small idx files."""
    base = {"hidden": (32, 16), "data_dir": str(data_dir), "test_size": 20, "iw_samples": 3,
            "gradient_images": 10, "gradient_draws": 4, "gr_k": 3, "throughput_steps": 2,
            "throughput_repeats": 2}
    return cv.VAEBenchConfig(**{**base, **overrides})


def test_time_budget_finishes_the_epoch(data_dir):
    """A budget that runs out during the first step still trains to the end of the epoch."""
    result = cv.train(config(data_dir, minutes=1e-9), "8x4", "reinmax", 0, CPU)
    assert result["steps"] == TRAIN_IMAGES // vae.BATCH_SIZE and result["epochs"] == 1
    assert len(result["train_curve"]) == 1 and result["train"] == result["train_curve"][0]
    assert [c["epoch"] for c in result["gradients"]] == [0, 1]
    json.dumps(result)


def test_epochs_and_step_cap(data_dir):
    fixed = cv.train(config(data_dir, epochs=5), "8x4", "st", 0, CPU)
    assert fixed["steps"] == 15 and len(fixed["train_curve"]) == 5
    assert [c["epoch"] for c in fixed["gradients"]] == [0, 1, 2, 4, 5]  # powers of 2, the last
    capped = cv.train(config(data_dir, epochs=5, max_steps=4), "10x30", "rloo", 1, CPU)
    assert capped["steps"] == 4 and capped["epochs"] == pytest.approx(4 / 3)
    assert len(capped["train_curve"]) == 2 and capped["gradients"] == []  # 10^30 codes
    for result in (fixed, capped):
        assert result["test_iw"] > 0 and result["test_elbo"] > 0 and result["test_kl"] >= 0
        assert result["test_images"] == 20 and result["data"] == "Fashion-MNIST"
        assert result["seconds_per_step"] > 0


def test_seeds_share_the_initial_model_across_estimators(data_dir):
    a = cv.train(config(data_dir, max_steps=1), "8x4", "st", 0, CPU)
    b = cv.train(config(data_dir, max_steps=1), "8x4", "reinmax", 0, CPU)
    # before training, the same model and the same diagnostic batch give the same exact gradient
    assert a["gradients"][0]["exact_norm"] == b["gradients"][0]["exact_norm"]
    c = cv.train(config(data_dir, max_steps=1), "8x4", "st", 1, CPU)
    assert c["gradients"][0]["exact_norm"] != a["gradients"][0]["exact_norm"]


def test_plain_pytorch_step_is_the_same_training():
    """With saturated posteriors the sample is the mode whatever the noise, so a step of the
    plain-PyTorch reference and of gumbelkit's st-gs give the same loss and the same decoder
    update (the encoder's gradients vanish, but differently with different noise)."""
    model = small_model(dim=16)
    with torch.no_grad():
        model.encoder[-1].weight.mul_(1e3)
    images = torch.rand(200, 16, generator=torch.Generator().manual_seed(4))
    plain = copy.deepcopy(model)
    ours_loss = vae.train(model, images, 1, "st-gs", 0.5,
                          generator=torch.Generator().manual_seed(5),
                          optimizer=torch.optim.RAdam(model.parameters(), lr=1e-2))
    plain_loss = cv.plain_train(plain, images, 1, 0.5,
                                torch.optim.RAdam(plain.parameters(), lr=1e-2),
                                torch.Generator().manual_seed(5))
    assert ours_loss == pytest.approx(plain_loss, rel=1e-6)
    for ours, theirs in zip(model.decoder.parameters(), plain.decoder.parameters(),
                            strict=True):
        torch.testing.assert_close(ours, theirs)
    changed = [not torch.equal(a, b) for a, b in zip(plain.decoder.parameters(),
                                                       small_model(dim=16).decoder.parameters(),
                                                       strict=True)]
    assert all(changed)  # the step did train


def test_bench_vae_end_to_end_and_resume(data_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "vae"
    args = ["bench", "vae", "--data-dir", str(data_dir), "--max-steps", "2", "--test-size", "20",
            "--iw-samples", "3", "--gradient-draws", "4", "--gr-k", "3",
            "--throughput-steps", "2", "--throughput-repeats", "2", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| CxL | estimator | optimizer | lr | tau | epochs (steps) |" in printed
    assert "| CxL | tau | steps x repeats | gumbelkit steps/s |" in printed
    assert "reused 0 of 18 runs" in printed
    for name in ("report.md", "report.html", "results.json", "tables/vae-1.csv",
                 "tables/vae-2.csv", "tables/vae-speed-1.csv", "figures/vae_curves.png",
                 "figures/vae_gradients_8x4.png", "runs.sqlite"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "figures" / "vae_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (out / "tables" / "vae-1.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["CxL"], r["estimator"]) for r in rows] == [
        (c, e) for c in cv.CONFIGURATIONS for e in cv.ESTIMATORS]
    table = (out / "report.md").read_text()
    for row in rows:
        lr, tau = cv.SETTINGS[row["CxL"]][row["estimator"]]
        assert float(row["lr"]) == lr and float(row["tau"]) == tau
        assert row["epochs (steps)"] == "0.667 (2)"
        for name in ("train -ELBO", "test -ELBO", "test -IW"):
            assert float(row[f"{name}_low"]) <= float(row[name]) <= float(row[f"{name}_high"])
            assert 0 < float(row[name]) < 200  # 64 pixels: at most about 64 log 2 + KL nats
        assert float(row["ms/step"]) > 0
        assert f"| {row['CxL']} | {row['estimator']} | {row['optimizer']} |" in table
    assert "7e-3" in table and "third party" in table
    saved = json.loads((out / "results.json").read_text())
    summary = saved["experiments"]["VAE"]["summary"]
    assert saved["experiments"]["VAE"]["config"]["max_steps"] == 2
    assert {r["configuration"] for r in summary["gradients"]} == {"8x4"}
    assert [(r["estimator"], r["step"]) for r in summary["gradients"]] == [
        (e, step) for e in cv.ESTIMATORS for step in (0, 2)]
    for row in summary["gradients"]:
        assert row["relative_bias"] >= 0 and -1 <= row["cosine_of_mean"] <= 1
        assert row["exact_norm"] > 0 and row["draws"] == 4
    assert len(summary["curves"]["8x4"]["rloo"][0]) == 1
    with (out / "tables" / "vae-speed-1.csv").open() as handle:
        speeds = list(csv.DictReader(handle))
    assert [r["CxL"] for r in speeds] == list(cv.CONFIGURATIONS)
    for row in speeds:
        assert row["steps x repeats"] == "2 x 2"
        assert float(row["ratio low"]) <= float(row["ratio"]) <= float(row["ratio high"])
        assert float(row["gumbelkit steps/s"]) > 0

    # the same configuration again: every result comes from runs.sqlite, nothing trains
    def no_training(*args, **kwargs):
        raise AssertionError("a recorded result was computed again")

    monkeypatch.setattr(cv, "train", no_training)
    monkeypatch.setattr(cv, "throughput", no_training)
    assert main(args) == 0
    assert "reused 18 of 18 runs" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="computed again"):
        main([*args[:-2], "--max-steps", "3", "--configurations", "10x30", "--estimators", "st",
              "--out", str(out)])


def test_split_runs_without_throughput_then_merged(data_dir, tmp_path, capsys, monkeypatch):
    """Processes that each train one estimator leave the throughput out; once their records are
    merged, one normal run reuses every training run and measures only the throughput."""
    base = ["bench", "vae", "--data-dir", str(data_dir), "--max-steps", "2", "--test-size", "20",
            "--iw-samples", "3", "--gradient-draws", "4", "--configurations", "8x4",
            "--throughput-steps", "2", "--throughput-repeats", "2"]
    for name in ("st", "rloo"):
        assert main([*base, "--estimators", name, "--no-measure-throughput",
                     "--out", str(tmp_path / name)]) == 0
        printed = capsys.readouterr().out
        assert "reused 0 of 1 runs" in printed and "steps x repeats" not in printed
        assert main(["merge-runs", str(tmp_path / "all" / "runs.sqlite"),
                     str(tmp_path / name / "runs.sqlite")]) == 0

    def no_training(*args, **kwargs):
        raise AssertionError("a recorded result was trained again")

    monkeypatch.setattr(cv, "train", no_training)
    assert main([*base, "--estimators", "st,rloo", "--out", str(tmp_path / "all")]) == 0
    printed = capsys.readouterr().out
    assert "steps x repeats" in printed
    assert "reused 2 of 3 runs" in printed


def test_missing_data_names_the_debian_package(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nowhere"
    assert main(["bench", "vae", "--data-dir", str(missing), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "dataset-fashion-mnist" in error and str(missing) in error
    # the default location too: no fallback to other data
    monkeypatch.setattr("gumbelkit.workloads.data.FASHION_MNIST_DIR", missing)
    assert main(["bench", "vae", "--out", str(tmp_path)]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "runs.sqlite").exists()


def test_bench_vae_rejects_bad_input(data_dir, tmp_path, capsys):
    base = ["bench", "vae", "--data-dir", str(data_dir), "--out", str(tmp_path)]
    assert main([*base, "--estimators", "nope"]) == 2
    assert "known estimators" in capsys.readouterr().err
    assert main([*base, "--configurations", "3x3"]) == 2
    assert "known configurations: 8x4, 10x30" in capsys.readouterr().err
    assert main([*base, "--minutes", "0"]) == 2
    assert "minutes must be" in capsys.readouterr().err
    # estimators of the registry without settings here are refused before any training
    for name in ("reinforce", "argmax-st"):
        assert main([*base, "--estimators", f"st,{name}"]) == 2
        assert f"no settings for {name}" in capsys.readouterr().err
    assert not (tmp_path / "runs.sqlite").exists()
    with pytest.raises(ValueError, match="rloo_samples"):
        cv.VAEBenchConfig(rloo_samples=1)
