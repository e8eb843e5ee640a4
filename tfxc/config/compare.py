"""Configs as a model directory keeps them, and what one changes from another."""

from __future__ import annotations

import dataclasses
import os


def stored_form(config):
    """`config` (an `ExperimentConfig`) as a model directory keeps it: its data paths absolute (against the
    working directory), so that `tfxc.evaluate` or `tfxc.load` finds the data from any directory."""
    from tfxc.data.sources import with_absolute_paths

    return dataclasses.replace(config, data=with_absolute_paths(config.data))


def stored_tree(tree: dict) -> dict:
    """A config in its JSON layout with the data paths made absolute, as `stored_form` makes them."""
    from tfxc.data.sources import SOURCE_PATH_FIELDS

    data = tree.get("data")
    if not isinstance(data, dict):
        return tree
    paths = SOURCE_PATH_FIELDS + ("dir",)
    return {**tree, "data": {key: os.path.abspath(value) if key in paths and isinstance(value, str) and value
                             else value for key, value in data.items()}}


def same_stored_config(text: str | None, other: str) -> bool:
    """Whether two config.json texts hold the same config, read in today's spelling (`tfxc.compat`): a
    model directory's config written before configs were versioned equals today's text of the same config."""
    import json

    from tfxc.compat import TRAINED_CONFIG, unstamped, upgrade
    from tfxc.errors import TfxcError

    if text == other:
        return True
    try:
        trees = [unstamped(TRAINED_CONFIG, upgrade(TRAINED_CONFIG, json.loads(t))) for t in (text, other)]
    except (TypeError, ValueError, AttributeError, TfxcError):  # no text, not JSON, a newer tfxc's: differs
        return False
    return trees[0] == trees[1]


def flat_differences(old: dict, new: dict, prefix: str = "", *, by_name: bool = False) -> dict[str, tuple]:
    """{dotted key: (old value, new value)} for every leaf that differs (missing = None), in key order.

    With `by_name`, a registry entry (an object with a `name`) whose name differs is one difference, the
    entries whole: the options of another head, encoder or optimizer are not changes of the old one's.
    """
    out = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict) and (not by_name or a.get("name") == b.get("name")):
            out.update(flat_differences(a, b, name + ".", by_name=by_name))
        elif a != b:
            out[name] = (a, b)
    return out
