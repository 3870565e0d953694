"""The OpenAPI 3 document of the REST API, generated from the marshmallow schemas with apispec.

:func:`build_document` is pure: it takes the app's :class:`~.config.Settings`, its event
types and its routes, and answers the document as a dict. Request bodies come from
:class:`~.schemas.WebhookCreateSchema` / :class:`~.schemas.WebhookUpdateSchema` (built
with the app's settings), the webhook object from :class:`~.schemas.WebhookSchema`;
the objects the deliveries routes build by hand (delivery, attempt, test result) and
the error shape are described by the schemas below. What depends on the app's
settings (event type names, caps, ``REQUIRE_HTTPS``) is laid over the generated
schemas, so the document states the limits the app enforces.

Every route of the blueprint must have an entry in :data:`OPERATIONS`; a test fails
when one does not, so a new route cannot ship undocumented.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from . import auth, providers, rules, schemas
from ._version import __version__
from .config import Settings
from .errors import ERROR_TYPES
from .models import DELIVERY_STATUSES

OPENAPI_VERSION = "3.0.3"
#: Endpoint (without the blueprint name) of the route serving the document.
DOCUMENT_ENDPOINT = "openapi"

_DATE_TIME = {"type": "string", "format": "date-time"}
#: What the API accepts as a brand id (:func:`~.schemas.canonical_uuid`); answered lower-case hyphenated.
UUID_PATTERN = r"^[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}$"
WEBHOOK_ID_PATTERN = schemas.WEBHOOK_ID_PATTERN
DELIVERY_ID_PATTERN = schemas.DELIVERY_ID_PATTERN


# -- schemas of the objects the deliveries routes build --------------------------------------------


class TestErrorSchema(Schema):
    """Why a test send failed."""

    type = fields.String(required=True, metadata={"example": "ConnectionError"})
    message = fields.String(required=True, allow_none=True)


class TestResultSchema(Schema):
    """The result of ``POST /webhooks/<id>/test``: one immediate attempt, logged as a delivery."""

    object = fields.String(required=True, metadata={"enum": ["test_result"]})
    success = fields.Boolean(required=True)
    status_code = fields.Integer(required=True, allow_none=True)
    duration_ms = fields.Float(required=True, allow_none=True)
    error = fields.Nested(TestErrorSchema, required=True, allow_none=True)
    delivery = fields.Nested(schemas.DeliveryDetailSchema, required=True)


class PreviewSchema(Schema):
    """The answer of ``POST /webhooks/<id>/preview``: the request a sample event would make, not sent."""

    object = fields.String(required=True, metadata={"enum": ["preview"]})
    webhook_id = fields.String(required=True, metadata={"pattern": WEBHOOK_ID_PATTERN})
    event_type = fields.String(required=True)
    subscribed = fields.Boolean(required=True, metadata={"description": "Whether the webhook subscribes to event_type"})
    method = fields.String(required=True, metadata={"enum": ["POST"]})
    url = fields.String(required=True)
    provider = fields.String(required=True)
    templated = fields.Boolean(
        required=True, metadata={"description": "The webhook's template replaced the provider format"}
    )
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "Every header, credentials masked (signatures shown)"},
    )
    masked_headers = fields.List(fields.String(), required=True)
    body = fields.Raw(required=True, metadata={"description": "The body as JSON"})
    body_text = fields.String(required=True, metadata={"description": "The exact UTF-8 body text that would be sent"})
    payload = fields.Dict(required=True, metadata={"description": "The sample event's standard payload"})


class ReplayedDeliverySchema(Schema):
    """One event redelivered by ``POST /webhooks/<id>/replay``."""

    id = fields.String(required=True, metadata={"pattern": DELIVERY_ID_PATTERN, "description": "The new delivery"})
    event_id = fields.String(required=True, metadata={"description": "The original event (meta.event_id)"})
    event_type = fields.String(required=True)
    replayed_status = fields.String(
        required=True, metadata={"enum": list(schemas.REPLAY_STATUSES), "description": "Why it was chosen"}
    )


class ReplayResultSchema(Schema):
    """The answer of ``POST /webhooks/<id>/replay``: the new deliveries, oldest event first."""

    object = fields.String(required=True, metadata={"enum": ["replay"]})
    webhook_id = fields.String(required=True, metadata={"pattern": WEBHOOK_ID_PATTERN})
    since = fields.String(required=True, metadata=_DATE_TIME)
    status = fields.List(fields.String(metadata={"enum": list(schemas.REPLAY_STATUSES)}), required=True)
    count = fields.Integer(required=True, metadata={"minimum": 0, "maximum": schemas.MAX_REPLAY})
    has_more = fields.Boolean(required=True, metadata={"description": "More events match: ask again"})
    deliveries = fields.List(fields.Nested(ReplayedDeliverySchema), required=True)


class WebhookListSchema(Schema):
    """A page of webhooks, newest first."""

    object = fields.String(required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Nested(schemas.WebhookSchema), required=True)
    has_more = fields.Boolean(required=True, metadata={"description": "Ask again with starting_after=<last id>"})


class DeliveryListSchema(Schema):
    """A page of deliveries, newest first."""

    object = fields.String(required=True, metadata={"enum": ["list"]})
    data = fields.List(fields.Nested(schemas.DeliverySchema), required=True)
    has_more = fields.Boolean(required=True)


class WebhookDeletedSchema(Schema):
    """The answer to ``DELETE /webhooks/<id>``."""

    id = fields.String(required=True, metadata={"pattern": WEBHOOK_ID_PATTERN})
    object = fields.String(required=True, metadata={"enum": ["webhook"]})
    deleted = fields.Boolean(required=True, metadata={"enum": [True]})


class TestRequestSchema(Schema):
    """The optional body of ``POST /webhooks/<id>/test``."""

    event = fields.String(
        allow_none=True,
        metadata={"description": "Event type of the sample event (absent or null: the webhook's first)"},
    )


class RedeliverRequestSchema(Schema):
    """The optional body of ``POST .../redeliver``: no fields."""


class ErrorDetailSchema(Schema):
    """``error`` of an error answer."""

    type = fields.String(required=True, metadata={"enum": sorted(set(ERROR_TYPES.values()))})
    message = fields.String(required=True)
    fields = fields.Dict(  # type: ignore[assignment]  # the wire name; marshmallow keeps Schema.fields per instance
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Problems per field (a nested field is named with dots, e.g. headers.Host)"},
    )


class ErrorSchema(Schema):
    """Every failure: ``{"error": {"type", "message", "fields"}}``."""

    error = fields.Nested(ErrorDetailSchema, required=True)


# -- operations -----------------------------------------------------------------------------------

#: Shared error answers: status -> (component name, description).
ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Invalid request: a field, query parameter or the JSON itself (see error.fields)"),
    401: ("Unauthorized", "The host's access policy found no credentials"),
    403: ("Forbidden", "The access policy refused the brand, or no policy is configured (secure default)"),
    404: ("NotFound", "No such webhook or delivery, or one of a brand the policy refuses"),
    405: ("MethodNotAllowed", "The path exists but not with this method (see the Allow header)"),
    409: (
        "Conflict",
        "The resource's state does not allow this (e.g. an inactive webhook, or a stored credential the "
        "configured encryption key cannot decrypt: see error.fields)",
    ),
    413: ("PayloadTooLarge", "The body is larger than TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES"),
    415: ("UnsupportedMediaType", "The body is not application/json"),
}
_ALWAYS = (401, 403, 405, 413)


@dataclass(frozen=True)
class Operation:
    """How one endpoint of the blueprint is documented."""

    summary: str
    status: int
    response: str | None
    errors: tuple[int, ...] = ()
    request: str | None = None
    body_required: bool = False
    query: tuple[str, ...] = ()
    description: str = ""
    public: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Methods to document when the rule takes more (the document's path answers others 405).
    methods: tuple[str, ...] | None = None
    #: The group of operations (:data:`TAGS`): a generated client puts each tag in its own module.
    tag: str = "webhooks"


#: Every endpoint of the blueprint, by endpoint name.
OPERATIONS: dict[str, Operation] = {
    "create_webhook": Operation(
        "Register a webhook",
        201,
        "Webhook",
        (400, 415),
        request="WebhookCreate",
        body_required=True,
        description="The URL's host is resolved and refused (400 on url) when it is or resolves to a loopback, "
        "private, link-local, CGNAT, multicast, reserved or other non-public address, unless "
        "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS or TRAKKR_WEBHOOKS_ALLOWED_CIDRS allows it. For a host name "
        "the answer is the same whether it resolves to a refused address or does not resolve (the server's "
        "log has the detail). Creating one for a brand the policy refuses is 403.",
        headers={"Location": "The new webhook's URL"},
    ),
    "list_webhooks": Operation(
        "List webhooks",
        200,
        "WebhookList",
        (400,),
        query=("limit", "starting_after", "brand_id"),
        description="Newest first; only webhooks of brands the access policy allows. A refused brand_id is 403.",
    ),
    "get_webhook": Operation("Retrieve a webhook", 200, "Webhook", (400, 404)),
    "update_webhook": Operation(
        "Update a webhook",
        200,
        "Webhook",
        (400, 404, 409, 415),
        request="WebhookUpdate",
        body_required=True,
        description="Changes only the fields sent; null clears a field. A new URL is vetted like on create. "
        "A URL with another origin (scheme, host or port) must come with the auth credentials and the "
        "custom headers sent again (or auth_type none / headers {} or null), else 400 naming them. 409 when "
        "a stored credential the configured key cannot decrypt would be kept (send it again, or delete).",
    ),
    "delete_webhook": Operation(
        "Delete a webhook",
        200,
        "WebhookDeleted",
        (400, 404),
        description="Soft delete: the delivery log stays; pending deliveries are cancelled; credentials are erased.",
    ),
    "list_deliveries": Operation(
        "List a webhook's deliveries",
        200,
        "DeliveryList",
        (400, 404),
        query=("limit", "starting_after", "status"),
        tag="deliveries",
    ),
    "get_delivery": Operation(
        "Retrieve a delivery with every attempt", 200, "DeliveryDetail", (400, 404), tag="deliveries"
    ),
    "redeliver": Operation(
        "Redeliver an event",
        202,
        "DeliveryDetail",
        (400, 404, 409, 415),
        request="RedeliverRequest",
        description="A new delivery of the same event (same meta.event_id), sent by a worker. "
        "409 for a test delivery or an inactive webhook.",
        tag="deliveries",
    ),
    "test_webhook": Operation(
        "Send a test event now",
        200,
        "TestResult",
        (400, 404, 409, 415),
        request="TestRequest",
        description="One immediate, signed attempt of a sample event with meta.test: true, logged as a delivery; "
        "never retried. 409 when a stored credential cannot be decrypted with the configured key.",
    ),
    "preview_webhook": Operation(
        "Preview the request of a sample event",
        200,
        "Preview",
        (400, 404, 409, 415),
        request="TestRequest",
        description="The exact body and headers a sample event (the one /test sends) would be sent with, "
        "credentials masked; nothing is sent or stored. 409 when the request cannot be built (or a stored "
        "credential cannot be decrypted with the configured key).",
    ),
    "rotate_secret": Operation(
        "Rotate the signing secret",
        200,
        "Webhook",
        (400, 404, 409, 415),
        request="RotateSecretRequest",
        description="Sets a new signing secret (generated unless the body gives one) and answers the webhook "
        "with it. For TRAKKR_WEBHOOKS_SECRET_GRACE_PERIOD seconds (previous_secret_expires_at) "
        "webhook-signature carries a signature by the old secret too; X-Trakkr-Signature uses the "
        "new one only. 409 when the current secret cannot be decrypted with the configured key (set a new "
        "one with PATCH instead).",
    ),
    "replay_webhook": Operation(
        "Replay failed, cancelled or missed events",
        202,
        "ReplayResult",
        (400, 404, 409, 415),
        request="ReplayRequest",
        body_required=True,
        description="New deliveries of the same events (same meta.event_id), enqueued at once: events whose "
        "latest delivery to this webhook since `since` failed (default) or was cancelled, or that were "
        "missed (emitted while it was inactive). 409 when the webhook is inactive.",
    ),
    DOCUMENT_ENDPOINT: Operation(
        "This OpenAPI document",
        200,
        None,
        (400,),
        public=True,
        methods=("GET",),
        description="Served without asking the access policy: it describes the API's shape and limits only. "
        "It takes no query parameters (one is 400).",
        tag="openapi",
    ),
}

#: The groups of operations, in the order a reader meets them.
TAGS: dict[str, str] = {
    "webhooks": "Register, change and remove webhooks; send a test event, preview, rotate the secret, replay",
    "deliveries": "The delivery log of a webhook: each delivery with its attempts, and redelivery",
    "openapi": "This document",
}

_QUERY_DESCRIPTIONS = {
    "limit": "Page size",
    "starting_after": "Cursor: the id of the last item of the previous page",
    "brand_id": "Only this brand's webhooks (a brand the policy refuses is 403)",
    "status": "Only deliveries in this state",
}

SECURITY_NOTE = """\
## Security

