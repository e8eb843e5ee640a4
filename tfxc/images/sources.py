"""Where labelled images come from: a folder per class, webdataset tar shards, or a CSV catalog.

Each source yields `ImageItem`s in one fixed order (the same on every pass, so an interrupted extraction
resumes at a row count), first without their bytes (`items(with_bytes=False)`: the cheap pass that sizes
the label space and the splits) and then with them:

* `FolderSource`: ImageNet's layout, ``ROOT/<class>/<image>``, classes and files in sorted order
  (torchvision's ImageFolder order). A root holding ``train/``, ``val/`` and ``test/`` folders of that
  layout gives each image its split.
* `WebDatasetSource`: tar shards whose members are grouped by key as webdataset groups them (the path up
  to the first dot of the file name: ``000123.jpg`` + ``000123.cls``); the label is the entry named by
  `label_entry`: ``cls`` holds an integer class id (Glint360K's shards), any other entry (``txt``,
  ``species.txt``) a class name.
* `CatalogSource`: a CSV file with a column of image paths (relative to `root`) and the label column
  chosen (TreeOfLife-10M's catalog names every taxon level: kingdom ... species), optionally a column
  naming each image's split.

Labels are class names (sorted unique names become ids 0..L-1, as SCENT's TreeOfLife labels are), except
a webdataset's ``cls`` entries, which are the ids themselves.
"""

from __future__ import annotations

import collections
import glob
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from typing import NamedTuple

from tfxc.data.files import delimited_rows
from tfxc.errors import ConfigError, DataError

# The files `tf.io.decode_image` reads (by content, not by name; the suffixes only pick files out of folders):
# TensorFlow 2.21 decodes WebP and JPEG XL too (`tfxc.images.preprocessing.FORMATS`).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".jxl")
IMAGE_EXTENSIONS = frozenset(suffix[1:] for suffix in IMAGE_SUFFIXES)  # a webdataset entry's last extension
# Image files the decoder does not read: a folder's are counted and named, never passed over without a word
# (a phone's photos are HEIC, a scanner's TIFF).
UNDECODABLE_IMAGE_SUFFIXES = (".avif", ".heic", ".heif", ".tif", ".tiff", ".jp2", ".j2k", ".jpx", ".ico", ".svg",
                              ".psd", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raw", ".pbm",
                              ".pgm", ".ppm", ".pnm", ".tga", ".exr", ".hdr", ".xcf")
DECODER_READS = "JPEG, PNG, GIF, BMP, WebP and JPEG XL"

log = logging.getLogger("tfxc.images")


def skipped_images_note(skipped: list[str]) -> str | None:
    """What a listing of image files says about the `skipped` ones (paths, in listing order) whose suffix is an
    image format the decoder does not read: their count by suffix and an example; None when there are none."""
    if not skipped:
        return None
    counts = collections.Counter(os.path.splitext(path)[1].lower() for path in skipped)
    by_suffix = ", ".join(f"{suffix}: {n}" for suffix, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])))
    count = f"{len(skipped)} image{'' if len(skipped) == 1 else 's'}"
    return f"{count} in formats {{}} does not read ({by_suffix}; e.g. {skipped[0]})"


def list_note(root: str, skipped: list[str]) -> None:
    """Logs, once for a listing, which image files of `root` were skipped (`skipped_images_note`)."""
    note = skipped_images_note(skipped)
    if note:
        log.warning("%s: skipped %s; it reads %s: convert them (e.g. to JPEG) to use them", root,
                    note.format("the decoder"), DECODER_READS)


def no_images_error(root: str, where: str, skipped: list[str]) -> DataError:
    """The error of a listing that found no image the decoder reads under `root` (`where`: in what)."""
    note = skipped_images_note(skipped)
    if note is None:
        return DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) {where}", path=root)
    return DataError(f"no images the decoder reads ({DECODER_READS}) {where}, but {note.format('it')}: convert "
                     "them (e.g. to JPEG) to use them", path=root)
SPLITS = ("train", "val", "test")


class ImageItem(NamedTuple):
    """One labelled image.

    Attributes:
      ref: the image's name in its source (a path relative to the folder or catalog root, or a tar key),
        written beside the features (`{split}/refs.txt`) and matched by split files.
      label: the class name (str) or, for a webdataset's ``cls`` entries, the class id (int).
      data: the encoded image (None in a pass without bytes).
      split: "train", "val" or "test" where the source says (split folders, a split column), else None.
    """

    ref: str
    label: str | int
    data: bytes | None = None
    split: str | None = None


class ImageSource:
    """A re-iterable, fixed-order stream of `ImageItem`s (see the module docstring)."""

    #: "name" (labels are class names) or "id" (integer class ids).
    label_kind = "name"

    def items(self, with_bytes: bool = True, skip: int = 0) -> Iterator[ImageItem]:
        """The items in order, from the `skip`-th on (skipped items are not read)."""
        raise NotImplementedError

    def describe(self) -> dict:
        """What the source is, for the extraction's record and its resume check."""
        raise NotImplementedError


