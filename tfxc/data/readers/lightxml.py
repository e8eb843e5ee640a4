"""LightXML's text layout, which MHE-XMC and LightXML read: `{split}_texts.txt`, one text a line, and
`{split}_labels.txt` beside it, the same line's label names separated by spaces.

    train_texts.txt    "the european parliament adopted a resolution on ..."
    train_labels.txt   "european_union resolution parliament"

Each pair of lines becomes the `JsonlRecord` of a JSONL line (its line number, no id), so the pair stands
wherever a JSONL text file can (`iter_jsonl` reads it by the texts file's name, `data.format = "jsonl"`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tfxc.data.files import numbered_lines, open_text
from tfxc.data.readers.base import JsonlRecord
from tfxc.errors import DataError

__all__ = ["is_lightxml", "iter_lightxml", "labels_file"]

TEXTS_SUFFIX, LABELS_SUFFIX = "_texts.txt", "_labels.txt"


def is_lightxml(path: str | os.PathLike) -> bool:
    """Whether `path` names a LightXML texts file (`*_texts.txt`, optionally .gz)."""
    name = os.fspath(path)
    return (name[:-3] if name.endswith(".gz") else name).endswith(TEXTS_SUFFIX)


def labels_file(path: str) -> str:
    """The labels file beside the texts file `path` (`train_texts.txt` -> `train_labels.txt`, .gz or not)."""
    stem = path[:-3] if path.endswith(".gz") else path
    plain = stem[: -len(TEXTS_SUFFIX)] + LABELS_SUFFIX
    return plain if os.path.exists(plain) or not os.path.exists(plain + ".gz") else plain + ".gz"


def iter_lightxml(path: str | os.PathLike, *, require_labels: bool = True) -> Iterator[JsonlRecord]:
    """Streams the records of a texts file and its labels file (see the module docstring).

    Raises:
      DataError: the texts file is empty, the labels file is missing (unless `require_labels` is False: inputs
        to predict), or the two files have different numbers of lines (named by the first line one lacks).
    """
    path = os.fspath(path)
    labels_path = labels_file(path)
    if not os.path.exists(labels_path):
        if require_labels:
            raise DataError(f"LightXML's layout needs the labels file beside the texts: no {labels_path}", path=path)
        labels_path = None
    count = 0
    with contextlib.ExitStack() as files:
        texts = files.enter_context(open_text(path))
        label_lines = (numbered_lines(files.enter_context(open_text(labels_path)), labels_path)
                       if labels_path else None)
        for count, text in numbered_lines(texts, path):
            names: list[str] = []
            if label_lines is not None:
                found = next(label_lines, None)
                if found is None:
                    raise DataError(f"the labels file ends before the texts: no labels for text line {count}",
                                    path=labels_path, line=count)
                names = found[1].split()
            yield JsonlRecord(count, None, text.rstrip("\n"), names)
        if label_lines is not None and next(label_lines, None) is not None:
            raise DataError(f"the labels file has more lines than the {count} texts of {path}", path=labels_path,
                            line=count + 1)
    if count == 0:
        raise DataError("file is empty", path=path)