Authentication belongs to the host application: the API asks the host's access policy
(`@webhooks.access_policy`, a function of the brand id that can read the request's API key or
session) whether the caller may manage each brand. A policy may answer 401 (no credentials) by
raising `werkzeug.exceptions.Unauthorized`; a refused brand is 403 when named in the request
(create, `brand_id` filter) and 404 otherwise, so other brands' webhooks are never revealed.
Without a policy every request is 403 unless the app is in testing or `TRAKKR_WEBHOOKS_OPEN_API`
is set. This document itself is served without the policy: it holds no data.
"""


# -- building -------------------------------------------------------------------------------------


def openapi_path(rule: str) -> str:
    """A Werkzeug rule (``/webhooks/<webhook_id>``) as an OpenAPI path (``/webhooks/{webhook_id}``)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def build_document(
    settings: Settings,
    event_types: Iterable[str],
    routes: Sequence[tuple[str, str, Iterable[str]]],
    *,
    title: str = "Trakkr webhooks API",
) -> dict[str, Any]:
    """The OpenAPI document for ``routes``: ``(endpoint, rule, methods)`` of the blueprint.

    Endpoints without an entry in :data:`OPERATIONS` are left out (a test keeps the table
    complete). Pure: no app or request needed.
    """
    event_types = tuple(event_types)
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=title,
        version=__version__,
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": SECURITY_NOTE + "\n" + _limits_note(settings)},
    )
    for tag, text in TAGS.items():
        spec.tag({"name": tag, "description": text})
    _add_components(spec, settings, event_types)
    for endpoint, rule, methods in sorted(routes, key=lambda r: (r[1], r[0])):
        operation = OPERATIONS.get(endpoint)
        if operation is None:
            continue
        for method in sorted(set(operation.methods or methods) - {"HEAD", "OPTIONS"}):
            path = openapi_path(rule)
            spec.path(
                path=path, operations={method.lower(): _operation(endpoint, operation, path, settings, event_types)}
            )
    document = spec.to_dict()
    _refine(document["components"]["schemas"], settings, event_types)
    return document


