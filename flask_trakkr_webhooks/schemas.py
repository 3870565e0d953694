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

:class:`WebhookSchema`, :class:`DeliverySchema` and :class:`AttemptSchema` dump rows as the
contract's objects, and the same classes document them in the OpenAPI document
(:mod:`.openapi`). Credentials (the secret fields of :mod:`.auth`) are never part of them.

The rules each value must follow live in :mod:`.rules` (pure, no marshmallow); the auth
methods and their credential fields in :mod:`.auth`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final, cast
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from marshmallow import Schema, ValidationError, fields, validates
from marshmallow.validate import Length, Range

from . import auth, ids, pacing, providers, retry, signing
from .config import Settings
from .models import DELIVERY_STATUSES
from .rules import (
    MAX_DESCRIPTION_LENGTH,
    MAX_PASSWORD_LENGTH,
    MAX_SIGNING_SECRET_LENGTH,
    MAX_TOKEN_LENGTH,
    MAX_USERNAME_LENGTH,
    MIN_SIGNING_SECRET_LENGTH,
    canonical_uuid,
    header_name_problems,
    header_value_problems,
    invalid_unicode,
    shown,
    template_problems,
    text_problems,
    url_problems,
)
from .state import get_state

#: Fields of the webhook object a client cannot set.
READ_ONLY_FIELDS: tuple[str, ...] = (
    "id",
    "object",
    "created_at",
    "updated_at",
    "disabled_reason",
    "disabled_at",
    "deleted",
    "previous_secret_expires_at",
    "consecutive_failures",
    "failing_since",
)
#: Columns a create or update may set (what :func:`merge` returns).
WRITABLE_FIELDS: tuple[str, ...] = (
    "url",
    "events",
    "brand_id",
    "active",
    "description",
    "provider",
    "auth_type",
    *auth.CREDENTIAL_COLUMNS,
    "headers",
    "template",
    "signing_secret",
    "rate_limit",
)
#: A new webhook's values before the request's fields are laid over them.
CREATE_DEFAULTS: dict[str, Any] = {
    "active": True,
    "description": None,
    "provider": None,
    "auth_type": "none",
    "headers": {},
    "template": None,
    "signing_secret": None,
    "rate_limit": None,
    **dict.fromkeys(auth.CREDENTIAL_COLUMNS),
}

#: The message on a credential (or ``headers``) a PATCH must send again because the URL's origin changes.
RESEND_ON_NEW_ORIGIN = "must be sent again when the URL's origin (scheme, host or port) changes"
#: Instance attribute where the API's loader notes which encrypted columns of a loaded ``Webhook``
#: row the configured key cannot decrypt (see :func:`unreadable_credentials`).
UNREADABLE_ATTRIBUTE = "_trakkr_unreadable_credentials"


class _Unreadable:
    """The type of :data:`UNREADABLE`."""

    def __repr__(self) -> str:
        return "<unreadable credential>"


#: What :func:`current_values` gives for a credential that cannot be decrypted: not ``None``
#: (it is stored), and equal only to itself, so :func:`prepare_update` sees it as kept.
UNREADABLE: Final = _Unreadable()


def unreadable_credentials(webhook: Any) -> tuple[str, ...]:
    """The encrypted columns of ``webhook`` that the configured key cannot decrypt (empty for a
    row that was not loaded by the API's loader, whose columns decrypt as they load)."""
    return tuple(getattr(webhook, UNREADABLE_ATTRIBUTE, ()))


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


#: How a rate limit looks in the OpenAPI document (input and output).
RATE_LIMIT_SCHEMA: dict[str, Any] = {
    "type": "array",
    "nullable": True,
    "maxItems": pacing.MAX_WINDOWS,
    "items": {
        "type": "object",
        "required": ["requests", "per_seconds"],
        "additionalProperties": False,
        "properties": {
            "requests": {"type": "integer", "minimum": 1, "maximum": pacing.MAX_REQUESTS},
            "per_seconds": {"type": "number", "minimum": 0.001, "maximum": pacing.MAX_WINDOW_SECONDS},
        },
    },
}


