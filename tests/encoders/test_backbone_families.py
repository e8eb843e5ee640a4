"""Every keras-hub text family as the pretrained encoder, each from a tiny preset built here (random weights).

The families differ in what tfxc must get right: the tokenizer (WordPiece, byte-level BPE, SentencePiece),
the special tokens and pad id, whether the backbone reads segment ids, and whether it returns a dict or the
sequence alone. Every family is trained by the CLI and exported as a raw-string SavedModel;
one fresh process with only tensorflow-text imported serves them all, and each must tokenise and rank as the
restored model does. DeBERTaV3 also tokenises the same eagerly and in tf.data, trains on one batch and restores
from a checkpoint in this process. With --run-slow: those checks for the other families, and RoBERTa and ALBERT
on two Mirrored replicas.
"""

from __future__ import annotations

import json

import pytest
from helpers import tiny_preset
from text_harness import (check_in_process, check_served, first_test_texts, run_text_encoder_test,
                          serve_in_a_fresh_process, text_config, train_and_export)

from tfxc._tf import tf

ENCODER = {"name": "pretrained", "max_length": 24, "pooling": "mean", "dropout": 0.0, "backbone_dropout": 0.0}
# Adam amplifies the float noise of gradients that are zero in exact arithmetic (softmax ignores a shift shared
# by all keys): those variables are left out of the Mirrored comparison.
KEY_BIAS = ("self_attention_layer/key/bias", "attention/key/bias", "key_dense/bias")


# family_runs' training: enough steps for a checkpoint and a test P@1 above 0 (each family learns), half the harness's.
FEW_STEPS = {"global_batch_size": 32, "train_steps": 20, "steps_per_loop": 10, "log_every_steps": 20,
             "checkpoint_every_steps": 20}
FAMILIES = ["roberta", "albert", "xlm_roberta", "deberta_v3", "distil_bert", "electra"]
# The in-process checks of one family by default; the others share its code path and run with --run-slow.
TRAINED_FAMILIES = [family if family == "deberta_v3" else pytest.param(family, marks=pytest.mark.slow(
                        reason="time: deberta_v3 covers the path by default, every family serves below"))
                    for family in FAMILIES]


def _family_config(tmp_path, shared_data, family, pooling="cls", **sections):
    preset = tiny_preset(family, tmp_path / "preset", shared_data)
    run = tmp_path / "run"
    run.mkdir()
    return run, text_config(run, shared_data, {**ENCODER, "pooling": pooling, "preset": preset}, **sections)


@pytest.mark.parametrize("family", TRAINED_FAMILIES)
def test_a_family_tokenizes_in_tf_data_trains_and_restores(tmp_path, shared_data, family):
    run, config = _family_config(tmp_path, shared_data, family)
    check_in_process(config, run, sparse_embeddings=False)


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory, shared_data):
    """`family` -> (run dir, its texts): the family trained by the CLI (which evaluates it on the test rows) and
    exported, once per module. (`tfxc.evaluate`'s agreement with training does not depend on the encoder: the
    head harness checks it.)"""
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted

    runs = {}

    def run_of(family: str):
        if family not in runs:
            # Serving is under test, not learning: a few steps (the export serves whatever the weights are).
            run, config = _family_config(tmp_path_factory.mktemp(family), shared_data, family, pooling="mean",
                                         trainer=FEW_STEPS)
            texts = first_test_texts(ensure_converted(load_config(config).data))
            train_and_export(config, run, texts, evaluate=False)
            runs[family] = (run, texts)
        return runs[family]

    return run_of


# Each family's training and export is a test of its own (each within the per-test time limit); the serving
# tests below then find every SavedModel written.
@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_trains_and_exports_a_raw_string_saved_model(family_runs, family):
    run, _ = family_runs(family)
    export = json.loads((run / "saved_model" / "assets.extra" / "tfxc" / "export.json").read_text())
    assert export["input"] == "text" and export["top_k"] == 5 and export["num_labels"] == 77, export


