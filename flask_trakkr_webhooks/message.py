"""Build the exact HTTP request of a delivery: body bytes and headers (pure, no I/O).

The body is the provider's format of the standard payload (or the webhook's template
rendered on it), serialised once to UTF-8 JSON; every signature is computed over those
exact bytes. Headers, in the order they are set (later ones win):

1. the webhook's custom headers, minus every reserved name (:func:`schemas.is_reserved_header`,
   the rule the API applies when a webhook is saved): a custom header can never
   override one of ours, whatever its case;
2. ``Content-Type: application/json``, ``User-Agent: flask-trakkr-webhooks/<version>``,
   ``X-Trakkr-Event``, ``X-Trakkr-Delivery``;
3. the auth header of the webhook's ``auth_type``;
4. the signature headers (:func:`signing.signature_headers`).
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import __version__, providers, signing, templating
from .schemas import is_reserved_header

USER_AGENT = f"flask-trakkr-webhooks/{__version__}"
CONTENT_TYPE = "application/json"
AUTH_TYPES = ("none", "bearer", "basic", "api_key")

# RFC 9110 token characters for a field name; values may not carry CR, LF or NUL.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")


class MessageError(ValueError):
    """The request cannot be built (e.g. ``bearer`` auth without a token): a permanent failure."""


@dataclass(frozen=True)
class Endpoint:
    """What :func:`build` needs of a webhook, with its credentials in plain text."""

    url: str
    provider: str = "webhook"
    template: Any = None
    auth_type: str = "none"
    auth_token: str | None = None
    auth_username: str | None = None
    auth_password: str | None = None
    api_key_header: str | None = None
    api_key_value: str | None = None
    signing_secret: str | None = None
    previous_signing_secret: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One ready-to-send request: ``POST url`` with ``body`` and ``headers``."""

    url: str
    body: bytes
    headers: dict[str, str]


def render_body(endpoint: Endpoint, payload: Mapping[str, Any]) -> bytes:
    """The body bytes: the template rendered on ``payload`` if there is one, else the provider format."""
    if endpoint.template is not None:
        document = templating.render(endpoint.template, dict(payload))
    else:
        provider = endpoint.provider or "webhook"
        try:
            document = providers.format_body(provider, dict(payload))
        except Exception as exc:  # a host-registered formatter may raise anything
            # A permanent failure with the reason on record, never a delivery stuck in "sending".
            raise MessageError(f"the {provider!r} formatter failed: {type(exc).__name__}: {exc}") from exc
    try:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"the body is not serialisable as JSON: {exc}") from None
    return text.encode("utf-8")


def auth_headers(endpoint: Endpoint) -> dict[str, str]:
    """The auth header for the endpoint's ``auth_type`` (empty for ``none``)."""
    kind = endpoint.auth_type or "none"
    if kind == "none":
        return {}
    if kind == "bearer":
        if not endpoint.auth_token:
            raise MessageError("auth_type 'bearer' needs an auth_token")
        return {"Authorization": f"Bearer {endpoint.auth_token}"}
    if kind == "basic":
        if endpoint.auth_username is None or endpoint.auth_password is None:
            raise MessageError("auth_type 'basic' needs auth_username and auth_password")
        raw = f"{endpoint.auth_username}:{endpoint.auth_password}".encode("utf-8")
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    if kind == "api_key":
        name, value = endpoint.api_key_header, endpoint.api_key_value
        if not name or value is None or not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise MessageError("auth_type 'api_key' needs a valid api_key_header and api_key_value")
        if is_reserved_header(name):
            raise MessageError(f"api_key_header {name!r} is a reserved header")
        return {name: value}
    raise MessageError(f"unknown auth_type {kind!r}; expected one of {', '.join(AUTH_TYPES)}")


def custom_headers(endpoint: Endpoint) -> dict[str, str]:
    """The webhook's own headers that may be sent: valid names and values, none reserved.

    The API refuses such headers when a webhook is saved; this filter is the second
    line, so a row written some other way still cannot override ours.
    """
    auth_header = (endpoint.api_key_header or "").lower() if endpoint.auth_type == "api_key" else ""
    out: dict[str, str] = {}
    for name, value in (endpoint.headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if not _TOKEN.match(name) or _BAD_VALUE.search(value) or is_reserved_header(name) or name.lower() == auth_header:
            continue
        out[name] = value
    return out


def build(
    endpoint: Endpoint,
    payload: Mapping[str, Any],
    *,
    delivery_id: str,
    timestamp: int,
) -> Message:
    """The request of one attempt of delivery ``delivery_id`` of ``payload`` to ``endpoint``.

    ``timestamp`` (Unix seconds of the attempt) is signed by timestamped signature
    schemes; ``payload`` is the standard payload stored with the event.
    """
    event = payload.get("event") or {}
    body = render_body(endpoint, payload)
    headers = custom_headers(endpoint)
    headers.update(
        {
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            "X-Trakkr-Event": str(event.get("type", "")),
            "X-Trakkr-Delivery": delivery_id,
        }
    )
    headers.update(auth_headers(endpoint))
    headers.update(
        signing.signature_headers(
            body,
            secret=endpoint.signing_secret,
            previous_secret=endpoint.previous_signing_secret,
            message_id=str(event.get("id", "")),
            timestamp=timestamp,
        )
    )
    return Message(url=endpoint.url, body=body, headers=headers)
