"""Statistics for verdicts: confidence intervals of means across seeds, and decisions.

The interval of a mean over n independent values (one per seed) is Student's t interval,
``mean +- t_{n-1, 1 - alpha/2} s / sqrt(n)``: exact for normal values at any n, which the percentile
bootstrap is not (at 4-6 seeds its "95%" intervals cover 80-89%; Efron and Tibshirani 1993, ch. 12
and 14). ``tests/harness/test_statistics.py`` checks the coverage by simulation at the seed counts
the lab uses. :class:`Decision` is the one three-valued outcome every verdict is made of, with the
words the reports use for it.

The level of every interval is :func:`level` unless a call names one: 95%, or what
:func:`confidence` sets for a block. :func:`holm` uses that to correct the verdicts of one
experiment for multiplicity (Holm 1979, "A simple sequentially rejective multiple test
procedure"): with m verdicts it decides them all at the level 1 - alpha/m, sets aside those that
came out decided, decides the k left at 1 - alpha/k, and so on until a round decides none. For a
verdict made of one test this is Holm's step-down procedure exactly (a test rejected at
alpha/k, k hypotheses left); a verdict made of several tests takes its family-wise share of alpha
the same way. Equivalence tests (TOST) use a ``1 - 2 alpha`` interval: :func:`equivalence_level`.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "Interval", "LEVEL", "confidence", "equivalence_level", "holm", "level",
           "goodness_of_fit", "mean_interval", "median_interval", "paired_difference"]

LEVEL = 0.95
_LEVEL = contextvars.ContextVar("gumbelkit_interval_level", default=LEVEL)


def level() -> float:
    """The two-sided level of the intervals made now (:data:`LEVEL` outside :func:`confidence`)."""
    return _LEVEL.get()


def equivalence_level() -> float:
    """The level of the interval an equivalence test (TOST) reads: ``1 - 2 alpha`` for the
    current two-sided ``1 - alpha`` (90% at 95%; Schuirmann 1987)."""
    return 1 - 2 * (1 - level())


@contextlib.contextmanager
def confidence(value: float) -> Iterator[None]:
    """Make the intervals of this block at the two-sided level ``value``."""
    if not 0 < value < 1:
        raise ValueError(f"a confidence level lies in (0, 1), got {value}")
    token = _LEVEL.set(value)
    try:
        yield
    finally:
        _LEVEL.reset(token)


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


def mean_interval(values: Sequence[float] | np.ndarray, *, level: float | None = None,
                  lowest: float = -math.inf) -> Interval:
    """Student's t confidence interval of the mean of independent values (one per seed), at
    ``level`` (default: :func:`level`).

    ``lowest``: a bound the mean cannot pass (0 for a variance or a norm); the interval is cut
    there, which keeps its coverage (the part cut off cannot hold the mean)."""
    level = _LEVEL.get() if level is None else level
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("no values to make an interval of")
    estimate = float(data.mean())
    if data.size == 1:
        return Interval(estimate, estimate, estimate, 1)
    half = _t_quantile(level, data.size - 1) * float(data.std(ddof=1)) / np.sqrt(data.size)
    return Interval(estimate, max(estimate - half, lowest), estimate + half, int(data.size))


def median_interval(values: Sequence[float] | np.ndarray, *, level: float | None = None,
                    lowest: float = -math.inf) -> Interval:
    """Distribution-free confidence interval of the median of independent values: the order
    statistics ``[x_(j), x_(n+1-j)]`` with the largest ``j`` whose coverage
    ``P(j <= B <= n - j)``, ``B ~ Binomial(n, 1/2)``, reaches ``level`` (Conover 1999,
    "Practical Nonparametric Statistics", section 3.2). Its coverage is at least ``level`` for
    any continuous law, where a t interval of a skewed mean falls short (variances across
    seeds, say). Too few values for ``level`` (below 6 at 95%): the interval is unbounded.
    """
    level = _LEVEL.get() if level is None else level
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if data.size == 0:
        raise ValueError("no values to make an interval of")
    from scipy import stats

    n = data.size
    covered = [j for j in range(1, n // 2 + 1)
               if 1 - 2 * stats.binom.cdf(j - 1, n, 0.5) >= level]
    estimate = float(np.median(data))
    if not covered:
        return Interval(estimate, lowest, math.inf, int(n))
    j = max(covered)
    return Interval(estimate, max(float(data[j - 1]), lowest), float(data[n - j]), int(n))


def goodness_of_fit(counts: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Chi-square p-value and total-variation distance ``TV = 1/2 sum_i |n_i / n - p_i|`` of
    counts ``n`` against probabilities ``p`` (any shape; categories of expected count below 5
    are pooled into one, so that the chi-square approximation holds)."""
    from scipy import stats  # the lab extra

    counts, probs = counts.ravel(), probs.ravel()
    expected = counts.sum() * probs
    keep = expected >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    p_value = float(stats.chisquare(observed, expected).pvalue) if len(observed) > 1 else 1.0
    tv = 0.5 * float(np.abs(counts / counts.sum() - probs).sum())
    return {"p_value": p_value, "tv": tv}


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
    level: float | None = None,
) -> Interval:
    """Interval of mean(a - b) for values paired by seed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return mean_interval(a - b, level=level)


def holm(decide: Callable[[], Sequence[Decision]], count: int, *, alpha: float = 1 - LEVEL
         ) -> list[float]:
    """The level at which each of ``count`` decisions stands, by Holm's step-down correction
    (module docstring).

    ``decide`` returns the ``count`` decisions, in a fixed order, made at the current
    :func:`level`; it is called inside :func:`confidence` once per round. A decision no round
    settles (UNDECIDED at every level tried) stands at the last round's level.
    """
    levels: dict[int, float] = {}
    while len(levels) < count:
        value = 1 - alpha / (count - len(levels))
        with confidence(value):
            decisions = list(decide())
        if len(decisions) != count:
            raise ValueError(f"decide() gave {len(decisions)} decisions, expected {count}")
        new = [i for i, d in enumerate(decisions)
               if i not in levels and d is not Decision.UNDECIDED]
        if not new:
            return [levels.get(i, value) for i in range(count)]
        levels.update(dict.fromkeys(new, value))
    return [levels[i] for i in range(count)]
