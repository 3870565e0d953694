"""Flask decorators: ``@verify_webhook`` (signature) and ``@idempotent`` (once per event).

::

    @app.post("/hooks/trakkr")
    @verify_webhook(secret=os.environ["TRAKKR_SIGNING_SECRET"])
    @idempotent(store=RedisStore(redis_client))
    def on_trakkr(payload):
        ...

``verify_webhook`` reads the raw body with ``request.get_data()`` before anything
parses it, answers 401 JSON without running the view when verification fails,
and calls the view with the parsed payload as its first positional argument
(URL variables still arrive as keyword arguments). ``idempotent`` must sit below
it: it takes that payload and runs the view once per ``meta.event_id``.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Optional, TypeVar, Union

from flask import Response, current_app, jsonify, request

from .errors import INVALID_PAYLOAD, WebhookVerificationError
from .idempotency.base import COMPLETED, IdempotencyStore, event_id_of
from .keys import Secrets
from .standard import DEFAULT_TOLERANCE
from .verifier import WebhookVerifier

log = logging.getLogger("receiver_kit")

F = TypeVar("F", bound=Callable[..., Any])
#: A secret, a list of secrets, or a callable returning either (``None`` = no secret: 401).
SecretSource = Union[Secrets, Callable[[], Optional[Secrets]]]
MAX_KEY_LENGTH = 255


def _json_error(status: int, type_: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"type": type_, "message": message, **extra}})
    response.status_code = status
    return response


def _verifier_for(source: SecretSource, tolerance: float, allow_legacy: bool) -> WebhookVerifier:
    secret = source() if callable(source) else source
    if secret is None or (hasattr(secret, "__len__") and len(secret) == 0):
        raise WebhookVerificationError.no_secret()
    return WebhookVerifier(secret, tolerance=tolerance, allow_legacy=allow_legacy)


def verify_webhook(
    secret: SecretSource,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_legacy: bool = True,
) -> Callable[[F], F]:
    """Verify each request's signature before the view runs; pass the parsed payload to the view.

    ``secret``: a string, a list (rotation: any may have signed) or a callable
    taking no arguments (``flask.request`` is available to it) returning either,
    or ``None`` when this request has no secret. Failures answer
    ``401 {"error": {"type": "invalid_signature", "code": …, "message": …}}``;
    a correctly signed body that is not JSON answers 400 (``invalid_payload``).
    ``tolerance`` and ``allow_legacy``: see :class:`receiver_kit.WebhookVerifier`.
    """
    # A fixed secret is checked once, now: a bad whsec_ value fails at import, not per request.
    static = None if callable(secret) else WebhookVerifier(secret, tolerance=tolerance, allow_legacy=allow_legacy)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # Raw bytes first: nothing may parse (and re-serialise) the body before the HMAC.
            body = request.get_data(cache=True)
            try:
                verifier = static or _verifier_for(secret, tolerance, allow_legacy)
                payload = verifier.verify(body, request.headers)
            except WebhookVerificationError as exc:
                log.warning("webhook rejected on %s: %s", request.path, exc.message)
                if exc.code == INVALID_PAYLOAD:
                    return _json_error(400, "invalid_request", exc.message, code=exc.code)
                return _json_error(401, "invalid_signature", exc.message, code=exc.code)
            return current_app.ensure_sync(view)(payload, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def _release(store: IdempotencyStore, key: str, token: str) -> None:
    try:
        store.release(key, token)
    except Exception:  # the handler's own error matters more; the claim expires on its own
        log.exception("could not release idempotency key %s; it frees itself after its processing TTL", key)


def idempotent(
    store: IdempotencyStore,
    *,
    key: Callable[[Any], Optional[str]] = event_id_of,
    processing_ttl: float | None = None,
    completed_ttl: float | None = None,
    retry_after: int = 5,
) -> Callable[[F], F]:
    """Run the view at most once per event (``meta.event_id``), however often it is delivered.

    * no event id: 400 ``invalid_request``, view not run;
    * first delivery: the view runs; a response below 500 marks the event
      completed, a 5xx response or an exception releases it (the exception
      propagates, so the sender sees a 500 and retries);
    * repeat of a completed event: 200 ``{"received": true, "duplicate": true}``;
    * repeat while the first is still running: 503 with ``Retry-After: retry_after``;
    * a claim older than the processing TTL (its process died) is taken over.

    ``processing_ttl``/``completed_ttl`` override the store's for this view;
    ``key`` extracts the idempotency key from the payload.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not args:
                raise TypeError(
                    "@idempotent needs the verified payload as the view's first argument: "
                    "put it below @verify_webhook"
                )
            event_id = key(args[0])
            if event_id is None or len(event_id) > MAX_KEY_LENGTH:
                return _json_error(
                    400,
                    "invalid_request",
                    "payload has no usable meta.event_id",
                    fields={"meta.event_id": [f"required: a string of 1 to {MAX_KEY_LENGTH} characters"]},
                )
            claim = store.claim(event_id, processing_ttl=processing_ttl)
            if claim.state == COMPLETED:
                return jsonify({"received": True, "duplicate": True, "event_id": event_id})
            if not claim.acquired:
                response = _json_error(
                    503, "in_progress", f"event {event_id} is being processed; retry later", event_id=event_id
                )
                response.headers["Retry-After"] = str(retry_after)
                return response
            assert claim.token is not None
            try:
                response = current_app.make_response(current_app.ensure_sync(view)(*args, **kwargs))
            except BaseException:
                _release(store, event_id, claim.token)
                raise
            if response.status_code >= 500:
                _release(store, event_id, claim.token)
                return response
            try:
                if not store.complete(event_id, claim.token, completed_ttl=completed_ttl):
                    log.warning("idempotency key %s was taken over while its handler ran", event_id)
            except Exception:  # the work is done: answer 2xx; the claim expires and is retaken at worst
                log.exception("could not mark idempotency key %s completed", event_id)
            return response

        return wrapper  # type: ignore[return-value]

    return decorator
