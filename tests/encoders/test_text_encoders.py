"""Each text encoder through the text-encoder harness (tests/encoders/text_harness.py), plus its own checks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny_bert_preset
from text_harness import END_TO_END_TIME, check_in_process, run_text_encoder_test, text_config

from tfxc._tf import tf


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_text_cnn(tmp_path, shared_data):
    # With the linear projection to 12 dims (the embedding a cosine head reads).
    run_text_encoder_test(tmp_path, shared_data, {"name": "text_cnn", "embedding_dim": 24, "num_filters": 8,
                                                  "kernel_sizes": [1, 3], "max_length": 32, "dropout": 0.0,
                                                  "projection_dim": 12},
                          tool_checks=True)


def test_projection_is_a_linear_map_of_the_pooled_features():
    from tfxc.encoders.text_cnn import TextCnnEncoder

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    plain = TextCnnEncoder(vocabulary, kernel_sizes=(1, 2), num_filters=4, max_length=8, embedding_dim=6,
                           dropout=0.0, seed=1, name="plain")
    projected = TextCnnEncoder(vocabulary, kernel_sizes=(1, 2), num_filters=4, max_length=8, embedding_dim=6,
                               dropout=0.0, seed=1, projection_dim=3, name="projected")
    tokens = plain.tokenize(tf.constant(["a b c", "c a", ""]))
    pooled = plain(tokens).numpy()
    out = projected(tokens).numpy()
    assert (plain.output_dim, projected.output_dim) == (8, 3) and out.shape == (3, 3)
    layer = projected.projection_layer
    np.testing.assert_allclose(out, pooled @ layer.kernel.numpy() + layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    assert np.any(out < 0)  # no ReLU: the embedding leaves the positive orthant


@pytest.mark.parametrize("initializer, std", [("xavier", (2 / (16 + 4096)) ** 0.5),  # Glorot: 2 / (in + out)
                                              ("kaiming", (2 / 16) ** 0.5),  # He: 2 / fan_in
                                              ("normal", 0.02)])
def test_the_kernels_start_from_the_chosen_initializer(initializer, std):
    """The convolution kernel [1, 16, 4096] (fan_in 16, fan_out 4096) has the initializer's spread; the
    embeddings keep their own U(-0.05, 0.05), and the recurrent encoders take the choice too."""
    from tfxc.encoders.text_cnn import TextCnnEncoder
    from tfxc.encoders.text_rnn import TextRnnEncoder

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    encoder = TextCnnEncoder(vocabulary, kernel_sizes=(1,), num_filters=4096, max_length=8, embedding_dim=16,
                             dropout=0.0, seed=1, initializer=initializer)
    encoder.build()
    kernel = encoder.conv_0.kernel.numpy()
    assert abs(kernel.std() - std) < 0.05 * std and abs(kernel.mean()) < 0.05 * std
    assert np.abs(encoder.embeddings.numpy()).max() <= 0.05
    rnn = TextRnnEncoder(vocabulary, cell="gru", hidden_dim=8, pooling="mean", max_length=8, embedding_dim=4,
                         dropout=0.0, seed=1, initializer=initializer)
    assert type(rnn.rnn.forward_layer.kernel_initializer).__name__ == {
        "xavier": "GlorotUniform", "kaiming": "HeNormal", "normal": "RandomNormal"}[initializer]


def test_fasttext_tokenizes_in_tf_data_trains_and_restores(tmp_path, shared_data):
    # Its end-to-end run (CLI, SavedModel, Mirrored) is the slow test below; TextCNN's covers that path here.
    check_in_process(text_config(tmp_path, shared_data, FASTTEXT), tmp_path)


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_fasttext(tmp_path, shared_data):
    run_text_encoder_test(tmp_path, shared_data, FASTTEXT)


def test_text_cnn_short_texts_and_empty_ones():
    from tfxc.encoders import TextCnnEncoder
    from tfxc.text import RESERVED_TOKENS

    vocabulary = [*RESERVED_TOKENS, "a", "b", "c"]
    encoder = TextCnnEncoder(vocabulary, kernel_sizes=(2, 5), num_filters=3, max_length=16, embedding_dim=4,
                             dropout=0.0, seed=1)
    out = encoder(encoder.tokenize(tf.constant(["a", "", "a b c a b c"]))).numpy()
    assert out.shape == (3, 6)
    np.testing.assert_array_equal(out[1], 0.0)  # no token: no window, zeros rather than the dtype's minimum
    assert np.all(np.isfinite(out))


# The recurrent and attention encoders train slowly on CPU: the default suite covers the contract with
# TextCNN, FastText, TF-IDF and a pretrained backbone; these run with --run-slow.
@pytest.mark.slow(reason=END_TO_END_TIME)
def test_text_rnn_with_attention(tmp_path, shared_data):
    run_text_encoder_test(tmp_path, shared_data, {"name": "text_rnn", "embedding_dim": 16, "hidden_dim": 8,
                                                  "max_length": 24, "dropout": 0.0})


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_text_rcnn_with_a_gru(tmp_path, shared_data):
    run_text_encoder_test(tmp_path, shared_data, {"name": "text_rcnn", "cell": "gru", "embedding_dim": 16,
                                                  "hidden_dim": 8, "output_dim": 12, "max_length": 24,
                                                  "dropout": 0.0})


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_text_transformer(tmp_path, shared_data):
    run_text_encoder_test(tmp_path, shared_data, {"name": "text_transformer", "embedding_dim": 16, "num_heads": 2,
                                                  "num_layers": 1, "intermediate_dim": 32, "max_length": 24,
                                                  "dropout": 0.0}, mirrored_skip=("self_attention_layer/key/bias",))


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_pretrained_backbone_from_a_local_preset(tmp_path, shared_data):
    preset = tiny_bert_preset(tmp_path / "preset", shared_data)
    run_text_encoder_test(tmp_path / "run", shared_data,
                          {"name": "pretrained", "preset": preset, "max_length": 24, "pooling": "first_tokens",
                           "pooled_layers": 2, "dropout": 0.0, "backbone_dropout": 0.0},
                          sparse_embeddings=False, mirrored_skip=("self_attention_layer/key/bias",))


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_adversarial_training_runs_the_same_on_two_mirrored_replicas(tmp_path, shared_data):
    from helpers import assert_same_weights, checkpoint_weights, run_cli
    from text_harness import text_config

    config = text_config(tmp_path, shared_data, {"name": "text_cnn", "embedding_dim": 16, "num_filters": 8,
                                                 "max_length": 24, "dropout": 0.0},
                         loss={"name": "head", "adversarial": "pgd", "adversarial_epsilon": 0.5})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "one"))
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "two"), "--set", "runtime.strategy=mirrored",
            "--set", "runtime.cpu_replicas=2")
    assert_same_weights(checkpoint_weights(str(tmp_path / "two")), checkpoint_weights(str(tmp_path / "one")), atol=2e-5)


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_tfidf_bag_of_words_from_raw_text(tmp_path, shared_data):
    # The row-sparse bag: on this small vocabulary "auto" would take the full bag, whose table updates densely.
    run_text_encoder_test(tmp_path, shared_data, {"name": "sparse_bow", "embedding_dim": 16, "raw_text": True,
                                                  "bag": "sparse"})


FASTTEXT = {"name": "fasttext", "embedding_dim": 16, "word_buckets": 4096, "ngram_buckets": 16384}


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_text_encoder_beside_a_sparse_tfidf_term(tmp_path, shared_data):
    # XR-Transformer's "encoder embedding (+) TF-IDF": the head's sparse term reads TF-IDF features that
    # the SavedModel computes from the raw text too.
    run_text_encoder_test(tmp_path, shared_data, FASTTEXT,
                          head={"name": "softmax", "sparse_support": 8, "sparse_max_nnz": 16, "sparse_init": 1.0})


LABEL_TREE_WITH_TFIDF = {"name": "label_tree", "max_leaf_size": 8, "nr_splits": 4, "sparse_support": 8,
                         "sparse_max_nnz": 16, "sparse_init": 1.0}


def test_text_encoder_beside_a_label_tree_sparse_term(tmp_path, shared_data):
    # The same [E (+) TF-IDF] under the label tree, XR-Transformer's ranker: the head must hand the encoder the
    # data's TF-IDF featurizer, as the flat heads do (a TypeError in the input pipeline's tokenisation before).
    config = text_config(tmp_path, shared_data, FASTTEXT, LABEL_TREE_WITH_TFIDF)
    check_in_process(config, tmp_path)


@pytest.mark.slow(reason=END_TO_END_TIME)
def test_text_encoder_beside_a_label_tree_sparse_term_end_to_end(tmp_path, shared_data):
    run_text_encoder_test(tmp_path, shared_data, FASTTEXT, head=LABEL_TREE_WITH_TFIDF)


def test_the_default_pretrained_encoder_is_the_offline_minilm():
    """all-MiniLM-L6-v2 from its wheel (README's test install): keras-hub's tokenisation, and sentence embeddings
    that still know what is alike (cos 0.7553 for this pair, tf-notes §6, computed independently in NumPy)."""
    import keras_hub

    from tfxc.encoders.pretrained import PretrainedEncoder, default_preset_dir

    preset = default_preset_dir()
    encoder = PretrainedEncoder(preset, max_length=32, pooling="mean", dropout=0.0, backbone_dropout=0.0)
    encoder.build()
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply today.",
             "Café naïve résumé"]
    tokens = encoder.tokenize(tf.constant(texts))
    reference = keras_hub.models.BertTokenizer.from_preset(preset, strip_accents=True)
    cls, sep = reference.token_to_id("[CLS]"), reference.token_to_id("[SEP]")
    for row, text in enumerate(texts):
        expected = [cls, *np.asarray(reference([text])[0]).tolist(), sep]
        got = tokens["token_ids"].numpy()[row][tokens["padding_mask"].numpy()[row]].tolist()
        assert got == expected, text
    emb = encoder(tokens).numpy()
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert abs(float(emb[0] @ emb[1]) - 0.7553) < 2e-3
    assert float(emb[0] @ emb[2]) < 0.2


def test_an_unknown_initializer_is_a_config_error_naming_the_choices():
    from tfxc.config import load_config
    from tfxc.errors import ConfigError

    with pytest.raises(ConfigError, match="initializer 'orthogonal' is not one of xavier, kaiming, normal"):
        load_config(None, ["data.dir=x", "model.encoder.name=text_cnn", "model.encoder.initializer=orthogonal"])
