"""Statistics for verdicts: bootstrap confidence intervals across seeds, and decisions.

Percentile bootstrap (Efron and Tibshirani 1993) with a fixed seed, so a summary is a deterministic
function of the recorded runs. :class:`Decision` is the one three-valued outcome every verdict is
made of, with the words the reports use for it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "Interval", "N_RESAMPLES", "LEVEL", "bootstrap", "paired_difference"]

N_RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval from ``n`` independent values."""

    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high

    def above(self, other: Interval | float) -> bool:
        """True when this interval lies entirely above ``other`` (an interval or a number)."""
        return self.low > (other.high if isinstance(other, Interval) else other)

    def below(self, other: Interval | float) -> bool:
        return self.high < (other.low if isinstance(other, Interval) else other)

    def sign(self, value: float = 0.0) -> int:
        """1 if the interval lies above ``value``, -1 if below, 0 if it contains it."""
        return 1 if self.above(value) else -1 if self.below(value) else 0

    def format(self, digits: int = 3) -> str:
        return f"{self.estimate:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


class Decision(enum.Enum):
    """What the data say of a statement: yes, no, or undecided (the interval straddles)."""

    YES = "holds"
    NO = "does not hold"
    UNDECIDED = "inconclusive"

    @property
    def word(self) -> str:
        """The verb phrase for a sentence: "the claim holds / does not hold / is undecided"."""
        return "is undecided" if self is Decision.UNDECIDED else self.value

    @classmethod
    def of(cls, value: bool | None) -> Decision:
        return cls.UNDECIDED if value is None else cls.YES if value else cls.NO

    @classmethod
    def above(cls, interval: Interval, value: float = 0.0) -> Decision:
        """YES if ``interval`` lies above ``value``, NO if below, UNDECIDED if it contains it."""
        return {1: cls.YES, -1: cls.NO, 0: cls.UNDECIDED}[interval.sign(value)]

    @classmethod
    def below(cls, interval: Interval, value: float = 0.0) -> Decision:
        """YES if ``interval`` lies below ``value``, NO if above, UNDECIDED if it contains it."""
        return {-1: cls.YES, 1: cls.NO, 0: cls.UNDECIDED}[interval.sign(value)]

    @classmethod
    def all_of(cls, decisions: Iterable[Decision]) -> Decision:
        """NO if any part is NO, YES if every part is YES, UNDECIDED otherwise."""
        decisions = list(decisions)
        if cls.NO in decisions:
            return cls.NO
        return cls.YES if all(d is cls.YES for d in decisions) else cls.UNDECIDED

    @classmethod
    def any_of(cls, decisions: Iterable[Decision]) -> Decision:
        """YES if any part is YES, NO if every part is NO, UNDECIDED otherwise."""
        decisions = list(decisions)
        if cls.YES in decisions:
            return cls.YES
        return cls.NO if all(d is cls.NO for d in decisions) else cls.UNDECIDED


def bootstrap(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    *,
    level: float = LEVEL,
    resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over independent values (one per seed).

    ``statistic`` is a NumPy reduction taking ``axis`` (``np.mean``, ``np.median``, ...), applied
    to all resamples at once.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    estimate = float(statistic(data))
    if data.size == 1:
        return Interval(estimate, estimate, estimate, 1)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, data.size, size=(resamples, data.size))
    stats = statistic(data[picks], axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), int(data.size))


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, **kwargs: float
) -> Interval:
    """Bootstrap interval of mean(a - b) for values paired by seed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return bootstrap(a - b, **kwargs)
