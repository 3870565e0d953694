"""``receiver_kit.django`` under Django's own threaded WSGI server (the one ``runserver`` uses) on 127.0.0.1.

Every request is a real HTTP request signed with ``receiver_kit.testing``; the CSRF
middleware is on, so a 200 also proves the decorator's CSRF exemption. Handlers
record each run, so "the view never ran" is asserted, not assumed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import DJANGO_URLS, Calls, deliver_at_once, summarise

from receiver_kit.idempotency import MemoryStore
from receiver_kit.testing import sample_payload, signed_request

SECRET = "whsec_ZGphbmdvLXJlY2VpdmVyLXRlc3Qtc2VjcmV0LTMyYnl0ZXM="
OTHER = "whsec_b3RoZXItdGVuYW50LXNlY3JldC0zMi1ieXRlcy1sb25n"
TIMEOUT = 10
#: The handler records of the current test, by route; the views look them up per request.
HANDLERS: dict[str, Handler] = {}


class Handler:
    """What the views do, steered by ``event.data.mode``: ``ok``, ``slow`` (waits for ``go``), ``raise``, ``fail``."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.entered = threading.Event()
        self.go = threading.Event()
        self.payloads: list[Any] = []

    def run(self, payload: Any) -> Any:
        from django.http import JsonResponse

        self.calls.hit()
        self.payloads.append(payload)
        mode = payload["event"]["data"].get("mode", "ok")
        if mode == "slow":
            self.entered.set()
            assert self.go.wait(TIMEOUT), "the test never let the slow handler finish"
        if mode == "sleep":
            time.sleep(0.2)  # long enough that every concurrent duplicate arrives while it runs
        if mode == "raise":
            raise RuntimeError("handler crashed")
        if mode == "fail":
            return JsonResponse({"error": "try later"}, status=500)
        return JsonResponse({"handled": payload["meta"]["event_id"]})


