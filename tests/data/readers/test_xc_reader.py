"""XcBowReader: the format, every error message, and the real data sets."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from reader_cases import DATA, as_lists, assert_error, check_row, needs_data, write

from tfxc.data.readers import (XcBowReader)
from tfxc.errors import ConfigError, DataError


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
