"""Tests of tfxc.data.readers: every format, every error message, and the real data sets."""

from __future__ import annotations

import gzip
import json
import os
import pathlib

import numpy as np
import pytest
import scipy.sparse

from tfxc.data import readers
from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers import (DenseReader, JsonlReader, PecosNpzReader, XcBowReader, iter_jsonl,
                               open_reader, open_text)
from tfxc.data.rows import Row
from tfxc.data.text_features import TfidfFeaturizer
from tfxc.errors import ConfigError, DataError

# The shared data sets live next to the repository (../shared/data); override with
# TFXC_DATA_DIR. Tests that need them are skipped where they are absent.
DATA = pathlib.Path(os.environ.get(
    "TFXC_DATA_DIR", pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "README.md").exists(),
                                reason=f"shared data sets not found at {DATA}")


def write(tmp_path: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


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


# =====================================================================================
# open_text
# =====================================================================================


def test_open_text_plain_and_gzip(tmp_path):
    plain = write(tmp_path, "a.txt", "x\ny\n")
    zipped = write(tmp_path, "a.txt.gz", "x\ny\n")
    renamed = tmp_path / "nosuffix"
    renamed.write_bytes(zipped.read_bytes())  # gzip is detected by content
    for path in (plain, zipped, renamed):
        with open_text(path) as f:
            assert f.read() == "x\ny\n"


def test_open_text_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError) as e:
        open_text(path)
    assert_error(e, path, None, None, "file not found")


def test_open_text_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        open_text(tmp_path)


# =====================================================================================
# XcBowReader
# =====================================================================================

XC_TEXT = ("4 10 5\n"
           "0,2 1:0.5 3:1\n"
           " 7:2 2:1.5  \n"          # no labels, unsorted features, trailing spaces
           "4,1\n"                  # no features, unsorted labels
           "3 0:1e-3 9:-2 5:0\n")   # explicit zero dropped


def test_xc_with_header(tmp_path):
    path = write(tmp_path, "d.txt", XC_TEXT)
    reader = XcBowReader(path)
    assert (reader.num_rows, reader.num_features, reader.num_labels) == (4, 10, 5)
    rows = list(reader)
    for row in rows:
        check_row(row)
        assert row.text is None
    assert as_lists(rows) == [
        ([1, 3], [0.5, 1.0], [0, 2]),
        ([2, 7], [1.5, 2.0], []),
        ([], [], [1, 4]),
        ([0, 9], [np.float32(1e-3), -2.0], [3]),
    ]
    assert reader.num_rows == 4
    assert as_lists(reader) == as_lists(rows)  # re-iterable


def test_xc_without_header_and_gzip(tmp_path):
    body = XC_TEXT.split("\n", 1)[1]
    plain = write(tmp_path, "d.txt", body)
    zipped = write(tmp_path, "d.txt.gz", body)
    reader = XcBowReader(plain)
    assert reader.header is None and reader.num_rows is None
    rows = list(reader)
    assert (reader.num_rows, reader.num_features, reader.num_labels) == (4, 10, 5)
    assert as_lists(XcBowReader(zipped)) == as_lists(rows)
    assert as_lists(rows) == as_lists(XcBowReader(write(tmp_path, "h.txt", XC_TEXT)))


def test_xc_explicit_bounds_override(tmp_path):
    path = write(tmp_path, "d.txt", "0 1:1\n")
    reader = XcBowReader(path, num_features=50, num_labels=7)
    list(reader)
    assert (reader.num_features, reader.num_labels) == (50, 7)
    header = XcBowReader(write(tmp_path, "h.txt", "1 2 1\n0 1:1\n"), num_features=50)
    list(header)
    assert (header.num_features, header.num_labels) == (50, 1)


