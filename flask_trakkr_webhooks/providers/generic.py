"""Generic webhooks, Zapier and Make: the standard payload, unchanged, so every field is mappable."""

from __future__ import annotations

import copy
from typing import Any


def format_generic(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``payload`` (equal to it; later changes to either do not leak)."""
    return copy.deepcopy(payload)
