"""What a chat message says about one event, independent of any platform's markup.

:func:`describe` turns the standard payload into a :class:`Message` (title, summary, key
figures, link, tone). The Slack, Discord and Teams formatters only lay that out. It never
raises: every part of the payload may be missing or of an unexpected type.

The words come from the event type's row in the table of :mod:`flask_trakkr_webhooks.events`
(its ``chat`` function and ``link``); this module renders values and adds what every type
shares (further scalar fields as figures, a fallback link). Built-in types are looked up by
name in that module-level, immutable table. A host-registered type's row lives in the app's
``EventTypes`` registry, which this pure module cannot see, so whoever holds the registry
passes it: ``describe(payload, spec=types.spec(event_type))``. Without it (or for a type
nobody registered) the message uses the generic wording: a 🔔 title made from the type's name.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from ..events import BAD, GENERIC_CHAT, GOOD, NEUTRAL, TONES, ChatText, ChatView, EventType, builtin_spec
from .text import humanize, strip_bidi, to_text

__all__ = [
    "BAD",
    "GOOD",
    "MAX_URL",
    "NEUTRAL",
    "Fact",
    "Message",
    "describe",
    "format_time",
    "parse_timestamp",
    "safe_url",
]

#: Longest URL we turn into a link (Discord and Slack reject longer ones in practice).
MAX_URL = 2000


@dataclass
class Fact:
    """One key figure: a short label and its display value."""

    label: str
    value: str


@dataclass
class Message:
    """A platform-neutral message for one event."""

    event_type: str
    title: str
    summary: str
    brand: str
    facts: list[Fact] = field(default_factory=list)
    link_url: str | None = None
    link_label: str = "Open link"
    timestamp: datetime | None = None
    timestamp_raw: str | None = None
    tone: str = NEUTRAL


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    """Scalar display text, stripped; containers and None give ''."""
    if isinstance(value, (dict, list)) or value is None:
        return ""
    return to_text(value).strip()


def safe_url(value: Any) -> str | None:
    """``value`` if it is a plain absolute http(s) URL safe to put in a link, else None."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        return None
    # Format characters (bidi controls, zero-width ones) would make the shown URL differ from the target.
    if any(ch.isspace() or ch in '<>|"\\`' or ord(ch) < 0x20 or unicodedata.category(ch) == "Cf" for ch in value):
        return None
    try:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return value


def _host(value: Any) -> str:
    """The host name of ``value`` when it is a safe link, else ``""``."""
    url = safe_url(value)
    return (urlsplit(url).hostname or "") if url else ""


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string, or None."""
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def format_time(moment: datetime) -> str:
    """``2024-05-01 12:00 UTC``: readable in every client, no locale guessing."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _scalar_facts(data: dict[str, Any], skip: frozenset[str]) -> list[Fact]:
    """Key figures from top-level scalar data fields (str, number, bool), in data order."""
    facts: list[Fact] = []
    for key, value in data.items():
        if not isinstance(key, str) or key in skip or isinstance(value, (dict, list)) or value is None:
            continue
        text = _str(value)
        if text:
            facts.append(Fact(humanize(key), text))
    return facts


def _first_link(data: dict[str, Any]) -> tuple[str | None, str]:
    """The first top-level ``*url`` field holding a safe URL, with a label from its key."""
    for key, value in data.items():
        if isinstance(key, str) and key.lower().endswith("url") and safe_url(value):
            stem = key[:-3].strip("_- ")
            return value, f"Open {humanize(stem).lower()}" if stem else "Open link"
    return None, "Open link"


def _wording(spec: EventType | None, view: ChatView) -> ChatText:
    """The row's wording for ``view``; the generic wording when it has none or its function fails."""
    if spec is not None and spec.chat is not None:
        try:
            said: object = spec.chat(view)
        except Exception:  # a host's wording function must not stop a delivery
            said = None
        if isinstance(said, ChatText):
            return said
    return GENERIC_CHAT(view)


def describe(payload: Any, spec: EventType | None = None) -> Message:
    """Build the :class:`Message` for ``payload`` (the standard webhook payload); never raises.

    ``spec`` is the row of the payload's event type when that is host-registered (see the
    module docstring); built-in types are found by name.
    """
    payload = _dict(payload)
    event = _dict(payload.get("event"))
    data = _dict(event.get("data"))
    brand_obj = _dict(payload.get("brand"))
    brand = _str(brand_obj.get("name")) or _str(brand_obj.get("id")) or "your brand"
    event_type = _str(event.get("type"))
    if spec is None:
        spec = builtin_spec(event_type)

    name = humanize(event_type) if event_type else "Event"
    said = _wording(spec, ChatView(event_type, name, brand, data, text=_str, host=_host))
    title = said.title
    tone = said.tone if said.tone in TONES else NEUTRAL
    # Any further scalar fields a host adds still show up, after the event's own figures.
    facts = [Fact(label, value) for label, value in said.facts] + _scalar_facts(data, said.covers)

    link_key, link_label = spec.link if spec is not None and spec.link else (None, "Open link")
    link_url = safe_url(data.get(link_key)) if link_key else None
    if link_url is None:
        link_url, generic_label = _first_link(data)
        if not link_key:
            link_label = generic_label

    # Every text here may hold data: no direction overrides reach any platform. Removing
    # them can empty a text, so the fallbacks are applied after it.
    title = strip_bidi(title).strip() or "Event"
    summary = strip_bidi(_str(payload.get("summary"))).strip() or title
    facts = [Fact(strip_bidi(f.label).strip() or "Value", strip_bidi(f.value).strip()) for f in facts]
    raw_ts = event.get("timestamp")
    return Message(
        event_type=strip_bidi(event_type).strip() or "event",
        title=title,
        summary=summary,
        brand=strip_bidi(brand).strip() or "your brand",
        facts=[f for f in facts if f.value],
        link_url=link_url,
        link_label=strip_bidi(link_label).strip() or "Open link",
        timestamp=parse_timestamp(raw_ts),
        timestamp_raw=raw_ts if isinstance(raw_ts, str) else None,
        tone=tone,
    )
