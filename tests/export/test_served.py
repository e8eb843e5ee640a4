"""ServedModel, the one reader of an exported SavedModel: a real export read back agrees with the model
directory it came from, and a missing or damaged asset is a stand-in or one error naming the file."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from helpers import run_cli

from tfxc.errors import DataError, TfxcError
from tfxc.export import served as served_module
from tfxc.export.served import ServedModel


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """(the model directory, a SavedModel of it whose k, 7, is not the config's export.top_k)."""
    _, model_dir, _ = trained
    export_dir = tmp_path_factory.mktemp("served") / "saved_model"
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(export_dir), "--top-k", "7")
    return model_dir, export_dir


def test_a_real_export_reads_back_as_the_model_directory_it_came_from(exported):
    from tfxc._tf import tf
    from tfxc.model_dir import ModelDir

    model_dir, export_dir = exported
    _, model, info = ModelDir(str(model_dir)).restore()
    served = ServedModel(str(export_dir))
    assert (served.top_k, served.input_kind, served.reads_text) == (7, "features", False)
    assert (served.num_features, served.num_labels) == (info.num_features, info.num_labels) == (300, 40)
    assert served.num_train_points == info.num_points("train") > 0
    assert served.label_names() == info.label_names()
    np.testing.assert_array_equal(served.label_freq(), info.label_freq)
    assert served.label_freq().dtype == np.int64 and served.label_freq().sum() > 0
    assert served.featurizer() is None  # trained on feature rows
    assert json.loads(open(served.asset(served_module.CONFIG_ASSET)).read())["model"] == \
        json.loads(open(model_dir / "config.json").read())["model"]

    # The graph is loaded once and its signatures answer as the restored model does.
    assert served.load() is served.load()
    idx, val = tf.constant([3, 17, 42], tf.int64), tf.constant([1.0, 0.5, 0.2], tf.float32)
    splits = tf.constant([0, 2, 3], tf.int64)
    out = served.signature("top_k")(feat_idx=idx, feat_val=val, row_splits=splits, k=tf.constant(4))
    scores, _ = model.top_k({"feat_idx": tf.RaggedTensor.from_row_splits(idx, splits),
                             "feat_val": tf.RaggedTensor.from_row_splits(val, splits)}, 4)
    np.testing.assert_allclose(out["scores"].numpy(), scores.numpy(), atol=1e-6)
    default = served.signature("serving_default")(feat_idx=idx, feat_val=val, row_splits=splits)
    assert default["label_ids"].shape == (2, 7)  # k of the export (--top-k 7)
    with pytest.raises(TfxcError, match=re.escape(f"{export_dir}: has no 'tokenize' signature (it has: embed, "
                                                  "serving_default, top_k)")):
        served.signature("tokenize")


def test_the_writer_puts_only_the_assets_the_reader_names(exported):
    _, export_dir = exported
    assets = export_dir / served_module.ASSETS_PATH
    names = {served_module.CONFIG_ASSET, served_module.EXPORT_ASSET, served_module.LABELS_ASSET,
             served_module.LABEL_FREQ_ASSET}  # no featurizer: not trained on text
    assert set(os.listdir(assets)) == names
    assert served_module.is_saved_model(str(export_dir)) and not served_module.is_saved_model(str(assets))
    assert served_module.extra_asset(str(export_dir), served_module.FEATURIZER_ASSET) is None


# === Without the graph: export.json alone makes a ServedModel (the other assets are read on use) ===

EXPORT_INFO = {"top_k": 5, "input": "features", "num_features": 30, "num_labels": 3, "num_train_points": 100}


def assets_only(tmp_path, export_info=EXPORT_INFO, **assets) -> str:
    """A directory holding tfxc's assets (export.json and `assets`: file name -> text or bytes), no graph."""
    directory = tmp_path / "saved"
    (directory / served_module.ASSETS_PATH).mkdir(parents=True)
    files = {served_module.EXPORT_ASSET: json.dumps(export_info), **assets}
    for name, content in files.items():
        path = directory / served_module.ASSETS_PATH / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return str(directory)


