"""Text helpers shared by the provider formatters: lengths, truncation, value rendering,
and neutralising what event data could do in a chat client.

Platform limits are counted in UTF-16 code units, never fewer than Python's code points:
Slack's and Discord's counting is not specified beyond "characters", and an emoji is one
code point but two UTF-16 units, so counting units keeps us inside either reading.

Data-derived text goes through :func:`strip_bidi` (no direction overrides) and
:func:`defang` (no links or mentions) before a formatter lays it out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

#: The ellipsis appended to a cut string (one character, one UTF-16 unit).
ELLIPSIS = "\u2026"

#: Unicode bidirectional controls: embeddings and overrides (U+202A-U+202E), isolates
#: (U+2066-U+2069), marks (U+200E, U+200F, U+061C). From data they could make text read
#: in another order than it is stored (``moc.live`` shown as ``evil.com``), so they are removed.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_BIDI_TABLE = dict.fromkeys(map(ord, BIDI_CONTROLS))

#: What :func:`defang` inserts: invisible, and not part of any link, URL or mention syntax.
ZWSP = "\u200b"
# Each match gets a ZWSP after its first character: "](" ends a markdown link text and
# "][" / "]:" a reference; "<" opens autolinks and Discord/Teams mentions (<@id>, <#id>,
# <at>); "://" and "www." are what clients auto-link; @everyone/@here/@channel ping.
_LINKY = re.compile(r"\][(\[:]|<|:(?=//)|w(?=ww\.)|@(?=(?:everyone|here|channel)\b)", re.IGNORECASE)
_LINKY_NO_ANGLE = re.compile(r"\][(\[:]|:(?=//)|w(?=ww\.)|@(?=(?:everyone|here|channel)\b)", re.IGNORECASE)


def strip_bidi(text: str) -> str:
    """``text`` without bidirectional control characters (see :data:`BIDI_CONTROLS`)."""
    return text.translate(_BIDI_TABLE)


def defang(text: str, *, angle: bool = True) -> str:
    """``text`` that no chat client turns into a link or mention: a zero-width space breaks
    markdown links (``[t](url)``, ``[t][ref]``, ``[ref]: url``), ``<…>`` autolinks and
    mentions, bare ``scheme://`` and ``www.`` URLs and ``@everyone``/``@here``/``@channel``.

    Reads the same; only the syntax is broken. Not for text that must stay a working link.
    ``angle=False`` leaves ``<`` alone, for a platform (Slack) that escapes it anyway.
    """
    return (_LINKY if angle else _LINKY_NO_ANGLE).sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)


def ulen(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (>= its length in code points)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-16 units, ending with an ellipsis when cut."""
    if limit <= 0:
        return ""
    if ulen(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    budget = limit - 1  # room for the ellipsis
    for ch in text:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > budget:
            break
        out.append(ch)
        used += size
    return "".join(out).rstrip() + ELLIPSIS


def fit_escaped(text: str, limit: int, escape: Callable[[str], str]) -> str:
    """Escape ``text`` with ``escape`` (per character) and cut so the *escaped* form fits ``limit``.

    Cutting the escaped string could split an entity such as ``&amp;``; cutting the raw
    characters before escaping them cannot.
    """
    if limit <= 0:
        return ""
    whole = "".join(escape(ch) for ch in text)
    if ulen(whole) <= limit:
        return whole
    out: list[str] = []
    used = 0
    budget = limit - 1
    for ch in text:
        piece = escape(ch)
        size = ulen(piece)
        if used + size > budget:
            break
        out.append(piece)
        used += size
    return "".join(out).rstrip() + ELLIPSIS


def is_number(value: Any) -> bool:
    """True for a finite int or float that is not a bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def format_number(value: int | float) -> str:
    """A number as people read it: ``41.0`` -> ``41``, ``57.5`` -> ``57.5``, no float noise."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    try:
        return str(value)
    except ValueError:  # ints past sys.get_int_max_str_digits() refuse str()
        return f"<{int(value.bit_length() * 0.30103) + 1}-digit number>"


def to_text(value: Any) -> str:
    """Render any JSON-ish value as display text; never raises.

    Strings as they are, numbers via :func:`format_number`, booleans as ``Yes``/``No``,
    ``None`` as empty text, lists and objects as compact JSON.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if is_number(value):
        return format_number(value)
    if isinstance(value, float):  # NaN / infinity
        return str(value)
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return str(value)


_ACRONYMS = {"url": "URL", "id": "ID", "ai": "AI", "api": "API", "seo": "SEO"}


def humanize(key: str) -> str:
    """``change_percent`` -> ``Change percent``, ``dashboard_url`` -> ``Dashboard URL``; labels for unknown fields."""
    words = [
        _ACRONYMS.get(w.lower(), w) for w in str(key).replace("_", " ").replace("-", " ").replace(".", " ").split()
    ]
    if not words:
        return "Value"
    text = " ".join(words)
    return text[0].upper() + text[1:]
