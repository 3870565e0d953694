"""Event types: the five built-in ones and the rules for names a host may add."""
from __future__ import annotations

import re

#: The product page's event types and their descriptions.
DEFAULT_EVENT_TYPES: dict[str, str] = {
    "visibility_changed": "Visibility score increased or decreased significantly",
    "report_completed": "A new research report has been generated",
    "competitor_added": "A new competitor was detected or added",
    "citation_gained": "Brand gained a new citation source",
    "citation_lost": "Brand lost a citation source",
}

_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,62}$")


def validate_event_type_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is lowercase ``[a-z0-9_.]``, 1-63 chars, starting with a letter."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"invalid event type name {name!r}: use 1-63 lowercase letters, digits, '_' or '.', starting with a letter"
        )