def test_xc_index_base(tmp_path):
    path = write(tmp_path, "d.txt", "1,2 1:0.5 3:1\n0 2:1\n")
    rows = list(XcBowReader(path, index_base=1))
    assert as_lists(rows) == [([0, 2], [0.5, 1.0], [1, 2]), ([1], [1.0], [0])]
    one_based = write(tmp_path, "l.txt", "1,2 1:0.5\n2 2:1\n")
    both = XcBowReader(one_based, index_base=1, label_index_base=1)
    assert [r.labels.tolist() for r in both] == [[0, 1], [1]] and both.num_labels == 2
    with pytest.raises(ConfigError):
        XcBowReader(path, index_base=2)


def test_xc_crlf_tabs_and_bom(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"\xef\xbb\xbf2 4 3\r\n0,2\t1:1 3:2\r\n\t0:1\r\n")
    rows = list(XcBowReader(path))
    assert as_lists(rows) == [([1, 3], [1.0, 2.0], [0, 2]), ([0], [1.0], [])]


def test_xc_empty_row_line(tmp_path):
    rows = list(XcBowReader(write(tmp_path, "d.txt", "2 3 3\n\n1 0:1\n")))
    assert as_lists(rows) == [([], [], []), ([0], [1.0], [1])]


def test_xc_line_numbers_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(XcBowReader, "_CHUNK_LINES", 3)
    lines = ["0 1:1"] * 10
    lines[7] = "0 1:x"
    path = write(tmp_path, "d.txt", "10 5 5\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path))
    assert_error(e, path, 9, "features", "malformed value 'x'")
    lines[7] = "0 1:1"
    good = write(tmp_path, "g.txt", "10 5 5\n" + "\n".join(lines) + "\n")
    assert len(list(XcBowReader(good))) == 10


def test_xc_first_error_wins_within_chunk(tmp_path):
    # Line 2 has an out-of-range id (found after parsing), line 3 a syntax error.
    path = write(tmp_path, "d.txt", "2 5 5\n0 9:1\n0 1:abc\n")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path))
    assert_error(e, path, 2, "features", "feature id 9 is out of range [0, 5)")
    path = write(tmp_path, "d2.txt", "2 5 5\n7 1:1\n0 9:1\n")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path))
    assert_error(e, path, 2, "labels", "label id 7 is out of range [0, 5)")


XC_LINE_ERRORS = [
    # (body line, field, message fragment)
    ("5-1 1:1", "labels", "malformed label id '5-1'"),
    ("1,,2 1:1", "labels", "empty label id"),
    ("-1 1:1", "labels", "negative label id -1"),
    ("1:1 2:1", "labels", "must start with a space"),
    ("0 3:abc", "features", "malformed value 'abc'"),
    ("0 5", "features", "malformed feature token '5' (expected id:value)"),
    ("0 1:2:3", "features", "malformed feature token '1:2:3'"),
    ("0 x:1", "features", "malformed feature id 'x'"),
    ("0 -3:1", "features", "negative feature id -3"),
    ("0 3:nan", "features", "non-finite value 'nan'"),
    ("0 3:inf", "features", "non-finite value 'inf'"),
    ("0 3:1e39", "features", "not finite in float32"),
    ("0 12:1", "features", "feature id 12 is out of range [0, 10)"),
    ("9 1:1", "labels", "label id 9 is out of range [0, 5)"),
    ("0 3:1 5:1 3:2", "features", "duplicate feature id 3"),
    ("2,1,2 1:1", "labels", "duplicate label id 2"),
]


@pytest.mark.parametrize("bad,field,fragment", XC_LINE_ERRORS)
def test_xc_line_errors(tmp_path, bad, field, fragment):
    path = write(tmp_path, "bad.txt", f"3 10 5\n0 1:1\n{bad}\n1 2:1\n")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path))
    assert_error(e, path, 3, field, fragment)


def test_xc_explicit_bounds_are_validated(tmp_path):
    path = write(tmp_path, "d.txt", "0 1:1\n3 4:1\n")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path, num_features=4))
    assert_error(e, path, 2, "features", "feature id 4 is out of range [0, 4)")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path, num_labels=3))
    assert_error(e, path, 2, "labels", "label id 3 is out of range [0, 3)")
    with pytest.raises(DataError) as e:
        list(XcBowReader(write(tmp_path, "z.txt", "0 0:1\n"), index_base=1))
    assert_error(e, tmp_path / "z.txt", 1, "features", "feature id 0 is below index_base 1")
    with pytest.raises(DataError) as e:
        list(XcBowReader(write(tmp_path, "l.txt", "0 1:1\n"), label_index_base=1))
    assert_error(e, tmp_path / "l.txt", 1, "labels", "label id 0 is below label_index_base 1")


