"""The one check every config section's `validate()` runs."""

from __future__ import annotations

from tfxc.errors import ConfigError


def require(condition: bool, message: str) -> None:
    """Raises `ConfigError(message)` unless `condition` holds (the message names the key and its value)."""
    if not condition:
        raise ConfigError(message)
