"""Microsoft Teams: a ``message`` with one Adaptive Card (schema 1.4) attachment.

The card has a title TextBlock (green for a rise or gain, red for a drop or loss), the
summary, a FactSet of the key figures, a subtle context line and an ``Action.OpenUrl``
when the data has a link. Teams refuses messages over 28 KB, and senders report refusals
from about 21 KB, so the card is shrunk step by step until its JSON, measured the
largest common way (``json.dumps`` with ``ensure_ascii=True``), is at most
:data:`SIZE_BUDGET` bytes.

TextBlocks and FactSets render markdown, links included, and Teams clients disagree on
backslash escapes, so every text is :func:`~.text.defang`-ed instead: data cannot make a
link or an ``<at>`` mention. Bidirectional controls are removed (:func:`~.content.describe`).
"""

from __future__ import annotations

import json
from typing import Any

from ..events import EventType
from .content import BAD, GOOD, Fact, Message, describe, format_time
from .text import defang, truncate

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
#: Teams' documented message limit, and the budget we keep under (measured, see module doc).
SIZE_LIMIT = 28 * 1024
SIZE_BUDGET = 20000

_TONE_COLOR = {GOOD: "good", BAD: "attention"}

# (title, summary, facts, fact title, fact value, keep link) from roomy to minimal.
_Level = tuple[int, int, int, int, int, bool]
_LEVELS: tuple[_Level, ...] = (
    (200, 3000, 30, 100, 500, True),
    (200, 1500, 20, 80, 250, True),
    (150, 800, 12, 60, 120, True),
    (120, 300, 6, 40, 60, True),
    (100, 100, 3, 30, 30, False),
)


def _fit(text: str, limit: int) -> str:
    """Data ``text`` defanged and cut to ``limit`` UTF-16 units (every card text is shown as markdown)."""
    return truncate(defang(text), limit)


def _card(msg: Message, level: _Level) -> dict[str, Any]:
    title_max, summary_max, facts_max, fact_title_max, fact_value_max, keep_link = level
    title: dict[str, Any] = {
        "type": "TextBlock",
        "text": _fit(msg.title, title_max),
        "size": "Large",
        "weight": "Bolder",
        "wrap": True,
    }
    if msg.tone in _TONE_COLOR:
        title["color"] = _TONE_COLOR[msg.tone]
    body: list[dict[str, Any]] = [title]
    if msg.summary != msg.title:
        body.append({"type": "TextBlock", "text": _fit(msg.summary, summary_max), "wrap": True})
    facts = msg.facts
    if len(facts) > facts_max:
        facts = facts[: facts_max - 1] + [Fact("More", f"+{len(facts) - facts_max + 1} more fields")]
    if facts:
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": _fit(f.label, fact_title_max), "value": _fit(f.value, fact_value_max)} for f in facts
                ],
            }
        )
    context = [_fit(msg.brand, 100), _fit(msg.event_type, 100)]
    if msg.timestamp is not None:
        context.append(format_time(msg.timestamp))
    body.append(
        {
            "type": "TextBlock",
            "text": " \u00b7 ".join(context),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
            "spacing": "Medium",
        }
    )
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "fallbackText": _fit(msg.title, title_max),
    }
    if keep_link and msg.link_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": _fit(msg.link_label, 40), "url": msg.link_url}]
    return card


def _message(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {"contentType": CONTENT_TYPE, "contentUrl": None, "content": card},
        ],
    }


def measured_size(body: Any) -> int:
    """Bytes of ``body`` serialised the largest common way (ASCII-escaped, default separators)."""
    return len(json.dumps(body, ensure_ascii=True).encode("ascii"))


def format_teams(payload: dict[str, Any], event_type: EventType | None = None) -> dict[str, Any]:
    """The Teams incoming-webhook body for ``payload``; pure, never raises, under :data:`SIZE_BUDGET`."""
    msg = describe(payload, event_type)
    body = _message(_card(msg, _LEVELS[0]))
    for level in _LEVELS[1:]:
        if measured_size(body) <= SIZE_BUDGET:
            break
        body = _message(_card(msg, level))
    return body
