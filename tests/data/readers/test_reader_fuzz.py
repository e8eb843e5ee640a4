"""Property-based tests: mutated input files give a correct parse or a DataError naming the file (and the
line, for line formats), never another exception; a failed conversion leaves nothing behind. Covered: the
XC, JSONL, CSV/TSV text, .npz and .npy readers, the taxonomy (label tree TSV) reader and tfxc.predict's text
input; a correct parse holds only strings that encode as UTF-8."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reader_cases import check_row

from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers import DenseReader, JsonlReader, XcBowReader, iter_jsonl, load_sparse_npz
from tfxc.errors import DataError

# numpy warns about mutated .npy headers that look like Python 2 files; the reader's answer is what counts.
pytestmark = pytest.mark.filterwarnings("ignore:Reading `.npy` or `.npz` file required additional header parsing")

# Derandomized: CI runs the same examples every time (a failure reproduces); the count keeps it quick.
FUZZ = settings(derandomize=True, max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

XC = "4 10 5\n0,2 1:0.5 3:1\n 7:2 2:1.5\n4,1\n3 0:1e-3 9:-2 5:0\n"
JSONL = "".join(json.dumps(r) + "\n" for r in [{"id": 1, "text": "red apple", "labels": ["fruit"]},
                                                {"id": 2, "text": "blue car", "labels": ["vehicle", "blue"]},
                                                {"text": "", "labels": []}])


@st.composite
def mutated(draw, original: bytes):
    """`original` with a few byte-level edits: replace, insert, delete, duplicate or cut a span, or a JSON
    surrogate escape after a quote."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "truncate", "escape"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "replace" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
                [b",", b":", b" ", b"\n", b"-", b"nan", b"1e999", b"\"", b"{", b"]", b"\r\n", b"\xef\xbb\xbf", b"\t",
                 # JSON escapes of lone surrogates (D8), Latin-1 and Unicode digits that str.isdigit() accepts (D13)
                 b"\\ud800", b"\\udfff", b"\\ud83d", b"\xe9", "\u00b2".encode(), "\u0663".encode()]))
        elif kind == "delete" and data:
            del data[at:at + draw(st.integers(1, 5))]
        elif kind == "duplicate" and data:
            data[at:at] = data[at:at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "escape" and b'"' in data:
            # A surrogate escape just after a quote, so that it often lands inside a JSON string (D8).
            quotes = [i for i, byte in enumerate(data) if byte == ord('"')]
            at = draw(st.sampled_from(quotes)) + 1
            data[at:at] = draw(st.sampled_from([b"\\ud800", b"\\udfff", b"\\ud83d", b"\\ud83d\\ude00"]))
    return bytes(data)


def assert_named(error: DataError, path, line_format: bool) -> None:
    message = str(error)
    assert message.startswith(str(path)), message
    if line_format and error.line is not None:
        assert message.startswith(f"{path}:{error.line}: "), message


@FUZZ
@given(content=mutated(XC.encode()))
def test_xc_reader_parses_or_names_file_and_line(tmp_path, content):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    try:
        reader = XcBowReader(path)
        rows = list(reader)
    except DataError as e:
        assert_named(e, path, line_format=True)
        return
    for row in rows:
        check_row(row)
        assert np.all(np.isfinite(row.feat_val)) and np.all(row.feat_val != 0)
        if reader.header:
            assert row.feat_idx.max(initial=-1) < reader.header[1] and row.labels.max(initial=-1) < reader.header[2]
    if reader.header:
        assert len(rows) == reader.header[0]


@FUZZ
@given(content=mutated(JSONL.encode()))
def test_jsonl_reader_parses_or_names_file_and_line(tmp_path, content):
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    vocab = LabelVocab()
    try:
        rows = list(JsonlReader(path, label_vocab=vocab))
    except DataError as e:
        assert_named(e, path, line_format=True)
        return
    for row in rows:
        check_row(row)
        assert isinstance(row.text, str) and row.labels.max(initial=-1) < len(vocab)
        row.text.encode("utf-8")  # what the TFRecord writer does with it
    "".join(vocab.names).encode("utf-8")  # what labels.txt gets


# JSON strings with surrogates among other characters: a lone one is refused; a high one followed by a low
# one is a valid pair once written as "\\ud83d\\ude00" escapes and read back.
# (st.text would filter the surrogates out, hence lists of characters.)
json_strings = st.lists(st.characters() | st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00"]),
                        max_size=6).map("".join)
jsonl_records = st.lists(st.fixed_dictionaries(
    {"text": json_strings, "labels": st.lists(json_strings.filter(lambda t: t and "\n" not in t and "\r" not in t),
                                              max_size=2, unique=True)},
    optional={"id": json_strings | st.lists(json_strings, max_size=2)}), min_size=1, max_size=3)


@FUZZ
@given(records=jsonl_records)
def test_jsonl_strings_are_unicode_or_the_line_and_field_are_named(tmp_path, records):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))  # ensure_ascii: surrogates as \udXXX escapes
    vocab = LabelVocab()
    try:
        rows = list(JsonlReader(path, label_vocab=vocab))
    except DataError as e:
        assert_named(e, path, line_format=True)
        assert e.line is not None and e.field in ("text", "labels", "id"), str(e)
        return
    for row in rows:
        row.text.encode("utf-8")
    "".join(vocab.names).encode("utf-8")