def _read_bytes(path: str, ref: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read the image ({e.strerror})", path=path, field=ref) from None


class FolderSource(ImageSource):
    """``root/<class>/<image>`` (or ``root/{train,val,test}/<class>/<image>``), in sorted order.

    Raises:
      DataError: the root is not a directory or holds no class folder with images.
    """

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            raise DataError("not a directory (expected one folder per class)", path=root)
        present = [s for s in SPLITS if os.path.isdir(os.path.join(self.root, s))]
        self.split_folders = "train" in present and len(present) >= 2
        self._files = []  # (relative path, class name, split or None)
        skipped = []  # image files the decoder does not read
        for split in (present if self.split_folders else [None]):
            base = os.path.join(self.root, split) if split else self.root
            for name in sorted(os.listdir(base)):
                folder = os.path.join(base, name)
                if not os.path.isdir(folder):
                    continue
                for dirpath, dirnames, filenames in os.walk(folder):
                    dirnames.sort()
                    for file in sorted(filenames):
                        rel = os.path.relpath(os.path.join(dirpath, file), self.root)
                        if file.lower().endswith(IMAGE_SUFFIXES):
                            self._files.append((rel, name, split))
                        elif file.lower().endswith(UNDECODABLE_IMAGE_SUFFIXES):
                            skipped.append(rel)
        if not self._files:
            raise no_images_error(root, "in class folders under it", skipped)
        list_note(root, skipped)

    def items(self, with_bytes=True, skip=0):
        for rel, name, split in self._files[skip:]:
            data = _read_bytes(os.path.join(self.root, rel), rel) if with_bytes else None
            yield ImageItem(rel, name, data, split)

    def describe(self):
        return {"kind": "folder", "root": self.root, "images": len(self._files)}


_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shards(pattern: str) -> list[str]:
    """Shard paths of a webdataset spec: brace ranges (``shard-{000..099}.tar``, zero padding kept), glob
    wildcards, or a directory (its ``*.tar`` files), in sorted order.

    Raises:
      DataError: the spec names no existing file.
    """
    if os.path.isdir(pattern):
        paths = sorted(glob.glob(os.path.join(pattern, "*.tar")))
    else:
        paths = [pattern]
        while any(_BRACES.search(p) for p in paths):
            expanded = []
            for p in paths:
                m = _BRACES.search(p)
                if m is None:
                    expanded.append(p)
                    continue
                lo, hi, width = int(m.group(1)), int(m.group(2)), len(m.group(1))
                expanded += [p[:m.start()] + str(i).zfill(width) + p[m.end():] for i in range(lo, hi + 1)]
            paths = expanded
        paths = sorted(q for p in paths for q in (glob.glob(p) if any(c in p for c in "*?[") else [p]))
    missing = [p for p in paths if not os.path.isfile(p)]
    if not paths or missing:
        raise DataError("no such shard" if missing else "the spec matches no .tar shard",
                        path=missing[0] if missing else pattern)
    return paths


def _split_key(member_name: str) -> tuple[str, str]:
    """webdataset's grouping: ``dir/000123.seg.jpg`` -> (``dir/000123``, ``seg.jpg``)."""
    folder, base = os.path.split(member_name)
    stem, _, extension = base.partition(".")
    return os.path.join(folder, stem) if folder else stem, extension.lower()


class WebDatasetSource(ImageSource):
    """Samples of webdataset tar shards: one image entry (jpg, jpeg, png, gif or bmp) and one label entry
    (`label_entry`) per key, members of a key consecutive, shards in sorted order.

    Raises:
      DataError: a shard is not a readable tar, a key lacks its image or label entry or repeats, a ``cls``
        entry is not a non-negative integer or a name entry not UTF-8 (named by shard, member and key).
    """

    def __init__(self, pattern: str, label_entry: str = "cls"):
        self.pattern, self.label_entry = pattern, label_entry.lower().lstrip(".")
        self.shards = expand_shards(pattern)
        self.label_kind = "id" if self.label_entry == "cls" else "name"
        self.shard_sizes: list[int] = []  # samples per shard, as far as a pass has counted them

    def describe(self):
        return {"kind": "webdataset", "shards": self.shards, "label_entry": self.label_entry}

    def items(self, with_bytes=True, skip=0):
        start = 0  # the index of the shard's first sample
        for i, shard in enumerate(self.shards):
            size = self.shard_sizes[i] if i < len(self.shard_sizes) else None
            if size is not None and start + size <= skip:
                start += size  # a shard sized by an earlier pass is skipped unread
                continue
            count = 0
            for count, (key, image, label) in enumerate(self._samples(shard, with_bytes), 1):
                if start + count > skip:
                    yield ImageItem(key, label, image)
            if i == len(self.shard_sizes):
                self.shard_sizes.append(count)
            start += count

    def _samples(self, shard: str, with_bytes: bool) -> Iterator[tuple[str, bytes | None, str | int]]:
        """(key, image bytes or None, label) of each sample of one shard."""
        try:
            archive = tarfile.open(shard, "r:*")
        except (OSError, tarfile.TarError) as e:
            raise DataError(f"not a readable tar archive ({e})", path=shard) from None
        seen: set[str] = set()
        key, entries = None, {}
        with archive:
            try:
                for member in archive:
                    if not member.isfile():
                        continue
                    k, extension = _split_key(member.name)
                    if k != key:
                        if key is not None:
                            yield self._sample(shard, key, entries, seen)
                        key, entries = k, {}
                    is_image = extension.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS
                    if extension == self.label_entry or (is_image and with_bytes):
                        entries[extension] = archive.extractfile(member).read()
                    elif is_image:
                        entries[extension] = None
            except (OSError, tarfile.TarError, EOFError) as e:
                raise DataError(f"the tar archive is damaged after key {key!r} ({e})", path=shard) from None
        if key is not None:
            yield self._sample(shard, key, entries, seen)

    def _sample(self, shard, key, entries, seen):
        if key in seen:
            raise DataError("the key's entries are not consecutive (or the key repeats); webdataset shards "
                            "keep each sample's files together", path=shard, field=key)
        seen.add(key)
        images = [e for e in entries if e.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS]
        if len(images) != 1:
            raise DataError(f"expected one image entry, found {len(images)} ({', '.join(sorted(entries)) or 'none'})",
                            path=shard, field=key)
        if self.label_entry not in entries:
            raise DataError(f"no '{self.label_entry}' label entry (entries: {', '.join(sorted(entries))})",
                            path=shard, field=key)
        raw = entries[self.label_entry]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DataError(f"the '{self.label_entry}' entry is not UTF-8 text", path=shard, field=key) from None
        if self.label_kind == "id":
            if not text.isascii() or not text.isdigit():
                raise DataError(f"the 'cls' entry {text[:40]!r} is not a class id (a non-negative integer); name "
                                "entries holding class names with --label-entry", path=shard, field=key)
            return key, entries[images[0]], int(text)
        if not text or "\n" in text:
            raise DataError(f"the '{self.label_entry}' entry is empty or spans lines", path=shard, field=key)
        return key, entries[images[0]], text


class CatalogSource(ImageSource):
    """A CSV catalog: one row per image, its path in `path_column` (relative to `root`, by default the
    catalog's folder) and its class in `label_column`; `split_column` (optional) holds train, val or test.

    Raises:
      DataError: a missing column (with the columns the header has), an empty path or label, or a split
        value other than train, val and test (named by catalog line).
    """

    def __init__(self, path: str, path_column: str, label_column: str, root: str = "", split_column: str = ""):
        self.path = os.path.abspath(path)
        self.root = os.path.abspath(root) if root else os.path.dirname(self.path)
        self.columns = (path_column, label_column, split_column)
        self._rows = list(self._read())

    def describe(self):
        return {"kind": "catalog", "path": self.path, "root": self.root, "columns": list(self.columns),
                "images": len(self._rows)}

    def _read(self) -> Iterator[tuple[str, str, str | None]]:
        path_column, label_column, split_column = self.columns
        # The text readers' CSV parser: every row must have the header's cell count (an unquoted comma in a
        # path would otherwise shift its label), cells may be long, bad bytes and quotes are named by line.
        rows = delimited_rows(self.path)
        header = next(rows, (1, []))[1]
        for column in filter(None, self.columns):
            if column not in header:
                raise DataError(f"no column {column!r}; the header has: {', '.join(header)}", path=self.path,
                                line=1)
        at = {column: header.index(column) for column in filter(None, self.columns)}
        for line, row in rows:
            ref, label = row[at[path_column]], row[at[label_column]]
            if not ref or not label:
                raise DataError("empty", path=self.path, line=line, field=path_column if not ref else label_column)
            split = row[at[split_column]] if split_column else None
            if split_column and split not in SPLITS:
                raise DataError(f"{split!r} is not one of {', '.join(SPLITS)}", path=self.path, line=line,
                                field=split_column)
            yield ref, label, split

    def items(self, with_bytes=True, skip=0):
        for ref, label, split in self._rows[skip:]:
            data = _read_bytes(os.path.join(self.root, ref), ref) if with_bytes else None
            yield ImageItem(ref, label, data, split)


def open_source(folder: str = "", webdataset: str = "", catalog: str = "", *, label_entry: str = "cls",
                path_column: str = "", label_column: str = "", split_column: str = "", root: str = "") -> ImageSource:
    """The source one of `folder`, `webdataset` and `catalog` names (the CLIs' options)."""
    if sum(map(bool, (folder, webdataset, catalog))) != 1:
        raise ConfigError("give exactly one image source: a folder per class, webdataset shards or a CSV catalog")
    if folder:
        return FolderSource(folder)
    if webdataset:
        return WebDatasetSource(webdataset, label_entry)
    if not (path_column and label_column):
        raise ConfigError("a CSV catalog needs its path column and its label column (the taxon level to classify)")
    return CatalogSource(catalog, path_column, label_column, root, split_column)