def _limits_note(settings: Settings) -> str:
    return (
        "## Limits\n\n"
        f"Request body: {settings.max_request_bytes} bytes (413). Custom headers: {settings.max_headers}, "
        f"{settings.max_header_bytes} bytes in all. Template: {settings.max_template_bytes} bytes. "
        f"Events per webhook: {settings.max_events_per_webhook}. Page size: {settings.max_page_size}.\n"
    )


def _add_components(spec: APISpec, settings: Settings, event_types: tuple[str, ...]) -> None:
    add = spec.components.schema
    add("Error", schema=ErrorSchema)
    add("Webhook", schema=schemas.WebhookSchema)
    add("WebhookCreate", schema=schemas.WebhookCreateSchema(settings, event_types))
    add("WebhookUpdate", schema=schemas.WebhookUpdateSchema(settings, event_types))
    add("WebhookList", schema=WebhookListSchema)
    add("WebhookDeleted", schema=WebhookDeletedSchema)
    add("Attempt", schema=schemas.AttemptSchema)
    add("Delivery", schema=schemas.DeliverySchema)
    add("DeliveryDetail", schema=schemas.DeliveryDetailSchema)
    add("DeliveryList", schema=DeliveryListSchema)
    add("TestRequest", schema=TestRequestSchema)
    add("TestResult", schema=TestResultSchema)
    add("Preview", schema=PreviewSchema)
    add("RedeliverRequest", schema=RedeliverRequestSchema)
    add("RotateSecretRequest", schema=schemas.RotateSecretSchema)
    add("ReplayRequest", schema=schemas.ReplaySchema)
    add("ReplayResult", schema=ReplayResultSchema)
    for status, (name, description) in ERROR_RESPONSES.items():
        response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": "Error"}}}
        if status == 405:
            response["headers"] = {
                "Allow": {"description": "The methods the path accepts", "schema": {"type": "string"}}
            }
        spec.components.response(name, response)