@pytest.fixture(scope="module")
def served_families(family_runs) -> dict:
    """{family: (run dir, its texts, what the fresh process served)}: every family's SavedModel served from raw
    strings by one fresh process that imports only TensorFlow and tensorflow-text."""
    runs = {family: family_runs(family) for family in FAMILIES}
    served = serve_in_a_fresh_process([run for run, _ in runs.values()])
    return {family: (run, texts, answer) for (family, (run, texts)), answer in zip(runs.items(), served)}


# The raw-string SavedModel of every family (byte-level BPE, SentencePiece, WordPiece tokenizers; WordPiece
# also in the BERT preset's XR and encode tests): tokens, scores and top-k as the restored model's.
@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_serves_raw_strings_as_it_ranks(served_families, family):
    run, texts, served = served_families[family]
    check_served(run, texts, served)


@pytest.mark.slow(reason="time: two families trained again on two Mirrored replicas")
@pytest.mark.parametrize("family", ["roberta", "albert"])
def test_a_family_trains_serves_and_runs_mirrored(tmp_path, shared_data, family):
    preset = tiny_preset(family, tmp_path / "preset", shared_data)
    run_text_encoder_test(tmp_path / "run", shared_data, {**ENCODER, "preset": preset}, sparse_embeddings=False,
                          mirrored_skip=KEY_BIAS)


@pytest.mark.parametrize("family,tokens", [
    ("roberta", ("<s>", "</s>", "<pad>")), ("xlm_roberta", ("<s>", "</s>", "<pad>")),
    ("albert", ("[CLS]", "[SEP]", "<pad>")), ("deberta_v3", ("[CLS]", "[SEP]", "[PAD]")),
])
def test_the_family_tokenizer_wraps_each_text_in_its_own_special_tokens(tmp_path, shared_data, family, tokens):
    import keras_hub

    from tfxc.encoders.pretrained import PretrainedEncoder

    preset = tiny_preset(family, tmp_path, shared_data, vocabulary_size=300)
    reference = keras_hub.models.Tokenizer.from_preset(preset)
    start, end, pad = (reference.token_to_id(token) for token in tokens)
    encoder = PretrainedEncoder(preset, max_length=8, dropout=0.0, backbone_dropout=0.0)
    texts = ["how do i top up my card", "hi", "a much longer question about a transfer that has not arrived"]
    got = encoder.tokenize(tf.constant(texts))
    for row, text in enumerate(texts):
        pieces = list(reference(tf.constant([text]))[0])[:6]
        ids = got["token_ids"].numpy()[row]
        mask = got["padding_mask"].numpy()[row]
        assert ids[mask].tolist() == [start, *pieces, end], text
        assert (ids[~mask] == pad).all()
    assert got["token_ids"].shape == (3, 8)  # the longest row is cut to max_length, the batch padded to it


def test_pooler_needs_a_family_with_one_and_first_tokens_distinct_layers(tmp_path, shared_data):
    from tfxc.encoders.pretrained import PretrainedEncoder
    from tfxc.errors import ConfigError

    roberta = tiny_preset("roberta", tmp_path / "roberta", shared_data, vocabulary_size=300)
    with pytest.raises(ConfigError, match="RobertaBackbone has no pooler"):
        PretrainedEncoder(roberta, pooling="pooler")
    albert = tiny_preset("albert", tmp_path / "albert", shared_data, vocabulary_size=300)
    with pytest.raises(ConfigError, match="AlbertBackbone shares one layer across its blocks"):
        PretrainedEncoder(albert, pooling="first_tokens", pooled_layers=2)


def test_a_backbone_without_a_keras_hub_tokenizer_says_what_is_needed(tmp_path):
    import keras_hub

    from tfxc.encoders.pretrained import PretrainedEncoder
    from tfxc.errors import ConfigError

    keras_hub.models.XLNetBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
                                   intermediate_dim=16).save_to_preset(str(tmp_path))
    with pytest.raises(ConfigError, match=r"no tokenizer keras-hub can load for XLNet .*XLNet has none.*"
                                          r"tokenizer.save_to_preset"):
        PretrainedEncoder(str(tmp_path))
