"""The benchmarks' check of the estimators a configuration names."""

from __future__ import annotations

from collections.abc import Sequence

from ..estimators import ESTIMATORS as REGISTRY


def check_estimators(estimators: Sequence[str], supported: Sequence[str] | None = None) -> None:
    """ValueError for an empty list, a name that is not in ``gk.ESTIMATORS``, or one that the
    benchmark has no settings for (``supported``, when given)."""
    if not estimators:
        raise ValueError("give at least one estimator")
    unknown = [name for name in estimators if name not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown estimator(s) {', '.join(unknown)}; "
                         f"known estimators: {', '.join(REGISTRY)}")
    if supported is not None:
        missing = [name for name in estimators if name not in supported]
        if missing:
            raise ValueError(f"this benchmark has no settings for {', '.join(missing)}; "
                             f"it runs {', '.join(supported)}")
