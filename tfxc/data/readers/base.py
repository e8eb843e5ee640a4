"""The `Reader` interface and the small helpers its implementations share."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from tfxc.data.rows import Row
from tfxc.errors import ConfigError

EMPTY_IDX = np.zeros(0, np.int64)
EMPTY_VAL = np.zeros(0, np.float32)

_DIGITS = re.compile(r"\d+", re.ASCII)
_NEG_DIGITS = re.compile(r"-\d+", re.ASCII)


def shorten(text: str, limit: int = 60) -> str:
    """`text`, cut to about `limit` characters for an error message."""
    return text if len(text) <= limit else text[:limit] + "..."


def diagnose_id(token: str, what: str, context: str) -> str | None:
    """Explains why `token` is not a valid id, or returns None if it is one."""
    if _DIGITS.fullmatch(token):
        if len(token) > 15:
            return f"{what} id {shorten(token)} is too large{context}"
        return None
    if _NEG_DIGITS.fullmatch(token):
        return f"negative {what} id {shorten(token)}{context}"
    if not token:
        return f"empty {what} id{context}"
    return f"malformed {what} id {shorten(token)!r}{context}"



def check_bound(name: str, value: int | None) -> int | None:
    """Validates an explicit `num_features` / `num_labels` argument."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative int or None, got {value!r}")
    return int(value)


def row_offsets(counts: np.ndarray) -> list[int]:
    """[0, c0, c0+c1, ...] as a Python list (fast to index in a loop)."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets.tolist()


class Reader:
    """Interface of every reader: a re-iterable stream of `Row`s.

    Attributes:
      path: the (main) file read.
      num_features: size of the feature space: a header/matrix shape or an
        explicit argument when there is one, else 1 + the largest feature id seen
        so far (complete after a full pass); None before any id is known.
      num_labels: likewise for labels.
      declared_num_labels: the label count the source states (a header, a
        matrix width, an explicit argument), or None if it only has label ids.
      num_rows: number of rows of the last complete pass; before one, the
        row count the file declares (header, matrix shape) or None.
    """

    path: str

    def __iter__(self) -> Iterator[Row]:
        raise NotImplementedError

    @property
    def num_features(self) -> int | None:
        raise NotImplementedError

    @property
    def num_labels(self) -> int | None:
        raise NotImplementedError

    @property
    def declared_num_labels(self) -> int | None:
        return None

    @property
    def num_rows(self) -> int | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, num_rows={self.num_rows}, "
                f"num_features={self.num_features}, num_labels={self.num_labels})")

