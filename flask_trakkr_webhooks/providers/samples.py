"""Sample events for tests and docs, read from the event type table.

The sample ``data`` of each built-in type lives in its row in :mod:`flask_trakkr_webhooks.events`,
and :func:`flask_trakkr_webhooks.events.sample_payload` builds every sample payload. This module
keeps the names the tests and the README use: the table's sample data, one extra scenario (a
visibility drop), and the hand-written summaries the golden files and template tests were
written with, which :func:`sample_payload` uses instead of generated ones.
"""

from __future__ import annotations

from typing import Any

from .. import events

__all__ = ["SAMPLE_DATA", "SAMPLE_DROP", "SAMPLE_SUMMARIES", "sample_payload"]

#: One realistic ``data`` object per built-in event type (copies of the table's).
SAMPLE_DATA: dict[str, dict[str, Any]] = {row.name: events.sample_data(row.name) for row in events.BUILTIN_EVENT_TYPES}

#: A visibility drop, which reads differently from the rise above.
SAMPLE_DROP: dict[str, Any] = {
    "previous_score": 57.5,
    "current_score": 44.0,
    "change_percent": -23.5,
    "direction": "down",
}

#: The summaries of the golden files' and template tests' sample payloads (hand-written,
#: as a host passing ``summary=`` to ``emit`` would; generated ones read differently).
SAMPLE_SUMMARIES: dict[str, str] = {
    "visibility_changed": "Acme's AI visibility score rose from 41 to 57.5 (+40.2%).",
    "report_completed": 'Your report "Weekly AI visibility report" is ready.',
    "competitor_added": "Globex (globex.example) was detected as a new competitor.",
    "citation_gained": "Acme is now cited by news.example on ChatGPT.",
    "citation_lost": "Acme is no longer cited by blog.example on Perplexity.",
}


def sample_payload(
    event_type: str = "visibility_changed", data: Any = None, *, summary: Any = None, test: bool = True
) -> dict[str, Any]:
    """:func:`flask_trakkr_webhooks.events.sample_payload` (fixed ids, time and brand Acme), with
    :data:`SAMPLE_SUMMARIES` as the default summary of the built-in types."""
    if summary is None:
        summary = SAMPLE_SUMMARIES.get(event_type)
    return events.sample_payload(event_type, data, summary=summary, test=test)
