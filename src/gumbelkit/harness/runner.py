"""The runner: plan the runs, reuse the recorded ones, execute the rest, record, report.

:func:`run_sweep` is the whole cycle for any list of experiments (the lab's, a benchmark's):

1. plan: every experiment's configuration is checked and its runs listed; the ones recorded in
   ``out/runs.sqlite`` are reused;
2. execute: the missing ones go to an executor (:mod:`gumbelkit.harness.executors`), which hands
   each back as it finishes; each is recorded at once, in its own transaction, so an interrupted
   sweep loses at most the runs in flight (Ctrl-C: the finished ones are kept and the same command
   resumes);
3. report: each experiment summarises its runs into a section, and the document is written by
   :func:`gumbelkit.harness.report.write_report`.

The progress bar counts expected seconds: a run weighs the mean wall time that runs of its
experiment took before (recorded with every run), or one second when none is recorded yet; the
runs start longest first, so that parallel workers finish together.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .._validate import check_count
from .executors import Executor, InProcess, Task, resolve_device, torch_threads
from .paths import check_output_directory
from .protocol import Experiment, ExperimentConfig, RunKey, RunResult, Verdict
from .records import RunStore, encode_key, resume_hint
from .report import Block, Document, Section, write_report
from .statistics import LEVEL, Decision, holm, level

__all__ = ["Outcome", "machine_description", "run_sweep", "select"]

DEFAULT_WEIGHT = 1.0  # expected seconds of a run of an experiment with no recorded run yet


def select(experiments: dict[str, Experiment], only: Sequence[str] | None) -> list[Experiment]:
    """The experiments named in ``only`` (case-insensitive ids), in their order; all if empty."""
    if not only:
        return list(experiments.values())
    wanted = [name.strip().upper() for name in only if name.strip()]
    unknown = [name for name in wanted if name not in experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; "
                         f"known: {', '.join(experiments)}")
    return [experiments[name] for name in experiments if name in wanted]


def machine_description(device: torch.device, threads: int | None = None) -> str:
    """The driving machine: system, processor, threads per run, GPU (if this one has it), torch."""
    cpu = platform.processor() or platform.machine()
    with torch_threads(threads):
        text = f"{platform.system()} {cpu}, {torch.get_num_threads()} torch thread(s) per run"
    if device.type == "cuda" and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(device)}"
    return text + f", torch {torch.__version__}"


@dataclass
class Outcome:
    """What a sweep wrote and did."""

    paths: dict[str, Path]
    sections: list[Section]
    runs: int
    reused: int


@dataclass
class _Plan:
    experiment: Experiment
    config: ExperimentConfig
    digest: str
    keys: list[RunKey]
    results: dict[str, RunResult]  # by encoded key, the recorded ones first
    not_run: str = ""  # why the experiment cannot run here (then it has no keys)


def run_sweep(
    out_dir: str | Path,
    chosen: Sequence[tuple[Experiment, ExperimentConfig]],
    *,
    title: str,
    executor: Executor | None = None,
    device: str = "cpu",
    threads: int | None = 1,
    intro: Callable[[list[Section]], list[Block]] | None = None,
    intro_heading: str = "",
    quote: str = "",
    command: str = "gumbelkit",
    show_progress: bool = True,
) -> Outcome:
    """Run (or reuse) every run of the chosen experiments and write the report into ``out_dir``.

    ``threads``: torch CPU threads of a run whose experiment does not set its own (None: torch's
    default). Every argument is checked (the device, the threads, the configurations, that
    ``out_dir`` can be written) before anything is computed or written. ``intro`` builds the
    document's opening blocks from the sections (the lab's answer).
    """
    executor = executor or InProcess()
    torch_device = resolve_device(device, here=executor.local)
    if threads is not None:
        check_count(threads, "threads per run")
    for experiment, config in chosen:
        experiment.check(config)
    out = check_output_directory(out_dir)
    start = time.perf_counter()
    with RunStore(out / "runs.sqlite") as store:
        plans = []
        for experiment, config in chosen:
            digest = config.digest()
            store.register_config(experiment.id, digest, config.keyed())
            recorded = store.recorded(experiment.id, digest)
            not_run = experiment.missing(config) or ""
            keys = [] if not_run else experiment.runs(config)
            plans.append(_Plan(experiment, config, digest, keys,
                               {k: recorded[k] for k in map(encode_key, keys) if k in recorded},
                               not_run))
        tasks = [Task(p.experiment, p.config, p.digest, key,
                      p.experiment.threads or threads, str(torch_device))
                 for p in plans for key in p.keys if encode_key(key) not in p.results]
        total = sum(len(p.keys) for p in plans)
        reused = total - len(tasks)
        by_id = {p.experiment.id: p for p in plans}
        _execute(store, tasks, executor, by_id, show_progress)
    if reused:
        print(f"reused {reused} of {total} finished runs recorded in {out / 'runs.sqlite'}",
              file=sys.stderr)
    # an experiment with no runs in this configuration has nothing to report, unless it says why
    sections = [_section(p, out / "figures") for p in plans if p.keys or p.not_run]
    meta = {"command": command, "machine": machine_description(torch_device, threads),
            "executor": executor.describe(), "wall_seconds": time.perf_counter() - start,
            "runs": total, "reused": reused}
    document = Document(title, sections, meta, quote=quote,
                        intro=intro(sections) if intro else [], intro_heading=intro_heading)
    return Outcome(write_report(out, document), sections, total, reused)


def _execute(store: RunStore, tasks: list[Task], executor: Executor,
             plans: dict[str, _Plan], show_progress: bool) -> None:
    """Compute the tasks (the exclusive experiments' alone, in this process, after the others),
    recording each result as it comes."""
    from tqdm import tqdm  # the lab extra

    seconds = store.mean_seconds()
    weight = {eid: max(1, round(1000 * seconds.get(eid, DEFAULT_WEIGHT))) for eid in plans}
    # smoothing=0: the time left from the average speed since the start, not from the last few
    # runs' (runs of one experiment can take 10x those of another, and the recent speed swings)
    bar = tqdm(total=sum(weight[t.experiment.id] for t in tasks), disable=not show_progress,
               file=sys.stderr, dynamic_ncols=True, smoothing=0,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} elapsed, "
                          "about {remaining} left")
    done = {eid: len(p.results) for eid, p in plans.items()}

    def record(task: Task, result: RunResult, elapsed: float) -> None:
        store.put(task.experiment.id, task.digest, task.key, result, elapsed)
        plan = plans[task.experiment.id]
        plan.results[encode_key(task.key)] = result
        done[task.experiment.id] += 1
        bar.set_description(f"{task.label} done "
                            f"({done[task.experiment.id]}/{len(plan.keys)})")
        bar.update(weight[task.experiment.id])

    # the longest expected runs first, so that parallel workers finish together (a stable sort:
    # with no records yet, the experiments' own order)
    shared = sorted((t for t in tasks if not t.experiment.exclusive),
                    key=lambda t: -weight[t.experiment.id])
    alone = [t for t in tasks if t.experiment.exclusive]
    try:
        executor.execute(shared, record)
        InProcess().execute(alone, record)
    except KeyboardInterrupt:
        bar.close()
        print(resume_hint(store.path), file=sys.stderr)
        raise
    bar.close()


def _section(plan: _Plan, figure_dir: Path) -> Section:
    experiment, config = plan.experiment, plan.config
    if plan.not_run:
        return Section(id=experiment.id, title=experiment.title, setup="", tables=[],
                       figures=[], config=config.to_dict(), summary=None,
                       claims=experiment.claims, claim_summary=experiment.claim_summary,
                       not_run=plan.not_run)
    results = [(key, plan.results[encode_key(key)]) for key in plan.keys]
    summary = experiment.summarize(config, results)
    return Section(
        id=experiment.id, title=experiment.title, setup=experiment.setup(config),
        tables=experiment.tables(summary), figures=experiment.figures(summary, figure_dir),
        config=config.to_dict(), summary=summary,
        verdicts=corrected_verdicts(experiment, config, results, summary),
        claims=experiment.claims, claim_summary=experiment.claim_summary,
    )


def corrected_verdicts(experiment: Experiment, config: ExperimentConfig,
                       results: list[tuple[RunKey, RunResult]], summary: Any) -> list[Verdict]:
    """The experiment's verdicts, each at the level Holm's correction over all of them gives it
    (:func:`~gumbelkit.harness.statistics.holm`). ``summary`` is the one at the default level,
    already made for the report; at every other level the summary is made again."""
    default = experiment.verdicts(summary)
    made: dict[float, list[Verdict]] = {LEVEL: default}

    def decide() -> list[Decision]:
        if level() not in made:
            made[level()] = experiment.verdicts(experiment.summarize(config, results))
        return [v.decision for v in made[level()]]

    count = len(default)
    levels = holm(decide, count)
    return [replace(made[value][i], level=value, family=count)
            for i, value in enumerate(levels)]

