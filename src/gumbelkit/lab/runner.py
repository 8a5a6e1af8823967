"""Run the lab: plan the runs, reuse the recorded ones, run the rest, write the report."""

from __future__ import annotations

import dataclasses
import platform
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .experiment import Experiment
from .records import RunStore, resume_hint
from .report import Section, write_report

BUDGETS = ("quick", "full", "tiny")


def select(experiments: dict[str, Experiment], only: Sequence[str] | None) -> list[Experiment]:
    if not only:
        return list(experiments.values())
    wanted = [name.strip().upper() for name in only if name.strip()]
    unknown = [name for name in wanted if name not in experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; "
                         f"known: {', '.join(experiments)}")
    return [experiments[name] for name in experiments if name in wanted]


def resolve_device(device: str) -> torch.device:
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return resolved


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{platform.system()} {cpu}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        text += f", {torch.cuda.get_device_name(device)}"
    return text + f", torch {torch.__version__}"


def run_lab(
    out_dir: str | Path,
    experiments: dict[str, Experiment],
    *,
    budget: str = "quick",
    only: Sequence[str] | None = None,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    command: str = "gumbelkit lab",
    show_progress: bool = True,
) -> dict[str, Path]:
    """Run the selected experiments at ``budget`` and write the report into ``out_dir``.

    ``overrides`` sets configuration fields (such as ``data_dir``) on every experiment whose
    configuration has them. Finished runs are recorded in ``out_dir/runs.sqlite`` as they end and
    reused by the next call with the same configuration.
    """
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    out = Path(out_dir)
    chosen = select(experiments, only)
    torch_device = resolve_device(device)
    start = time.perf_counter()
    plan = []
    for experiment in chosen:
        config = experiment.make_config(budget)
        fields = {f.name for f in dataclasses.fields(config)}
        config = dataclasses.replace(
            config, **{k: v for k, v in (overrides or {}).items() if k in fields})
        plan.append((experiment, config, experiment.runs(config)))

    sections, reused = [], 0
    total = sum(len(keys) for _, _, keys in plan)
    # integer milliseconds, so that the updates add up to the total exactly
    weights = {experiment.id: max(1, round(1000 * experiment.run_weight()))
               for experiment, _, _ in plan}
    with RunStore(out / "runs.sqlite") as store:
        # the bar counts expected seconds, so that runs of unequal cost give an honest time left
        bar = tqdm(total=sum(weights[e.id] * len(keys) for e, _, keys in plan),
                   disable=not show_progress, file=sys.stderr, dynamic_ncols=True,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} elapsed, "
                              "about {remaining} left")
        try:
            for experiment, config, keys in plan:
                digest = config.digest()
                store.register_config(experiment.id, digest, config.to_dict())
                results = []
                for index, key in enumerate(keys, 1):
                    bar.set_description(f"{experiment.id} run {index}/{len(keys)} ({_short(key)})")
                    with torch_threads(experiment.threads):
                        result, new = store.get_or_run(
                            experiment.id, digest, key,
                            lambda: experiment.run(config, key, torch_device))  # noqa: B023
                    reused += not new
                    results.append((key, result))
                    bar.update(weights[experiment.id])
                sections.append(_section(experiment, config, results, out / "figures"))
        except KeyboardInterrupt:
            bar.close()
            print(resume_hint(store.path), file=sys.stderr)
            raise
        bar.close()
    if reused:
        print(f"reused {reused} of {total} finished runs recorded in {out / 'runs.sqlite'}",
              file=sys.stderr)
    meta = {"command": command, "machine": machine_description(torch_device),
            "wall_seconds": time.perf_counter() - start, "reused": reused}
    return write_report(out, sections, meta)


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


def _short(key: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in key.items())


def _section(experiment: Experiment, config, results, figure_dir: Path) -> Section:
    summary = experiment.summarize(config, results)
    return Section(
        id=experiment.id, title=experiment.title, claim_summary=experiment.claim_summary,
        claims=experiment.claims,
        setup=experiment.setup(config), verdict=experiment.verdict(summary),
        tables=experiment.tables(summary), figures=experiment.figures(summary, figure_dir),
        config=config.to_dict(), summary=summary,
    )
