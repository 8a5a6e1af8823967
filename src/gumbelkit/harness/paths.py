"""Output paths checked before any work: a clear ValueError up front, not a traceback after a run.

A directory that does not exist yet is writable when its nearest existing ancestor is a directory
in which a file can be created. That is tried (a temporary file, removed at once), since
permission bits alone do not tell (a superuser, a read-only mount, ``/proc``). A check leaves
nothing behind: the directories are made by whoever writes into them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_output_directory", "check_output_file"]


def check_output_directory(path: str | Path, what: str = "output directory") -> Path:
    """``path`` as a Path; a ValueError naming ``what`` unless a directory can be made or
    written there."""
    path = Path(path)
    _refuse(what, path, _unwritable_directory(path))
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """``path`` as a Path; a ValueError naming ``what`` unless the file can be written (created
    or replaced)."""
    path = Path(path)
    if path.is_dir():
        problem = "it is a directory, not a file"
    elif path.exists() and not os.access(path, os.W_OK):
        problem = "it is not writable"
    else:
        problem = _unwritable_directory(path.parent)
    _refuse(what, path, problem)
    return path


def _refuse(what: str, path: Path, problem: str | None) -> None:
    if problem:
        raise ValueError(f"{what} {path}: {problem}; choose another path")


def _unwritable_directory(path: Path) -> str | None:
    """Why no file can be written in the directory ``path`` (made if missing), or None."""
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"cannot write in {existing} ({error.strerror or error})"
    return None
