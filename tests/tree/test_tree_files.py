"""LabelTree: children and ancestors tables, .npz and taxonomy (.tsv) round trips, bad files."""

import numpy as np
import pytest

from tfxc.errors import DataError
from tfxc.tree import LabelTree


def small_tree():
    # 10 labels -> 4 leaf clusters -> 2 top nodes.
    return LabelTree.from_leaf_codes(np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 3]), 4, nr_splits=2, min_codes=2)


def test_children_and_ancestors():
    tree = small_tree()
    assert tree.sizes == [2, 4, 10] and tree.num_levels == 3 and tree.num_labels == 10
    np.testing.assert_array_equal(tree.children(1), [[0, 1], [2, 3]])
    np.testing.assert_array_equal(tree.children(2), [[0, 4, 8], [1, 5, -1], [2, 6, -1], [3, 7, 9]])
    np.testing.assert_array_equal(tree.ancestors(0), [0, 0, 1, 1, 0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(tree.ancestors(2), np.arange(10))
    assert tree.fanout() == [(2, 2), (2, 3)]


def test_npz_round_trip(tmp_path):
    tree = small_tree()
    tree.save(str(tmp_path / "t.npz"))
    back = LabelTree.load(str(tmp_path / "t.npz"))
    assert back.sizes == tree.sizes
    for a, b in zip(back.parents, tree.parents):
        np.testing.assert_array_equal(a, b)
    np.save(tmp_path / "x.npy", np.arange(3))
    with pytest.raises(DataError, match="x.npy"):
        LabelTree.load(str(tmp_path / "x.npy"))


def test_taxonomy_round_trip_keeps_the_structure(tmp_path):
    names = [f"label{i}" for i in range(10)]
    tree = small_tree()
    tree.write_tsv(str(tmp_path / "tree.tsv"), names)
    back = LabelTree.read_tsv(str(tmp_path / "tree.tsv"), names)
    assert back.sizes == tree.sizes
    # Same grouping of labels at every level (node numbering may differ).
    for t in range(tree.num_levels):
        a, b = tree.ancestors(t), back.ancestors(t)
        assert len({(x, y) for x, y in zip(a, b)}) == tree.sizes[t]


def test_taxonomy_with_ragged_depths_and_label_ids(tmp_path):
    path = tmp_path / "tax.tsv"
    path.write_text("a\tanimal\tdog\nb\tanimal\tcat\n2\tplant\n\nd\tanimal\tdog\n")
    tree = LabelTree.read_tsv(str(path), ["a", "b", "c", "d"])
    assert tree.sizes == [2, 3, 4]
    np.testing.assert_array_equal(tree.ancestors(1), [0, 1, 2, 0])  # plant is padded with a single-child node
    np.testing.assert_array_equal(tree.ancestors(0), [0, 0, 1, 0])


@pytest.mark.parametrize("text, message", [
    ("a\tx\nzz\ty\n", "tax.tsv:2: field 'label': unknown label 'zz'"),
    ("a\tx\na\ty\nb\tz\n", "tax.tsv:2: field 'label': label 'a' appears twice"),
    ("a\tx\n", "1 labels have no place"),
    ("a\t\nb\tx\n", "tax.tsv:1: field 'ancestors': expected label<TAB>ancestor"),
])
def test_bad_taxonomies_name_the_line(tmp_path, text, message):
    path = tmp_path / "tax.tsv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        LabelTree.read_tsv(str(path), ["a", "b"])


def test_inconsistent_parents_are_refused():
    with pytest.raises(DataError, match="without children"):
        LabelTree(parents=(np.array([0, 0, 2], np.int32),), top_size=3)


def test_a_tree_over_some_of_the_labels():
    # The 10-label tree standing for labels 1, 3, ..., 19 of 25; the others are outside it.
    tree = small_tree().over_labels(np.arange(1, 20, 2), 25)
    assert tree.num_labels == 25 and tree.sizes == [2, 4, 10]
    index = tree.leaf_index()
    assert index.shape == (25,) and index[0] == -1 and index[3] == 1 and index[19] == 9 and index[20] == -1
    np.testing.assert_array_equal(tree.ancestors(1), small_tree().ancestors(1))  # indexed by last-level node
    assert small_tree().over_labels(np.arange(10), 10).leaf_labels is None  # all labels: the plain form
    with pytest.raises(DataError, match="ascending ids in"):
        LabelTree(parents=small_tree().parents, top_size=2, leaf_labels=np.arange(10)[::-1].copy(), label_space=10)
    with pytest.raises(DataError, match="has 3 ids for 10 last-level nodes"):
        LabelTree(parents=small_tree().parents, top_size=2, leaf_labels=np.arange(3), label_space=10)


def test_a_tree_over_some_labels_round_trips(tmp_path):
    tree = small_tree().over_labels(np.arange(1, 20, 2), 25)
    tree.save(str(tmp_path / "t.npz"))
    back = LabelTree.load(str(tmp_path / "t.npz"))
    assert back.num_labels == 25
    np.testing.assert_array_equal(back.leaf_labels, tree.leaf_labels)
    names = [f"label{i}" for i in range(25)]
    tree.write_tsv(str(tmp_path / "t.tsv"), names)
    assert (tmp_path / "t.tsv").read_text().splitlines()[1].startswith("label3\t")
    with pytest.raises(DataError, match="15 labels have no place"):
        LabelTree.read_tsv(str(tmp_path / "t.tsv"), names)
    back = LabelTree.read_tsv(str(tmp_path / "t.tsv"), names, allow_missing=True)
    assert back.sizes == tree.sizes and back.num_labels == 25
    np.testing.assert_array_equal(back.leaf_labels, tree.leaf_labels)


# D13: "²".isdigit() is true but int("²") fails (a traceback); "٣" (Arabic-Indic 3) was silently label 3.
@pytest.mark.parametrize("field", ["\u00b2", "\u0663", "1\u00b2", "99999999999999999999"])
def test_taxonomy_label_ids_are_ascii_digits_in_range(tmp_path, field):
    path = tmp_path / "tax.tsv"
    path.write_text(f"a\tx\n{field}\ty\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        LabelTree.read_tsv(str(path), ["a", "b", "c", "d"])
    assert str(e.value).startswith(f"{path}:2: field 'label': unknown label '{field}'"), e.value


def test_a_latin1_taxonomy_names_file_and_line(tmp_path):
    path = tmp_path / "tax.tsv"
    path.write_bytes("a\tfruit\nb\tl\u00e9gume\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        LabelTree.read_tsv(str(path), ["a", "b"])
    assert str(e.value).startswith(f"{path}:2: not valid UTF-8 text: byte 0xe9 at byte 4 of the line"), e.value


def test_taxonomy_may_be_gzipped_with_crlf_and_a_byte_order_mark(tmp_path):
    import gzip

    path = tmp_path / "tax.tsv.gz"
    path.write_bytes(gzip.compress("\ufeffa\tfruit\r\n1\tl\u00e9gume\r\n".encode("utf-8")))
    tree = LabelTree.read_tsv(str(path), ["a", "b"])
    assert tree.sizes == [2, 2]
