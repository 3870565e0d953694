"""Request-level failures: bad JSON, wrong content type, oversized bodies, routing errors."""
from __future__ import annotations

import pytest

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
VALID = '{"url": "https://receiver.example.com/h", "events": ["report_completed"], "brand_id": "%s"}' % BRAND


@pytest.fixture
def webhook_id(client) -> str:
    response = client.post("/webhooks", data=VALID, content_type="application/json")
    assert response.status_code == 201
    return response.get_json()["id"]


def assert_error(response, status: int, type_: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["type"] == type_ and isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in error["fields"]
    return error


BAD_JSON = [
    pytest.param(b"{", id="truncated"),
    pytest.param(b"{'url': 1}", id="single-quotes"),
    pytest.param(b'{"url": "x",}', id="trailing-comma"),
    pytest.param(b'{"a": NaN}', id="nan"),
    pytest.param(b'{"a": Infinity}', id="infinity"),
    pytest.param(b'{"a": -Infinity}', id="minus-infinity"),
    pytest.param(b'{"a": 1e999}', id="float-overflow"),
    pytest.param(b'{"a": 1, "a": 2}', id="duplicate-key"),
    pytest.param(b'{"a": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b"[" * 20000 + b"]" * 20000, id="nested-too-deep"),
    pytest.param(b'{"a": ' + b"9" * 5000 + b"}", id="huge-integer"),
]


@pytest.mark.parametrize("raw", BAD_JSON)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_malformed_json_is_400(client, webhook_id, method, raw) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    error = assert_error(getattr(client, method)(path, data=raw, content_type="application/json"),
                         400, "invalid_request")
    assert "JSON" in error["message"] or "UTF-8" in error["message"]


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null", b"true", b"[{}]"])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_json_that_is_not_an_object_is_400(client, webhook_id, method, raw) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    error = assert_error(getattr(client, method)(path, data=raw, content_type="application/json"),
                         400, "invalid_request")
    assert "must be a JSON object" in error["message"]


@pytest.mark.parametrize("method", ["post", "patch"])
def test_empty_body_is_400(client, webhook_id, method) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    error = assert_error(getattr(client, method)(path, content_type="application/json"), 400, "invalid_request")
    assert "empty" in error["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_non_json_content_type_is_415(client, webhook_id, method, content_type) -> None:
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    headers = {"Content-Type": content_type} if content_type else {}
    response = getattr(client, method)(path, data=VALID.encode(), headers=headers)
    assert_error(response, 415, "unsupported_media_type", "Content-Type")


def test_json_suffix_media_types_are_accepted(client) -> None:
    response = client.post("/webhooks", data=VALID, content_type="application/merge-patch+json; charset=utf-8")
    assert response.status_code == 201


@pytest.mark.parametrize("method", ["post", "patch"])
def test_oversized_body_is_413(make_app, method) -> None:
    client = make_app(TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES=2048).test_client()
    webhook_id = client.post("/webhooks", data=VALID, content_type="application/json").get_json()["id"]
    path = "/webhooks" if method == "post" else f"/webhooks/{webhook_id}"
    big = '{"description": "%s"}' % ("x" * 3000)
    assert_error(getattr(client, method)(path, data=big, content_type="application/json"), 413, "request_too_large")


def test_oversized_body_without_content_length_is_413(make_app) -> None:
    import io

    client = make_app(TRAKKR_WEBHOOKS_MAX_REQUEST_BYTES=2048).test_client()
    stream = io.BytesIO(b'{"description": "' + b"x" * 5000 + b'"}')
    response = client.post(
        "/webhooks", input_stream=stream,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        # What a WSGI server sets for a chunked body (the test client does not).
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_error(response, 413, "request_too_large")


@pytest.mark.parametrize(
    "method,path",
    [
        ("put", "/webhooks"),
        ("patch", "/webhooks"),
        ("delete", "/webhooks"),
        ("put", "/webhooks/{id}"),
        ("post", "/webhooks/{id}"),
    ],
)
def test_wrong_method_is_405_with_allow(client, webhook_id, method, path) -> None:
    response = getattr(client, method)(path.format(id=webhook_id), data=VALID, content_type="application/json")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"]


@pytest.mark.parametrize("path", ["/webhooks/", "/webhooks/{id}/nope", "/webhooks/wh_000000000000000000000000"])
def test_unknown_paths_are_404_json(client, webhook_id, path) -> None:
    assert_error(client.get(path.format(id=webhook_id)), 404, "not_found")


@pytest.mark.parametrize("method", ["get", "delete"])
def test_unknown_query_parameter_on_one_webhook_is_400(client, webhook_id, method) -> None:
    assert_error(getattr(client, method)(f"/webhooks/{webhook_id}?expand=all"), 400, "invalid_request", "expand")


def test_pages_of_the_host_app_are_left_alone(app, client) -> None:
    @app.get("/elsewhere")
    def elsewhere():
        return "host page"

    assert client.get("/elsewhere").get_data(as_text=True) == "host page"
    assert client.get("/missing").mimetype == "text/html"
