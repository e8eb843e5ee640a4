"""An XR-Transformer run end to end on a slice of reuters with a tiny BERT, trained once per module: fine-tuned
levels, the ranker, its SavedModel served from strings in a fresh process, `tfxc.encode`, and (with --run-slow)
a kill -9 at a level boundary resumed to the same model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse
from helpers import (assert_same_weights, checkpoint_weights, cli_env, run_cli, tiny_bert_preset)

from tfxc.tree import LabelTree
from tfxc.xr.levels import level_counts, matching_matrix, predicted_clusters

QUERIES = ["oil prices rose after the opec meeting", "the company reported quarterly earnings", "",
           "wheat and grain exports to the soviet union " * 10]

SERVE_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
m = tf.saved_model.load(sys.argv[1])
out = m.signatures["serving_default"](text=tf.constant(json.load(open(sys.argv[2]))))
emb = m.signatures["embed"](text=tf.constant(json.load(open(sys.argv[2]))))["raw_embedding"]
import numpy as np
np.save(sys.argv[3], emb.numpy())
print(json.dumps({"ids": out["label_ids"].numpy().tolist(), "scores": out["scores"].numpy().tolist()}))
"""


def xr_config(tmp, shared_data) -> str:
    source = os.path.join(shared_data, "reuters")
    for split, rows in (("train", 400), ("test", 100)):
        with open(os.path.join(source, f"{split}.jsonl"), encoding="utf-8") as f:
            (tmp / f"{split}.jsonl").write_text("".join(next(f) for _ in range(rows)), encoding="utf-8")
    config = {
        "data": {"format": "jsonl", "train": str(tmp / "train.jsonl"), "test": str(tmp / "test.jsonl"),
                 "label_names": os.path.join(source, "labels.txt"), "dir": str(tmp / "data"), "num_shards": 2},
        "model": {"encoder": {"name": "pretrained", "preset": tiny_bert_preset(tmp / "preset", shared_data),
                              "max_length": 32, "dropout": 0.0, "backbone_dropout": 0.0},
                  # Preliminary tree 4 -> 16 -> 57 labels; levels of <= 40 clusters are fine-tuned: 4, then 16.
                  "head": {"name": "xr_transformer", "matcher_max_leaf_size": 4, "matcher_nr_splits": 4,
                           "max_match_clusters": 40, "max_steps": [6, 8], "learning_rates": [1e-3],
                           "warmup_steps": [2], "max_active_matching_labels": 12, "only_topk": 2,
                           "max_leaf_size": 8, "nr_splits": 4, "sparse_support": 16, "sparse_max_nnz": 32,
                           "prediction": {"beam_size": 4}}},
        "optimizer": {"name": "adam", "learning_rate": 0.01, "epsilon": 1e-8, "clip_norm": 1.0},
        "trainer": {"global_batch_size": 16, "train_steps": 20, "steps_per_loop": 5, "log_every_steps": 5,
                    "checkpoint_every_steps": 5},
        "export": {"top_k": 5},
    }
    (tmp / "config.json").write_text(json.dumps(config))
    return str(tmp / "config.json")


