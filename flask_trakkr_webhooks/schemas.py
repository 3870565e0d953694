"""Marshmallow schemas of the webhook resource: what the API accepts, and what it answers.

Input is checked in two steps, both pure (no database, no request):

1. a schema checks every field on its own (``WebhookCreateSchema`` /
   ``WebhookUpdateSchema``, built with the app's :class:`~.config.Settings` and its
   known event types, since marshmallow 4 has no ``context``);
2. :func:`merge` lays the accepted fields over the webhook's current values and
   checks what depends on several fields (the ``auth_type`` and its credentials,
   the API-key header against the custom headers).

:func:`prepare_create` and :func:`prepare_update` do both and raise one
``marshmallow.ValidationError`` whose ``messages`` name every bad field
(``{"headers": {"Host": ["..."]}}``; the API flattens that to ``"headers.Host"``).

:class:`WebhookSchema` dumps a ``Webhook`` row as the contract's webhook object.
Credentials (:data:`WRITE_ONLY_FIELDS`) are never part of it.
"""
from __future__ import annotations

import importlib
import ipaddress
import json
import re
import socket
import unicodedata
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validates
from marshmallow.validate import Length, OneOf, Range

from . import ids, signing
from .config import Settings

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

AUTH_TYPES: tuple[str, ...] = ("none", "bearer", "basic", "api_key")
#: The credential fields each ``auth_type`` needs (and the only ones it accepts).
AUTH_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("auth_token",),
    "basic": ("auth_username", "auth_password"),
    "api_key": ("api_key_header", "api_key_value"),
}
CREDENTIAL_FIELDS: tuple[str, ...] = ("auth_token", "auth_username", "auth_password", "api_key_header", "api_key_value")
#: Accepted on input, never answered (secrets). ``auth_username`` and ``api_key_header`` are not secret.
WRITE_ONLY_FIELDS: tuple[str, ...] = ("auth_token", "auth_password", "api_key_value")
#: Fields of the webhook object a client cannot set.
READ_ONLY_FIELDS: tuple[str, ...] = (
    "id", "object", "provider", "created_at", "updated_at", "disabled_reason", "disabled_at", "deleted",
    "previous_secret_expires_at", "consecutive_failures", "failing_since",
)
#: Columns a create or update may set (what :func:`merge` returns).
WRITABLE_FIELDS: tuple[str, ...] = (
    "url", "events", "brand_id", "active", "description", "auth_type", *CREDENTIAL_FIELDS,
    "headers", "template", "signing_secret",
)
#: A new webhook's values before the request's fields are laid over them.
CREATE_DEFAULTS: dict[str, Any] = {
    "active": True, "description": None, "auth_type": "none", "headers": {}, "template": None,
    "signing_secret": None, **{name: None for name in CREDENTIAL_FIELDS},
}

#: Header names (lower case) a custom header or ``api_key_header`` may not use: every
#: delivery sets them itself (contract: wire format), they are hop-by-hop, or they would
#: misdescribe the body. ``Authorization`` is set through ``auth_type`` only.
RESERVED_HEADERS: frozenset[str] = frozenset({
    "authorization", "connection", "content-encoding", "content-length", "content-type", "expect",
    "host", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
    "transfer-encoding", "upgrade", "user-agent", "webhook-id", "webhook-signature", "webhook-timestamp",
    "x-trakkr-delivery", "x-trakkr-event", "x-trakkr-signature",
})
#: Every ``X-Trakkr-*`` name is kept for the sender's own headers, present and future.
RESERVED_HEADER_PREFIXES: tuple[str, ...] = ("x-trakkr-",)

# RFC 7230 token: the characters a header name may use.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\Z", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)\Z", re.IGNORECASE)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def is_reserved_header(name: str) -> bool:
    """True when ``name`` (any case) is a header the sender sets itself."""
    lowered = name.lower()
    return lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES)


