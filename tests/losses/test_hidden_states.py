"""Layer-dropping self-distillation: the layer map, hidden_mse against NumPy, a backbone with kept layers, and a
2-layer student of a fine-tuned 4-layer teacher that starts from its layers and learns its hidden states."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_cli, tiny_preset

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.losses.hidden_states import hidden_mse, layer_map


def test_layer_map_follows_the_kept_layers_or_spreads_evenly():
    assert layer_map(3, 6, (1, 3, 5)) == [0, 2, 4, 6]
    assert layer_map(3, 12) == [0, 4, 8, 12]  # TextBrewer's T3 of a 12-layer BERT
    assert layer_map(2, 6) == [0, 3, 6]
    assert layer_map(4, 4) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="more layers"):
        layer_map(4, 2)
    with pytest.raises(ConfigError, match="keeps teacher layers"):
        layer_map(2, 4, (1, 4))


def test_hidden_mse_is_the_mean_over_real_tokens_and_units_summed_over_matched_states():
    rng = np.random.default_rng(0)
    student = [rng.normal(size=(3, 5, 4)).astype(np.float32) for _ in range(3)]
    teacher = [rng.normal(size=(3, 5, 4)).astype(np.float32) for _ in range(5)]
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    mapping = [0, 2, 4]
    expected = np.zeros(3)
    for row in range(3):
        for j, t in enumerate(mapping):
            expected[row] += ((student[j][row] - teacher[t][row]) ** 2)[mask[row]].mean()
    got = hidden_mse([tf.constant(s) for s in student], [tf.constant(t) for t in teacher], mapping, tf.constant(mask))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


def _layer_weights(backbone, index):
    return backbone.get_layer(f"transformer_layer_{index}").get_weights()


def test_keep_layers_builds_a_shallower_backbone_from_the_chosen_pretrained_layers(tmp_path, shared_data):
    import keras_hub

    from tfxc.encoders.pretrained import PretrainedEncoder

    preset = tiny_preset("bert", tmp_path, shared_data, num_layers=4, vocabulary_size=300)
    full = keras_hub.models.Backbone.from_preset(preset)
    encoder = PretrainedEncoder(preset, keep_layers=(1, 3), dropout=0.0, backbone_dropout=0.0)
    assert encoder.backbone.num_layers == 2
    # Only the shallower backbone's variables are the encoder's (the whole preset is not kept beside it).
    assert len(encoder.trainable_variables) == len(encoder.backbone.trainable_variables)
    for j, i in enumerate((1, 3)):
        for mine, theirs in zip(_layer_weights(encoder.backbone, j), _layer_weights(full, i)):
            np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(encoder.backbone.get_layer("token_embedding").get_weights()[0],
                                  full.get_layer("token_embedding").get_weights()[0])
    # Keeping every layer is the preset itself.
    texts = tf.constant(["how do i top up my card", "hi"])
    every = PretrainedEncoder(preset, keep_layers=(0, 1, 2, 3), dropout=0.0, backbone_dropout=0.0)
    whole = PretrainedEncoder(preset, dropout=0.0, backbone_dropout=0.0)
    np.testing.assert_allclose(every(every.tokenize(texts)).numpy(), whole(whole.tokenize(texts)).numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match="has layers 0 .. 3"):
        PretrainedEncoder(preset, keep_layers=(1, 4))


def test_call_with_states_pools_as_call_does(tmp_path, shared_data):
    from tfxc.encoders.pretrained import PretrainedEncoder, hidden_state_view

    preset = tiny_preset("roberta", tmp_path, shared_data, vocabulary_size=300)
    for pooling in ("mean", "cls", "first_tokens"):
        encoder = PretrainedEncoder(preset, pooling=pooling, pooled_layers=2, dropout=0.0, backbone_dropout=0.0)
        tokens = encoder.tokenize(tf.constant(["how do i top up my card", "hi"]))
        pooled, states = encoder.call_with_states(tokens, hidden_state_view(encoder.backbone))
        assert len(states) == 3 and states[0].shape == (2, tokens["token_ids"].shape[1], 16)
        np.testing.assert_allclose(pooled.numpy(), encoder(tokens).numpy(), atol=1e-6, err_msg=pooling)


@pytest.mark.slow(reason='time: a BERT teacher and student trained on banking77')
def test_a_student_with_half_the_layers_starts_from_them_and_learns_the_teachers_states(tmp_path, shared_data):
    from encoders.text_harness import text_config

    from tfxc.config import load_config
    from tfxc.data.info import DatasetInfo
    from tfxc.data.pipeline import eval_dataset
    from tfxc.losses import LOSSES
    from tfxc.model_dir import ModelDir

    preset = tiny_preset("bert", tmp_path / "preset", shared_data, num_layers=4)
    encoder = {"name": "pretrained", "preset": preset, "max_length": 24, "pooling": "mean", "dropout": 0.0,
               "backbone_dropout": 0.0}
    config = text_config(tmp_path, shared_data, encoder)
    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(teacher_dir))
    loss = {"name": "distill", "teacher": str(teacher_dir), "hidden_weight": 1.0, "init_student": True,
            "alpha": 0.5}
    student_sets = ["--set", "model.encoder.keep_layers=[1, 3]", "--set", f"loss={_json(loss)}"]

    # Before training: the student holds the fine-tuned teacher's layers 1 and 3, embeddings and head.
    student_config = load_config(config, student_sets[1::2])
    info = DatasetInfo.load(str(tmp_path / "data"))
    teacher = ModelDir(str(teacher_dir)).restore().model
    from tfxc.build_context import BuildContext
    from tfxc.model import build_model

    student = build_model(student_config.model, BuildContext.from_info(info, seed=1))
    objective = LOSSES.build(student_config.loss, info=info, length=None, global_batch_size=32)
    objective.check_model(student)
    for j, i in enumerate((1, 3)):
        for mine, theirs in zip(_layer_weights(student.encoder.backbone, j), _layer_weights(teacher.encoder.backbone, i)):
            np.testing.assert_array_equal(mine, theirs)
    for mine, theirs in zip(student.head.variables, teacher.head.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    batch = next(iter(eval_dataset(info.files("train"), 64, preprocess=student.encoder.preprocess)))
    _, _, before = objective._holder.live.step(batch, training=False)

    run_cli("tfxc.train", "--config", config, "--model-dir", str(student_dir), *student_sets)
    trained = ModelDir(str(student_dir)).restore().model
    assert len(trained.trainable_variables) == len(student.trainable_variables)  # no teacher in the checkpoint
    from tfxc.losses.hidden_states import LiveTeacher

    _, _, after = LiveTeacher(teacher, trained, (1, 3)).step(batch, training=False)
    assert float(tf.reduce_mean(after)) < 0.7 * float(tf.reduce_mean(before)), (before, after)


def test_hidden_state_distillation_needs_transformers_on_both_sides(tmp_path, shared_data):
    from encoders.text_harness import text_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.losses.hidden_states import LiveTeacher
    from tfxc.model import build_model

    config = load_config(text_config(tmp_path, shared_data, {"name": "text_cnn", "embedding_dim": 8,
                                                             "num_filters": 4, "max_length": 16, "dropout": 0.0}))
    model = build_model(config.model, BuildContext.from_info(ensure_converted(config.data), seed=1))
    with pytest.raises(ConfigError, match="needs a pretrained transformer encoder.*the teacher's is TextCnnEncoder"):
        LiveTeacher(model, model, ())


def _json(value) -> str:
    import json

    return json.dumps(value)


@pytest.mark.slow(reason='time: a BERT teacher, then its student on two Mirrored replicas and in one, all trained by the CLI')
def test_hidden_state_distillation_on_two_mirrored_replicas_reaches_the_single_process_weights(tmp_path, shared_data):
    # The teacher's variables live outside the strategy's scope and are only read inside the replicas.
    from encoders.text_harness import text_config
    from helpers import assert_same_weights, checkpoint_weights

    preset = tiny_preset("bert", tmp_path / "preset", shared_data, num_layers=4)
    config = text_config(tmp_path, shared_data, {"name": "pretrained", "preset": preset, "max_length": 24,
                                                 "pooling": "mean", "dropout": 0.0, "backbone_dropout": 0.0})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "teacher"))
    loss = {"name": "distill", "teacher": str(tmp_path / "teacher"), "hidden_weight": 1.0, "init_student": True}
    sets = ["--set", "model.encoder.keep_layers=[1, 3]", "--set", f"loss={_json(loss)}"]
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "one"), *sets)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "two"), *sets,
            "--set", "runtime.strategy=mirrored", "--set", "runtime.cpu_replicas=2")

    def compared(weights):  # the attention keys' bias has a zero true gradient (see the text harness)
        return {name: value for name, value in weights.items() if "key/bias" not in name}

    assert_same_weights(compared(checkpoint_weights(str(tmp_path / "two"))),
                        compared(checkpoint_weights(str(tmp_path / "one"))), atol=2e-5)
