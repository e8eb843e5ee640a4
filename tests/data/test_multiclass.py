"""One rule says whether data is multi-class (one label per row), for evaluation, the dual losses and the API."""

import numpy as np
import pytest
import scipy.sparse

from tfxc.data.info import DatasetInfo, one_label_per_row


def label_matrix(rows):
    return scipy.sparse.csr_matrix(([1.0] * sum(map(len, rows)), [label for row in rows for label in row],
                                    np.cumsum([0] + [len(row) for row in rows])), shape=(len(rows), 5))


@pytest.mark.parametrize("rows, multiclass", [
    ([[1], [0], [4]], True),
    ([[1], [], [2, 3]], False),  # one label per row on average, but not on every row
    ([[1], [0, 2]], False),
    ([[1], []], False),
])
def test_one_label_per_row_from_a_label_matrix_s_statistics(rows, multiclass):
    y = label_matrix(rows)
    assert one_label_per_row(y.nnz / max(y.shape[0], 1), int(np.sum(np.diff(y.indptr) == 0))) is multiclass


def test_a_converted_split_is_multiclass_by_the_same_rule():
    splits = {"train": {"avg_labels_per_point": 1.0, "points_without_labels": 0},
              "test": {"avg_labels_per_point": 1.0, "points_without_labels": 2}}
    info = DatasetInfo("unused", num_features=3, num_labels=5, splits=splits, label_freq=np.zeros(5, np.int64))
    assert info.is_multiclass("train") and not info.is_multiclass("test")
