"""PecosNpzReader: scipy sparse layouts, errors, never unpickling, the PECOS fixtures."""

from __future__ import annotations


import numpy as np
import pytest
import scipy.sparse
from reader_cases import DATA, as_lists, assert_error, check_row, needs_data, save_npz, write

from tfxc.data.readers import (PecosNpzReader)
from tfxc.errors import DataError



@needs_data
@pytest.mark.parametrize("x,y,shape_x,shape_y,nnz_x,nnz_y", [
    ("xlinear_X.npz", "xlinear_Y.npz", (2, 16), (2, 20), 16, 2),
    ("xlinear_Xt.npz", "xlinear_Yt.npz", (2, 16), (2, 20), 16, 2),
    ("xtransformer_train_feat.npz", "xtransformer_train_label.npz", (3, 10), (3, 4), 20, 8),
])
def test_pecos_fixtures(x, y, shape_x, shape_y, nnz_x, nnz_y):
    d = DATA / "pecos-fixtures"
    reader = PecosNpzReader(d / x, d / y)
    rows = list(reader)
    for row in rows:
        check_row(row)
    assert (reader.num_rows, reader.num_features) == shape_x
    assert (reader.num_rows, reader.num_labels) == shape_y
    assert sum(r.feat_idx.size for r in rows) == nnz_x
    assert sum(r.labels.size for r in rows) == nnz_y
    ref = scipy.sparse.load_npz(d / x).toarray()
    for i, row in enumerate(rows):
        dense = np.zeros(shape_x[1], np.float32)
        dense[row.feat_idx] = row.feat_val
        np.testing.assert_array_equal(dense, ref[i])


def test_pecos_csc_coo_and_label_zeros(tmp_path):
    x = scipy.sparse.csr_matrix(np.array([[0, 2.5, 0], [1, 0, 3]], np.float32))
    y = scipy.sparse.csr_matrix(([1.0, 0.0, 0.7], [3, 1, 0], [0, 2, 3]), shape=(2, 4))
    expected = [([1], [2.5], [3]), ([0, 2], [1.0, 3.0], [0])]  # the stored 0 is not a label
    assert as_lists(PecosNpzReader(save_npz(tmp_path, "x.npz", x),
                                   save_npz(tmp_path, "y.npz", y))) == expected
    assert as_lists(PecosNpzReader(save_npz(tmp_path, "xc.npz", x.tocsc()),
                                   save_npz(tmp_path, "yc.npz", y.tocoo()))) == expected


def test_pecos_row_count_mismatch(tmp_path):
    x = save_npz(tmp_path, "X.trn.npz", scipy.sparse.csr_matrix(np.ones((3, 2), np.float32)))
    y = save_npz(tmp_path, "Y.trn.npz", scipy.sparse.csr_matrix(np.ones((2, 2), np.float32)))
    with pytest.raises(DataError) as e:
        PecosNpzReader(x, y)
    assert_error(e, x, None, None, "X.trn.npz has 3 rows", f"{y} has 2")


def test_pecos_not_sparse_npz(tmp_path):
    y = save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(np.ones((1, 1))))
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.arange(3))
    npy = tmp_path / "arr.npy"
    np.save(npy, np.arange(3))
    text = write(tmp_path, "text.npz", "hello")
    for path, fragment in [(plain, "no 'format' member"), (npy, "single .npy array"),
                           (text, "not a readable .npz")]:
        with pytest.raises(DataError) as e:
            PecosNpzReader(path, y)
        assert_error(e, path, None, "X", fragment)


def test_pecos_never_unpickles(tmp_path):
    y = save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(np.ones((1, 1))))
    evil = tmp_path / "evil.npz"
    np.savez(evil, format=np.array(["csr"], dtype=object), data=np.ones(1),
             indices=np.zeros(1, np.int32), indptr=np.array([0, 1], np.int32),
             shape=np.array([1, 1]))
    with pytest.raises(DataError) as e:
        PecosNpzReader(evil, y)
    assert_error(e, evil, None, "X", "without unpickling")


