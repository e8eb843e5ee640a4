"""keras-hub preset names pass through to keras-hub's loader; offline, one error says how to use a directory."""

from __future__ import annotations

import keras_hub
import pytest

from tfxc.encoders.pretrained import PretrainedEncoder, resolve_preset
from tfxc.errors import ConfigError
from tfxc.images.backbones import load_vision_backbone
from tfxc.utils.hub_presets import is_hub_preset_name


def test_names_are_keras_hubs_own_and_never_a_path(tmp_path):
    assert is_hub_preset_name("bert_tiny_en_uncased") and is_hub_preset_name("resnet_18_imagenet")
    assert not is_hub_preset_name("bert_tinyy_en") and not is_hub_preset_name("")
    (tmp_path / "bert_tiny_en_uncased").mkdir()
    assert not is_hub_preset_name(str(tmp_path / "bert_tiny_en_uncased"))  # a directory is a directory
    assert resolve_preset("bert_tiny_en_uncased") == "bert_tiny_en_uncased"
    with pytest.raises(ConfigError, match="is not a local preset directory .*, a keras-hub preset name"):
        resolve_preset("bert_tinyy_en")


def offline(*args, **kwargs):
    raise ConnectionError("HTTPSConnectionPool(host='api.kaggle.com', port=443): Failed to resolve 'api.kaggle.com'")


def test_a_name_that_cannot_be_downloaded_says_how_to_use_a_directory(monkeypatch):
    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    with pytest.raises(ConfigError) as text:
        PretrainedEncoder(resolve_preset("bert_tiny_en_uncased"), max_length=8)
    message = str(text.value)
    assert message.startswith("model.encoder.preset 'bert_tiny_en_uncased' is a keras-hub preset name: keras-hub "
                              "downloads it on first use (from Kaggle), which failed here (ConnectionError: ")
    assert "keras_hub.models.Backbone.from_preset('bert_tiny_en_uncased').save_to_preset(" in message
    with pytest.raises(ConfigError, match=r"the image preset 'resnet_18_imagenet' is a keras-hub preset name"):
        load_vision_backbone("resnet_18_imagenet")
