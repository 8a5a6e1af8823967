"""A tiny stand-in experiment for testing the runner, the executors, the records and the report."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import torch

from gumbelkit.harness.plotting import plt, save
from gumbelkit.harness.protocol import (
    Claim,
    Experiment,
    ExperimentConfig,
    Figure,
    Table,
    Verdict,
    option,
)
from gumbelkit.harness.statistics import Decision, mean_interval


@dataclass
class Config(ExperimentConfig):
    seeds: int = 4
    threshold: float = 0.0
    # test hooks, which decide nothing of a run's result (so they are left out of the digest):
    # seconds a run sleeps, so that runs overlap; the seed at which a run interrupts the driver
    # (SIGINT to the process ``driver``, halfway through its sleep, so that the results finished
    # before it have reached the driver), as Ctrl-C would while that run is in flight
    sleep: float = option(0.0, keyed=False)
    interrupt_at: int = option(-1, keyed=False)
    driver: int = option(0, keyed=False)
    log: str = option("", keyed=False)  # a file each run appends its end (or interrupt) time to


def _log(config: Config, seed: int, event: str) -> None:
    if config.log:
        with open(config.log, "a") as handle:
            handle.write(f"{seed} {event} {time.time()!r}\n")


class FakeExperiment(Experiment):
    """Runs draw a normal mean per seed; the claim is that the mean exceeds the threshold."""

    title = "a fake claim"
    claim_summary = "The mean is positive."
    claims = (Claim("the mean is positive", "a test"),)
    config_class = Config
    threads = 1

    def __init__(self, id: str) -> None:
        self.id = id

    def setup(self, config):
        return f"{config.seeds} seeds"

    def runs(self, config):
        return [{"seed": s} for s in range(config.seeds)]

    def run(self, config, key, device):
        began = time.time()
        if key["seed"] == config.interrupt_at:
            time.sleep(config.sleep / 2)
            _log(config, key["seed"], "interrupt")
            os.kill(config.driver, signal.SIGINT)
        time.sleep(config.sleep)
        gen = torch.Generator().manual_seed(key["seed"])
        result = {"value": float(torch.randn(100, generator=gen).mean() + 1.0),
                  "pid": os.getpid(), "began": began, "ended": time.time()}
        _log(config, key["seed"], "end")
        return result

    def summarize(self, config, results):
        return {"mean": mean_interval([r["value"] for _, r in results]),
                "threshold": config.threshold}

    def verdict(self, summary):
        mean = summary["mean"]
        return Verdict(Decision.above(mean, summary["threshold"]), f"the mean is {mean.format()}")

    def tables(self, summary):
        return [Table(["mean"], [[summary["mean"]]])]

    def figures(self, summary, directory):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, summary["mean"].estimate])
        return [Figure(save(fig, directory, f"{self.id.lower()}_line.png"), "a line")]


def experiments(*ids: str) -> dict[str, FakeExperiment]:
    return {i: FakeExperiment(i) for i in ids}
