"""Write the README's answer sections from lab runs' recorded results, and keep a copy of them.

    python scripts/readme_answer.py [lab-report] [--full lab-full]

reads ``results.json`` and ``run.json`` of the lab's output directory, copies them to
``benchmarks/lab/`` (the recorded results the README is generated from, which
``tests/lab/test_readme_answer.py`` checks it against), and replaces the block between the
markers of :data:`gumbelkit.lab.answer.README_START` and ``README_END`` in README.md. With
``--full DIR`` (the output of ``gumbelkit lab --full``) it also copies that run's files to
``benchmarks/lab-full/``; the block between ``BUDGETS_START`` and ``BUDGETS_END``, each claim's
verdict at both budgets, is rewritten from the recorded files of both. Nothing in either block
is written by hand.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from gumbelkit.lab.answer import (
    BUDGETS_END,
    BUDGETS_START,
    README_END,
    README_START,
    budgets_block,
    read_outcome,
    readme_block,
)

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "lab"
RECORDED_FULL = ROOT / "benchmarks" / "lab-full"


def record(source: Path, target: Path) -> tuple[dict, dict]:
    """Copy a lab's results.json and run.json to ``target``; return them."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "run.json"):
        shutil.copyfile(source / name, target / name)
    return read_outcome(target)


def replace_block(text: str, start: str, end: str, block: str) -> str:
    before, rest = text.split(start, 1)
    return before + block + rest.split(end, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="lab-report", type=Path)
    parser.add_argument("--full", type=Path, help="output directory of `gumbelkit lab --full`")
    args = parser.parse_args()
    results, run = record(args.source, RECORDED)
    readme = ROOT / "README.md"
    text = replace_block(readme.read_text(), README_START, README_END,
                         readme_block(results, run, "lab-report/report.md"))
    full_results, full_run = (record(args.full, RECORDED_FULL) if args.full
                              else read_outcome(RECORDED_FULL))
    text = replace_block(text, BUDGETS_START, BUDGETS_END,
                         budgets_block(results, full_results, full_run))
    readme.write_text(text)
    print(f"README.md's answer rewritten from {args.source}"
          + (f" and {args.full}" if args.full else "")
          + f"; recorded results in {RECORDED} and {RECORDED_FULL}")


if __name__ == "__main__":
    main()
