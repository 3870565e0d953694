"""Discord: one embed (title, description, fields, timestamp, footer) in the Trakkr green accent.

Limits from Discord's embed documentation: title 256 characters, description 4096, at most
25 fields with name 256 and value 1024, footer text 2048, author name 256, and 6000
characters across title, description, field names and values, footer and author together.
``allowed_mentions: {"parse": []}`` stops data such as ``@everyone`` from pinging anyone;
every text is also :func:`~.text.defang`-ed, so data cannot make a masked link
(``[click](https://evil.example)``), an autolink or a mention pill in any embed text.
Lengths are UTF-16 units.
"""

from __future__ import annotations

from typing import Any

from ..events import EventType
from .content import Fact, Message, describe
from .text import defang, truncate, ulen

#: Trakkr green (#22C55E), the accent of every embed; a drop is told by its emoji and wording.
ACCENT_COLOR = 0x22C55E

TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
TOTAL_MAX = 6000
#: Our own caps, below Discord's, so the fields still fit inside the 6000 total.
DESCRIPTION_BUDGET = 2000
FOOTER_BUDGET = 256
FIELD_NAME_BUDGET = 100
FIELD_VALUE_BUDGET = 500
#: Values this short sit side by side (Discord shows up to three inline fields per row).
INLINE_UNDER = 40


def _field(name: str, value: str) -> dict[str, Any]:
    value = value or "\u2014"  # Discord rejects an empty field value
    return {"name": name, "value": value, "inline": ulen(value) <= INLINE_UNDER}


def _fields(facts: list[Fact], room: int) -> list[dict[str, Any]]:
    """As many facts as fit both the 25-field limit and ``room`` characters; a last field counts the rest."""
    out: list[dict[str, Any]] = []
    reserve = 40  # room kept for the "More" field
    for fact in facts:
        if len(out) == FIELDS_MAX - 1 and len(facts) > FIELDS_MAX:
            break
        name = truncate(defang(fact.label), FIELD_NAME_BUDGET) or "Value"
        limit = min(FIELD_VALUE_BUDGET, room - ulen(name) - reserve)
        if limit < 10:  # a field cut to a few characters says nothing
            break
        field = _field(name, truncate(defang(fact.value), limit))
        out.append(field)
        room -= ulen(field["name"]) + ulen(field["value"])
    left = len(facts) - len(out)
    if left:
        more = _field("More", f"+{left} more fields")
        if ulen(more["name"]) + ulen(more["value"]) <= room:
            out.append(more)
    return out


def _embed(msg: Message) -> dict[str, Any]:
    title = truncate(defang(msg.title), TITLE_MAX)
    description = truncate(defang(msg.summary), DESCRIPTION_BUDGET) if msg.summary != msg.title else ""
    footer = truncate(defang(f"Trakkr \u00b7 {msg.brand} \u00b7 {msg.event_type}"), FOOTER_BUDGET)
    embed: dict[str, Any] = {"title": title}
    if description:
        embed["description"] = description
    if msg.link_url:
        embed["url"] = msg.link_url
    embed["color"] = ACCENT_COLOR
    room = TOTAL_MAX - ulen(title) - ulen(description) - ulen(footer)
    fields = _fields(msg.facts, room)
    if fields:
        embed["fields"] = fields
    embed["footer"] = {"text": footer}
    if msg.timestamp is not None:
        embed["timestamp"] = msg.timestamp.isoformat(timespec="seconds").replace("+00:00", "Z")
    return embed


def format_discord(payload: dict[str, Any], event_type: EventType | None = None) -> dict[str, Any]:
    """The Discord webhook body for ``payload``; pure, never raises, within Discord's limits."""
    return {"embeds": [_embed(describe(payload, event_type))], "allowed_mentions": {"parse": []}}
