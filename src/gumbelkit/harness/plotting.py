"""matplotlib without a screen (Agg backend), and one way to save a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from .statistics import Interval  # noqa: E402

__all__ = ["errorbar", "plt", "save"]


def errorbar(ax: matplotlib.axes.Axes, x: np.ndarray, intervals: list[Interval],
             **kwargs: Any) -> None:
    """Points at the intervals' estimates with bars from low to high."""
    estimate = np.array([i.estimate for i in intervals])
    error = [estimate - [i.low for i in intervals], [i.high for i in intervals] - estimate]
    ax.errorbar(x, estimate, yerr=error, capsize=3, **kwargs)


def save(figure: matplotlib.figure.Figure, directory: Path, filename: str) -> str:
    """Write ``figure`` as ``directory/filename`` (PNG, 110 dpi), close it, return the name."""
    directory.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(directory / filename, dpi=110)
    plt.close(figure)
    return filename
