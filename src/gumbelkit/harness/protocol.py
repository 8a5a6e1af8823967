"""The experiment protocol: a configuration, a list of independent runs, a summary, a section.

An experiment is split into independent *runs* (typically one per seed, estimator and
temperature), each a pure function of the configuration and its key, so that the runner can
record every finished run, resume an interrupted sweep and spread the runs over processes or
machines (see :mod:`gumbelkit.harness.runner`). The summary, the figures, the tables and the
verdict (when the experiment tests a claim) are then computed from the recorded runs alone.

The harness knows nothing of what an experiment measures: the lab's experiments and the
benchmarks are both experiments of this protocol.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from .records import config_digest
from .statistics import LEVEL, Decision

__all__ = ["BUDGETS", "Claim", "Experiment", "ExperimentConfig", "Figure", "RunKey", "RunResult",
           "Table", "Verdict", "option"]

RunKey = dict[str, Any]
RunResult = dict[str, Any]
BUDGETS = ("quick", "full", "tiny")


def option(default: Any, help: str = "", *, keyed: bool = True) -> Any:
    """A configuration field with its command-line help.

    ``keyed=False`` marks a field that chooses *which* runs are made (a list of estimators, say)
    rather than what a run computes: it is left out of the digest, so that a run recorded by a
    sweep over fewer estimators is found again by a sweep over more.
    """
    return dataclasses.field(default=default, metadata={"help": help, "keyed": keyed})


@dataclass(frozen=True)
class Claim:
    """A statement an experiment tests, quoted, and who made it (``source``: the author and where
    they wrote it); ``summary`` is the claim in one sentence, for the report's answer."""

    quote: str
    source: str
    summary: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the data decide of one or more of the experiment's claims.

    ``answer`` is the sentence (with numbers) that the report's opening answer quotes;
    ``detail`` says more; ``number`` is the one measurement that decides it, for the claims
    table; ``claims`` are the claims it decides (empty: all of the experiment's). ``level`` is
    the level of its intervals, which the runner sets by Holm's correction over the experiment's
    verdicts (:func:`~gumbelkit.harness.statistics.holm`); ``family`` is how many verdicts that
    correction was over.
    """

    decision: Decision
    answer: str
    detail: str = ""
    number: str = ""
    claims: tuple[Claim, ...] = ()
    level: float = LEVEL
    family: int = 1

    @property
    def correction(self) -> str:
        """How the verdict's intervals were corrected for multiplicity, in a sentence."""
        if self.family == 1:
            return f"Intervals at {100 * self.level:.3g}%."
        return (f"Intervals at {100 * self.level:.3g}%: Holm's correction over the experiment's "
                f"{self.family} verdicts (family-wise level {100 * (1 - LEVEL):.3g}%).")

    @property
    def label(self) -> str:
        return self.decision.value



@dataclass(frozen=True)
class Table:
    """Rows of cells: strings, numbers or :class:`~gumbelkit.harness.statistics.Interval`\\ s
    (formatted for reading in Markdown and HTML, kept as numbers in CSV)."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG written by the experiment, by file name inside the report's figure directory."""

    filename: str
    caption: str


@dataclass
class ExperimentConfig:
    """Base of every experiment's configuration: the defaults are the quick budget.

    Subclasses are dataclasses whose fields are the experiment's fixed choices (declare them with
    :func:`option` to give the command line a help text); ``full()`` returns the larger
    budget (more seeds, steps and draws) and ``tiny()`` a seconds-long one for the smoke tests.
    """

    @classmethod
    def full(cls) -> ExperimentConfig:
        return cls()

    @classmethod
    def tiny(cls) -> ExperimentConfig:
        return cls()

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """The type of each field, resolved (for parsing a value given on the command line)."""
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def keyed(self) -> dict[str, Any]:
        """The fields that decide what a run computes (every field but the ``keyed=False`` ones)."""
        body = self.to_dict()
        return {f.name: body[f.name] for f in dataclasses.fields(self)
                if f.metadata.get("keyed", True)}

    def digest(self) -> str:
        """A stable hash of :meth:`keyed`: what finds this configuration's recorded runs."""
        return config_digest(self.keyed())


class Experiment(ABC):
    """One experiment. Subclasses set the class attributes and implement the hooks."""

    id: ClassVar[str]
    title: ClassVar[str]
    config_class: ClassVar[type[ExperimentConfig]]
    # what the experiment tests (the lab's experiments; a benchmark may have none)
    claim_summary: ClassVar[str] = ""
    claims: ClassVar[tuple[Claim, ...]] = ()
    # torch CPU threads for a run; None: the executor's (one each, unless told otherwise)
    threads: ClassVar[int | None] = None
    # runs that time something run alone, one at a time in the driving process
    exclusive: ClassVar[bool] = False

    def make_config(self, budget: str = "quick", **overrides: Any) -> ExperimentConfig:
        """The configuration for a budget ("quick", the default; "full"; "tiny", for tests)."""
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
        base = {"quick": self.config_class, "full": self.config_class.full,
                "tiny": self.config_class.tiny}[budget]()
        return dataclasses.replace(base, **overrides)

    def check(self, config: ExperimentConfig) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError for a configuration this experiment cannot run, before any work."""

    def missing(self, config: ExperimentConfig) -> str | None:
        """Why this experiment cannot run on this machine (a data set that is not installed,
        say), or None: the runner then reports it as not run instead of running it."""
        return None

    @abstractmethod
    def runs(self, config: ExperimentConfig) -> list[RunKey]:
        """The keys of the independent runs (JSON-able dicts, e.g. ``{"seed": 0, "tau": 0.5}``)."""

    @abstractmethod
    def run(self, config: ExperimentConfig, key: RunKey, device: torch.device) -> RunResult:
        """One run: deterministic given the configuration and the key. Returns a JSON-able dict."""

    @abstractmethod
    def summarize(self, config: ExperimentConfig, results: list[tuple[RunKey, RunResult]]
                  ) -> Any:
        """Aggregate the runs (means, intervals): dicts, lists, numbers, intervals, dataclasses."""

    @abstractmethod
    def setup(self, config: ExperimentConfig) -> str:
        """The set-up in a paragraph: model, data, methods, budget, seeds."""

    def verdict(self, summary: Any) -> Verdict | None:
        """One verdict on all of :attr:`claims` (None for an experiment that tests none); the
        same code must be able to come out every way."""
        return None

    def verdicts(self, summary: Any) -> list[Verdict]:
        """The verdicts, one per claim (or group of claims of one author) that the experiment
        decides separately; by default the one :meth:`verdict`."""
        verdict = self.verdict(summary)
        return [] if verdict is None else [verdict]

    def tables(self, summary: Any) -> list[Table]:
        return []

    def figures(self, summary: Any, directory: Path) -> list[Figure]:
        """Draw the figures into ``directory`` (matplotlib, Agg backend)."""
        return []
