"""What a chat message says about one event, independent of any platform's markup.

:func:`describe` turns the standard payload into a :class:`Message` (title, summary, key
figures, link, tone). The Slack, Discord and Teams formatters only lay that out. It never
raises: every part of the payload may be missing or of an unexpected type.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .text import format_number, humanize, is_number, to_text

#: Tones a formatter may colour: a rise or gain is good, a drop or loss is bad.
GOOD, BAD, NEUTRAL = "good", "bad", "neutral"

#: Longest URL we turn into a link (Discord and Slack reject longer ones in practice).
MAX_URL = 2000

_EMOJI = {
    "visibility_up": "\U0001F4C8",      # chart increasing
    "visibility_down": "\U0001F4C9",    # chart decreasing
    "visibility_flat": "\U0001F504",    # arrows (changed, direction unknown)
    "report_completed": "\U0001F4CA",   # bar chart
    "competitor_added": "\U0001F440",   # eyes
    "citation_gained": "\u2705",        # check mark
    "citation_lost": "\u26A0\uFE0F",    # warning
    "custom": "\U0001F514",             # bell
}


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


def _dict(value: Any) -> dict:
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
    if any(ch.isspace() or ch in '<>|"\\`' or ord(ch) < 0x20 for ch in value):
        return None
    try:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return value


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


def _direction(data: dict) -> str:
    """``up``, ``down`` or ``""`` from ``direction``, else ``change_percent``, else the scores."""
    raw = data.get("direction")
    if isinstance(raw, str) and raw.strip().lower() in ("up", "down"):
        return raw.strip().lower()
    change = data.get("change_percent")
    if is_number(change) and change != 0:
        return "up" if change > 0 else "down"
    prev, cur = data.get("previous_score"), data.get("current_score")
    if is_number(prev) and is_number(cur) and prev != cur:
        return "up" if cur > prev else "down"
    return ""


def _percent(value: Any) -> str:
    if is_number(value):
        sign = "+" if value > 0 else ("\u2212" if value < 0 else "")
        return f"{sign}{format_number(abs(value))}%"
    text = _str(value)
    return text if not text or text.endswith("%") else text + "%"


def _visibility(data: dict, brand: str) -> tuple[str, str, list[Fact], set[str]]:
    direction = _direction(data)
    facts: list[Fact] = []
    prev, cur = _str(data.get("previous_score")), _str(data.get("current_score"))
    if prev:
        facts.append(Fact("Previous score", prev))
    if cur:
        facts.append(Fact("Current score", cur))
    change = _percent(data.get("change_percent"))
    arrow = {"up": "\u25B2 ", "down": "\u25BC "}.get(direction, "")
    if change:
        facts.append(Fact("Change", arrow + change))
    if direction:
        facts.append(Fact("Direction", "Up" if direction == "up" else "Down"))
    if direction == "up":
        title, tone = f"{_EMOJI['visibility_up']} Visibility up for {brand}", GOOD
    elif direction == "down":
        title, tone = f"{_EMOJI['visibility_down']} Visibility down for {brand}", BAD
    else:
        title, tone = f"{_EMOJI['visibility_flat']} Visibility changed for {brand}", NEUTRAL
    return title, tone, facts, {"previous_score", "current_score", "change_percent", "direction"}


def _report(data: dict, brand: str) -> tuple[str, str, list[Fact], set[str]]:
    name = _str(data.get("report_name"))
    facts = [Fact(label, v) for label, v in (
        ("Report", name), ("Report ID", _str(data.get("report_id"))),
    ) if v]
    title = f"{_EMOJI['report_completed']} Report ready: {name}" if name else (
        f"{_EMOJI['report_completed']} New report for {brand}")
    return title, GOOD, facts, {"report_name", "report_id", "report_url"}


_DETECTED_KEYS = ("detected_by", "detection_method", "how_detected")


def _competitor(data: dict, brand: str) -> tuple[str, str, list[Fact], set[str]]:
    name, domain = _str(data.get("competitor_name")), _str(data.get("competitor_domain"))
    how = next((_str(data.get(k)) for k in _DETECTED_KEYS if _str(data.get(k))), "")
    facts = [Fact(label, v) for label, v in (
        ("Competitor", name), ("Domain", domain), ("Detected by", how),
    ) if v]
    who = name or domain
    title = f"{_EMOJI['competitor_added']} New competitor for {brand}" + (f": {who}" if who else "")
    return title, NEUTRAL, facts, {"competitor_name", "competitor_domain", *_DETECTED_KEYS}


def _citation(data: dict, brand: str, gained: bool) -> tuple[str, str, list[Fact], set[str]]:
    url = _str(data.get("source_url"))
    domain = _str(data.get("source_domain"))
    if not domain and safe_url(url):
        domain = urlsplit(url).hostname or ""
    facts = [Fact(label, v) for label, v in (
        ("Source", domain), ("Platform", _str(data.get("platform"))),
        ("Prompt", _str(data.get("prompt"))), ("Source URL", url),
    ) if v]
    if gained:
        title = f"{_EMOJI['citation_gained']} New citation for {brand}" + (f": {domain}" if domain else "")
        tone = GOOD
    else:
        title = f"{_EMOJI['citation_lost']} Citation lost for {brand}" + (f": {domain}" if domain else "")
        tone = BAD
    return title, tone, facts, {"source_url", "source_domain", "platform", "prompt"}


def _custom(event_type: str, brand: str) -> tuple[str, str, list[Fact], set[str]]:
    label = humanize(event_type) if event_type else "Event"
    return f"{_EMOJI['custom']} {label} for {brand}", NEUTRAL, [], set()


_LINKS = {
    "report_completed": ("report_url", "View report"),
    "citation_gained": ("source_url", "View source"),
    "citation_lost": ("source_url", "View source"),
    "competitor_added": ("competitor_url", "View competitor"),
}


def _scalar_facts(data: dict, skip: set[str]) -> list[Fact]:
    """Key figures from top-level scalar data fields (str, number, bool), in data order."""
    facts = []
    for key, value in data.items():
        if not isinstance(key, str) or key in skip or isinstance(value, (dict, list)) or value is None:
            continue
        text = _str(value)
        if text:
            facts.append(Fact(humanize(key), text))
    return facts


def _first_link(data: dict) -> tuple[str | None, str]:
    """The first top-level ``*url`` field holding a safe URL, with a label from its key."""
    for key, value in data.items():
        if isinstance(key, str) and key.lower().endswith("url") and safe_url(value):
            stem = key[:-3].strip("_- ")
            return value, f"Open {humanize(stem).lower()}" if stem else "Open link"
    return None, "Open link"


def describe(payload: Any) -> Message:
    """Build the :class:`Message` for ``payload`` (the standard webhook payload); never raises."""
    payload = _dict(payload)
    event = _dict(payload.get("event"))
    data = _dict(event.get("data"))
    brand_obj = _dict(payload.get("brand"))
    brand = _str(brand_obj.get("name")) or _str(brand_obj.get("id")) or "your brand"
    event_type = _str(event.get("type"))

    if event_type == "visibility_changed":
        title, tone, facts, used = _visibility(data, brand)
    elif event_type == "report_completed":
        title, tone, facts, used = _report(data, brand)
    elif event_type == "competitor_added":
        title, tone, facts, used = _competitor(data, brand)
    elif event_type in ("citation_gained", "citation_lost"):
        title, tone, facts, used = _citation(data, brand, event_type == "citation_gained")
    else:
        title, tone, facts, used = _custom(event_type, brand)
    # Any further scalar fields a host adds still show up, after the event's own figures.
    facts = facts + _scalar_facts(data, used)

    link_key, link_label = _LINKS.get(event_type, (None, "Open link"))
    link_url = safe_url(data.get(link_key)) if link_key else None
    if link_url is None:
        link_url, generic_label = _first_link(data)
        if not link_key:
            link_label = generic_label

    summary = _str(payload.get("summary")) or title
    raw_ts = event.get("timestamp")
    return Message(
        event_type=event_type or "event",
        title=title,
        summary=summary,
        brand=brand,
        facts=facts,
        link_url=link_url,
        link_label=link_label,
        timestamp=parse_timestamp(raw_ts),
        timestamp_raw=raw_ts if isinstance(raw_ts, str) else None,
        tone=tone,
    )
