"""The `Reader` interface and the small helpers its implementations share."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

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


class IdSpace:
    """The size of one id space (features or labels), by one rule: explicit -> declared -> seen.

    * explicit: the caller's `num_features` / `num_labels` argument;
    * declared: what the source states (a header's D or L, a matrix's width);
    * seen: 1 + the largest id read so far (complete after a full pass), 0 once
      a pass found none.

    The first two bound the ids (an id at or beyond `bound` is an error); only
    a source that states neither is sized by its ids. `tfxc.data.csr` sizes
    in-memory label lists by the same rule.

    Args:
      what: "feature" or "label", for messages (and the argument's name,
        ``num_{what}s``).
      explicit: the caller's size, validated by `check_bound`, or None.
      declared: the source's size, or None.
    """

    def __init__(self, what: str, explicit: int | None = None, declared: int | None = None):
        self.what = what
        self.explicit = check_bound(f"num_{what}s", explicit)
        self.declared = None if declared is None else int(declared)
        self.seen: int | None = None

    @property
    def bound(self) -> int | None:
        """The size ids must stay below: explicit, else declared; None when only the ids tell it."""
        return self.explicit if self.explicit is not None else self.declared

    @property
    def size(self) -> int | None:
        """The space's size: `bound`, else `seen` (None before any id is known)."""
        bound = self.bound
        return bound if bound is not None else self.seen

    def see(self, ids: np.ndarray) -> None:
        """Notes the ids of one row or chunk (any integer array; empty is fine)."""
        if ids.size:
            self.seen = max(self.seen or 0, int(ids.max()) + 1)

    def pass_done(self) -> None:
        """Marks a full pass over the source: a space without any id has size 0 rather than None."""
        if self.seen is None:
            self.seen = 0

    def first_beyond(self, ids: np.ndarray) -> int | None:
        """The position of the first id at or beyond `bound` in `ids`, or None (always None without a bound)."""
        bound = self.bound
        if bound is None or not ids.size or ids.max() < bound:
            return None
        return int(np.argmax(ids >= bound))

    def out_of_range(self, written, where: str = "", base: int = 0) -> str:
        """The message for id `written` (as the source wrote it, with index base `base`) beyond `bound`."""
        return f"{self.what} id {written}{where} is out of range [{base}, {self.bound + base})"


def row_offsets(counts: np.ndarray) -> list[int]:
    """[0, c0, c0+c1, ...] as a Python list (fast to index in a loop)."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets.tolist()


class Reader:
    """Interface of every reader: a re-iterable stream of `Row`s.

    A reader of ids sets `feature_space` and `label_space` (`IdSpace`s), which give the
    three sizes below; a reader of names (jsonl) overrides the properties.

    Attributes:
      path: the (main) file read.
      num_features: size of the feature space: an explicit argument or a
        header/matrix shape when there is one, else 1 + the largest feature id
        seen so far (complete after a full pass); None before any id is known.
      num_labels: likewise for labels.
      declared_num_labels: the label count the source states (an explicit
        argument, a header, a matrix width), or None if it only has label ids.
      num_rows: number of rows of the last complete pass; before one, the
        row count the file declares (header, matrix shape) or None.
    """

    path: str
    feature_space: IdSpace
    label_space: IdSpace

    def __iter__(self) -> Iterator[Row]:
        raise NotImplementedError

    @property
    def num_features(self) -> int | None:
        return self.feature_space.size

    @property
    def num_labels(self) -> int | None:
        return self.label_space.size

    @property
    def declared_num_labels(self) -> int | None:
        return self.label_space.bound

    @property
    def num_rows(self) -> int | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, num_rows={self.num_rows}, "
                f"num_features={self.num_features}, num_labels={self.num_labels})")


class JsonlRecord(NamedTuple):
    """One validated line of a JSONL text file.

    Attributes:
      line: 1-based line number.
      id: the record's "id" (any JSON value) or None if absent.
      text: the "text" string.
      labels: the "labels" names, as written.
    """

    line: int
    id: Any
    text: str
    labels: list[str]
