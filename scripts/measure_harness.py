"""The harness's cost and its parallel speed-up, measured (the numbers of benchmarks/RESULTS.md).

1. Overhead per run: a sweep of ``--runs`` runs that do nothing, through each executor; the time
   outside the runs themselves, (wall - sum of the runs' own seconds / parallel runs) / runs,
   includes planning, recording each run in SQLite (one transaction each), the progress bar and
   the report. Worker start-up (process spawn, ``ray.init``) is reported apart.
2. Speed-up: a fixed subset of the lab at its quick budget, wall time with ``--jobs 1``,
   ``--jobs 2`` and a local Ray instance, each into a fresh output directory, one after another.

    python scripts/measure_harness.py [--runs 200] [--only E1,E2,E3,E5,E6,E8] [--no-ray]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gumbelkit.harness.executors import InProcess, LocalProcesses, RayTasks
from gumbelkit.harness.protocol import Experiment, ExperimentConfig
from gumbelkit.harness.runner import run_sweep


@dataclass
class NothingConfig(ExperimentConfig):
    runs: int = 200


class Nothing(Experiment):
    """Runs that return at once: what remains of a sweep's time is the harness's."""

    id = "NOTHING"
    title = "runs that do nothing"
    config_class = NothingConfig
    threads = 1

    def runs(self, config):
        return [{"index": i} for i in range(config.runs)]

    def run(self, config, key, device):
        return {"index": key["index"]}

    def summarize(self, config, results):
        return {"runs": len(results)}

    def setup(self, config):
        return f"{config.runs} runs that do nothing"


EXPERIMENT = Nothing()


def overhead(executor, runs: int, parallel: int, label: str) -> None:
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        run_sweep(out, [(EXPERIMENT, NothingConfig(runs))], title=label, executor=executor,
                  show_progress=False)
        wall = time.perf_counter() - began
        import sqlite3

        with sqlite3.connect(Path(out) / "runs.sqlite") as db:
            inside = db.execute("SELECT SUM(seconds) FROM runs").fetchone()[0]
    outside = 1e3 * (wall - inside / parallel) / runs
    print(f"{label}: {runs} runs in {wall:.2f} s; outside the runs {outside:.2f} ms per run "
          "(start-up included)")


def lab(only: str, options: list[str], label: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gumbelkit.cli", "lab", "--only", only, "--out",
                        out, *options], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - began
    print(f"lab --only {only} {' '.join(options) or '(--jobs 1)'}: {wall:.1f} s")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--only", default="E1,E2,E3,E5,E6,E8")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    overhead(InProcess(), args.runs, 1, "in process")
    overhead(LocalProcesses(2), args.runs, 2, "2 local processes")
    if not args.no_ray:
        overhead(RayTasks(), args.runs, 2, "local Ray instance, 1 CPU per run")
    serial = lab(args.only, [], "serial")
    jobs = lab(args.only, ["--jobs", "2"], "2 jobs")
    print(f"speed-up of --jobs 2: {serial / jobs:.2f}x")
    if not args.no_ray:
        ray = lab(args.only, ["--executor", "ray"], "ray")
        print(f"speed-up of a local Ray instance: {serial / ray:.2f}x")


if __name__ == "__main__":
    main()
