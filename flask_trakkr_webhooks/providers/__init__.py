"""Providers: the platforms a webhook can deliver to, and how each formats the standard payload.

Each provider is one :class:`~.registry.Provider` in the registry (:mod:`.registry`): its
name, a pure formatter (payload dict in, JSON-serialisable body out), a matcher that
recognises its webhook URLs (:mod:`.detect`) and a label. Built in:

=================  ==================================================
``webhook``        the standard payload, unchanged (the fallback)
``zapier``         the standard payload, unchanged
``make``           the standard payload, unchanged
``discord``        one embed (:mod:`.discord`)
``slack``          Block Kit message (:mod:`.slack`)
``teams_webhook``  message with an Adaptive Card (:mod:`.teams`)
=================  ==================================================

A host adds a provider, or overrides a built-in one, with one call::

    providers.register("pagerduty", to_pagerduty, matches=lambda host, path: host == "events.pagerduty.com")

after which :func:`detect_provider` answers ``pagerduty`` for its URLs. A provider name
nobody registered gets the standard payload, so an unexpected name still delivers every field.
"""

from __future__ import annotations

from .detect import detect_provider
from .discord import format_discord
from .generic import format_generic
from .registry import (
    GENERIC,
    PROVIDERS,
    Formatter,
    Matcher,
    Provider,
    detection_order,
    entries,
    format_body,
    get,
    get_formatter,
    is_registered,
    names,
    register,
    registered,
    unregister,
)
from .slack import format_slack
from .teams import format_teams

__all__ = [
    "GENERIC",
    "PROVIDERS",
    "Formatter",
    "Matcher",
    "Provider",
    "detect_provider",
    "detection_order",
    "entries",
    "format_body",
    "format_discord",
    "format_generic",
    "format_slack",
    "format_teams",
    "get",
    "get_formatter",
    "is_registered",
    "names",
    "register",
    "registered",
    "unregister",
]
