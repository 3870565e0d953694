"""The portal's request guards: a CSRF token on every POST and the response headers (a strict CSP).

The CSRF token is a random value kept in the host's Flask session (signed with its
``SECRET_KEY``) and sent back in a hidden form field (``csrf_token``) or, for the small
script's ``fetch`` calls, the ``X-CSRF-Token`` header; a POST without the session's value is
refused (400) before its view runs.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Response, request, session

#: The session key of the CSRF token.
SESSION_KEY = "_trakkr_webhooks_portal_csrf"
#: The form field and the header that carry it.
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"

#: The Content-Security-Policy of every portal page: nothing inline, nothing from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

#: Every header a portal response carries.
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Pages hold delivery logs and, once, a new signing secret: never cached.
    "Cache-Control": "no-store",
}


class CSRFError(Exception):
    """A POST without the session's CSRF token."""


def csrf_token() -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def check_csrf() -> None:
    """Raise :class:`CSRFError` for a state-changing request whose token is missing or wrong."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get(HEADER) or ""
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CSRFError("The form's security token is missing or out of date: reload the page and try again.")


def add_headers(response: Response) -> Response:
    """Set :data:`SECURITY_HEADERS` on ``response``."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
