"""Run records: every finished run, in an SQLite database in the output directory.

A run is written in its own transaction as soon as it finishes, keyed by (experiment, digest of
the configuration, run key), so an interrupted sweep loses at most the runs in flight and the next
one with the same configuration reuses everything that finished. Only the driving process writes
the file (workers return their results to it: SQLite must not be written over a network file
system). The digest covers only what decides a run's result
(:meth:`gumbelkit.harness.protocol.ExperimentConfig.keyed`), so runs recorded on a GPU and on a
CPU, or by separate processes into separate files merged afterwards (:meth:`RunStore.merge`), are
one configuration's. Each run's wall time is recorded too: the runner plans and shows progress
with it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    experiment TEXT NOT NULL,
    config TEXT NOT NULL,
    key TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished REAL NOT NULL,
    PRIMARY KEY (experiment, config, key)
);
CREATE TABLE IF NOT EXISTS configs (
    experiment TEXT NOT NULL,
    config TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (experiment, config)
);
"""


def resume_hint(path: Path) -> str:
    """What to tell the user when a recorded run is interrupted."""
    return (f"\ninterrupted: finished runs are recorded in {path}; run the same command again "
            "to resume")


# a field that configurations recorded by earlier versions carried, and that never decided a
# result: left out of the digest, so that their runs are found again
LEGACY_UNKEYED = frozenset({"device"})


def config_digest(body: dict[str, Any]) -> str:
    """A stable hash of a configuration's keyed fields: what finds its runs."""
    keyed = {name: value for name, value in body.items() if name not in LEGACY_UNKEYED}
    text = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_key(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def check_records_file(path: str | Path) -> Path:
    """``path`` as a Path; a ValueError unless it is a readable SQLite file of run records."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no run records at {path}: "
                         + ("it is a directory; give the runs.sqlite in it" if path.is_dir()
                            else "no such file"))
    try:
        connection = sqlite3.connect(path)
        try:
            tables = {name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise ValueError(f"{path} cannot be read as an SQLite file of run records ({error})"
                         ) from None
    if not {"runs", "configs"} <= tables:
        raise ValueError(f"{path} is an SQLite file but holds no run records (no runs and "
                         "configs tables): is it the runs.sqlite of a gumbelkit sweep?")
    return path


class RunStore:
    """The SQLite file of run records (one connection, used from one process); created if
    missing, a ValueError if the file is not an SQLite database."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.path)
        try:
            # write-ahead logging, synced at checkpoints: a commit survives the process being
            # killed (what an interrupted sweep needs) without an fsync per run (~10 ms each)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            with self.connection:
                self.connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            self.connection.close()
            raise ValueError(f"{self.path} is not a file of run records ({error}); move it "
                             "away or choose another output") from None

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_config(self, experiment: str, digest: str, body: dict[str, Any]) -> None:
        with self.connection:
            self.connection.execute(
                "INSERT OR IGNORE INTO configs VALUES (?, ?, ?)",
                (experiment, digest, json.dumps(body, sort_keys=True, default=str)),
            )

    def get(self, experiment: str, digest: str, key: dict[str, Any]) -> dict[str, Any] | None:
        row = self.connection.execute(
            "SELECT result FROM runs WHERE experiment = ? AND config = ? AND key = ?",
            (experiment, digest, encode_key(key)),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, experiment: str, digest: str, key: dict[str, Any], result: dict[str, Any],
            seconds: float) -> None:
        with self.connection:  # one transaction per run
            self.connection.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                (experiment, digest, encode_key(key), json.dumps(result), seconds, time.time()),
            )

    def merge(self, source: str | Path) -> int:
        """Add the configurations and runs recorded in another file; returns the runs added.

        Each run is filed under the digest that :func:`config_digest` gives its registered
        configuration now, so that records made before the digest's rule changed are found again;
        a run recorded here already is kept as it is. The source's records are not changed (its
        journal is rolled back, as on any opening, if a process was killed while writing it).
        """
        other = sqlite3.connect(check_records_file(source))
        try:
            configs = other.execute("SELECT experiment, config, body FROM configs").fetchall()
            runs = other.execute("SELECT * FROM runs").fetchall()
        finally:
            other.close()
        digests = {(experiment, digest): config_digest(json.loads(body))
                   for experiment, digest, body in configs}
        with self.connection:  # one transaction: all of the file or none of it
            self.connection.executemany(
                "INSERT OR IGNORE INTO configs VALUES (?, ?, ?)",
                [(experiment, digests[experiment, digest], body)
                 for experiment, digest, body in configs])
            before = self.connection.total_changes
            self.connection.executemany(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)",
                [(experiment, digests.get((experiment, digest), digest), *rest)
                 for experiment, digest, *rest in runs])
        return self.connection.total_changes - before

    def recorded(self, experiment: str, digest: str) -> dict[str, dict[str, Any]]:
        """Every recorded result of one configuration, by encoded key (:func:`encode_key`)."""
        rows = self.connection.execute(
            "SELECT key, result FROM runs WHERE experiment = ? AND config = ?",
            (experiment, digest)).fetchall()
        return {key: json.loads(result) for key, result in rows}

    def mean_seconds(self) -> dict[str, float]:
        """The mean recorded wall time of a run, per experiment (any configuration)."""
        rows = self.connection.execute(
            "SELECT experiment, AVG(seconds) FROM runs GROUP BY experiment").fetchall()
        return dict(rows)
