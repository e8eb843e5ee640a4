"""JSON lines with a text and label names: `{"id": ..., "text": "...", "labels": ["name", ...]}`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from tfxc.data.files import numbered_lines, open_text, read_lines, surrogate_problem
from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers.base import EMPTY_IDX, EMPTY_VAL, JsonlRecord, Reader, shorten
from tfxc.data.readers.csv_text import is_csv, iter_csv_text
from tfxc.data.readers.lightxml import is_lightxml, iter_lightxml
from tfxc.data.rows import Row
from tfxc.errors import ConfigError, DataError

# A lone surrogate in a parsed line can only come from such an escape: the UTF-8 decoder rejects
# encoded surrogates, so lines without one skip the walk over the record's strings.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def iter_jsonl(path: str | os.PathLike, *, require_labels: bool = True) -> Iterator[JsonlRecord]:
    """Streams and validates the records of a JSONL text file (plain or gzip).

    Each line must be a JSON object with a string "text" and a list of strings
    "labels" (the "id" is optional and its type not checked). No string of the
    line, "id" and unknown keys included, may hold a lone surrogate (a JSON
    ``\\ud800`` escape): it would fail later, where the line is unknown. Useful to build a
    `LabelVocab` or fit a featurizer before reading rows::

        vocab = LabelVocab.build(r.labels for r in iter_jsonl("train.jsonl"))

    A .csv or .tsv file (text_classifier's `sentence,label` layout) is read by `tfxc.data.readers.csv_text`
    into the same records.

    Args:
      path: the .jsonl (or .jsonl.gz) file, a .csv / .tsv one, or LightXML's `*_texts.txt` (with its
        `*_labels.txt` beside it).
      require_labels: False accepts lines without "labels" (inputs to predict);
        their `labels` are then empty. Labels that are present are validated.

    Raises:
      DataError: missing or empty file, bytes that are not UTF-8, invalid JSON,
        a missing/ill-typed field or a string that is not valid Unicode.
    """
    path = os.fspath(path)
    if is_csv(path):
        yield from iter_csv_text(path, require_labels=require_labels)
        return
    if is_lightxml(path):
        yield from iter_lightxml(path, require_labels=require_labels)
        return
    lineno = 0
    with open_text(path) as f:
        for lineno, line in numbered_lines(f, path, chunk=1024):
            yield _parse_jsonl_line(line, path, lineno, require_labels)
    if lineno == 0:
        raise DataError("file is empty", path=path)


def _parse_jsonl_line(line: str, path: str, lineno: int, require_labels: bool = True) -> JsonlRecord:
    if not line.strip():
        raise DataError("blank line (expected a JSON object)", path=path, line=lineno)
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path=path,
                        line=lineno) from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path=path, line=lineno) from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path,
                        line=lineno)
    if _SURROGATE_ESCAPE.search(line):
        _check_unicode(obj, path, lineno)
    if "text" not in obj:
        raise DataError("missing", path=path, line=lineno, field="text")
    text = obj["text"]
    if not isinstance(text, str):
        raise DataError(f"must be a string, got {type(text).__name__}", path=path, line=lineno,
                        field="text")
    if "labels" not in obj:
        if not require_labels:
            return JsonlRecord(lineno, obj.get("id"), text, [])
        raise DataError("missing", path=path, line=lineno, field="labels")
    labels = obj["labels"]
    if not isinstance(labels, list):
        raise DataError(f"must be a list of label names, got {type(labels).__name__}",
                        path=path, line=lineno, field="labels")
    for name in labels:
        if not isinstance(name, str):
            raise DataError(f"label names must be strings, got {name!r}", path=path,
                            line=lineno, field="labels")
        if not name or "\n" in name or "\r" in name:
            raise DataError(f"label name {name!r} is empty or contains a line break", path=path,
                            line=lineno, field="labels")
    return JsonlRecord(lineno, obj.get("id"), text, labels)


def _check_unicode(obj: dict, path: str, lineno: int) -> None:
    """Raises a DataError naming the field if any key or string in `obj` holds a lone surrogate.

    `json.loads` turns an unpaired ``\\ud800`` escape into a str that cannot be
    encoded (TFRecord, labels.txt, TensorFlow all fail on it later, far from
    the line), so every string of the record is checked here, nested ones too.
    """
    for field, value in obj.items():
        problem = surrogate_problem(field)
        if problem:
            shown = field.encode("utf-8", "backslashreplace").decode("utf-8")
            raise DataError(f"the key {problem}", path=path, line=lineno, field=shown)
        stack = [value]
        while stack:  # iterative: a deeply nested "id" must not hit the recursion limit
            item = stack.pop()
            if isinstance(item, str):
                problem = surrogate_problem(item)
            elif isinstance(item, list):
                stack.extend(item)
                continue
            elif isinstance(item, dict):
                stack.extend(item.values())
                stack.extend(item.keys())
                continue
            else:
                continue
            if problem:
                shown = item.encode("utf-8", "backslashreplace").decode("utf-8")  # printable: \ud800
                raise DataError(f"'{shorten(shown)}' {problem}", path=path, line=lineno, field=field)


class JsonlReader(Reader):
    """Reads JSONL text records and maps their label names to ids.

    Each line is ``{"id": ..., "text": "...", "labels": ["name", ...]}``
    (plain or gzip). Label names go through `label_vocab`: a frozen vocabulary
    rejects (``unknown_labels="error"``) or drops (``"drop"``) unknown names;
    an open one grows with each new name, in order of first appearance.

    Args:
      path: the .jsonl (or .jsonl.gz) file.
      label_vocab: the `LabelVocab` that maps names to ids.
      featurizer: optional object with ``transform(text) -> (feat_idx int64,
        feat_val float32)`` and ``num_features`` (e.g.
        `tfxc.data.text_features.TfidfFeaturizer`); without one, rows have no
        features and ``num_features`` is 0.
      unknown_labels: "error" or "drop", for names not in a frozen vocabulary.

    Yields:
      `Row(feat_idx, feat_val, labels int64 [pos], text)`.

    Raises:
      DataError: missing/empty file, invalid JSON, a missing or ill-typed
        "text"/"labels", a repeated label in one record, or an unknown label
        with ``unknown_labels="error"``.
    """

    def __init__(self, path: str | os.PathLike, *, label_vocab: LabelVocab,
                 featurizer: Any = None, unknown_labels: str = "error"):
        self.path = os.fspath(path)
        if not isinstance(label_vocab, LabelVocab):
            raise ConfigError(f"label_vocab must be a LabelVocab, got {type(label_vocab).__name__}")
        if unknown_labels not in ("error", "drop"):
            raise ConfigError(f"unknown_labels must be 'error' or 'drop', got {unknown_labels!r}")
        self.label_vocab = label_vocab
        self.featurizer = featurizer
        self.unknown_labels = unknown_labels
        self._rows_read: int | None = None
        with open_text(self.path) as f:  # fail early on a missing or empty file
            if not read_lines(f, self.path, 1, 1):
                raise DataError("file is empty", path=self.path)

    @property
    def num_features(self) -> int:
        return int(self.featurizer.num_features) if self.featurizer is not None else 0

    @property
    def num_labels(self) -> int:
        return len(self.label_vocab)

    @property
    def declared_num_labels(self) -> None:
        return None  # label names, not ids: the vocabulary sizes the labels

    @property
    def num_rows(self) -> int | None:
        return self._rows_read

    def __iter__(self) -> Iterator[Row]:
        vocab, drop = self.label_vocab, self.unknown_labels == "drop"
        featurizer = self.featurizer
        count = 0
        for rec in iter_jsonl(self.path):
            ids = []
            for name in rec.labels:
                idx = vocab.get(name)
                if idx is None:
                    if not vocab.frozen:
                        try:
                            idx = vocab.add(name)
                        except ValueError as e:
                            raise DataError(str(e), path=self.path, line=rec.line,
                                            field="labels") from None
                    elif drop:
                        continue
                    else:
                        raise DataError(f"unknown label {name!r}: not among the {len(vocab)} labels of "
                                        "the training split (or data.label_names); every label must "
                                        "occur there",
                                        path=self.path, line=rec.line, field="labels")
                ids.append(idx)
            labels = np.array(sorted(ids), np.int64) if ids else EMPTY_IDX
            if labels.size > 1 and (np.diff(labels) == 0).any():
                k = int(np.argmax(np.diff(labels) == 0))
                raise DataError(f"duplicate label {vocab.name(int(labels[k]))!r}",
                                path=self.path, line=rec.line, field="labels")
            if featurizer is not None:
                feat_idx, feat_val = featurizer.transform(rec.text)
            else:
                feat_idx, feat_val = EMPTY_IDX, EMPTY_VAL
            count += 1
            yield Row(feat_idx, feat_val, labels, rec.text)
        self._rows_read = count