def test_xc_index_base_one_range_message(tmp_path):
    path = write(tmp_path, "d.txt", "0 1:1\n3 5:1\n")
    with pytest.raises(DataError) as e:
        list(XcBowReader(path, index_base=1, num_features=4))
    assert_error(e, path, 2, "features", "feature id 5 is out of range [1, 5)")


@pytest.mark.parametrize("declared,actual", [(3, 2), (2, 3), (1, 5)])
def test_xc_header_row_count_mismatch(tmp_path, monkeypatch, declared, actual):
    monkeypatch.setattr(XcBowReader, "_CHUNK_LINES", 2)
    path = write(tmp_path, "d.txt", f"{declared} 4 4\n" + "0 1:1\n" * actual)
    with pytest.raises(DataError) as e:
        list(XcBowReader(path))
    assert_error(e, path, 1, "header", f"header says {declared} rows but the file has {actual}")


@pytest.mark.parametrize("header,fragment", [
    ("10 5", "expected 3 fields"),
    ("10 5 3 1", "expected 3 fields"),
    ("10 5 x", "non-negative integers"),
    ("10 -5 3", "non-negative integers"),
])
def test_xc_bad_header(tmp_path, header, fragment):
    path = write(tmp_path, "d.txt", header + "\n0 1:1\n")
    with pytest.raises(DataError) as e:
        XcBowReader(path)
    assert_error(e, path, 1, "header", fragment)


def test_xc_empty_and_missing_file(tmp_path):
    empty = write(tmp_path, "empty.txt", "")
    with pytest.raises(DataError) as e:
        XcBowReader(empty)
    assert_error(e, empty, None, None, "file is empty")
    with pytest.raises(DataError) as e:
        XcBowReader(tmp_path / "missing.txt")
    assert_error(e, tmp_path / "missing.txt", None, None, "file not found")


def test_xc_header_only_zero_rows(tmp_path):
    reader = XcBowReader(write(tmp_path, "d.txt", "0 7 3\n"))
    assert list(reader) == [] and (reader.num_rows, reader.num_features) == (0, 7)


def test_xc_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(gzip.compress(b"1 2 2\n0 1:1\n" * 50)[:40])
    with pytest.raises(DataError) as e:
        list(XcBowReader(path))
    assert str(path) in str(e.value)


@needs_data
def test_xc_bibtex_matches_readme():
    train = XcBowReader(DATA / "bibtex" / "train.txt")
    rows = list(train)
    assert (train.num_rows, train.num_features, train.num_labels) == (4880, 1836, 159)
    label_counts = np.array([r.labels.size for r in rows])
    nnz = np.array([r.feat_idx.size for r in rows])
    # README: avg labels/point 2.380, max 28, 159 labels present, avg nonzeros 68.49.
    assert f"{label_counts.mean():.3f}" == "2.380" and label_counts.max() == 28
    assert f"{nnz.mean():.2f}" == "68.49" and (nnz > 0).all()
    assert len(np.unique(np.concatenate([r.labels for r in rows]))) == 159
    assert all((r.feat_val == 1).all() for r in rows)  # value range [1, 1]
    freq = np.bincount(np.concatenate([r.labels for r in rows]), minlength=159)
    assert freq.max() == 691 and freq.min() == 28  # TAG_statphys23 (691), min 28
    test = XcBowReader(DATA / "bibtex" / "test.txt")
    test_labels = [r.labels.size for r in test]
    assert test.num_rows == 2515 and f"{np.mean(test_labels):.3f}" == "2.444"


