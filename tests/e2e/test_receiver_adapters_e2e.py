"""End to end per receiver-kit adapter: a real ``flask webhooks worker`` delivers to real servers.

The sender side is the suite's: ``emit`` in the host's transaction, real Redis, real RQ, a
worker process. The receiving side is an endpoint owner's app run by this same module in a
subprocess (``python -m e2e.test_receiver_adapters_e2e FRAMEWORK WORKDIR``), on 127.0.0.1:

* ``django``: ``receiver_kit.django`` with ``DjangoStore`` (the ORM, migrated at start), served
  by Django's threaded WSGI server (the one ``runserver`` uses);
* ``fastapi``: ``receiver_kit.fastapi`` (``Depends`` plus ``@idempotent``) with
  ``AsyncRedisStore``, served by uvicorn;
* ``flask``: ``receiver_kit.flask`` with ``SQLStore`` on a SQLite file, served by Werkzeug.

Each handler appends one line per run to ``runs.jsonl``, so "ran exactly once" is read, not
assumed. The worker delivers through a recording proxy in the test process, which keeps
the exact bytes and headers of each delivery: those are replayed tampered (401), with the
``webhook-*`` headers stripped (401: replay protection is on by default) and intact (200,
a duplicate the handler never sees). The same captured deliveries verify with the
``svix`` and ``standardwebhooks`` packages, and bodies those packages sign are accepted
by the adapters. Every wait is bounded and scaled by ``TRAKKR_E2E_TIMEOUT_SCALE``.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from e2e.conftest import ROOT, TESTS, WorkerProcess, wait_until
from e2e.helpers import deliveries, emit, make_webhook
from e2e.receiver import Receiver, Reply, Server
from flask_trakkr_webhooks import signing
from receiver_kit import WebhookVerifier, verify_signature
from receiver_kit.testing import encode_body, sample_payload

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"receiver-adapters-e2e-secret-32b").decode()
PLAIN = "plain-secret-for-adapter-e2e-0123"
FRAMEWORKS = ("django", "fastapi", "flask")
HOOK_PATH = "/hooks/trakkr"
#: Hop-by-hop headers the proxy does not pass on (it sets its own Content-Length).
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


# -- the endpoint owner's apps: run in a subprocess by main() ----------------------------------


def _record_run(workdir: Path, payload: dict[str, Any], lock: threading.Lock) -> None:
    """One line per handler run: the event and this process."""
    line = json.dumps({"event_id": payload["meta"]["event_id"], "pid": os.getpid()})
    with lock, open(workdir / "runs.jsonl", "a", encoding="utf-8") as out:
        out.write(line + "\n")


def _ready(workdir: Path, port: int) -> None:
    """Tell the test the server listens on ``port`` (written whole, then renamed)."""
    (workdir / "port.tmp").write_text(str(port))
    (workdir / "port.tmp").rename(workdir / "port")


def serve_django(workdir: Path) -> None:
    """``@verify_webhook`` + ``@idempotent(DjangoStore())`` under Django's threaded WSGI server."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    urls = types.ModuleType("receiver_adapters_e2e_urls")
    settings.configure(
        DEBUG=False,
        SECRET_KEY="receiver-adapters-e2e",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=urls,
        INSTALLED_APPS=["receiver_kit.django"],
        # CSRF on, as in a real project: a 200 proves the adapter's exemption.
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(workdir / "django.sqlite3"),
                "OPTIONS": {"timeout": 30},
            }
        },
        USE_TZ=True,
    )
    django.setup()
    call_command("migrate", verbosity=0)

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    from receiver_kit.django import DjangoStore, idempotent, verify_webhook

    lock = threading.Lock()

    @verify_webhook(secret=SECRET)
    @idempotent(store=DjangoStore())
    def on_trakkr(request: HttpRequest, payload: dict[str, Any]) -> JsonResponse:
        _record_run(workdir, payload, lock)
        return JsonResponse({"handled": payload["meta"]["event_id"]})

    urls.urlpatterns = [path(HOOK_PATH.lstrip("/"), on_trakkr)]  # type: ignore[attr-defined]
    httpd = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    httpd.set_app(get_wsgi_application())
    _ready(workdir, httpd.server_address[1])
    httpd.serve_forever()


