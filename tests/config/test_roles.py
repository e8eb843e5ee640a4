"""Setting roles: a head's prediction settings are a section of their own, accepted on a trained model by type;
the spelling of earlier releases is read as today's."""

from __future__ import annotations

import pytest

from tfxc.compat import FormatWarning
from tfxc.config.loading import load_config_data, to_dict
from tfxc.config.roles import LAYOUT, PREDICTION, read_in_training, role_of
from tfxc.errors import ConfigError, TrainingError
from tfxc.model_dir import ModelDir

DATA = {"data": {"format": "synthetic", "dir": "unused"}}


def tree_config(**head):
    return load_config_data({**DATA, "model": {"head": {"name": "label_tree", **head}}})


def test_a_heads_prediction_section_has_the_prediction_role_by_its_type():
    config = tree_config(negatives="tfn")
    for key in ("beam_size", "propensity_rerank", "shortlist_weight"):
        assert role_of(config, f"model.head.prediction.{key}") == PREDICTION
    assert role_of(config, "model.head.max_leaf_size") is None  # the tree's shape: part of the model
    assert role_of(config, "eval.ks") == PREDICTION and role_of(config, "runtime.strategy") == LAYOUT
    mach = load_config_data({**DATA, "model": {"head": {"name": "mach", "num_buckets": 8, "num_repetitions": 2}}})
    assert role_of(mach, "model.head.prediction.top_buckets") == PREDICTION
    assert role_of(mach, "model.head.num_buckets") is None


def test_a_beam_that_picks_the_training_negatives_is_read_in_training_too():
    # Under `tfn+man` the nodes of the model's own beam are negatives in training (PECOS's matcher-aware
    # negatives): the beam then shapes the weights, so a resumed run may not change it; a trained model may.
    config = tree_config(negatives="tfn+man")
    assert role_of(config, "model.head.prediction.beam_size") == PREDICTION
    assert read_in_training(config, "model.head.prediction.beam_size")
    assert not read_in_training(config, "model.head.prediction.propensity_rerank")
    assert not read_in_training(tree_config(negatives="tfn"), "model.head.prediction.beam_size")


def test_the_spelling_of_earlier_releases_is_read_as_todays():
    with pytest.warns(FormatWarning, match=r"model.head.beam_size -> model.head.prediction.beam_size"):
        old = load_config_data({**DATA, "model": {"head": {"name": "label_tree", "beam_size": 20,
                                                           "propensity_rerank": 0.2, "shortlist_weight": 0.5}}})
    assert to_dict(old.model.head.prediction) == {"beam_size": 20, "propensity_rerank": 0.2, "shortlist_weight": 0.5}
    assert old == tree_config(prediction={"beam_size": 20, "propensity_rerank": 0.2, "shortlist_weight": 0.5})
    with pytest.warns(FormatWarning, match=r"model.head.eval_top_buckets -> model.head.prediction.top_buckets"):
        mach = load_config_data({**DATA, "model": {"head": {"name": "mach", "eval_top_buckets": 5,
                                                            "eval_min_freq": 1}}})
    assert (mach.model.head.prediction.top_buckets, mach.model.head.prediction.min_freq) == (5, 1)
    # An old-style --set on a config written the new way: the --set wins.
    new_way = {**DATA, "model": {"head": {"name": "label_tree", "prediction": {"beam_size": 3}}}}
    with pytest.warns(FormatWarning, match=r"--set model.head.beam_size is spelled --set model.head.prediction"):
        assert load_config_data(new_way, ["model.head.beam_size=7"]).model.head.prediction.beam_size == 7
    with pytest.raises(ConfigError, match=r"model.head.prediction.beam_size \(0\) must be >= 1"):
        load_config_data(new_way, ["model.head.beam_size=0"])


def test_a_trained_model_takes_prediction_settings_and_refuses_the_rest(tmp_path):
    directory = ModelDir(str(tmp_path / "model"))
    directory.write_config(tree_config(negatives="tfn"))
    changed = directory.load_config(["model.head.prediction.beam_size=30", "eval.ks=[1,10]",
                                     "model.head.beam_size=40", "runtime.strategy=mirrored"])
    assert (changed.model.head.prediction.beam_size, changed.eval.ks) == (40, (1, 10))
    with pytest.raises(ConfigError, match=r"model.encoder.embedding_dim, model.head.max_leaf_size would describe "
                                          "another model than the one trained in"):
        directory.load_config(["model.head.max_leaf_size=4", "model.encoder.embedding_dim=7"])
    with pytest.raises(ConfigError, match="model.head would describe another model"):
        directory.load_config(["model.head.name=softmax"])


def test_a_resumed_run_may_change_a_prediction_setting_unless_training_reads_it(tmp_path, monkeypatch):
    directory = ModelDir(str(tmp_path / "model"))
    directory.write_config(tree_config(negatives="tfn+man"))
    monkeypatch.setattr(directory, "latest_checkpoint", lambda: str(tmp_path / "model" / "ckpt-1"))
    directory.check_resume(tree_config(negatives="tfn+man", prediction={"propensity_rerank": 0.3}))
    with pytest.raises(TrainingError, match=r"model.head.prediction.beam_size: 10 -> 20"):
        directory.check_resume(tree_config(negatives="tfn+man", prediction={"beam_size": 20}))
