"""A tiny stand-in experiment for testing the runner, the records and the report."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gumbelkit.lab.experiment import Claim, Experiment, ExperimentConfig, Figure, Table, Verdict
from gumbelkit.lab.plotting import plt, save
from gumbelkit.lab.statistics import Interval, bootstrap


@dataclass
class Config(ExperimentConfig):
    seeds: int = 4
    threshold: float = 0.0


class FakeExperiment(Experiment):
    """Runs draw a normal mean per seed; the claim is that the mean exceeds the threshold."""

    title = "a fake claim"
    claim_summary = "The mean is positive."
    claims = (Claim("the mean is positive", "a test"),)
    config_class = Config

    def __init__(self, id: str, fail_at: int | None = None) -> None:
        self.id = id
        self.fail_at = fail_at
        self.calls = 0

    def setup(self, config):
        return f"{config.seeds} seeds"

    def runs(self, config):
        return [{"seed": s} for s in range(config.seeds)]

    def run(self, config, key, device):
        self.calls += 1
        if key["seed"] == self.fail_at:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C during this run
        gen = torch.Generator().manual_seed(key["seed"])
        return {"value": float(torch.randn(100, generator=gen).mean() + 1.0)}

    def summarize(self, config, results):
        values = [r["value"] for _, r in results]
        return {"mean": bootstrap(values).to_dict(), "threshold": config.threshold}

    def verdict(self, summary):
        mean = Interval.from_dict(summary["mean"])
        holds = True if mean.above(summary["threshold"]) else (
            False if mean.below(summary["threshold"]) else None)
        return Verdict(holds, f"the mean is {mean.format()}")

    def tables(self, summary):
        return [Table(["mean"], [[Interval.from_dict(summary["mean"]).format()]])]

    def figures(self, summary, directory):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, summary["mean"]["estimate"]])
        return [Figure(save(fig, directory, f"{self.id.lower()}_line.png"), "a line")]