def test_an_export_without_the_later_assets_gets_their_stand_ins(tmp_path):
    served = ServedModel(assets_only(tmp_path, {k: v for k, v in EXPORT_INFO.items()
                                                if k not in ("input", "num_train_points")}))
    assert (served.input_kind, served.num_train_points) == ("features", 0)
    assert served.label_names() == ["0", "1", "2"]
    np.testing.assert_array_equal(served.label_freq(), np.zeros(3, np.int64))
    assert served.featurizer() is None


def test_labels_and_a_featurizer_are_read_from_the_assets(tmp_path):
    from tfxc.data.text_features import TfidfFeaturizer

    fitted = TfidfFeaturizer().fit(["a card arrived", "top up by transfer", "card lost"])
    fitted.save(tmp_path / "tfidf.json")
    served = ServedModel(assets_only(tmp_path, {**EXPORT_INFO, "input": "text"}, **{
        served_module.LABELS_ASSET: "card\ntop up\nlost\n",
        served_module.FEATURIZER_ASSET: (tmp_path / "tfidf.json").read_text()}))
    assert served.reads_text and served.label_names() == ["card", "top up", "lost"]
    for got, expected in zip(served.featurizer().transform("card arrived"), fitted.transform("card arrived")):
        np.testing.assert_array_equal(got, expected)


def test_no_directory_or_no_export_json_is_one_error_naming_the_path(tmp_path):
    with pytest.raises(TfxcError, match=re.escape(f"{tmp_path / 'nope'}: no SavedModel directory")):
        ServedModel(str(tmp_path / "nope"))
    with pytest.raises(TfxcError, match=re.escape(f"{tmp_path}: not a tfxc SavedModel (no "
                                                  "assets.extra/tfxc/export.json)")):
        ServedModel(str(tmp_path))


@pytest.mark.parametrize("export_info, message", [
    ({**EXPORT_INFO, "num_labels": 0}, "damaged export description: num_labels is 0, expected an integer >= 1"),
    ({**EXPORT_INFO, "top_k": True}, "'top_k' has an unexpected value True"),
    ({k: v for k, v in EXPORT_INFO.items() if k != "num_features"}, "no 'num_features' entry"),
])
def test_a_damaged_export_json_is_one_error_naming_it(tmp_path, export_info, message):
    directory = assets_only(tmp_path, export_info)
    with pytest.raises(DataError, match="^" + re.escape(f"{directory}/assets.extra/tfxc/export.json: {message}")):
        ServedModel(directory)


@pytest.mark.parametrize("name, content, read, message", [
    (served_module.LABELS_ASSET, b"\xff\xfe", "label_names", "cannot read the label names"),
    (served_module.LABELS_ASSET, "a\nb", "label_names", "has 2 label names, the model 3 (cut short?)"),
    (served_module.LABEL_FREQ_ASSET, b"\x93NUMPY", "label_freq", "cannot read the label counts"),
    (served_module.FEATURIZER_ASSET, "{not json", "featurizer", "cannot read TF-IDF featurizer JSON"),
])
def test_a_damaged_asset_is_one_error_naming_it_when_read(tmp_path, name, content, read, message):
    directory = assets_only(tmp_path, **{name: content})
    served = ServedModel(directory)  # export.json is fine: the damage shows when the asset is read
    with pytest.raises(DataError, match="^" + re.escape(f"{directory}/assets.extra/tfxc/{name}: {message}")):
        getattr(served, read)()


def test_label_counts_of_another_shape_are_one_error_naming_the_file(tmp_path):
    directory = assets_only(tmp_path)
    np.save(os.path.join(directory, served_module.ASSETS_PATH, served_module.LABEL_FREQ_ASSET), np.ones(4, np.int64))
    with pytest.raises(DataError, match=re.escape("label_freq.npy: holds (4,) label counts, the model has 3 labels")):
        ServedModel(directory).label_freq()


def test_a_graph_that_cannot_load_is_one_error_naming_it(tmp_path):
    directory = assets_only(tmp_path)
    with open(os.path.join(directory, served_module.GRAPH_FILE), "wb") as f:
        f.write(b"\x00not a graph")
    served = ServedModel(directory)
    with pytest.raises(DataError, match="^" + re.escape(f"{directory}/saved_model.pb: cannot load the SavedModel")):
        served.signature("top_k")
