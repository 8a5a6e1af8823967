"""Executors: local worker processes and Ray tasks give the in-process records and report, run
several runs at once within their resources, and lose at most the runs in flight when
interrupted."""

import json
import os
import sqlite3

import pytest

from gumbelkit.harness.executors import InProcess, LocalProcesses, make_executor

from . import fake
from .test_runner import recorded, sweep


def values(out):
    """Each recorded run's computed value, by (experiment, key)."""
    with sqlite3.connect(out / "runs.sqlite") as db:
        rows = db.execute("SELECT experiment, config, key, result FROM runs").fetchall()
    return {(e, c, k): json.loads(r)["value"] for e, c, k, r in rows}


def report_without_timing(outcome):
    """report.md less its one line of wall time and executor, which differ by design."""
    lines = outcome.paths["markdown"].read_text().splitlines()
    return [line for line in lines if not line.startswith("Produced by")]


def max_overlap(results):
    """The most runs that ran at the same moment, from their begin and end times."""
    events = sorted([(r["began"], 1) for r in results] + [(r["ended"], -1) for r in results],
                    key=lambda event: (event[0], event[1]))
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def run_results(out):
    with sqlite3.connect(out / "runs.sqlite") as db:
        return [json.loads(row[0]) for row in db.execute("SELECT result FROM runs")]


def test_make_executor_checks_its_options():
    assert isinstance(make_executor(), InProcess)
    assert isinstance(make_executor(jobs=2), LocalProcesses)
    for bad in ({"jobs": 0}, {"jobs": True}, {"name": "slurm"}):
        with pytest.raises(ValueError):
            make_executor(**bad)
    with pytest.raises(ValueError, match="options of --executor ray"):
        make_executor(gpus_per_run=0.5)
    with pytest.raises(ValueError, match="number >= 0"):
        make_executor("ray", cpus_per_run=-1)


def test_the_ray_executor_says_which_extra_it_needs(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'gumbelkit\[ray\]'"):
        make_executor("ray")


def test_local_processes_give_the_in_process_records_and_report(tmp_path):
    serial = sweep(tmp_path / "serial", fake.experiments("F1", "F2"), seeds=6, sleep=0.2)
    parallel = sweep(tmp_path / "parallel", fake.experiments("F1", "F2"), seeds=6,
                     executor=LocalProcesses(2), sleep=0.2)
    assert values(tmp_path / "serial") == values(tmp_path / "parallel")
    assert serial.paths["results"].read_text() == parallel.paths["results"].read_text()
    assert report_without_timing(serial) == report_without_timing(parallel)
    results = run_results(tmp_path / "parallel")
    assert len({r["pid"] for r in results} - {os.getpid()}) == 2  # two workers, not this one
    assert max_overlap(results) == 2
    again = sweep(tmp_path / "parallel", fake.experiments("F1", "F2"), seeds=6,
                  executor=LocalProcesses(2))
    assert again.reused == 12


def interrupted_then_resumed(out, executor):
    """Interrupt a sweep of 8 runs from its seed 3 (as Ctrl-C would), check that every run that
    had finished is kept, resume it, and check that only the missing runs ran and the results are
    an uninterrupted sweep's."""
    exps = fake.experiments("F1")
    log = out.parent / (out.name + ".log")
    with pytest.raises(KeyboardInterrupt):
        sweep(out, exps, seeds=8, sleep=0.3, interrupt_at=3, driver=os.getpid(), log=str(log),
              executor=executor)
    kept = {json.loads(key)["seed"] for _, key in recorded(out)}
    events = [line.split() for line in log.read_text().splitlines()]
    interrupted = next(float(t) for _, event, t in events if event == "interrupt")
    # a result needs a moment to reach the driver: the runs that ended 0.1 s before Ctrl-C are
    # kept; what is lost is what was in flight (the interrupting run among them)
    finished = {int(seed) for seed, event, t in events
                if event == "end" and float(t) < interrupted - 0.1}
    assert finished <= kept and 3 not in kept and len(kept) < 8
    resumed = sweep(out, exps, seeds=8, executor=executor)
    assert (resumed.runs, resumed.reused) == (8, len(kept))
    fresh = sweep(out.parent / (out.name + "-fresh"), exps, seeds=8)
    assert resumed.paths["results"].read_text() == fresh.paths["results"].read_text()


def test_an_interrupted_local_sweep_loses_at_most_the_runs_in_flight(tmp_path):
    interrupted_then_resumed(tmp_path / "local", LocalProcesses(2))


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for the session: 2 CPUs and 1 logical GPU (no device needed)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.cloudpickle").register_pickle_by_value(fake)  # workers cannot
    # import the tests: the fake experiment travels by value
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_runs_a_sweep_once_and_then_only_reuses_it(tmp_path, ray_cluster):
    executor = make_executor("ray")
    serial = sweep(tmp_path / "serial", fake.experiments("F1"), seeds=4)
    first = sweep(tmp_path / "ray", fake.experiments("F1"), seeds=4, executor=executor)
    assert (first.runs, first.reused) == (4, 0)
    assert values(tmp_path / "serial") == values(tmp_path / "ray")
    assert serial.paths["results"].read_text() == first.paths["results"].read_text()
    again = sweep(tmp_path / "ray", fake.experiments("F1"), seeds=4, executor=executor)
    assert again.reused == 4  # nothing new ran
    assert len(recorded(tmp_path / "ray")) == 4


def test_ray_runs_at_most_four_quarter_gpu_tasks_at_once(tmp_path, ray_cluster):
    """With 1 GPU, 0.25 GPU per run admits four at once (the CPUs would admit eight)."""
    executor = make_executor("ray", cpus_per_run=0.25, gpus_per_run=0.25)
    sweep(tmp_path, fake.experiments("F1"), seeds=10, sleep=1.5, executor=executor)
    overlap = max_overlap(run_results(tmp_path))
    assert 2 <= overlap <= 4, overlap


def test_an_interrupted_ray_sweep_loses_at_most_the_runs_in_flight(tmp_path, ray_cluster):
    interrupted_then_resumed(tmp_path / "ray", make_executor("ray"))
