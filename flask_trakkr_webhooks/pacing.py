"""Pacing rules: how fast one endpoint may be sent to (pure: no I/O).

A *rate limit* is a tuple of :class:`Window` s, each "at most ``requests`` in any
``per_seconds``": every window holds at once (Teams publishes five). The rate a delivery is
held to comes from one place, :func:`effective`:

1. the webhook's own ``rate_limit`` (API field; ``[]`` turns pacing off for it);
2. else ``TRAKKR_WEBHOOKS_RATE_LIMITS[<provider>]`` (config);
3. else the provider registry's default (the platform's published limit: Slack, Discord,
   Teams); none for other endpoints.

The budget itself lives in Redis (:mod:`.ratelimit`) so every worker shares it. A window
is enforced as a sliding log: a request may be sent when fewer than ``requests`` were sent in
the last ``per_seconds * (1 + MARGIN)``. The margin absorbs the few milliseconds between
taking a slot and the request reaching the platform, so its own sliding count never sees
more than the limit.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Fraction of each window added as a safety margin (see the module docstring).
MARGIN = 0.1
#: The longest window accepted (one day: Teams' longest published window).
MAX_WINDOW_SECONDS = 86400.0
#: Most requests per window accepted, and most windows per limit.
MAX_REQUESTS = 100_000
MAX_WINDOWS = 8

_SHORT = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours)?\s*$")
_UNIT = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60}
_UNIT.update({"h": 3600, "hour": 3600, "hours": 3600})


@dataclass(frozen=True, order=True)
class Window:
    """At most ``requests`` requests in any ``per_seconds`` seconds."""

    requests: int
    per_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The API's spelling: ``{"requests": 5, "per_seconds": 2}``."""
        seconds = int(self.per_seconds) if float(self.per_seconds).is_integer() else self.per_seconds
        return {"requests": self.requests, "per_seconds": seconds}

    def __str__(self) -> str:
        return f"{self.requests} per {self.as_dict()['per_seconds']} s"


RateLimit = tuple[Window, ...]


def window(value: Any) -> Window:
    """One window from ``{"requests": N, "per_seconds": S}``, ``(N, S)`` or ``"N/S"`` / ``"N/min"``.

    Raises ``ValueError`` saying what is wrong with the value given.
    """
    if isinstance(value, Window):
        requests, seconds = value.requests, value.per_seconds
    elif isinstance(value, Mapping):
        unknown = set(value) - {"requests", "per_seconds"}
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)}: a window is {{'requests': N, 'per_seconds': S}}")
        if "requests" not in value or "per_seconds" not in value:
            raise ValueError("a window needs both 'requests' and 'per_seconds'")
        requests, seconds = value["requests"], value["per_seconds"]
    elif isinstance(value, str):
        match = _SHORT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a rate such as '5/2s', '1/s' or '30/min'")
        count, number, unit = match.groups()
        requests = int(count)
        seconds = (float(number) if number else 1.0) * _UNIT[unit or "s"]
    elif isinstance(value, Sequence) and len(value) == 2:
        requests, seconds = value
    else:
        raise ValueError(f"a window is {{'requests': N, 'per_seconds': S}}, got {value!r}")
    if isinstance(requests, bool) or not isinstance(requests, int):
        raise ValueError(f"'requests' must be a whole number, got {requests!r}")
    if not 1 <= requests <= MAX_REQUESTS:
        raise ValueError(f"'requests' must be between 1 and {MAX_REQUESTS}, got {requests}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValueError(f"'per_seconds' must be a number of seconds, got {seconds!r}")
    if not 0.001 <= seconds <= MAX_WINDOW_SECONDS:
        raise ValueError(f"'per_seconds' must be between 0.001 and {MAX_WINDOW_SECONDS:g}, got {seconds}")
    return Window(requests, float(seconds))


def parse(value: Any) -> RateLimit:
    """A rate limit from a list of windows (``[]``: none); a single window is accepted as well.

    Windows come back sorted by length, duplicates dropped. Raises ``ValueError``.
    """
    if isinstance(value, Mapping | str | Window):
        value = [value]
    if not isinstance(value, Iterable):
        raise ValueError(f"a rate limit is a list of windows, got {value!r}")
    items = list(value)
    if len(items) > MAX_WINDOWS:
        raise ValueError(f"at most {MAX_WINDOWS} windows, got {len(items)}")
    out: list[Window] = []
    for i, item in enumerate(items):
        try:
            out.append(window(item))
        except ValueError as exc:
            raise ValueError(f"window {i}: {exc}") from None
    return tuple(sorted(set(out), key=lambda w: (w.per_seconds, w.requests)))


def dump(limit: RateLimit | None) -> list[dict[str, Any]] | None:
    """The API's spelling of a rate limit (``None`` stays ``None``)."""
    return None if limit is None else [w.as_dict() for w in limit]


def effective(
    own: Any,
    provider: str,
    configured: Mapping[str, RateLimit],
    default: RateLimit,
) -> RateLimit:
    """The rate a webhook is held to (see the module docstring for the order).

    ``own`` is the webhook's stored ``rate_limit`` (``None``: not set). A stored value that
    no longer parses falls back to the provider's rate rather than to no pacing at all.
    """
    if own is not None:
        try:
            return parse(own)
        except ValueError:
            pass
    if provider in configured:
        return configured[provider]
    return default


def key(url: str) -> str:
    """The Redis key part naming an endpoint's budget: a hash of its URL (which may hold a token)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def eta(limit: RateLimit, position: int) -> float:
    """Seconds until the delivery ``position`` places behind the head of an endpoint's line may
    be sent, counted from when the head may: each window lets ``requests`` through per
    ``per_seconds`` (with the margin), in bursts. An estimate (the budget is shared)."""
    return max((position // w.requests * w.per_seconds * (1 + MARGIN) for w in limit), default=0.0)


def describe(limit: RateLimit) -> str:
    """``"5 per 2 s, 30 per 60 s"`` (``"none"`` for an empty limit)."""
    return ", ".join(str(w) for w in limit) or "none"


def remaining_hold(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the endpoint says its budget is spent for, from ``X-RateLimit-*`` headers.

    Discord (and others) answer every request with ``X-RateLimit-Remaining`` and
    ``X-RateLimit-Reset-After`` (seconds, fractional); a remaining budget of 0 means
    "nothing more until then". ``None`` when the headers do not say so.
    """
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    remaining = lower.get("x-ratelimit-remaining")
    reset_after = lower.get("x-ratelimit-reset-after")
    if remaining is None or reset_after is None:
        return None
    try:
        if int(float(remaining)) > 0:
            return None
        seconds = float(reset_after)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_WINDOW_SECONDS)
