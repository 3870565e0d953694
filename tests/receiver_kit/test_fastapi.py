"""``receiver_kit.fastapi`` under uvicorn on 127.0.0.1: FastAPI with ``Depends``, and plain Starlette.

One uvicorn server per module, in a thread. Handlers record each run, so "the handler
never ran" is asserted. ``async`` handlers wait with ``await`` (a blocked event loop
would turn the in-progress test into a timeout, which is part of what is tested).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import requests
import uvicorn
from conftest import Calls, deliver_at_once, summarise

# At module level: FastAPI resolves the handlers' (string) annotations in this module's globals.
from fastapi import Depends, FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver_kit.fastapi import idempotent, verify_webhook, webhook_endpoint
from receiver_kit.idempotency import AsyncRedisStore, MemoryStore, SQLStore
from receiver_kit.testing import sample_payload, signed_request

SECRET = "whsec_ZmFzdGFwaS1yZWNlaXZlci10ZXN0LXNlY3JldC0zMmI="
OTHER = "whsec_b3RoZXItdGVuYW50LXNlY3JldC0zMi1ieXRlcy1sb25n"
TIMEOUT = 10
ROUTES = ("plain", "memory", "redis", "sql", "sync", "starlette", "tenant")


class Handler:
    """What the handlers do, by ``event.data.mode``: ``ok``, ``slow`` (waits for ``go``), ``sleep``, ``raise``."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.entered = threading.Event()
        self.go = threading.Event()

    def _mode(self, payload: Any) -> str:
        self.calls.hit()
        mode: str = payload["event"]["data"].get("mode", "ok")
        if mode == "raise":
            raise RuntimeError("handler crashed")
        return mode

    async def arun(self, payload: Any) -> dict[str, Any]:
        mode = self._mode(payload)
        if mode == "slow":
            self.entered.set()
            assert await asyncio.to_thread(self.go.wait, TIMEOUT), "the test never let the slow handler finish"
        if mode == "sleep":
            await asyncio.sleep(0.2)  # every concurrent duplicate arrives while it runs
        return {"handled": payload["meta"]["event_id"]}

    def run(self, payload: Any) -> dict[str, Any]:
        mode = self._mode(payload)
        if mode == "slow":
            self.entered.set()
            assert self.go.wait(TIMEOUT), "the test never let the slow handler finish"
        if mode == "sleep":
            time.sleep(0.2)
        return {"handled": payload["meta"]["event_id"]}


HANDLERS: dict[str, Handler] = {}
TENANTS = {"acme": SECRET, "globex": OTHER}

# The endpoint owner's dependency, once per app; Annotated keeps the handler signatures short.
trakkr = verify_webhook(secret=SECRET)
per_tenant = verify_webhook(secret=lambda request: TENANTS.get(request.path_params["tenant"]))
Payload = Annotated[dict, Depends(trakkr)]
TenantPayload = Annotated[dict, Depends(per_tenant)]