@needs_data
def test_xc_delicious_empty_label_rows():
    # README: "10 train and 4 test points" have an empty label field.
    empty = {}
    for split in ("train", "test"):
        reader = XcBowReader(DATA / "delicious" / f"{split}.txt")
        empty[split] = [i for i, r in enumerate(reader) if r.labels.size == 0]
        assert reader.num_labels == 983 and reader.num_features == 500
    assert len(empty["train"]) == 10 and len(empty["test"]) == 4
    # `grep -n '^ ' train.txt` gives file lines 997, 4959, ...; minus the header
    # line and made 0-based, those are rows 995, 4957, ...
    assert empty["train"] == [995, 4957, 5188, 5718, 7489, 8281, 9105, 9170, 9408, 12813]


@needs_data
@pytest.mark.parametrize("original,converted", [("original.txt", "train.txt"),
                                                ("original_test.txt", "test.txt")])
def test_xc_yeast_original_equals_converted(original, converted):
    # napkinXC's files have 1-based features, 0-based labels, no header, trailing
    # spaces; the converted files are 0-based with a header and explicit zeros
    # dropped (one in the test split), which this reader does too.
    raw = XcBowReader(DATA / "yeast" / original, index_base=1)
    ref = XcBowReader(DATA / "yeast" / converted)
    raw_rows, ref_rows = list(raw), list(ref)
    assert len(raw_rows) == len(ref_rows) == ref.num_rows
    for a, b in zip(raw_rows, ref_rows):
        np.testing.assert_array_equal(a.feat_idx, b.feat_idx)
        np.testing.assert_array_equal(a.feat_val, b.feat_val)
        np.testing.assert_array_equal(a.labels, b.labels)
    assert (raw.num_features, raw.num_labels) == (103, 14)
    assert sum(r.labels.size for r in raw_rows) == (6342 if original == "original.txt" else 3899)


@needs_data
def test_xc_wordnet_nextword_test_gzip():
    reader = XcBowReader(DATA / "wordnet-nextword" / "test.txt.gz")
    no_features = labels_total = 0
    for row in reader:
        no_features += row.feat_idx.size == 0
        labels_total += row.labels.size
    assert (reader.num_rows, reader.num_features, reader.num_labels) == (100_000, 30_000, 30_000)
    assert no_features == 59 and labels_total == 100_000  # README: 59 test points w/o features


# =====================================================================================
# PecosNpzReader
# =====================================================================================


def save_npz(tmp_path, name, matrix):
    path = tmp_path / name
    scipy.sparse.save_npz(path, matrix)
    return path


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


# =====================================================================================
# JsonlReader and LabelVocab
# =====================================================================================


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_jsonl_basic(tmp_path):
    path = write(tmp_path, "d.jsonl.gz", jsonl([
        {"id": "a", "text": "red apple", "labels": ["fruit", "red"]},
        {"id": "b", "text": "green apple", "labels": ["fruit"]},
        {"id": "c", "text": "nothing", "labels": []},
    ]))
    vocab = LabelVocab.build(r.labels for r in iter_jsonl(path))
    assert vocab.names == ("fruit", "red")
    featurizer = TfidfFeaturizer().fit(r.text for r in iter_jsonl(path))
    reader = JsonlReader(path, label_vocab=vocab, featurizer=featurizer)
    rows = list(reader)
    for row in rows:
        check_row(row)
    assert [r.text for r in rows] == ["red apple", "green apple", "nothing"]
    assert [r.labels.tolist() for r in rows] == [[0, 1], [0], []]
    assert rows[0].feat_idx.size == 2 and reader.num_features == featurizer.num_features
    assert (reader.num_rows, reader.num_labels) == (3, 2)
    plain = list(JsonlReader(path, label_vocab=vocab))
    assert plain[0].feat_idx.size == 0 and plain[0].feat_val.dtype == np.float32


def test_jsonl_open_vocab_grows_in_order(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl([{"text": "x", "labels": ["b", "a"]},
                                             {"text": "y", "labels": ["c", "a"]}]))
    vocab = LabelVocab()
    rows = list(JsonlReader(path, label_vocab=vocab))
    assert vocab.names == ("b", "a", "c") and not vocab.frozen
    assert [r.labels.tolist() for r in rows] == [[0, 1], [1, 2]]


