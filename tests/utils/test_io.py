"""Atomic outputs: all or nothing, and the permissions an ordinary write would have (the umask honoured)."""

from __future__ import annotations

import os
import stat

import pytest

from tfxc.errors import TfxcError
from tfxc.utils.io import atomic_directory, atomic_write_text, atomic_writer


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                        (0o077, 0o600, 0o700)])
def test_outputs_get_the_umask_permissions_not_the_private_temp_ones(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        atomic_write_text(str(tmp_path / "a.txt"), "x")
        with atomic_writer(str(tmp_path / "b.bin"), binary=True) as f:
            f.write(b"\x00")
        with atomic_directory(str(tmp_path / "out"), marker="done") as tmp:
            open(os.path.join(tmp, "done"), "w").close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.txt") == file_mode and mode(tmp_path / "b.bin") == file_mode
    assert mode(tmp_path / "out") == dir_mode
    assert (tmp_path / "a.txt").read_text() == "x" and (tmp_path / "b.bin").read_bytes() == b"\x00"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_writer(str(path)) as f:
            f.write("new")
            raise RuntimeError("boom")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


def test_a_directory_of_other_files_is_never_replaced(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(TfxcError, match="is not a previous output"):
        with atomic_directory(str(tmp_path / "mine"), marker="saved_model.pb"):
            pass
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
