"""Old spellings of the Python API, still read with a warning that names today's spelling (optax's
`deprecations.py`): each entry says what changed and when, and goes once nobody writes it."""

from __future__ import annotations

import warnings
from typing import Any, Callable


class FormatWarning(UserWarning):
    """A record or config in an older spelling was read and upgraded; writing it in today's silences this."""


def fit_arguments(config: Any, X: Any, Y: Any, old_order: tuple, is_config: Callable[[Any], bool],
                  stacklevel: int = 1) -> tuple:
    """(config, X, Y) of `tfxc.fit(X, Y, config=...)`, or of the order before 2026-11-26, `fit(config, X, Y)`:
    told apart by the first argument, which is then a config (`is_config`: a path, a dict, an
    `ExperimentConfig`); that order warns (`DeprecationWarning`) with today's spelling.

    Args:
      config, X, Y: fit's `config` keyword and first two positional arguments.
      old_order: fit's positional arguments after the first two (one: Y of the old order).
      stacklevel: how many calls up from the caller of this function the user's call of fit is (the
        warning points there).

    Raises:
      TypeError: any other use of positional arguments.
    """
    if not old_order:
        return config, X, Y
    if len(old_order) == 1 and config is None and is_config(X):
        warnings.warn("tfxc.fit(config, X, Y) is the argument order of earlier releases; write "
                      "tfxc.fit(X, Y, config=config)", DeprecationWarning, stacklevel=stacklevel + 2)
        return X, Y, old_order[0]
    raise TypeError("fit takes the features and labels as its positional arguments, e.g. "
                    "fit(X, Y, config='configs/x.json', model_dir='runs/x'); the rest by keyword")


# Names of the Python API given up, {old: (today's, since)}; the old one still resolves, with a warning.
RENAMED = {"Classifier": ("Predictor", "2026-11-28: one interface for every trained model, `tfxc.load`")}


def renamed(module: str, name: str, namespace: dict) -> Any:
    """`namespace[today's name]` for a `name` of `RENAMED` looked up on `module` (its `__getattr__`), with a
    `DeprecationWarning` naming today's spelling.

    Raises:
      AttributeError: `name` was never one of `module`'s.
    """
    if name not in RENAMED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new, since = RENAMED[name]
    warnings.warn(f"{module}.{name} is the name of earlier releases ({since}); write {module}.{new}",
                  DeprecationWarning, stacklevel=3)
    return namespace[new]

