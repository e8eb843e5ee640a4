"""The shared text-encoder test harness: `run_text_encoder_test(tmp_path, shared_data, {"name": ...})`.

On a small slice of banking77 (raw JSONL text, 77 intents), it checks the contract of a
text encoder (`tfxc.encoders.base.Encoder` with `input_kind == "text"`):

In this process:
  * `tokenize` gives the same tensors eagerly and inside `tf.data` (where training runs it);
  * the output is float32 [B, output_dim]; a text encodes the same alone and next to a much
    longer one (padding changes nothing);
  * gradients reach every trainable variable, row-sparse (IndexedSlices) for the
    `sparse_variables`; Adam steps on one batch reduce the loss;
  * a checkpoint restored into a freshly built model gives the same top-k.
Through the CLIs (their `main`, called in this process by `helpers.run_cli`) and in fresh processes:
  * `tfxc.train` trains it and `tfxc.evaluate` reports the same metrics;
  * the exported SavedModel, loaded with only tensorflow-text imported, tokenises the raw
    strings to the same ids as training's tf.data and ranks them as the restored model does,
    and `tfxc.predict` on a JSONL file of raw text gives that top-k too;
  * MirroredStrategy on 2 logical CPUs (a process of its own) reaches the single-process weights.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from helpers import (REPO, assert_same_weights, check_checkpoint_round_trip, check_training_on_one_batch,
                     checkpoint_weights, cli_env, run_cli, text_data, train_and_check_evaluate)

from tfxc._tf import tf

K = 5
# Why most encoders run end to end only with --run-slow.
END_TO_END_TIME = ("time: an encoder end to end (CLI, strings served in a fresh process, a Mirrored run); by default "
                   "the backbone families train and serve strings and test_text_serving.py serves every encoder")
LONG_TEXT = " ".join(["please tell me why my transfer to another account has not arrived yet"] * 6)


def text_config(tmp_path, shared_data, encoder: dict, head: dict | None = None, **sections) -> str:
    config = {
        "data": text_data(tmp_path, shared_data),
        # No dropout in the encoders tested here: masks are drawn per replica (Mirrored parity).
        "model": {"encoder": encoder, "head": head or {"name": "softmax"}},
        "optimizer": {"name": "adam", "learning_rate": 0.005},
        "trainer": {"global_batch_size": 32, "train_steps": 40, "steps_per_loop": 10, "log_every_steps": 20,
                    "checkpoint_every_steps": 20},
        "runtime": {"seed": 5},
        "export": {"top_k": K},
        **sections,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def run_text_encoder_test(tmp_path, shared_data, encoder: dict, *, mirrored_atol: float = 2e-5,
                          sparse_embeddings: bool = True, mirrored_skip: tuple[str, ...] = (),
                          tool_checks: bool = False, head: dict | None = None) -> None:
    """Runs the checks of the module docstring on `encoder` (a `model.encoder` config).

    Args:
      sparse_embeddings: the encoder lists its embedding table in `sparse_variables` (a
        pretrained backbone keeps its tables dense, updated by the plain optimizer).
      mirrored_skip: substrings of variable paths left out of the Mirrored comparison: only
        for variables whose true gradient is zero, so that Adam amplifies float noise (the
        attention keys' bias: softmax ignores a shift shared by all keys).
      head: the `model.head` config (default: softmax).
      tool_checks: also check `tfxc.evaluate --bad-cases` and `tfxc.predict --interactive` on the
        trained model (the tools do not depend on the encoder: one encoder's test runs them).
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = text_config(tmp_path, shared_data, encoder, head)
    texts = check_in_process(config_path, tmp_path, sparse_embeddings)
    check_end_to_end(config_path, tmp_path, texts, mirrored_atol, mirrored_skip)
    if tool_checks:
        check_tools(tmp_path, texts)


def _numpy(tensors: dict) -> dict:
    out = {}
    for name, value in tensors.items():
        if isinstance(value, tf.RaggedTensor):
            out[name + "_values"], out[name + "_row_splits"] = value.flat_values.numpy(), value.row_splits.numpy()
        else:
            out[name] = value.numpy()
    return out


def first_test_texts(info) -> list[str]:
    """The raw texts of the first 32 test rows of the converted data `info`."""
    from tfxc.data.tfrecord import parse_batch

    raw = next(iter(tf.data.TFRecordDataset(info.files("test")).batch(32).map(parse_batch)))
    return [t.decode("utf-8") for t in raw["text"].numpy()]


def check_in_process(config_path: str, tmp_path, sparse_embeddings: bool = True) -> list[str]:
    """The in-process checks; returns the test texts they used."""
    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.model import build_model

    config = load_config(config_path)
    info = ensure_converted(config.data)
    model = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed))
    encoder = model.encoder
    assert encoder.input_kind == "text"
    texts = first_test_texts(info)
    batch = next(iter(eval_dataset(info.files("test"), 32, preprocess=encoder.preprocess)))
    assert "text" not in batch, "preprocess must replace the raw text by its tokens"

    # Tokenisation: eager == tf.data.
    eager = _numpy(encoder.tokenize(tf.constant(texts)))
    in_pipeline = _numpy({name: batch[name] for name in encoder.tokenize(tf.constant(texts[:1]))})
    assert eager.keys() == in_pipeline.keys()
    for name in eager:
        np.testing.assert_array_equal(eager[name], in_pipeline[name], err_msg=name)

    # Output shape, dtype; padding invariance.
    features = encoder(batch)
    assert features.dtype == tf.float32 and features.shape == (len(texts), encoder.output_dim), features.shape
    alone = np.concatenate([encoder(encoder.tokenize(tf.constant([t]))).numpy() for t in texts[:4]])
    padded = encoder(encoder.tokenize(tf.constant(texts[:4] + [LONG_TEXT])))[:4]
    np.testing.assert_allclose(alone, padded.numpy(), rtol=1e-4, atol=1e-5)

    # Gradients (row-sparse for the embedding tables), and training on one batch reduces the loss.
    sparse = {id(v) for v in model.encoder.sparse_variables}
    assert bool(sparse) == sparse_embeddings, "the embedding table should be updated row-sparsely"
    grads = check_training_on_one_batch(model, batch, config.optimizer, steps=20)
    for v, g in zip(model.trainable_variables, grads):
        if id(v) in sparse:
            assert isinstance(g, tf.IndexedSlices), f"{v.path}: expected a row-sparse gradient"

    # Checkpoint round trip into a freshly built (differently initialised) model.
    fresh = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed + 1))
    check_checkpoint_round_trip(model, fresh, batch, K, tmp_path / "harness-ckpt")
    return texts


