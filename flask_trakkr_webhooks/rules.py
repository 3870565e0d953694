"""The rules a webhook's values must follow: URLs, header names and values, ids, texts (pure).

Each check answers a list of problems (empty: acceptable), so the API can name every bad
field at once; nothing here does I/O or imports marshmallow. Whether a URL's host resolves
to a private address is the SSRF guard's question (:mod:`.ssrf`), not this module's.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import unicodedata
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from . import templating
from .ids import canonical_uuid as canonical_uuid  # re-exported: the API takes its id rules from here

# -- limits and names -------------------------------------------------------------------

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000
MIN_SIGNING_SECRET_LENGTH = 16
MAX_SIGNING_SECRET_LENGTH = 256
MAX_TOKEN_LENGTH = 4096
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024
MAX_HEADER_NAME_LENGTH = 256
#: Nesting a template may have (objects and arrays inside each other).
MAX_TEMPLATE_DEPTH = 32

#: Header names (lower case) a custom header or ``api_key_header`` may not use: every
#: delivery sets them itself (contract: wire format), they are hop-by-hop, or they would
#: misdescribe the body. ``Authorization`` is set through ``auth_type`` only.
RESERVED_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "webhook-id",
        "webhook-signature",
        "webhook-timestamp",
        "x-trakkr-delivery",
        "x-trakkr-event",
        "x-trakkr-signature",
    }
)
#: Every ``X-Trakkr-*`` name is kept for the sender's own headers, present and future.
RESERVED_HEADER_PREFIXES: tuple[str, ...] = ("x-trakkr-",)

# RFC 7230 token: the characters a header name may use.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)\Z", re.IGNORECASE)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_reserved_header(name: str) -> bool:
    """True when ``name`` (any case) is a header the sender sets itself."""
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES)


def shown(value: str, limit: int = 80) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


# -- single-value checks (pure; each answers a list of problems) -------------------------


def text_problems(value: str, *, newlines: bool = False) -> list[str]:
    """Problems of a free-text value: control characters (newlines only if allowed)."""
    allowed = "\n\r\t" if newlines else ""
    for ch in value:
        if unicodedata.category(ch) == "Cc" and ch not in allowed:
            return [f"must not contain control characters (found U+{ord(ch):04X})"]
    return []


def header_value_problems(value: str) -> list[str]:
    """Problems of a header value: CR/LF/NUL and other controls, non-Latin-1, outer whitespace."""
    for ch in value:
        if ch != "\t" and unicodedata.category(ch) == "Cc":
            return [f"must not contain CR, LF, NUL or other control characters (found U+{ord(ch):04X})"]
        if ord(ch) > 0xFF:
            return [f"must contain only ASCII or Latin-1 characters (found U+{ord(ch):04X})"]
    if value != value.strip(" \t"):
        return ["must not start or end with whitespace"]
    return []


def header_name_problems(name: str, *, what: str = "header name") -> list[str]:
    """Problems of a header name: not an RFC 7230 token, too long, or reserved."""
    if not name:
        return [f"{what} must not be empty"]
    if len(name) > MAX_HEADER_NAME_LENGTH:
        return [f"{what} must be at most {MAX_HEADER_NAME_LENGTH} characters"]
    if not _TOKEN.fullmatch(name):
        return [f"{what} {shown(name)} is not a valid header name (RFC 7230 token characters only)"]
    if is_reserved_header(name):
        hint = "; use auth_type instead" if name.lower() in ("authorization", "proxy-authorization") else ""
        return [f"{what} {shown(name)} is reserved: the sender sets it itself{hint}"]
    return []


def url_problems(url: str, *, require_https: bool) -> list[str]:
    """Problems of a webhook URL (empty list: acceptable).

    Absolute ``http(s)`` with a host; ``https`` when ``require_https``; printable ASCII
    (international host names in punycode); no userinfo, fragment, backslash or broken
    percent-escape; at most :data:`MAX_URL_LENGTH` characters. Whether the host resolves
    to a private address is checked separately (the SSRF guard), not here.
    """
    if not url:
        return ["must not be empty"]
    if len(url) > MAX_URL_LENGTH:
        return [f"must be at most {MAX_URL_LENGTH} characters"]
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in url):
        return [
            "must contain only printable ASCII characters and no spaces "
            "(percent-encode the path; write international host names in punycode)"
        ]
    if "\\" in url:
        return ["must not contain backslashes"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"is not a valid URL ({exc})"]
    scheme = parts.scheme.lower()
    if not scheme or not url[len(scheme) :].startswith("://"):
        return ["must be an absolute URL such as https://example.com/hooks"]
    if scheme not in ("http", "https"):
        allowed = "https" if require_https else "http or https"
        return [f"must use {allowed} (not {shown(parts.scheme)})"]
    if scheme == "http" and require_https:
        return ["must use https (TRAKKR_WEBHOOKS_REQUIRE_HTTPS is on)"]
    if "@" in parts.netloc:
        return ["must not contain credentials (user:password@); use auth_type 'basic' instead"]
    if "#" in url:
        return ["must not contain a fragment (#...): fragments are never sent to the server"]
    if _BAD_PERCENT.search(url):
        return ["contains a '%' that does not start a %XX escape"]
    if port == 0:
        return ["has an invalid port (0)"]
    host = parts.hostname or ""
    if not host:
        return ["must include a host name"]
    return _host_problems(host, bracketed=parts.netloc.startswith("["))


def _host_problems(host: str, *, bracketed: bool) -> list[str]:
    if bracketed:
        if "%" in host:
            return ["must not use an IPv6 zone identifier (%...)"]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return [f"has an invalid IPv6 address {shown(host)}"]
        return []
    try:
        ipaddress.IPv4Address(host)
        return []
    except ValueError:
        pass
    try:
        # The resolver reads "127.1", "0x7f000001" or "2130706433" as IPv4 addresses.
        socket.inet_aton(host)
        return [f"has a non-canonical IPv4 address {shown(host)}; write it as a.b.c.d"]
    except OSError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return [f"has an invalid host name {shown(host)}"]
    if labels[-1].isdigit():
        return [f"has an invalid host name {shown(host)} (its last label is numeric)"]
    return []


def invalid_unicode(value: Any, path: str = "") -> dict[str, list[str]]:
    """Paths of strings (keys included) in a parsed JSON value holding lone surrogates.

    ``json.loads`` accepts ``"\\ud800"``; such a string cannot be stored as UTF-8 nor
    sent, so it is refused up front. Walks iteratively: bodies can nest deeply.
    """
    problems: dict[str, list[str]] = {}
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in node):
                problems.setdefault(where or "body", []).append(
                    "contains invalid Unicode (an unpaired surrogate escape)"
                )
        elif isinstance(node, dict):
            for key, item in node.items():
                child = f"{where}.{key}" if where else str(key)
                stack.append((key, child))
                stack.append((item, child))
        elif isinstance(node, list):
            stack.extend((item, f"{where}.{i}" if where else str(i)) for i, item in enumerate(node))
    return problems


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests objects/arrays more than ``limit`` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any] = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def template_problems(template: Any, *, max_bytes: int) -> list[str]:
    """Problems of a payload template: shape, nesting, size and (when available) its variables."""
    if not isinstance(template, (dict, list)):
        return ["must be a JSON object or array (or null to remove the template)"]
    if json_depth_exceeds(template, MAX_TEMPLATE_DEPTH):
        return [f"must not nest objects/arrays more than {MAX_TEMPLATE_DEPTH} levels deep"]
    size = len(json.dumps(template, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > max_bytes:
        return [f"must be at most {max_bytes} bytes as JSON (this one is {size})"]
    try:
        templating.validate(template)
    except templating.TemplateError as exc:
        return [str(exc) or f"unknown variable {exc.variable!r}"]
    return []


# -- ids ---------------------------------------------------------------------------------

#: What a webhook id may look like; anything else is answered 404 without a query.
WEBHOOK_ID = re.compile(r"^wh_[A-Za-z0-9_-]{1,37}\Z")
#: What a delivery id may look like; anything else is answered 404 without a query.
DELIVERY_ID = re.compile(r"^dlv_[A-Za-z0-9_-]{1,37}\Z")


def shown_id(value: str, limit: int = 64) -> str:
    """An id as an error message quotes it: cut to ``limit`` characters, in quotes."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


# -- what may be sent ----------------------------------------------------------------------

_BAD_VALUE = re.compile(r"[\r\n\x00]")


def is_sendable_header(name: Any, value: Any) -> bool:
    """True when a custom header may go on the wire: a token name, a value without CR/LF/NUL,
    and not one of the sender's own (the second line behind the API's checks)."""
    return (
        isinstance(name, str)
        and isinstance(value, str)
        and _TOKEN.fullmatch(name) is not None
        and not _BAD_VALUE.search(value)
        and not is_reserved_header(name)
    )
