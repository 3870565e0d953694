"""The registry of providers: one entry per provider, with its formatter and its URL rule.

A :class:`Provider` is a name, a pure formatter (standard payload in, JSON body out), a
matcher saying which webhook URLs belong to it (or ``None`` when it is only chosen
explicitly) and a short label for docs. The six built-in providers are always present;
a host adds its own, or overrides a built-in one, with :func:`register`.

The registry is module-global and copy-on-write: each change builds a new immutable
snapshot, so a reader (a request detecting a URL, a worker formatting a body) never sees a
half-made change and needs no lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, cast

from .. import pacing
from ..events import EventType
from .discord import format_discord
from .generic import format_generic
from .matchers import match_discord, match_make, match_slack, match_teams, match_zapier
from .slack import format_slack
from .teams import format_teams

#: A formatter: the standard payload in, the JSON body (object or array) out. Must be pure.
Formatter = Callable[[dict[str, Any]], Any]
#: A built-in chat formatter also takes the event type's row, for a host type's own wording.
WordedFormatter = Callable[[dict[str, Any], "EventType | None"], Any]

#: A URL matcher: ``(host, path) -> bool``. ``host`` is lower-cased without a trailing dot;
#: ``path`` is as written in the URL (``/`` when empty), without the query string.
Matcher = Callable[[str, str], bool]

#: The provider the API falls back to: the standard payload, chosen when no matcher claims a URL.
GENERIC = "webhook"

# Stored in webhooks.provider, a String(32) column, and shown in the API: keep it a plain token.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
_NAME_RULE = "1-32 letters, digits, '_', '-' or '.', starting with a letter or digit"


def _check_name(name: object) -> str:
    """``name`` when it is a valid provider name; ``ValueError`` saying why otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"provider name must be a non-empty string, got {name!r}")
    if not _NAME.match(name):
        raise ValueError(f"provider name {name!r} is not valid: use {_NAME_RULE}")
    return name


@dataclass(frozen=True)
class Provider:
    """One provider: its name, how it formats a payload and how it recognises its URLs."""

    #: The name stored on a webhook and shown in the API (``slack``, ``pagerduty``...).
    name: str
    #: The standard payload in, the JSON body out; pure.
    formatter: Formatter
    #: Which URLs are this provider's, or ``None`` when it is only chosen explicitly.
    matches: Matcher | None = None
    #: A short human description for docs (the OpenAPI document, the README).
    label: str = ""
    #: True for the six entries shipped with the package (overrides included).
    builtin: bool = field(default=False, compare=False)
    #: The formatter also takes the event type's row (:class:`~..events.EventType`) as its
    #: second argument, so host-registered types get their own chat wording.
    worded: bool = field(default=False, compare=False)
    #: The platform's published per-endpoint limit: deliveries to its URLs are paced to it
    #: unless the webhook or ``TRAKKR_WEBHOOKS_RATE_LIMITS`` says otherwise (:mod:`..pacing`).
    rate_limit: pacing.RateLimit = ()
    #: Its host serves many independent endpoints (one per customer channel): concurrency
    #: is capped per webhook URL there, not per host.
    shared_host: bool = False

    def __post_init__(self) -> None:
        """Refuse an entry that could not work, with a message that names the provider."""
        _check_name(self.name)
        if not callable(self.formatter):
            raise TypeError(f"formatter for {self.name!r} must be callable, got {type(self.formatter).__name__}")
        if self.matches is not None and not callable(self.matches):
            raise TypeError(
                f"matches for {self.name!r} must be callable (host, path) -> bool or None, "
                f"got {type(self.matches).__name__}"
            )
        if not isinstance(self.label, str):
            raise TypeError(f"label for {self.name!r} must be a string, got {type(self.label).__name__}")
        try:
            object.__setattr__(self, "rate_limit", pacing.parse(self.rate_limit))
        except ValueError as exc:
            raise ValueError(f"rate_limit for {self.name!r}: {exc}") from None