def serve_fastapi(workdir: Path) -> None:
    """``Depends(verify_webhook(...))`` + ``@idempotent(AsyncRedisStore(...))`` under uvicorn."""
    import socket

    import uvicorn
    from fastapi import Depends, FastAPI

    from receiver_kit.fastapi import idempotent, verify_webhook
    from receiver_kit.idempotency import AsyncRedisStore

    app = FastAPI()
    trakkr = verify_webhook(secret=SECRET)
    store = AsyncRedisStore(os.environ["RK_E2E_REDIS_URL"], prefix=os.environ["RK_E2E_REDIS_PREFIX"])
    lock = threading.Lock()

    @app.post(HOOK_PATH)
    @idempotent(store=store)
    async def on_trakkr(payload: Any = Depends(trakkr)) -> dict[str, Any]:  # noqa: B008 - FastAPI's idiom
        _record_run(workdir, payload, lock)
        return {"handled": payload["meta"]["event_id"]}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections made before uvicorn accepts wait in the backlog
    _ready(workdir, sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])


def serve_flask(workdir: Path) -> None:
    """``@verify_webhook`` + ``@idempotent(SQLStore(...))`` under Werkzeug's threaded server."""
    from flask import jsonify
    from werkzeug.serving import make_server

    from receiver_kit.flask import idempotent, verify_webhook
    from receiver_kit.idempotency import SQLStore

    app = Flask("receiver_adapters_e2e")
    store = SQLStore(f"sqlite:///{workdir / 'idempotency.db'}")
    store.create_table()
    lock = threading.Lock()

    @app.post(HOOK_PATH)
    @verify_webhook(secret=SECRET)
    @idempotent(store=store)
    def on_trakkr(payload: dict[str, Any]) -> Any:
        _record_run(workdir, payload, lock)
        return jsonify({"handled": payload["meta"]["event_id"]})

    server = make_server("127.0.0.1", 0, app, threaded=True)
    _ready(workdir, server.server_port)
    server.serve_forever()


SERVERS: dict[str, Callable[[Path], None]] = {"django": serve_django, "fastapi": serve_fastapi, "flask": serve_flask}


def main(argv: list[str]) -> None:
    """``FRAMEWORK WORKDIR``: serve that framework's endpoint until killed."""
    framework, workdir = argv
    SERVERS[framework](Path(workdir))


# -- test-side plumbing ------------------------------------------------------------------------