def test_pecos_non_finite_and_missing(tmp_path):
    x = save_npz(tmp_path, "x.npz",
                 scipy.sparse.csr_matrix(np.array([[1, 0], [0, np.nan]], np.float32)))
    y = save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(np.ones((2, 2))))
    with pytest.raises(DataError) as e:
        PecosNpzReader(x, y)
    assert_error(e, x, None, "X", "non-finite value nan at row 1, column 1")
    big = save_npz(tmp_path, "big.npz", scipy.sparse.csr_matrix(np.array([[1e300], [1]])))
    with pytest.raises(DataError) as e:
        PecosNpzReader(big, y)
    assert_error(e, big, None, "X", "overflows float32")
    with pytest.raises(DataError) as e:
        PecosNpzReader(y, tmp_path / "nope.npz")
    assert_error(e, tmp_path / "nope.npz", None, None, "file not found")


def test_pecos_corrupt_structure(tmp_path):
    y = save_npz(tmp_path, "y.npz", scipy.sparse.csr_matrix(np.ones((1, 3))))
    bad = tmp_path / "bad.npz"
    np.savez(bad, format=np.array("csr"), data=np.ones(1), indices=np.array([7], np.int32),
             indptr=np.array([0, 1], np.int32), shape=np.array([1, 3]))
    with pytest.raises(DataError) as e:
        PecosNpzReader(bad, y)
    assert_error(e, bad, None, "X", "invalid csr matrix")


@needs_data
def test_pecos_text_beside_the_matrices_the_xtransformer_fixture():
    """PECOS's XR-Transformer fixture: train.txt line i is row i of train_feat.npz / train_label.npz."""
    d = DATA / "pecos-fixtures"
    reader = PecosNpzReader(d / "xtransformer_train_feat.npz", d / "xtransformer_train_label.npz",
                            text_path=d / "xtransformer_train.txt")
    rows = list(reader)
    assert [r.text for r in rows] == ["red apple iphone 11 pro case", "red samsung galaxy s10 case",
                                      "nike running shoes"]
    plain = list(PecosNpzReader(d / "xtransformer_train_feat.npz", d / "xtransformer_train_label.npz"))
    assert as_lists(rows) == as_lists(plain) and plain[0].text is None


def test_pecos_text_line_count_mismatch_names_both_files(tmp_path):
    x = save_npz(tmp_path, "X.trn.npz", scipy.sparse.csr_matrix(np.ones((3, 2), np.float32)))
    y = save_npz(tmp_path, "Y.trn.npz", scipy.sparse.csr_matrix(np.ones((3, 2), np.float32)))
    text = write(tmp_path, "X.trn.txt", "one\ntwo\n")
    with pytest.raises(DataError) as e:
        PecosNpzReader(x, y, text_path=text)
    assert_error(e, text, None, None, "has 2 texts (lines)", f"{x} has 3 feature rows")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"one\ntw\xffo\nthree\n")
    with pytest.raises(DataError) as e:
        PecosNpzReader(x, y, text_path=bad)
    assert_error(e, bad, 2, None, "UTF-8")


@needs_data
def test_the_xmc_base_layout_converts_with_its_text(tmp_path):
    """A PECOS xmc-base directory (X.{trn,tst}.txt, Y.*.npz, tfidf-attnxml/X.*.npz) as `data.source_dir`."""
    import shutil

    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.tfrecord import read_all

    d, base = DATA / "pecos-fixtures", tmp_path / "xmc-base" / "toy"
    (base / "tfidf-attnxml").mkdir(parents=True)
    for tag in ("trn", "tst"):
        shutil.copy(d / "xtransformer_train.txt", base / f"X.{tag}.txt")
        shutil.copy(d / "xtransformer_train_feat.npz", base / "tfidf-attnxml" / f"X.{tag}.npz")
        shutil.copy(d / "xtransformer_train_label.npz", base / f"Y.{tag}.npz")
    config = tmp_path / "c.json"
    config.write_text('{"data": {"format": "pecos", "source_dir": "%s", "dir": "%s", "num_shards": 1}}'
                      % (base, tmp_path / "data"))
    info = ensure_converted(load_config(str(config)).data)
    rows = read_all(info.files("train"))
    assert [r["text"].decode() for r in rows] == (d / "xtransformer_train.txt").read_text().splitlines()
    assert (info.num_features, info.num_labels) == (10, 4)
    (base / "Y.tst.npz").unlink()
    with pytest.raises(DataError, match="missing from the PECOS xmc-base layout"):
        ensure_converted(load_config(str(config)).data, force=True)
