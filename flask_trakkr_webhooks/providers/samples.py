"""Example ``data`` for each built-in event type, and a whole sample payload.

These document the fields each event carries (see the README's table) and feed the
golden-file tests and a preview of what a webhook would receive.
"""
from __future__ import annotations

import copy
from typing import Any

#: One realistic ``data`` object per built-in event type.
SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "visibility_changed": {
        "previous_score": 41.0,
        "current_score": 57.5,
        "change_percent": 40.2,
        "direction": "up",
    },
    "report_completed": {
        "report_id": "rpt_7f3a9c",
        "report_name": "Weekly AI visibility report",
        "report_url": "https://app.trakkr.example/reports/rpt_7f3a9c",
    },
    "competitor_added": {
        "competitor_name": "Globex",
        "competitor_domain": "globex.example",
        "detected_by": "ai_answers",
    },
    "citation_gained": {
        "source_url": "https://news.example/best-tools-2025",
        "source_domain": "news.example",
        "platform": "chatgpt",
        "prompt": "best visibility tracking tools",
    },
    "citation_lost": {
        "source_url": "https://blog.example/roundup",
        "source_domain": "blog.example",
        "platform": "perplexity",
        "prompt": "alternatives to acme",
    },
}

#: A visibility drop, which reads differently from the rise above.
SAMPLE_DROP: dict[str, Any] = {
    "previous_score": 57.5,
    "current_score": 44.0,
    "change_percent": -23.5,
    "direction": "down",
}

_SUMMARIES = {
    "visibility_changed": "Acme's AI visibility score rose from 41 to 57.5 (+40.2%).",
    "report_completed": "Your report \"Weekly AI visibility report\" is ready.",
    "competitor_added": "Globex (globex.example) was detected as a new competitor.",
    "citation_gained": "Acme is now cited by news.example on ChatGPT.",
    "citation_lost": "Acme is no longer cited by blog.example on Perplexity.",
}


def sample_payload(event_type: str = "visibility_changed", data: dict | None = None, *,
                   summary: str | None = None, test: bool = True) -> dict:
    """A complete standard payload for ``event_type`` with fixed ids and time (deterministic)."""
    if data is None:
        data = SAMPLE_DATA.get(event_type, {"value": 1})
    event_id = "evt_0123456789abcdef01234567"
    payload = {
        "event": {
            "id": event_id,
            "type": event_type,
            "timestamp": "2025-01-15T09:30:00.000Z",
            "data": copy.deepcopy(data),
        },
        "brand": {
            "id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f",
            "name": "Acme",
            "website": "https://acme.example",
        },
        "workflow": None,
        "summary": summary if summary is not None else _SUMMARIES.get(event_type, f"{event_type} for Acme"),
        "meta": {
            "source": "trakkr",
            "version": "1.0",
            "event_id": event_id,
            "idempotency_key": event_id,
        },
    }
    if test:
        payload["meta"]["test"] = True
    return payload
