"""Provider formatters: turn the standard event payload into the body a platform accepts.

Minimal interface first (bodies are the payload unchanged); the Slack, Discord and
Teams formatters are registered as they land.
"""
from __future__ import annotations

from typing import Any, Callable

Formatter = Callable[[dict], "dict | list"]

_REGISTRY: dict[str, Formatter] = {}


def _identity(payload: dict) -> dict:
    """Generic body: the standard payload unchanged (every field mappable)."""
    return payload


def register(name: str, func: Formatter) -> None:
    """Register (or override) the formatter used for provider ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError("provider name must be a non-empty string")
    if not callable(func):
        raise TypeError("formatter must be callable")
    _REGISTRY[name] = func


def get_formatter(name: str) -> Formatter:
    """The formatter for ``name``; unknown providers get the generic (unchanged) body."""
    return _REGISTRY.get(name, _identity)


def format_body(provider: str, payload: dict) -> Any:
    """Return the JSON-serialisable body for ``provider`` built from ``payload`` (pure)."""
    return get_formatter(provider)(payload)


for _name in ("webhook", "zapier", "make", "discord", "slack", "teams_webhook"):
    register(_name, _identity)
