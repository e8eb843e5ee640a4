"""Configs in older spellings: the dual-variable objectives under `optimizer` (before 2026-11-22) read as
today's loss section with a warning naming the new spelling, and a model directory's config.json written
before data.text.tokens read as trained (the "ascii" tokenizer)."""

from __future__ import annotations

import json
import math

import pytest

from tfxc import compat
from tfxc.compat import config_steps
from tfxc.errors import ConfigError

# The optimizer section as the writer of 2026-11-21 wrote it (every field, the dual objective's among them).
OLD_OPTIMIZER = {"name": "sgd", "learning_rate": 0.5, "momentum": 0.0, "schedule": "cosine", "warmup_steps": 0,
                 "weight_decay": 0.0, "clip_norm": 0.0, "algorithm": "scent", "gamma": 12.0, "softplus_rho": 1.0,
                 "umax_delta": math.inf, "negative_correction": "logq"}
OLD_CONFIG = {"data": {"format": "synthetic", "dir": "d"}, "model": {"head": {"name": "linear"}},
              "optimizer": OLD_OPTIMIZER}


def test_the_dual_objective_moves_to_the_loss_section_with_a_warning_in_the_new_spelling():
    with pytest.warns(compat.FormatWarning) as caught:
        new = config_steps.loss_section(OLD_CONFIG)
    assert new["loss"] == {"name": "scent", "gamma": 12.0, "negative_correction": "logq"}
    assert new["optimizer"] == {"name": "sgd", "learning_rate": 0.5, "momentum": 0.0, "schedule": "cosine",
                                "warmup_steps": 0, "weight_decay": 0.0, "clip_norm": 0.0}
    message = str(caught[0].message)
    assert "optimizer.algorithm -> loss.name" in message and "optimizer.umax_delta -> loss.delta" in message
    assert '"loss": {"name": "scent", "gamma": 12.0, "negative_correction": "logq"}' in message
    assert OLD_CONFIG["optimizer"]["algorithm"] == "scent"  # a pure step: the record read is left as it was


@pytest.mark.parametrize("algorithm, kept", [("bsgd", {"negative_correction": "none"}),
                                             ("softplus", {"gamma": 0.5, "rho": 2.0, "negative_correction": "none"}),
                                             ("umax", {"gamma": 0.5, "delta": 3.0, "negative_correction": "none"})])
def test_each_objective_keeps_the_options_its_loss_reads(algorithm, kept):
    optimizer = {"name": "sgd", "algorithm": algorithm, "gamma": 0.5, "softplus_rho": 2.0, "umax_delta": 3.0,
                 "negative_correction": "none"}
    with pytest.warns(compat.FormatWarning):
        assert config_steps.loss_section({"optimizer": optimizer})["loss"] == {"name": algorithm, **kept}


def test_no_algorithm_is_the_heads_own_loss_and_todays_spelling_is_left_alone():
    with pytest.warns(compat.FormatWarning, match="no loss section"):
        new = config_steps.loss_section({"optimizer": {**OLD_OPTIMIZER, "algorithm": ""}})
    assert "loss" not in new and new["optimizer"]["name"] == "sgd"
    today = {"optimizer": {"name": "adam"}, "loss": {"name": "scent"}}
    assert config_steps.loss_section(today) is today


def test_an_old_config_file_trains_as_today_and_a_set_in_the_old_spelling_says_where_it_went(tmp_path):
    from tfxc.config import load_config

    path = tmp_path / "old.json"
    path.write_text(json.dumps(OLD_CONFIG))  # umax_delta as JSON parsers read it: Infinity
    with pytest.warns(compat.FormatWarning, match=rf"^{path}: config keys moved \(optimizer.algorithm -> loss.name"):
        config = load_config(str(path))
    assert (config.loss.name, config.loss.gamma, config.loss.negative_correction) == ("scent", 12.0, "logq")
    # A --set is written today: its old spelling is the error it always was, naming the new key.
    with pytest.raises(ConfigError, match=r"--set optimizer.gamma=3: optimizer.gamma has moved to loss.gamma "
                                          r"\(the dual-variable objectives are losses now"):
        load_config(None, ["data.dir=d", "optimizer.gamma=3"])


