"""The lab's report: the seed thread's question, the answer assembled from the verdicts, the
evidence; and :func:`run_lab`, which runs the experiments on the harness and writes it.

The answer groups the experiments by their computed verdicts (each line linking to its section);
the evidence quotes each verdict's sentence with its numbers. Nothing in it is written by hand.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..harness.executors import Executor
from ..harness.protocol import Experiment
from ..harness.report import Block, Bullets, Paragraph, Section
from ..harness.runner import Outcome, run_sweep, select
from ..harness.statistics import Decision

__all__ = ["QUESTION", "TITLE", "answer_blocks", "run_lab"]

TITLE = "When does Gumbel noise help, compared with softmax with temperature?"
QUESTION = (
    "From a practical and theoretical perspective, when is it beneficial to incorporate Gumbel "
    "noise into a neural network, as opposed to just using Softmax with temperature?"
)
GROUPS = (
    (Decision.YES, "The thread is right, measured here:"),
    (Decision.DEPENDS, "The thread is right only under a condition, measured here:"),
    (Decision.NO, "The thread is wrong, measured here:"),
    (Decision.UNDECIDED, "The data here cannot decide:"),
)


def answer_blocks(sections: list[Section]) -> list[Block]:
    """The claims grouped by their computed verdicts (empty groups left out), then the evidence:
    each verdict's sentence with its numbers."""
    blocks: list[Block] = []
    for decision, heading in GROUPS:
        members = [s for s in sections if s.verdict and s.verdict.decision is decision]
        if members:
            blocks += [Paragraph(heading, strong=True),
                       Bullets([(s.id, s.claim_summary) for s in members])]
    evidence = [(s.id, f"{s.title} — the claim {s.verdict.decision.word}: {s.verdict.answer}")
                for s in sections if s.verdict]
    blocks += [Paragraph("The evidence, claim by claim", strong=True), Bullets(evidence)]
    return blocks


def run_lab(
    out_dir: str | Path,
    experiments: dict[str, Experiment],
    *,
    budget: str = "quick",
    only: Sequence[str] | None = None,
    overrides: dict[str, Any] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    executor: Executor | None = None,
    device: str = "cpu",
    threads: int | None = 1,
    command: str = "gumbelkit lab",
    show_progress: bool = True,
) -> Outcome:
    """Run the selected experiments at ``budget`` and write the report into ``out_dir``.

    ``overrides`` sets configuration fields (such as ``data_dir``) on every experiment whose
    configuration has them; ``settings`` sets fields of one experiment (``{"E2": {"categories":
    2}}``). Finished runs are recorded in ``out_dir/runs.sqlite`` and reused by the next call.
    """
    chosen = []
    for experiment in select(experiments, only):
        config = experiment.make_config(budget)
        fields = {f.name for f in dataclasses.fields(config)}
        given = {k: v for k, v in (overrides or {}).items() if k in fields}
        config = dataclasses.replace(config, **given,
                                     **(settings or {}).get(experiment.id, {}))
        chosen.append((experiment, config))
    return run_sweep(out_dir, chosen, title=TITLE, quote=QUESTION, intro=answer_blocks,
                     intro_heading="The answer", executor=executor, device=device,
                     threads=threads, command=command, show_progress=show_progress)
