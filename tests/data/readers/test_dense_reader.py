"""DenseReader: .npy features with each kind of label file, and its errors."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse
from reader_cases import assert_error, check_row, save_npy, save_npz, write

from tfxc.data.readers import (DenseReader)
from tfxc.errors import DataError


X_DENSE = np.array([[0, 1.5, 0], [2, 0, -1], [0, 0, 0]], np.float32)


def test_dense_with_each_label_kind(tmp_path, monkeypatch):
    monkeypatch.setattr(DenseReader, "_CHUNK_ROWS", 2)
    x = save_npy(tmp_path, "x.npy", X_DENSE)
    feats = [([1], [1.5]), ([0, 2], [2.0, -1.0]), ([], [])]
    y_sparse = save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(
        np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], np.float32)))
    y_int = save_npy(tmp_path, "y.npy", np.array([2, 0, 1]))
    y_text = write(tmp_path, "y.txt", "2,0\n\n1\n")
    for labels_path, expected, num_labels in [(y_sparse, [[0, 2], [], [1]], 4),
                                              (y_int, [[2], [0], [1]], 3),
                                              (y_text, [[0, 2], [], [1]], 3)]:
        reader = DenseReader(x, labels_path)
        rows = list(reader)
        for row in rows:
            check_row(row)
        assert [(r.feat_idx.tolist(), r.feat_val.tolist()) for r in rows] == feats
        assert [r.labels.tolist() for r in rows] == expected
        assert (reader.num_rows, reader.num_features, reader.num_labels) == (3, 3, num_labels)


def test_dense_errors(tmp_path):
    x = save_npy(tmp_path, "x.npy", X_DENSE)
    y = write(tmp_path, "y.txt", "0\n1\n2\n")
    flat = save_npy(tmp_path, "flat.npy", np.ones(3))
    with pytest.raises(DataError) as e:
        DenseReader(flat, y)
    assert_error(e, flat, None, "X", "must be a 2-D array, got shape (3,)")
    nan = save_npy(tmp_path, "nan.npy", np.array([[1.0, 0], [np.inf, 0]]))
    with pytest.raises(DataError) as e:
        list(DenseReader(nan, write(tmp_path, "y2.txt", "0\n0\n")))
    assert_error(e, nan, None, "X", "non-finite value inf at row 1, column 0")
    objects = save_npy(tmp_path, "obj.npy", np.array([[1, None]], dtype=object))
    with pytest.raises(DataError) as e:
        DenseReader(objects, y)
    assert_error(e, objects, None, "X", "not a readable .npy")
    for text, count in [("0\n1\n", 2), ("0\n1\n2\n3\n4\n", 5)]:
        short = write(tmp_path, "short.txt", text)
        with pytest.raises(DataError) as e:
            list(DenseReader(x, short))
        assert_error(e, x, None, None, "x.npy has 3 rows", f"has {count} lines")
    with pytest.raises(DataError) as e:
        DenseReader(x, save_npy(tmp_path, "y4.npy", np.arange(4)))
    assert_error(e, x, None, None, "x.npy has 3 rows", "has 4")
    for text, fragment in [("0\n1;2\n0\n", "malformed label id '1;2'"),
                           ("0\n-1\n0\n", "negative label id -1"),
                           ("0\n1,1\n0\n", "duplicate label id 1")]:
        bad = write(tmp_path, "bad.txt", text)
        with pytest.raises(DataError) as e:
            list(DenseReader(x, bad))
        assert_error(e, bad, 2, "labels", fragment)
    with pytest.raises(DataError) as e:
        list(DenseReader(x, y, num_labels=2))
    assert_error(e, y, 3, "labels", "label id 2 is out of range [0, 2)")
    with pytest.raises(DataError) as e:
        DenseReader(x, save_npy(tmp_path, "yf.npy", np.ones(3)))
    assert_error(e, tmp_path / "yf.npy", None, "labels", "1-D integer array")
    with pytest.raises(DataError) as e:
        DenseReader(tmp_path / "missing.npy", y)
    assert_error(e, tmp_path / "missing.npy", None, None, "file not found")
    with pytest.raises(DataError) as e:
        DenseReader(x, tmp_path / "missing.txt")
    assert_error(e, tmp_path / "missing.txt", None, None, "file not found")
