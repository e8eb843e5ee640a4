"""tfxc.encode and Predictor.encode: the embeddings of texts, equal to the SavedModel's `embed` signature."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_cli, text_data, tiny_bert_preset

TEXTS = ["I still have not received my new card", "", "Café: how do I top up with a transfer?",
         "why was my transfer declined " * 20, "card"]


@pytest.fixture(scope="module")
def text_model(tmp_path_factory, shared_data):
    """(model dir, SavedModel dir, tmp dir) of a tiny BERT under a label tree with a TF-IDF sparse term: the
    [E (+) TF-IDF] ranker of XR-Transformer, whose embedding must leave the sparse block out."""
    tmp = tmp_path_factory.mktemp("encode")
    config = {
        "data": text_data(tmp, shared_data, train_rows=300, test_rows=32),
        "model": {"encoder": {"name": "pretrained", "preset": tiny_bert_preset(tmp / "preset", shared_data),
                              "max_length": 24, "dropout": 0.0, "backbone_dropout": 0.0},
                  "head": {"name": "label_tree", "max_leaf_size": 8, "nr_splits": 4, "sparse_support": 8,
                           "sparse_max_nnz": 16}},
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "trainer": {"global_batch_size": 32, "train_steps": 10, "steps_per_loop": 10, "log_every_steps": 10,
                    "checkpoint_every_steps": 10},
        "export": {"top_k": 5},
    }
    (tmp / "config.json").write_text(json.dumps(config))
    model_dir, saved = tmp / "model", tmp / "saved_model"
    run_cli("tfxc.train", "--config", str(tmp / "config.json"), "--model-dir", str(model_dir))
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(saved))
    return model_dir, saved, tmp


def test_encode_writes_what_the_saved_model_embeds(text_model, tmp_path):
    # The SavedModel's `embed` signature, loaded here (tests/xr/test_pipeline.py loads an XR ranker's in a fresh
    # process with only TensorFlow and tensorflow-text, and checks `tfxc.encode` against it).
    from tfxc._tf import tf

    model_dir, saved, _ = text_model
    (tmp_path / "X.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    (tmp_path / "X.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    embed = tf.saved_model.load(str(saved)).signatures["embed"]
    served = embed(text=tf.constant(TEXTS))["raw_embedding"].numpy()
    assert served.shape == (len(TEXTS), 16)  # the BERT's width: the head's sparse block is not embedded

    result = run_cli("tfxc.encode", "-t", str(tmp_path / "X.txt"), "-m", str(model_dir),
                     "-o", str(tmp_path / "emb.npy"), "--batch-size", "2")
    assert f"wrote {len(TEXTS)} embeddings [{len(TEXTS)}, 16]" in result.stderr
    emb = np.load(tmp_path / "emb.npy", allow_pickle=False)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb, served, atol=1e-5, rtol=0)
    assert not np.allclose(np.linalg.norm(emb, axis=1), 1.0)  # raw, as PECOS's encode

    # The SavedModel encodes the JSONL form the same; --normalize scales rows to unit norm.
    run_cli("tfxc.encode", "--text-path", str(tmp_path / "X.jsonl"), "--model-dir", str(saved),
            "--save-emb-path", str(tmp_path / "unit.npy"), "--normalize")
    unit = np.load(tmp_path / "unit.npy")
    np.testing.assert_allclose(unit, served / np.linalg.norm(served, axis=1, keepdims=True), atol=1e-5)


def test_classifier_encode_from_the_model_dir_and_the_saved_model_agree(text_model):
    import tfxc

    model_dir, saved, _ = text_model
    from_dir = tfxc.load(str(model_dir)).encode(TEXTS, batch_size=3)
    from_saved = tfxc.load(str(saved)).encode(TEXTS)
    assert from_dir.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(from_dir, from_saved, atol=1e-5, rtol=0)


def test_encode_errors_name_the_problem(text_model, tmp_path):
    model_dir, _, tmp = text_model
    (tmp_path / "empty.txt").write_text("")
    result = run_cli("tfxc.encode", "-t", str(tmp_path / "empty.txt"), "-m", str(model_dir), "-o",
                     str(tmp_path / "e.npy"), check=False)
    assert result.returncode != 0 and "empty.txt" in result.stderr and "no texts" in result.stderr
    (tmp_path / "bad.txt").write_bytes(b"fine\n\xff\xfe broken\n")
    result = run_cli("tfxc.encode", "-t", str(tmp_path / "bad.txt"), "-m", str(model_dir), "-o",
                     str(tmp_path / "e.npy"), check=False)
    assert result.returncode != 0 and "bad.txt:2:" in result.stderr
    assert not (tmp_path / "e.npy").exists()
    result = run_cli("tfxc.encode", "-t", str(tmp_path / "bad.txt"), "-m", str(model_dir), "-o",
                     str(tmp_path / "bad.txt"), check=False)
    assert result.returncode != 0 and "--save-emb-path" in result.stderr