class RateLimitField(fields.Field[list[dict[str, Any]]]):
    """A webhook's send rate: a list of ``{"requests", "per_seconds"}`` windows (``[]``: no
    pacing; ``null``: its provider's published limit). Stored normalised (:func:`.pacing.dump`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if isinstance(value, str) or not isinstance(value, list):
            raise ValidationError('must be a list of windows such as [{"requests": 5, "per_seconds": 2}], or null')
        try:
            return cast("list[dict[str, Any]]", pacing.dump(pacing.parse(value)))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class _WebhookInput(Schema):
    """Every field a client may send; per-field checks only (see :func:`merge` for the rest)."""

    url = fields.String(required=True, metadata={"description": "Endpoint URL (https unless REQUIRE_HTTPS is off)"})
    events = fields.List(fields.String(), required=True, metadata={"description": "Event types to receive"})
    brand_id = BrandId(required=True, metadata={"description": "Brand UUID (fixed once created)"})
    active = StrictBoolean(metadata={"description": "Deliver to this endpoint (default true)"})
    description = CheckedString(
        check=lambda v: text_problems(v, newlines=True),
        allow_none=True,
        validate=Length(max=MAX_DESCRIPTION_LENGTH),
        metadata={"description": "A note for people"},
    )
    provider = fields.String(
        allow_none=True,
        metadata={"description": "The body format: a registered provider name; absent or null: detected from the URL"},
    )
    auth_type = fields.String(metadata={"description": "How deliveries authenticate"})
    auth_token = CheckedString(
        check=_visible_ascii,
        allow_none=True,
        validate=Length(1, MAX_TOKEN_LENGTH),
        metadata={"description": "bearer: the token (write-only)"},
    )
    auth_username = CheckedString(
        check=_username,
        allow_none=True,
        validate=Length(1, MAX_USERNAME_LENGTH),
        metadata={"description": "basic: the user name"},
    )
    # An empty password is allowed: some APIs take a key as the user name and no password.
    auth_password = CheckedString(
        check=text_problems,
        allow_none=True,
        validate=Length(0, MAX_PASSWORD_LENGTH),
        metadata={"description": "basic: the password (write-only)"},
    )
    api_key_header = CheckedString(
        check=_api_key_header,
        allow_none=True,
        metadata={"description": "api_key: the header name"},
    )
    api_key_value = CheckedString(
        check=header_value_problems,
        allow_none=True,
        validate=Length(1, MAX_TOKEN_LENGTH),
        metadata={"description": "api_key: the header value (write-only)"},
    )
    headers = fields.Raw(
        allow_none=True,
        metadata={
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Custom request headers",
        },
    )
    template = fields.Raw(allow_none=True, metadata={"description": "Body template: a JSON object or array"})
    rate_limit = RateLimitField(
        allow_none=True,
        metadata={
            **RATE_LIMIT_SCHEMA,
            "description": "The most this webhook is sent: every window holds at once (at most `requests` in any "
            "`per_seconds`). null: its provider's published limit (Slack, Discord, Teams) or none; []: no pacing",
        },
    )
    signing_secret = SigningSecret(
        allow_none=True,
        metadata={
            "description": 'HMAC-SHA256 signing secret. Absent on create, or "generate": a new whsec_ secret '
            "(answered in the response); null: unsigned (on PATCH: removes it). "
            "Setting it replaces the secret at once: "
            "use POST /webhooks/{id}/rotate-secret for a grace period"
        },
    )

    def __init__(self, settings: Settings, event_types: Iterable[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.event_types = tuple(event_types)

    @validates("provider")
    def _check_provider(self, value: str | None, **kwargs: Any) -> None:
        if value is not None and not providers.is_registered(value):
            raise ValidationError([f"unknown provider {shown(value)}; registered: {', '.join(providers.names())}"])

    @validates("auth_type")
    def _check_auth_type(self, value: str, **kwargs: Any) -> None:
        if auth.get(value) is None:
            raise ValidationError([f"must be one of: {', '.join(auth.names())}"])

    @validates("url")
    def _check_url(self, value: str, **kwargs: Any) -> None:
        # REQUIRE_HTTPS is judged with the destination (api.webhooks._vet_url): plain http may
        # reach an admitted private receiver.
        problems = url_problems(value, require_https=False)
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
                errors[index] = [f"duplicate event type {shown(name)}"]
            elif name not in self.event_types:
                errors[index] = [f"unknown event type {shown(name)}; known: {', '.join(self.event_types)}"]
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
                problems = [f"repeats {shown(seen[name.lower()])} (header names are case-insensitive)"]
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
    * ``api_key_header`` equal to a custom header name;
    * a ``url`` with another origin (scheme, host or port) than the current one while the
      secret credentials of the kept ``auth_type``, or the custom ``headers``, are not sent
      again: stored credentials never follow a URL to another origin.

    Changing ``auth_type`` drops the old type's credentials; ``null`` clears a field
    (``headers: null`` means no custom headers). The provider is detected from the URL
    unless given: on create, and on an update that changes the URL or sets ``provider: null``.
    """
    result: dict[str, Any] = {name: current.get(name) for name in WRITABLE_FIELDS}
    result.update(loaded)
    if result.get("headers") is None:
        result["headers"] = {}
    if loaded.get("provider") is None and ("url" in loaded or "provider" in loaded or not current.get("provider")):
        result["provider"] = providers.detect_provider(result["url"])
    auth_type = result.get("auth_type") or "none"
    result["auth_type"] = auth_type
    method = auth.get(auth_type)
    wanted = method.fields if method is not None else ()
    errors: dict[str, list[str]] = {}
    for name in auth.CREDENTIAL_COLUMNS:
        if name in wanted:
            if auth_type != current.get("auth_type") and name not in loaded:
                result[name] = None  # a new type starts from no credentials
            continue
        if loaded.get(name) is not None:
            errors[name] = [f"is only accepted with auth_type {auth.owner_of(name)!r} (the auth_type is {auth_type!r})"]
        result[name] = None
    for name in wanted:
        if result.get(name) is None:
            errors.setdefault(name, []).append(f"is required when auth_type is {auth_type!r}")
    if "url" in loaded and current.get("url") and _origin(loaded["url"]) != _origin(current["url"]):
        # Otherwise anyone who may PATCH could point the URL at their own host and have the
        # stored (write-only) credentials sent there.
        if method is not None and auth_type == current.get("auth_type"):
            for name in method.secret_fields:
                if name not in loaded:
                    errors.setdefault(name, []).append(RESEND_ON_NEW_ORIGIN)
        if current.get("headers") and "headers" not in loaded:
            errors["headers"] = [RESEND_ON_NEW_ORIGIN + " (or send {} or null for none)"]
    key_header = result.get("api_key_header")
    if key_header and not errors:
        clash = next((h for h in result["headers"] if h.lower() == key_header.lower()), None)
        if clash is not None:
            if "headers" in loaded:
                errors[f"headers.{clash}"] = ["is the api_key_header; it is set by auth_type 'api_key'"]
            else:
                errors["api_key_header"] = [f"is already a custom header ({clash!r})"]
    if errors:
        raise ValidationError(errors)
    return result


