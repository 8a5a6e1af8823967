"""The sweep commands: lab options reach the configurations, and the executor changes nothing of
the results."""

import json

from gumbelkit.cli import main


def lab(tmp_path, name, *options):
    out = tmp_path / name
    assert main(["lab", "--smoke", "--only", "E2,E8", "--out", str(out), *options]) == 0
    return out


def test_lab_with_two_jobs_writes_what_one_job_writes(tmp_path, capsys):
    one, two = lab(tmp_path, "one"), lab(tmp_path, "two", "--jobs", "2")
    assert (one / "results.json").read_text() == (two / "results.json").read_text()
    strip = [line for line in (one / "report.md").read_text().splitlines()
             if not line.startswith("Produced by")]
    assert strip == [line for line in (two / "report.md").read_text().splitlines()
                     if not line.startswith("Produced by")]
    assert "The answer" in capsys.readouterr().out


def test_set_overrides_one_field_of_one_experiment(tmp_path, capsys):
    out = lab(tmp_path, "set", "--set", "E2.categories=3,5", "--set", "e2.taus=0.5,2")
    configs = {eid: e["config"] for eid, e in
               json.loads((out / "results.json").read_text())["experiments"].items()}
    assert configs["E2"]["categories"] == [3, 5] and configs["E2"]["taus"] == [0.5, 2.0]
    assert configs["E8"]["categories"] == 4  # the other experiment keeps its own
    for bad, message in ((["--set", "E2.colours=3"], "has no field 'colours'"),
                         (["--set", "E42.seeds=3"], "unknown experiment"),
                         (["--set", "E2.categories"], "ID.field=value"),
                         (["--set", "E2.seeds=three"], "E2.seeds=three"),
                         (["--set", "E3.estimators=st,nope"], "unknown estimator 'nope'"),
                         (["--set", "E2.taus=0.5,-1"], "taus: tau must be"),
                         (["--set", "E2.seeds=0"], "seeds must be")):
        assert main(["lab", "--smoke", "--only", "E2,E3", "--out", str(tmp_path / "bad"),
                     *bad]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_data_directory_given_by_name_must_hold_the_data(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["lab", "--smoke", "--only", "E4", "--data-dir", str(empty),
                 "--out", str(tmp_path / "out")]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
