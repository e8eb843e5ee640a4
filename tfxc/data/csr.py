"""Rows <-> SciPy CSR matrices, the in-memory format of PECOS, napkinXC, omikuji and scikit-learn."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse

from tfxc.data.readers.base import IdSpace
from tfxc.data.rows import Row
from tfxc.errors import DataError
from tfxc.utils.numbers import ascii_int


def rows_to_csr(rows: Iterable[Row], num_features: int, num_labels: int) -> tuple[scipy.sparse.csr_matrix,
                                                                                   scipy.sparse.csr_matrix]:
    """(X float32 [n, num_features], Y float32 [n, num_labels] of ones) from `Row`s."""
    rows = list(rows)

    def matrix(attr: str, values, width: int) -> scipy.sparse.csr_matrix:
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([getattr(r, attr).size for r in rows], out=indptr[1:])
        indices = np.concatenate([getattr(r, attr) for r in rows]) if rows else np.zeros(0, np.int64)
        return scipy.sparse.csr_matrix((values(indices), indices.astype(np.int32), indptr), shape=(len(rows), width))

    x = matrix("feat_idx", lambda idx: np.concatenate([r.feat_val for r in rows]).astype(np.float32)
               if rows else np.zeros(0, np.float32), num_features)
    y = matrix("labels", lambda idx: np.ones(idx.size, np.float32), num_labels)
    return x, y


def as_csr(x, name: str = "X") -> scipy.sparse.csr_matrix:
    """A SciPy sparse matrix or a dense 2-D array as canonical float32 CSR (sorted, summed duplicates, no zeros).

    Raises:
      DataError: a value is NaN or infinite once in float32 (a float64 beyond ±3.4e38 included), naming
        the first such row and column: the models would rank garbage from it without an error.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow to inf is what the check below reports
        if scipy.sparse.issparse(x):
            matrix = scipy.sparse.csr_matrix(x, dtype=np.float32)
        else:
            array = np.asarray(x)
            if array.ndim != 2 or array.dtype.kind not in "biuf":
                raise ValueError(f"{name} must be a SciPy sparse matrix or a 2-D numeric array, got "
                                 f"{type(x).__name__} of shape {getattr(array, 'shape', None)}")
            matrix = scipy.sparse.csr_matrix(array.astype(np.float32))
        matrix.sum_duplicates()
    matrix.eliminate_zeros()
    _require_finite(matrix, name)
    return matrix


def _require_finite(matrix: scipy.sparse.csr_matrix, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(matrix.data))
    if bad.size:
        at = int(bad[0])
        row = int(np.searchsorted(matrix.indptr, at, side="right")) - 1
        original = "NaN" if np.isnan(matrix.data[at]) else "infinite (or beyond float32's ±3.4e38)"
        raise DataError(f"{name}: row {row}, column {int(matrix.indices[at])}: the value is {original}; "
                        f"{bad.size} value(s) in all are not finite numbers")


