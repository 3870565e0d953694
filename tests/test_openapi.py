"""The OpenAPI document (``flask_trakkr_webhooks/openapi.py``): valid OpenAPI 3.0, complete, true
to the app's settings. The route serving it is tested in ``test_api_openapi.py``.
"""

from __future__ import annotations

import jsonschema
import pytest
import schemathesis
from schemathesis.specs.openapi.definitions import OPENAPI_30

from flask_trakkr_webhooks import auth, openapi, providers, rules, schemas
from flask_trakkr_webhooks.api import BLUEPRINT_NAME
from flask_trakkr_webhooks.models import DELIVERY_STATUSES
from flask_trakkr_webhooks.schemas import dump_attempt, dump_delivery

PATH = "/webhooks/openapi.json"


BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"


@pytest.fixture
def document(client) -> dict:
    response = client.get(PATH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _operations(document: dict) -> dict[str, dict]:
    return {f"{method.upper()} {path}": op for path, item in document["paths"].items() for method, op in item.items()}


def test_the_document_is_valid_openapi_3_0(document):
    assert document["openapi"] == "3.0.3"
    # The OpenAPI Initiative's JSON Schema for 3.0 documents (as bundled with schemathesis).
    jsonschema.Draft4Validator(OPENAPI_30).validate(document)
    schemathesis.openapi.from_dict(document).validate()


def test_every_route_of_the_blueprint_is_documented(app, document):
    """A new route without an entry in openapi.OPERATIONS fails here."""
    documented = _operations(document)
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(BLUEPRINT_NAME + "."):
            continue
        endpoint = rule.endpoint.split(".", 1)[1]
        assert endpoint in openapi.OPERATIONS, f"{rule.rule} ({endpoint}) has no entry in openapi.OPERATIONS"
        methods = openapi.OPERATIONS[endpoint].methods or sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            operation = documented[f"{method} {openapi.openapi_path(rule.rule)}"]
            assert operation["operationId"] == endpoint


EXPECTED = {
    "POST /webhooks": ("201", "Webhook", {"400", "401", "403", "405", "413", "415"}),
    "GET /webhooks": ("200", "WebhookList", {"400", "401", "403", "405", "413"}),
    "GET /webhooks/{webhook_id}": ("200", "Webhook", {"400", "401", "403", "404", "405", "413"}),
    "PATCH /webhooks/{webhook_id}": ("200", "Webhook", {"400", "401", "403", "404", "405", "409", "413", "415"}),
    "DELETE /webhooks/{webhook_id}": ("200", "WebhookDeleted", {"400", "401", "403", "404", "405", "413"}),
    "GET /webhooks/{webhook_id}/deliveries": ("200", "DeliveryList", {"400", "401", "403", "404", "405", "413"}),
    "GET /webhooks/{webhook_id}/deliveries/{delivery_id}": (
        "200",
        "DeliveryDetail",
        {"400", "401", "403", "404", "405", "413"},
    ),
    "POST /webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": (
        "202",
        "DeliveryDetail",
        {"400", "401", "403", "404", "405", "409", "413", "415"},
    ),
    "POST /webhooks/{webhook_id}/test": ("200", "TestResult", {"400", "401", "403", "404", "405", "409", "413", "415"}),
    "POST /webhooks/{webhook_id}/preview": ("200", "Preview", {"400", "401", "403", "404", "405", "409", "413", "415"}),
}


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_status_codes_and_schemas_per_route(document, label):
    success, schema_name, errors = EXPECTED[label]
    operation = _operations(document)[label]
    assert set(operation["responses"]) == {success} | errors
    assert operation["responses"][success]["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{schema_name}"
    }
    for status in errors:
        name = openapi.ERROR_RESPONSES[int(status)][0]
        assert operation["responses"][status] == {"$ref": f"#/components/responses/{name}"}
        assert document["components"]["responses"][name]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


def test_the_document_route_is_public_and_documented(document):
    operation = _operations(document)[f"GET {PATH}"]
    assert operation["security"] == [] and set(operation["responses"]) == {"200", "400"}
    assert operation["responses"]["400"] == {"$ref": "#/components/responses/BadRequest"}
    assert "## Security" in document["info"]["description"]
    assert "access policy" in document["info"]["description"]


def test_the_error_shape(document):
    schemas_ = document["components"]["schemas"]
    assert schemas_["Error"]["required"] == ["error"]
    detail = schemas_["ErrorDetail"]
    assert detail["required"] == ["message", "type"]
    assert {"invalid_request", "not_found", "request_too_large", "unsupported_media_type"} <= set(
        detail["properties"]["type"]["enum"]
    )
    assert detail["properties"]["fields"]["additionalProperties"] == {"items": {"type": "string"}, "type": "array"}


def test_request_bodies_come_from_the_marshmallow_schemas(document):
    components = document["components"]["schemas"]
    create, update = components["WebhookCreate"], components["WebhookUpdate"]
    assert sorted(create["required"]) == ["brand_id", "events", "url"]
    assert "required" not in update  # PATCH: every field optional
    fields = set(schemas.WebhookCreateSchema.__dict__["_declared_fields"])
    assert set(create["properties"]) == set(update["properties"]) == fields
    assert create["additionalProperties"] is False
    assert create["properties"]["auth_type"]["enum"] == list(auth.names())
    assert create["properties"]["description"]["maxLength"] == rules.MAX_DESCRIPTION_LENGTH


def test_response_objects_list_every_field_the_api_answers(app, client, document):
    components = document["components"]["schemas"]
    webhook = components["Webhook"]
    assert sorted(webhook["required"]) == sorted(webhook["properties"]) == sorted(schemas.WebhookSchema().fields)
    for name in auth.secret_columns():
        assert name not in webhook["properties"]
    assert webhook["properties"]["disabled_at"]["nullable"] is True
    created = client.post(
        "/webhooks", json={"url": "https://hooks.example.com/x", "events": ["visibility_changed"], "brand_id": BRAND}
    ).get_json()
    assert set(created) == set(webhook["properties"])
    assert components["WebhookList"]["properties"]["data"]["items"] == {"$ref": "#/components/schemas/Webhook"}
    assert sorted(components["WebhookList"]["required"]) == ["data", "has_more", "object"]


class _Row:
    """Anything with the attributes the dump functions read."""

    def __init__(self, **values):
        self.__dict__.update(values)


def test_delivery_and_attempt_schemas_match_what_the_deliveries_api_dumps(document):
    components = document["components"]["schemas"]
    attempt = _Row(
        **dict.fromkeys(
            (
                "id",
                "number",
                "started_at",
                "duration_ms",
                "status_code",
                "outcome",
                "error_type",
                "error_message",
                "response_headers",
                "response_body",
                "next_retry_at",
            )
        )
    )
    delivery = _Row(
        id="dlv_x",
        webhook_id="wh_x",
        event_id="evt_x",
        event=_Row(type="t", payload={}),
        status="pending",
        is_test=False,
        attempt_count=0,
        deferrals=0,
        last_status_code=None,
        last_error=None,
        next_attempt_at=None,
        created_at=None,
        updated_at=None,
        completed_at=None,
        attempts=[attempt],
    )
    assert (
        set(dump_attempt(attempt)) == set(components["Attempt"]["properties"]) == set(components["Attempt"]["required"])
    )
    assert set(dump_delivery(delivery)) == set(components["Delivery"]["properties"])
    detail = components["DeliveryDetail"]
    assert set(dump_delivery(delivery, detail=True)) == set(detail["properties"]) == set(detail["required"])
    assert detail["properties"]["attempts"]["items"] == {"$ref": "#/components/schemas/Attempt"}
    assert components["TestResult"]["properties"]["error"]["nullable"] is True
    assert components["TestResult"]["properties"]["error"]["required"] == ["message", "type"]


def test_settings_and_event_types_shape_the_document(make_app):
    app = make_app(
        TRAKKR_WEBHOOKS_MAX_EVENTS_PER_WEBHOOK=3,
        TRAKKR_WEBHOOKS_MAX_HEADERS=4,
        TRAKKR_WEBHOOKS_MAX_PAGE_SIZE=7,
        TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False,
    )
    client = app.test_client()
    doc = client.get(PATH).get_json()
    create = doc["components"]["schemas"]["WebhookCreate"]["properties"]
    assert create["events"]["maxItems"] == 3 and create["events"]["minItems"] == 1
    assert create["events"]["items"]["enum"] == list(app.webhooks.event_types)
    assert create["headers"]["maxProperties"] == 4
    assert create["url"]["pattern"] == "^[Hh][Tt][Tt][Pp][Ss]?://"
    limit = next(p for p in _operations(doc)["GET /webhooks"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 7
    # A type registered after start appears (the cache follows the event types).
    app.webhooks.register_event_type("mention_spiked", "Mentions spiked")
    again = client.get(PATH).get_json()["components"]["schemas"]["WebhookCreate"]["properties"]["events"]
    assert "mention_spiked" in again["items"]["enum"]


def test_https_only_by_default(document):
    assert (
        document["components"]["schemas"]["WebhookCreate"]["properties"]["url"]["pattern"] == "^[Hh][Tt][Tt][Pp][Ss]://"
    )


def test_build_document_is_pure_and_skips_unknown_endpoints(app):
    from flask_trakkr_webhooks.extension import get_state

    state = get_state(app)
    doc = openapi.build_document(
        state.settings,
        ["a_b"],
        [("get_webhook", "/x/<webhook_id>", {"GET", "HEAD"}), ("not_documented", "/x/y", {"GET"})],
    )
    assert list(doc["paths"]) == ["/x/{webhook_id}"]
    assert list(doc["paths"]["/x/{webhook_id}"]) == ["get"]


def test_every_operation_has_one_declared_tag(document):
    declared = [tag["name"] for tag in document["tags"]]
    assert declared == ["webhooks", "deliveries", "openapi"]
    tags = {key: operation["tags"] for key, operation in _operations(document).items()}
    assert all(len(t) == 1 and t[0] in declared for t in tags.values())
    assert tags["GET /webhooks/{webhook_id}/deliveries"] == ["deliveries"]
    assert tags[f"GET {PATH}"] == ["openapi"]


def test_read_only_marks_match_what_the_api_refuses(document):
    """The webhook object's fields refused as read-only on input are readOnly; writable ones are not."""
    properties = document["components"]["schemas"]["Webhook"]["properties"]
    read_only = {name for name, prop in properties.items() if prop.get("readOnly")}
    output_only = {*schemas.READ_ONLY_FIELDS, "unreadable_credentials", "effective_rate_limit"}
    assert read_only == output_only & set(properties)
    assert {"headers", "signing_secret", "provider", "template"}.isdisjoint(read_only)
    for name in ("WebhookCreate", "WebhookUpdate"):
        assert set(schemas.READ_ONLY_FIELDS).isdisjoint(document["components"]["schemas"][name]["properties"])


def test_template_is_an_object_or_an_array_with_items(document):
    for name in ("WebhookCreate", "WebhookUpdate", "Webhook"):
        template = document["components"]["schemas"][name]["properties"]["template"]
        assert template["anyOf"] == [{"type": "object", "additionalProperties": True}, {"type": "array", "items": {}}]
        assert template["nullable"] is True


def test_provider_and_outcome_enums_are_what_the_api_answers(document):
    components = document["components"]["schemas"]
    assert components["Webhook"]["properties"]["provider"]["enum"] == list(providers.names())
    assert "teams_webhook" in components["Preview"]["properties"]["provider"]["enum"]
    assert components["Attempt"]["properties"]["outcome"]["enum"] == ["succeeded", "retry", "deferred", "failed"]
    assert components["Delivery"]["properties"]["status"]["enum"] == list(DELIVERY_STATUSES)
