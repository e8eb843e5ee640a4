"""Old spellings still accepted, each with a one-line note naming the new one (issue 57: one meaning per word).

The recipe's points along the speed–accuracy frontier (fast, default, best, xrt) were once called
"presets", the word keras-hub uses for a saved backbone (`encoder.preset`, `tfxc.extract --preset`).
They are now named by `recipe`: `"recipe": "fast"` in a thin config, `tfxc.train --recipe fast`,
`tfxc.fit(..., recipe="fast")`. What users already type keeps working, through here only:

* the config key `"preset"` (a thin config's file, `--set preset=...`, a dict given to `tfxc.fit`, and the
  `"preset": ""` every model directory's config.json held): `fold_preset`;
* `tfxc.train --preset` and `tfxc.fit(preset=...)`: `point_of`.

Flags renamed for the same reason, one interface for every trained model (`tfxc.load`), go through
`flag_of`: `tfxc.predict --saved-model` (today `--model`, which also takes model directories and ensembles).
"""

from __future__ import annotations

import logging

from tfxc.errors import ConfigError

log = logging.getLogger("tfxc.config")
_noted: set[str] = set()


def note(old: str, new: str) -> None:
    """Says once a process that `old` is an old spelling of `new`."""
    if old not in _noted:
        _noted.add(old)
        log.warning("%s is deprecated; write %s", old, new)


def fold_preset(tree: dict) -> dict:
    """Config `tree` (JSON layout) with an old `"preset"` key folded into `"recipe"`: `"recipe": true,
    "preset": "fast"` is `"recipe": "fast"`; an empty one (what whole configs wrote) is dropped."""
    if not isinstance(tree, dict) or "preset" not in tree:
        return tree
    tree = dict(tree)
    point = tree.pop("preset")
    if point in ("", None):
        return tree
    note(f'"preset": "{point}"', f'"recipe": "{point}"')
    if tree.get("recipe") in (None, False):
        raise ConfigError(f"preset '{point}' chooses among the recipe's configs: it needs a thin config; write "
                          f"\"recipe\": \"{point}\"")
    tree["recipe"] = point
    return tree


def point_of(recipe: str | None, preset: str | None, old: str, new: str) -> str | None:
    """The recipe's point of a caller given `recipe` (the new spelling `new`) or `preset` (the old `old`)."""
    return flag_of(recipe, preset, old, new, "points")


def flag_of(value: str | None, old_value: str | None, old: str, new: str, what: str = "values") -> str | None:
    """The value a caller gave by today's spelling `new` (`value`) or an old one `old` (`old_value`, noted);
    `old` and `new` are formats of the value, e.g. "--saved-model {}".

    Raises:
      ConfigError: both spellings were given, with different values (`what` they name: "points", ...).
    """
    if old_value is None:
        return value
    note(old.format(old_value), new.format(old_value))
    if value is not None and value != old_value:
        raise ConfigError(f"{old.format(old_value)} and {new.format(value)} name two {what}; give {new.format(value)}")
    return old_value