def kill_after_first_level(config: str, model_dir) -> None:
    """Starts tfxc.train and kills it (SIGKILL) as soon as the first level is marked done."""
    from tfxc.xr.pipeline import LEVEL_DONE, level_dir

    proc = subprocess.Popen([sys.executable, "-m", "tfxc.train", "--config", config, "--model-dir", str(model_dir)],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = os.path.join(level_dir(str(model_dir), 0), LEVEL_DONE)
    deadline = time.time() + 240
    while not os.path.exists(marker) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.path.exists(marker), "the first level never finished"
    assert not os.path.exists(os.path.join(str(model_dir), "metrics.json")), "killed too late"


@pytest.fixture(scope="module")
def xr_run(tmp_path_factory, shared_data):
    """One whole XR-Transformer run (its CLI in this process), exported: the tests below read it, none trains it
    again. (tmp dir, config path, model dir, the run's stderr, SavedModel dir)."""
    tmp = tmp_path_factory.mktemp("xr")
    config = xr_config(tmp, shared_data)
    whole, saved = tmp / "whole", tmp / "saved"
    stderr = run_cli("tfxc.train", "--config", config, "--model-dir", str(whole), timeout=600).stderr
    run_cli("tfxc.export", "--model-dir", str(whole), "--out", str(saved))
    return tmp, config, whole, stderr, saved


def test_xr_transformer_fine_tunes_its_levels_then_trains_the_ranker_on_the_frozen_last_encoder(xr_run):
    _, _, whole, stderr, _ = xr_run
    assert "XR level 2/2: 16 clusters (tree level 1), 9 steps" in stderr
    # Level 2's man table comes from the concat matcher of level 1's 4 clusters; its head from the bootstrap.
    assert "concat matcher: 4 clusters fitted" in stderr
    assert "bootstrap: 16 clusters fitted" in stderr
    # Each stage records its time: a level's loop and the passes before it, the ranker's passes.
    level = json.loads((whole / "levels" / "level-1" / "level.json").read_text())
    assert level["train_seconds"] > 0 and level["prepare_seconds"] > 0
    assert json.loads((whole / "ranker_prepared.json").read_text())["prepare_seconds"] > 0
    assert json.loads((whole / "metrics.json").read_text())["P@1"] > 0

    # The ranker's encoder is the last level's, frozen: its weights are the level's, untouched by the ranker.
    from tfxc.encoders.frozen import base_encoder
    from tfxc.model_dir import ModelDir

    ranker = ModelDir(str(whole)).restore().model
    level = ModelDir(str(whole / "levels" / "level-1")).restore().model
    for a, b in zip(base_encoder(ranker.encoder).get_weights(), base_encoder(level.encoder).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert ranker.trainable_variables and not any("frozen_encoder" in v.path for v in ranker.trainable_variables)


def test_the_xr_ranker_serves_strings_in_a_fresh_process_and_encodes_as_it_embeds(xr_run):
    """The SavedModel takes raw strings: tokeniser, encoder, TF-IDF and beam search in one graph, loaded by a
    process with only TensorFlow and tensorflow-text imported; `tfxc.encode` of the model directory and of the
    SavedModel writes the `embed` signature's raw embedding."""
    tmp, _, whole, _, saved = xr_run
    (tmp / "queries.json").write_text(json.dumps(QUERIES))
    proc = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(saved), str(tmp / "queries.json"),
                           str(tmp / "served.npy")], env=cli_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.splitlines()[-1])
    from tfxc._tf import tf
    from tfxc.model_dir import ModelDir

    ranker = ModelDir(str(whole)).restore().model
    scores, ids = ranker.top_k(ranker.encoder.preprocess({"text": tf.constant(QUERIES)}), 5)
    np.testing.assert_array_equal(served["ids"], ids.numpy())
    np.testing.assert_allclose(served["scores"], scores.numpy(), rtol=1e-4, atol=1e-5)
    embedding = np.load(tmp / "served.npy")
    assert embedding.shape == (len(QUERIES), 16)  # the BERT's width, neither TF-IDF nor normalised

    (tmp / "queries.txt").write_text("\n".join(QUERIES) + "\n", encoding="utf-8")
    for model, out in ((whole, "from_dir.npy"), (saved, "from_saved.npy")):
        result = run_cli("tfxc.encode", "-t", str(tmp / "queries.txt"), "-m", str(model), "-o", str(tmp / out),
                         "--batch-size", "3")
        assert f"wrote {len(QUERIES)} embeddings [{len(QUERIES)}, 16]" in result.stderr
        np.testing.assert_allclose(np.load(tmp / out), embedding, atol=1e-5, rtol=0)