#: The platforms' published per-webhook limits (docs: providers, "Pacing").
#: Discord: 5 requests per 2 s per webhook, and 30 messages per minute per channel.
DISCORD_RATE_LIMIT = pacing.parse([(5, 2), (30, 60)])
#: Slack: about one message per second per incoming webhook (short bursts tolerated).
SLACK_RATE_LIMIT = pacing.parse([(1, 1)])
#: Microsoft Teams incoming webhooks (connectors): 4 per second, 60 per 30 s, 100 per hour,
#: 150 per 2 hours, 1,800 per day.
TEAMS_RATE_LIMIT = pacing.parse([(4, 1), (60, 30), (100, 3600), (150, 7200), (1800, 86400)])

_BUILTIN: Mapping[str, Provider] = MappingProxyType(
    {
        p.name: p
        for p in (
            Provider("webhook", format_generic, None, "Generic webhook: the standard payload", builtin=True),
            Provider("zapier", format_generic, match_zapier, "Zapier catch hook: the standard payload", builtin=True),
            Provider(
                "make", format_generic, match_make, "Make (Integromat) webhook: the standard payload", builtin=True
            ),
            Provider(
                "discord",
                format_discord,
                match_discord,
                "Discord webhook: one embed",
                builtin=True,
                worded=True,
                rate_limit=DISCORD_RATE_LIMIT,
                shared_host=True,
            ),
            Provider(
                "slack",
                format_slack,
                match_slack,
                "Slack incoming webhook: Block Kit message",
                builtin=True,
                worded=True,
                rate_limit=SLACK_RATE_LIMIT,
                shared_host=True,
            ),
            Provider(
                "teams_webhook",
                format_teams,
                match_teams,
                "Microsoft Teams: an Adaptive Card",
                builtin=True,
                worded=True,
                rate_limit=TEAMS_RATE_LIMIT,
                shared_host=True,
            ),
        )
    }
)

#: The built-in provider names, in the product page's order (the order of the table above).
PROVIDERS: tuple[str, ...] = tuple(_BUILTIN)


@dataclass(frozen=True)
class _Snapshot:
    """The registry at one moment; replaced whole on every change (copy-on-write)."""

    #: Host registrations (new names and overrides of built-ins), in registration order.
    host: Mapping[str, Provider]
    #: Every current entry: built-ins first in product-page order, then host ones.
    entries: Mapping[str, Provider]
    #: The providers detection asks, in order: host-added ones with a matcher, then built-ins.
    detect_order: tuple[Provider, ...]


def _snapshot(host: Mapping[str, Provider]) -> _Snapshot:
    """Build the snapshot for the host registrations ``host``."""
    entries = {name: host.get(name, builtin) for name, builtin in _BUILTIN.items()}
    added = [p for name, p in host.items() if name not in _BUILTIN]
    entries.update((p.name, p) for p in added)
    # Host-added providers first, so a host can claim URLs a built-in would (its own Slack-
    # compatible proxy); built-ins, overridden or not, keep their product-page slot.
    order = [p for p in added if p.matches is not None]
    order += [entries[name] for name in PROVIDERS if entries[name].matches is not None]
    return _Snapshot(MappingProxyType(dict(host)), MappingProxyType(entries), tuple(order))


_lock = threading.Lock()  # serialises writers only; readers take the current snapshot
_current: _Snapshot = _snapshot({})