def _shown(value: str, limit: int = 80) -> str:
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
        return [f"{what} {_shown(name)} is not a valid header name (RFC 7230 token characters only)"]
    if is_reserved_header(name):
        hint = "; use auth_type instead" if name.lower() in ("authorization", "proxy-authorization") else ""
        return [f"{what} {_shown(name)} is reserved: the sender sets it itself{hint}"]
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
        return ["must contain only printable ASCII characters and no spaces "
                "(percent-encode the path; write international host names in punycode)"]
    if "\\" in url:
        return ["must not contain backslashes"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"is not a valid URL ({exc})"]
    scheme = parts.scheme.lower()
    if not scheme or not url[len(scheme):].startswith("://"):
        return ["must be an absolute URL such as https://example.com/hooks"]
    if scheme not in ("http", "https"):
        allowed = "https" if require_https else "http or https"
        return [f"must use {allowed} (not {_shown(parts.scheme)})"]
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
            return [f"has an invalid IPv6 address {_shown(host)}"]
        return []
    try:
        ipaddress.IPv4Address(host)
        return []
    except ValueError:
        pass
    try:
        # The resolver reads "127.1", "0x7f000001" or "2130706433" as IPv4 addresses.
        socket.inet_aton(host)
        return [f"has a non-canonical IPv4 address {_shown(host)}; write it as a.b.c.d"]
    except OSError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return [f"has an invalid host name {_shown(host)}"]
    if labels[-1].isdigit():
        return [f"has an invalid host name {_shown(host)} (its last label is numeric)"]
    return []


def canonical_uuid(value: Any) -> str | None:
    """``value`` as a lower-case hyphenated UUID, or ``None`` when it is not one."""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        return None
    hexed = value.replace("-", "").lower()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


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
                    "contains invalid Unicode (an unpaired surrogate escape)")
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
        templating = importlib.import_module(f"{__package__}.templating")
    except ModuleNotFoundError as exc:  # the templating module is optional at this layer
        if exc.name != f"{__package__}.templating":
            raise
        return []
    validate = getattr(templating, "validate", None)
    error_class = getattr(templating, "TemplateError", ValueError)
    if validate is None:
        return []
    try:
        validate(template)
    except error_class as exc:
        return [str(exc) or f"unknown variable {getattr(exc, 'variable', None)!r}"]
    return []


# -- fields ----------------------------------------------------------------------------

