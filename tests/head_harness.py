"""The shared head test harness (in the spirit of keras-hub's `run_layer_test`).

`run_head_test(tmp_path, {"name": "my_head", ...})` checks the whole head
contract of `tfxc.heads.base.Head` on a tiny synthetic data set, so a new
head's test is a few lines:

In this process:
  * outputs are float32 with the batch first; `per_example_loss` is float32
    [B] and finite; gradients reach every trainable variable;
  * `top_k` returns float32 scores [B, k] in descending order and int64 ids
    [B, k] that are distinct and in range; k > L is clipped to L; top_k(L)
    ranks every label once, and top_k(k) is its prefix; `evaluation_top_k`
    agrees with `top_k`;
  * steps of Adam on one batch reduce the loss;
  * a checkpoint restored into a freshly built model gives the same top-k;
  * `get_config` reports every constructor argument, and `from_config` of it
    (with the weights copied) rebuilds a head with the same config, outputs,
    loss and top-k.
Through the CLIs, as a user runs them (their `main`, called in this process by
`helpers.run_cli`; the Mirrored run in a process of its own, whose CPU is split
before TensorFlow starts):
  * `tfxc.train` trains it (default strategy) and `tfxc.evaluate` reports the
    same metrics as training did;
  * `tfxc.export` writes a SavedModel and `tfxc.predict` (which loads it from
    disk) gives the restored model's top-k;
  * MirroredStrategy on 2 logical CPUs reaches the single-process weights.
"""

from __future__ import annotations

import json
import os

import numpy as np
from helpers import (REPO, assert_same_weights, check_checkpoint_round_trip, check_training_on_one_batch,
                     checkpoint_weights, run_cli, train_and_check_evaluate)

from tfxc._tf import tf

# Why the harness runs for a few heads by default: the whole of it takes 10-30 s a head.
HARNESS_TIME = ("time: the whole head harness (CLI train, evaluate, export, predict, a Mirrored run); the default "
                "suite runs it for softmax and the label tree")

K = 5
# The harness's default encoder with the segment-sum bag, whose rows are bit-identical in any batch split
# (the dense bag's product is not). For heads whose loss is discontinuous in the features (ArcFace's target
# logit jumps where θ + m passes π, insightface's fallback branch): one ulp can move a row across the jump
# and the Mirrored parity check apart.
EXACT_BAG_ENCODER = {"name": "sparse_bow", "embedding_dim": 16, "hidden_units": [16], "bag": "sparse"}


