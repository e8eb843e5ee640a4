"""Shared pieces of the reader tests: writing files, the Row contract, and error-message checks."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest
import scipy.sparse

from helpers import write_text as write  # noqa: F401  (re-exported to the reader tests)

from tfxc.data.rows import Row

# The shared data sets live next to the repository (../shared/data); override with
# TFXC_DATA_DIR. Tests that need them are skipped where they are absent.
DATA = pathlib.Path(os.environ.get(
    "TFXC_DATA_DIR", pathlib.Path(__file__).resolve().parents[3].parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "README.md").exists(),
                                reason=f"shared data sets not found at {DATA}")


def check_row(row: Row) -> None:
    """The Row contract: dtypes, 1-D, sorted unique ids."""
    assert row.feat_idx.dtype == np.int64 and row.feat_idx.ndim == 1
    assert row.feat_val.dtype == np.float32 and row.feat_val.shape == row.feat_idx.shape
    assert row.labels.dtype == np.int64 and row.labels.ndim == 1
    assert np.all(np.diff(row.feat_idx) > 0) and np.all(np.diff(row.labels) > 0)


def as_lists(rows):
    return [(r.feat_idx.tolist(), r.feat_val.tolist(), r.labels.tolist()) for r in rows]


def assert_error(excinfo, path, line, field, *fragments):
    """The message names the file, the 1-based line and the field."""
    message = str(excinfo.value)
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(prefix), message
    if field is not None:
        assert f"field '{field}'" in message, message
    for fragment in fragments:
        assert fragment in message, message


def save_npz(tmp_path, name, matrix):
    path = tmp_path / name
    scipy.sparse.save_npz(path, matrix)
    return path


def save_npy(tmp_path, name, array):
    path = tmp_path / name
    np.save(path, array)
    return path


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)
