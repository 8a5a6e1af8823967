"""`gumbelkit bench vocab` end to end at tiny sizes: the tables' shape, the saved-bytes ratio
(no timing assertions: speed belongs in the benchmark itself), and its case parser."""

import json

import pytest

from gumbelkit.bench.vocab import RULES, parse_sizes, run_vocab
from gumbelkit.cli import main


def test_parse_sizes():
    assert parse_sizes("512x50257x768", 3) == (512, 50257, 768)
    assert parse_sizes("512x50257", 2) == (512, 50257)
    for bad in ("512x50257", "0x10x4", "8xAx4", "2x3x4x5"):
        with pytest.raises(ValueError, match="ROWSxVxD"):
            parse_sizes(bad, 3)


def test_bench_vocab_writes_both_tables(tmp_path, capsys):
    assert main(["bench", "vocab", "--cases", "16x300x8,4x50x3", "--restricted-cases", "8x200",
                 "--repeats", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| 16x300x8 | fp32 |" in printed and "| 8x200 | fp32 | top_p=0.9 |" in printed
    payload = json.loads((tmp_path / "vocab-cpu.json").read_text())
    rows, restricted = payload["rows"], payload["restricted"]
    assert [row["case"] for row in rows] == ["16x300x8", "4x50x3"]
    for row in rows:
        assert row["composition_ms"] > 0 and row["gumbelkit_ms"] > 0 and row["portable_ms"] > 0
        assert row["speedup"] == pytest.approx(row["composition_ms"] / row["gumbelkit_ms"])
        # the composition keeps the (rows, V) sample; soft_embedding its (rows, d) output and a
        # few numbers per row
        assert row["saved_ratio"] > 1
        assert row["saved_ratio"] == pytest.approx(row["composition_saved_bytes"]
                                                   / row["gumbelkit_saved_bytes"])
        assert "composition_peak_bytes" not in row  # not measured on the CPU
    assert [(row["case"], row["rule"]) for row in restricted] == [("8x200", rule)
                                                                   for rule in RULES]
    assert all(row["torch_ms"] > 0 and row["gumbelkit_ms"] > 0 for row in restricted)
    header = (tmp_path / "vocab-cpu.csv").read_text().splitlines()[0]
    assert header.startswith("case,dtype,composition_ms,gumbelkit_ms")
    assert (tmp_path / "vocab-cpu-restricted.csv").read_text().startswith("case,dtype,rule")
    assert "Machine: " in (tmp_path / "vocab-cpu.md").read_text()


def test_bench_vocab_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="ROWSxVxD"):
        run_vocab(tmp_path, cases=["4x4"])
    with pytest.raises(ValueError, match="ROWSxV "):
        run_vocab(tmp_path, cases=[], restricted_cases=["4x4x4"])
    with pytest.raises(ValueError, match="dtype"):
        run_vocab(tmp_path, cases=[], dtype="int8")
