"""The source files a data config names: which files they are, and a fingerprint of their contents that
decides whether a converted directory still holds their conversion."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

from tfxc.errors import DataError

DENSE_FEATURES_FILE, DENSE_LABELS_FILE = "features.npy", "labels.npy"


def dense_source_files(source_dir: str) -> dict[str, tuple[str, str]]:
    """{split: (features.npy, labels.npy)} of a `{train,val,test}/` directory (val is optional).

    Raises:
      DataError: train or test is missing, or a split has only one of its two files.
    """
    out = {}
    for split in ("train", "val", "test"):
        x, y = (os.path.join(source_dir, split, name) for name in (DENSE_FEATURES_FILE, DENSE_LABELS_FILE))
        if not os.path.exists(x) and not os.path.exists(y) and split == "val":
            continue
        for path in (x, y):
            if not os.path.exists(path):
                raise DataError(f"missing; a dense source_dir holds {{train,val,test}}/{DENSE_FEATURES_FILE} "
                                f"and {DENSE_LABELS_FILE} (val optional)", path=path)
        out[split] = (x, y)
    return out


SOURCE_PATH_FIELDS = ("train", "test", "val", "train_labels", "test_labels", "val_labels", "label_names",
                       "val_groups", "source_dir")
SOURCE_FILES_KEY = "source_files"  # stats.json: {real path: {size, mtime_ns, sha256}}, the content cache


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class SourceFiles:
    """The content of the source files, by sha256, read again only when a file's size or mtime changed.

    A fingerprint of contents, not time stamps: `cp -r`, `git checkout` or `rsync` without `-t` give the
    same bytes new mtimes, and must not make a conversion (and every model bound to it) stale.

    Args:
      known: the {real path: {"size", "mtime_ns", "sha256"}} entries of an earlier conversion.
    """

    def __init__(self, known: dict | None = None):
        self.known = dict(known or {})
        self.seen: dict[str, dict] = {}

    def fingerprint(self, path: str) -> dict:
        """{"path", "size", "sha256"} of `path` ({} for no path; None fields for a missing file)."""
        if not path:
            return {}
        real = os.path.realpath(path)
        if not os.path.exists(real):
            return {"path": real, "size": None, "sha256": None}
        st = os.stat(real)
        entry = self.seen.get(real) or self.known.get(real)
        if not (isinstance(entry, dict) and entry.get("size") == st.st_size
                and entry.get("mtime_ns") == st.st_mtime_ns and entry.get("sha256")):
            entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256_of(real)}
        self.seen[real] = entry
        return {"path": real, "size": entry["size"], "sha256": entry["sha256"]}


def _source_paths(data_config) -> list[str]:
    """Every file a conversion of `data_config` reads ("" for the unset ones, in a fixed order)."""
    paths = [getattr(data_config, name) for name in ("train", "test", "val", "train_labels", "test_labels",
                                                     "val_labels", "label_names")]
    if data_config.val_groups:
        paths.append(data_config.val_groups)
    if data_config.source_dir:
        paths += [path for pair in dense_source_files(data_config.source_dir).values() for path in pair]
    return paths


def source_fingerprint(data_config, files: SourceFiles | None = None) -> str:
    """Hash of everything that determines the converted output: the options and the sources' contents.

    Args:
      data_config: the `DataConfig`.
      files: the content cache to read (and record) the sources' hashes through.
    """
    files = files or SourceFiles()
    fields = _option_fields(data_config)
    fields["files"] = [files.fingerprint(path) for path in _source_paths(data_config)]
    fields["format_version"] = 2
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _option_fields(data_config) -> dict:
    fields = dataclasses.asdict(data_config)
    for transient in ("dir", "shuffle_buffer"):
        fields.pop(transient)
    # A source named by a relative, an absolute or a symlinked path is the same source: the runs of one
    # data directory would otherwise convert it again each time the spelling alternates.
    for name in SOURCE_PATH_FIELDS:
        if fields.get(name):
            fields[name] = os.path.realpath(fields[name])
    # Options added later enter only when set, so older conversions keep their fingerprint.
    for key, default in (("val_percent", 0), ("val_fold", ""), ("val_groups", ""), ("val_group_sep", ":")):
        if fields[key] == default:
            fields.pop(key)
    return fields


def _mtime_fingerprint(data_config) -> str:
    """The fingerprint of conversions written before contents were hashed (by path, size and mtime)."""
    def file_fields(path):
        if not path:
            return {}
        st = os.stat(path) if os.path.exists(path) else None
        return {"path": os.path.realpath(path), "size": st.st_size if st else None,
                "mtime_ns": st.st_mtime_ns if st else None}

    fields = _option_fields(data_config)
    fields["files"] = [file_fields(path) for path in _source_paths(data_config)]
    fields["format_version"] = 1
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def is_conversion_of(stats: dict, data_config, files: SourceFiles | None = None) -> bool:
    """Whether `stats` (a converted directory's stats.json) records a conversion of `data_config`'s sources.

    `files`, when given, keeps the hashes read here, so that a conversion that follows reads no source twice.
    """
    stored = stats.get("source_fingerprint")
    if SOURCE_FILES_KEY not in stats:  # written before contents were hashed
        return stored == _mtime_fingerprint(data_config)
    files = files or SourceFiles()
    if isinstance(stats[SOURCE_FILES_KEY], dict):
        files.known.update(stats[SOURCE_FILES_KEY])
    return stored == source_fingerprint(data_config, files)


def with_absolute_paths(data_config):
    """`data_config` (a `DataConfig`) with its relative source paths and `dir` made absolute (against the
    working directory), as a model directory keeps them: read from anywhere, they name the same files."""
    absolute = {name: os.path.abspath(getattr(data_config, name)) for name in SOURCE_PATH_FIELDS + ("dir",)
                if getattr(data_config, name) and not os.path.isabs(getattr(data_config, name))}
    return dataclasses.replace(data_config, **absolute) if absolute else data_config