def test_jsonl_unknown_labels(tmp_path):
    path = write(tmp_path, "d.jsonl", jsonl([{"text": "x", "labels": ["a"]},
                                             {"text": "y", "labels": ["zzz", "a"]}]))
    vocab = LabelVocab(["a"], frozen=True)
    with pytest.raises(DataError) as e:
        list(JsonlReader(path, label_vocab=vocab))
    assert_error(e, path, 2, "labels", "unknown label 'zzz'")
    rows = list(JsonlReader(path, label_vocab=vocab, unknown_labels="drop"))
    assert [r.labels.tolist() for r in rows] == [[0], [0]]
    with pytest.raises(ConfigError):
        JsonlReader(path, label_vocab=vocab, unknown_labels="ignore")


@pytest.mark.parametrize("line,field,fragment", [
    ('{"text": "x", "labels": ["a"]', None, "invalid JSON"),
    ("", None, "blank line"),
    ('["x", ["a"]]', None, "expected a JSON object, got list"),
    ('{"labels": ["a"]}', "text", "missing"),
    ('{"text": 3, "labels": ["a"]}', "text", "must be a string, got int"),
    ('{"text": "x"}', "labels", "missing"),
    ('{"text": "x", "labels": "a"}', "labels", "must be a list"),
    ('{"text": "x", "labels": ["a", 1]}', "labels", "label names must be strings"),
    ('{"text": "x", "labels": ["a", "a"]}', "labels", "duplicate label 'a'"),
])
def test_jsonl_line_errors(tmp_path, line, field, fragment):
    path = write(tmp_path, "bad.jsonl", '{"text": "ok", "labels": ["a"]}\n' + line + "\n")
    with pytest.raises(DataError) as e:
        list(JsonlReader(path, label_vocab=LabelVocab(["a"], frozen=True)))
    assert_error(e, path, 2, field, fragment)


def test_jsonl_empty_and_missing(tmp_path):
    empty = write(tmp_path, "empty.jsonl", "")
    vocab = LabelVocab(["a"], frozen=True)
    with pytest.raises(DataError) as e:
        JsonlReader(empty, label_vocab=vocab)
    assert_error(e, empty, None, None, "file is empty")
    with pytest.raises(DataError) as e:
        list(iter_jsonl(empty))
    assert_error(e, empty, None, None, "file is empty")
    with pytest.raises(DataError) as e:
        JsonlReader(tmp_path / "missing.jsonl", label_vocab=vocab)
    assert_error(e, tmp_path / "missing.jsonl", None, None, "file not found")


def test_label_vocab_roundtrip_and_errors(tmp_path):
    vocab = LabelVocab.build([["b", "c"], ["c"], ["a", "b"], ["d"]])
    assert vocab.names == ("b", "c", "a", "d")  # freq 2,2,1,1; ties by name
    assert vocab.frozen and vocab.id("a") == 2 and vocab.name(3) == "d" and "d" in vocab
    with pytest.raises(ValueError, match="frozen"):
        vocab.add("e")
    path = tmp_path / "labels.txt"
    vocab.save(path)
    assert path.read_text() == "b\nc\na\nd\n"
    assert os.listdir(tmp_path) == ["labels.txt"]  # no temporary file left behind
    assert LabelVocab.load(path) == vocab
    with pytest.raises(ValueError):
        LabelVocab(["ok", "bad\nname"])
    with pytest.raises(TypeError):
        LabelVocab.build(["abc"])
    dup = write(tmp_path, "dup.txt", "a\nb\na\n")
    with pytest.raises(DataError) as e:
        LabelVocab.load(dup)
    assert_error(e, dup, 3, "labels", "duplicate label name 'a' (first on line 1)")
    blank = write(tmp_path, "blank.txt", "a\n\nb\n")
    with pytest.raises(DataError) as e:
        LabelVocab.load(blank)
    assert_error(e, blank, 2, "labels", "empty label name")
    with pytest.raises(DataError, match="file is empty"):
        LabelVocab.load(write(tmp_path, "e.txt", ""))


