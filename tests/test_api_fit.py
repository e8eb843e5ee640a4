"""`tfxc.fit(X, Y)` as a scikit-learn or napkinXC user calls it: no config (the recipe), no model directory
(a new one, printed), and the argument order of earlier releases still read."""

from __future__ import annotations

import json
import os

import pytest
from test_api import CONFIG, synthetic

import tfxc
from tfxc.errors import DataError


def printed_directory(capsys) -> str:
    """The model directory of the one line `fit` printed about it."""
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in printed if line.startswith("tfxc.fit: training into ")]
    assert len(lines) == 1, printed
    return lines[0].split("training into ", 1)[1].split(" ", 1)[0]


def test_fit_without_a_config_or_a_directory_trains_the_recipe_into_a_new_printed_one(tmp_path, monkeypatch,
                                                                                      capsys):
    (x, y), _ = synthetic(num_train=300, num_test=10)
    monkeypatch.chdir(tmp_path)
    model = tfxc.fit(x, y, overrides=["trainer.epochs=1"])
    path = printed_directory(capsys)
    assert os.path.dirname(path) == "tfxc_models" and os.path.basename(path).startswith("fit-")
    config = json.loads((tmp_path / path / "config.json").read_text())
    # The recipe for 300 points with several labels each (as `tfxc.fit({"recipe": True}, ...)` trains it).
    assert config["recipe"] is False and config["model"]["head"]["multi_label_loss"] == "decoupled"
    assert config["trainer"]["select_metric"] == "P@5" and config["data"]["val_percent"] == 10
    again = tfxc.load(path)
    assert again.predict(x[:2], k=3).ids.tolist() == model.predict(x[:2], k=3).ids.tolist()
    # A second fit never trains into the first one's directory, even within the same second.
    tfxc.fit(x, y, plan_only=True)
    assert printed_directory(capsys) != path and len(os.listdir(tmp_path / "tfxc_models")) == 2
    # Arrays refused before anything is written leave no empty directory behind.
    with pytest.raises(DataError, match="rows"):
        tfxc.fit(x, y[:10])
    assert len(os.listdir(tmp_path / "tfxc_models")) == 2


def test_fit_takes_the_config_by_keyword_and_still_reads_the_earlier_order(tmp_path):
    (x, y), _ = synthetic(num_train=300, num_test=10)
    one_epoch = {**CONFIG, "trainer": {**CONFIG["trainer"], "epochs": 1}}
    new = tfxc.fit(x, y, config=one_epoch, model_dir=str(tmp_path / "new"))
    with pytest.warns(DeprecationWarning, match=r"write tfxc.fit\(X, Y, config=config\)"):  # tfxc.compat
        old = tfxc.fit(one_epoch, x, y, model_dir=str(tmp_path / "old"))  # the order of earlier releases
    trained = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("new", "old")]
    assert trained[0]["model"]["head"]["name"] == "one_vs_all"
    new_config, old_config = ({k: v for k, v in c.items() if k != "data"} for c in trained)
    assert new_config == old_config  # the same config, whichever order named it
    assert new.num_labels == old.num_labels == 50
    with pytest.raises(TypeError, match=r"fit\(X, Y, config="):
        tfxc.fit(one_epoch, x, y, config=one_epoch, model_dir=str(tmp_path / "both"))
    with pytest.raises(TypeError, match=r"fit\(X, Y, config="):
        tfxc.fit(x, y, y, model_dir=str(tmp_path / "three"))
    assert not (tmp_path / "both").exists() and not (tmp_path / "three").exists()