def _origin(url: str) -> tuple[str, str, int | None] | str:
    """``(scheme, host, port)`` of ``url``, the default port filled in; the URL itself if it has none."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
        return (scheme, (parts.hostname or "").rstrip("."), port)
    except ValueError:  # a stored URL written around the API: compare it as text
        return url


def prepare_create(body: Mapping[str, Any], settings: Settings, event_types: Iterable[str]) -> dict[str, Any]:
    """Validate a create body; answer every writable column's value (``ValidationError`` otherwise)."""
    loaded = _load(WebhookCreateSchema(settings, event_types), body)
    if "signing_secret" not in loaded:
        # Signed by default (the contract): only an explicit null opts out.
        loaded["signing_secret"] = signing.generate_secret()
    return merge(CREATE_DEFAULTS, loaded)


def prepare_update(
    body: Mapping[str, Any],
    current: Mapping[str, Any],
    settings: Settings,
    event_types: Iterable[str],
) -> dict[str, Any]:
    """Validate a PATCH body against the webhook's ``current`` values; answer the changed columns only."""
    loaded = _load(WebhookUpdateSchema(settings, event_types), body)
    if "brand_id" in loaded and loaded["brand_id"] != current.get("brand_id"):
        raise ValidationError({"brand_id": ["cannot be changed; create a webhook for the other brand"]})
    merged = merge(current, loaded)
    return {name: value for name, value in merged.items() if value != current.get(name)}