@needs_data
@pytest.mark.parametrize("name", ["clinc150", "banking77"])
def test_label_vocab_build_matches_shared_labels_txt(name):
    built = LabelVocab.build(r.labels for r in iter_jsonl(DATA / name / "train.jsonl"))
    assert built == LabelVocab.load(DATA / name / "labels.txt")


@needs_data
def test_jsonl_clinc150_train_then_frozen_test():
    d = DATA / "clinc150"
    vocab = LabelVocab.build(r.labels for r in iter_jsonl(d / "train.jsonl"))
    featurizer = TfidfFeaturizer(min_df=2).fit(r.text for r in iter_jsonl(d / "train.jsonl"))
    train = JsonlReader(d / "train.jsonl", label_vocab=vocab, featurizer=featurizer)
    counts = np.bincount([int(r.labels[0]) for r in train], minlength=150)
    assert train.num_rows == 15_000 and (counts == 100).all()
    test = JsonlReader(d / "test.jsonl", label_vocab=vocab, featurizer=featurizer)
    rows = list(test)
    assert (test.num_rows, test.num_labels) == (4500, 150)
    assert all(r.labels.size == 1 for r in rows) and len(vocab) == 150
    assert np.bincount([int(r.labels[0]) for r in rows]).tolist() == [30] * 150
    assert sum(r.feat_idx.size > 0 for r in rows) > 4400 and rows[0].text
    # The out-of-scope examples carry a label the vocabulary does not know.
    with pytest.raises(DataError) as e:
        list(JsonlReader(d / "oos" / "test.jsonl", label_vocab=vocab))
    assert_error(e, d / "oos" / "test.jsonl", 1, "labels", "unknown label 'oos'")
    dropped = list(JsonlReader(d / "oos" / "test.jsonl", label_vocab=vocab,
                               unknown_labels="drop"))
    assert len(dropped) == 1000 and all(r.labels.size == 0 for r in dropped)


# =====================================================================================
# DenseReader
# =====================================================================================

X_DENSE = np.array([[0, 1.5, 0], [2, 0, -1], [0, 0, 0]], np.float32)


def save_npy(tmp_path, name, array):
    path = tmp_path / name
    np.save(path, array)
    return path


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


# =====================================================================================
# open_reader
# =====================================================================================


def test_open_reader_dispatch(tmp_path):
    xc = write(tmp_path, "d.txt", "0,1 2:1\n")
    assert isinstance(open_reader("xc", xc, index_base=1), XcBowReader)
    x = save_npz(tmp_path, "x.npz", scipy.sparse.csr_matrix(np.ones((1, 2))))
    assert isinstance(open_reader("pecos", x, x), PecosNpzReader)
    js = write(tmp_path, "d.jsonl", jsonl([{"text": "t", "labels": []}]))
    assert isinstance(open_reader("jsonl", js, label_vocab=LabelVocab()), JsonlReader)
    xd = save_npy(tmp_path, "x.npy", np.ones((1, 2)))
    assert isinstance(open_reader("dense", xd, write(tmp_path, "y.txt", "0\n")), DenseReader)


@pytest.mark.parametrize("call,fragment", [
    (lambda p: open_reader("pecso", p), "unknown data format 'pecso'; did you mean 'pecos'?"),
    (lambda p: open_reader("libsvm", p), "known: dense, jsonl, pecos, xc"),
    (lambda p: open_reader("pecos", p), "needs labels_path"),
    (lambda p: open_reader("xc", p, p), "labels_path must be None"),
    (lambda p: open_reader("xc", p, index_bse=1), "did you mean 'index_base'?"),
    (lambda p: open_reader("jsonl", p), "needs option(s) label_vocab"),
])
def test_open_reader_errors(tmp_path, call, fragment):
    path = write(tmp_path, "d.txt", "0 1:1\n")
    with pytest.raises(ConfigError) as e:
        call(path)
    assert fragment in str(e.value)


def test_public_names():
    for name in readers.__all__:
        assert hasattr(readers, name)
