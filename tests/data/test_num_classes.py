"""data.num_classes: the label count declared, so that a split without the last classes does not shrink the head."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.data.sources import source_fingerprint
from tfxc.errors import ConfigError, DataError


def dense_set(root, train_labels, test_labels, dim=4):
    """A dense {train,test}/{features,labels}.npy set of the given labels."""
    rng = np.random.default_rng(0)
    for split, labels in (("train", train_labels), ("test", test_labels)):
        (root / split).mkdir(parents=True)
        np.save(root / split / "features.npy", rng.normal(size=(len(labels), dim)).astype(np.float32))
        np.save(root / split / "labels.npy", np.asarray(labels, np.int64))
    return str(root)


def data_config(tmp_path, source, **data):
    sets = ["data.format=dense", f"data.source_dir={source}", f"data.dir={tmp_path / 'conv'}",
            "model.encoder.name=dense_features", "model.head.name=softmax"]
    return load_config(None, sets + [f"data.{key}={value}" for key, value in data.items()]).data


def test_a_declared_count_sizes_the_labels_past_the_largest_id_seen(tmp_path):
    # Classes 4 and 5 occur in no split: inferred, the data would have 4 labels; declared, it has 6.
    source = dense_set(tmp_path / "src", [0, 1, 2, 3, 1, 2], [0, 3])
    assert ensure_converted(data_config(tmp_path, source)).num_labels == 4
    info = ensure_converted(data_config(tmp_path, source, num_classes=6))
    assert info.num_labels == 6
    from tfxc.build_context import BuildContext

    assert BuildContext.from_info(info, seed=0).num_labels == 6  # what sizes the head


def test_an_id_at_or_past_the_declared_count_is_refused(tmp_path):
    source = dense_set(tmp_path / "src", [0, 1, 2], [0, 5])
    with pytest.raises(DataError, match=r"src: label id 5 is beyond data.num_classes \(5\): ids must be in \[0, 5\)"):
        ensure_converted(data_config(tmp_path, source, num_classes=5))


def test_the_declared_count_is_an_option_of_the_conversion_and_checked(tmp_path):
    source = dense_set(tmp_path / "src", [0, 1], [1])
    plain, declared = data_config(tmp_path, source), data_config(tmp_path, source, num_classes=3)
    assert source_fingerprint(plain) != source_fingerprint(declared)
    # An older conversion's fingerprint stays what it was: the option enters only when set.
    assert source_fingerprint(plain) == source_fingerprint(data_config(tmp_path, source, num_classes=0))
    with pytest.raises(ConfigError, match=r"data.num_classes \(-1\) must be >= 0"):
        data_config(tmp_path, source, num_classes=-1)
