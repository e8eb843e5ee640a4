"""SIGTERM and SIGHUP end a tfxc command as Ctrl-C does, and a write never commits after one.

`ending_signals_raise` (installed by `tfxc.cli.main_wrapper`) makes the two signals raise `Terminated` in the
main thread. Where the signal lands decides what becomes of that exception: in plain Python it unwinds
through every `finally`, and the atomic writers (`tfxc.utils.io`) delete their temporaries. Inside
TensorFlow, which calls back into Python from C++ (tracing, `nest.flatten`), it can be turned into another
error, or printed and swallowed while the C++ code goes on. So every signal is also recorded here:
`raise_if_signalled` lets a writer refuse to commit an output after an ending signal, whatever became of the
exception, and `signals_deferred` holds the exception back over a call that must not be interrupted halfway
(TensorFlow's SavedModel writer), raising it when the call returns.
"""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(BaseException):
    """A CLI received SIGTERM or SIGHUP. Like KeyboardInterrupt it is no `Exception`, so no `except Exception`
    swallows it, while every `finally` and `except BaseException` on the way out (the atomic writers' clean-up
    of their temporaries) still runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# The signals that end a CLI like Ctrl-C: a batch system's or `kill`'s SIGTERM, a closed terminal's SIGHUP.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

_received: list[int] = []  # the ending signals within the `ending_signals_raise` block, oldest first
_deferred = [0]            # > 0 while inside `signals_deferred`


def received() -> tuple[int, ...]:
    """The ending signals received within the current `ending_signals_raise` block (none outside one)."""
    return tuple(_received)


def raise_if_signalled() -> None:
    """Raises `Terminated` if an ending signal arrived, even one whose exception was swallowed on the way."""
    if _received:
        raise Terminated(_received[0])


@contextlib.contextmanager
def ending_signals_raise():
    """Within the block SIGTERM and SIGHUP raise `Terminated` in the main thread; the old handlers come back after.

    A signal that is ignored (`nohup` ignores SIGHUP) stays ignored. Off the main thread (a CLI main
    called from a worker thread) nothing changes: Python delivers signals to the main thread only.
    """

    def handle(signum, frame):
        _received.append(signum)
        # A second signal while cleaning up ends the process at once; the next write of the same output
        # then removes what this one left (tfxc.utils.io).
        signal.signal(signum, signal.SIG_DFL)
        if not _deferred[0]:
            raise Terminated(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        _received.clear()
        for sig in ENDING_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous:
            _received.clear()


@contextlib.contextmanager
def signals_deferred():
    """An ending signal within the block is recorded, and raised as `Terminated` only when the block ends.

    For calls into TensorFlow that cannot take an exception halfway: one raised inside its C++ callbacks is
    printed as a traceback and dropped. A second signal still ends the process at once (the handler has
    put the default action back).
    """
    _deferred[0] += 1
    try:
        yield
    finally:
        _deferred[0] -= 1
    raise_if_signalled()