# Loads SavedModels with only tensorflow-text imported (no tfxc, no keras-hub), as a server would: argv holds
# pairs of (SavedModel dir, JSON file of texts); prints one JSON line per model.
SERVE_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401
for path, texts_file in zip(sys.argv[1::2], sys.argv[2::2]):
    texts = json.load(open(texts_file))
    m = tf.saved_model.load(path)
    tokens = m.signatures["tokenize"](text=tf.constant(texts))
    top = m.signatures["serving_default"](text=tf.constant(texts))
    emb = m.signatures["embed"](text=tf.constant(texts))["embedding"]
    print(json.dumps({"tokens": {k: v.numpy().astype(np.int64).tolist() for k, v in tokens.items()},
                      "label_ids": top["label_ids"].numpy().tolist(), "scores": top["scores"].numpy().tolist(),
                      "embedding_shape": list(emb.shape)}))
"""


def train_and_export(config_path: str, tmp_path, texts: list[str], evaluate: bool = True) -> None:
    """`tfxc.train` (with `tfxc.evaluate` reporting its metrics, unless `evaluate` is false) into tmp_path/model,
    `tfxc.export` to tmp_path/saved_model, and `texts` written to tmp_path/texts.json for
    `serve_in_a_fresh_process`."""
    if evaluate:
        train_and_check_evaluate(config_path, tmp_path / "model")
    else:
        run_cli("tfxc.train", "--config", config_path, "--model-dir", str(tmp_path / "model"))
        assert 0 < json.loads((tmp_path / "model" / "metrics.json").read_text())["P@1"] <= 100
    run_cli("tfxc.export", "--model-dir", str(tmp_path / "model"), "--out", str(tmp_path / "saved_model"))
    (tmp_path / "texts.json").write_text(json.dumps(texts))


def serve_in_a_fresh_process(runs: list) -> list[dict]:
    """SERVE_SCRIPT's answer for each directory of `runs` (laid out by `train_and_export`), from one process
    with only TensorFlow and tensorflow-text imported."""
    args = [str(path) for run in runs for path in (run / "saved_model", run / "texts.json")]
    proc = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, *args], cwd=str(runs[0]),
                          env={k: v for k, v in cli_env().items() if k != "PYTHONPATH"},
                          capture_output=True, text=True, timeout=240 + 60 * len(runs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == len(runs), proc.stdout[-3000:]
    return answers


def check_served(tmp_path, texts: list[str], served: dict) -> None:
    """The fresh process's answer `served` tokenises as the restored model does and ranks as it does; so does
    `tfxc.predict` on a JSONL file of the raw texts."""
    from tfxc.model_dir import ModelDir

    restored = ModelDir(str(tmp_path / "model")).restore().model
    tokens = _numpy(restored.encoder.tokenize(tf.constant(texts)))
    assert served["tokens"].keys() == tokens.keys()
    for name, value in tokens.items():
        np.testing.assert_array_equal(np.asarray(served["tokens"][name]), value.astype(np.int64), err_msg=name)
    scores, ids = restored.top_k(restored.encoder.tokenize(tf.constant(texts)), K)
    np.testing.assert_allclose(served["scores"], scores.numpy(), rtol=1e-4, atol=1e-5)
    assert (np.array(served["label_ids"]) == ids.numpy()).mean() > 0.95
    # The embedding is the encoder's own, without the raw sparse block a head with a sparse term reads.
    assert served["embedding_shape"] == [len(texts), restored.encoder.output_dim
                                         - 2 * getattr(restored.head, "sparse_max_nnz", 0)]

    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run_cli("tfxc.predict", "--model", str(tmp_path / "saved_model"), "--input", str(queries), "--output",
            str(tmp_path / "predictions.jsonl"))
    predicted = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [p["label_ids"] for p in predicted] == served["label_ids"]


def check_end_to_end(config_path: str, tmp_path, texts: list[str], mirrored_atol: float | None,
                     mirrored_skip: tuple[str, ...] = ()) -> None:
    """Trains, evaluates, exports and predicts through the CLIs, serves in a fresh process with only TF and
    tensorflow-text; mirrored_atol=None skips the Mirrored run."""
    train_and_export(config_path, tmp_path, texts)
    (served,) = serve_in_a_fresh_process([tmp_path])
    check_served(tmp_path, texts, served)
    if mirrored_atol is None:
        return
    model_dir, mirrored = tmp_path / "model", tmp_path / "mirrored"
    result = run_cli("tfxc.train", "--config", config_path, "--model-dir", str(mirrored),
                     "--set", "runtime.strategy=mirrored", "--set", "runtime.cpu_replicas=2")
    assert "2 replica(s)" in result.stderr
    def compared(weights: dict) -> dict:
        return {name: value for name, value in weights.items() if not any(s in name for s in mirrored_skip)}

    assert_same_weights(compared(checkpoint_weights(str(mirrored))), compared(checkpoint_weights(str(model_dir))),
                        atol=mirrored_atol)


def check_tools(tmp_path, texts: list[str]) -> None:
    """The bad-case report agrees with Acc@1; the interactive prompt prints the SavedModel's top-k."""
    model_dir, saved = tmp_path / "model", tmp_path / "saved_model"
    report = tmp_path / "bad.jsonl"
    result = run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json", "--bad-cases", str(report))
    metrics = json.loads(result.stdout.splitlines()[-1])
    cases = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(cases) == round(metrics["num_points"] * (1 - metrics["Acc@1"] / 100))
    assert all(c["predicted"][0] not in c["labels"] and c["text"] for c in cases)
    assert "most frequent confusions" in result.stderr

    proc = subprocess.run([sys.executable, "-m", "tfxc.predict", "--model", str(saved), "--interactive",
                           "--top-k", "2"], input=texts[0] + "\n" + texts[1] + "\n\n", cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads((tmp_path / "predictions.jsonl").read_text().splitlines()[0])
    first = [line.split()[-1] for line in proc.stdout.splitlines() if line.strip()][:2]
    assert first == served["labels"][:2], (proc.stdout, served)
