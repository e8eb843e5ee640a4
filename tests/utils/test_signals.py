"""SIGTERM inside a tfxc command: raised, deferred over TF's writer, and never followed by a commit."""

import os
import signal

import pytest

from tfxc.cli import main_wrapper
from tfxc.utils.io import atomic_directory, atomic_writer
from tfxc.utils.signals import Terminated, ending_signals_raise, received, signals_deferred


def test_sigterm_raises_terminated_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, ending_signals_raise():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between two bytecodes
            pass
    assert caught.value.signum == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is before


def test_a_deferred_signal_is_raised_when_the_block_ends_not_inside_it():
    steps = []
    with pytest.raises(Terminated), ending_signals_raise():
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for i in range(1000):
                steps.append(i)
            steps.append(received())
        steps.append("after")  # never reached
    assert steps == [*range(1000), (signal.SIGTERM,)] and received() == ()


def test_a_swallowed_signal_still_stops_the_commit_of_a_file_and_a_directory(tmp_path):
    target, folder = tmp_path / "out.txt", tmp_path / "saved"
    target.write_text("old\n")
    with ending_signals_raise():
        try:  # what TF's C++ callbacks do to an exception raised in them
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        except Terminated:
            pass
        with pytest.raises(Terminated), atomic_writer(str(target)) as f:
            f.write("new\n")
        with pytest.raises(Terminated), atomic_directory(str(folder), marker="m") as tmp:
            open(os.path.join(tmp, "m"), "w").close()
    assert target.read_text() == "old\n" and not folder.exists() and sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_a_cli_whose_signal_was_swallowed_exits_143(capsys):
    @main_wrapper
    def main(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        except BaseException:
            pass
        return 0

    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 143 and "tfxc: terminated by SIGTERM" in capsys.readouterr().err
