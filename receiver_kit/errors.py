"""The one exception the receiver kit raises when a delivery cannot be trusted.

Every failure carries a stable ``code`` (for programs) and a stable ``message``
(for logs and for the JSON error a decorator answers with). Tests and endpoint
owners may match on either; neither ever contains a secret or an expected
signature.
"""

from __future__ import annotations

# Stable failure codes.
MISSING_HEADER = "missing_header"
INVALID_HEADER = "invalid_header"
TIMESTAMP_TOO_OLD = "timestamp_too_old"
TIMESTAMP_TOO_NEW = "timestamp_too_new"
NO_MATCHING_SIGNATURE = "no_matching_signature"
INVALID_PAYLOAD = "invalid_payload"
NO_SECRET = "no_secret"


class WebhookVerificationError(Exception):
    """A delivery failed verification; ``code`` says why, ``message`` says it in words.

    ``header`` names the header concerned, when there is one. ``code`` is one of
    ``missing_header``, ``invalid_header``, ``timestamp_too_old``,
    ``timestamp_too_new``, ``no_matching_signature``, ``invalid_payload`` (the
    signature was good but the body is not JSON) and ``no_secret`` (a secret
    callable found no secret for this request).
    """

    def __init__(self, code: str, message: str, header: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.header = header

    def __repr__(self) -> str:
        return f"WebhookVerificationError({self.code!r}, {self.message!r})"

    @classmethod
    def missing_header(cls, header: str) -> WebhookVerificationError:
        """A required header is absent or empty."""
        return cls(MISSING_HEADER, f"missing required header: {header}", header)

    @classmethod
    def invalid_header(cls, header: str, expected: str) -> WebhookVerificationError:
        """A header is present but not in the expected format."""
        return cls(INVALID_HEADER, f"invalid {header} header: expected {expected}", header)

    @classmethod
    def timestamp_too_old(cls) -> WebhookVerificationError:
        """``webhook-timestamp`` is further in the past than the tolerance."""
        return cls(TIMESTAMP_TOO_OLD, "message timestamp too old", "webhook-timestamp")

    @classmethod
    def timestamp_too_new(cls) -> WebhookVerificationError:
        """``webhook-timestamp`` is further in the future than the tolerance."""
        return cls(TIMESTAMP_TOO_NEW, "message timestamp too new", "webhook-timestamp")

    @classmethod
    def no_matching_signature(cls, header: str) -> WebhookVerificationError:
        """No signature in the header matches the body under any configured secret."""
        return cls(NO_MATCHING_SIGNATURE, "no matching signature", header)

    @classmethod
    def invalid_payload(cls) -> WebhookVerificationError:
        """The signature is valid but the body is not UTF-8 JSON."""
        return cls(INVALID_PAYLOAD, "body is not valid JSON")

    @classmethod
    def no_secret(cls) -> WebhookVerificationError:
        """A per-request secret lookup returned nothing."""
        return cls(NO_SECRET, "no signing secret is configured for this endpoint")