def predict_texts(path, tf) -> list:
    """What `tfxc.predict` does with a JSONL input for a raw-text SavedModel, up to its signature's input."""
    from tfxc.predict import text_batches

    texts = []
    for batch in text_batches(str(path), 2):
        tf.constant(batch)  # a lone surrogate failed here: "Error converting unicode string"
        texts.extend(batch)
    return texts


@FUZZ
@given(content=mutated(JSONL.encode()))
def test_predict_text_input_parses_or_names_file_and_line(tmp_path, content):
    from tfxc._tf import tf

    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    try:
        texts = predict_texts(path, tf)
    except DataError as e:
        assert_named(e, path, line_format=True)
        return
    assert all(isinstance(t, str) for t in texts)


@FUZZ
@given(records=jsonl_records)
def test_predict_text_input_with_any_strings_parses_or_names_the_line(tmp_path, records):
    from tfxc._tf import tf

    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"], **({"id": r["id"]} if "id" in r else {})}) + "\n"
                            for r in records))
    try:
        assert len(predict_texts(path, tf)) == len(records)
    except DataError as e:
        assert_named(e, path, line_format=True)
        assert e.line is not None and e.field in ("text", "id"), str(e)


TAXONOMY = "a\tfruit\tred\nb\tfruit\ngreen\tfruit\tgreen\n3\tthing\n\n"  # label "d" by its id
TAXONOMY_LABELS = ["a", "b", "green", "d"]


@FUZZ
@given(content=mutated(TAXONOMY.encode()) | mutated(b"\xef\xbb\xbf" + TAXONOMY.replace("\n", "\r\n").encode()))
def test_taxonomy_reader_reads_or_names_file_and_line(tmp_path, content):
    from tfxc.tree import LabelTree

    path = tmp_path / "taxonomy.tsv"
    path.write_bytes(content)
    for allow_missing in (False, True):
        try:
            tree = LabelTree.read_tsv(str(path), TAXONOMY_LABELS, allow_missing=allow_missing)
        except DataError as e:
            assert_named(e, path, line_format=True)
            continue
        assert tree.num_labels == len(TAXONOMY_LABELS)
        assert allow_missing or tree.leaf_labels is None
        assert 0 < len(tree.leaf_names(TAXONOMY_LABELS)) <= len(TAXONOMY_LABELS)


def npz_bytes(matrix) -> bytes:
    buffer = io.BytesIO()
    scipy.sparse.save_npz(buffer, matrix)
    return buffer.getvalue()


