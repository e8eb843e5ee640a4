"""`LabelVocab`: the mapping between label names and label ids.

Label id ``i`` is the name on line ``i`` (0-based) of a ``labels.txt`` file.
A vocabulary built from training rows orders its names by descending train
frequency (number of points carrying the label), ties broken by name, which
is the order of ``labels.txt`` in the shared text data sets.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Iterator

from tfxc.data.files import open_text, surrogate_problem
from tfxc.errors import DataError
from tfxc.utils.io import atomic_write_text


def _check_name(name: object) -> str:
    """Returns `name` if it can be stored as one line of labels.txt."""
    if not isinstance(name, str):
        raise TypeError(f"label names must be str, got {type(name).__name__} {name!r}")
    if not name or "\n" in name or "\r" in name:
        raise ValueError(f"label name {name!r} is empty or contains a line break; "
                         "it could not be stored as one line of labels.txt")
    problem = surrogate_problem(name)
    if problem:
        raise ValueError(f"label name {name!r} {problem}; it could not be stored in labels.txt")
    return name


class LabelVocab:
    """A bidirectional map between label names (str) and ids (0..len-1).

    A vocabulary is either open (``frozen=False``: `add` appends new names,
    which is how a reader can grow it in file order) or frozen (unknown names
    are an error or dropped, at the reader's choice). `build` and `load`
    return frozen vocabularies.

    Args:
      names: the names in id order; must be unique, non-empty and free of
        line breaks.
      frozen: whether `add` is refused.

    Example:
      >>> vocab = LabelVocab.build([["b", "a"], ["a"], ["c"]])
      >>> vocab.names
      ('a', 'b', 'c')
      >>> vocab.id("b"), vocab.name(2), len(vocab), vocab.frozen
      (1, 'c', 3, True)
    """

    def __init__(self, names: Iterable[str] = (), *, frozen: bool = False):
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._frozen = False
        for name in names:
            if name in self._index:
                raise ValueError(f"duplicate label name {name!r}")
            self.add(name)
        self._frozen = bool(frozen)

    # === Construction ===

    @classmethod
    def build(cls, label_lists: Iterable[Iterable[str]]) -> LabelVocab:
        """Builds a frozen vocabulary from the label-name lists of training rows.

        Names are ordered by descending number of rows that carry them, ties
        broken by name (Python string order), so the result is deterministic and
        matches the ``labels.txt`` files of the shared text data sets. A name
        repeated within one row counts once for that row.

        Args:
          label_lists: one iterable of label names per training row.

        Returns:
          A frozen `LabelVocab`.
        """
        counts: collections.Counter[str] = collections.Counter()
        for names in label_lists:
            if isinstance(names, str):
                # A bare string would be iterated character by character.
                raise TypeError("each row's labels must be a list of names, got a str "
                                f"{names!r}")
            counts.update({_check_name(n) for n in names})
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls((name for name, _ in ordered), frozen=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelVocab:
        """Loads a frozen vocabulary from a labels.txt file (line i = name of id i).

        Args:
          path: a UTF-8 text file, optionally gzipped, one name per line.

        Returns:
          A frozen `LabelVocab`.

        Raises:
          DataError: the file is missing or empty, a line is not UTF-8, or a line
            is empty or repeats an earlier name.
        """
        path = os.fspath(path)
        names: list[str] = []
        first_line: dict[str, int] = {}
        with open_text(path) as f:
            for lineno, line in enumerate(f, start=1):
                name = line.rstrip("\r\n")
                if not name:
                    raise DataError("empty label name", path=path, line=lineno, field="labels")
                if name in first_line:
                    raise DataError(f"duplicate label name {name!r} (first on line "
                                    f"{first_line[name]})", path=path, line=lineno,
                                    field="labels")
                first_line[name] = lineno
                names.append(name)
        if not names:
            raise DataError("file is empty (expected one label name per line)", path=path)
        return cls(names, frozen=True)

    def save(self, path: str | os.PathLike) -> None:
        """Writes the names, one per line in id order, atomically to `path`."""
        atomic_write_text(path, "".join(name + "\n" for name in self._names))

    # === Mutation ===

    def add(self, name: str) -> int:
        """Returns the id of `name`, appending it first if it is new.

        Raises:
          ValueError: the vocabulary is frozen and `name` is not in it, or the
            name is empty or contains a line break.
        """
        idx = self._index.get(name)
        if idx is not None:
            return idx
        if self._frozen:
            raise ValueError(f"label {name!r} is not in the frozen vocabulary")
        self._index[_check_name(name)] = len(self._names)
        self._names.append(name)
        return len(self._names) - 1

    def freeze(self) -> LabelVocab:
        """Refuses further `add`s of new names; returns self."""
        self._frozen = True
        return self

    # === Lookup ===

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def names(self) -> tuple[str, ...]:
        """All names in id order."""
        return tuple(self._names)

    def id(self, name: str) -> int:
        """The id of `name`; raises KeyError if it is unknown."""
        return self._index[name]

    def get(self, name: str, default: int | None = None) -> int | None:
        """The id of `name`, or `default` if it is unknown."""
        return self._index.get(name, default)

    def name(self, label_id: int) -> str:
        """The name of `label_id`; raises IndexError if out of range."""
        if not 0 <= label_id < len(self._names):
            raise IndexError(f"label id {label_id} is out of range [0, {len(self._names)})")
        return self._names[label_id]

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._names))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelVocab):
            return NotImplemented
        return self._names == other._names

    def __repr__(self) -> str:
        head = ", ".join(repr(n) for n in self._names[:3])
        more = ", ..." if len(self._names) > 3 else ""
        return f"LabelVocab([{head}{more}], size={len(self)}, frozen={self._frozen})"
