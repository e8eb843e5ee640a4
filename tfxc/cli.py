"""Shared CLI plumbing: logging format and turning user errors into one-line messages."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import time

from tfxc.errors import TfxcError
from tfxc.utils.numbers import ascii_float, ascii_int
from tfxc.utils.signals import Terminated, ending_signals_raise, raise_if_signalled


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)
    # TF's own Python logger repeats warnings we already handle (e.g. retracing notes).
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.WARNING)  # per-checkpoint "Sharding callback" notes


# Messages of TensorFlow errors that are a failed read or write of a file, not a bug.
_FILE_FAILURES = ("No space left on device", "File too large", "Disk quota exceeded", "Read-only file system",
                  "Permission denied")


def file_failure(error: BaseException) -> str | None:
    """One line for a TensorFlow error that is a failed file read or write (disk full, ...), else None."""
    text = str(error).strip()
    if not type(error).__module__.startswith("tensorflow") or not any(m in text for m in _FILE_FAILURES):
        return None
    line = text.splitlines()[0]
    if line.startswith("{{function_node"):
        line = line.split("}}", 1)[-1].strip()
    return line.split(" [Op:", 1)[0]


def _run_until_signalled(fn, argv):
    """`fn(argv)`, raising `Terminated` if an ending signal arrived, whatever became of its exception.

    A library can turn the signal's exception into another one (TF calls back into Python from C++ while
    tracing, and reports what it raised as an AttributeError) or swallow it (`hasattr`); the process was
    still asked to end.
    """
    with ending_signals_raise():
        try:
            result = fn(argv)
        except Exception:
            raise_if_signalled()  # the signal's Terminated, turned into another error by the code it interrupted
            raise
        raise_if_signalled()  # ... or swallowed by it
        return result


def main_wrapper(fn):
    """Runs a CLI main; a `TfxcError` prints `tfxc: error: ...` and exits with its status (2 by default).

    SIGTERM and SIGHUP end it as Ctrl-C does: partial outputs are removed on the way out and the exit
    status is 128 + the signal's number (143 for SIGTERM), as a shell reports a signalled process.
    """

    @functools.wraps(fn)
    def wrapped(argv=None):
        try:
            return _run_until_signalled(fn, argv)
        except Terminated as e:
            sys.stderr.write(f"tfxc: terminated by {signal.Signals(e.signum).name}\n")
            sys.exit(128 + e.signum)
        except TfxcError as e:
            sys.stderr.write(f"tfxc: error: {e}\n")
            sys.exit(e.exit_code)
        except BrokenPipeError:  # stdout piped into `head`, which has read enough: not an error
            try:  # the interpreter's last flush of stdout must not fail too
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # a stdout without a descriptor (captured) has nothing to flush there
                pass
            sys.exit(0)
        except (OSError, UnicodeDecodeError) as e:  # unreadable/unwritable paths: no traceback needed
            sys.stderr.write(f"tfxc: error: {e}\n")
            sys.exit(2)
        except KeyboardInterrupt:
            sys.stderr.write("tfxc: interrupted\n")
            sys.exit(130)
        except Exception as e:
            message = file_failure(e)
            if message is None:
                raise
            sys.stderr.write(f"tfxc: error: cannot read or write a file: {message}\n")
            sys.exit(2)

    return wrapped


class AsciiInt:
    """argparse type of every integer flag: ASCII digits with an optional leading '-', optionally in a range.

    `type=int` (Python's `int()`) also reads '1_000', ' 3', '+3' and the digits of other scripts ('١٢' is 12,
    silently); the counts, sizes and seeds a person types are written as the files tfxc writes them, so only
    `tfxc.utils.numbers.ascii_int`'s spelling counts. argparse's error names the flag:
    `argument --batch-size: expected an integer >= 1 in ASCII digits, got '1_000'`.

    Args:
      low, high: the bounds, both inside the range (None: unbounded on that side).
    """

    #: More digits than an int64 holds is no count or seed a flag wants (and `int()` refuses over 4,300).
    MAX_DIGITS = 18

    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high

    def range_text(self) -> str:
        """The range, e.g. "[0, 1]", ">= 1" or "" when unbounded."""
        if self.low is not None and self.high is not None:
            return f"[{self.low}, {self.high}]"
        if self.low is not None:
            return f">= {self.low}"
        return f"<= {self.high}" if self.high is not None else ""

    def __call__(self, text: str) -> int:
        if len(text.lstrip("-")) > self.MAX_DIGITS:
            raise argparse.ArgumentTypeError(f"expected an integer of at most {self.MAX_DIGITS} digits, "
                                             f"got {text[:24]!r}...")
        value = ascii_int(text)
        if value is None:
            where = self.range_text()
            raise argparse.ArgumentTypeError(f"expected an integer{' ' + where if where else ''} in ASCII digits, "
                                             f"got {text!r}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            where = self.range_text()
            raise argparse.ArgumentTypeError(f"must be {'in ' if where[0] == '[' else ''}{where}, got {value}")
        return value

    def __repr__(self) -> str:  # argparse's messages and --help never show it; a failing test may
        return f"AsciiInt({self.range_text() or 'any'})"


positive_int = AsciiInt(1)
non_negative_int = AsciiInt(0)
any_int = AsciiInt()


class FiniteFloat:
    """argparse type of every number flag: a finite number in ASCII decimal notation, optionally in a range.

    `type=float` takes 'nan', 'inf' and '1e400' (inf); compared with scores or limits they decide every row
    the same way without a word (`--threshold nan` kept no label). Refused here, argparse's error names the
    flag: `argument --threshold: expected a finite number, got 'nan'`.

    Args:
      low, high: the bounds (None: unbounded on that side).
      low_open, high_open: the bound itself is outside the range.
    """

    def __init__(self, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def range_text(self) -> str:
        """The range in interval notation, e.g. "(0, 1]", "> 0" or "" when unbounded."""
        low, high = f"{self.low:g}" if self.low is not None else "", f"{self.high:g}" if self.high is not None else ""
        if low and high:
            return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if low:
            return f"{'>' if self.low_open else '>='} {low}"
        if high:
            return f"{'<' if self.high_open else '<='} {high}"
        return ""

    def __call__(self, text: str) -> float:
        value = ascii_float(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            where = self.range_text()
            raise argparse.ArgumentTypeError(f"must be {'in ' if where[0] in '([' else ''}{where}, got {text}")
        return value

    def __repr__(self) -> str:  # argparse's messages and --help never show it; a failing test may
        return f"FiniteFloat({self.range_text() or 'any'})"


finite_float = FiniteFloat()


def add_config_args(parser) -> None:
    parser.add_argument("--config", help="JSON experiment config (see configs/)")
    add_set_args(parser)


def add_set_args(parser, what: str = "a config value", example: str = "--set trainer.epochs=3") -> None:
    """`--set SECTION.KEY=VALUE`, repeatable, collected in order into `args.overrides` (a list of strings).

    Every verb and tool that overrides config values declares it here. The assignments are parsed
    where the config is loaded (`tfxc.config.loading.apply_overrides`), so a malformed or unknown one
    is the same `--set ...` error whichever verb took it.

    Args:
      what: what the assignments override, for the help (e.g. "evaluation settings of the trained config").
      example: one or more example uses, for the help.
    """
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help=f"override {what}; repeatable (e.g. {example})")


def module_names(text: str) -> tuple[str, ...]:
    """argparse type: a comma-separated list of module names."""
    names = tuple(name.strip() for name in text.split(","))
    if not all(names) or not all(part.isidentifier() for name in names for part in name.split(".")):
        raise argparse.ArgumentTypeError(f"expected module names separated by commas, got {text!r}")
    return names


def add_trust_args(parser) -> None:
    """`--trust-imports [MODULE,...]`, for the verbs that read a model directory's config.json.

    The stored config's `imports` are modules to import, and importing runs their code; a model directory
    may come from someone else, so they are imported only when trusted (`ModelDir.load_config`).
    """
    parser.add_argument("--trust-imports", nargs="?", const=True, default=False, type=module_names,
                        metavar="MODULE,...",
                        help="import the modules the model directory's config.json lists under 'imports' (this "
                             "runs their code): all of them, or only those named. Without it they are refused "
                             "unless already imported; $TFXC_TRUSTED_IMPORTS names more trusted modules. Nothing "
                             "is ever imported from inside the model directory")


def keep_out_of_import_path(model_dirs) -> None:
    """Removes the entries of `sys.path` that lie inside any of `model_dirs` (the model directories a verb reads).

    `python -m` puts the current directory first on `sys.path`: run from inside a model directory, every
    module imported later (TensorFlow is imported lazily, after the arguments are read) would be looked
    for in that directory first, so a file there could stand in for it.
    """
    from tfxc.config.imports import is_inside

    sys.path[:] = [entry for entry in sys.path
                   if not any(is_inside(entry or os.getcwd(), directory) for directory in model_dirs)]


class Progress:
    """Rows done and rows/s on stderr while a large input streams through (with `total`: the share done and
    the time left at the rate so far): redrawn in place every 0.5 s on a terminal, a line every 30 s
    otherwise (logs)."""

    def __init__(self, verb: str, stream=None, total: int | None = None, start: int = 0):
        self.verb, self.total = verb, total
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = self.last = time.time()
        self.count = self.first = start  # a resumed job counts from where it stood; its rate from now

    def update(self, rows: int) -> None:
        self.count += rows
        now = time.time()
        if now - self.last >= (0.5 if self.tty else 30.0):
            self.last = now
            self.stream.write(f"\r{self.line(now)}" if self.tty else self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        rate = (self.count - self.first) / max(now - self.start, 1e-9)
        if not self.total:
            return f"{self.verb} {self.count:,} rows ({rate:,.0f} rows/s)"
        left = (self.total - self.count) / rate if rate > 0 else float("inf")
        eta = "?" if left == float("inf") else f"{int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"
        return (f"{self.verb} {self.count:,} of {self.total:,} ({100 * self.count / self.total:.1f}%, "
                f"{rate:,.1f}/s, {eta} left)")

    def close(self) -> None:
        if self.tty and self.last > self.start:
            self.stream.write("\n")