def head_config(tmp_path, head: dict, *, encoder: dict | None = None, loss: dict | None = None,
                multiclass: bool = False, imports=(), num_labels: int = 40) -> str:
    """Writes a tiny synthetic config with `head` (multi-label, or one label per row) and returns its path."""
    config = {
        "imports": list(imports),
        "data": {"format": "synthetic", "dir": str(tmp_path / "data"), "num_shards": 2,
                 "synthetic": {"num_train": 1024, "num_test": 192, "num_features": 300, "num_labels": num_labels,
                               "features_per_label": 10, "features_per_point": 15, "seed": 3,
                               "labels_per_point": 1.0 if multiclass else 3.0}},
        # No dropout: masks are drawn per replica, which would break the Mirrored parity check.
        "model": {"encoder": encoder or {"name": "sparse_bow", "embedding_dim": 16, "hidden_units": [16]},
                  "head": head},
        "loss": loss or {"name": "head"},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "trainer": {"global_batch_size": 64, "train_steps": 24, "steps_per_loop": 4, "log_every_steps": 8,
                    "checkpoint_every_steps": 8},
        "runtime": {"seed": 7},
        "export": {"top_k": K},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def run_head_test(tmp_path, head: dict, *, encoder: dict | None = None, loss: dict | None = None,
                  multiclass: bool = False, imports=(), import_path: str | None = None,
                  mirrored_atol: float = 2e-5) -> None:
    """Checks the head contract (see the module docstring); raises AssertionError on the first failure.

    Args:
      tmp_path: a fresh directory.
      head: the `model.head` config, e.g. {"name": "mach", "num_buckets": 8, "num_repetitions": 2}.
      encoder: the `model.encoder` config (default: a 16-wide sparse bag of words).
      loss: the `loss` config (default: the head's own loss).
      multiclass: one label per row (for softmax-style heads and sampled objectives).
      imports: the config's `imports`, for heads registered outside tfxc.
      import_path: a directory the CLIs need on PYTHONPATH (sys.path in this process) for `imports`.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = head_config(tmp_path, head, encoder=encoder, loss=loss, multiclass=multiclass, imports=imports)
    env = {"PYTHONPATH": os.pathsep.join(p for p in (import_path, REPO, os.environ.get("PYTHONPATH")) if p),
           "TFXC_TRUSTED_IMPORTS": ",".join(imports)}  # the model dirs the CLIs read are the test's own
    batch = check_in_process(config_path, tmp_path)
    check_end_to_end(config_path, tmp_path, batch, env, mirrored_atol)


def check_in_process(config_path: str, tmp_path):
    """The in-process checks; returns the test batch they used (for the end-to-end checks)."""
    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.model import build_model

    config = load_config(config_path)
    info = ensure_converted(config.data)
    num_labels = info.num_labels
    model = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed))
    batch = next(iter(eval_dataset(info.files("test"), 32)))
    rows = int(batch["labels"].nrows())

    # Shapes and dtypes.
    for output in tf.nest.flatten(model(batch)):
        assert output.dtype == tf.float32 and output.shape[0] == rows, output
    loss = model.per_example_loss(batch, training=True)
    assert loss.dtype == tf.float32 and loss.shape == (rows,), loss
    assert np.all(np.isfinite(loss.numpy())), loss

    # top_k: order, range, clipping, consistency.
    scores, ids = model.top_k(batch, K)
    assert scores.dtype == tf.float32 and ids.dtype == tf.int64
    assert scores.shape == (rows, K) and ids.shape == (rows, K)
    scores, ids = scores.numpy(), ids.numpy()
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores must be best first"
    assert np.all((ids >= 0) & (ids < num_labels)) and all(len(set(r)) == K for r in ids)
    all_scores, all_ids = (t.numpy() for t in model.top_k(batch, num_labels + 7))
    assert all_ids.shape == (rows, num_labels), "k > L must be clipped to L"
    assert all(sorted(r) == list(range(num_labels)) for r in all_ids), "top_k(L) must rank every label once"
    np.testing.assert_allclose(all_scores[:, :K], scores, rtol=1e-5, atol=1e-6)
    agree = all_ids[:, :K] == ids
    assert agree.mean() > 0.95, "top_k(k) must be the prefix of top_k(L) (ids may differ only at ties)"
    eval_scores, eval_ids = model.head.evaluation_top_k(model, K)(batch)
    np.testing.assert_allclose(eval_scores, scores, rtol=1e-4, atol=1e-5)
    assert (eval_ids == ids).mean() > 0.95

    # Gradients reach every variable, and training on one batch reduces the loss.
    check_training_on_one_batch(model, batch, config.optimizer, steps=30)

    # Checkpoint round trip into a freshly built (differently initialised) model.
    fresh = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed + 1))
    check_checkpoint_round_trip(model, fresh, batch, K, tmp_path / "harness-ckpt")

    check_config_round_trip(model.head, model.encoder(batch), batch["labels"])
    return batch


def constructor_arguments(cls) -> set[str]:
    """The named arguments of the constructors of `cls` and of its head bases that it reaches through **kwargs
    (not `Head`'s own: a head may derive num_labels from another argument, as the label tree does)."""
    import inspect

    from tfxc.heads.base import Head

    names = set()
    for klass in cls.__mro__:
        if klass is Head or not issubclass(klass, Head):
            break
        if "__init__" in vars(klass):
            parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
            names |= {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
            if not any(p.kind == p.VAR_KEYWORD for p in parameters):
                break
    return names


def same_config(a, b) -> bool:
    """Deep equality of get_config values: dicts, sequences, NumPy arrays; other objects by identity or ==."""
    if a is b:
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_config(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(same_config, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return type(a) is type(b) and a == b


def check_config_round_trip(head, features, labels) -> None:
    """`type(head).from_config(head.get_config())`, given the head's weights, is the same head (Keras's
    contract: the config rebuilds the layer, the weights fill it); features as the head is called on."""
    name = type(head).__name__
    config = head.get_config()
    missing = constructor_arguments(type(head)) - set(config)
    assert not missing, f"{name}.get_config() leaves out constructor argument(s) {sorted(missing)}"
    rebuilt = type(head).from_config(config)
    rebuilt(features)  # builds it
    rebuilt.set_weights(head.get_weights())
    assert same_config(rebuilt.get_config(), config), f"{name}.from_config(config).get_config() != config"
    outputs = head(features)
    for got, want in zip(tf.nest.flatten(rebuilt(features)), tf.nest.flatten(outputs)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6, err_msg=f"{name} outputs")
    np.testing.assert_allclose(rebuilt.per_example_loss(rebuilt(features), labels).numpy(),
                               head.per_example_loss(outputs, labels).numpy(), rtol=1e-5, atol=1e-6,
                               err_msg=f"{name} loss")
    for got, want in zip(rebuilt.top_k(features, K), head.top_k(features, K)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"{name} top_k")


def check_end_to_end(config_path: str, tmp_path, batch, env: dict, mirrored_atol: float) -> None:
    """Train, evaluate, export and predict through the CLIs; Mirrored parity (in a process of its own)."""
    from tfxc.model_dir import ModelDir

    model_dir = tmp_path / "model"
    evaluated = train_and_check_evaluate(config_path, model_dir, env=env)
    assert 0 < evaluated["P@1"] <= 100

    # The SavedModel, loaded from disk by tfxc.predict, ranks as the restored model does.
    saved = tmp_path / "saved_model"
    run_cli("tfxc.export", "--model-dir", str(model_dir), "--out", str(saved), env=env)
    inputs = tmp_path / "inputs.txt"
    idx, val = batch["feat_idx"].to_list(), batch["feat_val"].to_list()
    inputs.write_text("".join(" " + " ".join(f"{i}:{v!r}" for i, v in zip(ri, rv)) + "\n" for ri, rv in zip(idx, val)))
    predictions = tmp_path / "predictions.jsonl"
    run_cli("tfxc.predict", "--model", str(saved), "--input", str(inputs), "--output", str(predictions),
            env=env)
    served = [json.loads(line) for line in predictions.read_text().splitlines()]
    scores, ids = ModelDir(str(model_dir)).restore().model.top_k(batch, K)
    np.testing.assert_allclose([p["scores"] for p in served], scores.numpy(), rtol=1e-4, atol=1e-5)
    assert (np.array([p["label_ids"] for p in served]) == ids.numpy()).mean() > 0.95

    # MirroredStrategy on 2 logical CPUs trains to the same weights.
    mirrored = tmp_path / "mirrored"
    result = run_cli("tfxc.train", "--config", config_path, "--model-dir", str(mirrored),
                     "--set", "runtime.strategy=mirrored", "--set", "runtime.cpu_replicas=2", env=env)
    assert "2 replica(s)" in result.stderr
    assert_same_weights(checkpoint_weights(str(mirrored)), checkpoint_weights(str(model_dir)), atol=mirrored_atol)
