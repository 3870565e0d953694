"""50 concurrent duplicates per adapter and store, under real servers on 127.0.0.1.

``test_receiver_concurrency`` runs the Flask adapter against every store;
``test_django`` and ``test_fastapi`` race their adapters against the memory store and one
persistent store each. This module completes the matrix for the other two adapters:

* Django, under Django's threaded WSGI server (``runserver``'s), with every store of the
  conftest matrix: ``memory``, ``redis`` (``RedisStore``), ``sqlite`` (``SQLStore``),
  ``django`` (``DjangoStore``, the ORM) and ``postgresql`` when ``DATABASE_URL`` names it;
* FastAPI, under uvicorn, an ``async def`` handler with the same stores (the synchronous ones
  run in worker threads, off the event loop) plus ``AsyncRedisStore``.

Each combination gets 50 simultaneous deliveries of one event while the handler is still
running (it sleeps 0.2 s): it must run exactly once, every other answer is a duplicate or a
503 with ``Retry-After``, a later retry is a duplicate, and the store says ``completed``.
Then the same after a first run that raised: the key was released, so the 50 racing retries
run the handler exactly once more.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import requests
import uvicorn
from conftest import Calls, _store_factory, deliver_at_once, store_kinds, summarise

# At module level: FastAPI resolves the handler's (string) annotations in this module's globals.
from fastapi import Depends, FastAPI

from receiver_kit.fastapi import idempotent as fastapi_idempotent
from receiver_kit.fastapi import verify_webhook as fastapi_verify_webhook
from receiver_kit.idempotency import AsyncRedisStore
from receiver_kit.testing import sample_payload, signed_request

SECRET = "whsec_Y29uY3VycmVuY3ktYWRhcHRlcnMtc2VjcmV0LTMyYg=="
DELIVERIES = 50
HANDLER_SECONDS = 0.2
RETRY_AFTER = 4
TIMEOUT = 10.0

trakkr = fastapi_verify_webhook(secret=SECRET)
Payload = Annotated[dict[str, Any], Depends(trakkr)]


class Handler:
    """The endpoint owner's work: counted, slow enough to overlap every duplicate, raises on demand."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.event_ids: list[str] = []
        self.fail_next = False

    def begin(self, payload: dict[str, Any]) -> None:
        """Count the run; raise if told to (the claim must then be released)."""
        self.calls.hit()
        self.event_ids.append(payload["meta"]["event_id"])
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("crashed half-way")


class Endpoint:
    """One adapter serving one store: its URL, the handler's record and the store's view of a key."""

    def __init__(self, url: str, handler: Handler, state: Callable[[str], str | None]) -> None:
        self.url = url
        self.handler = handler
        self.state = state


def _sync_state(store: Any) -> Callable[[str], str | None]:
    def state(key: str) -> str | None:
        value: str | None = store.state(key)
        return value

    return state


# -- Django ------------------------------------------------------------------------------------


@pytest.fixture
def django_endpoint(django_settings: Any, make_store: Callable[..., Any]) -> Iterator[Endpoint]:
    """``@verify_webhook`` + ``@idempotent(store)`` served by Django's threaded WSGI server, one per test."""
    from conftest import DJANGO_URLS
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.urls import clear_url_caches, path

    from receiver_kit.django import idempotent, verify_webhook

    store = make_store()
    handler = Handler()

    @verify_webhook(secret=SECRET)
    @idempotent(store=store, retry_after=RETRY_AFTER)
    def on_trakkr(request: HttpRequest, payload: dict[str, Any]) -> JsonResponse:
        handler.begin(payload)
        time.sleep(HANDLER_SECONDS)
        return JsonResponse({"handled": payload["meta"]["event_id"]})

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadedWSGIServer):
        request_queue_size = 128  # runserver's 10 would reset 50 simultaneous connects

    # The URL patterns are process-wide (test_django's too): swap ours in, and back out after.
    previous = DJANGO_URLS.urlpatterns  # type: ignore[attr-defined]
    DJANGO_URLS.urlpatterns = [path("concurrency/hooks", on_trakkr)]  # type: ignore[attr-defined]
    clear_url_caches()
    httpd = Server(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(get_wsgi_application())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Endpoint(f"http://127.0.0.1:{httpd.server_address[1]}/concurrency/hooks", handler, _sync_state(store))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)
        DJANGO_URLS.urlpatterns = previous  # type: ignore[attr-defined]
        clear_url_caches()


# -- FastAPI -----------------------------------------------------------------------------------


def fastapi_store_kinds() -> list[str]:
    """The conftest matrix (synchronous stores, called from worker threads) and ``AsyncRedisStore``."""
    return [*store_kinds(), "async-redis"]


