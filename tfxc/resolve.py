"""Configs made whole, in one place: a config read once, and a thin config (`"recipe": true`) resolved.

Every caller that trains from a config goes through here: `tfxc.train` (a config
file, or the sources `--train` names), `tfxc.fit` (a path, a dict, an
`ExperimentConfig`, or nothing: the recipe) and the tools (`load_with_data`). A
run takes three steps; the file is parsed once and the recipe consulted once:

1. `read_config` / `read_given` / `from_sources`: the file parsed once, the
   `--set` overrides applied, and the config validated as far as it can be
   without the data (`tfxc.config.loading`; for a thin config its data and
   runtime sections, which are all the strategy and the conversion need);
2. the caller converts the data (`tfxc.data.convert.ensure_converted`), under its lock;
3. `whole`: a whole config as it is; for a thin one the config of the recipe's
   point for the converted data (`tfxc.recipe`) with the thin config's own keys
   on top (`over_recipe`), then the overrides, validated.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from tfxc.config.compare import flat_differences
from tfxc.compat.spellings import fold_preset
from tfxc.config.loading import (apply_overrides, is_thin, load_config_data, parse_override, read_json, to_dict,
                                 upgraded_tree)
from tfxc.config.schema import ExperimentConfig
from tfxc.data.sources import with_validation
from tfxc.errors import ConfigError
from tfxc.recipe.points import DEFAULT, XRT, recipe_config
from tfxc.utils.display import json_text

# What `tfxc.fit` trains when it is given no config: the recipe for the data.
RECIPE = {"recipe": True}


@dataclass(frozen=True)
class ConfigSource:
    """A config as read before its data is converted.

    Attributes:
      tree: the config in its JSON layout as given (before the overrides).
      config: the `ExperimentConfig` read from `tree` with the overrides. For a thin config only its data
        and runtime sections are its own; the rest are defaults until `whole` resolves it.
      overrides: the `--set` assignments, e.g. ("trainer.epochs=3",).
      origin: what a config error names (the file), or None.
      name: how the recipe's printout names the config ("thin.json", "--train", "the config given to fit").
      own_keys: whether `tree`'s keys go on top of the recipe (a thin config) or it only names the data
        (the sources of `--train`).
    """

    tree: dict
    config: ExperimentConfig
    overrides: tuple = ()
    origin: str | None = None
    name: str = "the config"
    own_keys: bool = True

    @property
    def thin(self) -> bool:
        """Whether the rest of the config comes from the recipe once the data is converted."""
        return self.config.recipe


def read_config(path: str, overrides=(), recipe: str | None = None) -> ConfigSource:
    """A config file, parsed once (see `ConfigSource`); `recipe` (`tfxc.train --recipe`) replaces its point."""
    return _source(_with_recipe(read_json(path), recipe, path), overrides, origin=path, name=path)


def read_given(config=None, overrides=(), *, data: dict | None = None, recipe: str | None = None,
               name: str = "the config given to fit") -> ConfigSource:
    """A config given as a file path, a JSON-layout dict, an `ExperimentConfig` or None (the recipe).

    Args:
      config: the config; None is `RECIPE`, a config that names nothing but the recipe.
      overrides: `--set` assignments.
      data: fields put into the config's data section (over its own), e.g. the sources `tfxc.fit` writes.
      recipe: the recipe's point (`tfxc.recipe.points`), over the config's own; None keeps the config's.
      name: how the recipe's printout names a config not read from a file.
    """
    origin = None
    if config is None:
        tree = dict(RECIPE)
    elif isinstance(config, ExperimentConfig):
        tree = to_dict(config)
    elif isinstance(config, dict):
        tree = json.loads(json.dumps(config))
    elif isinstance(config, (str, os.PathLike)):
        origin = os.fspath(config)
        tree = read_json(origin)
    else:
        raise ConfigError(f"config: expected a file path, a dict or an ExperimentConfig, got "
                          f"{type(config).__name__}")
    if data:
        tree["data"] = {**tree.get("data", {}), **data}
    return _source(_with_recipe(tree, recipe, origin or name), overrides, origin=origin, name=origin or name)


def from_sources(data: dict, overrides=(), recipe: str | None = None) -> ConfigSource:
    """The recipe (at point `recipe`, `tfxc.recipe.points`) for the data section `data`
    (`tfxc.data.sources.data_section` of `--train`'s files)."""
    return _source(_with_recipe({**RECIPE, "data": data}, recipe, "--train"), overrides, origin="--train",
                   name="--train", own_keys=False)


def member_source(source: ConfigSource, recipe: str | None = None, overrides=()) -> ConfigSource:
    """`source` at the recipe's point `recipe` (None: its own) with `overrides` after its own (an ensemble's
    member, `tfxc.runs.members`; a fold, `tfxc.runs.folds`)."""
    own = [o for o in source.overrides if recipe is None or not _names_the_point(o)]
    return _source(_with_recipe(source.tree, recipe, source.name), [*own, *overrides], origin=source.origin,
                   name=source.name, own_keys=source.own_keys)


def _names_the_point(override: str) -> bool:
    """Whether `--set` assignment `override` names the recipe's point (`recipe=fast`; the old spelling
    `preset=fast`, still accepted: tfxc.compat.spellings)."""
    return parse_override(override)[0] in (["recipe"], ["preset"])


def _with_recipe(tree: dict, recipe: str | None, name: str) -> dict:
    """Thin config `tree` at the recipe's point `recipe`, unless that is None (validated with the rest of the
    config); a whole config has no recipe to be at."""
    if recipe is None:
        return tree
    tree = fold_preset(tree)  # an old spelling (`"preset": "fast"`), still accepted: tfxc.compat.spellings
    if not is_thin(tree):
        raise ConfigError(f"recipe '{recipe}' chooses among the recipe's configs: {name} is a whole config; give "
                          "\"recipe\": true in it (a thin config), or tfxc.train --train")
    return {**tree, "recipe": recipe}


def _source(tree: dict, overrides, *, origin, name, own_keys: bool = True) -> ConfigSource:
    overrides, tree = tuple(overrides), fold_preset(upgraded_tree(tree, origin))  # today's spelling (`tfxc.compat`)
    config = load_config_data(tree, overrides, origin=origin)
    return ConfigSource(tree, config, overrides, origin, name, own_keys)


def whole(source: ConfigSource, info) -> tuple[ExperimentConfig, list[str]]:
    """The config to train for the converted data `info` (a `DatasetInfo`), and the recipe's reasons.

    A whole config is returned as it was read (no reasons). A thin one is the recipe's config with the
    thin config's keys on top (`resolve_thin`), then the overrides; its reasons end with what it changed.
    """
    if not source.thin:
        return source.config, []
    # `--set recipe=...` chose the recipe's config below; the whole config it became has no recipe.
    overrides = [o for o in source.overrides if not _names_the_point(o)]
    # The recipe holds out a validation share unless the data section has its own (`with_validation`): it
    # must see the data the overrides make (`--set data.val_fold=0/5` is a held-out fold, not a second split).
    tree = apply_overrides(source.tree, [o for o in overrides if parse_override(o)[0][0] == "data"])
    seed = source.config.runtime.seed
    if source.own_keys:
        chosen, reasons = resolve_thin(tree, info, source.name, source.config.recipe, seed)
        origin = "the recipe with " + source.name
    else:
        chosen, reasons = recipe_config(with_validation(tree["data"]), info, _point(source.config.recipe), seed=seed)
        origin = source.origin
    return load_config_data(chosen, overrides, origin=origin), reasons


def load_with_data(path: str, overrides=()):
    """A config file and its converted data: (`ExperimentConfig`, `DatasetInfo`), a thin config resolved."""
    from tfxc.data.convert import ensure_converted

    source = read_config(path, overrides)
    info = ensure_converted(source.config.data)
    return whole(source, info)[0], info


# === A thin config on top of the recipe ===
def over_recipe(recipe: dict, own: dict) -> dict:
    """A thin config's own keys on top of the recipe's config (both in the JSON layout).

    Objects merge key by key, except a registry entry whose `name` differs from
    the recipe's (another head, encoder or optimizer): it replaces the recipe's
    entry whole, since the recipe's options were for the other one.
    """
    merged = dict(recipe)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(value, dict) and isinstance(base, dict) and value.get("name", base.get("name")) == base.get("name"):
            merged[key] = over_recipe(base, value)
        else:
            merged[key] = value
    return merged


def _point(recipe) -> str:
    """The point a thin config's `recipe` names ("" for true: the recipe decides)."""
    return recipe if isinstance(recipe, str) else ""


def resolve_thin(own: dict, info, origin: str, recipe=None, seed: int = 0) -> tuple[dict, list[str]]:
    """A thin config (JSON layout, `"recipe"` true or a point) made whole for its converted data `info`.

    Returns the config of the recipe's point `recipe` (None: `own`'s; true: the default, or xrt for
    XR-Transformer's head; `tfxc.recipe.points`) with `own`'s keys on top (`over_recipe`; the result is an
    ordinary config, `recipe` false) and the recipe's reasons, the last of which names what `own` (read from
    `origin`) changed. `seed`: the run's (the best point's members).
    """
    from tfxc.model import runs_in_levels

    point = _point(own.get("recipe", True) if recipe is None else recipe)
    if not point:
        head = own.get("model", {}).get("head", {}).get("name", "")
        # XR-Transformer's schedule read off the data, under the thin config's own keys.
        point = XRT if runs_in_levels(head) else DEFAULT
    chosen, reasons = recipe_config(with_validation(own.get("data", {})), info, point, seed=seed)
    mine = over_recipe(chosen, {key: value for key, value in own.items() if key != "recipe"})
    changed = changed_keys(chosen, {key: value for key, value in mine.items() if key != "comment"})
    reasons.append(f"then {origin}: " + (" ".join(changed) or "nothing changed"))
    return mine, reasons


def changed_keys(recipe: dict, merged: dict) -> list[str]:
    """The dotted keys whose values differ between two configs in the JSON layout, as `key=value` for the
    printout; a registry entry whose `name` changed is one key (`model.head={...}`)."""
    differences = flat_differences(recipe, merged, by_name=True)
    return [f"{key}={json_text(new)}" for key, (_, new) in differences.items()]