def register(
    name: str,
    formatter: Formatter,
    *,
    matches: Matcher | None = None,
    label: str | None = None,
    rate_limit: Any = None,
    shared_host: bool | None = None,
) -> Provider:
    """Add provider ``name`` (or override a built-in one) and return its entry.

    ``formatter(payload) -> dict | list`` must be pure and return something ``json.dumps``
    accepts. ``matches(host, path) -> bool`` makes :func:`~.detect.detect_provider` choose
    this provider for its URLs; without it the provider is only used when chosen explicitly.
    ``rate_limit`` (windows such as ``[{"requests": 5, "per_seconds": 2}]`` or ``["5/2s"]``)
    paces every endpoint of this provider by default; ``shared_host=True`` caps concurrency
    per webhook URL instead of per host (a platform serving many customers' endpoints).
    For a built-in name, ``matches``, ``label``, ``rate_limit`` and ``shared_host`` default to
    the built-in ones (so ``register("slack", func)`` changes only how Slack bodies look). Registering a name
    again replaces its previous registration.

    Raises ``ValueError`` for a bad name and ``TypeError`` for a non-callable formatter or
    matcher or a non-string label.
    """
    global _current
    _check_name(name)
    base = _BUILTIN.get(name)
    if base is not None:
        entry = replace(
            base,
            formatter=formatter,
            matches=base.matches if matches is None else matches,
            label=base.label if label is None else label,
            worded=False,  # a host's formatter takes the payload only
            rate_limit=base.rate_limit if rate_limit is None else rate_limit,
            shared_host=base.shared_host if shared_host is None else shared_host,
        )
    else:
        entry = Provider(
            name,
            formatter,
            matches,
            "" if label is None else label,
            rate_limit=() if rate_limit is None else rate_limit,
            shared_host=bool(shared_host),
        )
    with _lock:
        host = dict(_current.host)
        host[name] = entry
        _current = _snapshot(host)
    return entry


def unregister(name: str) -> None:
    """Drop the host's registration of ``name``; a built-in provider gets its built-in entry back.

    Unknown names are ignored, so cleanup code can call it unconditionally.
    """
    global _current
    with _lock:
        if name not in _current.host:
            return
        host = dict(_current.host)
        del host[name]
        _current = _snapshot(host)


def get(name: str) -> Provider | None:
    """The current entry for ``name``, or ``None`` when no provider has that name."""
    return _current.entries.get(name) if isinstance(name, str) else None


def is_registered(name: object) -> bool:
    """True when ``name`` is a provider a webhook may use (built-in or host-registered)."""
    return isinstance(name, str) and name in _current.entries


def names() -> tuple[str, ...]:
    """Every provider name: built-ins first in product-page order, then host ones in registration order."""
    return tuple(_current.entries)


def registered() -> tuple[str, ...]:
    """Alias of :func:`names` (its name before the registry held whole providers)."""
    return names()


def entries() -> tuple[Provider, ...]:
    """Every current :class:`Provider`, in the order of :func:`names` (for docs and listings)."""
    return tuple(_current.entries.values())


def detection_order() -> tuple[Provider, ...]:
    """The providers :func:`~.detect.detect_provider` asks, in order (only those with a matcher)."""
    return _current.detect_order


def get_formatter(name: str) -> Formatter:
    """The formatter registered for ``name``; unknown names get the generic (unchanged) body."""
    entry = get(name)
    return format_generic if entry is None else entry.formatter


def format_body(provider: str, payload: dict[str, Any], *, event_type: EventType | None = None) -> Any:
    """The JSON-serialisable body for ``provider`` built from ``payload`` (pure).

    ``event_type`` is the event type's row, for a host-registered type's chat wording (the
    built-in chat formatters use it; the built-in types' rows are found by name anyway).
    A webhook's ``template``, when set, replaces this: see :mod:`flask_trakkr_webhooks.templating`.
    """
    entry = get(provider)
    if entry is not None and entry.worded and event_type is not None:
        return cast(WordedFormatter, entry.formatter)(payload, event_type)
    return get_formatter(provider)(payload)


__all__ = [
    "GENERIC",
    "PROVIDERS",
    "Formatter",
    "Matcher",
    "Provider",
    "detection_order",
    "entries",
    "format_body",
    "get",
    "get_formatter",
    "is_registered",
    "names",
    "register",
    "registered",
    "unregister",
]
