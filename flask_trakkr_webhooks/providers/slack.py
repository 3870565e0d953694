"""Slack: a Block Kit message (header, summary section, fields, context) plus a ``text`` fallback.

Limits from Slack's Block Kit reference: header ``plain_text`` 150 characters, section
``text`` 3000, at most 10 section ``fields`` of 2000 each, context at most 10 elements,
50 blocks per message. Slack also answers ``msg_blocks_too_long`` for messages whose
blocks hold roughly 13 000 characters in all, below every documented per-field limit, so
we cap fields at :data:`FIELD_BUDGET` and keep the whole message under :data:`TOTAL_BUDGET`.
User text goes into ``mrkdwn`` with ``&``, ``<`` and ``>`` escaped, so data cannot
create mentions (``<!channel>``) or links; it is also :func:`~.text.defang`-ed and every
``mrkdwn`` object is ``verbatim`` (Slack does not auto-link URLs or names in it), and
bidirectional controls are removed (:func:`~.content.describe`). Lengths are UTF-16 units.
"""

from __future__ import annotations

from typing import Any

from ..events import EventType
from .content import Message, describe, format_time
from .text import defang, fit_escaped, truncate, ulen

HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
BLOCKS_MAX = 50
#: Our own caps, below Slack's, so the whole message stays clear of ``msg_blocks_too_long``.
FIELD_BUDGET = 500
CONTEXT_ELEMENT_BUDGET = 300
FALLBACK_MAX = 3000
TOTAL_BUDGET = 12000

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(ch: str) -> str:
    """Escape one character for Slack ``mrkdwn``."""
    return _ESCAPES.get(ch, ch)


def mrkdwn(text: str, limit: int) -> str:
    """Data ``text`` defanged, escaped for ``mrkdwn`` and cut (with an ellipsis) to ``limit`` UTF-16 units."""
    return fit_escaped(defang(text, angle=False), limit, escape)  # '<' is escaped below


def _text(text: str) -> dict[str, Any]:
    """A ``mrkdwn`` text object; ``verbatim`` so Slack auto-links nothing the data holds."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _field(label: str, value: str) -> dict[str, Any]:
    head = "*" + mrkdwn(label, 100) + "*\n"
    # The budget is in UTF-16 units: a label of emoji is twice its code points.
    return _text(head + (mrkdwn(value, FIELD_BUDGET - ulen(head)) or "\u2014"))


def _fields(msg: Message) -> list[dict[str, Any]]:
    facts = msg.facts
    if len(facts) <= FIELDS_MAX:
        return [_field(f.label, f.value) for f in facts]
    shown = [_field(f.label, f.value) for f in facts[: FIELDS_MAX - 1]]
    shown.append(_field("More", f"+{len(facts) - (FIELDS_MAX - 1)} more fields"))
    return shown


def _context(msg: Message) -> list[dict[str, Any]]:
    parts = ["*" + mrkdwn(msg.brand, CONTEXT_ELEMENT_BUDGET - 2) + "*", mrkdwn(msg.event_type, CONTEXT_ELEMENT_BUDGET)]
    if msg.timestamp is not None:
        # Slack renders <!date^…> in each reader's own time zone; the text after | is the fallback.
        parts.append(
            f"<!date^{int(msg.timestamp.timestamp())}^{{date_short_pretty}} at {{time}}|{format_time(msg.timestamp)}>"
        )
    if msg.link_url:  # safe_url() bounds it to 2000 characters without | < > or spaces
        parts.append(f"<{msg.link_url}|{mrkdwn(msg.link_label, 40)}>")
    return [_text(p) for p in parts[:CONTEXT_ELEMENTS_MAX]]


def format_slack(payload: dict[str, Any], event_type: EventType | None = None) -> dict[str, Any]:
    """The Slack incoming-webhook body for ``payload``; pure, never raises, within Slack's limits."""
    msg = describe(payload, event_type)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(defang(msg.title), HEADER_MAX), "emoji": True},
        },
    ]
    if msg.summary != msg.title:
        blocks.append({"type": "section", "text": _text(mrkdwn(msg.summary, SECTION_TEXT_MAX))})
    fields = _fields(msg)
    if fields:
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "context", "elements": _context(msg)})
    fallback = msg.title if msg.summary == msg.title else f"{msg.title} \u2014 {msg.summary}"
    return {"text": mrkdwn(fallback, FALLBACK_MAX), "blocks": blocks[:BLOCKS_MAX]}