def _operation(
    endpoint: str, operation: Operation, path: str, settings: Settings, event_types: tuple[str, ...]
) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.summary}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": operation.response}}
    else:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    if operation.headers:
        success["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in operation.headers.items()
        }
    statuses = sorted(set(operation.errors) if operation.public else set(operation.errors) | set(_ALWAYS))
    answer: dict[str, Any] = {
        "operationId": endpoint,
        "tags": [operation.tag],
        "summary": operation.summary,
        "responses": {
            str(operation.status): success,
            **{str(status): ERROR_RESPONSES[status][0] for status in statuses},
        },
    }
    if operation.description:
        answer["description"] = operation.description
    if operation.public:
        answer["security"] = []
    parameters = [_path_parameter(name) for name in re.findall(r"{([^}]+)}", path)]
    parameters += [_query_parameter(name, settings) for name in operation.query]
    if parameters:
        answer["parameters"] = parameters
    if operation.request is not None:
        answer["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": operation.request}},
        }
    return answer


def _path_parameter(name: str) -> dict[str, Any]:
    pattern = {"webhook_id": WEBHOOK_ID_PATTERN, "delivery_id": DELIVERY_ID_PATTERN}.get(name)
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": "An id that does not exist, or of a brand the policy refuses, is 404",
    }


