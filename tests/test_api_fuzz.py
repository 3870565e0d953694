"""Generated bodies (hypothesis) against POST and PATCH: never a 500, always the contract's error shape.

Three kinds of body: random bytes sent as JSON, random JSON values, and objects
with the real field names (plus a few others) holding random or near-valid values.
A body the API accepts must come back as a webhook object that reads the same.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Not on the fast path: hypothesis generates hundreds of bodies.
pytestmark = pytest.mark.slow

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}
#: Examples per test (each is one request); FUZZ_EXAMPLES raises it for a longer hunt.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FIELDS = [
    "url",
    "events",
    "brand_id",
    "active",
    "description",
    "auth_type",
    "auth_token",
    "auth_username",
    "auth_password",
    "api_key_header",
    "api_key_value",
    "headers",
    "template",
    "signing_secret",
]
WRITE_ONLY = {"auth_token", "auth_password", "api_key_value"}
ANSWERS = {200, 201, 400, 404, 413, 415}

# Text with the awkward characters: controls, NUL, CR/LF, non-Latin-1 and lone surrogates.
awkward_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\r", "\n", "\t", "\x7f", "\x85", "€", "\ud800", "\udfff", ":", "@", "#", "{", "}"]),
    ),
    max_size=40,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    awkward_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(awkward_text, inner, max_size=5)),
    max_leaves=20,
)
urls = st.one_of(
    st.sampled_from(
        [
            "https://receiver.example.com/hooks",
            "http://receiver.example.com/hooks",
            "https://hooks.slack.com/services/x",
            "https://discord.com/api/webhooks/1/a",
            "https://user:pw@x.example/",
            "https://x.example/#f",
            "https://[::1]/",
            "https://127.1/",
            "https://x.example:99999/",
            "ftp://x.example/",
            "https://",
            "//x.example/",
            "https://x.example/%",
        ]
    ),
    st.builds(lambda host, path: f"https://{host}/{path}", awkward_text, awkward_text),
)
event_lists = st.lists(
    st.one_of(st.sampled_from(["visibility_changed", "report_completed", "citation_lost", "nope"]), awkward_text),
    max_size=6,
)
header_maps = st.dictionaries(
    st.one_of(st.sampled_from(["X-Team", "Host", "authorization", "X-Trakkr-Event", "X-Key", "x-team"]), awkward_text),
    st.one_of(awkward_text, json_values),
    max_size=5,
)
plausible = {
    "url": urls,
    "events": event_lists,
    "brand_id": st.one_of(st.just(BRAND), st.just(BRAND.upper()), st.uuids().map(str), awkward_text),
    "active": st.one_of(st.booleans(), json_values),
    "auth_type": st.one_of(st.sampled_from(["none", "bearer", "basic", "api_key", "oauth"]), json_values),
    "auth_token": awkward_text,
    "auth_username": awkward_text,
    "auth_password": awkward_text,
    "api_key_header": st.one_of(st.sampled_from(["X-Key", "Host", "X Key", "x-team"]), awkward_text),
    "api_key_value": awkward_text,
    "headers": st.one_of(header_maps, json_values),
    "template": st.one_of(json_values, st.just({"text": "{{summary}}"}), st.just({"text": "{{nope}}"})),
    "signing_secret": st.one_of(awkward_text, st.text(min_size=16, max_size=20)),
    "description": awkward_text,
}
field_values = st.one_of(json_values, *plausible.values())
keyed_bodies = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS + ["id", "provider", "extra"]), awkward_text),
    field_values,
    max_size=8,
)
near_valid = st.fixed_dictionaries({}, optional=dict(plausible)).map(lambda extra: {**BASE, **extra})
# A valid body with one field replaced: the likeliest to reach the deeper checks and the database.
one_field_off = st.sampled_from(sorted(plausible)).flatmap(
    lambda name: plausible[name].map(lambda value: {**BASE, name: value})
)
bodies = st.one_of(st.binary(max_size=200), json_values, keyed_bodies, near_valid, one_field_off)


def _encode(body) -> bytes:
    if isinstance(body, bytes):
        return body
    # allow_nan: NaN/Infinity are sent as a careless client would; lone surrogates as \\u escapes.
    return json.dumps(body, allow_nan=True).encode()


def _check(response, status_ok: int) -> dict | None:
    assert response.status_code in ANSWERS | {status_ok}, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    data = response.get_json()
    if response.status_code >= 400:
        assert set(data) == {"error"}
        error = data["error"]
        assert isinstance(error["type"], str) and isinstance(error["message"], str) and error["message"]
        assert set(error) <= {"type", "message", "fields"}
        if "fields" in error:
            assert error["fields"] and all(
                isinstance(k, str) and isinstance(v, list) and v and all(isinstance(m, str) for m in v)
                for k, v in error["fields"].items()
            )
        return None
    assert data["object"] == "webhook" and data["id"].startswith("wh_")
    assert not WRITE_ONLY & set(data)
    return data


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def counter(request):
    """Counts the generated bodies a test sent, and reports the number at the end."""
    sent = {"n": 0}
    yield sent
    request.node.user_properties.append(("generated_bodies", sent["n"]))
    print(f"\n{request.node.name}: {sent['n']} generated bodies")


def test_generated_create_bodies_never_fail_with_500(client, counter) -> None:
    @FUZZ
    @given(body=bodies)
    def run(body) -> None:
        counter["n"] += 1
        response = client.post("/webhooks", data=_encode(body), content_type="application/json")
        created = _check(response, 201)
        if created is not None:
            assert client.get(f"/webhooks/{created['id']}").get_json() == created

    run()
    assert counter["n"] >= min(EXAMPLES, 100)


def test_generated_patch_bodies_never_fail_with_500(client, counter) -> None:
    webhook_id = client.post("/webhooks", json=BASE).get_json()["id"]

    @FUZZ
    @given(body=bodies)
    def run(body) -> None:
        counter["n"] += 1
        response = client.patch(f"/webhooks/{webhook_id}", data=_encode(body), content_type="application/json")
        updated = _check(response, 200)
        if updated is not None:
            assert client.get(f"/webhooks/{webhook_id}").get_json() == updated

    run()
    assert counter["n"] >= min(EXAMPLES, 100)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["limit", "starting_after", "brand_id", "other"]),
        awkward_text.filter(lambda s: "\x00" not in s),
        max_size=3,
    )
)
def test_generated_list_queries_never_fail_with_500(client, query) -> None:
    response = client.get("/webhooks", query_string={k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert set(response.get_json()["error"]["fields"]) <= set(query)
