"""Run records: the digest covers what decides a result; records of separate files merge."""

import hashlib
import json
import sqlite3
from contextlib import closing

from gumbelkit.cli import main
from gumbelkit.harness.records import RunStore, config_digest

from .fake import Config as FakeConfig


def former_digest(body):
    """The digest's rule before the device was left out: a hash of every field."""
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def keyed_body(**fields):
    return FakeConfig(**fields).keyed()


def test_the_digest_covers_the_keyed_fields_only():
    assert FakeConfig(sleep=1.0, log="x").digest() == FakeConfig().digest()
    assert FakeConfig(threshold=1.0).digest() != FakeConfig().digest()
    assert set(FakeConfig().keyed()) == {"seeds", "threshold"}
    # a configuration whose fields are all keyed (every lab experiment's) keeps the digest it
    # had, so runs recorded before are still found; a recorded body with the device it once
    # carried gets the digest of the body without it
    body = keyed_body()
    assert FakeConfig().digest() == former_digest(body)
    assert config_digest({**body, "device": "cuda"}) == FakeConfig().digest()


def record(path, body, digest, runs):
    """Runs recorded as a benchmark records them: the configuration registered under ``digest``,
    then one result per key."""
    with RunStore(path) as store:
        store.register_config("bench-poly", digest, body)
        for key, value in runs:
            store.put("bench-poly", digest, key, {"value": value}, seconds=1.0)


def test_merge_files_runs_of_one_configuration_together(tmp_path):
    """Runs made on a GPU and on a CPU, and runs recorded under the former digest, are found
    under the configuration's digest once merged; a run in both files keeps the target's."""
    cpu, gpu = {**keyed_body(), "device": "cpu"}, {**keyed_body(), "device": "cuda"}
    record(tmp_path / "old.sqlite", cpu, former_digest(cpu),
           [({"power": 2.0, "estimator": "st"}, 1), ({"power": 3.0, "estimator": "st"}, 2)])
    record(tmp_path / "gpu.sqlite", gpu, config_digest(gpu),
           [({"power": 2.0, "estimator": "gr"}, 3), ({"power": 2.0, "estimator": "st"}, 4)])
    assert former_digest(cpu) != config_digest(cpu)
    with RunStore(tmp_path / "merged" / "runs.sqlite") as merged:
        assert merged.merge(tmp_path / "old.sqlite") == 2
        assert merged.merge(tmp_path / "gpu.sqlite") == 1  # (2.0, st) is recorded already
        assert merged.merge(tmp_path / "gpu.sqlite") == 0
        digest = FakeConfig().digest()
        values = {(p, e): merged.get("bench-poly", digest, {"power": p, "estimator": e})
                  for p, e in ((2.0, "st"), (3.0, "st"), (2.0, "gr"))}
        assert values == {(2.0, "st"): {"value": 1}, (3.0, "st"): {"value": 2},
                          (2.0, "gr"): {"value": 3}}
        configs = merged.connection.execute("SELECT experiment, config FROM configs").fetchall()
        assert configs == [("bench-poly", digest)]
    # the sources are read, not changed
    with closing(sqlite3.connect(tmp_path / "old.sqlite")) as old:
        assert {row[0] for row in old.execute("SELECT config FROM runs")} == {former_digest(cpu)}


def test_merge_runs_command(tmp_path, capsys):
    body = keyed_body()
    for name, estimator in (("a.sqlite", "st"), ("b.sqlite", "gr")):
        record(tmp_path / name, body, config_digest(body),
               [({"power": 2.0, "estimator": estimator}, 0)])
    target = tmp_path / "all" / "runs.sqlite"
    assert main(["merge-runs", str(target), str(tmp_path / "a.sqlite"),
                 str(tmp_path / "b.sqlite")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{tmp_path / 'a.sqlite'}: 1 run(s) added", f"{tmp_path / 'b.sqlite'}: 1 run(s) added"]
    with closing(sqlite3.connect(target)) as merged:
        assert merged.execute("SELECT COUNT(*) FROM runs").fetchone() == (2,)
    assert main(["merge-runs", str(target), str(tmp_path / "missing.sqlite")]) == 2
    assert "no run records at" in capsys.readouterr().err
