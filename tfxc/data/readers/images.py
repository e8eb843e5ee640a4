"""Labelled images (a folder per class, webdataset shards, a CSV catalog) as rows that carry the encoded image."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers.base import EMPTY_IDX, EMPTY_VAL, Reader
from tfxc.data.rows import Row
from tfxc.errors import DataError
from tfxc.images.recordio import RecordIOSource
from tfxc.images.sources import CatalogSource, FolderSource, ImageSource, WebDatasetSource


def image_source(path: str, *, label_entry: str = "cls", path_column: str = "path", label_column: str = "label",
                 root: str = "") -> ImageSource:
    """The source a path names: a CSV file is a catalog, a .rec file a RecordIO set (its .idx beside it), a
    .tar file, a shard pattern or a directory of .tar files webdataset shards, any other directory a folder per
    class."""
    if path.lower().endswith(".csv"):
        return CatalogSource(path, path_column, label_column, root)
    if path.lower().endswith(".rec"):
        return RecordIOSource(path)
    is_tar_dir = os.path.isdir(path) and any(name.endswith(".tar") for name in os.listdir(path))
    if not os.path.isdir(path) or is_tar_dir:
        return WebDatasetSource(path, label_entry)
    return FolderSource(path)


class ImageReader(Reader):
    """Rows of one image source: no features, the label, and the image's bytes in `Row.image`.

    Args:
      path: the source (`image_source`).
      label_vocab: maps class names to ids (a frozen one: a name outside it is an error); None for a
        webdataset's integer class ids.
      options: `image_source`'s keyword arguments.

    Yields:
      `Row(EMPTY_IDX, EMPTY_VAL, labels int64 [1], None, image bytes)`.
    """

    def __init__(self, path: str | os.PathLike, *, label_vocab: LabelVocab | None = None, label_entry: str = "cls",
                 path_column: str = "path", label_column: str = "label", root: str = ""):
        self.path = os.fspath(path)
        self.source = image_source(self.path, label_entry=label_entry, path_column=path_column,
                                   label_column=label_column, root=root)
        self.label_vocab = label_vocab
        self._max_label = -1
        self._rows_read: int | None = None

    @property
    def num_features(self) -> int:
        return 0

    @property
    def num_labels(self) -> int:
        return len(self.label_vocab) if self.label_vocab is not None else self._max_label + 1

    @property
    def declared_num_labels(self) -> None:
        return None

    @property
    def num_rows(self) -> int | None:
        return self._rows_read

    def __iter__(self) -> Iterator[Row]:
        count = 0
        for item in self.source.items():
            if isinstance(item.label, int):
                label = item.label
            else:
                if self.label_vocab is None:
                    raise DataError(f"class name {item.label!r} where class ids were expected", path=self.path,
                                    field=item.ref)
                label = self.label_vocab.get(item.label)
                if label is None:
                    raise DataError(f"unknown class {item.label!r}: not among the {len(self.label_vocab)} classes of "
                                    "the training split (or data.label_names)", path=self.path, field=item.ref)
            self._max_label = max(self._max_label, label)
            count += 1
            yield Row(EMPTY_IDX, EMPTY_VAL, np.array([label], np.int64), None, item.data)
        self._rows_read = count


def class_names(path: str, **options) -> list[str] | None:
    """The sorted class names of a source (torchvision's ImageFolder order, SCENT's TreeOfLife order), or None
    for integer class ids."""
    source = image_source(path, **options)
    if source.label_kind == "id":
        return None
    return sorted({item.label for item in source.items(with_bytes=False)})


def source_files(path: str, **options) -> list[str]:
    """Every file a source reads (for the conversion's fingerprint): the shards, a RecordIO file and its index,
    or the catalog and its images, or the folder's images."""
    source = image_source(path, **options)
    if isinstance(source, WebDatasetSource):
        return list(source.shards)
    if isinstance(source, RecordIOSource):
        return [source.faces.rec_path, source.faces.idx_path]
    base = source.root
    files = [os.path.join(base, item.ref) for item in source.items(with_bytes=False)]
    return ([source.path] if isinstance(source, CatalogSource) else []) + files
