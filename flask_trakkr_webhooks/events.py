"""Event types, the standard payload, generated summaries and sample events.

* the five built-in event types and the rules for names a host may add;
* :func:`build_payload`: the contract's wire-format payload from what ``emit`` gets;
* :func:`summarize`: a human-readable line per event type;
* :func:`sample_data`: data of the sample events sent by ``POST /webhooks/<id>/test``.
"""
from __future__ import annotations

import copy
import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping
from uuid import UUID

from .ids import isoformat

#: The product page's event types and their descriptions.
DEFAULT_EVENT_TYPES: dict[str, str] = {
    "visibility_changed": "Visibility score increased or decreased significantly",
    "report_completed": "A new research report has been generated",
    "competitor_added": "A new competitor was detected or added",
    "citation_gained": "Brand gained a new citation source",
    "citation_lost": "Brand lost a citation source",
}

_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,62}\Z")


def validate_event_type_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is lowercase ``[a-z0-9_.]``, 1-63 chars, starting with a letter."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid event type name {name!r}: use 1-63 lowercase letters, digits, '_' or '.', starting with a letter"
        )


# -- payloads -----------------------------------------------------------------------

#: ``meta.source`` and ``meta.version`` of every payload.
PAYLOAD_SOURCE = "trakkr"
PAYLOAD_VERSION = "1.0"


def to_json_value(value: Any, *, path: str = "data") -> Any:
    """``value`` as plain JSON types, or ``TypeError``/``ValueError`` naming the bad path.

    Host data often holds datetimes, dates, UUIDs, Decimals, tuples and sets: those are
    converted (ISO 8601, str, float, lists). NaN and infinities are refused because
    they are not JSON.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value!r}, which is not valid JSON")
        return value
    if isinstance(value, Decimal):
        return to_json_value(float(value), path=path)
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}: JSON object keys are strings")
            out[key] = to_json_value(item, path=f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_json_value(item, path=f"{path}[{i}]") for i, item in enumerate(items)]
    raise TypeError(f"{path} is a {type(value).__name__}, which cannot be sent as JSON")


def normalise_brand(brand: Any) -> dict[str, Any]:
    """The payload's ``brand`` object ``{"id", "name", "website"}`` from what a host passes."""
    if not isinstance(brand, Mapping):
        raise TypeError(f"brand must be a mapping with 'id', 'name', 'website', not {type(brand).__name__}")
    brand_id = brand.get("id")
    if isinstance(brand_id, UUID):
        brand_id = str(brand_id)
    if not isinstance(brand_id, str) or not brand_id.strip():
        raise ValueError("brand['id'] is required: the brand's id (a UUID string)")
    if len(brand_id) > 36:
        raise ValueError(f"brand['id'] must be at most 36 characters (a UUID), got {len(brand_id)}")
    out: dict[str, Any] = {"id": brand_id}
    for key in ("name", "website"):
        value = brand.get(key)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"brand[{key!r}] must be a string or None, not {type(value).__name__}")
        out[key] = value
    return out


