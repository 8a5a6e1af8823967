"""Where runs compute: in this process, in local worker processes, or as Ray tasks.

Every executor takes the missing runs of a sweep (:class:`Task`) and hands each finished one back
to the driver through ``record(task, result, seconds)`` as soon as it is done, in whatever order
they finish; the driver alone writes the run records. A run computes the same result wherever it
runs (:func:`perform` sets the same torch thread count everywhere), so the records and the report
do not depend on the executor.

- :class:`InProcess`: one run after another in this process (``--jobs 1``).
- :class:`LocalProcesses`: ``jobs`` worker processes on this machine (``--jobs N``), started
  fresh (``spawn``) and ignoring Ctrl-C, which the driver handles: it stops them and keeps what
  finished.
- :class:`RayTasks`: one Ray task per run with declared resources (the ``ray`` extra, Ray core),
  on a running cluster (``address``) or a local Ray instance; results are collected with
  ``ray.wait`` as they finish.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from .protocol import Experiment, ExperimentConfig, RunKey, RunResult

__all__ = ["EXECUTORS", "Executor", "InProcess", "LocalProcesses", "RayTasks", "Task",
           "make_executor", "perform", "resolve_device", "torch_threads"]

POLL_SECONDS = 0.2  # how often a waiting driver looks up, so that Ctrl-C reaches it at once

Record = Callable[["Task", RunResult, float], None]


@dataclass(frozen=True)
class Task:
    """One missing run: the experiment, its configuration and digest, the run's key."""

    experiment: Experiment
    config: ExperimentConfig
    digest: str
    key: RunKey
    threads: int | None
    device: str

    @property
    def label(self) -> str:
        return f"{self.experiment.id} " + " ".join(f"{k}={v}" for k, v in self.key.items())


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (None: leave the setting alone)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str, *, here: bool = True) -> torch.device:
    """``device`` as a torch.device, with a clear error when it is unknown or (``here``) not
    available in this process."""
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"unknown device {device!r}: expected cpu, cuda or cuda:N") from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported: use cpu or cuda")
    if here and resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA device")
    if here and resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        choices = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise ValueError(f"device {device!r} was asked for, but torch sees {count} CUDA "
                         f"device(s): use {choices}")
    return resolved


def perform(task: Task) -> tuple[RunResult, float]:
    """Compute one run where this is called; return its result and its wall time."""
    with torch_threads(task.threads):
        began = time.perf_counter()
        result = task.experiment.run(task.config, task.key, resolve_device(task.device))
        return result, time.perf_counter() - began


class Executor(ABC):
    """Runs the tasks of a sweep and hands each result to ``record`` as it finishes."""

    # whether the runs compute on this machine (a Ray cluster's may have devices this one lacks)
    local: bool = True

    @abstractmethod
    def execute(self, tasks: Sequence[Task], record: Record) -> None:
        """Compute every task; on KeyboardInterrupt stop what is in flight and re-raise."""

    def describe(self) -> str:
        return type(self).__name__


class InProcess(Executor):
    """One run after another in this process."""

    def execute(self, tasks, record):
        for task in tasks:
            record(task, *perform(task))

    def describe(self):
        return "in process, one run at a time"


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _perform_indexed(item: tuple[int, Task]) -> tuple[int, RunResult, float]:
    index, task = item
    return (index, *perform(task))


class LocalProcesses(Executor):
    """``jobs`` worker processes on this machine."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def execute(self, tasks, record):
        if not tasks:
            return
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(min(self.jobs, len(tasks)), initializer=_ignore_interrupts)
        try:
            finished = pool.imap_unordered(_perform_indexed, enumerate(tasks))
            for _ in tasks:
                while True:
                    try:
                        index, result, seconds = finished.next(timeout=POLL_SECONDS)
                        break
                    except multiprocessing.TimeoutError:
                        continue
                record(tasks[index], result, seconds)
            pool.close()
        except BaseException:
            pool.terminate()  # the runs in flight are lost; what finished is recorded
            raise
        finally:
            pool.join()

    def describe(self):
        return f"{self.jobs} local worker processes"


class RayTasks(Executor):
    """One Ray task per run, with ``cpus`` and ``gpus`` (fractions allowed) reserved for each."""

    local = False

    def __init__(self, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0) -> None:
        self.ray = import_ray()
        self.address, self.cpus, self.gpus = address, cpus, gpus

    def execute(self, tasks, record):
        ray = self.ray
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address or None, include_dashboard=False,
                     log_to_driver=False)
        remote = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0)(perform)
        pending = {remote.remote(task): task for task in tasks}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    record(pending.pop(ref), *ray.get(ref))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()

    def describe(self):
        where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
        return f"Ray tasks on {where}, {self.cpus:g} CPU and {self.gpus:g} GPU per run"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'gumbelkit[ray]'") from None
    return ray


EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", *, jobs: int = 1, address: str | None = None,
                  cpus_per_run: float | None = None, gpus_per_run: float | None = None
                  ) -> Executor:
    """The executor called ``name`` ("local": in process for ``jobs`` = 1, else worker
    processes; "ray": Ray tasks, by default 1 CPU and no GPU per run), options checked."""
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    for label, value in (("cpus per run", cpus_per_run), ("gpus per run", gpus_per_run)):
        if value is not None and not (isinstance(value, int | float) and 0 <= value < 1e6):
            raise ValueError(f"{label} must be a number >= 0, got {value!r}")
    if name == "ray":
        if jobs != 1:
            raise ValueError("--jobs is an option of the local executor; Ray runs as many runs "
                             "at once as the resources per run allow")
        return RayTasks(address, 1.0 if cpus_per_run is None else cpus_per_run,
                        gpus_per_run or 0.0)
    given = [flag for flag, value in (("--address", address), ("--cpus-per-run", cpus_per_run),
                                      ("--gpus-per-run", gpus_per_run)) if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: options of --executor ray")
    return InProcess() if jobs == 1 else LocalProcesses(jobs)
