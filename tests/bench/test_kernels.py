"""`gumbelkit bench kernels` end to end on a tiny CPU case, and its case parser."""

import json

import pytest
import torch

from gumbelkit.bench.kernels import MODES, parse_case, run_kernels
from gumbelkit.cli import main


def test_parse_case():
    import torch

    assert parse_case("4096x50257:bf16") == ((4096, 50257), torch.bfloat16)
    for bad in ("4096x50257", "4096:fp32", "0x10:fp32", "8x10:int8", "2x3x4:fp32"):
        with pytest.raises(ValueError, match="case"):
            parse_case(bad)


def test_bench_kernels_writes_every_mode(tmp_path, capsys):
    assert main(["bench", "kernels", "--cases", "64x10:fp32,8x300:bf16", "--threads", "1",
                 "--out", str(tmp_path)]) == 0
    assert "| 64x10:fp32 | hard+bwd |" in capsys.readouterr().out
    payload = json.loads((tmp_path / "kernels-cpu.json").read_text())
    assert payload["meta"]["backend"] == "cpu"
    rows = payload["rows"]
    assert [(row["case"], row["mode"]) for row in rows] == [
        (case, mode) for case in ("64x10:fp32", "8x300:bf16") for mode in MODES]
    for row in rows:
        assert row["torch_ms"] > 0 and row["gumbelkit_ms"] > 0 and row["copy_ms"] > 0
        assert row["speedup_vs_torch"] == pytest.approx(row["torch_ms"] / row["gumbelkit_ms"])
    header = (tmp_path / "kernels-cpu.csv").read_text().splitlines()[0]
    assert header.startswith("case,mode,torch_ms")


def test_bench_kernels_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="modes"):
        run_kernels(tmp_path, cases=["4x4:fp32"], modes=["sideways"])
    with pytest.raises(ValueError, match="case"):
        run_kernels(tmp_path, cases=["4x4:int8"])


def test_bench_kernels_compile_and_vae_step(tmp_path):
    rows = run_kernels(tmp_path, cases=["4x6:fp32", "vae-4x2"], modes=["hard"],
                       compile_cases=["4x6:fp32"], threads=1, repeats=2, vae_rounds=8)
    kernel, step = rows
    assert kernel["compile_ms"] > 0 and kernel["compile_s"] > 0
    assert kernel["speedup_vs_compile"] == pytest.approx(kernel["compile_ms"]
                                                         / kernel["gumbelkit_ms"])
    assert step["case"] == "vae-4x2" and step["mode"] == "train-step"
    assert step["torch_ms"] > 0 and step["gumbelkit_ms"] > 0
    assert step["speedup_low"] <= step["speedup_vs_torch"] <= step["speedup_high"]
    text = (tmp_path / "kernels-cpu.md").read_text()
    assert "| vae-4x2 | train-step |" in text and "Worst row against torch eager" in text
    assert f"[{step['speedup_low']:.3f}, {step['speedup_high']:.3f}]" in text
    with pytest.raises(ValueError, match="vae-CxL"):
        run_kernels(tmp_path, cases=["vae-4"])


def test_paired_rounds_alternate_the_order_and_time_each_call(monkeypatch):
    """On a fake clock that the calls advance (the first by 2 s, the second by 1 s, except one
    slow call of the first), each round's two times are exact."""
    from gumbelkit.bench import kernels as bench_kernels

    clock, order = [0.0], []

    def call(name, seconds):
        def run():
            order.append(name)
            clock[0] += seconds(len(order))
        return run

    monkeypatch.setattr(bench_kernels.time, "perf_counter", lambda: clock[0])
    first = call("a", lambda n: 20.0 if n == 6 else 2.0)
    second = call("b", lambda n: 1.0)
    a, b = bench_kernels.paired_rounds([first, second], torch.device("cpu"), 9)
    assert order[:2] == ["a", "b"]  # the warm-up
    assert order[2:] == ["a", "b", "b", "a"] * 4 + ["a", "b"]
    assert b.tolist() == [1.0] * 9 and sorted(a.tolist()) == [2.0] * 8 + [20.0]


def test_paired_ratios_make_the_calls_again_every_block(monkeypatch):
    """250 rounds in blocks of 100: the calls are made three times, the rounds concatenated."""
    from gumbelkit.bench import kernels as bench_kernels

    monkeypatch.setattr(bench_kernels, "VAE_BLOCK", 100)
    made = []

    def make_calls():
        made.append(len(made))
        return [lambda: None, lambda: None]

    first, second = bench_kernels.paired_ratios(make_calls, torch.device("cpu"), 250)
    assert made == [0, 1, 2] and first.shape == second.shape == (250,)
