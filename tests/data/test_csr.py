"""In-memory labels -> CSR (`labels_csr`, `label_lists`): one width rule, the readers' (explicit -> declared -> seen)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from tfxc.data.csr import label_lists, labels_csr
from tfxc.data.readers import DenseReader
from tfxc.errors import DataError


def ids(matrix) -> list[list[int]]:
    return [matrix.indices[matrix.indptr[i]:matrix.indptr[i + 1]].tolist() for i in range(matrix.shape[0])]


@pytest.mark.parametrize("num_labels,width", [(None, 6), (9, 9), (6, 6)])
def test_lists_are_as_wide_as_the_explicit_count_else_the_largest_id_plus_one(num_labels, width):
    y = labels_csr([[5, 0], [], [2, "3", 2]], num_labels=num_labels)
    assert y.shape == (3, width) and y.dtype == np.float32
    assert ids(y) == [[0, 5], [], [2, 3]] and (y.data == 1).all()  # sorted, repeated labels once


def test_a_matrix_is_as_wide_as_the_explicit_count_else_as_it_is():
    y = scipy.sparse.csr_matrix(np.array([[0, 2.5, 0, 0], [1, 0, 0, 0]]))
    assert labels_csr(y).shape == (2, 4)
    assert labels_csr(y, num_labels=7).shape == (2, 7)
    assert labels_csr(y, num_labels=2).shape == (2, 2)  # narrower is fine while no label lies beyond
    assert labels_csr(y).data.tolist() == [2.5, 1.0]  # values (e.g. relevance scores) are kept


def test_no_labels_at_all_is_width_zero_unless_told():
    assert labels_csr([[], []]).shape == (2, 0)
    assert labels_csr([[], []], num_labels=3).shape == (2, 3)


def test_an_id_beyond_the_explicit_count_names_the_row():
    with pytest.raises(DataError, match=r"Y \(test\), row 1: label id 4 is out of range \[0, 4\)"):
        labels_csr([[0], [1, 4]], "Y (test)", num_labels=4)
    y = scipy.sparse.csr_matrix(np.eye(3, 5)[:, ::-1])  # row 0's label is 4
    with pytest.raises(DataError, match=r"Y, row 0: label id 4 is out of range \[0, 3\)"):
        labels_csr(y, num_labels=3)


@pytest.mark.parametrize("labels,message", [
    ([["x"]], r"Y, row 0: label 'x' is not a label id \(an integer >= 0\)"),
    ([[1], ["٣"]], r"Y, row 1: label '٣' is not a label id"),  # int() would read it as 3
    ([[None]], r"Y, row 0: label None is not a label id"),
    ([[0, -2]], r"Y: label ids must be >= 0"),
    ([["-2"]], r"Y: label ids must be >= 0"),
])
def test_labels_that_are_no_ids_are_refused(labels, message):
    with pytest.raises(DataError, match=message):
        labels_csr(labels)


def test_names_map_through_the_label_names_and_only_there():
    names = ["red", "green", "7"]
    y = labels_csr([["green", 0], ["7"]], names=names)
    assert ids(y) == [[0, 1], [2]] and y.shape == (2, 3)
    with pytest.raises(DataError, match="Y, row 0: unknown label name 'blue'"):
        labels_csr([["blue"]], names=names)
    with pytest.raises(DataError, match="unknown label name '1'"):  # with names, a string is a name
        labels_csr([["1"]], names=names)


def test_the_callers_matrix_is_never_changed():
    y = scipy.sparse.csr_matrix((np.array([1.0, 0.0, 1.0]), np.array([2, 0, 1]), np.array([0, 2, 3])), shape=(2, 3))
    before = (y.data.copy(), y.indices.copy(), y.indptr.copy(), y.shape)
    out = labels_csr(y, num_labels=5)
    assert ids(out) == [[2], [1]] and out.shape == (2, 5)  # the explicit zero is no label
    after = (y.data, y.indices, y.indptr, y.shape)
    assert all(np.array_equal(a, b) for a, b in zip(before[:3], after[:3])) and before[3] == after[3]


def test_label_lists_reads_a_matrix_as_labels_csr_does():
    y = scipy.sparse.csr_matrix((np.array([1.0, 0.0, 1.0]), np.array([2, 0, 1]), np.array([0, 2, 3])), shape=(2, 3))
    assert label_lists(y) == [[2], [1]]
    assert label_lists([("a", "b"), []]) == [["a", "b"], []]


@pytest.mark.parametrize("num_labels", [None, 8])
def test_the_same_width_as_a_reader_of_the_same_labels(tmp_path, num_labels):
    """The rule is the readers' (`IdSpace`): label lists size like a text label file, a matrix like a Y .npz."""
    lists = [[0, 5], [], [3]]
    x = tmp_path / "x.npy"
    np.save(x, np.ones((3, 2)))
    text = tmp_path / "y.txt"
    text.write_text("0,5\n\n3\n")
    reader = DenseReader(x, text, num_labels=num_labels)
    list(reader)
    assert labels_csr(lists, num_labels=num_labels).shape[1] == reader.num_labels

    matrix = scipy.sparse.csr_matrix(labels_csr(lists, num_labels=7))
    npz = tmp_path / "y.npz"
    scipy.sparse.save_npz(npz, matrix)
    reader = DenseReader(x, npz, num_labels=num_labels)
    assert labels_csr(matrix, num_labels=num_labels).shape[1] == reader.num_labels


def test_a_dense_2d_array_is_an_indicator_matrix_as_wide_as_its_columns():
    y = np.eye(5, dtype=np.float32)[[0, 3, 4]]  # MultiLabelBinarizer's output: 0/1 cells, one column a label
    out = labels_csr(y)
    assert ids(out) == [[0], [3], [4]] and out.shape == (3, 5) and (out.data == 1).all()
    assert labels_csr(np.zeros((2, 4), np.int64)).shape == (2, 4)  # no label used: still 4 labels
    assert label_lists(np.array([[0, 1, 1], [1, 0, 0]], bool)) == [[1, 2], [0]]


@pytest.mark.parametrize("cell", [2, 0.5, -1, np.nan])
def test_an_indicator_cell_other_than_0_or_1_names_its_row_and_column(cell):
    y = np.zeros((3, 4))
    y[2, 1] = cell
    with pytest.raises(DataError, match=r"Y, row 2, column 1: .* 0 or 1"):
        labels_csr(y)


@pytest.mark.parametrize("y", [np.arange(4) % 3, [0, 1, 2, 0], np.array([0.0, 1.0, 2.0, 0.0])])
def test_a_1d_sequence_of_class_ids_is_one_label_a_row(y):
    out = labels_csr(y)
    assert ids(out) == [[0], [1], [2], [0]] and out.shape == (4, 3)
    assert label_lists(y) == [[0], [1], [2], [0]]


@pytest.mark.parametrize("label", [0.5, 1.7, float("nan"), True, np.float32(2.5)])
def test_a_label_id_that_is_not_an_integer_is_refused_not_truncated(label):
    with pytest.raises(DataError, match=r"Y, row 1: label .* is not a label id"):
        labels_csr([[0], [label]])
