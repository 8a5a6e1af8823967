"""Output paths and run-record files checked before any work, leaving nothing behind."""

import os

import pytest

from gumbelkit.harness.paths import check_output_directory, check_output_file
from gumbelkit.harness.records import RunStore, check_records_file


def test_a_new_directory_below_a_writable_one_passes_and_is_not_made(tmp_path):
    assert check_output_directory(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert check_output_file(tmp_path / "a" / "rows.json") == tmp_path / "a" / "rows.json"
    assert list(tmp_path.iterdir()) == []  # the probe file is gone, no directory made


def test_a_file_in_the_way_or_a_directory_for_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="afile is a file, not a directory; choose another"):
        check_output_directory(tmp_path / "afile" / "out")
    with pytest.raises(ValueError, match=r"--json .*afile/rows.json: .*afile is a file"):
        check_output_file(tmp_path / "afile" / "rows.json", "--json")
    with pytest.raises(ValueError, match="it is a directory, not a file"):
        check_output_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="the superuser may write in a read-only directory")
def test_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ValueError, match="cannot write in .*locked"):
            check_output_directory(locked / "out")
    finally:
        locked.chmod(0o700)


def test_only_an_sqlite_file_of_run_records_is_read(tmp_path):
    (tmp_path / "junk.sqlite").write_text("not a database")
    with pytest.raises(ValueError, match="cannot be read as an SQLite file of run records"):
        check_records_file(tmp_path / "junk.sqlite")
    with pytest.raises(ValueError, match="is not a file of run records"):
        RunStore(tmp_path / "junk.sqlite")
    with pytest.raises(ValueError, match="it is a directory; give the runs.sqlite in it"):
        check_records_file(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        check_records_file(tmp_path / "missing.sqlite")
    RunStore(tmp_path / "runs.sqlite").close()
    assert check_records_file(tmp_path / "runs.sqlite") == tmp_path / "runs.sqlite"
