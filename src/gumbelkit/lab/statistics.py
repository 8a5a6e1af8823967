"""Uncertainty for the lab's verdicts: bootstrap confidence intervals across seeds.

Percentile bootstrap (Efron and Tibshirani 1993) with a fixed seed, so a summary is a deterministic
function of the recorded runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

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

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> Interval:
        return cls(float(data["estimate"]), float(data["low"]), float(data["high"]),
                   int(data["n"]))

    def format(self, digits: int = 3) -> str:
        return f"{self.estimate:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


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


def all_or_any(outcomes: Iterable[object], success: object, failure: object) -> bool | None:
    """A verdict from several outcomes: False if any is ``failure``, True if every one is
    ``success``, None (undecided) otherwise."""
    outcomes = list(outcomes)
    if failure in outcomes:
        return False
    return True if all(o == success for o in outcomes) else None


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, **kwargs: float
) -> Interval:
    """Bootstrap interval of mean(a - b) for values paired by seed."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same shape, got {a.shape} and {b.shape}")
    return bootstrap(a - b, **kwargs)