def build_payload(
    event_type: str,
    *,
    event_id: str,
    timestamp: datetime,
    brand: Mapping[str, Any],
    data: Mapping[str, Any],
    workflow: Mapping[str, Any] | None = None,
    summary: str | None = None,
    test: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """The standard payload (contract "Wire format"), validated and in plain JSON types.

    ``summary=None`` generates one with :func:`summarize` (``description`` is the event
    type's description, used for host-registered types). ``test=True`` adds
    ``meta.test: true`` (the ``/test`` route's sample events).
    """
    brand_obj = normalise_brand(brand)
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a mapping (a JSON object), not {type(data).__name__}")
    data_obj = to_json_value(data, path="data")
    if workflow is not None and not isinstance(workflow, Mapping):
        raise TypeError(f"workflow must be a mapping or None, not {type(workflow).__name__}")
    workflow_obj = to_json_value(workflow, path="workflow") if workflow is not None else None
    if summary is None:
        summary = summarize(event_type, brand_obj, data_obj, description=description)
    elif not isinstance(summary, str):
        raise TypeError(f"summary must be a string or None, not {type(summary).__name__}")
    meta: dict[str, Any] = {
        "source": PAYLOAD_SOURCE,
        "version": PAYLOAD_VERSION,
        "event_id": event_id,
        # One key per event: a receiver deduplicates retries and redeliveries with it.
        "idempotency_key": event_id,
    }
    if test:
        meta["test"] = True
    return {
        "event": {"id": event_id, "type": event_type, "timestamp": isoformat(timestamp), "data": data_obj},
        "brand": brand_obj,
        "workflow": workflow_obj,
        "summary": summary,
        "meta": meta,
    }


# -- summaries ----------------------------------------------------------------------

_PLATFORMS = {
    "chatgpt": "ChatGPT", "openai": "ChatGPT", "perplexity": "Perplexity", "gemini": "Gemini",
    "claude": "Claude", "copilot": "Copilot", "google_ai_overviews": "Google AI Overviews",
    "ai_overviews": "Google AI Overviews", "grok": "Grok", "deepseek": "DeepSeek", "meta_ai": "Meta AI",
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _score(value: float) -> str:
    return f"{value:.1f}"


def _visibility_summary(who: str, data: Mapping[str, Any]) -> str:
    prev, cur = _number(data.get("previous_score")), _number(data.get("current_score"))
    change = _number(data.get("change_percent"))
    if change is None and prev and cur is not None:
        change = (cur - prev) / prev * 100
    direction = _text(data.get("direction")).lower()
    if direction not in ("up", "down"):
        if change:
            direction = "up" if change > 0 else "down"
        elif prev is not None and cur is not None and prev != cur:
            direction = "up" if cur > prev else "down"
        else:
            direction = ""
    scores = f" ({_score(prev)} \u2192 {_score(cur)})" if prev is not None and cur is not None else ""
    if not direction:
        if prev is not None and cur is not None and prev == cur:
            return f"{who}'s visibility is unchanged at {_score(cur)}"
        return f"{who}'s visibility changed{scores}"
    verb = "rose" if direction == "up" else "fell"
    amount = f" {abs(change):.1f}%" if change is not None else ""
    return f"{who}'s visibility {verb}{amount}{scores}"


def _report_summary(who: str, data: Mapping[str, Any]) -> str:
    name = _text(data.get("report_name"))
    return f"New report for {who}: {name}" if name else f"A new research report for {who} is ready"


def _competitor_summary(who: str, data: Mapping[str, Any]) -> str:
    name, domain = _text(data.get("competitor_name")), _text(data.get("competitor_domain"))
    if name and domain:
        rival = f"{name} ({domain})"
    else:
        rival = name or domain
    return f"New competitor for {who}: {rival}" if rival else f"A new competitor was detected for {who}"


def _citation_summary(who: str, data: Mapping[str, Any], gained: bool) -> str:
    source = _text(data.get("source_domain")) or _text(data.get("source_url"))
    platform = _text(data.get("platform"))
    platform = _PLATFORMS.get(platform.lower(), platform)
    where = f" on {platform}" if platform else ""
    if gained:
        return f"{who} gained a citation from {source}{where}" if source else f"{who} gained a citation{where}"
    return f"{who} lost a citation from {source}{where}" if source else f"{who} lost a citation{where}"


def summarize(
    event_type: str, brand: Mapping[str, Any], data: Mapping[str, Any], *, description: str | None = None
) -> str:
    """A one-line, human-readable summary of an event, e.g.
    ``"Acme's visibility rose 40.2% (41.0 → 57.5)"``. Never raises on odd data.

    Types without a built-in sentence read ``"<brand>: <description>"``.
    """
    who = _text(brand.get("name")) or f"Brand {brand.get('id')}"
    data = data if isinstance(data, Mapping) else {}
    if event_type == "visibility_changed":
        return _visibility_summary(who, data)
    if event_type == "report_completed":
        return _report_summary(who, data)
    if event_type == "competitor_added":
        return _competitor_summary(who, data)
    if event_type in ("citation_gained", "citation_lost"):
        return _citation_summary(who, data, gained=event_type == "citation_gained")
    description = description or DEFAULT_EVENT_TYPES.get(event_type) or event_type.replace("_", " ")
    return f"{who}: {description}"


# -- sample events (POST /webhooks/<id>/test) -----------------------------------------

#: Brand name and website of sample events (the id is the webhook's brand).
SAMPLE_BRAND = {"name": "Acme (test)", "website": "https://acme.example"}


def sample_data(event_type: str) -> dict[str, Any]:
    """Realistic ``data`` for a sample ``event_type`` (custom types get a small generic object)."""
    from .providers.samples import SAMPLE_DATA

    data = SAMPLE_DATA.get(event_type)
    return copy.deepcopy(data) if data is not None else {"example": True, "event_type": event_type}
