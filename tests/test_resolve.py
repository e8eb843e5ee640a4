"""Configs made whole: a thin config resolved against the recipe for its converted data; a whole one as it is."""

import json

from test_recipe import write_synthetic

from tfxc.resolve import load_with_data


def test_a_thin_config_file_becomes_the_recipe_with_its_keys_on_top(tmp_path):
    train, test = write_synthetic(tmp_path, num_train=400, num_labels=60)
    data = {"format": "xc", "train": train, "test": test, "dir": str(tmp_path / "data")}
    thin = tmp_path / "thin.json"
    thin.write_text(json.dumps({"recipe": True, "data": data, "trainer": {"epochs": 2}}))
    config, info = load_with_data(str(thin), ["model.encoder.dropout=0.1"])
    assert not config.recipe and info.num_labels == 60 and info.num_points("val") > 0  # 10 % held out
    # One label per point: the recipe's softmax with label smoothing, its selection metric, then the file's
    # epochs and the override.
    assert config.model.head.name == "softmax" and config.model.head.label_smoothing == 0.1
    assert config.trainer.select_metric == "P@1" and config.trainer.epochs == 2
    assert config.model.encoder.dropout == 0.1


def test_a_whole_config_file_is_read_as_it_is(tmp_path):
    train, test = write_synthetic(tmp_path, num_train=400, num_labels=60)
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps({"data": {"format": "xc", "train": train, "test": test, "dir": str(tmp_path / "d")},
                                 "model": {"head": {"name": "one_vs_all"}}, "trainer": {"epochs": 2}}))
    config, info = load_with_data(str(whole))
    assert config.model.head.name == "one_vs_all" and config.data.val_percent == 0 and "val" not in info.splits


def test_a_thin_config_on_the_command_line_is_read_once_and_meets_the_recipe_once(tmp_path, monkeypatch, capsys):
    # The walk of `tfxc.train --config thin.json` up to the trainer (`--plan` stops just before it): the file
    # is opened once, the recipe consulted once, after the conversion.
    import builtins

    import tfxc.recipe.rules
    from tfxc.train import main

    train, test = write_synthetic(tmp_path, num_train=400, num_labels=60)
    thin = tmp_path / "thin.json"
    thin.write_text(json.dumps({"recipe": True, "trainer": {"epochs": 2},
                                "data": {"format": "xc", "train": train, "test": test, "dir": str(tmp_path / "d")}}))
    opened, recipes = [], []
    real_open, real_measure = builtins.open, tfxc.recipe.rules.measure_centroids

    def counting_open(file, *args, **kwargs):
        if str(file) == str(thin):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    def counting_measure(*args, **kwargs):
        recipes.append(args)
        return real_measure(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(tfxc.recipe.rules, "measure_centroids", counting_measure)  # once for every point's rules
    assert main(["--config", str(thin), "--model-dir", str(tmp_path / "m"), "--plan"]) == 0
    assert len(opened) == 1 and len(recipes) == 1
    assert "recipe (tfxc.recipe):" in capsys.readouterr().out
