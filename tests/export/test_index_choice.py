"""The SavedModel's label index: chosen at export, recorded in export.json, served the same in a fresh process."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, cli_env, csr_request, run_cli, tiny_config

from tfxc.config import load_config
from tfxc.config.schema import ExportConfig
from tfxc.errors import ConfigError
from tfxc.export.served import ServedModel

RELOAD_SCRIPT = r"""
import json, sys
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
batch = json.load(open(sys.argv[2]))
args = dict(feat_idx=tf.constant(batch["feat_idx"], tf.int64), feat_val=tf.constant(batch["feat_val"], tf.float32),
            row_splits=tf.constant(batch["row_splits"], tf.int64))
out = served.signatures["serving_default"](**args)
exact = served.signatures["top_k_exact"](**args, k=tf.constant(5))
print(json.dumps({"ids": out["label_ids"].numpy().tolist(), "scores": out["scores"].numpy().tolist(),
                  "exact_ids": exact["label_ids"].numpy().tolist(), "signatures": sorted(served.signatures)}))
"""


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(tmp, model dir, SavedModel dir) of a small softmax model over 120 labels exported with export.index "on"."""
    tmp = tmp_path_factory.mktemp("indexed")
    config = tiny_config(tmp, data={"val_percent": 20, "synthetic": {
        "num_train": 1024, "num_test": 256, "num_features": 300, "num_labels": 120, "features_per_label": 10,
        "features_per_point": 15, "seed": 3}}, model={"encoder": {"name": "sparse_bow", "embedding_dim": 16},
                                                    "head": {"name": "softmax"}},
        export={"top_k": 5, "index": "on", "index_leaf_size": 4, "index_recall": 0.9})
    model_dir, export_dir = tmp / "model", tmp / "saved_model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(export_dir))
    return tmp, model_dir, export_dir


def test_the_indexed_saved_model_answers_in_a_fresh_process_as_the_index_in_process(indexed):
    tmp, model_dir, export_dir = indexed
    from tfxc.data.info import DatasetInfo
    from tfxc.data.tfrecord import read_all
    from tfxc.export.index_choice import choose_label_index
    from tfxc.model_dir import ModelDir

    record = ServedModel(str(export_dir)).index
    assert record["used"] and record["mode"] == "on" and record["max_rows"] is None
    assert record["levels"] == [2, 32] and record["leaf_size"] == 4  # 120 labels in 32 leaves of 3-4
    assert record["recall@5"] >= 0.9 and record["measured_on"].endswith("val rows")

    config, model, info = ModelDir(str(model_dir)).restore()
    choice = choose_label_index(model, config.export, [lambda: DatasetInfo.load(config.data.dir)])
    assert choice.record == record  # the same tables and beam: clustering and measurement are deterministic
    batch, ragged = csr_request(read_all(DatasetInfo.load(config.data.dir).files("test"))[:17])
    features = model.encoder(ragged, training=False)
    scores, ids = choice.index.top_k(model.head, features, 5)
    _, exact_ids = model.top_k(ragged, 5)

    (tmp / "batch.json").write_text(json.dumps(batch))
    out = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, str(export_dir), str(tmp / "batch.json")],
                         env=cli_env(), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    served = json.loads(out.stdout.strip().splitlines()[-1])
    assert "top_k_exact" in served["signatures"]
    np.testing.assert_allclose(np.array(served["scores"]), scores.numpy(), rtol=1e-5, atol=1e-6)
    distinct = np.diff(scores.numpy(), axis=1) < -1e-5  # ids agree wherever scores are not tied
    np.testing.assert_array_equal(np.array(served["ids"])[:, :-1][distinct], ids.numpy()[:, :-1][distinct])
    assert np.all(np.array(served["ids"]) >= 0)
    assert served["exact_ids"] == exact_ids.numpy().tolist()
    # The beam reads only some clusters (recall 0.9 allowed), so the served lists need not be the exact ones,
    # but at least 90 % of the exact top-5 of these rows should be in them.
    hits = [len(set(a) & set(b)) for a, b in zip(served["ids"], served["exact_ids"])]
    assert np.mean(hits) / 5 >= 0.8


def test_auto_keeps_the_exact_head_for_a_small_label_space_and_says_why(trained, tmp_path):
    _, model_dir, export_dir = trained  # 40 labels, exported with the default export.index "off"
    assert ServedModel(str(export_dir)).index == {"mode": "off"}
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(tmp_path / "sm"), "--index", "auto")
    record = ServedModel(str(tmp_path / "sm")).index
    assert record["mode"] == "auto" and record["used"] is False and "40 labels" in record["reason"]


def test_export_index_on_refuses_a_label_space_too_small_for_two_leaves(trained, tmp_path):
    _, model_dir, _ = trained
    out = run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(tmp_path / "sm"), "--index", "on",
                  check=False)
    assert out.returncode != 0
    assert "export.index is 'on' but 40 labels fill fewer than two leaves of 32" in out.stderr


@pytest.mark.parametrize("key,value", [("index", "sometimes"), ("index_recall", 0.0), ("index_recall", 1.5),
                                       ("index_leaf_size", 1)])
def test_export_index_settings_are_checked_naming_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=rf"export\.{key} "):
        ExportConfig(**{key: value}).validate("export")
    with pytest.raises(ConfigError, match=rf"export\.{key} "):
        load_config(tiny_config(tmp_path), [f"export.{key}={value}"])


def test_the_indexed_saved_model_uses_only_ops_a_model_server_runs(indexed):
    from tfxc.export.ops import read_ops, servability_problems

    _, _, export_dir = indexed
    ops = read_ops(str(export_dir))
    assert set(ops.parts) >= {"serving_default", "top_k", "top_k_exact"}
    assert servability_problems(ops) == []