def labels_csr(y, what: str = "Y", *, num_labels: int | None = None,
               names: Sequence[str] | None = None) -> scipy.sparse.csr_matrix:
    """Labels as a float32 CSR matrix [n, L], sized by the readers' rule (`IdSpace`).

    L is `num_labels` when given (every id must then be below it), else the
    width of a given matrix, else 1 + the largest id in the lists (0 without any).

    Args:
      y: a SciPy sparse matrix, whose nonzero columns are each row's labels
        (the values, e.g. relevance scores, are kept); or a dense 2-D NumPy
        array [n, L], an indicator matrix of 0/1 cells (scikit-learn's
        `MultiLabelBinarizer`), whose 1 columns are the labels; or a 1-D array
        [n] of class ids (scikit-learn's `y`), one label a row; or n label
        lists, each label an id (an integer, or a string of ASCII digits) or,
        with `names`, a label name; a row that is one label instead of a list
        (a 1-D list of ids) is that label alone. Repeated labels in a list
        count once.
      what: how messages name `y`, e.g. "Y (train)".
      num_labels: the explicit label count, e.g. a trained model's.
      names: the label names in id order; strings in the lists are looked up
        there (and only there).

    Returns:
      A new matrix (never a view of `y`'s arrays): sorted indices, no duplicate
      entries, no explicit zeros; the lists' labels have value 1.

    Raises:
      DataError: a label that is no id (an unknown name, a non-integral
        number such as 0.5 or NaN, a bool), a negative id, an id at or beyond
        `num_labels`, or an indicator cell other than 0 or 1, naming the row
        (and the column).
      ConfigError: `num_labels` is not a non-negative int.
    """
    y = _indicator_csr(y, what) if isinstance(y, np.ndarray) and y.ndim == 2 else y
    if scipy.sparse.issparse(y):
        matrix = scipy.sparse.csr_matrix(y, dtype=np.float32, copy=True)
        matrix.sum_duplicates()
        matrix.eliminate_zeros()
        space = IdSpace("label", num_labels, declared=matrix.shape[1])
    else:
        index = None if names is None else {name: i for i, name in enumerate(names)}
        rows = [sorted({_label_id(label, what, row, index) for label in _row_labels(labels)})
                for row, labels in enumerate(y)]
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        indices = np.array([i for r in rows for i in r], np.int64)
        if indices.size and indices.min() < 0:
            raise DataError(f"{what}: label ids must be >= 0")
        matrix = scipy.sparse.csr_matrix((np.ones(indices.size, np.float32), indices, indptr),
                                         shape=(len(rows), int(indices.max(initial=-1)) + 1))
        space = IdSpace("label", num_labels)
    space.see(matrix.indices)
    space.pass_done()
    k = space.first_beyond(matrix.indices)
    if k is not None:
        row = int(np.searchsorted(matrix.indptr, k, side="right")) - 1
        raise DataError(f"{what}, row {row}: {space.out_of_range(int(matrix.indices[k]))}")
    if matrix.shape[1] != space.size:
        matrix.resize((matrix.shape[0], space.size))
    return matrix


def _indicator_csr(y: np.ndarray, what: str) -> scipy.sparse.csr_matrix:
    """A dense indicator matrix [n, L] as CSR of its 1 cells, L wide even where a column is never 1.

    Its cells are memberships, never ids: a cell other than 0 or 1 (a score, a -1 of a {-1, 1} coding, NaN) is
    refused, naming it, rather than read as a label of some weight."""
    if y.dtype.kind not in "biuf":
        raise DataError(f"{what}: a 2-D array of labels must be a numeric indicator matrix (0/1 cells), "
                        f"got dtype {y.dtype}")
    bad = np.argwhere(~((y == 0) | (y == 1)))
    if bad.size:
        row, column = (int(v) for v in bad[0])
        raise DataError(f"{what}, row {row}, column {column}: the cell is {y[row, column]!r}; a dense 2-D Y is an "
                        f"indicator matrix whose cells are 0 or 1 (give label ids as a list of lists)")
    return scipy.sparse.csr_matrix(y.astype(np.float32))


def _row_labels(labels) -> list:
    """A row's labels: the list given, or a single label (an id or a name, as a 1-D `y` of class ids has) as
    a list of one; a string is one label, never a sequence of characters."""
    if isinstance(labels, (str, bytes)) or np.ndim(labels) == 0:
        return [labels]
    return labels


def _label_id(label, what: str, row: int, index: dict | None) -> int:
    """One label of a list: its id by name (with `index`), or an integer (a float only when integral: 0.5 is
    no id to truncate), or a string of ASCII digits (not '٣', which `int()` would read as 3)."""
    if index is not None and isinstance(label, str):
        if label not in index:
            raise DataError(f"{what}, row {row}: unknown label name {label!r}")
        return index[label]
    value = ascii_int(label) if isinstance(label, str) else label
    if isinstance(value, (bool, np.bool_)):  # True is 1 to int(), but no caller means label 1 by it
        value = None
    elif isinstance(value, (float, np.floating)):
        value = int(value) if np.isfinite(value) and float(value).is_integer() else None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{what}, row {row}: label {label!r} is not a label id (an integer >= 0)") from None


def label_lists(y, what: str = "Y") -> list[list]:
    """Each row's labels as a list: the label ids of a SciPy sparse matrix or a dense indicator matrix (as
    `labels_csr` reads them), or the lists as given (a row that is one label, a list of it)."""
    if scipy.sparse.issparse(y) or isinstance(y, np.ndarray) and y.ndim == 2:
        y = labels_csr(y, what)
        return [y.indices[y.indptr[i]:y.indptr[i + 1]].tolist() for i in range(y.shape[0])]
    return [list(_row_labels(labels)) for labels in y]
