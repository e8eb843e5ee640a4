"""JsonlReader, iter_jsonl and LabelVocab: label vocabularies, errors, the shared text sets."""

from __future__ import annotations

import os

import numpy as np
import pytest
from reader_cases import DATA, assert_error, check_row, jsonl, needs_data, write

from tfxc.data.label_vocab import LabelVocab
from tfxc.data.readers import (JsonlReader, iter_jsonl)
from tfxc.data.text_features import TfidfFeaturizer
from tfxc.errors import ConfigError, DataError



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


# D8: json.loads turns an unpaired "\ud800" escape into a str that no encoder accepts; the reader names it.
@pytest.mark.parametrize("line,field", [
    ('{"text": "\\ud800 x", "labels": ["a"]}', "text"),
    ('{"text": "x", "labels": ["bad\\ud800label"]}', "labels"),
    ('{"id": "g\\udfff:1", "text": "x", "labels": []}', "id"),
    ('{"id": {"parts": ["\\udc80"]}, "text": "x", "labels": []}', "id"),
    ('{"note": "\\ud83d", "text": "x", "labels": []}', "note"),
])
def test_jsonl_lone_surrogate_escapes_name_file_line_and_field(tmp_path, line, field):
    path = write(tmp_path, "bad.jsonl", '{"text": "ok \\ud83d\\ude00", "labels": ["a"]}\n' + line + "\n")
    for read in (lambda: list(JsonlReader(path, label_vocab=LabelVocab(["a"], frozen=True))),
                 lambda: list(iter_jsonl(path, require_labels=False))):
        with pytest.raises(DataError) as e:
            read()
        assert_error(e, path, 2, field, "lone surrogate")


def test_jsonl_a_paired_surrogate_escape_is_one_character(tmp_path):
    path = write(tmp_path, "ok.jsonl", '{"text": "smile \\ud83d\\ude00", "labels": ["\\u00e9t\\u00e9"]}\n')
    (record,) = iter_jsonl(path)
    assert record.text == "smile \U0001f600" and record.labels == ["\u00e9t\u00e9"]


def test_jsonl_conversion_with_a_lone_surrogate_names_the_line_and_leaves_nothing(tmp_path):
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted

    good = '{"text": "red apple", "labels": ["fruit"]}\n'
    for bad in ('{"text": "\\ud800 x", "labels": ["fruit"]}\n', '{"text": "x", "labels": ["bad\\ud800label"]}\n'):
        train, test = write(tmp_path, "train.jsonl", good + bad), write(tmp_path, "test.jsonl", good)
        out = tmp_path / "converted"
        config = load_config(None, ["data.format=jsonl", f"data.train={train}", f"data.test={test}",
                                    f"data.dir={out}"])
        with pytest.raises(DataError) as e:
            ensure_converted(config.data, force=True)
        assert_error(e, train, 2, None, "lone surrogate U+D800")
        assert not out.exists()


def test_non_utf8_label_names_file_names_the_line(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes("fruit\nvehicle\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError) as e:
        LabelVocab.load(path)
    assert_error(e, path, 3, None, "not valid UTF-8", "0xe9")


def test_label_vocab_refuses_a_name_it_could_not_save():
    with pytest.raises(ValueError, match="lone surrogate"):
        LabelVocab(["ok", "bad\ud800"])
    with pytest.raises(ValueError, match="lone surrogate"):
        LabelVocab.build([["a"], ["\udc80"]])
