"""The layering of DESIGN.md section 3: data flows one way, and nothing imports from above.

core (everything outside the packages below) -> harness | workloads -> lab | bench -> cli.
harness and workloads are peers that do not import each other; so are lab and bench; an
experiment of the lab does not import another experiment. Read from the source with ``ast``, so
a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "gumbelkit"
LAYER = {"harness": 1, "workloads": 1, "lab": 2, "bench": 2, "cli": 3}
PEERS = {("harness", "workloads"), ("workloads", "harness"), ("lab", "bench"), ("bench", "lab")}


def part(module: str) -> str:
    """The package part of ``gumbelkit.x.y``: harness, workloads, lab, bench, cli or core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYER else "core"


def module_name(path: Path, root: Path = SOURCE) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[str]:
    """The gumbelkit modules ``path`` imports, relative imports resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [target] + [f"{target}.{alias.name}" for alias in node.names
                                 if node.module is None]
    return [m for m in found if m == "gumbelkit" or m.startswith("gumbelkit.")]


def violations(path: Path, root: Path = SOURCE) -> list[str]:
    name = module_name(path, root)
    source = part(name)
    wrong = []
    for target in imports(path, root):
        destination = part(target)
        level = {"core": 0, **LAYER}
        if level[destination] > level[source] or (source, destination) in PEERS:
            wrong.append(f"{name} imports {target} ({source} -> {destination})")
        if (source == destination == "lab" and name.split(".")[-1].startswith("e")
                and target.split(".")[-1].startswith("e") and target != name):
            wrong.append(f"{name} imports another experiment, {target}")
    return wrong


FILES = sorted(SOURCE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_module_imports_from_a_layer_above_it(path):
    assert violations(path) == []


def test_the_check_finds_a_violation(tmp_path):
    """The check is not vacuous: a core module importing the lab, a harness module importing a
    workload and an experiment importing another are each caught."""
    package = tmp_path / "gumbelkit"
    for name, text in {"sampling.py": "from .lab import EXPERIMENTS\n",
                       "harness/runner.py": "from ..workloads import vae\n",
                       "lab/e9_annealing.py": "from .e4_vae import Config\n",
                       "lab/answer.py": "from ..harness.report import Section\n"}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    found = {p.name: violations(p, package) for p in package.rglob("*.py")}
    assert len(found["sampling.py"]) == 1 and len(found["runner.py"]) == 1
    assert len(found["e9_annealing.py"]) == 1 and found["answer.py"] == []
