"""Name -> (class, config class) registries for the pluggable parts of a model.

A registry is a dict with good error messages. Built-ins are registered by
explicit imports in `tfxc/heads/__init__.py` and `tfxc/encoders/__init__.py`,
so nothing depends on import side effects elsewhere.

Example:
  HEADS = Registry("head")

  @HEADS.register("one_vs_all", config=OneVsAllHeadConfig)
  class OneVsAllHead(Head): ...

  HEADS.build(cfg.model.head, num_labels=159)
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
            cls.registered_name = name
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def _lookup(self, name: str) -> tuple[type, type]:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}; "
                              f"known: {', '.join(self.names())}")
        return self._entries[name]

    def config_class(self, name: str) -> type:
        return self._lookup(name)[1]

    def build(self, config: Any, **kwargs: Any):
        """Builds the registered class from its config (`cls.from_config_dataclass(config, **kwargs)`)."""
        cls, _ = self._lookup(config.name)
        return cls.from_config_dataclass(config, **kwargs)


# Modules that fill each registry; imported on first use so that reading a
# config does not need to know about Keras layers.
_REGISTRY_MODULES = {"head": "tfxc.heads", "encoder": "tfxc.encoders"}


def get_registry(kind: str) -> Registry:
    module = importlib.import_module(_REGISTRY_MODULES[kind])
    return getattr(module, kind.upper() + "S")