@FUZZ
@given(content=mutated(npz_bytes(scipy.sparse.random(6, 9, density=0.4, format="csr", random_state=1))))
def test_npz_loader_loads_or_names_the_file_and_never_unpickles(tmp_path, content):
    path = tmp_path / "X.npz"
    path.write_bytes(content)
    try:
        matrix = load_sparse_npz(str(path), "X")
    except DataError as e:
        assert_named(e, path, line_format=False)
        return
    matrix.check_format(full_check=True)
    assert np.all(np.isfinite(matrix.data))


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@FUZZ
@given(content=mutated(npy_bytes(np.arange(12, dtype=np.float32).reshape(4, 3))))
def test_dense_reader_reads_or_names_the_file(tmp_path, content):
    x, y = tmp_path / "X.npy", tmp_path / "y.txt"
    x.write_bytes(content)
    y.write_text("0\n1\n2,3\n\n")
    try:
        rows = list(DenseReader(x, y))
    except DataError as e:
        assert str(e).startswith((str(x), str(y))), str(e)
        return
    for row in rows:
        check_row(row)


@settings(derandomize=True, max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=mutated(XC.encode()))
def test_a_failed_conversion_leaves_no_output(tmp_path, content):
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted

    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_bytes(content)
    test.write_text(XC)
    out = tmp_path / "converted"
    config = load_config(None, ["data.format=xc", f"data.train={train}", f"data.test={test}", f"data.dir={out}"])
    try:
        info = ensure_converted(config.data, force=True)
    except DataError as e:
        assert str(e).startswith(str(train)) or "train split has no points" in str(e), str(e)
        assert not out.exists()
    else:
        assert info.num_points("train") >= 0 and os.path.exists(out / "stats.json")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".converted.tmp")]
    if out.exists():
        import shutil

        shutil.rmtree(out)


CSV = 'sentence,label,id\n"hello, there",greet,1\n天气很好,"天气,weather",2\n"He said ""no""\nthen left",leave,3\n'


@FUZZ
@given(content=mutated(CSV.encode()))
def test_csv_text_reader_parses_or_names_file_and_line(tmp_path, content):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    try:
        records = list(iter_jsonl(path))
    except DataError as e:
        assert_named(e, path, line_format=True)
        return
    for record in records:
        (record.text + "".join(record.labels)).encode("utf-8")
        assert all(label.strip() == label and label for label in record.labels)


# CSV/TSV cells: the delimiters, quotes and line breaks a writer must quote, Chinese, and now and then a
# document longer than the csv module's default cell limit (131,072 characters). (\r is read as a line end.)
csv_cells = st.text(st.sampled_from([",", "\t", '"', "\n", " ", "a", "Z", "7", "天", "气", "é", "\u2028"]),
                    max_size=8) | st.sampled_from(["文" * 140_000, "x" * 131_073 + ',"\n'])
csv_labels = st.lists(st.sampled_from(["greet", "天气", "a b", "x\"y"]), min_size=1, max_size=3, unique=True)


@st.composite
def csv_tables(draw):
    """(header, rows, delimiter, quoting): rows of random cell counts, most the header's."""
    header = draw(st.permutations(["sentence", "label", "id", "x"[:draw(st.integers(0, 1))]]))
    header = [name for name in header if name]
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        cells = [draw(csv_cells) if name != "label" else ",".join(draw(csv_labels)) for name in header]
        count = draw(st.sampled_from([len(header)] * 3 + [1, len(header) - 1, len(header) + 1, len(header) + 2]))
        rows.append(cells[:count] + [draw(csv_cells) for _ in range(count - len(cells))])
    return header, rows, draw(st.sampled_from([",", "\t"])), draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))


@settings(derandomize=True, max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=csv_tables())
def test_csv_rows_of_the_headers_cell_count_round_trip_any_other_count_names_its_line(tmp_path, table):
    header, rows, delimiter, quoting = table
    path = tmp_path / ("data.csv" if delimiter == "," else "data.tsv")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, quoting=quoting, lineterminator="\n")
    starts = []
    writer.writerow(header)
    for row in rows:
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)
    path.write_text(out.getvalue(), encoding="utf-8")
    wrong = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if wrong:
        with pytest.raises(DataError) as error:
            list(iter_jsonl(path))
        i = wrong[0]
        assert str(error.value).startswith(f"{path}:{starts[i]}: has {len(rows[i])} cell"), str(error.value)
        assert f"where the header has {len(header)}" in str(error.value)
        return
    text_at, label_at = header.index("sentence"), header.index("label")
    assert [(r.line, r.text, r.labels) for r in iter_jsonl(path)] == [
        (start, row[text_at], row[label_at].split(",")) for start, row in zip(starts, rows)]
