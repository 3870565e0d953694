"""``GET /webhooks/openapi.json`` (``flask_trakkr_webhooks/api/openapi.py``): served without the
access policy, other methods are 405, OPTIONS lists what it allows, unknown query parameters are 400.
"""

from __future__ import annotations

import pytest

PATH = "/webhooks/openapi.json"


def test_served_without_the_access_policy(make_app):
    """Outside testing, with no policy, everything is 403 except the document; a policy is never asked for it."""
    asked = []
    secure_default = make_app()
    secure_default.testing = False  # after init_app, which wants an encryption key outside testing
    assert secure_default.test_client().get("/webhooks").status_code == 403
    assert secure_default.test_client().get(PATH).status_code == 200
    refusing = make_app(policy=lambda brand_id: asked.append(brand_id) or False)
    refusing.testing = False
    assert refusing.test_client().get(PATH).status_code == 200
    assert asked == []


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_other_methods_on_the_document_are_405_not_a_missing_webhook(client, method):
    response = client.open(PATH, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.get_json()["error"]["type"] == "method_not_allowed"


def test_options_on_the_document_lists_what_it_allows(client):
    response = client.open(PATH, method="OPTIONS")
    assert response.status_code == 200 and response.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_an_unknown_query_parameter_is_400(client):
    response = client.get(PATH + "?format=yaml")
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["format"]
