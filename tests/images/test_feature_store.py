"""The image extraction's `--split` fractions and split files (`tfxc.images.feature_store`)."""

from __future__ import annotations

import pytest

from tfxc.errors import DataError
from tfxc.images.feature_store import parse_fractions, read_split_file


def test_split_fractions_are_read():
    assert parse_fractions("train=0.8, val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert parse_fractions("train=1") == {"train": 1.0}


@pytest.mark.parametrize("text", ["train=nan", "train=NaN,val=0.5,test=0.5", "train=0.5,test=inf", "train=1e400",
                                  "train=0.5,test=٠.5", "train=1_0"])
def test_a_fraction_that_is_not_a_finite_number_is_refused_naming_it(text):
    """'train=nan' was accepted (NaN compares false with everything: the sum check passed it)."""
    with pytest.raises(DataError, match=r"is not split=fraction \(a finite number") as e:
        parse_fractions(text)
    assert str(e.value).startswith("field '--split': "), e.value


def test_a_split_file_reads_long_refs_and_names_the_line_of_a_bad_row(tmp_path):
    """A ref over 131,072 characters raised `_csv.Error` uncaught; bytes that are not UTF-8 named no line."""
    ref = "r" * 140_000
    (tmp_path / "long.csv").write_text(f"ref,split\na.png,train\n{ref},test\n")
    assert read_split_file(str(tmp_path / "long.csv")) == {"a.png": "train", ref: "test"}
    (tmp_path / "latin1.csv").write_bytes(b"a.png,train\ncaf\xe9.png,test\n")
    with pytest.raises(DataError, match=r"latin1.csv:2: not valid UTF-8"):
        read_split_file(str(tmp_path / "latin1.csv"))
    (tmp_path / "three.csv").write_text("a.png,train\nb.png,test,extra\n")
    with pytest.raises(DataError, match=r"three.csv:2: has 3 cells where 2 are expected"):
        read_split_file(str(tmp_path / "three.csv"))
    (tmp_path / "holdout.csv").write_text("a.png,holdout\n")
    with pytest.raises(DataError, match=r"holdout.csv:1: expected ref,split"):
        read_split_file(str(tmp_path / "holdout.csv"))


def test_the_extraction_card_keeps_non_ascii_text_as_itself(tmp_path):
    """extract.json wrote a folder of 猫 images as "\\u732b"; the card is UTF-8 text, read back the same."""
    import json

    import numpy as np

    from tfxc.images.feature_store import CARD_FILE, FeatureStore

    store = FeatureStore(str(tmp_path / "out"), {"folder": str(tmp_path / "猫"), "preset": "resnet"})
    store.write_plan(np.zeros(2, np.int64), np.zeros(2, np.int8), ["猫/a.png", "猫/b.png"], ["猫"], dim=3)
    store.open()
    store.finish({"images": 2, "classes": ["猫"]})
    text = (tmp_path / "out" / CARD_FILE).read_text(encoding="utf-8")
    assert "猫" in text and "\\u" not in text, text
    assert json.loads(text)["settings"] == store.settings == store.finished_settings()
