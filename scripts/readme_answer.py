"""Write the README's answer section from a lab run's recorded results, and keep a copy of them.

    python scripts/readme_answer.py [lab-report]

reads ``results.json`` and ``run.json`` of the lab's output directory, copies them to
``benchmarks/lab/`` (the recorded results the README is generated from, which
``tests/lab/test_readme_answer.py`` checks it against), and replaces the block between the
markers of :data:`gumbelkit.lab.answer.README_START` and ``README_END`` in README.md. Nothing in
the block is written by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from gumbelkit.lab.answer import README_END, README_START, readme_block

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "benchmarks" / "lab"


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "lab-report")
    RECORDED.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "run.json"):
        shutil.copyfile(source / name, RECORDED / name)
    block = readme_block(json.loads((RECORDED / "results.json").read_text()),
                         json.loads((RECORDED / "run.json").read_text()), "lab-report/report.md")
    readme = ROOT / "README.md"
    text = readme.read_text()
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    readme.write_text(before + block + after)
    print(f"README.md's answer rewritten from {source}; recorded results in {RECORDED}")


if __name__ == "__main__":
    main()