def current_values(webhook: Any) -> dict[str, Any]:
    """The writable columns of a ``Webhook`` row, as :func:`prepare_update` compares them.

    A credential the configured key cannot decrypt is :data:`UNREADABLE` (never read, so
    never decrypted): a PATCH that neither replaces nor drops it answers it unchanged.
    """
    unreadable = unreadable_credentials(webhook)
    values = {name: UNREADABLE if name in unreadable else getattr(webhook, name) for name in WRITABLE_FIELDS}
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

    signing_secret = SigningSecret(
        metadata={"description": 'The new secret; absent or "generate": a new whsec_ secret (32 random bytes, base64)'}
    )


class StatusList(fields.Field[tuple[str, ...]]):
    """One status name or a list of them (each of :data:`REPLAY_STATUSES`), answered as a tuple."""

    default_error_messages = {"invalid": f"must be one of {', '.join(REPLAY_STATUSES)}, or a list of them"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(i, str) and i in REPLAY_STATUSES for i in items)
        ):
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

    since = Since(
        required=True,
        metadata={
            "pattern": RFC3339_PATTERN,
            "description": "Replay deliveries made (and, for missed, events emitted) at or after this time",
        },
    )
    status = StatusList(
        load_default=("failed",),
        metadata={
            "description": "failed (default), cancelled (e.g. cancelled when the webhook was disabled), missed "
            "(emitted while the webhook was inactive), or a list of them"
        },
    )
    limit = fields.Integer(
        load_default=MAX_REPLAY,
        strict=True,
        validate=Range(1, MAX_REPLAY),
        metadata={"description": "Most events to redeliver (oldest first); ask again for the rest"},
    )


def load_request(schema: Schema, body: Mapping[str, Any]) -> dict[str, Any]:
    """``schema.load(body)``, refusing strings with unpaired surrogates first (``ValidationError``)."""
    problems = invalid_unicode(dict(body))
    if problems:
        raise ValidationError(problems)
    return cast("dict[str, Any]", schema.load(body))  # a Schema (many=False) loads one dict


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
    provider = fields.String(
        metadata={
            "description": "The body format: detected from the URL (webhook, slack, discord, teams_webhook, "
            "zapier, make, or a host-registered provider) unless given on create or update"
        }
    )
    active = fields.Boolean()
    description = fields.String(allow_none=True)
    signing_secret = fields.Function(
        lambda w: None if "signing_secret" in unreadable_credentials(w) else w.signing_secret,
        allow_none=True,
        metadata={
            "type": "string",
            "description": "The HMAC-SHA256 signing secret; null when the webhook does not sign, or when the "
            "stored secret cannot be decrypted with the configured key (then unreadable_credentials names it)",
        },
    )
    unreadable_credentials = fields.Function(
        lambda w: list(unreadable_credentials(w)),
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": "Stored credentials (auth_token, auth_password, api_key_value, signing_secret, "
            "previous_signing_secret) that the configured encryption key cannot decrypt; empty when all is "
            "well. While it is not empty, actions that need them answer 409: configure the key they were "
            "written with, send them again with PATCH, or delete the webhook",
        },
    )
    auth_type = fields.String(metadata={"description": "One of the auth methods (see the create schema)"})
    auth_username = fields.String(allow_none=True)
    api_key_header = fields.String(allow_none=True)
    headers = fields.Function(
        lambda w: dict(w.headers or {}), metadata={"type": "object", "additionalProperties": {"type": "string"}}
    )
    template = fields.Raw(allow_none=True, metadata={"description": "A JSON object or array, or null"})
    rate_limit = fields.Raw(
        allow_none=True,
        metadata={**RATE_LIMIT_SCHEMA, "description": "The webhook's own send rate, or null for its provider's"},
    )
    effective_rate_limit = fields.Function(
        lambda w: pacing.dump(effective_rate_limit(w)),
        metadata={
            **RATE_LIMIT_SCHEMA,
            "nullable": False,
            "description": "The send rate deliveries are held to: its own, else TRAKKR_WEBHOOKS_RATE_LIMITS for "
            "its provider, else the provider's published limit; [] when not paced",
        },
    )
    created_at = fields.Function(
        lambda w: ids.isoformat(w.created_at), metadata={"type": "string", "format": "date-time"}
    )
    updated_at = fields.Function(
        lambda w: ids.isoformat(w.updated_at), metadata={"type": "string", "format": "date-time"}
    )
    disabled_reason = fields.String(
        allow_none=True,
        metadata={
            "description": "Why the sender disabled the webhook (410 Gone, or too many failures in a row); null when "
            "not disabled by the sender"
        },
    )
    disabled_at = fields.Function(
        lambda w: ids.isoformat(w.disabled_at), allow_none=True, metadata={"type": "string", "format": "date-time"}
    )
    previous_secret_expires_at = fields.Function(
        lambda w: _grace_end(w),
        allow_none=True,
        metadata={
            "type": "string",
            "format": "date-time",
            "description": "Until when the previous secret also signs webhook-signature (after rotate-secret)",
        },
    )
    consecutive_failures = fields.Function(
        lambda w: w.consecutive_failures or 0,
        metadata={"type": "integer", "minimum": 0, "description": "Failed deliveries in a row (0 after a success)"},
    )
    failing_since = fields.Function(
        lambda w: ids.isoformat(w.failing_since),
        allow_none=True,
        metadata={"type": "string", "format": "date-time", "description": "When the current run of failures began"},
    )


def effective_rate_limit(webhook: Any) -> pacing.RateLimit:
    """The rate a webhook's deliveries are held to (:func:`.pacing.effective`, with the current
    app's ``TRAKKR_WEBHOOKS_RATE_LIMITS`` when there is an app context)."""
    provider = webhook.provider or "webhook"
    entry = providers.get(provider)
    configured: Mapping[str, pacing.RateLimit] = {}
    if has_app_context():
        configured = get_state(current_app).settings.rate_limits
    return pacing.effective(webhook.rate_limit, provider, configured, entry.rate_limit if entry else ())


def _grace_end(webhook: Any) -> str | None:
    """``previous_secret_expires_at`` while a previous secret still signs, else ``None``."""
    expires: datetime | None = ids.as_utc(webhook.previous_secret_expires_at)
    if expires is None or expires <= ids.utcnow():
        return None
    if "previous_signing_secret" not in unreadable_credentials(webhook) and webhook.previous_signing_secret is None:
        return None
    return ids.isoformat(expires)


_webhook_schema = WebhookSchema()


def dump_webhook(webhook: Any) -> dict[str, Any]:
    """The webhook object of a ``Webhook`` row."""
    return cast("dict[str, Any]", _webhook_schema.dump(webhook))  # a Schema (many=False) dumps one dict


# -- deliveries and attempts --------------------------------------------------------------

_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATE_TIME = {**_DATE_TIME, "nullable": True}
#: What a webhook id and a delivery id look like (documented in the OpenAPI document).
WEBHOOK_ID_PATTERN = r"^wh_[A-Za-z0-9_-]{1,37}$"
DELIVERY_ID_PATTERN = r"^dlv_[A-Za-z0-9_-]{1,37}$"


def _time(name: str, *, nullable: bool = False) -> fields.Function:
    """A timestamp attribute of the row, in ISO 8601 UTC (``null`` when unset and ``nullable``)."""
    return fields.Function(
        lambda row: ids.isoformat(getattr(row, name)),
        required=True,
        allow_none=nullable,
        metadata=_NULLABLE_DATE_TIME if nullable else _DATE_TIME,
    )


class AttemptSchema(Schema):
    """One attempt of a delivery, as it happened."""

    id = fields.String(required=True, metadata={"example": "att_5f0c6a1e9b2d4c7a8e3f1b0d"})
    object = fields.Constant("attempt", required=True, metadata={"type": "string", "enum": ["attempt"]})
    number = fields.Integer(required=True, metadata={"minimum": 1, "description": "1 for the first attempt"})
    started_at = _time("started_at")
    duration_ms = fields.Float(required=True, allow_none=True)
    status_code = fields.Integer(required=True, allow_none=True, metadata={"description": "null: no HTTP answer"})
    outcome = fields.String(
        required=True,
        metadata={
            "enum": list(retry.OUTCOMES),
            "description": "succeeded; retry (a failure, retried); deferred (rate limited: 429 or 503 with "
            "Retry-After; the next attempt waits as asked and uses up no retry); failed",
        },
    )
    error_type = fields.String(required=True, allow_none=True)
    error_message = fields.String(required=True, allow_none=True)
    response_headers = fields.Dict(required=True, allow_none=True)
    response_body = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The start of the answer's body (TRAKKR_WEBHOOKS_RESPONSE_BODY_LIMIT bytes at most)"},
    )
    next_retry_at = _time("next_retry_at", nullable=True)


class DeliverySchema(Schema):
    """A delivery of one event to one webhook, as listed."""

    id = fields.String(required=True, metadata={"pattern": DELIVERY_ID_PATTERN})
    object = fields.Constant("delivery", required=True, metadata={"type": "string", "enum": ["delivery"]})
    webhook_id = fields.String(required=True, metadata={"pattern": WEBHOOK_ID_PATTERN})
    event_id = fields.String(required=True, metadata={"description": "meta.event_id: the same on every redelivery"})
    event_type = fields.Function(lambda row: row.event.type, required=True, metadata={"type": "string"})
    status = fields.String(required=True, metadata={"enum": list(DELIVERY_STATUSES)})
    is_test = fields.Boolean(required=True)
    attempt_count = fields.Integer(required=True, metadata={"minimum": 0})
    deferrals = fields.Function(
        lambda row: row.deferrals or 0,
        required=True,
        metadata={
            "type": "integer",
            "minimum": 0,
            "description": "Attempts answered 429 (or 503 with Retry-After): they use up no retry",
        },
    )
    last_status_code = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    next_attempt_at = _time("next_attempt_at", nullable=True)
    created_at = _time("created_at")
    updated_at = _time("updated_at")
    completed_at = _time("completed_at", nullable=True)


class DeliveryDetailSchema(DeliverySchema):
    """A delivery with the payload it sends and every attempt, oldest first."""

    payload = fields.Function(
        lambda row: row.event.payload,
        required=True,
        metadata={"type": "object", "description": "The event payload (contract: wire format)"},
    )
    attempts = fields.List(fields.Nested(AttemptSchema), required=True)


_attempt_schema = AttemptSchema()
_delivery_schema = DeliverySchema()
_delivery_detail_schema = DeliveryDetailSchema()


def dump_attempt(attempt: Any) -> dict[str, Any]:
    """The attempt object of an ``Attempt`` row."""
    return dict(_attempt_schema.dump(attempt))


def dump_delivery(row: Any, *, detail: bool = False) -> dict[str, Any]:
    """The delivery object of a ``Delivery`` row; ``detail`` adds the payload and every attempt."""
    return dict((_delivery_detail_schema if detail else _delivery_schema).dump(row))