def _query_parameter(name: str, settings: Settings) -> dict[str, Any]:
    by_name: dict[str, dict[str, Any]] = {
        "limit": {"type": "integer", "minimum": 1, "maximum": settings.max_page_size, "default": settings.page_size},
        "starting_after": {"type": "string"},
        "brand_id": {"type": "string", "pattern": UUID_PATTERN},
        "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
    }
    schema = by_name[name]
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": _QUERY_DESCRIPTIONS[name]}


def _refine(components: dict[str, Any], settings: Settings, event_types: tuple[str, ...]) -> None:
    """Lay what the app's settings and the schemas' own validators enforce over the generated schemas."""
    scheme = "[Hh][Tt][Tt][Pp][Ss]" if settings.require_https else "[Hh][Tt][Tt][Pp][Ss]?"
    inputs: dict[str, dict[str, Any]] = {
        "url": {"minLength": 1, "maxLength": rules.MAX_URL_LENGTH, "pattern": f"^{scheme}://"},
        "auth_type": {"enum": list(auth.names())},
        "events": {
            "minItems": 1,
            "maxItems": settings.max_events_per_webhook,
            "uniqueItems": True,
            "items": {"type": "string", "enum": list(event_types)},
        },
        "brand_id": {"pattern": UUID_PATTERN},
        "headers": {"maxProperties": settings.max_headers},
        "template": {"anyOf": copy.deepcopy(_TEMPLATE_SHAPES)},
        "signing_secret": {"pattern": r"^\S(.*\S)?$"},
    }
    for name in ("WebhookCreate", "WebhookUpdate"):
        properties = components[name]["properties"]
        for field_name, extra in inputs.items():
            properties[field_name].update(copy.deepcopy(extra))
        properties["provider"] = _nullable_enum(properties["provider"], providers.names())
        properties["signing_secret"] = _secret_or_generate(properties["signing_secret"])
    _mark_read_only(components["Webhook"]["properties"])
    components["Webhook"]["properties"]["provider"]["enum"] = list(providers.names())
    components["Webhook"]["properties"]["auth_type"]["enum"] = list(auth.names())
    components["Webhook"]["properties"]["template"].update(anyOf=copy.deepcopy(_TEMPLATE_SHAPES), nullable=True)
    components["Preview"]["properties"]["provider"]["enum"] = list(providers.names())
    rotate = components["RotateSecretRequest"]["properties"]
    rotate["signing_secret"] = _secret_or_generate({**rotate["signing_secret"], **inputs["signing_secret"]})
    replay = components["ReplayRequest"]["properties"]
    one_status = {"type": "string", "enum": list(schemas.REPLAY_STATUSES)}
    replay["status"] = {
        "description": replay["status"].get("description", ""),
        "default": "failed",
        "anyOf": [one_status, {"type": "array", "items": one_status, "minItems": 1}],
    }
    components["WebhookCreate"]["example"] = {
        "url": "https://hooks.example.com/trakkr",
        "events": list(event_types[:2]),
        "brand_id": "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c",
        "signing_secret": "whsec-0123456789abcdef",
    }
    components["WebhookUpdate"]["example"] = {"description": "Production receiver", "active": True}
    test_request = components["TestRequest"]["properties"]
    test_request["event"] = _nullable_enum(test_request["event"], event_types)
    webhook = components["Webhook"]
    webhook["required"] = sorted(webhook["properties"])
    _inline_nullable_refs(components)
    for component in ("Error", "WebhookList", "DeliveryList"):
        components[component].setdefault("additionalProperties", False)


