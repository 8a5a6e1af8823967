"""`gumbelkit bench kernels` end to end on a tiny CPU case, and its case parser."""

import json

import pytest

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
