"""Statistics for verdicts: confidence intervals of means across seeds, and decisions.

The interval of a mean over n independent values (one per seed) is Student's t interval,
``mean +- t_{n-1, 1 - alpha/2} s / sqrt(n)``: exact for normal values at any n, which the percentile
bootstrap is not (at 4-6 seeds its "95%" intervals cover 80-89%; Efron and Tibshirani 1993, ch. 12
and 14). ``tests/harness/test_statistics.py`` checks the coverage by simulation at the seed counts
the lab uses. :class:`Decision` is the one three-valued outcome every verdict is made of, with the
words the reports use for it.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "Interval", "LEVEL", "mean_interval", "paired_difference"]

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
    """What the data say of a statement: yes, no, undecided (the interval straddles), or depends
    (yes under a condition the verdict names, no without it)."""

    YES = "holds"
    NO = "does not hold"
    UNDECIDED = "inconclusive"
    DEPENDS = "depends"

    @property
    def word(self) -> str:
        """The verb phrase for a sentence: "the claim holds / does not hold / is undecided /
        depends on a condition"."""
        return {Decision.UNDECIDED: "is undecided",
                Decision.DEPENDS: "depends on a condition"}.get(self, self.value)

    @classmethod
    def within(cls, interval: Interval, low: float, high: float) -> Decision:
        """Equivalence: YES if ``interval`` lies inside (low, high), NO if it lies entirely
        outside, UNDECIDED otherwise. With a 90% interval this is the two one-sided tests (TOST)
        at level 5% against the margin (Schuirmann 1987)."""
        if low < interval.low and interval.high < high:
            return cls.YES
        return cls.NO if interval.high < low or interval.low > high else cls.UNDECIDED

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
        """NO if any part is NO, YES if every part is YES, UNDECIDED otherwise (a part that
        depends is not a YES)."""
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


@functools.cache
def _t_quantile(level: float, df: int) -> float:
    from scipy import stats  # the lab extra; the core (gumbelkit compare) does without it

    return float(stats.t.ppf(0.5 + level / 2, df))


def mean_interval(values: Sequence[float] | np.ndarray, *, level: float = LEVEL,
                  lowest: float = -math.inf) -> Interval:
    """Student's t confidence interval of the mean of independent values (one per seed).

    ``lowest``: a bound the mean cannot pass (0 for a variance or a norm); the interval is cut
    there, which keeps its coverage (the part cut off cannot hold the mean)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("no values to make an interval of")
    estimate = float(data.mean())
    if data.size == 1:
        return Interval(estimate, estimate, estimate, 1)
    half = _t_quantile(level, data.size - 1) * float(data.std(ddof=1)) / np.sqrt(data.size)
    return Interval(estimate, max(estimate - half, lowest), estimate + half, int(data.size))


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, level: float = LEVEL
) -> Interval:
    """Interval of mean(a - b) for values paired by seed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return mean_interval(a - b, level=level)
