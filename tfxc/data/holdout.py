"""Validation splits carved from a train set by group, deterministically.

Points of one group (a WordNet gloss, a document) overlap heavily: wordnet-nextword's
points from one gloss share most of their context words. A random row split would
put near-copies of validation points into training, so whole groups go to one side,
chosen by the md5 of the group key: the same key always lands on the same side,
whatever the order of the file or the other keys. Without group ids every point is
its own group, keyed by its index in the file.

Used by the conversion (`data.val_percent`, `data.val_fold` for k-fold training) and by
`tools/holdout_split.py`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator

from tfxc.errors import DataError
from tfxc.utils.numbers import ascii_int


def in_validation(key: str, percent: int) -> bool:
    """Whether group `key` goes to validation: md5(key) mod 100 < percent."""
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % 100 < percent


def fold_of_key(key: str, folds: int) -> int:
    """The fold of group `key` among `folds` (k-fold validation): md5(key) mod folds."""
    return int(hashlib.md5(key.encode()).hexdigest(), 16) % folds


def in_fold(key: str, fold: int, folds: int) -> bool:
    """Whether group `key` is in fold `fold` of `folds`."""
    return fold_of_key(key, folds) == fold


def parse_fold(text: str) -> tuple[int | None, int]:
    """"i/K" in ASCII digits -> (i, K), with 0 <= i < K and K >= 2; "*/K" (every fold) -> (None, K);
    ValueError otherwise."""
    fold, _, folds = text.partition("/")
    i, k = (0 if fold == "*" else ascii_int(fold)), ascii_int(folds)
    if i is None or k is None or k < 2 or not 0 <= i < k:
        raise ValueError(text)
    return (None if fold == "*" else i), k


def group_keys(jsonl_path: str | None, group_sep: str = ":") -> Iterator[str]:
    """The group key of each point, in file order: the JSONL `id` up to `group_sep`, or the point's index.

    A JSONL line without an `id` is a group of its own (as a point is without a groups file): text
    written without ids, `tfxc.fit`'s included, holds no documents to keep together.

    Raises:
      DataError: a JSONL line that is not a JSON object (named by file and line).
    """
    if jsonl_path is None:
        yield from (str(i) for i in itertools.count())
        return
    from tfxc.data.files import open_text, surrogate_problem
    from tfxc.data.readers.csv_text import is_csv, iter_csv_text

    if is_csv(jsonl_path):  # CSV rows carry no ids: each is a group of its own, keyed as a JSONL line without one
        yield from (f"{group_sep}{record.line}" for record in iter_csv_text(jsonl_path, require_labels=False))
        return

    with open_text(jsonl_path) as jl:
        for line_no, record in enumerate(jl, start=1):
            try:
                obj = json.loads(record)
            except (ValueError, RecursionError) as e:
                raise DataError(f"not a JSON object ({e})", path=jsonl_path, line=line_no) from None
            if not isinstance(obj, dict):
                raise DataError("not a JSON object", path=jsonl_path, line=line_no)
            if obj.get("id") is None:  # a key no id can give: ids are cut at group_sep, and this starts with it
                yield f"{group_sep}{line_no}"
                continue
            key = str(obj["id"]).split(group_sep)[0]
            problem = surrogate_problem(key)  # from a JSON "\ud800" escape: md5 of it would fail
            if problem:
                raise DataError(f"the group id {problem}", path=jsonl_path, line=line_no, field="id")
            yield key


def route(items: Iterable, keys: Iterator[str], percent: int, source: str = "the train split",
          keys_source: str | None = None, fold: tuple[int, int] | None = None) -> Iterator[tuple[bool, object]]:
    """(goes to validation, item) for each item, paired with the next group key.

    `percent` of the groups go to validation, or with `fold` = (i, K) the groups of fold i of K (`fold` = (None,
    K): each item's fold number instead of a bool).

    Raises:
      DataError: `keys` ran out before `items`, or has more left after them (the two
        files must hold the same points in the same order).
    """
    for index, item in enumerate(items):
        key = next(keys, None)
        if key is None:
            raise DataError(f"{keys_source} has fewer points than {source} ({index}): the two must hold the same "
                            "points in the same order")
        if fold is None:
            yield in_validation(key, percent), item
        elif fold[0] is None:
            yield fold_of_key(key, fold[1]), item
        else:
            yield in_fold(key, *fold), item
    if keys_source is not None and next(keys, None) is not None:
        raise DataError(f"{keys_source} has more points than {source}: the two must hold the same points in the "
                        "same order")