class StrictBoolean(fields.Boolean):
    """A JSON ``true``/``false`` only: ``"yes"``, ``1`` or ``"true"`` are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class BrandId(fields.String):
    """A brand UUID, answered in its canonical lower-case hyphenated form."""

    default_error_messages = {"invalid_uuid": "must be a UUID such as 3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        canonical = canonical_uuid(text)
        if canonical is None:
            raise self.make_error("invalid_uuid")
        return canonical


class CheckedString(fields.String):
    """A string checked by ``check(value) -> list[str]`` (problems) after the type check."""

    def __init__(self, check: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problems = self.check(text) if self.check else []
        if problems:
            raise ValidationError(problems)
        return text


def _visible_ascii(value: str) -> list[str]:
    if any(not (0x21 <= ord(ch) <= 0x7E) for ch in value):
        return ["must contain only visible ASCII characters (no spaces or control characters)"]
    return []


def _username(value: str) -> list[str]:
    if ":" in value:
        return ["must not contain ':' (RFC 7617)"]
    return text_problems(value)


def _api_key_header(value: str) -> list[str]:
    return header_name_problems(value, what="api_key_header")


def _signing_secret(value: str) -> list[str]:
    if not value.isprintable():
        return ["must contain only printable characters"]
    if value != value.strip():
        return ["must not start or end with whitespace"]
    return signing.secret_problems(value)


class SigningSecret(CheckedString):
    """A signing secret; the value ``"generate"`` is replaced by a new ``whsec_`` secret.

    The length limits are checked on the result, so ``"generate"`` itself is not too short.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", Length(MIN_SIGNING_SECRET_LENGTH, MAX_SIGNING_SECRET_LENGTH))
        super().__init__(check=_signing_secret, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if value == signing.GENERATE:
            return signing.generate_secret()
        return super()._deserialize(value, attr, data, **kwargs)


# -- input schemas ----------------------------------------------------------------------

class _WebhookInput(Schema):
    """Every field a client may send; per-field checks only (see :func:`merge` for the rest)."""

    url = fields.String(required=True, metadata={"description": "Endpoint URL (https unless REQUIRE_HTTPS is off)"})
    events = fields.List(fields.String(), required=True, metadata={"description": "Event types to receive"})
    brand_id = BrandId(required=True, metadata={"description": "Brand UUID (fixed once created)"})
    active = StrictBoolean(metadata={"description": "Deliver to this endpoint (default true)"})
    description = CheckedString(
        check=lambda v: text_problems(v, newlines=True), allow_none=True, validate=Length(max=MAX_DESCRIPTION_LENGTH),
        metadata={"description": "A note for people"},
    )
    auth_type = fields.String(validate=OneOf(AUTH_TYPES), metadata={"description": "How deliveries authenticate"})
    auth_token = CheckedString(
        check=_visible_ascii, allow_none=True, validate=Length(1, MAX_TOKEN_LENGTH),
        metadata={"description": "bearer: the token (write-only)"},
    )
    auth_username = CheckedString(
        check=_username, allow_none=True, validate=Length(1, MAX_USERNAME_LENGTH),
        metadata={"description": "basic: the user name"},
    )
    # An empty password is allowed: some APIs take a key as the user name and no password.
    auth_password = CheckedString(
        check=text_problems, allow_none=True, validate=Length(0, MAX_PASSWORD_LENGTH),
        metadata={"description": "basic: the password (write-only)"},
    )
    api_key_header = CheckedString(
        check=_api_key_header, allow_none=True, metadata={"description": "api_key: the header name"},
    )
    api_key_value = CheckedString(
        check=header_value_problems, allow_none=True, validate=Length(1, MAX_TOKEN_LENGTH),
        metadata={"description": "api_key: the header value (write-only)"},
    )
    headers = fields.Raw(allow_none=True, metadata={
        "type": "object", "additionalProperties": {"type": "string"}, "description": "Custom request headers",
    })
    template = fields.Raw(allow_none=True, metadata={"description": "Body template: a JSON object or array"})
    signing_secret = SigningSecret(
        allow_none=True,
        metadata={"description": 'HMAC-SHA256 signing secret; "generate" makes a new whsec_ secret (answered '
                                 "in the response); null removes it. Setting it replaces the secret at once: "
                                 "use POST /webhooks/{id}/rotate-secret for a grace period"},
    )

    def __init__(self, settings: Settings, event_types: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.event_types = tuple(event_types)

    @validates("url")
    def _check_url(self, value: str, **kwargs: Any) -> None:
        problems = url_problems(value, require_https=self.settings.require_https)
        if problems:
            raise ValidationError(problems)

    @validates("events")
    def _check_events(self, value: list[str], **kwargs: Any) -> None:
        if not value:
            raise ValidationError(["must list at least one event type"])
        cap = self.settings.max_events_per_webhook
        if len(value) > cap:
            raise ValidationError([f"must list at most {cap} event types"])
        errors: dict[int, list[str]] = {}
        seen: set[str] = set()
        for index, name in enumerate(value):
            if name in seen:
                errors[index] = [f"duplicate event type {_shown(name)}"]
            elif name not in self.event_types:
                errors[index] = [f"unknown event type {_shown(name)}; known: {', '.join(self.event_types)}"]
            seen.add(name)
        if errors:
            raise ValidationError(errors)

    @validates("headers")
    def _check_headers(self, value: Any, **kwargs: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise ValidationError(["must be an object of header names to string values"])
        if len(value) > self.settings.max_headers:
            raise ValidationError([f"must have at most {self.settings.max_headers} headers"])
        errors: dict[str, list[str]] = {}
        seen: dict[str, str] = {}
        size = 0
        for name, header_value in value.items():
            problems = header_name_problems(name)
            if not problems and name.lower() in seen:
                problems = [f"repeats {_shown(seen[name.lower()])} (header names are case-insensitive)"]
            if not problems:
                if not isinstance(header_value, str):
                    problems = ["must be a string"]
                else:
                    problems = header_value_problems(header_value)
            if problems:
                errors[name] = problems
            seen.setdefault(name.lower(), name)
            if isinstance(header_value, str):
                size += len(name.encode("utf-8")) + len(header_value.encode("utf-8", "replace"))
        if errors:
            raise ValidationError(errors)
        if size > self.settings.max_header_bytes:
            raise ValidationError([f"must total at most {self.settings.max_header_bytes} bytes of names and values"])

    @validates("template")
    def _check_template(self, value: Any, **kwargs: Any) -> None:
        if value is None:
            return
        problems = template_problems(value, max_bytes=self.settings.max_template_bytes)
        if problems:
            raise ValidationError(problems)


class WebhookCreateSchema(_WebhookInput):
    """``POST /webhooks``: ``url``, ``events`` and ``brand_id`` required; unknown fields refused."""


class WebhookUpdateSchema(_WebhookInput):
    """``PATCH /webhooks/<id>``: every field optional (``partial``); unknown fields refused."""

    def __init__(self, settings: Settings, event_types: Iterable[str], **kwargs: Any) -> None:
        kwargs.setdefault("partial", True)
        super().__init__(settings, event_types, **kwargs)


# -- combining fields -------------------------------------------------------------------

def _load(schema: _WebhookInput, body: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``schema`` on ``body`` and say which refused fields are read-only rather than unknown."""
    try:
        return load_request(schema, body)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
        for name in READ_ONLY_FIELDS:
            if messages.get(name) == ["Unknown field."]:
                messages[name] = ["is read-only"]
        raise ValidationError(messages) from None


def merge(current: Mapping[str, Any], loaded: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook's values after laying ``loaded`` (a schema's output) over ``current``.

    Raises ``ValidationError`` naming the field when the combination is wrong:

    * a credential that the resulting ``auth_type`` does not use (it would be ignored);
    * a credential the resulting ``auth_type`` needs and does not have;
    * ``api_key_header`` equal to a custom header name.

    Changing ``auth_type`` drops the old type's credentials; ``null`` clears a field
    (``headers: null`` means no custom headers).
    """
    result = {name: current.get(name) for name in WRITABLE_FIELDS}
    result.update(loaded)
    if result.get("headers") is None:
        result["headers"] = {}
    auth_type = result.get("auth_type") or "none"
    result["auth_type"] = auth_type
    wanted = AUTH_FIELDS[auth_type]
    errors: dict[str, list[str]] = {}
    for name in CREDENTIAL_FIELDS:
        if name in wanted:
            if auth_type != current.get("auth_type") and name not in loaded:
                result[name] = None  # a new type starts from no credentials
            continue
        if loaded.get(name) is not None:
            owner = next(t for t, names in AUTH_FIELDS.items() if name in names)
            errors[name] = [f"is only accepted with auth_type {owner!r} (the auth_type is {auth_type!r})"]
        result[name] = None
    for name in wanted:
        if result.get(name) is None:
            errors.setdefault(name, []).append(f"is required when auth_type is {auth_type!r}")
    key_header = result.get("api_key_header")
    if key_header and not errors:
        clash = next((h for h in result["headers"] if h.lower() == key_header.lower()), None)
        if clash is not None:
            if "headers" in loaded:
                errors[f"headers.{clash}"] = [f"is the api_key_header; it is set by auth_type 'api_key'"]
            else:
                errors["api_key_header"] = [f"is already a custom header ({clash!r})"]
    if errors:
        raise ValidationError(errors)
    return result


def prepare_create(body: Mapping[str, Any], settings: Settings, event_types: Iterable[str]) -> dict[str, Any]:
    """Validate a create body; answer every writable column's value (``ValidationError`` otherwise)."""
    loaded = _load(WebhookCreateSchema(settings, event_types), body)
    return merge(CREATE_DEFAULTS, loaded)


def prepare_update(
    body: Mapping[str, Any], current: Mapping[str, Any], settings: Settings, event_types: Iterable[str],
) -> dict[str, Any]:
    """Validate a PATCH body against the webhook's ``current`` values; answer the changed columns only."""
    loaded = _load(WebhookUpdateSchema(settings, event_types), body)
    if "brand_id" in loaded and loaded["brand_id"] != current.get("brand_id"):
        raise ValidationError({"brand_id": ["cannot be changed; create a webhook for the other brand"]})
    merged = merge(current, loaded)
    return {name: value for name, value in merged.items() if value != current.get(name)}


def current_values(webhook: Any) -> dict[str, Any]:
    """The writable columns of a ``Webhook`` row, as :func:`prepare_update` compares them."""
    values = {name: getattr(webhook, name) for name in WRITABLE_FIELDS}
    values["headers"] = values["headers"] or {}
    return values


# -- rotation and replay ------------------------------------------------------------------

#: What ``POST /webhooks/<id>/replay`` can redeliver: an event whose latest delivery to the
#: webhook ``failed`` or was ``cancelled``, or ``missed`` (emitted while the webhook was
#: inactive, so never delivered to it).
REPLAY_STATUSES: tuple[str, ...] = ("failed", "cancelled", "missed")
#: Most events one replay request redelivers (``has_more`` says when more match).
MAX_REPLAY = 1000


class RotateSecretSchema(Schema):
    """``POST /webhooks/<id>/rotate-secret`` (body optional): the new secret, generated by default."""

    signing_secret = SigningSecret(metadata={
        "description": 'The new secret; absent or "generate": a new whsec_ secret (32 random bytes, base64)'})


class StatusList(fields.Field):
    """One status name or a list of them (each of :data:`REPLAY_STATUSES`), answered as a tuple."""

    default_error_messages = {"invalid": f"must be one of {', '.join(REPLAY_STATUSES)}, or a list of them"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i in REPLAY_STATUSES
                                                              for i in items):
            raise self.make_error("invalid")
        return tuple(dict.fromkeys(items))


#: What :class:`Since` accepts: an RFC 3339 date-time (ISO 8601 with ``T``, seconds and a zone).
RFC3339_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)


class Since(fields.AwareDateTime):
    """An RFC 3339 date-time (``2024-06-01T00:00:00Z``, an offset instead of ``Z`` allowed), answered in UTC."""

    default_error_messages = {
        "invalid": "must be an ISO 8601 date-time with a time zone, e.g. 2024-06-01T00:00:00Z",
        "invalid_awareness": "must be an ISO 8601 date-time with a time zone, e.g. 2024-06-01T00:00:00Z",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or not _RFC3339.fullmatch(value):
            raise self.make_error("invalid")
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(timezone.utc)
        except (OverflowError, ValueError):  # 0001-01-01T00:00:00+01:00 has no UTC time
            raise self.make_error("invalid") from None


class ReplaySchema(Schema):
    """``POST /webhooks/<id>/replay``: which past events to redeliver."""

    since = Since(required=True, metadata={
        "pattern": RFC3339_PATTERN,
        "description": "Replay deliveries made (and, for missed, events emitted) at or after this time"})
    status = StatusList(load_default=("failed",), metadata={
        "description": "failed (default), cancelled (e.g. cancelled when the webhook was disabled), missed "
                       "(emitted while the webhook was inactive), or a list of them"})
    limit = fields.Integer(load_default=MAX_REPLAY, strict=True, validate=Range(1, MAX_REPLAY), metadata={
        "description": "Most events to redeliver (oldest first); ask again for the rest"})


def load_request(schema: Schema, body: Mapping[str, Any]) -> dict[str, Any]:
    """``schema.load(body)``, refusing strings with unpaired surrogates first (``ValidationError``)."""
    problems = invalid_unicode(dict(body))
    if problems:
        raise ValidationError(problems)
    return schema.load(body)


# -- output -----------------------------------------------------------------------------

class WebhookSchema(Schema):
    """The webhook object (contract): no credential secrets, timestamps in ISO 8601 UTC.

    The ``metadata`` describes each field in the OpenAPI document (:mod:`.openapi`).
    """

    id = fields.String(metadata={"example": "wh_8c1e5a7d4c1e9b2a0d4e6f8a"})
    object = fields.Constant("webhook", metadata={"type": "string", "enum": ["webhook"]})
    url = fields.String()
    events = fields.List(fields.String())
    brand_id = fields.String(metadata={"format": "uuid"})
    provider = fields.String(metadata={"description": "Detected from the URL: webhook, slack, discord, teams, zapier, make"})
    active = fields.Boolean()
    description = fields.String(allow_none=True)
    signing_secret = fields.String(allow_none=True)
    auth_type = fields.String(metadata={"enum": list(AUTH_TYPES)})
    auth_username = fields.String(allow_none=True)
    api_key_header = fields.String(allow_none=True)
    headers = fields.Function(lambda w: dict(w.headers or {}),
                              metadata={"type": "object", "additionalProperties": {"type": "string"}})
    template = fields.Raw(allow_none=True, metadata={"description": "A JSON object or array, or null"})
    created_at = fields.Function(lambda w: ids.isoformat(w.created_at), metadata={"type": "string", "format": "date-time"})
    updated_at = fields.Function(lambda w: ids.isoformat(w.updated_at), metadata={"type": "string", "format": "date-time"})
    disabled_reason = fields.String(allow_none=True, metadata={
        "description": "Why the sender disabled the webhook (410 Gone, or too many failures in a row); null when "
                       "not disabled by the sender"})
    disabled_at = fields.Function(lambda w: ids.isoformat(w.disabled_at), allow_none=True,
                                  metadata={"type": "string", "format": "date-time"})
    previous_secret_expires_at = fields.Function(
        lambda w: _grace_end(w), allow_none=True,
        metadata={"type": "string", "format": "date-time",
                  "description": "Until when the previous secret also signs webhook-signature (after rotate-secret)"},
    )
    consecutive_failures = fields.Function(lambda w: w.consecutive_failures or 0, metadata={
        "type": "integer", "minimum": 0, "description": "Failed deliveries in a row (0 after a success)"})
    failing_since = fields.Function(lambda w: ids.isoformat(w.failing_since), allow_none=True, metadata={
        "type": "string", "format": "date-time", "description": "When the current run of failures began"})


def _grace_end(webhook: Any) -> str | None:
    """``previous_secret_expires_at`` while a previous secret still signs, else ``None``."""
    expires = ids.as_utc(webhook.previous_secret_expires_at)
    if webhook.previous_signing_secret is None or expires is None or expires <= ids.utcnow():
        return None
    return ids.isoformat(expires)


_webhook_schema = WebhookSchema()


def dump_webhook(webhook: Any) -> dict[str, Any]:
    """The webhook object of a ``Webhook`` row."""
    return _webhook_schema.dump(webhook)
