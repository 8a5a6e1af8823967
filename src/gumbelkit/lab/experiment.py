"""What an experiment of the lab is: a claim of the seed thread, a measurement, a computed verdict.

An experiment is split into independent *runs* (typically one per seed, estimator and
temperature), each a pure function of the configuration and its key, so that the runner can record
every finished run and resume an interrupted lab (see :mod:`gumbelkit.lab.records`). The summary,
the figures, the tables and the verdict are then computed from the recorded runs alone.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from .records import config_digest

RunKey = dict[str, Any]
RunResult = dict[str, Any]
Summary = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """A claim quoted from the seed thread, and who made it."""

    quote: str
    source: str


@dataclass(frozen=True)
class Verdict:
    """Whether the tested claim holds here, computed from the data.

    ``holds`` is True, False, or None when the data cannot decide (intervals overlap). ``answer`` is
    the one sentence (with numbers) that the report's opening answer quotes; ``detail`` says more.
    """

    holds: bool | None
    answer: str
    detail: str = ""

    @property
    def label(self) -> str:
        return {True: "holds", False: "does not hold", None: "inconclusive"}[self.holds]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG written by the experiment, by file name inside the report's figure directory."""

    filename: str
    caption: str


@dataclass
class ExperimentConfig:
    """Base of every experiment's configuration: the defaults are the quick budget.

    Subclasses are dataclasses; ``full()`` returns the paper-scale version and ``tiny()`` a
    seconds-long version for the smoke tests.
    """

    seeds: int = 5

    @classmethod
    def full(cls) -> ExperimentConfig:
        return cls()

    @classmethod
    def tiny(cls) -> ExperimentConfig:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A stable hash of the configuration, used to find its recorded runs (the ``device`` it
        runs on left out: :func:`gumbelkit.lab.records.config_digest`)."""
        return config_digest(self.to_dict())


class Experiment(ABC):
    """One experiment of the lab (DESIGN.md section 4). Subclasses set the class attributes."""

    id: ClassVar[str]
    title: ClassVar[str]
    claim_summary: ClassVar[str]  # the tested claim in one sentence, as the thread makes it
    claims: ClassVar[tuple[Claim, ...]]
    config_class: ClassVar[type[ExperimentConfig]]
    # torch CPU threads for a run; 1 for experiments made of many tiny operations, where extra
    # threads only add synchronisation; None keeps torch's default
    threads: ClassVar[int | None] = None
    # wall time of the quick budget's runs on the project's 2-core CPU (seconds): it weighs the
    # runs of the progress bar so that its time-left estimate holds across experiments
    quick_seconds: ClassVar[float] = 10.0

    def run_weight(self) -> float:
        """Expected seconds of one run, from the quick budget's measured wall time."""
        return self.quick_seconds / len(self.runs(self.make_config("quick")))

    def make_config(self, budget: str = "quick", **overrides: Any) -> ExperimentConfig:
        """The configuration for a budget ("quick", the default lab; "full"; "tiny", for tests)."""
        base = {"quick": self.config_class, "full": self.config_class.full,
                "tiny": self.config_class.tiny}[budget]()
        return dataclasses.replace(base, **overrides)

    @abstractmethod
    def runs(self, config: ExperimentConfig) -> list[RunKey]:
        """The keys of the independent runs (JSON-able dicts, e.g. ``{"seed": 0, "tau": 0.5}``)."""

    @abstractmethod
    def run(self, config: ExperimentConfig, key: RunKey, device: torch.device) -> RunResult:
        """One run: deterministic given the configuration and the key. Returns a JSON-able dict."""

    @abstractmethod
    def summarize(self, config: ExperimentConfig, results: list[tuple[RunKey, RunResult]]
                  ) -> Summary:
        """Aggregate the runs (means, bootstrap intervals): a JSON-able dict."""

    @abstractmethod
    def verdict(self, summary: Summary) -> Verdict:
        """Turn the summary into a verdict; the same code must be able to come out either way."""

    @abstractmethod
    def setup(self, config: ExperimentConfig) -> str:
        """The set-up in a paragraph: model, data, estimators, budget, seeds."""

    def tables(self, summary: Summary) -> list[Table]:
        return []

    def figures(self, summary: Summary, directory: Path) -> list[Figure]:
        """Draw the figures into ``directory`` (matplotlib, Agg backend)."""
        return []
