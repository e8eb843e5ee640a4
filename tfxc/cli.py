"""Shared CLI plumbing: logging format and turning user errors into one-line messages."""

from __future__ import annotations

import argparse
import functools
import logging
import sys

from tfxc.errors import TfxcError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)
    # TF's own Python logger repeats warnings we already handle (e.g. retracing notes).
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.WARNING)  # per-checkpoint "Sharding callback" notes


def main_wrapper(fn):
    """Runs a CLI main; a `TfxcError` prints `tfxc: error: ...` and exits with status 2."""

    @functools.wraps(fn)
    def wrapped(argv=None):
        try:
            return fn(argv)
        except TfxcError as e:
            sys.stderr.write(f"tfxc: error: {e}\n")
            sys.exit(2)
        except (OSError, UnicodeDecodeError) as e:  # unreadable/unwritable paths: no traceback needed
            sys.stderr.write(f"tfxc: error: {e}\n")
            sys.exit(2)
        except KeyboardInterrupt:
            sys.stderr.write("tfxc: interrupted\n")
            sys.exit(130)

    return wrapped


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_config_args(parser) -> None:
    parser.add_argument("--config", help="JSON experiment config (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value; repeatable (e.g. --set trainer.epochs=3)")
