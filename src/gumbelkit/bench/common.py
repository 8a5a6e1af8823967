"""What the published-protocol benchmarks share: recorded results, intervals in rows, outputs.

Each benchmark records every finished result in ``runs.sqlite`` of its output directory
(:class:`gumbelkit.lab.records.RunStore`, keyed by the digest of its configuration) as soon as it
finishes, so that an interrupted run resumes where it stopped; its table rows carry bootstrap
intervals as ``name``, ``name_low``, ``name_high``; it writes a Markdown table, CSV and JSON.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..estimators import ESTIMATORS as REGISTRY
from ..lab.experiment import ExperimentConfig
from ..lab.records import RunStore, resume_hint
from ..lab.statistics import Interval

__all__ = ["Recorder", "check_estimators", "interval_fields", "interval_text", "recording",
           "write_csv", "write_json"]


def check_estimators(estimators: Sequence[str]) -> None:
    """ValueError for an empty list or a name that is not in ``gk.ESTIMATORS``."""
    unknown = [name for name in estimators if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown estimator(s) {', '.join(unknown)}; "
                         f"known estimators: {', '.join(REGISTRY)}")
    if not estimators:
        raise ValueError("give at least one estimator")


@dataclass
class Recorder:
    """Results of one benchmark configuration in a :class:`RunStore`; counts the reused ones."""

    store: RunStore
    experiment: str
    digest: str
    reused: int = 0

    def result(self, key: dict[str, Any], compute: Callable[[], dict[str, Any]]
               ) -> tuple[dict[str, Any], bool]:
        """The recorded result of ``key``, or ``compute()`` recorded now; and whether it is new."""
        result, new = self.store.get_or_run(self.experiment, self.digest, key, compute)
        self.reused += not new
        return result, new


@contextmanager
def recording(out: Path, experiment: str, config: ExperimentConfig, bar: tqdm
              ) -> Iterator[Recorder]:
    """Open ``out/runs.sqlite`` for ``config``; close ``bar`` at the end, and on an interrupt say
    that the finished results are kept."""
    with RunStore(out / "runs.sqlite") as store:
        digest = config.digest()
        store.register_config(experiment, digest, config.to_dict())
        try:
            yield Recorder(store, experiment, digest)
        except KeyboardInterrupt:
            bar.close()
            print(resume_hint(store.path), file=sys.stderr)
            raise
        bar.close()


def interval_fields(name: str, value: Interval) -> dict[str, float]:
    """The row entries ``name``, ``name_low``, ``name_high`` of an interval."""
    return {name: value.estimate, f"{name}_low": value.low, f"{name}_high": value.high}


def interval_text(row: dict[str, Any], name: str, digits: int = 3) -> str:
    """``estimate [low, high]`` of the interval stored in ``row`` by :func:`interval_fields`."""
    return Interval(row[name], row[f"{name}_low"], row[f"{name}_high"], row["seeds"]
                    ).format(digits)


def markdown_footer(figures: Sequence[str], meta: dict[str, Any], results: int) -> list[str]:
    """The figures and the line saying where, how and how long a benchmark ran."""
    return ["", *(f"![figure]({name})" for name in figures), "",
            f"Machine: {meta['machine']}. Command: `{meta['command']}`. "
            f"Wall time {meta['wall_seconds']:.0f} s; {meta['reused']} of {results} results "
            "reused from runs.sqlite.", ""]


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.write_text(json.dumps(payload, indent=2))
    return path
