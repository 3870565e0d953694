"""The example host app (brands, API keys, policy, simulations) and its receiver."""

from __future__ import annotations

import json

import pytest

from flask_trakkr_webhooks import get_state
from receiver_kit.testing import sample_payload, signed_request

ACME = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
GLOBEX = "8d1e4b7a-2c3f-4e5d-a6b7-c8d9e0f1a2b3"
ALL_EVENTS = ["visibility_changed", "report_completed", "competitor_added", "citation_gained", "citation_lost"]


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def create_hook(client, key: str, brand: str, **extra):
    body = {"url": "http://127.0.0.1:9/hooks", "events": ALL_EVENTS, "brand_id": brand, **extra}
    return client.post("/webhooks", json=body, headers=auth(key))


def test_a_key_manages_only_its_own_brand(example) -> None:
    app, keys = example
    client = app.test_client()
    mine = create_hook(client, keys["acme"], ACME)
    assert mine.status_code == 201
    theirs = create_hook(client, keys["globex"], GLOBEX).get_json()["id"]

    refused = create_hook(client, keys["acme"], GLOBEX)
    assert refused.status_code == 403 and "brand_id" in refused.get_json()["error"]["fields"]
    assert client.get(f"/webhooks/{theirs}", headers=auth(keys["acme"])).status_code == 404
    assert client.delete(f"/webhooks/{theirs}", headers=auth(keys["acme"])).status_code == 404
    listed = client.get("/webhooks", headers=auth(keys["acme"])).get_json()["data"]
    assert [w["id"] for w in listed] == [mine.get_json()["id"]]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer tk_wrong"}, {"Authorization": "Basic abc"}])
def test_no_or_bad_key_is_401_json(example, headers) -> None:
    app, _ = example
    response = app.test_client().get("/webhooks", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["type"] == "unauthorized"
    assert app.test_client().post("/simulate/visibility", headers=headers).status_code == 401
    assert app.test_client().get("/webhooks/openapi.json", headers=headers).status_code == 200  # public


@pytest.mark.parametrize(
    "kind,event_type",
    [
        ("visibility", "visibility_changed"),
        ("report", "report_completed"),
        ("competitor", "competitor_added"),
        ("citation-gained", "citation_gained"),
        ("citation-lost", "citation_lost"),
    ],
)
def test_simulate_endpoint_emits_in_the_apps_transaction(example, kind, event_type) -> None:
    app, keys = example
    client = app.test_client()
    hook = create_hook(client, keys["acme"], ACME).get_json()["id"]
    response = client.post(f"/simulate/{kind}", headers=auth(keys["acme"]))
    assert response.status_code == 202
    event_id = response.get_json()["event_id"]
    with app.app_context():
        m = get_state().models
        event = get_state().db.session.get(m.Event, event_id)
        assert event.type == event_type and event.brand_id == ACME
        assert event.payload["brand"]["name"] == "Acme" and event.payload["summary"]
        deliveries = get_state().db.session.query(m.Delivery).filter_by(event_id=event_id).all()
        assert [d.webhook_id for d in deliveries] == [hook]


def test_simulate_unknown_kind_is_404_naming_the_kinds(example) -> None:
    app, keys = example
    response = app.test_client().post("/simulate/earthquake", headers=auth(keys["acme"]))
    assert response.status_code == 404
    assert "visibility" in response.get_json()["error"]["fields"]["kind"][0]


def test_simulate_cli(example) -> None:
    app, keys = example
    create_hook(app.test_client(), keys["acme"], ACME)
    runner = app.test_cli_runner()
    out = runner.invoke(args=["simulate", "report", "--brand", "acme", "--seed", "7"])
    assert out.exit_code == 0, out.output
    assert out.output.strip().startswith("evt_")
    unknown = runner.invoke(args=["simulate", "report", "--brand", "nope"])
    assert unknown.exit_code == 2 and "no brand 'nope'" in unknown.output


def test_seed_is_idempotent(example) -> None:
    app, _ = example
    out = app.test_cli_runner().invoke(args=["seed", "--json"])
    assert out.exit_code == 0 and json.loads(out.output.strip().splitlines()[-1]) == []


# -- the receiver ---------------------------------------------------------------------------

SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ="


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.delenv("RECEIVER_REDIS_URL", raising=False)
    from example_app.receiver import create_receiver

    return create_receiver(SECRET, token="tok", fail_once="report_completed").test_client()


def post(client, payload, *, token="tok", secret=SECRET, path="/hooks/trakkr"):
    signed = signed_request(payload, secret)
    return client.post(path, data=signed.body, headers={**signed.headers, "Authorization": f"Bearer {token}"})


def test_receiver_verifies_processes_once_and_prints(receiver, capsys) -> None:
    payload = sample_payload("visibility_changed")
    assert post(receiver, payload).status_code == 200
    again = post(receiver, payload)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("receiver: verified")]
    assert len(printed) == 1 and payload["meta"]["event_id"] in printed[0]


def test_receiver_refuses_bad_token_and_bad_signature(receiver, capsys) -> None:
    payload = sample_payload("visibility_changed")
    assert post(receiver, payload, token="other").status_code == 401
    assert post(receiver, payload, secret="whsec_" + "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC0xMjM0NTY=").status_code == 401
    assert "verified" not in capsys.readouterr().out


def test_receiver_fails_once_then_processes_the_retry(receiver) -> None:
    payload = sample_payload("report_completed")
    assert post(receiver, payload).status_code == 500  # the handler raised: the key is released
    assert post(receiver, payload).status_code == 200
    assert post(receiver, payload).get_json()["duplicate"] is True
