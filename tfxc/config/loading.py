"""JSON <-> frozen dataclasses, strictly.

* Unknown keys are errors with a suggestion: `model.head: unknown key
  'num_bucket' (did you mean 'num_buckets'?)`.
* Values are type-checked against the field annotations (int, float, str,
  bool, tuple[int, ...], nested dataclasses, registry-polymorphic fields).
* `--set a.b=value` overrides are applied to the JSON tree before parsing, so
  they get the same checks; the value is read as JSON when it parses as JSON
  (`3`, `1e-3`, `true`, `[1,3]`), else as a plain string.
* A config's `imports` run before it is parsed, as far as they are trusted
  (`tfxc.config.imports`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from typing import Any

from tfxc.compat import CONFIG, stamped, unstamped, upgrade
from tfxc.compat.config_steps import moved_key_message, respelled_override
from tfxc.config.imports import import_modules, trusted_imports
from tfxc.compat.spellings import fold_preset
from tfxc.config.schema import ExperimentConfig
from tfxc.data.files import surrogate_in_tree
from tfxc.data.sources import with_validation
from tfxc.errors import ConfigError
from tfxc.registry import did_you_mean, get_registry
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text


def _type_name(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


_ARM_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _convert(value: Any, annotation: Any, path: str, allow_inf: bool = False) -> Any:
    """Checks `value` against `annotation` and converts it (lists -> tuples, ints -> floats).

    Numbers must be finite (JSON parsers accept NaN and Infinity); a float field
    with `allow_inf` metadata may be +/-Infinity.
    """
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, path)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{path}: expected an integer, got {_type_name(value)} {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_type_name(value)} {value!r}")
        if math.isnan(value) or (math.isinf(value) and not allow_inf):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_type_name(value)} {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):  # the first type the value is, in the annotation's order
        arms = typing.get_args(annotation)
        for arm in arms:
            try:
                return _convert(value, arm, path, allow_inf)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {' or '.join(_ARM_NAMES.get(arm, arm.__name__) for arm in arms)}, got "
                          f"{_type_name(value)} {value!r}")
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_type_name(value)} {value!r}")
        return tuple(_convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{path}: unsupported annotation {annotation!r}")  # a bug in the schema, not user input


def _polymorphic(value: Any, field: dataclasses.Field, path: str) -> Any:
    """Parses a {"name": ..., ...} sub-config whose class the registry picks by name."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected an object with a 'name', got {_type_name(value)} {value!r}")
    name = value.get("name", field.metadata["default_name"])
    if not isinstance(name, str):
        raise ConfigError(f"{path}.name: expected a string, got {_type_name(name)} {name!r}")
    try:
        config_cls = get_registry(field.metadata["registry"]).config_class(name)
    except ConfigError as e:
        raise ConfigError(f"{path}.name: {e}") from None
    return from_dict(config_cls, {**value, "name": name}, path)


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Builds the frozen dataclass `cls` from a JSON object, strictly."""
    where = path or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {_type_name(data)} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            moved = moved_key_message(f"{path}.{key}")  # a --set in an old spelling (a file's is upgraded)
            if moved:
                raise ConfigError(moved)
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, fields)}; "
                              f"valid keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    # Sections without registry fields first, each validated as soon as it is built: their
    # mistakes are then reported before the registries (and TensorFlow, which the heads and
    # encoders import) are loaded.
    for name, f in sorted(fields.items(), key=lambda item: _uses_registry(item[1], hints[item[0]])):
        sub = f"{path}.{name}" if path else name
        if "registry" in f.metadata:
            kwargs[name] = _polymorphic(data.get(name), f, sub)
        elif name in data:
            kwargs[name] = _convert(data[name], hints[name], sub, allow_inf=f.metadata.get("allow_inf", False))
        elif dataclasses.is_dataclass(hints[name]):
            kwargs[name] = from_dict(hints[name], {}, sub)  # fills nested polymorphic defaults
        else:
            continue
        if dataclasses.is_dataclass(kwargs[name]):
            kwargs[name].validate(sub)
    return cls(**kwargs)


def _uses_registry(field: dataclasses.Field, annotation: Any) -> bool:
    """Whether parsing `field` needs a registry (itself, or a nested dataclass field of it)."""
    if "registry" in field.metadata:
        return True
    if dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        return any(_uses_registry(f, hints[f.name]) for f in dataclasses.fields(annotation))
    return False


def to_dict(config: Any) -> dict:
    """The inverse of `from_dict`: every field, defaults included."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """'trainer.epochs=3' -> (['trainer', 'epochs'], 3)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    key, raw = assignment.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {assignment!r}: empty key component")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return keys, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Returns a copy of the JSON tree with `--set` assignments applied.

    Setting a registry entry's `name` to another one (`model.head.name=one_vs_all`) starts
    that entry afresh: the old entry's options were for the other head, encoder or loss
    (the rule of a thin config's entries, `tfxc.resolve.over_recipe`). Later `--set`s add to it.
    A key typed in an earlier release's spelling is set in today's (`tfxc.compat`).
    """
    data = json.loads(json.dumps(data))
    for assignment in overrides:
        keys, value = parse_override(assignment)
        keys = respelled_override(keys)
        node = data
        for i, k in enumerate(keys[:-1]):
            child = node.setdefault(k, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {assignment!r}: '{'.'.join(keys[:i + 1])}' is not a section")
            node = child
        if keys[-1] == "name" and len(keys) > 1 and node.get("name", value) != value:
            node.clear()
        node[keys[-1]] = value
    return data


def read_json(path: str) -> dict:
    """Parses a JSON config file; invalid JSON and repeated keys are errors naming the line."""
    if not os.path.exists(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        with open(path, "rb") as f:
            line = f.read()[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e})") from None

    def no_duplicates(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ConfigError(f"{path}:{_line_of_repeat(text, key)}: key '{key}' appears twice in one object "
                                  "(the last would silently win)")
            seen.add(key)
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {top_level_problem(data)}")
    return data


def top_level_problem(data: Any) -> str:
    """The message for a config whose top level is not a JSON object (a list, a string, a number, null)."""
    shown = "" if data is None else " " + _shorten(data)
    return f"a config must be a JSON object {{...}} at the top level, got {_type_name(data)}{shown}"


def _shorten(value: Any, limit: int = 60) -> str:
    text = json_text(value) if _is_json(value) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _line_of_repeat(text: str, key: str) -> int:
    """The line of the second `"key":` in the text (where a repeated key most likely is)."""
    hits = [m.start() for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    return text.count("\n", 0, hits[1] if len(hits) > 1 else 0) + 1


def load_config(path: str | None, overrides: list[str] = (), trust_imports: Any = True,
                model_dir: str | None = None) -> ExperimentConfig:
    """Reads a JSON config (or starts from the defaults if `path` is None), applies overrides, validates.

    An error is attributed to the `--set` assignment whose key it names, else to the file.

    Args:
      path: the JSON file.
      overrides: `--set` assignments.
      trust_imports: which of the config's `imports` may run (see `tfxc.config.imports`); True for the caller's
        own config.
      model_dir: the model directory the config was read from (its `imports` are never taken from it).
    """
    return load_config_data(read_json(path) if path else {}, overrides, origin=path, trust_imports=trust_imports,
                            model_dir=model_dir)


def load_config_data(data: dict, overrides=(), origin: str | None = None, trust_imports: Any = True,
                     model_dir: str | None = None) -> ExperimentConfig:
    """`load_config` for a config already in memory, as a dict in the JSON layout (`origin` names it in errors)."""
    path = origin
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {top_level_problem(data)}" if path else top_level_problem(data))
    data = apply_overrides(upgraded_tree(data, origin), list(overrides))
    try:
        data = fold_preset(data)  # an old spelling (`"preset": "fast"`), still accepted: tfxc.compat.spellings
    except ConfigError as e:
        raise _located(e, path, overrides) from None
    try:
        # Before anything reads the tree: a thin config's unknown keys, the imports and every later
        # message may quote one of its strings.
        problem = surrogate_in_tree(data)
        if problem:
            raise ConfigError(problem)
    except ConfigError as e:
        raise _located(e, path, overrides) from None
    if is_thin(data):
        data = _thin(data)
    try:
        # Modules the caller names in a --set are the caller's own.
        trust = trusted_imports(trust_imports)
        if trust is not True:
            trust = trust | set(_imports_set_by(overrides))
        import_modules(data.get("imports", []), trust, model_dir)
        return from_dict(ExperimentConfig, data).validate()
    except ConfigError as e:
        raise _located(e, path, overrides) from None


def _located(error: ConfigError, path: str | None, overrides) -> ConfigError:
    """`error` with where it comes from in front: the `--set` assignment whose key it names, else the file."""
    culprit = _override_named_by(str(error), overrides)
    if culprit:
        return ConfigError(f"--set {culprit}: {error}")
    if path and overrides:
        return ConfigError(f"{path} (with --set {' '.join(overrides)}): {error}")
    return ConfigError(f"{path}: {error}" if path else str(error))


def _imports_set_by(overrides) -> list[str]:
    """The module names `--set imports=[...]` assignments give."""
    names = []
    for assignment in overrides:
        keys, value = parse_override(assignment)
        if keys == ["imports"] and isinstance(value, list):
            names += [name for name in value if isinstance(name, str)]
    return names


# What a thin config is read for before the recipe is known (the data; the rest may be partial sections).
_THIN_KEYS = ("imports", "recipe", "comment", "data", "runtime")


def is_thin(data: dict) -> bool:
    """Whether config `data` (JSON layout) is thin: `"recipe"` true or a point's name (`RECIPE_POINTS`)."""
    recipe = data.get("recipe")
    return recipe is True or (isinstance(recipe, str) and recipe != "")


def _thin(data: dict) -> dict:
    """A thin config (`"recipe": true` or a point) as far as it can be read without the data: the data section (with
    a validation share held out, as the recipe does) and the runtime. Its other sections hold only what
    differs from the recipe, so they are validated once `tfxc.resolve` has put them on top of it."""
    known = {f.name for f in dataclasses.fields(ExperimentConfig)}
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown key '{key}'{did_you_mean(key, sorted(known))}")
    thin = {key: value for key, value in data.items() if key in _THIN_KEYS}
    if isinstance(thin.get("data", {}), dict):
        thin["data"] = with_validation(thin.get("data", {}))
    return thin


def _override_named_by(message: str, overrides) -> str | None:
    """The override the error is about: the message starts with its key (or a key inside it), or
    starts with its section and names its field (a rule across the section's fields)."""
    match = re.match(r"([A-Za-z_][\w.]*)", message)
    if not match:
        return None
    key = match.group(1)
    for assignment in reversed(list(overrides)):
        target = assignment.split("=", 1)[0].strip()
        if key == target or key.startswith(target + "."):
            return assignment
        section, _, leaf = target.rpartition(".")
        if section == key and re.search(rf"\b{re.escape(leaf)}\b", message[len(key):]):
            return assignment
    return None


def upgraded_tree(tree: dict, origin: str | None = None) -> dict:
    """A config in the JSON layout (read from `origin`), in today's spelling and without its format version
    (`tfxc.compat`: a config without one is read as the oldest, whose steps leave today's spelling as it is).

    Raises:
      ConfigError: the config is from a newer tfxc, or an old spelling cannot be read.
    """
    return unstamped(CONFIG, upgrade(CONFIG, tree, origin))


def config_to_json(config: ExperimentConfig) -> str:
    """`config` as every writer stores it: JSON, its format version first (`tfxc.compat.CONFIG`)."""
    return json_text(stamped(CONFIG, to_dict(config)), indent=2) + "\n"  # names in the user's script, as UTF-8


def save_config(config: ExperimentConfig, path: str) -> None:
    atomic_write_text(path, config_to_json(config))