@pytest.fixture(params=fastapi_store_kinds())
def fastapi_endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Endpoint]:
    """``Depends(verify_webhook)`` + ``@idempotent(store)`` on an ``async def`` handler, served by uvicorn."""
    kind: str = request.param
    with _store_factory("redis" if kind == "async-redis" else kind, request, tmp_path) as factory:
        if kind == "async-redis":
            # The sync store only supplies an isolated prefix (and removes its keys after the test).
            sync_store = factory()
            store: Any = AsyncRedisStore(request.getfixturevalue("redis_url"), prefix=sync_store.prefix)
            state = _sync_state(sync_store)  # the same keys, read from the test thread
        else:
            store = factory()
            state = _sync_state(store)
        handler = Handler()
        app = FastAPI()

        @app.post("/hooks")
        @fastapi_idempotent(store=store, retry_after=RETRY_AFTER)
        async def on_trakkr(payload: Payload) -> dict[str, Any]:
            handler.begin(payload)
            await asyncio.sleep(HANDLER_SECONDS)
            return {"handled": payload["meta"]["event_id"]}

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off", backlog=128))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            yield Endpoint(f"http://127.0.0.1:{sock.getsockname()[1]}/hooks", handler, state)
        finally:
            server.should_exit = True
            thread.join(TIMEOUT)
            sock.close()


# -- the races ---------------------------------------------------------------------------------


def race(endpoint: Endpoint, payload: dict[str, Any]) -> dict[str, int]:
    """50 simultaneous deliveries of ``payload``; the answers by kind, checked for shape."""
    req = signed_request(payload, SECRET)
    responses = deliver_at_once(endpoint.url, req.body, req.headers, n=DELIVERIES)
    kinds = summarise(responses)
    assert set(kinds) <= {"handled", "duplicate", "503"}, kinds
    assert sum(kinds.values()) == DELIVERIES
    busy = [r for r in responses if r.status_code == 503]
    assert all(r.headers.get("Retry-After") == str(RETRY_AFTER) for r in busy)
    assert all(r.json()["error"]["type"] == "in_progress" for r in busy)
    event_id = payload["meta"]["event_id"]
    handled = [r.json() for r in responses if r.status_code == 200 and not r.json().get("duplicate")]
    assert handled == [{"handled": event_id}] * len(handled)
    return kinds


def deliver(endpoint: Endpoint, payload: dict[str, Any]) -> requests.Response:
    """One delivery of ``payload`` (freshly signed, as each retry is)."""
    req = signed_request(payload, SECRET)
    return requests.post(endpoint.url, data=req.body, headers=req.headers, timeout=TIMEOUT)


def check_fifty_duplicates_run_once(endpoint: Endpoint) -> None:
    """50 at once while the first runs: one run; then a late retry is a duplicate."""
    payload = sample_payload(data={"race": secrets.token_hex(4)})
    event_id = payload["meta"]["event_id"]
    kinds = race(endpoint, payload)
    assert endpoint.handler.calls.count == 1, kinds
    assert endpoint.handler.event_ids == [event_id]
    assert kinds.get("handled") == 1, kinds
    assert endpoint.state(event_id) == "completed"
    late = deliver(endpoint, payload)
    assert (late.status_code, late.json()) == (200, {"received": True, "duplicate": True, "event_id": event_id})
    assert endpoint.handler.calls.count == 1


def check_after_a_raise_fifty_retries_run_once_more(endpoint: Endpoint) -> None:
    """A run that raised released the key: of 50 racing retries exactly one runs the handler again."""
    payload = sample_payload(data={"race": secrets.token_hex(4)})
    event_id = payload["meta"]["event_id"]
    endpoint.handler.fail_next = True
    first = deliver(endpoint, payload)
    assert first.status_code == 500
    assert endpoint.handler.calls.count == 1
    assert endpoint.state(event_id) is None  # released: neither completed nor held
    kinds = race(endpoint, payload)
    assert endpoint.handler.calls.count == 2, kinds
    assert kinds.get("handled") == 1, kinds
    assert endpoint.state(event_id) == "completed"
    assert deliver(endpoint, payload).json() == {"received": True, "duplicate": True, "event_id": event_id}
    assert endpoint.handler.calls.count == 2


def test_django_fifty_concurrent_duplicates_run_the_view_exactly_once(django_endpoint: Endpoint) -> None:
    check_fifty_duplicates_run_once(django_endpoint)


def test_django_after_a_raise_fifty_concurrent_retries_run_the_view_exactly_once_more(
    django_endpoint: Endpoint,
) -> None:
    check_after_a_raise_fifty_retries_run_once_more(django_endpoint)


def test_fastapi_fifty_concurrent_duplicates_run_the_handler_exactly_once(fastapi_endpoint: Endpoint) -> None:
    check_fifty_duplicates_run_once(fastapi_endpoint)


def test_fastapi_after_a_raise_fifty_concurrent_retries_run_the_handler_exactly_once_more(
    fastapi_endpoint: Endpoint,
) -> None:
    check_after_a_raise_fifty_retries_run_once_more(fastapi_endpoint)
