"""Name -> (class, config class) registries for the pluggable parts: heads, encoders, losses.

A registry is a dict with good error messages. Built-ins are registered by
explicit imports in `tfxc/heads/__init__.py`, `tfxc/encoders/__init__.py` and
`tfxc/losses/__init__.py`, so nothing depends on import side effects
elsewhere; a config's `imports` list names modules that register more.

Example:
  HEADS = Registry("head")

  @HEADS.register("one_vs_all", config=OneVsAllHeadConfig)
  class OneVsAllHead(Head): ...

  HEADS.build(cfg.model.head, context)     # OneVsAllHead.from_config_dataclass(cfg.model.head, context)
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable

from tfxc.errors import ConfigError


def did_you_mean(word: str, options) -> str:
    """Returns " (did you mean 'x'?)" for the closest option, or ""."""
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry:
    """Maps a name to a builder class and the frozen dataclass that configures it."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, tuple[type, type]] = {}

    def register(self, name: str, *, config: type) -> Callable[[type], type]:
        def decorator(cls: type) -> type:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = (cls, config)
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def _lookup(self, name: str) -> tuple[type, type]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}; "
                              f"known: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> type:
        """The class registered as `name` (for its class-level abilities, before anything is built)."""
        return self._lookup(name)[0]

    def config_class(self, name: str) -> type:
        return self._lookup(name)[1]

    def build(self, config: Any, *args: Any, **kwargs: Any):
        """Builds the registered class from its config: `cls.from_config_dataclass(config, *args, **kwargs)`."""
        return self.get(config.name).from_config_dataclass(config, *args, **kwargs)


# Modules that fill each registry; imported on first use so that reading a
# config does not need to know about Keras layers.
_REGISTRIES = {"head": ("tfxc.heads", "HEADS"), "encoder": ("tfxc.encoders", "ENCODERS"),
               "loss": ("tfxc.losses", "LOSSES")}


def get_registry(kind: str) -> Registry:
    module, name = _REGISTRIES[kind]
    return getattr(importlib.import_module(module), name)
