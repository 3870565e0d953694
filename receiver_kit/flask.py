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
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, jsonify, request

from .endpoint import MAX_KEY_LENGTH, Idempotency, Reply, SecretSource, SignatureGate
from .idempotency.base import IdempotencyStore, event_id_of
from .standard import DEFAULT_TOLERANCE

__all__ = ["MAX_KEY_LENGTH", "SecretSource", "idempotent", "verify_webhook"]

F = TypeVar("F", bound=Callable[..., Any])


def _response(reply: Reply) -> Response:
    response = jsonify(reply.body)
    response.status_code = reply.status
    response.headers.update(reply.headers)
    return response


def verify_webhook(
    secret: SecretSource,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    allow_legacy: bool = False,
) -> Callable[[F], F]:
    """Verify each request's signature before the view runs; pass the parsed payload to the view.

    ``secret``: a string, a list (rotation: any may have signed) or a callable
    taking no arguments (``flask.request`` is available to it) returning either,
    or ``None`` when this request has no secret. Failures answer
    ``401 {"error": {"type": "invalid_signature", "code": …, "message": …}}``;
    a correctly signed body that is not JSON answers 400 (``invalid_payload``).
    ``tolerance``: seconds ``webhook-timestamp`` may be off. ``allow_legacy=True``
    also accepts requests signed with ``X-Trakkr-Signature`` alone (no replay window).
    """
    gate = SignatureGate(secret, tolerance=tolerance, allow_legacy=allow_legacy)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # Raw bytes first: nothing may parse (and re-serialise) the body before the HMAC.
            body = request.get_data(cache=True)
            payload, reply = gate.payload_or_reply(body, request.headers, path=request.path)
            if reply is not None:
                return _response(reply)
            return current_app.ensure_sync(view)(payload, *args, **kwargs)

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the view's name, not its type

    return decorator


def idempotent(
    store: IdempotencyStore,
    *,
    key: Callable[[Any], str | None] = event_id_of,
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
    once = Idempotency(
        store, key=key, processing_ttl=processing_ttl, completed_ttl=completed_ttl, retry_after=retry_after
    )

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not args:
                raise TypeError(
                    "@idempotent needs the verified payload as the view's first argument: put it below @verify_webhook"
                )

            def handler() -> Response:
                return current_app.make_response(current_app.ensure_sync(view)(*args, **kwargs))

            return once.run(args[0], handler, lambda response: response.status_code, _response)

        return wrapper  # type: ignore[return-value]  # functools.wraps keeps the view's name, not its type

    return decorator
