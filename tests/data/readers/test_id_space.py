"""The size rule every reader uses for its feature and label spaces: explicit -> declared -> seen (`IdSpace`)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
from reader_cases import save_npy, save_npz, write

from tfxc.data.readers import DenseReader, PecosNpzReader, XcBowReader
from tfxc.data.readers.base import IdSpace
from tfxc.errors import ConfigError, DataError


@pytest.mark.parametrize("explicit,declared,size,bound", [
    (7, 5, 7, 7),        # the caller's argument wins over what the source states
    (None, 5, 5, 5),     # then the source's header or matrix width
    (None, None, 4, None),  # then 1 + the largest id seen
    (0, None, 0, 0),     # an explicit 0 is a size, not "absent"
])
def test_explicit_then_declared_then_seen(explicit, declared, size, bound):
    space = IdSpace("label", explicit, declared)
    space.see(np.array([3, 1], np.int64))
    assert (space.size, space.bound) == (size, bound)


def test_seen_grows_with_every_chunk_and_a_pass_without_ids_is_size_zero():
    space = IdSpace("feature")
    assert space.size is None  # nothing known before any id
    space.see(np.zeros(0, np.int64))
    assert space.size is None
    space.see(np.array([2]))
    space.see(np.array([0, 1]))
    assert space.size == 3
    space.pass_done()
    assert space.size == 3
    empty = IdSpace("feature")
    empty.pass_done()
    assert empty.size == 0


def test_ids_beyond_the_bound_are_found_and_named_as_written():
    space = IdSpace("label", 4)
    assert space.first_beyond(np.array([0, 3, 5, 9])) == 2
    assert space.first_beyond(np.array([0, 3])) is None
    assert IdSpace("label").first_beyond(np.array([10 ** 9])) is None  # no bound: every id is in range
    assert space.out_of_range(6, base=1) == "label id 6 is out of range [1, 5)"
    assert space.out_of_range(5, where=" at row 2") == "label id 5 at row 2 is out of range [0, 4)"


@pytest.mark.parametrize("bad", [-1, 2.0, True, "3"])
def test_an_explicit_size_must_be_a_non_negative_int(bad):
    with pytest.raises(ConfigError, match=f"num_features must be a non-negative int or None, got {bad!r}"):
        IdSpace("feature", bad)


def test_every_reader_applies_the_rule(tmp_path):
    no_header = write(tmp_path, "a.txt", "0,4 1:1\n2 3:1\n")
    with_header = write(tmp_path, "h.txt", "2 10 8\n0,4 1:1\n2 3:1\n")
    sizes = lambda r: (r.num_features, r.num_labels, r.declared_num_labels)  # noqa: E731

    seen = XcBowReader(no_header)
    assert sizes(seen) == (None, None, None)
    list(seen)
    assert sizes(seen) == (4, 5, None)
    assert sizes(XcBowReader(with_header)) == (10, 8, 8)
    assert sizes(XcBowReader(with_header, num_features=20, num_labels=9)) == (20, 9, 9)

    x = save_npy(tmp_path, "x.npy", np.ones((2, 3)))
    text = DenseReader(x, write(tmp_path, "y.txt", "0,4\n2\n"))
    list(text)
    assert sizes(text) == (3, 5, None)
    matrix = DenseReader(x, save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(np.eye(2, 6))))
    assert sizes(matrix) == (3, 6, 6)
    assert sizes(DenseReader(x, save_npz(tmp_path, "y2.npz", scipy.sparse.csr_matrix(np.eye(2, 6))),
                             num_labels=4)) == (3, 4, 4)

    xs = save_npz(tmp_path, "x.npz", scipy.sparse.csr_matrix(np.ones((2, 3))))
    assert sizes(PecosNpzReader(xs, save_npz(tmp_path, "y3.npz", scipy.sparse.csr_matrix((2, 7))))) == (3, 7, 7)
    assert sizes(PecosNpzReader(xs, None)) == (3, 0, None)  # no label file: no labels, none declared


def test_the_readers_name_an_id_beyond_the_bound_as_before(tmp_path):
    path = write(tmp_path, "d.txt", "1,8 1:1\n")
    with pytest.raises(DataError, match=r"label id 8 is out of range \[1, 4\)"):
        list(XcBowReader(path, label_index_base=1, num_labels=3))
    x = save_npy(tmp_path, "x.npy", np.ones((2, 3)))
    with pytest.raises(DataError, match=r"label id 5 at row 1 is out of range \[0, 4\)"):
        DenseReader(x, save_npy(tmp_path, "y.npy", np.array([0, 5])), num_labels=4)
    with pytest.raises(DataError, match=r"label id 5 is out of range \[0, 4\)"):
        DenseReader(x, save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(np.eye(2, 6)[:, ::-1])), num_labels=4)
