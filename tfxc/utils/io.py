"""Atomic file output: write to a temporary name in the same directory, then rename.

Temporary files and directories are created private (0600/0700, Python's
`tempfile` defaults) and given the permissions an ordinary `open`/`mkdir`
would have (0666/0777 minus the process umask) just before they are renamed
into place, so an export can be read by a serving process under another user
exactly when the umask allows it.

A temporary name carries its writer (`<pid>@<host>`), e.g.
`.out.jsonl.4711@box-k2j4x1.tmp` or `.saved.tmp-4711@box-k2j4x1`. A write that
is killed (SIGKILL, power loss) cannot clean up after itself, so the next
atomic write of the same path removes the temporaries whose writer is gone; a
temporary of a live writer, or of a writer on another host sharing the
directory, is never touched.

A directory that already exists is replaced so that at every instant the path
holds either the complete old output or the complete new one: one
`renameat2(RENAME_EXCHANGE)` swaps the two on Linux. Where the file system
cannot exchange (NFS, some FUSE mounts, other systems) the old directory is
first renamed aside to `<temporary>.old`; a writer killed between that rename
and the next one leaves the path missing for a moment, and the next write of
the path (or `recover_directory`) puts the old output back before anything else.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import socket
import tempfile

from tfxc.errors import TfxcError
from tfxc.utils.signals import raise_if_signalled, signals_deferred


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: str, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


# === Temporaries named after their writer ===

# `<pid>@<host>-` then tempfile's random part; a host name is reduced to [A-Za-z0-9_] so that '-' ends it.
_OWNER = re.compile(r"(\d+)@(\w+)-")


def _host() -> str:
    return re.sub(r"\W", "_", socket.gethostname(), flags=re.ASCII) or "localhost"


def _owner_tag() -> str:
    """`<pid>@<host>`: who writes a temporary (read back by `_owner_is_gone`)."""
    return f"{os.getpid()}@{_host()}"


def _owner_is_gone(rest: str) -> bool:
    """True if `rest` (a temporary's name after its output's prefix) names a writer on this host that has exited.

    A pid that is alive again under another program keeps its temporary: leaving one stale temporary a
    little longer is harmless, deleting a live writer's output is not.
    """
    match = _OWNER.match(rest)
    if match is None or match.group(2) != _host():
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, under another user
        return False
    return False


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _temporaries(parent: str, prefix: str, suffix: str = "") -> list[tuple[str, str]]:
    """(name, the part after `prefix`) of the entries of `parent` that are temporaries of one output."""
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return []
    return [(n, n[len(prefix):]) for n in names if n.startswith(prefix) and n.endswith(suffix)]


def remove_stale_temporaries(path: str) -> list[str]:
    """Deletes the temporaries of earlier writes of `path` (file or directory) whose writer has exited.

    Returns:
      the paths deleted.
    """
    parent, base = _split(path)
    removed = []
    for prefix, suffix in ((_dir_prefix(base), ""), (_file_prefix(base), ".tmp")):
        for name, rest in _temporaries(parent, prefix, suffix):
            if _owner_is_gone(rest):
                _remove(os.path.join(parent, name))
                removed.append(os.path.join(parent, name))
    return removed


def _split(path: str) -> tuple[str, str]:
    absolute = os.path.abspath(path)
    return os.path.dirname(absolute), os.path.basename(absolute)


def _dir_prefix(base: str) -> str:
    return f".{base}.tmp-"


def _file_prefix(base: str) -> str:
    return f".{base}."


# === Files ===

def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` so that readers see the old file or the whole new one."""
    with atomic_writer(path) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_writer(path: str, binary: bool = False):
    """Yields a file handle (text, or bytes with `binary`) whose contents replace `path` only if the block succeeds.

    Temporaries of earlier writes of `path` whose writer was killed are deleted first.
    """
    directory, base = _split(path)
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = None
    try:
        # A signal between the temporary's creation and `tmp` naming it would leave it behind: held back
        # until `tmp` names it, so that the clean-up below sees it.
        with signals_deferred():
            fd, tmp = tempfile.mkstemp(prefix=_file_prefix(base) + _owner_tag() + "-", suffix=".tmp", dir=directory)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            yield f
        raise_if_signalled()  # an ending signal that the block's code swallowed still stops the commit
        _publish_mode(tmp, directory=False)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


