"""The image encoder: keras-hub vision families, its augmentations, and digit scans trained from pixels, served
from a SavedModel whose signatures take encoded images."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, cli_env, digit_images, huge_png, run_cli, tiny_vision_preset
from tfxc._tf import tf
from tfxc.build_context import BuildContext
from tfxc.encoders import ENCODERS
from tfxc.encoders.image import ImageEncoder, ImageEncoderConfig
from tfxc.errors import ConfigError, DataError
from tfxc.images.backbones import VisionFeatures, load_vision_backbone


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {family: tiny_vision_preset(family, root / family, image_size=16) for family in
            ("resnet", "vit", "dinov2", "clip")}


@pytest.fixture(scope="module")
def digits():
    return digit_images(size=16)


def encoded(digits, n):
    return tf.constant([data for data, _ in digits[:n]])


@pytest.mark.parametrize("family,pooling,dim", [("resnet", "avg", 16), ("resnet", "max", 16), ("vit", "cls", 16),
                                                ("vit", "avg", 16), ("dinov2", "cls", 16), ("dinov2", "avg", 16),
                                                ("clip", "embedding", 16)])
def test_every_family_pools_to_its_width(presets, digits, family, pooling, dim):
    encoder = ImageEncoder(presets[family], pooling=pooling, augment=())
    h = encoder(encoder.decode_images(encoded(digits, 5)))
    assert h.shape == (5, dim) == (5, encoder.output_dim) and h.dtype == tf.float32
    assert np.isfinite(h.numpy()).all() and np.std(h.numpy(), axis=0).max() > 0  # images differ, so do features


def test_dinov2_avg_pools_the_patch_tokens_only(presets, digits):
    backbone = load_vision_backbone(presets["dinov2"])
    features = VisionFeatures(backbone, "avg")
    images = ImageEncoder(presets["dinov2"]).decode_images(encoded(digits, 3))["images"]
    tokens = backbone({"images": images}).numpy()
    assert features.skip == 3  # the class token and the preset's two registers
    np.testing.assert_allclose(features(images).numpy(), tokens[:, 3:].mean(axis=1), rtol=1e-5, atol=1e-6)


def test_pooling_that_does_not_fit_the_backbone_is_refused(presets):
    with pytest.raises(ConfigError, match="pooling 'cls' does not apply to ResNetBackbone, which returns a feature "
                                          "map: use avg or max"):
        ImageEncoder(presets["resnet"], pooling="cls")
    with pytest.raises(ConfigError, match="not a local directory"):
        ImageEncoder("/no/such/preset")
    with pytest.raises(ConfigError, match="crop and resized_crop"):
        ImageEncoderConfig(preset="p", augment=("crop", "resized_crop")).validate("model.encoder")
    with pytest.raises(ConfigError, match=r"model.encoder.max_pixels \(0\) must be an integer >= 1"):
        ImageEncoderConfig(preset="p", max_pixels=0).validate("model.encoder")


def test_crop_is_a_padded_window_and_flip_a_mirror(presets):
    encoder = ImageEncoder(presets["resnet"], augment=("crop",), crop_padding=2, seed=3)
    images = tf.random.stateless_uniform([64, 16, 16, 3], [1, 2])
    out = encoder.augmented(images).numpy()
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = set()
    for i in range(64):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(out[i], padded[i, dy:dy + 16, dx:dx + 16])]
        assert found, i
        offsets.add(found[0])
    assert len(offsets) > 10  # each image its own offset
    flipper = ImageEncoder(presets["resnet"], augment=("flip",), seed=3)
    flipped = flipper.augmented(images).numpy()
    mirrored = [np.array_equal(flipped[i], images.numpy()[i, :, ::-1]) for i in range(64)]
    kept = [np.array_equal(flipped[i], images.numpy()[i]) for i in range(64)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 16 < sum(mirrored) < 48


def test_resized_crop_keeps_the_size_and_the_draws_resume_from_a_checkpoint(presets, tmp_path):
    images = tf.random.stateless_uniform([8, 16, 16, 3], [3, 4])
    encoder = ImageEncoder(presets["resnet"], augment=("resized_crop", "flip"), seed=5)
    encoder.augmented(images)
    path = tf.train.Checkpoint(encoder=encoder).write(str(tmp_path / "ckpt"))
    expected = [encoder.augmented(images).numpy() for _ in range(2)]
    assert expected[0].shape == (8, 16, 16, 3) and not np.allclose(expected[0], expected[1])
    restored = ImageEncoder(presets["resnet"], augment=("resized_crop", "flip"), seed=5)
    restored.augmented(images)  # a draw the checkpoint's state overwrites
    tf.train.Checkpoint(encoder=restored).read(path).expect_partial()
    for want in expected:
        np.testing.assert_array_equal(restored.augmented(images).numpy(), want)


def test_frozen_backbone_trains_only_the_embedding_on_top(presets, digits):
    config = ImageEncoderConfig(preset=presets["resnet"], trainable=False, embedding_dim=8, dropout=0.1)
    encoder = ENCODERS.build(config, BuildContext(num_features=0, num_labels=10, seed=1))
    batch = encoder.decode_images(encoded(digits, 4))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(batch, training=True) ** 2)
    grads = tape.gradient(loss, encoder.trainable_variables)
    backbone = {id(w) for w in encoder.features.backbone.weights}
    assert encoder.output_dim == 8 and all(g is not None for g in grads)
    assert encoder.trainable_variables and not any(id(v) in backbone for v in encoder.trainable_variables)


def write_digit_folders(root, digits):
    for i, (data, label) in enumerate(digits):
        split = "test" if i % 5 == 0 else "train"
        os.makedirs(root / split / f"digit{label}", exist_ok=True)
        (root / split / f"digit{label}" / f"{i:04d}.png").write_bytes(data)


@pytest.mark.slow(reason=(
    'time: an image encoder fine-tuned on 1,797 digits (test_face_verification.py serves images by default)'))
def test_digits_from_pixels_under_mhp_served_from_images(tmp_path, presets, digits):
    """load_digits end to end: the images format, the image encoder fine-tuned under an MHP head, a SavedModel
    of encoded images reloaded in a fresh process that ranks as the model directory does."""
    write_digit_folders(tmp_path / "digits", digits)
    config = {"data": {"format": "images", "train": str(tmp_path / "digits" / "train"),
                       "test": str(tmp_path / "digits" / "test"), "dir": str(tmp_path / "data"), "val_percent": 10},
              "model": {"encoder": {"name": "image", "preset": presets["resnet"], "augment": ["crop", "flip"],
                                    "crop_padding": 2},
                        "head": {"name": "mhp", "num_classes": [5, 2]}},
              "optimizer": {"name": "adam", "learning_rate": 0.003},
              "trainer": {"global_batch_size": 64, "epochs": 6, "steps_per_loop": 20, "log_every_steps": 40}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model_dir, export_dir = str(tmp_path / "model"), str(tmp_path / "export")
    run = run_cli("tfxc.train", "--config", str(tmp_path / "config.json"), "--model-dir", model_dir, timeout=600)
    test_line = [line for line in run.stdout.splitlines() if line.startswith("test:")][-1]
    assert float(test_line.split("P@1 ")[1].split()[0]) > 50.0, test_line  # chance: 10
    run_cli("tfxc.export", "--model-dir", model_dir, "--out", export_dir, timeout=300)
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(tmp_path / "digits" / "test") for f in files)[:12]
    script = f"""