def test_an_old_spelling_that_cannot_be_read_is_one_error_naming_the_file(tmp_path):
    from tfxc.config import load_config

    path = tmp_path / "both.json"
    path.write_text(json.dumps({"optimizer": {"algorithm": "scent"}, "loss": {"name": "bsgd"}}))
    with pytest.raises(ConfigError, match=rf"^{path}: the config \(format version 0\): optimizer.algorithm "
                                          "'scent' .* and a loss section are both given"):
        load_config(str(path))
    path.write_text(json.dumps({"optimizer": {"algorithm": "adamw"}}))
    with pytest.raises(ConfigError, match="optimizer.algorithm 'adamw' is not one of"):
        load_config(str(path))


def test_a_config_from_a_newer_tfxc_is_refused(tmp_path):
    from tfxc.config import load_config

    path = tmp_path / "newer.json"
    current = compat.FORMAT_VERSIONS[compat.CONFIG]
    path.write_text(json.dumps({"format_version": current + 1}))
    with pytest.raises(ConfigError, match=rf"^{path}: the config is at format version {current + 1}, newer than "
                                          rf"this tfxc reads \({current}\)"):
        load_config(str(path))


def test_a_written_config_is_stamped_and_reads_back_the_same(tmp_path):
    from tfxc.config import config_to_json, load_config

    config = load_config(None, ["data.format=synthetic", "data.dir=d", "model.head.name=linear", "loss.name=scent",
                                "loss.gamma=3"])
    text = config_to_json(config)
    assert json.loads(text)["format_version"] == compat.FORMAT_VERSIONS[compat.CONFIG]
    (tmp_path / "c.json").write_text(text)
    assert load_config(str(tmp_path / "c.json")) == config


def test_a_model_config_written_before_the_tokenizer_was_named_reads_as_ascii():
    old = {"data": {"format": "jsonl", "train": "t.jsonl", "text": {"ngram_max": 2}},
           "optimizer": {"name": "adam", "algorithm": ""}}
    with pytest.warns(compat.FormatWarning):
        trained = compat.upgrade(compat.TRAINED_CONFIG, old, "m/config.json")
    assert trained["data"]["text"] == {"ngram_max": 2, "tokens": "ascii"} and "algorithm" not in trained["optimizer"]
    # Versioned: written since the tokenizer is named, so nothing is filled in; a hand-written config neither.
    stamped = compat.stamped(compat.TRAINED_CONFIG, {"data": old["data"]})
    assert compat.upgrade(compat.TRAINED_CONFIG, stamped)["data"]["text"] == {"ngram_max": 2}
    assert compat.upgrade(compat.CONFIG, {"data": old["data"]})["data"]["text"] == {"ngram_max": 2}


def test_a_heads_prediction_settings_move_into_its_prediction_section_from_format_1():
    # A model directory's config.json as the writer of 2026-11-29 (format 1) wrote a label tree's head.
    old = {"format_version": 1, "model": {"head": {"name": "label_tree", "max_leaf_size": 16, "beam_size": 20,
                                                   "propensity_rerank": 0.2, "shortlist_weight": 0.3}}}
    with pytest.warns(compat.FormatWarning, match=r"m/config.json: .*model.head.beam_size -> "
                                                  r"model.head.prediction.beam_size"):
        trained = compat.upgrade(compat.TRAINED_CONFIG, old, "m/config.json")
    assert trained["model"]["head"] == {"name": "label_tree", "max_leaf_size": 16, "prediction": {
        "beam_size": 20, "propensity_rerank": 0.2, "shortlist_weight": 0.3}}
    with pytest.warns(compat.FormatWarning):
        mach = compat.upgrade(compat.CONFIG, {"model": {"head": {"name": "mach", "eval_top_buckets": 50}}})
    assert mach["model"]["head"] == {"name": "mach", "prediction": {"top_buckets": 50}}
    # Today's spelling, and a head without prediction settings, are left as they are.
    today = {"model": {"head": {"name": "label_tree", "prediction": {"beam_size": 20}}}}
    assert compat.upgrade(compat.CONFIG, today)["model"] == today["model"]
    assert config_steps.respelled_override(["model", "head", "max_leaf_size"]) == ["model", "head", "max_leaf_size"]
