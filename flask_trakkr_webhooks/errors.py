"""One JSON error shape for every failure of the REST API.

``{"error": {"type": "invalid_request", "message": "...", "fields": {"<field>": ["..."]}}}``
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, jsonify
from werkzeug.exceptions import HTTPException

#: ``error.type`` for each status the API uses.
ERROR_TYPES = {
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


class APIError(Exception):
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
        self.fields = _normalise_fields(fields or {})
        self.type = type or ERROR_TYPES.get(status, "invalid_request")

    def to_dict(self) -> dict:
        """The JSON body of this error."""
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


def _normalise_fields(fields: Mapping[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """Flatten marshmallow's nested messages into ``{"a.b": ["msg", ...]}``."""
    out: dict[str, list[str]] = {}
    for key, value in fields.items():
        name = f"{prefix}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(_normalise_fields(value, name + "."))
        elif isinstance(value, (list, tuple)):
            msgs: list[str] = []
            for item in value:
                if isinstance(item, Mapping):
                    out.update(_normalise_fields(item, name + "."))
                else:
                    msgs.append(str(item))
            if msgs:
                out.setdefault(name, []).extend(msgs)
        else:
            out.setdefault(name, []).append(str(value))
    return out


def error_response(error: APIError):
    """A Flask response for ``error``."""
    response = jsonify(error.to_dict())
    response.status_code = error.status
    return response


def register_error_handlers(bp: Blueprint) -> None:
    """Answer every error raised under ``bp`` with the JSON error shape, never HTML."""

    @bp.errorhandler(APIError)
    def _api_error(error: APIError):
        return error_response(error)

    @bp.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        message = error.description or error.name
        response = error_response(APIError(status, message))
        if status == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        # Keep what the host's exception says about how to authenticate (401).
        original = error.get_response()
        if "WWW-Authenticate" in original.headers:
            response.headers["WWW-Authenticate"] = original.headers["WWW-Authenticate"]
        return response

    @bp.errorhandler(Exception)
    def _unexpected(error: Exception):
        # Log the traceback for the operator; the client gets no internals.
        from flask import current_app

        current_app.logger.exception("trakkr_webhooks: unhandled error in the API")
        return error_response(APIError(500, "An internal error occurred; it has been logged."))
