"""The lock a writing run holds on a directory, with the holder's name written in it for the refused."""

from __future__ import annotations

import fcntl
import os
import socket
import time

from tfxc.errors import TfxcError


class DirectoryLock:
    """An exclusive `flock` on `lock_file` (in `directory`), which names its holder; `release()` gives it up.

    Args:
      directory: the directory the lock is for (created if needed), named in the refusal.
      lock_file: the file that carries the lock and the holder's name.
      what: the holder, e.g. "a tfxc.train run".

    Raises:
      TfxcError: another process holds it, named as it wrote itself.
    """

    def __init__(self, directory: str, lock_file: str, what: str):
        os.makedirs(directory, exist_ok=True)
        path = lock_file
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # The holder writes its name just after taking the lock: give it a moment to appear.
            for _ in range(20):
                holder = os.pread(self._fd, 4096, 0).decode("utf-8", "replace").strip()
                if holder:
                    break
                time.sleep(0.05)
            holder = holder or "another process"
            os.close(self._fd)
            raise TfxcError(f"{directory} is in use by {holder}; wait for it to finish, or give another "
                            "--model-dir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (f"{what} (pid {os.getpid()} on {socket.gethostname()}, since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n").encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
