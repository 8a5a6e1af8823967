"""The real ``gumbelkit`` command in a subprocess, and strict reading of the JSON it writes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def gumbelkit(bin_dir: Path | None = None) -> list[str]:
    """The console script installed beside the interpreter (``bin_dir``: another environment's
    ``bin``), or ``python -m gumbelkit.cli`` where it is not installed."""
    script = (bin_dir or Path(sys.executable).parent) / "gumbelkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gumbelkit.cli"]


def default_sigint() -> None:
    """In the child, before exec: Ctrl-C's default disposition, so that Python installs its
    KeyboardInterrupt handler even when this process was started with SIGINT ignored (a
    background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run(args: list[str], cwd: Path, timeout: float = 120, bin_dir: Path | None = None
        ) -> subprocess.CompletedProcess:
    return subprocess.run(gumbelkit(bin_dir) + args, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _reject(token: str) -> Any:
    raise ValueError(f"not strict JSON: {token}")


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses the NaN, Infinity and -Infinity tokens Python's json writes
    by default and strict parsers reject."""
    return json.loads(text, parse_constant=_reject)


def one_error_line(stderr: str) -> str:
    """The one line a refused command writes on stderr (an AssertionError if there is more, or
    a traceback)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("gumbelkit") and ": error: " in lines[0], lines[0]
    return lines[0]
