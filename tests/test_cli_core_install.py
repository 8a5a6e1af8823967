"""A core-only install (``pip install gumbelkit``, no extras): the commands that need the lab
extra say so in one line and exit 2; ``compare`` and ``merge-runs`` work without it.

The virtual environment is made without the system's packages, with this checkout installed
without its dependencies and the core ones (torch and numpy, at the versions running here, so pip
takes them from its local wheels or cache) installed beside it. The test skips where that cannot
be done (offline, no wheel): it then proves nothing here, and says why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch

from .commands import one_error_line, run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
INSTALL_SECONDS = 150
EXTRA = ["matplotlib", "scipy", "sklearn", "tqdm"]


def build(command: list[str], what: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.skip(f"{what} took over {INSTALL_SECONDS} s (no local wheels?)")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"{what} failed: {last}")


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> Path:
    """The ``bin`` directory of a core-only environment."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    build([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--only-binary", ":all:"]
    build(pip + [f"torch=={torch.__version__}", f"numpy=={numpy.__version__}",
                 "setuptools>=61"], "installing torch and numpy")
    build([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
           "--editable", str(ROOT)], "installing gumbelkit without its extras")
    absent = subprocess.run([python, "-c", f"import importlib.util as u; print([m for m in "
                             f"{EXTRA} if u.find_spec(m)])"], capture_output=True, text=True)
    assert absent.stdout.strip() == "[]", "the core environment has an extra's package"
    return venv / "bin"


@pytest.mark.parametrize("argv,missing", [pytest.param(argv, missing, id=" ".join(argv)) for
                                          argv, missing in [
    (["lab"], "gumbelkit lab (matplotlib is not installed)"),
    (["lab", "--smoke", "--only", "E1"], "gumbelkit lab (matplotlib is not installed)"),
    (["bench", "poly", "--smoke"], "gumbelkit bench poly"),
    (["bench", "vae"], "gumbelkit bench vae"),
    (["bench", "kernels"], "gumbelkit bench kernels (tqdm is not installed)"),
]])
def test_a_command_that_needs_the_lab_extra_says_so(core, argv, missing, tmp_path):
    done = run(argv, cwd=tmp_path, bin_dir=core)
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"gumbelkit: error: {missing}: it needs the lab extra: pip install 'gumbelkit[lab]'")
    assert list(tmp_path.iterdir()) == []  # no report, no run records


def test_compare_and_merge_runs_need_no_extra(core, tmp_path):
    done = run(["compare", "--estimators", "st,gr", "--draws", "3"], cwd=tmp_path,
               bin_dir=core)
    assert done.returncode == 0, done.stderr
    assert "| st |" in done.stdout and "| gr |" in done.stdout
    assert done.stderr.splitlines() == ["estimators [1/2] st", "estimators [2/2] gr"]
    done = run(["merge-runs", "all.sqlite", "missing.sqlite"], cwd=tmp_path, bin_dir=core)
    assert done.returncode == 2
    assert "no run records at missing.sqlite" in one_error_line(done.stderr)
