"""Build the exact HTTP request of a delivery: body bytes and headers (pure, no I/O).

The body is the provider's format of the standard payload (or the webhook's template
rendered on it), serialised once to UTF-8 JSON; every signature is computed over those
exact bytes. Headers, in the order they are set (later ones win):

1. the webhook's custom headers, minus every reserved name (:func:`rules.is_reserved_header`,
   the rule the API applies when a webhook is saved): a custom header can never
   override one of ours, whatever its case;
2. ``Content-Type: application/json``, ``User-Agent: flask-trakkr-webhooks/<version>``,
   ``X-Trakkr-Event``, ``X-Trakkr-Delivery``;
3. the auth header of the webhook's ``auth_type`` (the table in :mod:`.auth`);
4. the signature headers (:func:`signing.signature_headers`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import auth, providers, signing, templating
from ._version import __version__
from .errors import MessageError
from .events import EventType
from .rules import is_sendable_header

__all__ = [
    "CONTENT_TYPE",
    "USER_AGENT",
    "Endpoint",
    "Message",
    "MessageError",
    "auth_headers",
    "build",
    "custom_headers",
    "render_body",
]

USER_AGENT = f"flask-trakkr-webhooks/{__version__}"
CONTENT_TYPE = "application/json"


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

    @property
    def credentials(self) -> dict[str, str | None]:
        """Every credential column's value (what an :class:`auth.AuthMethod` builds headers from)."""
        return {name: getattr(self, name) for name in auth.CREDENTIAL_COLUMNS}


@dataclass(frozen=True)
class Message:
    """One ready-to-send request: ``POST url`` with ``body`` and ``headers``."""

    url: str
    body: bytes
    headers: dict[str, str]


def render_body(endpoint: Endpoint, payload: Mapping[str, Any], event_type: EventType | None = None) -> bytes:
    """The body bytes: the template rendered on ``payload`` if there is one, else the provider format
    (``event_type``: the event type's row, for a host-registered type's chat wording)."""
    if endpoint.template is not None:
        document = templating.render(endpoint.template, dict(payload))
    else:
        provider = endpoint.provider or "webhook"
        try:
            document = providers.format_body(provider, dict(payload), event_type=event_type)
        except Exception as exc:  # a host-registered formatter may raise anything
            # A permanent failure with the reason on record, never a delivery stuck in "sending".
            raise MessageError(f"the {provider!r} formatter failed: {type(exc).__name__}: {exc}") from exc
    try:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"the body is not serialisable as JSON: {exc}") from None
    return text.encode("utf-8")


def auth_headers(endpoint: Endpoint) -> dict[str, str]:
    """The auth headers of the endpoint's ``auth_type`` (empty for ``none``)."""
    return auth.headers_for(endpoint.auth_type or "none", endpoint.credentials)


def custom_headers(endpoint: Endpoint) -> dict[str, str]:
    """The webhook's own headers that may be sent: valid names and values, none reserved.

    The API refuses such headers when a webhook is saved; this filter is the second
    line, so a row written some other way still cannot override ours.
    """
    auth_header = (endpoint.api_key_header or "").lower() if endpoint.auth_type == "api_key" else ""
    out: dict[str, str] = {}
    for name, value in (endpoint.headers or {}).items():
        if is_sendable_header(name, value) and name.lower() != auth_header:
            out[name] = value
    return out


def build(
    endpoint: Endpoint,
    payload: Mapping[str, Any],
    *,
    delivery_id: str,
    timestamp: int,
    event_type: EventType | None = None,
) -> Message:
    """The request of one attempt of delivery ``delivery_id`` of ``payload`` to ``endpoint``.

    ``timestamp`` (Unix seconds of the attempt) is signed by timestamped signature
    schemes; ``payload`` is the standard payload stored with the event; ``event_type`` is
    its type's row in the app's table (host-registered types' chat wording).
    """
    event = payload.get("event") or {}
    body = render_body(endpoint, payload, event_type)
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
