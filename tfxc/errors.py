"""Error types with messages that point at the offending input.

Every error a user can cause by bad input or a bad config derives from
`TfxcError`, so the CLIs can print a one-line message instead of a traceback.
"""

from __future__ import annotations


class TfxcError(Exception):
    """Base class for user-facing errors (bad data, bad config, bad paths).

    Attributes:
      exit_code: the CLIs' exit status for this error.
    """

    exit_code = 2


class ConfigError(TfxcError):
    """A config key, value or cross-field rule is invalid."""


class DataError(TfxcError):
    """A data file is missing, empty or malformed.

    The message names the file and, where it applies, the 1-based line number
    and the field, e.g. ``train.txt:17: field 'features': feature id 2000 is out
    of range [0, 1836)``.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = ""
        if path is not None:
            where = str(path) + (f":{line}" if line is not None else "") + ": "
        what = f"field '{field}': " if field else ""
        super().__init__(where + what + message)


class DamagedFile(DataError):
    """A file tfxc wrote (in a model or data directory) cannot be read back: cut short, overwritten, corrupted.

    The message names the file, what is wrong with it and, where given, what to do
    (`advice`); callers with a fallback (an older checkpoint, converting again) catch it.
    """

    def __init__(self, message: str, path: str, advice: str = ""):
        super().__init__(f"damaged file: {message}" + (f"; {advice}" if advice else ""), path=path)


class TrainingError(TfxcError):
    """Training cannot continue (non-finite loss, lost worker, ...)."""


class Stopped(TrainingError):
    """Training stopped on a signal after saving a checkpoint; the exit status is 128 + the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum
