"""Every bad argument of every command is refused before any work: exit code 2, one clear line on
stderr, no traceback, nothing written (no runs.sqlite, no report, no JSON, no merge target).

The cases that issue 13 names run the real ``gumbelkit`` command in a subprocess; the others call
``main`` in this process (the same code, without the second or two of a fresh interpreter).
"""

from __future__ import annotations

import importlib.util
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import torch

from gumbelkit.cli import main
from gumbelkit.harness.records import RunStore

from .commands import one_error_line, run

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
NO_RAY = pytest.mark.skipif(importlib.util.find_spec("ray") is not None,
                            reason="the ray extra is installed here")


def case(*argv: str, says: str, real: bool = False, marks=()):
    """A refused command line, a fragment of its error line, and whether to run it as the real
    command in a subprocess."""
    return pytest.param(list(argv), says, real, marks=marks, id=" ".join(argv))


CASES = [
    # lab: flags, output, devices, executor, --set, data
    case("lab", "--smoke", "--full", says="--full and --smoke are exclusive", real=True),
    case("lab", "--out", "afile", says="afile is a file, not a directory", real=True),
    case("lab", "--out", "afile/report", says="afile is a file, not a directory"),
    case("lab", "--out", "junk", says="junk/runs.sqlite is not a file of run records"),
    case("lab", "--device", "tpu", says="unknown device 'tpu'", real=True),
    case("lab", "--device", "cuda", says="torch sees no CUDA device", marks=NO_CUDA),
    case("lab", "--jobs", "0", says="jobs must be an integer >= 1, got 0"),
    case("lab", "--jobs", "two", says="argument --jobs: invalid int value"),
    case("lab", "--gpus-per-run", "0.5", says="--gpus-per-run: options of --executor ray"),
    case("lab", "--executor", "ray", "--jobs", "2", says="--jobs is an option of the local"),
    case("lab", "--cpus-per-run", "-1", "--executor", "ray", says="cpus per run must be"),
    case("lab", "--executor", "ray", says="needs Ray: pip install 'gumbelkit[ray]'",
         marks=NO_RAY),
    case("lab", "--threads-per-run", "-1", says="argument --threads-per-run: expected an "
         "integer >= 0"),
    case("lab", "--set", "E2.nope=3", says="E2 has no field 'nope'"),
    case("lab", "--set", "E2.categories", says="--set takes ID.field=value"),
    case("lab", "--set", "E2.categories=many", says="--set E2.categories=many"),
    case("lab", "--set", "E42.seeds=1", says="unknown experiment 'E42'"),
    case("lab", "--only", "E42", says="unknown experiment(s) E42"),
    case("lab", "--data-dir", "no-such-dir", says="--data-dir no-such-dir: no such directory"),
    # bench: the same sweep options, the configuration's fields, the kernels' options
    case("bench", "poly", "--smoke", "--full", says="--full and --smoke are exclusive"),
    case("bench", "poly", "--out", "afile", says="afile is a file, not a directory", real=True),
    case("bench", "poly", "--device", "cuda", says="torch sees no CUDA device", real=True,
         marks=NO_CUDA),
    case("bench", "poly", "--device", "tpu", says="unknown device 'tpu'"),
    case("bench", "poly", "--estimators", "nope", says="unknown estimator(s) nope"),
    case("bench", "poly", "--gr-k", "0", says="gr_k must be an integer >= 1"),
    case("bench", "vae", "--estimators", "reinforce", says="no settings for reinforce"),
    case("bench", "poly", "--gpus-per-run", "0.25", says="options of --executor ray"),
    case("bench", "kernels", "--out", "afile", says="afile is a file, not a directory"),
    case("bench", "kernels", "--device", "tpu", says="unknown device 'tpu'"),
    case("bench", "kernels", "--threads", "0", says="argument --threads: expected an integer "
         ">= 1"),
    case("bench", "kernels", "--modes", "fast", says="unknown modes ['fast']"),
    case("bench", "kernels", "--cases", "8x:fp32", says="a case is ROWSxK:DTYPE"),
    # compare: the JSON path and every estimator's options, before the first estimator runs
    case("compare", "--json", "afile/rows.json", says="afile is a file, not a directory",
         real=True),
    case("compare", "--json", ".", says="--json .: it is a directory"),
    case("compare", "--k", "0", says="gr option k must be an integer >= 1", real=True),
    case("compare", "--gap", "-1", says="gst option gap must be a finite number > 0"),
    case("compare", "--estimators", "st,nope", says="unknown estimator 'nope'"),
    case("compare", "--draws", "1", says="--draws must be an integer >= 2"),
    case("compare", "--samples", "0", says="--samples must be an integer >= 1"),
    case("compare", "--tau", "0", says="tau must be a finite number > 0"),
    case("compare", "--problem", "nope", says="argument --problem: invalid choice"),
    # merge-runs: every source, then the target
    case("merge-runs", "all.sqlite", "missing.sqlite", says="no run records at missing.sqlite",
         real=True),
    case("merge-runs", "all.sqlite", "junk.sqlite", says="junk.sqlite cannot be read as an "
         "SQLite file of run records", real=True),
    case("merge-runs", "all.sqlite", "other.sqlite", says="other.sqlite is an SQLite file but "
         "holds no run records"),
    case("merge-runs", "all.sqlite", "junk", says="it is a directory; give the runs.sqlite"),
    case("merge-runs", "all.sqlite", "good.sqlite", "missing.sqlite", says="missing.sqlite"),
    case("merge-runs", "afile/all.sqlite", "good.sqlite", says="target afile/all.sqlite: ",
         real=True),
    case("merge-runs", "junk.sqlite", "good.sqlite", says="junk.sqlite cannot be read"),
    case("merge-runs", "other.sqlite", "good.sqlite", says="other.sqlite is an SQLite file"),
]


