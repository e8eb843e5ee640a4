"""tfxc.data.files: opening plain and gzipped text with errors that name the file."""

from __future__ import annotations

import pytest
from helpers import write_text as write

from tfxc.data.files import open_text
from tfxc.errors import DataError


def test_open_text_plain_and_gzip(tmp_path):
    plain = write(tmp_path, "a.txt", "x\ny\n")
    zipped = write(tmp_path, "a.txt.gz", "x\ny\n")
    renamed = tmp_path / "nosuffix"
    renamed.write_bytes(zipped.read_bytes())  # gzip is detected by content
    for path in (plain, zipped, renamed):
        with open_text(path) as f:
            assert f.read() == "x\ny\n"


def test_open_text_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError) as e:
        open_text(path)
    assert str(e.value) == f"{path}: file not found"


def test_open_text_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        open_text(tmp_path)