@pytest.mark.slow(reason="SIGKILLs a tfxc.train process of its own at a level boundary")
def test_xr_transformer_run_resumes_after_a_kill_at_a_level_boundary(xr_run, tmp_path):
    _, config, whole, _, _ = xr_run
    killed = tmp_path / "killed"
    kill_after_first_level(config, killed)
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(killed), timeout=600)
    assert "XR level 1/2 (4 clusters): done already" in result.stderr
    # No time left is estimated from a level it skipped (it used to say "about 0s" after a resume).
    assert "the remaining levels about" not in result.stderr

    # The resumed run is the uninterrupted one: same levels, same ranker, same test metrics.
    for sub in ("levels/level-0", "levels/level-1", ""):
        assert_same_weights(checkpoint_weights(str(killed / sub)), checkpoint_weights(str(whole / sub)), atol=1e-6)
    metrics = json.loads((whole / "metrics.json").read_text())
    assert json.loads((killed / "metrics.json").read_text())["P@1"] == metrics["P@1"]


def test_only_encoder_stops_after_fine_tuning(xr_run, tmp_path):
    _, config, _, _, _ = xr_run
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"), "--set",
            "model.head.only_encoder=true", "--set", "model.head.max_steps=[2]", timeout=600)
    assert (tmp_path / "model" / "levels" / "level-1" / "level.json").exists()
    assert not (tmp_path / "model" / "checkpoints").exists()


def test_one_resolution_fine_tunes_the_finest_level_alone(xr_run, tmp_path):
    _, config, _, _, _ = xr_run
    model = tmp_path / "model"
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model), "--set",
                     "model.head.multi_resolution=false", "--set", "model.head.only_encoder=true", timeout=600)
    # The levels' 7 + 9 updates, on the 16 clusters of tree level 1 as the top of their own tree.
    assert "one resolution: the 16 clusters of tree level 1 alone, 16 steps" in result.stderr
    assert json.loads((model / "levels" / "level-0" / "level.json").read_text())["clusters"] == 16
    assert not (model / "levels" / "level-1").exists()


