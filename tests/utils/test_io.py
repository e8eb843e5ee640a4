"""Atomic outputs: all or nothing, and the permissions an ordinary write would have (the umask honoured)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from helpers import KILL_WHILE_REPLACING, REPO, cli_env

from tfxc.errors import TfxcError
from tfxc.utils.io import (_host, atomic_directory, atomic_write_text, atomic_writer, exchange,
                           refuse_to_overwrite_inputs)


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


# === Killed writers (issue 39, D11): their temporaries go, the old output stays or comes back ===

def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=cli_env(), capture_output=True,
                          text=True, timeout=120)


# A writer killed (os._exit: no clean-up runs, as under SIGKILL) in the middle of both kinds of write.
KILLED_MID_WRITE = """
import os, sys
from tfxc.utils.io import atomic_directory, atomic_writer
with atomic_directory(sys.argv[2], marker="done") as tmp:
    with atomic_writer(sys.argv[1]) as f:
        f.write("half")
        f.flush()
        os._exit(9)
"""


def hidden(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write_of_the_same_output(tmp_path):
    out, saved = str(tmp_path / "out.jsonl"), str(tmp_path / "saved")
    assert run_python(KILLED_MID_WRITE, out, saved).returncode == 9
    assert len(hidden(tmp_path)) == 2          # `.out.jsonl.*.tmp` and `.saved.tmp-*`, left by the kill
    # A live writer's temporary and one of another host sharing the directory are not the next run's to delete.
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        others = [f".out.jsonl.{live.pid}@{_host()}-abc.tmp", ".out.jsonl.1234@otherhost-abc.tmp",
                  f".saved.tmp-{live.pid}@{_host()}-abc"]
        for name in others:
            (tmp_path / name).write_text("someone else's")
        atomic_write_text(out, "new")
        with atomic_directory(saved, marker="done") as tmp:
            open(os.path.join(tmp, "done"), "w").close()
        assert hidden(tmp_path) == sorted(others)
    finally:
        live.kill()
        live.wait()
    assert (tmp_path / "out.jsonl").read_text() == "new" and os.listdir(saved) == ["done"]


# A re-write of an existing directory killed between its two renames (a file system that cannot exchange
# two paths), or just after the exchange (before the old copy is deleted).
KILLED_IN_REPLACE = """
import os, shutil, sys
from tfxc.utils import io
path, where = sys.argv[1], sys.argv[2]
""" + KILL_WHILE_REPLACING + """with io.atomic_directory(path, marker="done") as tmp:
    with open(os.path.join(tmp, "done"), "w") as f:
        f.write("new")
"""


@pytest.mark.parametrize("where", ["between renames", "after the exchange"])
def test_a_kill_while_a_directory_is_replaced_keeps_a_complete_output_at_the_path(tmp_path, where):
    path = tmp_path / "saved"
    path.mkdir()
    (path / "done").write_text("old")
    assert run_python(KILLED_IN_REPLACE, str(path), where).returncode == 9
    if where == "after the exchange":
        assert (path / "done").read_text() == "new"  # swapped in one step: never a moment without an output
    # The next write of the path puts the old output back first (here it fails, so it is all there is) ...
    with pytest.raises(RuntimeError):
        with atomic_directory(str(path), marker="done"):
            raise RuntimeError("the next export fails")
    assert (path / "done").read_text() == ("old" if where == "between renames" else "new")
    assert hidden(tmp_path) == []                    # ... and removes what the killed one left
    with atomic_directory(str(path), marker="done") as tmp:
        (tmp_path / os.path.basename(tmp) / "done").write_text("newer")
    assert (path / "done").read_text() == "newer" and hidden(tmp_path) == []


def test_an_existing_directory_is_swapped_in_one_step_where_the_file_system_can(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    if not exchange(str(a), str(b)):
        pytest.skip("this file system cannot exchange two paths")
    assert (b / "x").read_text() == "a" and not (a / "x").exists()


def test_an_output_that_is_or_holds_an_input_is_refused(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("rows")
    os.symlink(data, tmp_path / "link.txt")
    os.link(data, tmp_path / "hard.txt")
    for output in (data, tmp_path / "link.txt", tmp_path / "hard.txt", tmp_path / "sub" / ".." / "in.txt"):
        with pytest.raises(TfxcError, match="is the input"):
            refuse_to_overwrite_inputs(str(output), {"input": str(tmp_path / "link.txt")})
    with pytest.raises(TfxcError, match="contains the model directory"):
        refuse_to_overwrite_inputs(str(tmp_path), {"model directory": str(tmp_path / "m")})
    refuse_to_overwrite_inputs(str(tmp_path / "out.txt"), {"input": str(data)})  # another file: fine


def test_a_new_directory_is_never_one_that_exists(tmp_path):
    from tfxc.utils.io import new_directory

    first = new_directory(str(tmp_path / "models"), "fit-1")
    (tmp_path / "models" / "fit-1" / "config.json").write_text("{}")  # another model lives there now
    second = new_directory(str(tmp_path / "models"), "fit-1")
    assert first == str(tmp_path / "models" / "fit-1") and second == first + "-2"
    assert os.listdir(second) == [] and new_directory(str(tmp_path / "models"), "fit-1") == first + "-3"


@pytest.mark.parametrize("writer", ["file", "directory"])
def test_a_signal_landing_as_the_temporary_is_created_leaves_nothing_behind(tmp_path, monkeypatch, writer):
    """SIGTERM between the temporary's creation and its name being kept left `.out.jsonl.<pid>@<host>.tmp`
    behind (predict's SIGTERM test, under load)."""
    import signal
    import tempfile

    from tfxc.utils.signals import Terminated, ending_signals_raise

    create = tempfile.mkstemp if writer == "file" else tempfile.mkdtemp

    def create_then_signalled(*args, **kwargs):
        made = create(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # lands before the caller has the temporary's name
        return made

    monkeypatch.setattr(tempfile, create.__name__, create_then_signalled)
    out = tmp_path / "out"
    with ending_signals_raise(), pytest.raises(Terminated):
        if writer == "file":
            with atomic_writer(str(out)) as f:
                f.write("never")
        else:
            with atomic_directory(str(out), "stats.json"):
                pass
    assert os.listdir(tmp_path) == []
