"""Atomic file output: write to a temporary name in the same directory, then rename.

Temporary files and directories are created private (0600/0700, Python's
`tempfile` defaults) and given the permissions an ordinary `open`/`mkdir`
would have (0666/0777 minus the process umask) just before they are renamed
into place, so an export can be read by a serving process under another user
exactly when the umask allows it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from tfxc.errors import TfxcError


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: str, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` so that readers see the old file or the whole new one."""
    with atomic_writer(path) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_directory(path: str, marker: str, clear_stale: bool = False):
    """Yields a temporary sibling directory that replaces `path` only if the block succeeds.

    A failed run leaves `path` as it was. A killed one (SIGKILL, power loss) also
    leaves its hidden `.<name>.tmp-*` sibling behind; with `clear_stale` such
    siblings are deleted first, which is safe only when the caller holds a lock
    that keeps any other writer of `path` out. An existing `path` is replaced
    only if it is empty or holds `marker` (i.e. it is an earlier output of the
    same kind), never a folder of other files.
    """
    if os.path.isdir(path) and os.listdir(path) and not os.path.exists(os.path.join(path, marker)):
        raise TfxcError(f"{path} exists and is not a previous output (no {marker}); refusing to replace it, "
                        "choose another output directory")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    prefix = "." + os.path.basename(os.path.abspath(path)) + ".tmp-"
    if clear_stale:
        for name in os.listdir(parent):
            if name.startswith(prefix):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if os.path.isdir(path):
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_writer(path: str, binary: bool = False):
    """Yields a file handle (text, or bytes with `binary`) whose contents replace `path` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as f:
            yield f
        _publish_mode(tmp, directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
