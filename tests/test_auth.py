"""The auth-method table: one entry adds a method that validation, request building,
loading (through a real test send), the preview's masking, deletion and the OpenAPI
document all follow."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from e2e.helpers import BRAND_ID, clear_queue
from e2e.receiver import Receiver
from flask_trakkr_webhooks import auth, get_state
from flask_trakkr_webhooks.errors import MessageError

CONFIG = dict(
    TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False, TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_TIMEOUT=2
)


@pytest.fixture
def token_header() -> Iterator[auth.AuthMethod]:
    """A method a host adds in one call: the token in an ``X-Token`` header."""
    method = auth.AuthMethod(
        name="token_header",
        fields=("auth_token",),
        secret_fields=("auth_token",),
        build=lambda c: {"X-Token": c["auth_token"] or ""},
        description="X-Token: <auth_token>",
    )
    auth.register(method)
    yield method
    auth.unregister("token_header")


@pytest.fixture
def app(make_app):
    app = make_app(**CONFIG)
    yield app
    clear_queue(app)


def test_builtin_methods_build_the_contract_headers() -> None:
    creds = dict.fromkeys(auth.CREDENTIAL_COLUMNS)
    assert auth.names()[:4] == ("none", "bearer", "basic", "api_key")
    assert auth.headers_for("none", creds) == {}
    assert auth.headers_for("bearer", {**creds, "auth_token": "t"}) == {"Authorization": "Bearer t"}
    assert auth.headers_for("basic", {**creds, "auth_username": "u", "auth_password": "p"}) == {
        "Authorization": "Basic " + base64.b64encode(b"u:p").decode()
    }
    assert auth.headers_for("api_key", {**creds, "api_key_header": "X-Key", "api_key_value": "v"}) == {"X-Key": "v"}
    assert auth.secret_columns() == ("auth_token", "auth_password", "api_key_value")


@pytest.mark.parametrize(
    "auth_type,creds,needs",
    [
        ("bearer", {}, "auth_token"),
        ("basic", {"auth_username": "u"}, "auth_password"),
        ("api_key", {"api_key_header": "X-Key"}, "api_key_header and api_key_value"),
        ("api_key", {"api_key_header": "X-Trakkr-Own", "api_key_value": "v"}, "reserved"),
        ("nope", {}, "unknown auth_type 'nope'"),
    ],
)
def test_missing_or_bad_credentials_are_a_message_error(auth_type: str, creds: dict[str, str], needs: str) -> None:
    full = {name: creds.get(name) for name in auth.CREDENTIAL_COLUMNS}
    with pytest.raises(MessageError, match=needs):
        auth.headers_for(auth_type, full)


def test_register_refuses_unknown_columns_and_secrets_outside_fields() -> None:
    with pytest.raises(ValueError, match="unknown credential columns"):
        auth.register(auth.AuthMethod("x", ("auth_pin",), (), lambda c: {}))
    with pytest.raises(ValueError, match="secret_fields must be among its fields"):
        auth.register(auth.AuthMethod("x", ("auth_username",), ("auth_password",), lambda c: {}))
    assert auth.get("x") is None
    auth.unregister("bearer")  # built-ins cannot be removed
    assert auth.get("bearer") is not None


def test_an_added_method_is_validated_sent_masked_documented_and_wiped(app, token_header) -> None:
    client = app.test_client()
    with Receiver() as rx:
        body = {"url": rx.url, "events": ["visibility_changed"], "brand_id": BRAND_ID, "auth_type": "token_header"}
        # Validation reads the table: the method's field is required, other methods' fields refused.
        missing = client.post("/webhooks", json=body)
        assert missing.status_code == 400
        assert missing.get_json()["error"]["fields"] == {"auth_token": ["is required when auth_type is 'token_header'"]}
        other = client.post("/webhooks", json={**body, "auth_token": "t", "auth_username": "u"})
        assert other.status_code == 400
        assert list(other.get_json()["error"]["fields"]) == ["auth_username"]
        created = client.post("/webhooks", json={**body, "auth_token": "s3cret-token"})
        assert created.status_code == 201, created.get_data(as_text=True)
        webhook = created.get_json()
        assert webhook["auth_type"] == "token_header" and "auth_token" not in webhook

        # Loading and request building read the table: a real test send carries the header.
        sent = client.post(f"/webhooks/{webhook['id']}/test")
        assert sent.status_code == 200 and sent.get_json()["success"] is True
        (received,) = rx.received
        assert received.headers["X-Token"] == "s3cret-token"
        assert "Authorization" not in received.headers

        # The preview masks the method's header.
        preview = client.post(f"/webhooks/{webhook['id']}/preview").get_json()
        assert preview["headers"]["X-Token"] == "********" and preview["masked_headers"] == ["X-Token"]

        # The OpenAPI document lists it.
        document = client.get("/webhooks/openapi.json").get_json()
        assert "token_header" in document["components"]["schemas"]["WebhookCreate"]["properties"]["auth_type"]["enum"]

        # Deletion wipes its secret.
        assert client.delete(f"/webhooks/{webhook['id']}").status_code == 200
        with app.app_context():
            state = get_state(app)
            row = state.db.session.get(state.models.Webhook, webhook["id"])
            assert row.auth_token is None


def test_an_unknown_auth_type_is_a_400_naming_the_field(app) -> None:
    response = app.test_client().post(
        "/webhooks",
        json={
            "url": "http://127.0.0.1:9/x",
            "events": ["visibility_changed"],
            "brand_id": BRAND_ID,
            "auth_type": "magic",
        },
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert list(error["fields"]) == ["auth_type"]
    assert error["fields"]["auth_type"] == ["must be one of: none, bearer, basic, api_key"]