def workspace(root: Path) -> dict[str, bytes]:
    """A directory holding the paths the cases name: a plain file ``afile``, a non-SQLite
    ``junk.sqlite`` and ``junk/runs.sqlite``, an SQLite file of something else, and a valid
    (empty) file of run records; returns its contents, file by file."""
    (root / "afile").write_text("a file, not a directory\n")
    (root / "junk.sqlite").write_text("not a database\n")
    (root / "junk").mkdir()
    (root / "junk" / "runs.sqlite").write_text("not a database\n")
    with closing(sqlite3.connect(root / "other.sqlite")) as other, other:
        other.execute("CREATE TABLE notes (text TEXT)")
    RunStore(root / "good.sqlite").close()
    return contents(root)


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()} | {str(p.relative_to(root)) + "/": b"" for p in root.rglob("*")
                               if p.is_dir()}


@pytest.mark.parametrize("argv,says,real", CASES)
def test_a_bad_argument_is_refused_before_any_work(argv, says, real, tmp_path, monkeypatch,
                                                   capfd):
    before = workspace(tmp_path)
    if real:
        done = run(argv, cwd=tmp_path)
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        monkeypatch.chdir(tmp_path)
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse's own refusals
            code = exit.code
        out, err = capfd.readouterr()
    assert code == 2, err
    assert says in one_error_line(err)
    assert out == ""
    assert contents(tmp_path) == before  # nothing made, nothing changed


def test_a_missing_extra_names_the_whole_command(monkeypatch, capsys):
    """The hint names the command and the extra (the core-only install test runs the real
    commands without the extras: tests/test_cli_core_install.py)."""
    import gumbelkit.cli as cli

    monkeypatch.setitem(cli.BENCHMARKS, "poly", (lambda: cli.missing_extra(None),
                                                 cli.BENCHMARKS["poly"][1]))
    assert main(["bench", "poly"]) == 2
    assert capsys.readouterr().err == ("gumbelkit: error: gumbelkit bench poly: it needs the lab "
                                       "extra: pip install 'gumbelkit[lab]'\n")


@pytest.mark.parametrize("argv", [["lab", "--device", "cuda:1"],
                                  ["bench", "poly", "--device", "cuda:1"],
                                  ["bench", "kernels", "--device", "cuda:1"]])
def test_a_cuda_device_beyond_those_present_is_refused(argv, tmp_path, monkeypatch, capfd):
    """On a machine with one GPU (made so here: torch is told there is one)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capfd.readouterr()
    assert "device 'cuda:1' was asked for, but torch sees 1 CUDA device(s): use cuda:0" in \
        one_error_line(err)
    assert out == "" and list(tmp_path.iterdir()) == []