# === Directories ===

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
# The file system or the kernel cannot exchange: fall back to two renames.
_NO_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _renameat2():
    """libc's `renameat2`, or None (not Linux, or a libc older than glibc 2.28)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(a: str, b: str) -> bool:
    """Swaps the two existing paths `a` and `b` in one atomic step; False if this system cannot.

    Raises:
      OSError: the exchange is supported but failed (permissions, a path missing, ...).
    """
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), a, None, b)


def recover_directory(path: str) -> str | None:
    """Puts back the old output a killed two-rename replace of `path` left aside, if `path` is missing.

    Returns:
      the temporary name the output was restored from, or None.
    """
    if os.path.lexists(path):
        return None
    parent, base = _split(path)
    aside = [os.path.join(parent, name) for name, rest in _temporaries(parent, _dir_prefix(base), ".old")
             if _owner_is_gone(rest)]
    if not aside:
        return None
    newest = max(aside, key=os.path.getmtime)
    os.replace(newest, path)
    return newest


def _replace_directory(tmp: str, path: str) -> None:
    """Moves the complete directory `tmp` to `path`, replacing an existing `path` without a moment's gap."""
    if not os.path.isdir(path):
        os.replace(tmp, path)
        return
    if exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old output
        return
    old = tmp + ".old"
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str, marker: str, clear_stale: bool = False):
    """Yields a temporary sibling directory that replaces `path` only if the block succeeds.

    A failed or killed run leaves `path` as it was (see the module docstring for
    the moment of the replace). Before it starts, an old output a killed run
    left aside is put back (`recover_directory`) and the temporaries of killed
    runs are deleted (`remove_stale_temporaries`); with `clear_stale` every
    temporary of `path` is deleted, which is safe only when the caller holds a
    lock that keeps any other writer of `path` out. An existing `path` is
    replaced only if it is empty or holds `marker` (i.e. it is an earlier output
    of the same kind), never a folder of other files.
    """
    parent, base = _split(path)
    os.makedirs(parent, exist_ok=True)
    recover_directory(path)
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, marker)):
        raise TfxcError(f"{path} exists and is not a previous output (no {marker}); refusing to replace it, "
                        "choose another output directory")
    if clear_stale:
        for name, _ in _temporaries(parent, _dir_prefix(base)):
            _remove(os.path.join(parent, name))
    else:
        remove_stale_temporaries(path)
    tmp = None
    try:
        with signals_deferred():  # as in `atomic_writer`: the temporary is named before a signal lands
            tmp = tempfile.mkdtemp(prefix=_dir_prefix(base) + _owner_tag() + "-", dir=parent)
        yield tmp
        raise_if_signalled()
        _publish_mode(tmp, directory=True)
        _replace_directory(tmp, path)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


# === Outputs that would destroy an input ===

def refuse_to_overwrite_inputs(output: str, inputs: dict[str, str], what: str = "output") -> None:
    """Raises a `TfxcError` if writing `output` would replace or delete one of `inputs` ({role: path}).

    That is when `output` is an input (the same file by name, through a symbolic
    link or a hard link), a directory holding one (replacing a directory
    deletes what it holds), or an existing file inside an input directory (such
    as a SavedModel's `saved_model.pb`).
    """
    target = os.path.realpath(output)
    for role, source in inputs.items():
        if not source:
            continue
        real = os.path.realpath(source)
        same = real == target
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(source, output)  # hard links: two names, one file
        if same:
            raise TfxcError(f"{what} {output} is the {role} {source}; writing it would destroy the {role}, "
                            "choose another path")
        if real.startswith(target.rstrip(os.sep) + os.sep):
            raise TfxcError(f"{what} {output} contains the {role} {source}; replacing it would delete the "
                            f"{role}, choose another path")
        if os.path.isdir(real) and os.path.isfile(target) and target.startswith(real.rstrip(os.sep) + os.sep):
            raise TfxcError(f"{what} {output} is a file of the {role} {source}; writing it would destroy the "
                            f"{role}, choose another path")


def new_directory(parent: str, name: str) -> str:
    """Makes and returns `parent/name`, or `parent/name-2`, `-3`, ... when that exists: never a directory that
    was there before, even when two processes ask at once (`os.mkdir` either makes it or fails)."""
    os.makedirs(parent, exist_ok=True)
    for attempt in range(1, 10_000):
        path = os.path.join(parent, name if attempt == 1 else f"{name}-{attempt}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise TfxcError(f"{parent}: no free directory name for {name}")
