"""Durations in settings and on the command line: ``"30d"``, ``"12h"``, ``"1d12h"``, ``90`` (pure).

Units: ``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days, ``w`` weeks; a bare number is
seconds. Every answer is a number of seconds, a float.
"""

from __future__ import annotations

import math
import re

#: Seconds in one of each unit.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse(value: object) -> float:
    """Seconds in ``value`` (a number of seconds, or a text such as ``"30d"``); ``ValueError`` if it is none."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration must be a finite number of seconds >= 0, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a duration must be a number of seconds or a text such as '30d', got {value!r}")
    text = value.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or _PART.sub("", text) != "":
        raise ValueError(f"not a duration: {value!r} (use e.g. '30d', '12h', '1d12h', '90m' or seconds)")
    return float(sum(float(number) * UNITS[unit] for number, unit in _PART.findall(text)))


def describe(seconds: float) -> str:
    """``seconds`` in the largest whole unit (``2592000`` -> ``"30d"``; ``90`` -> ``"90s"``)."""
    for unit in ("w", "d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{seconds:g}s"
