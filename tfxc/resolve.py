"""Configs made whole: a thin config (`"recipe": true`) resolved against the recipe for its converted data.

`tfxc.config` reads a thin config as far as it can without the data (its data
and runtime sections); the rest needs the converted data's shape, which
`tfxc.recipe` turns into a whole config. This module joins the two for every
caller that builds a model from a config file or dict: `tfxc.fit` and the tools.
(`tfxc.train` does the same steps itself, since its strategy must exist before
the conversion starts TensorFlow.)
"""

from __future__ import annotations

from tfxc.config.loading import load_config_data, read_json
from tfxc.data.convert import ensure_converted
from tfxc.recipe import resolve_thin


def whole_config(config, tree: dict, info, overrides=(), origin: str = "the config"):
    """`config` (loaded from the JSON-layout `tree`) as a whole config for the converted data `info`:
    itself, or for a thin config the recipe's with `tree`'s keys and `overrides` on top."""
    if not config.recipe:
        return config
    whole, _ = resolve_thin(tree, info, origin)
    return load_config_data(whole, overrides, origin="the recipe with " + origin)


def load_with_data(path: str, overrides=()):
    """A config file and its converted data: (`ExperimentConfig`, `DatasetInfo`), a thin config resolved."""
    tree = read_json(path)
    config = load_config_data(tree, overrides, origin=path)
    info = ensure_converted(config.data)
    return whole_config(config, tree, info, overrides, path), info