import json, tensorflow as tf
m = tf.saved_model.load({export_dir!r})
images = [open(p, "rb").read() for p in {paths!r}]
out = m.signatures["top_k"](image=tf.constant(images), k=tf.constant(3))
empty = m.signatures["embed"](image=tf.constant([], tf.string))["embedding"]
print(json.dumps({{"ids": out["label_ids"].numpy().tolist(), "scores": out["scores"].numpy().tolist(),
                  "inputs": sorted(m.signatures["serving_default"].structured_input_signature[1]),
                  "empty": list(empty.shape)}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], env=cli_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["inputs"] == ["image"] and served["empty"] == [0, 16]
    import tfxc

    local = tfxc.load(model_dir).predict(paths, k=3)
    # Images it cannot use: one DataError naming each row and why, from the SavedModel as from the directory.
    for path in (export_dir, model_dir):
        with pytest.raises(DataError, match=r"answered .*: X\[1\]: empty \(0 bytes\); X\[2\]: a PNG of 20000x20000 = "
                                            r"400000000 pixels, over the budget of 89478485 pixels "
                                            r"\(model.encoder.max_pixels\)$"):
            tfxc.load(path).predict([open(paths[0], "rb").read(), b"", huge_png()], k=3)
    np.testing.assert_array_equal(np.array(served["ids"]), local.ids)
    np.testing.assert_allclose(np.array(served["scores"]), local.scores, rtol=1e-4, atol=1e-5)
    # A REST body carries the image bytes in base64 ({"b64": ...}), as TF Serving reads it.
    from tfxc.export.rest import answer

    body = {"signature_name": "top_k", "inputs": {
        "image": [{"b64": base64.b64encode(open(p, "rb").read()).decode()} for p in paths], "k": 3}}
    np.testing.assert_array_equal(np.array(answer(export_dir, json.dumps(body))["outputs"]["label_ids"]), local.ids)
    # tfxc.predict reads a folder of images (or a list of paths) through the same signatures.
    listing = tmp_path / "queries.txt"
    listing.write_text("".join(os.path.relpath(p, tmp_path) + "\n" for p in paths))
    run_cli("tfxc.predict", "--model", export_dir, "--input", str(listing), "--output",
            str(tmp_path / "out.jsonl"), "--top-k", "3", "--batch-size", "5")
    predicted = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert [r["ref"] for r in predicted] == [os.path.relpath(p, tmp_path) for p in paths]
    assert [r["label_ids"] for r in predicted] == local.ids.tolist()
    # An image it cannot use is named by its ref, in one line.
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "bad.txt").write_text("".join(os.path.relpath(p, tmp_path) + "\n" for p in paths[:3]) + "empty.png\n")
    failed = run_cli("tfxc.predict", "--model", export_dir, "--input", str(tmp_path / "bad.txt"), "--output",
                     str(tmp_path / "bad.jsonl"), check=False)
    assert failed.returncode == 2 and failed.stderr.strip().splitlines()[-1].endswith(
        "answered (a call answers every row or none): empty.png: empty (0 bytes)"), failed.stderr[-2000:]
    # tfxc.encode writes the embeddings of a list of image paths, as the SavedModel's embed gives them.
    run_cli("tfxc.encode", "--text-path", str(listing), "--model-dir", export_dir, "--save-emb-path",
            str(tmp_path / "emb.npy"))
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), tfxc.load(model_dir).encode(paths), rtol=1e-4, atol=1e-5)


