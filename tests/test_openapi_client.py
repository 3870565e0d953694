"""A typed client generated from the served OpenAPI document (``flask_trakkr_webhooks/openapi.py``).

``openapi-python-client`` generates a Python client from ``GET /webhooks/openapi.json`` of the
example app (``example_app``, its two demo brands seeded) served on 127.0.0.1 (once per module,
with no warning allowed), and the tests drive every operation through it against that server,
with a brand's API key as ``Authorization: Bearer``: create with each auth type, update, list
pages, test, preview, deliveries, redeliver, rotate, replay, delete, and the error shapes
(400, 401, 403, 404, 409, 413, 415) parsed as the document's ``Error``. The API client page's
``client.py`` runs against it too.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from test_docs_examples import reader_env
from test_docs_fragments import fragment
from werkzeug.serving import make_server

from e2e.helpers import VISIBILITY, clear_queue, process
from e2e.receiver import Receiver, Reply
from flask_trakkr_webhooks import auth
from flask_trakkr_webhooks.config import DEFAULTS

# Not on the fast path: generates and imports a client package.
pytestmark = pytest.mark.slow

#: The package name the API client page's generate command gives.
PACKAGE = "trakkr_api_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@dataclass
class Served:
    """The example app, served: its URL, its brand (a key for it) and the other brand (refused to that key)."""

    app: Flask
    base_url: str
    brand: dict[str, str]
    key: str
    other_brand: dict[str, str]
    other_key: str


@pytest.fixture(scope="module")
def served(postgres_url: str | None, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The example app with its demo brands, delivering to local receivers, served by werkzeug on 127.0.0.1."""
    database = postgres_url or f"sqlite:///{tmp_path_factory.mktemp('client-db') / 'app.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATABASE_URL", database)
        env.setenv("REDIS_URL", redis_url)
        env.setenv("EXAMPLE_LOCAL_RECEIVERS", "1")
        from example_app import create_app, db, webhooks

        app = create_app(
            {
                "TRAKKR_WEBHOOKS_QUEUE": f"webhooks-client-{tmp_path_factory.mktemp('q').name}",
                "TRAKKR_WEBHOOKS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "TRAKKR_WEBHOOKS_TIMEOUT": 2,
                "TRAKKR_WEBHOOKS_RETRY_DELAYS": [],
            }
        )
        app.db, app.webhooks = db, webhooks  # type: ignore[attr-defined]  # as the e2e helpers expect
        seeded = app.test_cli_runner().invoke(args=["seed", "--json"])
    assert seeded.exit_code == 0, seeded.output
    (first, second) = json.loads(seeded.output.strip().splitlines()[-1])[:2]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def brand(b: dict[str, str]) -> dict[str, str]:
        return {"id": b["id"], "name": b["name"], "website": "https://acme.example"}

    try:
        yield Served(
            app,
            f"http://127.0.0.1:{server.server_port}",
            brand(first),
            first["api_key"],
            brand(second),
            second["api_key"],
        )
    finally:
        server.shutdown()
        thread.join(5)
        clear_queue(app)
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture(scope="module")
def generated(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package generated from the served document (imported), without any warning; its
    folder is ``generated.folder``."""
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: nothing but the generator's own output
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--url",
            f"{served.base_url}/webhooks/openapi.json",
            "--output-path",
            str(out / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "warning" not in output.lower(), output
    assert "error" not in output.lower(), output
    sys.path.insert(0, str(out))
    try:
        package = importlib.import_module(PACKAGE)
        package.folder = out  # type: ignore[attr-defined]
        yield package
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        shutil.rmtree(out, ignore_errors=True)


def module(name: str) -> ModuleType:
    """A module of the generated package (``models``, ``api.webhooks.create_webhook`` ...)."""
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def models(generated: ModuleType) -> ModuleType:
    """The generated models."""
    return module("models")


@pytest.fixture
def client(generated: ModuleType, served: Served) -> Any:
    """A generated client sending the first brand's API key (``Authorization: Bearer``)."""
    return generated.AuthenticatedClient(base_url=served.base_url, token=served.key)


def call(operation: str, **kwargs: Any) -> Any:
    """``sync_detailed`` of a generated operation (``"webhooks.create_webhook"``): the full response."""
    tag, name = operation.split(".")
    return module(f"api.{tag}.{name}").sync_detailed(**kwargs)


def brand_of(client: Any) -> str:
    """The id of the brand whose key ``client`` sends (the example app's ``GET /brands/me``)."""
    me = client.get_httpx_client().get("/brands/me")
    assert me.status_code == HTTPStatus.OK, me.text
    return str(me.json()["id"])


def create(client: Any, models: Any, url: str, **fields: Any) -> Any:
    """Create a webhook for the client's brand through the client; the ``Webhook`` model."""
    brand_id = fields.pop("brand_id", None) or brand_of(client)
    body = models.WebhookCreate(
        url=url, events=[models.WebhookCreateEventsItem("visibility_changed")], brand_id=brand_id, **fields
    )
    response = call("webhooks.create_webhook", client=client, body=body)
    assert response.status_code == HTTPStatus.CREATED, response.content
    return response.parsed


def assert_error(response: Any, status: int, error_type: str, field: str | None = None) -> None:
    """The answer is the document's ``Error`` model with this status, type (and field)."""
    assert response.status_code == status, response.content
    error = response.parsed.error
    assert error.type_.value == error_type
    assert error.message
    if field is not None:
        assert field in error.fields.additional_properties


def test_the_generated_client_has_a_module_per_tag_and_every_operation(generated: ModuleType) -> None:
    expected = {
        "webhooks": {
            "create_webhook",
            "list_webhooks",
            "get_webhook",
            "update_webhook",
            "delete_webhook",
            "test_webhook",
            "preview_webhook",
            "rotate_secret",
            "replay_webhook",
        },
        "deliveries": {"list_deliveries", "get_delivery", "redeliver"},
        "openapi": {"openapi"},
    }
    root = Path(generated.__file__).parent / "api"
    found = {tag.name: {p.stem for p in tag.glob("*.py")} - {"__init__"} for tag in root.iterdir() if tag.is_dir()}
    assert found == expected


def test_the_document_operation(client: Any, served: Served) -> None:
    response = call("openapi.openapi", client=client)
    assert response.status_code == HTTPStatus.OK
    assert response.parsed.additional_properties["openapi"] == "3.0.3"


@pytest.mark.parametrize("auth_type", auth.names())
def test_create_with_each_auth_type(client: Any, models: Any, plain_receiver: Receiver, auth_type: str) -> None:
    credentials: dict[str, dict[str, Any]] = {
        "none": {},
        "bearer": {"auth_token": "tok_client"},
        "basic": {"auth_username": "user", "auth_password": "pass"},
        "api_key": {"api_key_header": "X-Receiver-Key", "api_key_value": "rk_client"},
    }
    webhook = create(
        client,
        models,
        plain_receiver.url,
        auth_type=models.WebhookCreateAuthType(auth_type),
        signing_secret=models.WebhookCreateSigningSecretType1("generate"),
        headers=models.WebhookCreateHeadersType0.from_dict({"X-Env": "test"}),
        template=models.WebhookCreateTemplateType0.from_dict({"text": "{{summary}}"}),
        **credentials[auth_type],
    )
    assert isinstance(webhook, models.Webhook)
    assert webhook.id.startswith("wh_") and webhook.object_.value == "webhook"
    assert webhook.auth_type.value == auth_type and webhook.provider.value == "webhook"
    assert webhook.signing_secret.startswith("whsec_")
    assert webhook.headers.additional_properties == {"X-Env": "test"}
    assert webhook.template.additional_properties == {"text": "{{summary}}"}
    assert "auth_token" not in webhook.to_dict() and "api_key_value" not in webhook.to_dict()
    if auth_type == "basic":
        assert webhook.auth_username == "user"
    got = call("webhooks.get_webhook", webhook_id=webhook.id, client=client)
    assert got.status_code == HTTPStatus.OK and got.parsed.to_dict() == webhook.to_dict()


def test_update_with_an_array_template_and_a_provider(client: Any, models: Any, plain_receiver: Receiver) -> None:
    webhook = create(client, models, plain_receiver.url)
    body = models.WebhookUpdate(
        description="Production receiver", template=["{{event.type}}", {"brand": "{{brand.name}}"}], active=False
    )
    response = call("webhooks.update_webhook", webhook_id=webhook.id, client=client, body=body)
    assert response.status_code == HTTPStatus.OK, response.content
    updated = response.parsed
    assert updated.description == "Production receiver" and updated.active is False
    assert updated.template == ["{{event.type}}", {"brand": "{{brand.name}}"}]
    provider = models.WebhookUpdate(provider=models.WebhookUpdateProviderType0("slack"), active=True)
    response = call("webhooks.update_webhook", webhook_id=webhook.id, client=client, body=provider)
    assert response.status_code == HTTPStatus.OK and response.parsed.provider.value == "slack"
    detected = call(
        "webhooks.update_webhook", webhook_id=webhook.id, client=client, body=models.WebhookUpdate(provider=None)
    )
    assert detected.status_code == HTTPStatus.OK and detected.parsed.provider.value == "webhook"


def test_list_pages(generated: ModuleType, served: Served, models: Any, plain_receiver: Receiver) -> None:
    # The other brand: no other test makes its webhooks.
    client = generated.AuthenticatedClient(base_url=served.base_url, token=served.other_key)
    brand = served.other_brand["id"]
    made = []
    for _ in range(5):
        body = models.WebhookCreate(
            url=plain_receiver.url, events=[models.WebhookCreateEventsItem("visibility_changed")], brand_id=brand
        )
        response = call("webhooks.create_webhook", client=client, body=body)
        assert response.status_code == HTTPStatus.CREATED
        made.append(response.parsed.id)
    seen: list[str] = []
    pages = 0
    cursor: Any = module("types").UNSET
    while True:
        response = call("webhooks.list_webhooks", client=client, limit=2, brand_id=brand, starting_after=cursor)
        assert response.status_code == HTTPStatus.OK, response.content
        page = response.parsed
        assert page.object_.value == "list" and len(page.data) <= 2
        seen += [w.id for w in page.data]
        pages += 1
        if not page.has_more:
            break
        cursor = page.data[-1].id
    assert pages == 3 and seen == made[::-1]


def test_test_preview_deliveries_and_redeliver(
    client: Any, models: Any, served: Served, plain_receiver: Receiver
) -> None:
    webhook = create(client, models, plain_receiver.url, signing_secret="whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    preview = call("webhooks.preview_webhook", webhook_id=webhook.id, client=client, body=models.TestRequest())
    assert preview.status_code == HTTPStatus.OK, preview.content
    assert preview.parsed.object_.value == "preview" and preview.parsed.provider.value == "webhook"
    assert plain_receiver.received == []
    tested = call(
        "webhooks.test_webhook",
        webhook_id=webhook.id,
        client=client,
        body=models.TestRequest(event=models.TestRequestEventType0("visibility_changed")),
    )
    assert tested.status_code == HTTPStatus.OK, tested.content
    result = tested.parsed
    assert result.success is True and result.status_code == 200 and result.delivery.is_test is True
    assert len(plain_receiver.received) == 1

    with served.app.app_context():
        event_id = served.app.webhooks.emit("visibility_changed", brand=served.brand, data=VISIBILITY)
        served.app.db.session.commit()
    listed = call("deliveries.list_deliveries", webhook_id=webhook.id, client=client, limit=1)
    assert listed.status_code == HTTPStatus.OK and listed.parsed.has_more is True
    real = listed.parsed.data[0]
    assert real.event_id == event_id and real.is_test is False and real.status.value in ("pending", "queued")
    detail = call("deliveries.get_delivery", webhook_id=webhook.id, delivery_id=real.id, client=client)
    assert detail.status_code == HTTPStatus.OK and detail.parsed.attempts == []
    redone = call(
        "deliveries.redeliver",
        webhook_id=webhook.id,
        delivery_id=real.id,
        client=client,
        body=models.RedeliverRequest(),
    )
    assert redone.status_code == HTTPStatus.ACCEPTED, redone.content
    assert redone.parsed.event_id == event_id and redone.parsed.id != real.id
    test_delivery = result.delivery.id
    refused = call(
        "deliveries.redeliver",
        webhook_id=webhook.id,
        delivery_id=test_delivery,
        client=client,
        body=models.RedeliverRequest(),
    )
    assert_error(refused, 409, "conflict")


def test_rotate_and_replay(client: Any, models: Any, served: Served) -> None:
    with Receiver() as failing:
        failing.script(*[Reply(500)] * 5)
        webhook = create(client, models, failing.url)
        since = datetime.now(timezone.utc) - timedelta(minutes=1)
        with served.app.app_context():
            served.app.webhooks.emit("visibility_changed", brand=served.brand, data=VISIBILITY)
            served.app.db.session.commit()
        deliveries = call("deliveries.list_deliveries", webhook_id=webhook.id, client=client).parsed.data
        process(served.app, [d.id for d in deliveries])
        failed = call(
            "deliveries.list_deliveries",
            webhook_id=webhook.id,
            client=client,
            status=models.ListDeliveriesStatus("failed"),
        )
        assert [d.status.value for d in failed.parsed.data] == ["failed"]
        attempts = call(
            "deliveries.get_delivery", webhook_id=webhook.id, delivery_id=failed.parsed.data[0].id, client=client
        ).parsed.attempts
        assert [a.outcome.value for a in attempts] == ["failed"] and attempts[0].status_code == 500

        replayed = call(
            "webhooks.replay_webhook",
            webhook_id=webhook.id,
            client=client,
            body=models.ReplayRequest(since=since),
        )
        assert replayed.status_code == HTTPStatus.ACCEPTED, replayed.content
        result = replayed.parsed
        assert result.count == 1 and result.deliveries[0].replayed_status.value == "failed"

    rotated = call("webhooks.rotate_secret", webhook_id=webhook.id, client=client, body=models.RotateSecretRequest())
    assert rotated.status_code == HTTPStatus.OK, rotated.content
    assert rotated.parsed.signing_secret.startswith("whsec_")
    assert rotated.parsed.signing_secret != webhook.signing_secret


def test_delete(client: Any, models: Any, plain_receiver: Receiver) -> None:
    webhook = create(client, models, plain_receiver.url)
    deleted = call("webhooks.delete_webhook", webhook_id=webhook.id, client=client)
    assert deleted.status_code == HTTPStatus.OK
    assert deleted.parsed.id == webhook.id and deleted.parsed.deleted is True
    assert_error(call("webhooks.get_webhook", webhook_id=webhook.id, client=client), 404, "not_found")


def test_error_shapes(
    client: Any, models: Any, generated: ModuleType, served: Served, plain_receiver: Receiver
) -> None:
    events = [models.WebhookCreateEventsItem("visibility_changed")]
    bad_url = models.WebhookCreate(url="ftp://example.invalid/x", events=events, brand_id=served.brand["id"])
    assert_error(call("webhooks.create_webhook", client=client, body=bad_url), 400, "invalid_request", "url")
    refused = models.WebhookCreate(url=plain_receiver.url, events=events, brand_id=served.other_brand["id"])
    assert_error(call("webhooks.create_webhook", client=client, body=refused), 403, "forbidden")
    anonymous = generated.Client(base_url=served.base_url)
    ok = models.WebhookCreate(url=plain_receiver.url, events=events, brand_id=served.brand["id"])
    assert_error(call("webhooks.create_webhook", client=anonymous, body=ok), 401, "unauthorized")
    missing = "wh_" + "0" * 24
    assert_error(call("webhooks.get_webhook", webhook_id=missing, client=client), 404, "not_found")
    assert_error(
        call("deliveries.get_delivery", webhook_id=missing, delivery_id="dlv_" + "0" * 24, client=client),
        404,
        "not_found",
    )
    webhook = create(client, models, plain_receiver.url)
    bad_header = models.WebhookUpdate(headers=models.WebhookUpdateHeadersType0.from_dict({"Bad Header": "x"}))
    assert_error(
        call("webhooks.update_webhook", webhook_id=webhook.id, client=client, body=bad_header),
        400,
        "invalid_request",
        "headers.Bad Header",
    )


def test_error_shapes_of_the_request_guards(client: Any, models: Any, served: Served) -> None:
    """413 (a body over ``MAX_REQUEST_BYTES``) and 415 (not JSON) answer the document's ``Error`` too."""
    events = [models.WebhookCreateEventsItem("visibility_changed")]
    limit = served.app.config.get("TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES", DEFAULTS["MAX_REQUEST_BYTES"])
    huge = models.WebhookCreate(
        url="https://hooks.example.com/x", events=events, brand_id=served.brand["id"], description="x" * (limit + 1)
    )
    assert_error(call("webhooks.create_webhook", client=client, body=huge), 413, "request_too_large")
    # The generated functions always send JSON: a reader's raw request through the client's own httpx client.
    raw = client.get_httpx_client().post("/webhooks", content=b"url=x", headers={"Content-Type": "text/plain"})
    create_webhook = module("api.webhooks.create_webhook")
    assert_error(create_webhook._build_response(client=client, response=raw), 415, "unsupported_media_type")


def test_the_docs_client_py_creates_a_signed_webhook(
    generated: ModuleType, served: Served, client: Any, models: Any, plain_receiver: Receiver, tmp_path: Path
) -> None:
    """docs/api-client.md's ``client.py``, run by ``python client.py`` with the demo's variables and the
    generated package beside it."""
    existing = create(client, models, plain_receiver.url)
    (tmp_path / "client.py").write_text(fragment("api-client.md", "client.py"))
    env = reader_env(
        API=served.base_url,
        KEY=served.key,
        WH=existing.id,
        RX=plain_receiver.url,
        PYTHONPATH=str(generated.folder),  # type: ignore[attr-defined]
    )
    done = subprocess.run(
        [sys.executable, "client.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status, webhook_id, secret = done.stdout.split()
    assert status == "201" and webhook_id.startswith("wh_") and secret == "whsec_"
    got = call("webhooks.get_webhook", webhook_id=webhook_id, client=client)
    assert got.parsed.url == plain_receiver.url + "/hooks/trakkr" and str(got.parsed.brand_id) == served.brand["id"]
