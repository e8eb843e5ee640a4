"""keras-hub preset names (`bert_base_en`, `roberta_base_en`, `resnet_50_imagenet`) where tfxc takes a preset.

A local preset directory is what tfxc reads. A name, as keras-hub users write them, passes through to
keras-hub's own loader, which downloads the preset on first use (from Kaggle) into its cache and reads the
cache afterwards. Where that download cannot happen (no network, as on a training cluster), the load ends in
one `ConfigError` that says so and how to point at a local directory instead.
"""

from __future__ import annotations

import contextlib
import os

from tfxc.errors import ConfigError


def is_hub_preset_name(value: str) -> bool:
    """Whether `value` names one of keras-hub's registered presets (and is no local path)."""
    if not value or os.path.exists(value) or "/" in value or os.sep in value:
        return False
    import keras_hub

    return any(value in registry.presets for registry in (keras_hub.models.Backbone, keras_hub.models.Tokenizer,
                                                          keras_hub.layers.ImageConverter))


@contextlib.contextmanager
def downloads_explained(preset: str, setting: str, saved: str = "keras_hub.models.Backbone"):
    """Turns a failed load of the keras-hub preset name `preset` into a `ConfigError` naming `setting` and how
    to save the preset to a directory once where there is a network (`saved`: the class whose `from_preset`
    and `save_to_preset` do it). Errors of anything that is not a preset name pass unchanged."""
    try:
        yield
    except Exception as error:  # keras-hub's download errors come from requests, kagglehub and the file system
        if not is_hub_preset_name(preset):
            raise
        reason = (str(error).strip().splitlines() or [""])[0][:300]
        raise ConfigError(
            f"{setting} '{preset}' is a keras-hub preset name: keras-hub downloads it on first use (from Kaggle), "
            f"which failed here ({type(error).__name__}: {reason}). Where there is a network, save it once: "
            f"python -c \"import keras_hub; {saved}.from_preset('{preset}').save_to_preset('presets/{preset}')\" "
            f"(a text model's tokenizer too: keras_hub.models.Tokenizer; an image model's converter: "
            f"keras_hub.layers.ImageConverter), then give {setting} that directory") from None
