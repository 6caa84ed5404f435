import os

import pytest

from gradattn.fileio import atomic_write_bytes, atomic_write_csv, atomic_write_text


def test_atomic_write_creates_folders_and_replaces_whole(tmp_path):
    target = tmp_path / "a" / "b" / "file.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["file.txt"]          # no temporary file left behind
    assert target.stat().st_mode & 0o044                        # readable by others, unlike mkstemp's 0600


def test_failed_write_keeps_the_old_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")                 # fails while writing the temporary file
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_csv_rows_are_written_under_the_header_with_unix_line_endings(tmp_path):
    target = tmp_path / "runs.csv"
    atomic_write_csv(target, [{"a": 1, "b": "x,y"}, {"a": 2}], ["a", "b"])
    assert target.read_bytes() == b'a,b\n1,"x,y"\n2,\n'


def test_a_csv_row_with_an_unknown_column_is_refused_unless_extras_are_ignored(tmp_path):
    target = tmp_path / "runs.csv"
    atomic_write_csv(target, [{"a": 1}], ["a"])
    with pytest.raises(ValueError, match="typo"):
        atomic_write_csv(target, ({"a": 2, "typo": 3} for _ in range(1)), ["a"])
    assert target.read_text() == "a\n1\n"                       # the old table stays whole
    assert os.listdir(tmp_path) == ["runs.csv"]
    atomic_write_csv(target, [{"a": 2, "typo": 3}], ["a"], ignore_extra=True)
    assert target.read_text() == "a\n2\n"
