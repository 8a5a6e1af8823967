"""matplotlib without a screen (Agg backend), and one way to save a figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

__all__ = ["plt", "save"]


def save(figure: matplotlib.figure.Figure, directory: Path, filename: str) -> str:
    """Write ``figure`` as ``directory/filename`` (PNG, 110 dpi), close it, return the name."""
    directory.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(directory / filename, dpi=110)
    plt.close(figure)
    return filename