#: A body template: a JSON object or a JSON array of any values (OpenAPI 3.0 wants ``items`` on an array).
_TEMPLATE_SHAPES: list[dict[str, Any]] = [
    {"type": "object", "additionalProperties": True},
    {"type": "array", "items": {}},
]
#: Fields of the webhook object that only the server writes (computed, or refused as read-only on input).
_OUTPUT_ONLY = (*schemas.READ_ONLY_FIELDS, "unreadable_credentials", "effective_rate_limit")


def _mark_read_only(properties: dict[str, Any]) -> None:
    """``readOnly`` on exactly the webhook object's fields a client cannot send (apispec marks every
    computed field, such as the writable ``headers``)."""
    for name, prop in properties.items():
        if name in _OUTPUT_ONLY:
            prop["readOnly"] = True
        else:
            prop.pop("readOnly", None)


def _nullable_enum(prop: dict[str, Any], values: Iterable[str]) -> dict[str, Any]:
    """One of ``values`` or null, as ``nullable`` around an ``anyOf`` of the enum: a generated client
    types it ``None | <Enum>`` (``enum: [..., null]`` makes it several overlapping enum classes)."""
    out: dict[str, Any] = {"anyOf": [{"type": "string", "enum": list(values)}], "nullable": True}
    if "description" in prop:
        out["description"] = prop["description"]
    return out


def _secret_or_generate(prop: dict[str, Any]) -> dict[str, Any]:
    """A signing secret's schema: a secret within the limits, or the word ``generate``."""
    secret = {k: v for k, v in prop.items() if k not in ("description", "nullable")}
    out: dict[str, Any] = {"anyOf": [secret, {"type": "string", "enum": ["generate"]}]}
    for key in ("description", "nullable"):
        if key in prop:
            out[key] = prop[key]
    return out


def _inline_nullable_refs(components: dict[str, Any]) -> None:
    """Replace apispec's ``anyOf: [{type: object, nullable}, {$ref}]`` for a nullable nested
    schema (which admits any object) with the referenced schema itself, marked nullable."""
    for component in components.values():
        for name, prop in component.get("properties", {}).items():
            options = prop.get("anyOf", [])
            refs = [o["$ref"] for o in options if "$ref" in o]
            if len(options) == 2 and len(refs) == 1 and {"type": "object", "nullable": True} in options:
                target = components[refs[0].rsplit("/", 1)[1]]
                component["properties"][name] = {**copy.deepcopy(target), "nullable": True}
