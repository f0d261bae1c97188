"""A bug is one line and exit 70 even when its traceback cannot be saved anywhere (a full or
unwritable temp folder): the bug path itself must never print a traceback."""
from __future__ import annotations

import tempfile

from harness import cli


def _raised() -> BaseException:
    try:
        {}["missing"]
    except KeyError as exc:
        return exc


def test_a_traceback_that_cannot_be_saved_is_said_in_one_line(monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tempfile, "mkstemp", full)
    code = cli._bug(_raised(), None)
    err = capsys.readouterr().err.strip()
    assert code == cli.BUG
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "could not be saved (No space left on device)" in err
    assert "KeyError: 'missing'" in err and "test_cli_bug.py" in err and "in _raised" in err   # where it was raised


def test_a_traceback_is_saved_in_the_temp_folder_when_there_is_no_run_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli._bug(_raised(), None) == cli.BUG
    err = capsys.readouterr().err.strip()
    (saved,) = tmp_path.glob("tcp-testbed-traceback-*.txt")
    assert f"the traceback is in {saved}" in err and "KeyError" in saved.read_text()
