"""The images format: labelled image sources converted to TFRecords that carry each encoded image."""

from __future__ import annotations

import os

import pytest

from helpers import digit_images
from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.data.tfrecord import read_all
from tfxc.errors import DataError


@pytest.fixture(scope="module")
def digits():
    return digit_images(30)


def folder(root, digits, rows):
    for i in rows:
        data, label = digits[i]
        os.makedirs(root / f"digit{label}", exist_ok=True)
        (root / f"digit{label}" / f"{i:03d}.png").write_bytes(data)
    return str(root)


def data_config(tmp_path, train, test, **images):
    overrides = ['data.format="images"', f'data.train="{train}"', f'data.test="{test}"',
                 f'data.dir="{tmp_path / "converted"}"'] + [f'data.images.{k}="{v}"' for k, v in images.items()]
    return load_config(None, overrides).data


def test_folders_convert_to_rows_with_their_images_and_sorted_class_names(tmp_path, digits):
    train = folder(tmp_path / "train", digits, range(20))
    test = folder(tmp_path / "test", digits, range(20, 30))
    info = ensure_converted(data_config(tmp_path, train, test))
    names = sorted({f"digit{label}" for _, label in digits[:20]})
    assert info.label_names() == names and info.num_features == 0
    rows = read_all(info.files("train"))
    by_bytes = {data: label for data, label in digits}
    assert len(rows) == 20
    for row in rows:
        assert names[row["labels"][0]] == f"digit{by_bytes[row['image']]}" and row["feat_idx"].size == 0
    # Another image under the same name is other data: the conversion is redone.
    first = sorted(os.listdir(os.path.join(train, names[0])))[0]
    with open(os.path.join(train, names[0], first), "wb") as f:
        f.write(digits[25][0])
    again = ensure_converted(data_config(tmp_path, train, test))
    assert again.splits["train"]["sha256"] != info.splits["train"]["sha256"]


def test_a_test_class_unseen_in_training_is_named(tmp_path, digits):
    train = folder(tmp_path / "train", digits, [i for i in range(30) if digits[i][1] != 7])
    test = folder(tmp_path / "test", digits, [i for i in range(30) if digits[i][1] == 7])
    with pytest.raises(DataError, match=r"field 'digit7/\d+\.png': unknown class 'digit7'"):
        ensure_converted(data_config(tmp_path, train, test))
