"""Provider formatters: turn the standard event payload into the body a platform accepts.

``format_body(provider, payload)`` looks the provider up in a registry of pure functions
(payload dict in, JSON-serialisable body out). Built in:

=================  ==================================================
``webhook``        the standard payload, unchanged
``zapier``         the standard payload, unchanged
``make``           the standard payload, unchanged
``slack``          Block Kit message (:mod:`.slack`)
``discord``        one embed (:mod:`.discord`)
``teams_webhook``  message with an Adaptive Card (:mod:`.teams`)
=================  ==================================================

A host adds or overrides one with :func:`register`. A provider name nobody registered gets
the standard payload, so an unexpected name still delivers every field.
"""
from __future__ import annotations

from typing import Any, Callable

from .discord import format_discord
from .generic import format_generic
from .slack import format_slack
from .teams import format_teams

#: A formatter: the standard payload in, the JSON body (object or array) out. Must be pure.
Formatter = Callable[[dict], Any]

#: The provider names the product page lists, in its order.
PROVIDERS: tuple[str, ...] = ("webhook", "zapier", "make", "discord", "slack", "teams_webhook")

_BUILTIN: dict[str, Formatter] = {
    "webhook": format_generic,
    "zapier": format_generic,
    "make": format_generic,
    "discord": format_discord,
    "slack": format_slack,
    "teams_webhook": format_teams,
}
_REGISTRY: dict[str, Formatter] = dict(_BUILTIN)


def register(name: str, func: Formatter) -> None:
    """Register (or override) the formatter for provider ``name``.

    ``func(payload) -> dict | list`` must be pure and return something ``json.dumps`` accepts.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("provider name must be a non-empty string")
    if not callable(func):
        raise TypeError(f"formatter for {name!r} must be callable, got {type(func).__name__}")
    _REGISTRY[name] = func


def unregister(name: str) -> None:
    """Drop a host's formatter for ``name``; a built-in provider gets its built-in one back."""
    if name in _BUILTIN:
        _REGISTRY[name] = _BUILTIN[name]
    else:
        _REGISTRY.pop(name, None)


def get_formatter(name: str) -> Formatter:
    """The formatter registered for ``name``; unknown names get the generic (unchanged) body."""
    return _REGISTRY.get(name, format_generic)


def registered() -> tuple[str, ...]:
    """Names that currently have a formatter, built-in ones first."""
    return tuple(_REGISTRY)


def format_body(provider: str, payload: dict) -> Any:
    """The JSON-serialisable body for ``provider`` built from ``payload`` (pure).

    A webhook's ``template``, when set, replaces this: see :mod:`flask_trakkr_webhooks.templating`.
    """
    return get_formatter(provider)(payload)


def detect_provider(url: str) -> str:
    """Re-export of :func:`flask_trakkr_webhooks.providers.detect.detect_provider` (imported lazily)."""
    from .detect import detect_provider as _detect  # owned by the API module; loaded on first use

    return _detect(url)


__all__ = [
    "PROVIDERS", "Formatter", "detect_provider", "format_body", "format_discord", "format_generic",
    "format_slack", "format_teams", "get_formatter", "register", "registered", "unregister",
]