def build_app(redis_url: str, sqlite_path: Path) -> Any:
    """The FastAPI app, with a plain Starlette app mounted at ``/starlette``."""
    sql = SQLStore(f"sqlite:///{sqlite_path}")
    sql.create_table()
    redis_store = AsyncRedisStore(redis_url, prefix=f"rk-fastapi-{secrets.token_hex(4)}:")
    app = FastAPI()

    @app.post("/hooks/plain")
    async def plain(request: Request, payload: Payload) -> dict:
        HANDLERS["plain"].calls.hit()
        # The dependency read the body; the handler gets the same bytes again from Starlette's cache.
        return {"raw_len": len(await request.body()), "event_id": payload["meta"]["event_id"]}

    # The endpoint owner's five lines, with each store.
    @app.post("/hooks/memory")
    @idempotent(store=MemoryStore())
    async def with_memory(payload: Payload) -> dict:
        return await HANDLERS["memory"].arun(payload)

    @app.post("/hooks/redis")
    @idempotent(store=redis_store, retry_after=9)
    async def with_redis(payload: Payload) -> dict:
        return await HANDLERS["redis"].arun(payload)

    @app.post("/hooks/sql")
    @idempotent(store=sql)
    async def with_sql(payload: Payload) -> dict:
        return await HANDLERS["sql"].arun(payload)

    @app.post("/hooks/sync")
    @idempotent(store=MemoryStore())
    def with_sync(payload: Payload) -> dict:
        return HANDLERS["sync"].run(payload)

    @app.post("/hooks/{tenant}/trakkr")
    async def tenant_hook(tenant: str, payload: TenantPayload) -> dict:
        HANDLERS["tenant"].calls.hit()
        return {"tenant": tenant}

    async def starlette_handler(payload: Any) -> Any:
        return await HANDLERS["starlette"].arun(payload)

    async def starlette_dependency(request: Any) -> JSONResponse:
        payload = await trakkr(request)  # no Depends in Starlette: await the dependency yourself
        return JSONResponse({"event_id": payload["meta"]["event_id"]})

    app.mount(
        "/starlette",
        Starlette(
            routes=[
                Route("/hooks", webhook_endpoint(trakkr, starlette_handler, store=MemoryStore()), methods=["POST"]),
                Route("/dependency", starlette_dependency, methods=["POST"]),
            ]
        ),
    )
    return app


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn serving the app from a thread on a socket bound to 127.0.0.1; its base URL."""
    app = build_app(redis_url, tmp_path_factory.mktemp("fastapi") / "idem.db")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", backlog=128)
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        uv.should_exit = True
        thread.join(TIMEOUT)
        sock.close()


@pytest.fixture
def handlers(server: str) -> dict[str, Handler]:
    """Fresh handler records for this test (the server and its stores live for the module)."""
    HANDLERS.update({name: Handler() for name in ROUTES})
    return HANDLERS


def post(url: str, payload: Any, secret: str = SECRET, **kwargs: Any) -> requests.Response:
    req = signed_request(payload, secret, **kwargs)
    return requests.post(url, data=req.body, headers=req.headers, timeout=TIMEOUT)


IDEMPOTENT = {
    "memory": "/hooks/memory",
    "redis": "/hooks/redis",
    "sql": "/hooks/sql",
    "sync": "/hooks/sync",
    "starlette": "/starlette/hooks",
}


def test_dependency_verifies_and_the_handler_still_reads_the_same_body(server, handlers):
    payload = sample_payload()
    req = signed_request(payload, SECRET)
    response = requests.post(server + "/hooks/plain", data=req.body, headers=req.headers, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"raw_len": len(req.body), "event_id": payload["meta"]["event_id"]}
    assert handlers["plain"].calls.count == 1


@pytest.mark.parametrize("route", ["plain", *IDEMPOTENT])
def test_tampered_body_is_401_before_the_handler_runs(server, handlers, route):
    req = signed_request(sample_payload(), SECRET)
    url = server + IDEMPOTENT.get(route, "/hooks/plain")
    response = requests.post(url, data=req.body.replace(b"Acme", b"Evil"), headers=req.headers, timeout=TIMEOUT)
    assert response.status_code == 401
    expected = (
        {"error": {"type": "invalid_signature", "code": "no_matching_signature", "message": "no matching signature"}}
        if route == "starlette"
        else {"detail": "no matching signature"}
    )
    assert response.json() == expected
    assert handlers[route].calls.count == 0


def test_missing_signature_and_stripped_standard_headers_are_401(server, handlers):
    req = signed_request(sample_payload(), SECRET)
    bare = requests.post(server + "/hooks/memory", data=req.body, timeout=TIMEOUT)
    assert (bare.status_code, bare.json()) == (401, {"detail": "missing required header: webhook-id"})
    legacy_only = {"X-Trakkr-Signature": req.headers["X-Trakkr-Signature"]}
    replay = requests.post(server + "/hooks/memory", data=req.body, headers=legacy_only, timeout=TIMEOUT)
    assert replay.status_code == 401
    old = post(server + "/hooks/memory", sample_payload(), timestamp=int(time.time()) - 301)
    assert (old.status_code, old.json()) == (401, {"detail": "message timestamp too old"})
    assert handlers["memory"].calls.count == 0


def test_plain_starlette_dependency_raises_an_http_exception(server, handlers):
    payload = sample_payload()
    assert post(server + "/starlette/dependency", payload).json() == {"event_id": payload["meta"]["event_id"]}
    refused = post(server + "/starlette/dependency", payload, OTHER)
    assert (refused.status_code, refused.text) == (401, "no matching signature")


@pytest.mark.parametrize("route", ["plain", "memory", "starlette"])
def test_signed_body_that_is_not_the_payload_is_400(server, handlers, route):
    response = post(server + IDEMPOTENT.get(route, "/hooks/plain"), b"[not json")
    assert response.status_code == 400
    if route != "starlette":
        assert response.json() == {"detail": "body is not valid JSON"}
    else:
        assert response.json()["error"]["code"] == "invalid_payload"
    assert handlers[route].calls.count == 0


@pytest.mark.parametrize("route", list(IDEMPOTENT))
def test_payload_without_event_id_is_400(server, handlers, route):
    response = post(server + IDEMPOTENT[route], {"event": {"data": {}}, "meta": {}})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["meta.event_id"]
    assert handlers[route].calls.count == 0


def test_callable_secret_gets_the_request(server, handlers):
    assert post(server + "/hooks/acme/trakkr", sample_payload()).json() == {"tenant": "acme"}
    assert post(server + "/hooks/globex/trakkr", sample_payload(), OTHER).json() == {"tenant": "globex"}
    unknown = post(server + "/hooks/initech/trakkr", sample_payload())
    assert unknown.status_code == 401
    assert unknown.json() == {"detail": "no signing secret is configured for this endpoint"}
    assert handlers["tenant"].calls.count == 2


@pytest.mark.parametrize("route", list(IDEMPOTENT))
def test_completed_repeat_is_200_without_running(server, handlers, route):
    payload = sample_payload()
    event_id = payload["meta"]["event_id"]
    first = post(server + IDEMPOTENT[route], payload)
    again = post(server + IDEMPOTENT[route], payload)
    assert (first.status_code, first.json()) == (200, {"handled": event_id})
    assert (again.status_code, again.json()) == (200, {"received": True, "duplicate": True, "event_id": event_id})
    assert handlers[route].calls.count == 1


@pytest.mark.parametrize("route", list(IDEMPOTENT))
def test_repeat_while_in_progress_is_503_with_retry_after(server, handlers, route):
    handler = handlers[route]
    payload = sample_payload(data={"mode": "slow"})
    results: list[requests.Response] = []
    first = threading.Thread(target=lambda: results.append(post(server + IDEMPOTENT[route], payload)))
    first.start()
    try:
        assert handler.entered.wait(TIMEOUT)
        busy = post(server + IDEMPOTENT[route], payload)  # answered while an async handler awaits: loop not blocked
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == ("9" if route == "redis" else "5")
        assert busy.json()["error"]["type"] == "in_progress"
    finally:
        handler.go.set()
        first.join(TIMEOUT)
    assert [r.status_code for r in results] == [200]
    assert handler.calls.count == 1


@pytest.mark.parametrize("route", list(IDEMPOTENT))
def test_raise_releases_the_key_so_the_retry_runs(server, handlers, route):
    payload = sample_payload(data={"mode": "raise"})
    assert post(server + IDEMPOTENT[route], payload).status_code == 500
    assert post(server + IDEMPOTENT[route], payload).status_code == 500  # released: ran again, not 503
    assert handlers[route].calls.count == 2


@pytest.mark.parametrize("route", list(IDEMPOTENT))
def test_fifty_concurrent_duplicates_run_the_handler_once(server, handlers, route):
    req = signed_request(sample_payload(data={"mode": "sleep"}), SECRET)
    kinds = summarise(deliver_at_once(server + IDEMPOTENT[route], req.body, req.headers))
    assert handlers[route].calls.count == 1, kinds
    assert kinds.get("handled") == 1
    assert kinds.get("duplicate", 0) + kinds.get("503", 0) == 49, kinds


def test_idempotent_without_a_payload_parameter_is_a_clear_error():
    async def handler(body: dict) -> None:
        return None

    with pytest.raises(TypeError, match="'payload' parameter"):
        idempotent(store=MemoryStore())(handler)
    assert idempotent(store=MemoryStore(), payload_param="body")(handler) is not handler
