"""What an older artifact lacks beside its record, supplied by the record's format version.

A step of `tfxc.compat.formats` rewrites a record; it cannot create the files an older writer did not
write. Their readers ask here with the version of the record they read: format 0 gets the stand-in it
always got, today's format a `DataError` naming the missing file (today's writers always write it, so its
absence is damage, not age).
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from tfxc.errors import DataError


def _missing(path: str, advice: str) -> DataError:
    return DataError(f"is missing, though the record beside it is of today's format; {advice}", path=path)


# === An export (export.json of format 0: labels.txt and label_freq.npy were added 2026-11-26) ===
def export_label_names(version: int, num_labels: int, path: str) -> list[str]:
    """The label names of an export without labels.txt (`path`): the ids as names for format 0.

    Raises:
      DataError: the export is of today's format, so labels.txt was written and is gone.
    """
    if version >= 1:
        raise _missing(path, "export the model again")
    return [str(i) for i in range(num_labels)]


def export_label_freq(version: int, num_labels: int, path: str) -> np.ndarray:
    """The train label counts of an export without label_freq.npy (`path`): int64 zeros [num_labels] for format 0.

    Raises:
      DataError: the export is of today's format, so label_freq.npy was written and is gone.
    """
    if version >= 1:
        raise _missing(path, "export the model again")
    return np.zeros(num_labels, np.int64)


# === A converted data set (stats.json of format 0) ===
def label_freq_in_stats(stats: dict, version: int, freq_path: str, stats_path: str) -> np.ndarray:
    """The train label counts, int64 [L], of a conversion without label_freq.npy (`freq_path`): before that
    file (2026-11-21) they were the list "label_freq" in stats.json (`stats`, read from `stats_path`).

    Raises:
      DataError: the conversion is of today's format (label_freq.npy is gone), or the list is missing.
    """
    if version >= 1:
        raise _missing(freq_path, "convert the data again (delete the directory)")
    counts = stats.get("label_freq")
    if not isinstance(counts, list):
        raise DataError("no 'label_freq' entry (and no label_freq.npy beside it)", path=stats_path)
    return np.asarray(counts, np.int64)


def fingerprinted_by_mtime(stats: dict, version: int, source_files_key: str) -> bool:
    """Whether a conversion's "source_fingerprint" hashes the sources' paths, sizes and mtimes: format 0
    written before their contents were hashed (2026-11-26), which recorded no `source_files_key`."""
    return version < 1 and source_files_key not in stats


def mtime_fingerprint(option_fields: dict, paths: list[str]) -> str:
    """The source fingerprint conversions wrote before contents were hashed: sha256 of the options
    (`option_fields`, as `tfxc.data.sources` canonicalises them) and each source's path, size and mtime."""
    def file_fields(path):
        if not path:
            return {}
        st = os.stat(path) if os.path.exists(path) else None
        return {"path": os.path.realpath(path), "size": st.st_size if st else None,
                "mtime_ns": st.st_mtime_ns if st else None}

    fields = {**option_fields, "files": [file_fields(path) for path in paths], "format_version": 1}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
