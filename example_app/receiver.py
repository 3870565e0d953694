"""An endpoint owner's receiver, built only on ``receiver_kit``.

It checks the bearer token, verifies the signature over the raw body, processes each
event once (idempotency keyed on ``meta.event_id``) and prints a line per event.

    python -m example_app.receiver --port 9000

Environment: ``RECEIVER_SIGNING_SECRET`` (required); ``RECEIVER_SECRETS_URL`` and
``RECEIVER_API_KEY`` (optional: the host's ``/webhooks`` list and a key for it; the current
signing secret of every webhook listed there is accepted too, so the demo's receiver keeps
verifying after a secret is rotated through the API); ``RECEIVER_BEARER_TOKEN`` (optional:
when set, requests must carry it); ``RECEIVER_REDIS_URL`` (optional: keep the idempotency
keys in Redis instead of memory); ``RECEIVER_FAIL_ONCE`` (optional: an event type whose
first delivery fails with a 500, to show a retry).
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
import threading
from typing import Any

from flask import Flask, jsonify, request

from receiver_kit.flask import idempotent, verify_webhook
from receiver_kit.idempotency import MemoryStore, RedisStore


def make_store(name: str) -> Any:
    """Redis when ``RECEIVER_REDIS_URL`` is set (survives restarts, shared by processes), else memory."""
    url = os.environ.get("RECEIVER_REDIS_URL")
    if url:
        import redis

        return RedisStore(redis.Redis.from_url(url), prefix=f"example-receiver:{name}:")
    return MemoryStore()


def secret_source(secret: str, secrets_url: str | None, api_key: str | None) -> Any:
    """``secret``, or, with ``secrets_url``, a callable that also accepts the current secret of
    every webhook the host lists there (asked again for each request: a demo's volume)."""
    if not secrets_url:
        return secret

    def secrets() -> list[str]:
        import requests

        try:
            listing = requests.get(
                secrets_url, params={"limit": 100}, headers={"Authorization": f"Bearer {api_key}"}, timeout=5
            ).json()
        except (requests.RequestException, ValueError):
            return [secret]
        return [secret] + [hook["signing_secret"] for hook in listing.get("data", []) if hook.get("signing_secret")]

    return secrets


def create_receiver(secret: Any, token: str | None = None, fail_once: str | None = None) -> Flask:
    """The receiver app: one route for standard payloads, one for templated ones. ``secret``:
    what ``verify_webhook`` takes (a string, a list, or a callable: :func:`secret_source`)."""
    app = Flask("example_receiver")
    # One store per endpoint: the same event reaches both, and each must process it once.
    store, templated_store = make_store("trakkr"), make_store("templated")
    failed: set[str] = set()
    lock, fail_lock = threading.Lock(), threading.Lock()

    @app.before_request
    def check_token():
        # The webhook's bearer auth: compare in constant time, before reading the body.
        if token is None:
            return None
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return jsonify({"error": "bad bearer token"}), 401
        return None

    def log(line: str) -> None:
        # One write per line under a lock: threads must not interleave their output.
        with lock:
            sys.stdout.write(f"receiver: {line}\n")
            sys.stdout.flush()

    @app.post("/hooks/trakkr")
    @verify_webhook(secret=secret)
    @idempotent(store=store)
    def on_trakkr(payload: dict):
        event = payload["event"]
        with fail_lock:
            first_failure = fail_once == event["type"] and event["id"] not in failed
            if first_failure:
                failed.add(event["id"])
        if first_failure:
            log(f"simulated crash while handling {event['id']} {event['type']} (the sender will retry)")
            raise RuntimeError("simulated crash")
        log(f"verified {event['id']} {event['type']:<18} {payload['summary']}")
        return jsonify({"ok": True})

    @app.post("/hooks/templated")
    @verify_webhook(secret=secret)
    @idempotent(store=templated_store)
    def on_templated(payload: dict):
        log(f"verified {payload['meta']['event_id']} templated          {payload.get('text', '')}")
        return jsonify({"ok": True})

    return app


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: serve the example receiver on ``--host``/``--port`` until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    secret = os.environ.get("RECEIVER_SIGNING_SECRET")
    if not secret:
        print("receiver: set RECEIVER_SIGNING_SECRET", file=sys.stderr)
        return 2
    source = secret_source(secret, os.environ.get("RECEIVER_SECRETS_URL"), os.environ.get("RECEIVER_API_KEY"))
    app = create_receiver(source, os.environ.get("RECEIVER_BEARER_TOKEN"), os.environ.get("RECEIVER_FAIL_ONCE"))
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per event is ours to print

    server = make_server(args.host, args.port, app, threaded=True)
    print(f"receiver: listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
