"""Every error the sender raises, under one root, and the API's JSON error shape (pure).

``TrakkrWebhooksError`` is the root: ``except TrakkrWebhooksError`` catches anything this
package raises on purpose. Most classes also derive from the built-in exception that
described them before (``ValueError``, ``RuntimeError``), so existing handlers keep working.

The API answers every failure as
``{"error": {"type": "invalid_request", "message": "...", "fields": {"<field>": ["..."]}}}``;
:class:`APIError` carries that shape (the blueprint's handlers live in :mod:`.api.common`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TrakkrWebhooksError(Exception):
    """The root of every error flask-trakkr-webhooks raises."""


class ConfigError(TrakkrWebhooksError, ValueError):
    """A ``TRAKKR_WEBHOOKS_*`` setting has the wrong shape (raised by ``init_app``)."""


class NotInitialisedError(TrakkrWebhooksError, RuntimeError):
    """The app has no ``TrakkrWebhooks`` extension (``init_app`` was not called)."""


class MessageError(TrakkrWebhooksError, ValueError):
    """A delivery's request cannot be built (e.g. ``bearer`` auth without a token): a permanent failure."""


#: ``error.type`` for each status the API uses.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


class APIError(TrakkrWebhooksError):
    """An error answered to the API client as the contract's JSON error object."""

    def __init__(
        self,
        status: int,
        message: str,
        fields: Mapping[str, Any] | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = normalise_fields(fields or {})
        self.type = type or ERROR_TYPES.get(status, "invalid_request")

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error."""
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


def normalise_fields(fields: Mapping[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """Flatten marshmallow's nested messages into ``{"a.b": ["msg", ...]}``."""
    out: dict[str, list[str]] = {}
    for key, value in fields.items():
        name = f"{prefix}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(normalise_fields(value, name + "."))
        elif isinstance(value, (list, tuple)):
            msgs: list[str] = []
            for item in value:
                if isinstance(item, Mapping):
                    out.update(normalise_fields(item, name + "."))
                else:
                    msgs.append(str(item))
            if msgs:
                out.setdefault(name, []).extend(msgs)
        else:
            out.setdefault(name, []).append(str(value))
    return out