def test_level_counts_predictions_and_matching():
    tree = LabelTree(parents=(np.array([0, 0, 1, 1], np.int32), np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)),
                     top_size=2)
    y = scipy.sparse.csr_matrix(np.array([[1, 1, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0, 0]], np.int8))
    np.testing.assert_array_equal(level_counts(y, tree, 1).toarray(), [[2, 0, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(level_counts(y, tree, 0).toarray(), [[2, 1], [0, 1]])
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    kernel, bias = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]], np.float32), np.array([0.0, 0.0, 0.6], np.float32)
    # Scores: row 0 [1, 0, 1.1]; row 1 [0, 2, 1.1]; row 2 [1, 2, 1.6].
    np.testing.assert_array_equal(predicted_clusters(emb, kernel, bias, 2), [[2, 0], [1, 2], [1, 2]])
    np.testing.assert_array_equal(matching_matrix(np.array([[1, -1], [0, 0]], np.int32), 3).toarray(),
                                  [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("key, value, message", [
    ("bootstrap", '"linearish"', "is not one of"),
    ("max_steps", "[]", "max_steps must be >= 1"),
    ("tree_file", '"t.npz"', "builds its own trees"),
])
def test_bad_xr_settings_are_refused(tmp_path, key, value, message):
    from tfxc.config import load_config

    config = {"data": {"format": "synthetic", "dir": str(tmp_path / "d")},
              "model": {"encoder": {"name": "sparse_bow"}, "head": {"name": "xr_transformer"}}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    from tfxc.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_config(str(tmp_path / "c.json"), overrides=[f"model.head.{key}={value}"])


class _Held:
    """A stand-in for a restored model, its encoder or an array: only whether something still refers to it."""

    encoder = None


def _stage_fakes(monkeypatch, alive: dict):
    """Trainer, ModelDir and the level helpers replaced: a training records which of `alive`'s weak
    references still resolve when its loop starts."""
    import types

    from tfxc.heads import xr_level
    from tfxc.training import trainer
    from tfxc.xr import levels, pipeline

    class FakeTrainer:
        def __init__(self, *args, **kwargs):
            self.components = types.SimpleNamespace(model=_Held())

        def train(self):
            alive["at_train"] = {name: ref() is not None for name, ref in alive["refs"].items()}
            return {}

    monkeypatch.setattr(trainer, "Trainer", FakeTrainer)
    monkeypatch.setattr(pipeline, "copy_encoder", lambda *args: None)
    monkeypatch.setattr(pipeline, "level_config", lambda *args: None)
    monkeypatch.setattr(levels, "start_of_level", lambda *args: {})
    monkeypatch.setattr(xr_level, "read_start", lambda directory: {})
    monkeypatch.setattr(xr_level, "write_start", lambda directory, **arrays: None)
    return pipeline, levels


def test_a_stage_lets_go_of_what_it_copied_before_it_trains(tmp_path, monkeypatch):
    # What an earlier XR stage left and the next one copied would stay resident through its training.
    import contextlib
    import types
    import weakref

    alive = {}
    pipeline, levels = _stage_fakes(monkeypatch, alive)
    restored = _Held()
    alive["refs"] = {"previous level's model": weakref.ref(restored)}

    class FakeModelDir:
        def __init__(self, path):
            self.path = path

        def latest_checkpoint(self):
            return None

        def restore(self, need_rows=False):
            nonlocal restored
            model, restored = restored, None  # from here on only run_level refers to it
            return types.SimpleNamespace(model=model)

    monkeypatch.setattr(pipeline, "ModelDir", FakeModelDir)
    plan = types.SimpleNamespace(index=1, clusters=4, tree_level=1, steps=1, learning_rate=0.1)
    head = types.SimpleNamespace(do_fine_tune=True, only_encoder=False, ranker="sgd", sparse_support=256)
    config = types.SimpleNamespace(model=types.SimpleNamespace(head=head),
                                   runtime=types.SimpleNamespace(strategy="default"))
    pipeline.run_level(config, plan, 2, None, "", str(tmp_path / "level-0"), None, None, str(tmp_path))
    assert alive["at_train"] == {"previous level's model": False}

    # The ranker: the last level's encoder and its embeddings of the training rows, copied and cached.
    encoder, embeddings = _Held(), np.zeros((3, 2), np.float32)
    alive["refs"] = {"encoder": weakref.ref(encoder), "embeddings": weakref.ref(embeddings)}
    handed = [encoder, embeddings]
    monkeypatch.setattr(pipeline, "fine_tune", lambda *args: str(tmp_path / "level-1"))
    monkeypatch.setattr(levels.EmbeddingModel, "of", classmethod(lambda cls, *args: handed.pop(0)))
    monkeypatch.setattr(pipeline, "ranker_tree", lambda *args: (handed.pop(0), None))
    cached = []
    monkeypatch.setattr(pipeline, "frozen_encoder", lambda model: types.SimpleNamespace(
        cache_training_rows=lambda rows: cached.append(rows.copy())))
    del encoder, embeddings
    strategy = types.SimpleNamespace(scope=contextlib.nullcontext)
    pipeline.train_xr_transformer(config, str(tmp_path / "ranker"), None, strategy)
    assert len(cached) == 1 and alive["at_train"] == {"encoder": False, "embeddings": False}


def test_the_ranker_embedding_pass_is_kept_until_the_ranker_has_trained(tmp_path):
    """A run that fails between the embedding pass and the ranker's first checkpoint (an evaluation out of
    memory, a kill) reads the pass back instead of embedding the training rows again."""
    import scipy.sparse

    from tfxc.xr.pipeline import cached_embedding_pass

    path = str(tmp_path / "ranker_embeddings.npz")
    embeddings = np.arange(12, dtype=np.float32).reshape(4, 3)
    y = scipy.sparse.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]], np.int8))
    calls = []

    def embed():
        calls.append(1)
        return embeddings, y

    for _ in range(2):
        got, got_y = cached_embedding_pass(path, embed)
        np.testing.assert_array_equal(got, embeddings)
        assert got_y.shape == y.shape and (got_y != y).nnz == 0
    assert len(calls) == 1