@pytest.fixture(scope="module")
def server(django_settings: Any) -> Iterator[str]:
    """Django's ThreadedWSGIServer in a thread, serving the routes below; its base URL."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    from receiver_kit.django import DjangoStore, idempotent, verify_webhook

    memory, orm = MemoryStore(), DjangoStore(processing_ttl=30)

    @verify_webhook(secret=SECRET)
    def plain(request: HttpRequest, payload: Any) -> JsonResponse:
        HANDLERS["plain"].run(payload)
        return JsonResponse({"raw_len": len(request.body)})

    # The endpoint owner's five lines, with each store.
    @verify_webhook(secret=SECRET)
    @idempotent(store=memory)
    def with_memory(request: HttpRequest, payload: Any) -> Any:
        return HANDLERS["memory"].run(payload)

    @verify_webhook(secret=SECRET)
    @idempotent(store=orm, retry_after=7)
    def with_orm(request: HttpRequest, payload: Any) -> Any:
        return HANDLERS["orm"].run(payload)

    tenants = {"acme": SECRET, "globex": OTHER}

    @verify_webhook(secret=lambda request: tenants.get(request.resolver_match.kwargs["tenant"]))
    def per_tenant(request: HttpRequest, payload: Any, tenant: str) -> JsonResponse:
        HANDLERS["tenant"].run(payload)
        return JsonResponse({"tenant": tenant})

    DJANGO_URLS.urlpatterns = [  # type: ignore[attr-defined]
        path("hooks/plain", plain),
        path("hooks/memory", with_memory),
        path("hooks/orm", with_orm),
        path("hooks/<str:tenant>/trakkr", per_tenant),
    ]

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadedWSGIServer):
        request_queue_size = 128  # runserver's 10 would reset 50 simultaneous connects

    httpd = Server(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(get_wsgi_application())
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


@pytest.fixture
def handlers(server: str) -> dict[str, Handler]:
    """Fresh handler records for this test (the server and its stores live for the module)."""
    HANDLERS.update({name: Handler() for name in ("plain", "memory", "orm", "tenant")})
    return HANDLERS


def post(url: str, payload: Any, secret: str = SECRET, **kwargs: Any) -> requests.Response:
    req = signed_request(payload, secret, **kwargs)
    return requests.post(url, data=req.body, headers=req.headers, timeout=TIMEOUT)


def test_signed_delivery_reaches_the_view_with_the_raw_body_and_parsed_payload(server, handlers):
    payload = sample_payload("report_completed")
    req = signed_request(payload, SECRET)
    response = requests.post(server + "/hooks/plain", data=req.body, headers=req.headers, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"raw_len": len(req.body)}
    assert handlers["plain"].payloads == [payload]


@pytest.mark.parametrize("route", ["plain", "memory", "orm"])
def test_tampered_body_is_401_before_the_view_runs(server, handlers, route):
    req = signed_request(sample_payload(), SECRET)
    response = requests.post(
        f"{server}/hooks/{route}", data=req.body.replace(b"Acme", b"Evil"), headers=req.headers, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.json()["error"] == {
        "type": "invalid_signature",
        "code": "no_matching_signature",
        "message": "no matching signature",
    }
    assert handlers[route].calls.count == 0


def test_missing_signature_and_wrong_secret_are_401(server, handlers):
    body = signed_request(sample_payload(), SECRET).body
    bare = requests.post(server + "/hooks/plain", data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert (bare.status_code, bare.json()["error"]["code"]) == (401, "missing_header")
    wrong = post(server + "/hooks/plain", sample_payload(), OTHER)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "no_matching_signature")
    assert handlers["plain"].calls.count == 0


def test_replay_with_standard_headers_stripped_is_401_by_default(server, handlers):
    """A captured delivery replayed without its timestamped headers; the legacy signature alone is refused."""
    req = signed_request(sample_payload(), SECRET)
    assert requests.post(server + "/hooks/plain", data=req.body, headers=req.headers, timeout=5).status_code == 200
    legacy = "sha256=" + hmac.new(SECRET.encode(), req.body, hashlib.sha256).hexdigest()
    assert legacy == req.headers["X-Trakkr-Signature"]
    stripped = {"Content-Type": "application/json", "X-Trakkr-Signature": legacy}
    replay = requests.post(server + "/hooks/plain", data=req.body, headers=stripped, timeout=TIMEOUT)
    assert (replay.status_code, replay.json()["error"]["code"]) == (401, "missing_header")
    old = post(server + "/hooks/plain", sample_payload(), timestamp=int(time.time()) - 301, scheme="standard")
    assert (old.status_code, old.json()["error"]["code"]) == (401, "timestamp_too_old")
    assert handlers["plain"].calls.count == 1


def test_signed_body_that_is_not_the_payload_is_400(server, handlers):
    response = post(server + "/hooks/plain", b"not json at all")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_payload"
    no_event_id = post(server + "/hooks/orm", {"event": {"data": {}}, "meta": {}})
    assert no_event_id.status_code == 400
    assert list(no_event_id.json()["error"]["fields"]) == ["meta.event_id"]
    assert handlers["plain"].calls.count == handlers["orm"].calls.count == 0


def test_callable_secret_gets_the_request(server, handlers):
    assert post(server + "/hooks/acme/trakkr", sample_payload()).json() == {"tenant": "acme"}
    assert post(server + "/hooks/globex/trakkr", sample_payload(), OTHER).json() == {"tenant": "globex"}
    assert post(server + "/hooks/globex/trakkr", sample_payload(), SECRET).status_code == 401
    unknown = post(server + "/hooks/initech/trakkr", sample_payload())
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (401, "no_secret")
    assert handlers["tenant"].calls.count == 2


@pytest.mark.parametrize("route", ["memory", "orm"])
def test_completed_repeat_is_200_without_running(server, handlers, route):
    payload = sample_payload()
    first = post(f"{server}/hooks/{route}", payload)
    again = post(f"{server}/hooks/{route}", payload)
    assert (first.status_code, first.json()) == (200, {"handled": payload["meta"]["event_id"]})
    assert (again.status_code, again.json()) == (
        200,
        {"received": True, "duplicate": True, "event_id": payload["meta"]["event_id"]},
    )
    assert handlers[route].calls.count == 1


@pytest.mark.parametrize(("route", "retry_after"), [("memory", "5"), ("orm", "7")])
def test_repeat_while_in_progress_is_503_with_retry_after(server, handlers, route, retry_after):
    handler = handlers[route]
    payload = sample_payload(data={"mode": "slow"})
    results: list[requests.Response] = []
    first = threading.Thread(target=lambda: results.append(post(f"{server}/hooks/{route}", payload)))
    first.start()
    try:
        assert handler.entered.wait(TIMEOUT)
        busy = post(f"{server}/hooks/{route}", payload)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == retry_after
        assert busy.json()["error"]["type"] == "in_progress"
    finally:
        handler.go.set()
        first.join(TIMEOUT)
    assert [r.status_code for r in results] == [200]
    assert handler.calls.count == 1


@pytest.mark.parametrize("route", ["memory", "orm"])
@pytest.mark.parametrize("mode", ["raise", "fail"])
def test_raise_or_5xx_releases_the_key_so_the_retry_runs(server, handlers, route, mode):
    payload = sample_payload(data={"mode": mode})
    assert post(f"{server}/hooks/{route}", payload).status_code == 500
    assert post(f"{server}/hooks/{route}", payload).status_code == 500  # released: ran again, not 503
    assert handlers[route].calls.count == 2


@pytest.mark.parametrize("route", ["memory", "orm"])
def test_fifty_concurrent_duplicates_run_the_view_once(server, handlers, route):
    payload = sample_payload(data={"mode": "sleep"})
    req = signed_request(payload, SECRET)
    kinds = summarise(deliver_at_once(f"{server}/hooks/{route}", req.body, req.headers))
    assert handlers[route].calls.count == 1, kinds
    assert kinds.get("handled") == 1
    assert kinds.get("duplicate", 0) + kinds.get("503", 0) == 49, kinds


def test_orm_store_rows_and_migration_match_the_model(server):
    from django.core.management import call_command

    from receiver_kit.django import DjangoStore
    from receiver_kit.django.models import IdempotencyKey

    payload = sample_payload()
    assert post(server + "/hooks/orm", payload).status_code == 200
    row = IdempotencyKey.objects.get(key=payload["meta"]["event_id"])
    assert row.state == "completed" and row.expires_at > time.time() + 6 * 24 * 3600
    assert DjangoStore().state(payload["meta"]["event_id"]) == "completed"
    # The shipped migration is exactly the model: makemigrations has nothing to write.
    call_command("makemigrations", "receiver_kit", check=True, dry_run=True, verbosity=0)


def test_async_view_is_refused_with_a_clear_error(django_settings):
    from receiver_kit.django import idempotent, verify_webhook

    async def view(request: Any, payload: Any) -> None:
        return None

    with pytest.raises(TypeError, match="synchronous views"):
        verify_webhook(secret=SECRET)(view)
    with pytest.raises(TypeError, match="synchronous views"):
        idempotent(store=MemoryStore())(view)
