"""Generic webhooks, Zapier and Make: the standard payload, unchanged, so every field is mappable."""
from __future__ import annotations

import copy


def format_generic(payload: dict) -> dict:
    """Return a deep copy of ``payload`` (equal to it; later changes to either do not leak)."""
    return copy.deepcopy(payload)
