"""Ctrl-C in any command keeps what finished, says how to resume, and exits 130.

``lab``, ``bench`` and ``compare`` get a real SIGINT, in a subprocess, once their first run (or
estimator) has finished and while the next ones are still to come; ``merge-runs`` adds one source
per transaction and is interrupted in this process, between two sources.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

import gumbelkit as gk
from gumbelkit.cli import main
from gumbelkit.harness.records import RunStore

from .commands import default_sigint, gumbelkit, run, strict_json

WAIT_SECONDS = 120  # for the first run to finish on a loaded machine; the test fails after it


def recorded_runs(store: Path) -> int:
    """Runs recorded in ``store`` so far (0 while the file or its tables are not made yet)."""
    if not store.exists():
        return 0
    try:
        with closing(sqlite3.connect(store, timeout=1)) as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def interrupt_when(argv: list[str], cwd: Path, ready: Callable[[str], bool]
                   ) -> tuple[int, str, str]:
    """Start the command in a process group of its own and send the group SIGINT, as Ctrl-C in a
    terminal does (worker processes included), as soon as ``ready(stderr so far)``; return the
    exit code, stdout and stderr. Fails if the command ends (or the wait runs out) before it is
    ready: the test would prove nothing."""
    log = cwd / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(gumbelkit() + argv, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, preexec_fn=default_sigint,
                                   start_new_session=True)
        deadline = time.monotonic() + WAIT_SECONDS
        while not ready(log.read_text()):
            assert process.poll() is None, f"finished before the interrupt: {log.read_text()}"
            assert time.monotonic() < deadline, "the first run did not finish in time"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        out, _ = process.communicate(timeout=WAIT_SECONDS)
    return process.returncode, out, log.read_text()


# each a sweep of 6 to 10 runs of a quarter to half a second, the first done a few seconds in
LAB = ["lab", "--smoke", "--only", "E1", "--set", "E1.seeds=10", "--set", "E1.draws=150000"]
SWEEPS = {
    "lab": LAB,
    "lab --jobs 2": [*LAB, "--jobs", "2"],  # two worker processes, which ignore Ctrl-C
    "bench": ["bench", "poly", "--smoke", "--steps", "1500", "--powers", "2,3"],
}


@pytest.mark.parametrize("command", SWEEPS)
def test_an_interrupted_sweep_keeps_its_finished_runs_and_resumes(command, tmp_path):
    argv = [*SWEEPS[command], "--out", "out"]
    store = tmp_path / "out" / "runs.sqlite"
    code, _, err = interrupt_when(argv, tmp_path, lambda _: recorded_runs(store) > 0)
    assert code == 130 and "Traceback" not in err, err
    assert "run the same command again to resume" in err
    assert not (tmp_path / "out" / "results.json").exists()  # no report of a partial sweep
    kept = recorded_runs(store)

    resumed = run(argv, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reused, total = map(int, re.search(r"reused (\d+) of (\d+) finished runs",
                                       resumed.stderr).groups())
    assert reused == kept and 0 < kept < total  # what finished was kept, and only that reused
    assert recorded_runs(store) == total
    strict_json((tmp_path / "out" / "results.json").read_text())


def test_an_interrupted_compare_prints_and_writes_the_estimators_done(tmp_path):
    """The SIGINT comes when tqdm shows the first estimator done; at 3000 draws each of the
    others takes a quarter of a second or more (0.1 ms a draw or more on this project's
    machines), so it lands while they run."""
    pytest.importorskip("tqdm")
    total = len(gk.ESTIMATORS)
    code, out, err = interrupt_when(
        ["compare", "--draws", "3000", "--json", "rows.json"], tmp_path,
        lambda progress: re.search(rf"\| *[1-9]\d*/{total} \[", progress) is not None)
    assert code == 130 and "Traceback" not in err, err
    shown = re.findall(r"^\| ([a-z-]+) \| [-\d.]", out, flags=re.MULTILINE)
    rows = strict_json((tmp_path / "rows.json").read_text())["rows"]
    assert [row["estimator"] for row in rows] == shown and 0 < len(shown) < total
    done = re.search(rf"interrupted: (\d+) of {total} estimators finished, shown above and written "
                     r"to rows.json; for the rest run the same command with --estimators (\S+)",
                     err)
    assert done is not None, err
    assert int(done.group(1)) == len(shown)
    assert shown + done.group(2).split(",") == list(gk.ESTIMATORS)


def test_an_interrupted_merge_keeps_the_sources_added(tmp_path, monkeypatch, capsys):
    sources = []
    for i in range(2):
        sources.append(tmp_path / f"run{i}.sqlite")
        with RunStore(sources[-1]) as store:
            store.register_config("F1", "digest", {"seeds": 2})
            store.put("F1", "digest", {"seed": i}, {"value": i}, 0.1)
    merge = RunStore.merge

    def merge_then_ctrl_c(store, source):
        if Path(source) == sources[1]:
            raise KeyboardInterrupt
        return merge(store, source)

    monkeypatch.setattr(RunStore, "merge", merge_then_ctrl_c)
    target = tmp_path / "all.sqlite"
    assert main(["merge-runs", str(target), *map(str, sources)]) == 130
    assert recorded_runs(target) == 1
    err = capsys.readouterr().err
    assert f"interrupted: 1 of 2 source(s) added to {target}" in err
    assert "run the same command again to add the rest" in err
