"""LightXML's text layout (train_texts.txt + train_labels.txt), read as the records of JSONL text, end to end."""

from __future__ import annotations

import gzip

import pytest

from tfxc.data.readers import iter_jsonl
from tfxc.data.sources import source_format
from tfxc.errors import DataError


def write_pair(directory, split: str, texts: str, labels: str | None):
    directory.mkdir(exist_ok=True)
    (directory / f"{split}_texts.txt").write_text(texts, encoding="utf-8")
    if labels is not None:
        (directory / f"{split}_labels.txt").write_text(labels, encoding="utf-8")
    return directory / f"{split}_texts.txt"


def test_each_text_line_takes_the_label_names_of_the_same_line(tmp_path):
    path = write_pair(tmp_path, "train", "the parliament adopted it\nrégion et état\n\n",
                      "european_union parliament\nfrance  region\nnone_given\n")
    records = list(iter_jsonl(path))
    assert [(r.line, r.text, r.labels) for r in records] == [
        (1, "the parliament adopted it", ["european_union", "parliament"]), (2, "région et état", ["france", "region"]),
        (3, "", ["none_given"])]
    assert source_format(str(path)) == "jsonl"  # not XC text, whose files end in .txt too
    gz = tmp_path / "gz"
    gz.mkdir()
    for name, text in (("test_texts.txt.gz", "a b\n"), ("test_labels.txt.gz", "x\n")):
        with gzip.open(gz / name, "wt", encoding="utf-8") as f:
            f.write(text)
    assert [(r.text, r.labels) for r in iter_jsonl(gz / "test_texts.txt.gz")] == [("a b", ["x"])]


@pytest.mark.parametrize("texts, labels, message", [
    ("a\nb\n", "x\n", r"train_labels.txt:2: the labels file ends before the texts: no labels for text line 2"),
    ("a\n", "x\ny\n", r"train_labels.txt:2: the labels file has more lines than the 1 texts"),
    ("a\n", None, r"train_texts.txt: LightXML's layout needs the labels file beside the texts: no .*train_labels.txt"),
    ("", "", r"train_texts.txt: file is empty"),
])
def test_files_that_do_not_pair_are_refused_naming_the_line(tmp_path, texts, labels, message):
    with pytest.raises(DataError, match=message):
        list(iter_jsonl(write_pair(tmp_path, "train", texts, labels)))


def test_texts_without_labels_are_inputs_to_predict(tmp_path):
    path = write_pair(tmp_path, "test", "a query\n", None)
    assert [(r.text, r.labels) for r in iter_jsonl(path, require_labels=False)] == [("a query", [])]


def test_a_lightxml_set_trains_through_the_jsonl_format(tmp_path):
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted

    names = ["sports", "politics", "science"]
    texts = [f"{names[i % 3]} story number {i} about {names[i % 3]}" for i in range(30)]
    labels = [f"{names[i % 3]} {names[(i + 1) % 3]}" for i in range(30)]
    write_pair(tmp_path, "train", "\n".join(texts[:24]) + "\n", "\n".join(labels[:24]) + "\n")
    write_pair(tmp_path, "test", "\n".join(texts[24:]) + "\n", "\n".join(labels[24:]) + "\n")
    config = load_config(None, ["data.format=jsonl", f"data.train={tmp_path / 'train_texts.txt'}",
                                f"data.test={tmp_path / 'test_texts.txt'}", f"data.dir={tmp_path / 'conv'}"])
    info = ensure_converted(config.data)
    assert info.num_labels == 3 and sorted(info.label_names()) == sorted(names)
    assert info.num_points("train") == 24 and info.num_points("test") == 6
