"""Readers for the input formats tfxc accepts; each yields `Row`s in file order.

One module per format, and one table of them (`FORMATS`):

* ``xc`` (`XcBowReader`): Extreme Classification Repository bag-of-words
  text, plain or gzipped, with or without the ``N D L`` header line.
* ``pecos`` (`PecosNpzReader`): PECOS ``X.*.npz`` / ``Y.*.npz`` scipy sparse
  matrices.
* ``jsonl`` (`JsonlReader`): one JSON object ``{"id", "text", "labels"}`` per
  line, label names mapped through a `LabelVocab`.
* ``dense`` (`DenseReader`): a 2-D ``.npy`` feature matrix plus labels in a
  ``.npz`` / ``.npy`` / text file.
* ``images`` (`ImageReader`): labelled images (a folder per class, webdataset
  shards or a CSV catalog), each row carrying its encoded image.

Every reader is re-iterable (each ``iter()`` starts a new pass over the file)
and exposes ``num_features``, ``num_labels`` and ``num_rows`` (see `Reader`).
Bad input raises `tfxc.errors.DataError` naming the file and, where it applies,
the 1-based line and the field. No reader ever unpickles.

Conventions shared by all readers: feature values are float32 and explicit
zero values are dropped (a row holds its nonzero features only); feature ids
of a row come out sorted; a repeated feature id or label within a row is an
error; a row may have no features and/or no labels.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

from tfxc.data.files import open_text
from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers.base import Reader
from tfxc.data.readers.dense import DenseReader
from tfxc.data.readers.images import ImageReader
from tfxc.data.readers.jsonl import JsonlReader, JsonlRecord, iter_jsonl
from tfxc.data.readers.pecos import PecosNpzReader, load_sparse_npz
from tfxc.data.readers.xc import XcBowReader
from tfxc.errors import ConfigError
from tfxc.registry import did_you_mean

__all__ = [
    "FORMATS",
    "DenseReader",
    "Format",
    "ImageReader",
    "JsonlReader",
    "JsonlRecord",
    "LabelVocab",
    "PecosNpzReader",
    "Reader",
    "XcBowReader",
    "iter_jsonl",
    "load_sparse_npz",
    "open_reader",
    "open_text",
]


@dataclass(frozen=True)
class Format:
    """One source format.

    Attributes:
      name: the `data.format` value.
      reader: the `Reader` class.
      labels_file: labels come in a second file (`labels_path`), not in the data file.
      description: one line for help texts.
    """

    name: str
    reader: type[Reader]
    labels_file: bool
    description: str


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("xc", XcBowReader, False, "Extreme Classification Repository bag-of-words text"),
    Format("pecos", PecosNpzReader, True, "PECOS X/Y scipy sparse .npz matrices"),
    Format("jsonl", JsonlReader, False, 'JSON lines {"text", "labels"}, or CSV with sentence and label columns '
           '(TF-IDF features fit on train)'),
    Format("dense", DenseReader, True, "a 2-D .npy feature matrix with labels in .npz/.npy/text"),
    Format("images", ImageReader, False, "labelled images: a folder per class, webdataset .tar shards or a CSV "
           "catalog of paths and labels"),
)}


def open_reader(fmt: str, path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
                **options: Any) -> Reader:
    """Creates the reader for a format name.

    Args:
      fmt: a name in `FORMATS`.
      path: the main file (features, or the whole data for xc/jsonl).
      labels_path: the label file; required for formats with `labels_file`,
        refused for the others.
      **options: keyword arguments of that reader, e.g. ``index_base=1`` for
        "xc" or ``label_vocab=...`` for "jsonl".

    Returns:
      The `Reader`.

    Raises:
      ConfigError: unknown format (with the closest known name), a missing or
        unexpected `labels_path`, or an option the reader does not take.
      DataError: from the reader's constructor.
    """
    spec = FORMATS.get(fmt)
    if spec is None:
        raise ConfigError(f"unknown data format {fmt!r}{did_you_mean(str(fmt), FORMATS)}; "
                          f"known: {', '.join(sorted(FORMATS))}")
    if spec.labels_file and labels_path is None:
        raise ConfigError(f"format {fmt!r} needs labels_path (the label file)")
    if not spec.labels_file and labels_path is not None:
        raise ConfigError(f"format {fmt!r} keeps labels in the data file; labels_path must be "
                          "None")
    params = inspect.signature(spec.reader.__init__).parameters
    allowed = sorted(name for name, p in params.items() if p.kind is p.KEYWORD_ONLY)
    for key in options:
        if key not in allowed:
            raise ConfigError(f"format {fmt!r} has no option {key!r}{did_you_mean(key, allowed)}; options: "
                              f"{', '.join(allowed) or 'none'}")
    missing = [name for name in allowed
               if params[name].default is inspect.Parameter.empty and name not in options]
    if missing:
        raise ConfigError(f"format {fmt!r} needs option(s) {', '.join(missing)}")
    if spec.labels_file:
        return spec.reader(path, labels_path, **options)  # type: ignore[call-arg]
    return spec.reader(path, **options)  # type: ignore[call-arg]