@pytest.mark.slow(reason="time: the image encoder trained on 1,797 digits on two Mirrored replicas")
def test_digits_train_on_two_mirrored_replicas(tmp_path, presets, digits):
    """The image encoder under MirroredStrategy: batch norm keeps per-replica batch statistics (insightface's
    DDP does too), so the weights are not those of one replica; the run trains as well."""
    write_digit_folders(tmp_path / "digits", digits)
    config = {"data": {"format": "images", "train": str(tmp_path / "digits" / "train"),
                       "test": str(tmp_path / "digits" / "test"), "dir": str(tmp_path / "data")},
              "model": {"encoder": {"name": "image", "preset": presets["resnet"], "augment": ["crop", "flip"]},
                        "head": {"name": "softmax"}},
              "optimizer": {"name": "adam", "learning_rate": 0.003},
              "trainer": {"global_batch_size": 64, "epochs": 6, "steps_per_loop": 20},
              "runtime": {"strategy": "mirrored", "cpu_replicas": 2}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = run_cli("tfxc.train", "--config", str(tmp_path / "config.json"), "--model-dir", str(tmp_path / "m"),
                  timeout=600)
    assert "2 replica(s)" in run.stderr
    test_line = [line for line in run.stdout.splitlines() if line.startswith("test:")][-1]
    assert float(test_line.split("P@1 ")[1].split()[0]) > 50.0, test_line


def test_the_memory_plan_counts_the_backbone_activations(presets):
    """A training step keeps every layer's output for the gradient: the count grows with the image's area for
    a convolutional backbone (counted on a copy built for the size). In bfloat16 the outputs halve, but each
    batch normalisation keeps a float32 copy of its input besides: more than half of float32's bytes."""
    from tfxc.images.backbones import activation_bytes

    backbone = load_vision_backbone(presets["resnet"])
    small, _ = activation_bytes(backbone, (16, 16))
    large, largest = activation_bytes(backbone, (32, 32))
    # A conv net's maps scale with the area (the stem's zero padding adds a fixed border, hence not exactly 4).
    assert 3.5 * small < large < 4.0 * small and 0 < largest < large
    encoder = ImageEncoder(presets["resnet"], image_size=32)
    assert encoder.memory_step_bytes(10) == 10 * large
    assert encoder.memory_step_bytes(10, training=False) == 10 * 3 * largest
    assert encoder.memory_input_bytes() == 32 * 32 * 3 * 4
    half = ImageEncoder(presets["resnet"], image_size=32, mixed_bfloat16=True)
    assert encoder.memory_step_bytes(10) // 2 < half.memory_step_bytes(10) < encoder.memory_step_bytes(10)
    assert half.memory_step_bytes(10, training=False) == encoder.memory_step_bytes(10, training=False) // 2
    frozen = ImageEncoder(presets["resnet"], image_size=32, trainable=False)
    assert frozen.memory_step_bytes(10) == frozen.memory_step_bytes(10, training=False)


def test_the_shared_checks_train_on_one_batch_and_round_trip_a_checkpoint(presets, digits, tmp_path):
    """The checks every encoder and head passes (tests/helpers.py): gradients reach every trainable variable,
    steps on one batch reduce the loss, and a checkpoint restored into a differently seeded model ranks alike."""
    from helpers import check_checkpoint_round_trip, check_training_on_one_batch
    from tfxc.config import load_config
    from tfxc.model import build_model

    config = load_config(None, ['data.format="tfrecord"', 'data.dir="unused"', 'model.encoder.name="image"',
                                f'model.encoder.preset="{presets["resnet"]}"', "model.encoder.embedding_dim=8",
                                'model.head.name="mhp"', "model.head.num_classes=[5,2]",
                                'optimizer.name="adam"', "optimizer.learning_rate=0.01"])
    model = build_model(config.model, BuildContext(num_features=0, num_labels=10, seed=1))
    batch = model.encoder.preprocess({"image": encoded(digits, 16),
                                      "labels": tf.RaggedTensor.from_row_lengths(
                                          tf.constant([label for _, label in digits[:16]], tf.int64),
                                          tf.ones([16], tf.int64))})
    check_training_on_one_batch(model, batch, config.optimizer, steps=20)
    fresh = build_model(config.model, BuildContext(num_features=0, num_labels=10, seed=2))
    check_checkpoint_round_trip(model, fresh, batch, 3, tmp_path / "ckpt")


@pytest.fixture(scope="module")
def onnx_twins(tmp_path_factory, presets, digits) -> dict:
    """{family: (ONNX twin, the pixels the encoder decodes of the first 64 digits, the model's top 25 of them)}
    of a random-init image model per vision family (MHP head), on digits written as an images folder once.
    (The SavedModel of encoded images ranks as the model does: tests/eval/test_face_verification.py; every
    head's twin against its SavedModel: tests/export/test_onnx.py.)"""
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.export.onnx import export_onnx
    from tfxc.model import build_model

    root = tmp_path_factory.mktemp("image_onnx")
    write_digit_folders(root / "digits", digits[:300])
    twins = {}
    for family in presets:
        config = load_config(None, ['data.format="images"', f'data.train="{root / "digits" / "train"}"',
                                    f'data.test="{root / "digits" / "test"}"', f'data.dir="{root / "data"}"',
                                    'model.encoder.name="image"', f'model.encoder.preset="{presets[family]}"',
                                    "model.encoder.embedding_dim=8", 'model.head.name="mhp"',
                                    "model.head.num_classes=[5,2]"])
        info = ensure_converted(config.data)
        model = build_model(config.model, BuildContext.from_info(info, seed=3))
        pixels = model.encoder.decode_images(encoded(digits, 64))
        scores, ids = model.top_k(pixels, 25)
        twins[family] = (export_onnx(model, config, info, str(root / family / "onnx"), top_k=5),
                         pixels["images"].numpy(), (ids.numpy(), scores.numpy()))
    return twins


def test_every_vision_familys_onnx_twin_ranks_the_decoded_pixels_as_the_model(onnx_twins, tmp_path):
    from onnx_harness import assert_same_ranking, run_onnx

    cases = []
    for family, (twin, pixels, _) in onnx_twins.items():
        record = json.loads(open(os.path.join(twin, "onnx.json"), encoding="utf-8").read())
        assert record["input"] == "image" and [i["name"] for i in record["inputs"]] == ["images"], record
        np.savez(tmp_path / f"{family}-in.npz", images=pixels)
        cases.append((os.path.join(twin, "model.onnx"), str(tmp_path / f"{family}-in.npz"),
                      str(tmp_path / f"{family}-out.npz")))
    assert run_onnx(cases)["modules"] == []  # onnxruntime and NumPy only
    for family, (_, _, (want_ids, want_scores)) in onnx_twins.items():
        answer = np.load(tmp_path / f"{family}-out.npz")
        assert_same_ranking(answer["label_ids"], answer["scores"], want_ids, want_scores, family)