@dataclass
class AdapterServer:
    """A receiving app in its own process group."""

    framework: str
    workdir: Path
    proc: subprocess.Popen[bytes]
    url: str = ""

    def runs(self) -> list[str]:
        """The event id of every handler run so far, in order."""
        path = self.workdir / "runs.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["event_id"] for line in path.read_text().splitlines()]

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL whatever is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue

    def log(self) -> str:
        """What the server printed."""
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def adapter_server(tmp_path: Path, redis_url: str) -> Iterator[Callable[[str], AdapterServer]]:
    """``adapter_server(framework)``: that framework's endpoint, listening; stopped (and its Redis keys
    removed) in teardown."""
    started: list[AdapterServer] = []
    prefix = f"rk-e2e-{secrets.token_hex(6)}:"

    def start(framework: str) -> AdapterServer:
        workdir = tmp_path / f"{framework}-server"
        workdir.mkdir()
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS)]),
            PYTHONUNBUFFERED="1",
            RK_E2E_REDIS_URL=redis_url,
            RK_E2E_REDIS_PREFIX=prefix,
        )
        with open(workdir / "server.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "e2e.test_receiver_adapters_e2e", framework, str(workdir)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = AdapterServer(framework, workdir, proc)
        started.append(server)

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the {framework} server exited with {proc.returncode}:\n{server.log()}")
            return (workdir / "port").exists()

        wait_until(listening, 30, f"the {framework} server to listen")
        server.url = f"http://127.0.0.1:{(workdir / 'port').read_text()}"
        return server

    yield start
    for server in started:
        server.stop()
        print(f"--- {server.framework} server log ---\n{server.log()[-4000:]}")
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass(frozen=True)
class Captured:
    """One delivery as the worker sent it, and what the endpoint answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    answer: bytes

    @property
    def json(self) -> Any:
        """The delivery's body, parsed."""
        return json.loads(self.body)

    @property
    def answer_json(self) -> Any:
        """The endpoint's answer, parsed."""
        return json.loads(self.answer)


class RecordingProxy:
    """A threaded HTTP server on 127.0.0.1 that forwards each POST byte for byte to ``upstream`` and
    records the request and the answer."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.captured: list[Captured] = []
        self._cond = threading.Condition()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
                try:
                    conn.request("POST", self.path, body=body, headers={**headers, "Content-Length": str(len(body))})
                    upstream_answer = conn.getresponse()
                    answer, status = upstream_answer.read(), upstream_answer.status
                    passed_on = {k: v for k, v in upstream_answer.getheaders() if k.lower() not in HOP_BY_HOP}
                finally:
                    conn.close()
                with proxy._cond:
                    proxy.captured.append(Captured(self.path, headers, body, status, answer))
                    proxy._cond.notify_all()
                self.send_response(status)
                for name, value in passed_on.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float) -> list[Captured]:
        """The first ``count`` deliveries, once they arrived (``timeout`` scaled)."""
        return list(
            wait_until(
                lambda: len(self.captured) >= count and self.captured[:count],
                timeout,
                f"{count} deliveries at the proxy",
            )
        )


def _succeeded(app: Flask, event_id: str, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` deliveries of ``event_id`` succeeded; all of them."""

    def done() -> list[dict[str, Any]]:
        found = deliveries(app, event_id)
        failed = [d for d in found if d["status"] in ("failed", "cancelled")]
        assert not failed, f"a delivery of {event_id} ended {failed[0]['status']}: {failed[0]['last_error']}"
        ok = [d for d in found if d["status"] == "succeeded"]
        return ok if len(ok) >= count else []

    return list(wait_until(done, 30, f"{count} successful deliveries of {event_id}"))


def _error_code(framework: str, response: requests.Response) -> str:
    """The kit's rejection, as each adapter words it (FastAPI: its ``HTTPException`` detail)."""
    if framework == "fastapi":
        return str(response.json()["detail"])
    return str(response.json()["error"]["code"])


#: How each adapter words a rejection: (Django/Flask ``error.code``, FastAPI ``detail``).
TAMPERED = {"code": "no_matching_signature", "detail": "no matching signature"}
STRIPPED = {"code": "missing_header", "detail": "missing required header: webhook-id"}


def _expected(framework: str, rejection: dict[str, str]) -> str:
    """What :func:`_error_code` should read for ``rejection`` on ``framework``."""
    return rejection["detail"] if framework == "fastapi" else rejection["code"]


def _signed_by(package: type[Any], payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A delivery of ``payload`` signed by another Standard Webhooks implementation."""
    body = encode_body(payload)
    msg_id, ts = payload["meta"]["event_id"], int(time.time())
    signature = package(SECRET).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }
    return body, headers


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_worker_deliveries_to_each_adapter_verify_run_once_and_refuse_tampered_and_replayed(
    framework: str,
    e2e_app: Callable[..., Flask],
    start_worker: Callable[..., WorkerProcess],
    adapter_server: Callable[[str], AdapterServer],
) -> None:
    server = adapter_server(framework)
    with RecordingProxy(server.url) as proxy:
        app = e2e_app(TRAKKR_WEBHOOKS_TIMEOUT=10)
        hook = make_webhook(app, proxy.url + HOOK_PATH, signing_secret=SECRET)
        start_worker(app)
        first, second = emit(app), emit(app)

        # Two events: each delivered once by the worker, each handled once.
        [delivered_first] = _succeeded(app, first)
        _succeeded(app, second)
        sent = proxy.wait_for(2, timeout=10)
        assert sorted(server.runs()) == sorted([first, second])
        assert {c.json["meta"]["event_id"]: c.answer_json for c in sent} == {
            first: {"handled": first},
            second: {"handled": second},
        }
        assert all(c.status == 200 and c.path == HOOK_PATH for c in sent)

        # The same event again, through the worker (a redelivery: new delivery id, same meta.event_id):
        # answered 200 as a duplicate, the handler does not run.
        answer = app.test_client().post(f"/webhooks/{hook}/deliveries/{delivered_first['id']}/redeliver")
        assert answer.status_code == 202, answer.get_json()
        _succeeded(app, first, count=2)
        again = proxy.wait_for(3, timeout=10)[2]
        original = next(c for c in sent if c.json["meta"]["event_id"] == first)
        assert again.headers["X-Trakkr-Delivery"] != original.headers["X-Trakkr-Delivery"]
        assert again.headers["webhook-id"] == original.headers["webhook-id"] == first
        assert (again.status, again.answer_json) == (200, {"received": True, "duplicate": True, "event_id": first})
        assert sorted(server.runs()) == sorted([first, second])

    # The captured delivery, replayed straight at the endpoint.
    url = server.url + HOOK_PATH
    assert b'"Acme"' in original.body
    tampered_body = original.body.replace(b'"Acme"', b'"Evil"')
    tampered = requests.post(url, data=tampered_body, headers=original.headers, timeout=10)
    assert tampered.status_code == 401
    assert _error_code(framework, tampered) == _expected(framework, TAMPERED)

    # Replayed days later with its timestamped headers stripped: the legacy signature still matches
    # the body, and that alone is not enough by default.
    stripped = {k: v for k, v in original.headers.items() if not k.lower().startswith("webhook-")}
    assert verify_signature(original.body, stripped["X-Trakkr-Signature"], SECRET)
    replayed = requests.post(url, data=original.body, headers=stripped, timeout=10)
    assert replayed.status_code == 401
    assert _error_code(framework, replayed) == _expected(framework, STRIPPED)

    # The same bytes with every header, inside the 300 s window: verified, and a duplicate.
    intact = requests.post(url, data=original.body, headers=original.headers, timeout=10)
    assert (intact.status_code, intact.json()) == (200, {"received": True, "duplicate": True, "event_id": first})
    assert sorted(server.runs()) == sorted([first, second])

    # Both directions of interoperability under the real server: the worker's deliveries verify
    # with svix and standardwebhooks, and deliveries those packages sign are handled.
    for captured in (*sent, again):
        SvixWebhook(SECRET).verify(captured.body, captured.headers)  # raises if it does not verify
        assert StandardWebhook(SECRET).verify(captured.body, captured.headers)["meta"] == captured.json["meta"]
    fresh = []
    for package in (SvixWebhook, StandardWebhook):
        payload = sample_payload(summary=f"signed by {package.__module__}")
        body, headers = _signed_by(package, payload)
        response = requests.post(url, data=body, headers=headers, timeout=10)
        assert (response.status_code, response.json()) == (200, {"handled": payload["meta"]["event_id"]})
        fresh.append(payload["meta"]["event_id"])
    assert sorted(server.runs()) == sorted([first, second, *fresh])


def test_real_deliveries_verify_with_svix_for_both_secret_forms_rotation_and_retries(
    e2e_app: Callable[..., Flask], start_worker: Callable[..., WorkerProcess]
) -> None:
    """svix beside the kit and standardwebhooks, on what the worker really sent (test_security_e2e
    checks standardwebhooks alone)."""
    with Receiver() as receiver:
        app = e2e_app(TRAKKR_WEBHOOKS_RETRY_DELAYS=[1])
        old = signing.generate_secret()
        whsec_hook = make_webhook(app, receiver.url + "/whsec", signing_secret=old)
        make_webhook(app, receiver.url + "/plain", signing_secret=PLAIN)
        new = app.test_client().post(f"/webhooks/{whsec_hook}/rotate-secret").get_json()["signing_secret"]
        assert new != old and new.startswith("whsec_")
        receiver.script(Reply(503))  # the first request is retried a second later, freshly signed
        start_worker(app)
        event_id = emit(app)
        got = receiver.wait_for(3, timeout=20)

    by_path: dict[str, list[Any]] = {}
    for request in got:
        by_path.setdefault(request.path, []).append(request)
    assert sorted(len(requests_) for requests_ in by_path.values()) == [1, 2]
    for request in by_path["/whsec"]:
        for secret in (old, new):  # during the rotation window both secrets sign
            SvixWebhook(secret).verify(request.body, request.headers)
            assert StandardWebhook(secret).verify(request.body, request.headers)["meta"]["event_id"] == event_id
            assert WebhookVerifier(secret).verify(request.body, request.headers)["meta"]["event_id"] == event_id
        # svix's own header names carry the same values.
        svix_headers = {k.replace("webhook-", "svix-"): v for k, v in request.headers.items()}
        assert "svix-signature" in svix_headers
        SvixWebhook(new).verify(request.body, svix_headers)
        with pytest.raises(SvixVerificationError):
            SvixWebhook(new).verify(request.body.replace(b"Acme", b"Evil"), request.headers)
        with pytest.raises(SvixVerificationError):
            SvixWebhook(signing.generate_secret()).verify(request.body, request.headers)
    for request in by_path["/plain"]:
        # A plain (non-whsec) secret is its UTF-8 bytes: give svix bytes, as the kit's docs say.
        SvixWebhook(PLAIN.encode()).verify(request.body, request.headers)
        assert WebhookVerifier(PLAIN).verify(request.body, request.headers)["meta"]["event_id"] == event_id
        with pytest.raises(SvixVerificationError):
            SvixWebhook(old).verify(request.body, request.headers)
    retried = next(requests_ for requests_ in by_path.values() if len(requests_) == 2)
    assert int(retried[1].headers["webhook-timestamp"]) > int(retried[0].headers["webhook-timestamp"])
    assert retried[0].headers["webhook-signature"] != retried[1].headers["webhook-signature"]


if __name__ == "__main__":
    main(sys.argv[1:])
