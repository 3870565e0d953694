"""Opaque, prefixed identifiers (``wh_``, ``evt_``, ``dlv_``, ``att_``) and UTC timestamps."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone
from typing import Any, overload

WEBHOOK = "wh"
EVENT = "evt"
DELIVERY = "dlv"
ATTEMPT = "att"


def new_id(prefix: str) -> str:
    """Return ``<prefix>_`` followed by 24 random URL-safe characters (144 bits)."""
    # token_hex keeps ids to [0-9a-f], safe in URLs, headers and log lines alike.
    return f"{prefix}_{secrets.token_hex(12)}"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """Treat a naive datetime (as SQLite returns them) as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@overload
def isoformat(value: datetime) -> str: ...
@overload
def isoformat(value: None) -> None: ...
@overload
def isoformat(value: datetime | None) -> str | None: ...
def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix and millisecond precision, or ``None``."""
    value = as_utc(value)
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z", re.IGNORECASE)


def canonical_uuid(value: Any) -> str | None:
    """``value`` as a lower-case hyphenated UUID, or ``None`` when it is not one."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        return None
    hexed = value.replace("-", "").lower()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
