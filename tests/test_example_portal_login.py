"""The example app's portal login (``example_app/portal_login.py``): a session signed in with a
brand's API key sees that brand's webhooks in the portal, and nothing else."""

from __future__ import annotations

import re
from typing import Any

ACME = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
GLOBEX = "8d1e4b7a-2c3f-4e5d-a6b7-c8d9e0f1a2b3"
P = "/webhooks/portal"


def csrf(client: Any) -> str:
    """The session's CSRF token, read from the sign-in form."""
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def sign_in(client: Any, key: str, next_path: str = "") -> Any:
    """POST the sign-in form."""
    return client.post("/login", data={"csrf_token": csrf(client), "api_key": key, "next": next_path})


def hook(client: Any, key: str, brand: str) -> str:
    """A webhook of ``brand`` made through the API with ``key``."""
    body = {"url": "http://127.0.0.1:9/hooks", "events": ["visibility_changed"], "brand_id": brand}
    response = client.post("/webhooks", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def test_portal_without_a_session_redirects_to_sign_in(example) -> None:
    app, _ = example
    response = app.test_client().get(f"{P}?brand_id={ACME}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_sign_in_with_an_unknown_key_is_401(example) -> None:
    app, _ = example
    client = app.test_client()
    response = sign_in(client, "tk_wrong")
    assert response.status_code == 401 and "Unknown API key." in response.get_data(as_text=True)


def test_sign_in_without_the_csrf_token_is_400(example) -> None:
    app, keys = example
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"api_key": keys["acme"]})
    assert response.status_code == 400 and "security token" in response.get_data(as_text=True)


def test_signed_in_brand_sees_its_webhooks_and_not_anothers(example) -> None:
    app, keys = example
    client = app.test_client()
    mine, theirs = hook(client, keys["acme"], ACME), hook(client, keys["globex"], GLOBEX)
    response = sign_in(client, keys["acme"])
    assert response.status_code == 303 and response.headers["Location"] == f"{P}?brand_id={ACME}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert mine in page and theirs not in page
    assert "Acme" in client.get(P).get_data(as_text=True)  # the brand picker lists the signed-in brand
    assert client.get(f"{P}/{theirs}").status_code == 404
    assert client.get(f"{P}?brand_id={GLOBEX}").status_code == 403
    # The session is for the portal only: the JSON API still wants the key.
    assert client.get("/webhooks").status_code == 401


def test_sign_in_returns_to_the_page_asked_for_and_sign_out_forgets(example) -> None:
    app, keys = example
    client = app.test_client()
    mine = hook(client, keys["acme"], ACME)
    response = sign_in(client, keys["acme"], f"{P}/{mine}")
    assert response.headers["Location"] == f"{P}/{mine}"
    assert sign_in(client, keys["acme"], "//elsewhere.example/x").headers["Location"] == f"{P}?brand_id={ACME}"
    assert client.post("/logout", data={}).status_code == 400  # CSRF
    assert client.post("/logout", data={"csrf_token": csrf(client)}).status_code == 303
    assert client.get(f"{P}/{mine}").status_code == 302
