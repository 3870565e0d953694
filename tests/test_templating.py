"""Templating: placeholders substituted on parsed JSON, typed values, missing and hostile data."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_trakkr_webhooks import events, templating
from flask_trakkr_webhooks.providers.samples import sample_payload
from flask_trakkr_webhooks.templating import MAX_DEPTH, VARIABLES, TemplateError, as_text, render, validate


@pytest.fixture
def payload():
    p = sample_payload(
        "visibility_changed",
        {
            "previous_score": 41.0,
            "current_score": 57.5,
            "change_percent": 40.2,
            "direction": "up",
            "flag": True,
            "zero": 0,
            "none": None,
            "tags": ["a", "b"],
            "nested": {"deep": {"x": [10, {"y": "z"}]}},
            "text": "plain",
        },
        test=False,
    )
    p["workflow"] = {"id": "wf_1", "name": "Daily check"}
    return p


# --- the product page's example --------------------------------------------------------


def test_product_page_example(payload):
    template = {
        "text": "Alert: {{brand.name}} visibility changed!",
        "score": "{{event.data.current_score}}",
        "change": "{{event.data.change_percent}}%",
    }
    validate(template)
    assert render(template, payload) == {
        "text": "Alert: Acme visibility changed!",
        "score": 57.5,
        "change": "40.2%",
    }


# --- every variable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("brand.id", "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f"),
        ("brand.name", "Acme"),
        ("brand.website", "https://acme.example"),
        ("event.type", "visibility_changed"),
        ("event.id", "evt_0123456789abcdef01234567"),
        ("summary", "Acme's AI visibility score rose from 41 to 57.5 (+40.2%)."),
        ("workflow.name", "Daily check"),
        ("timestamp", "2025-01-15T09:30:00.000Z"),
        ("event.data.current_score", 57.5),
    ],
)
def test_each_variable(payload, variable, value):
    validate({"v": f"{{{{{variable}}}}}"})
    assert render({"v": f"{{{{{variable}}}}}"}, payload) == {"v": value}


def test_whole_data_object(payload):
    assert render({"data": "{{event.data}}"}, payload) == {"data": payload["event"]["data"]}


def test_variables_list_is_the_documented_one():
    assert set(VARIABLES) == {
        "brand.id",
        "brand.name",
        "brand.website",
        "event.type",
        "event.id",
        "event.data",
        "event.data.*",
        "summary",
        "workflow.name",
        "timestamp",
    }


# --- types: a lone placeholder keeps the JSON type ----------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{event.data.current_score}}", 57.5),
        ("{{event.data.previous_score}}", 41.0),
        ("{{event.data.zero}}", 0),
        ("{{event.data.flag}}", True),
        ("{{event.data.none}}", None),
        ("{{event.data.tags}}", ["a", "b"]),
        ("{{event.data.nested}}", {"deep": {"x": [10, {"y": "z"}]}}),
        ("{{event.data.text}}", "plain"),
        ("{{ event.data.current_score }}", 57.5),  # whitespace inside the braces
        ("{{\tevent.data.current_score\n}}", 57.5),
        ("{{event.data.nested.deep.x.0}}", 10),  # a numeric segment indexes an array
        ("{{event.data.nested.deep.x.1.y}}", "z"),
    ],
)
def test_lone_placeholder_keeps_json_type(payload, template, expected):
    validate({"v": template})
    out = render({"v": template}, payload)["v"]
    assert out == expected and type(out) is type(expected)


# --- text: inside a longer string --------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("score {{event.data.current_score}}", "score 57.5"),
        ("was {{event.data.previous_score}}", "was 41"),  # no ".0" noise
        ("{{event.data.flag}}!", "true!"),
        ("[{{event.data.none}}]", "[]"),
        ("tags={{event.data.tags}}", 'tags=["a","b"]'),
        ("n={{event.data.nested.deep}}", 'n={"x":[10,{"y":"z"}]}'),
        ("{{brand.name}}{{brand.name}}", "AcmeAcme"),
        (" {{brand.name}} ", " Acme "),  # not exactly one placeholder
        ("{{brand.name}} / {{ event.type }}", "Acme / visibility_changed"),
        ("no placeholders", "no placeholders"),
        ("{{ not closed", "{{ not closed"),
        ("}} {{", "}} {{"),
        ("{{{brand.name}}}", "{Acme}"),
    ],
)
def test_inside_text(payload, template, expected):
    validate([template])
    assert render([template], payload) == [expected]


@pytest.mark.parametrize(
    "value, text",
    [
        (1e21, "1e+21"),
        (-2.0, "-2"),
        (0.1, "0.1"),
        (10, "10"),
        (False, "false"),
        (None, ""),
        (float("nan"), ""),
        (float("inf"), ""),
        ("é", "é"),
        ({"é": 1}, '{"é":1}'),
    ],
)
def test_as_text(value, text):
    assert as_text(value) == text


# --- nesting and lists --------------------------------------------------------------------


def test_nested_objects_and_lists(payload):
    template = [
        {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{brand.name}}*"}}]},
        ["{{event.data.current_score}}", "{{event.data.tags}}", 3, True, None, 1.5],
        {"meta": {"id": "{{event.id}}", "n": {"m": {"k": "{{event.data.nested.deep.x.1}}"}}}},
    ]
    validate(template)
    assert render(template, payload) == [
        {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Acme*"}}]},
        [57.5, ["a", "b"], 3, True, None, 1.5],
        {"meta": {"id": "evt_0123456789abcdef01234567", "n": {"m": {"k": {"y": "z"}}}}},
    ]


def test_output_shares_nothing_with_template_or_payload(payload):
    template = {"data": "{{event.data.nested}}", "list": [1, 2]}
    before_t, before_p = copy.deepcopy(template), copy.deepcopy(payload)
    out = render(template, payload)
    out["data"]["deep"]["x"].append(99)
    out["list"].append(3)
    assert template == before_t and payload == before_p


# --- keys ---------------------------------------------------------------------------------


def test_placeholders_in_keys_render_as_text(payload):
    template = {
        "{{event.type}}": "{{event.data.current_score}}",
        "score_{{event.data.zero}}": 1,
        "{{event.data.tags}}": 2,
    }
    validate(template)
    assert render(template, payload) == {"visibility_changed": 57.5, "score_0": 1, '["a","b"]': 2}


def test_colliding_keys_keep_the_later_one(payload):
    assert render({"Acme": 1, "{{brand.name}}": 2}, payload) == {"Acme": 2}


# --- missing values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{{event.data.absent}}", None),
        ("x{{event.data.absent}}y", "xy"),
        ("{{event.data.text.deeper}}", None),  # a string has no keys
        ("{{event.data.tags.5}}", None),  # index past the end
        ("{{event.data.tags.-1}}", None),
        ("{{workflow.name}}", None),  # workflow is null
        ("wf: {{workflow.name}}", "wf: "),
    ],
)
def test_known_variable_without_value(payload, template, expected):
    payload["workflow"] = None
    validate({"v": template})
    assert render({"v": template}, payload) == {"v": expected}


@pytest.mark.parametrize(
    "bad_payload, first",
    [
        (None, None),
        ([], None),
        ("x", None),
        ({"event": "x"}, None),
        ({"event": {"data": [1]}, "brand": 3}, 1),
    ],
)
def test_render_never_raises_on_malformed_payload(bad_payload, first):
    out = render({"a": "{{brand.name}}", "b": "x {{event.data.k}} {{timestamp}}", "c": "{{event.data.0}}"}, bad_payload)
    assert out == {"a": None, "b": "x  ", "c": first}


# --- unknown variables and bad shapes are refused -----------------------------------------


@pytest.mark.parametrize(
    "template, variable, path",
    [
        ({"a": "{{foo}}"}, "foo", "$.a"),
        ({"a": "{{ brand.email }}"}, "brand.email", "$.a"),
        ({"a": "ok {{event}} ok"}, "event", "$.a"),
        ({"a": "{{brand}}"}, "brand", "$.a"),
        ({"a": "{{event.data.}}"}, "event.data.", "$.a"),
        ({"a": "{{event.data..x}}"}, "event.data..x", "$.a"),
        ({"a": "{{event.data.a b}}"}, "event.data.a b", "$.a"),
        ({"a": "{{}}"}, "", "$.a"),
        ({"a": "{{ }}"}, "", "$.a"),
        ({"a": "{{brand.name | upper}}"}, "brand.name | upper", "$.a"),  # no filters
        ({"a": "{{ 1 + 1 }}"}, "1 + 1", "$.a"),  # no expressions
        ({"a": "{{__import__('os')}}"}, "__import__('os')", "$.a"),  # no code
        ({"a": "{{Brand.Name}}"}, "Brand.Name", "$.a"),  # case-sensitive
        ({"a": [{"b": ["ok", "{{nope}}"]}]}, "nope", "$.a[0].b[1]"),
        ({"{{nope}}": 1}, "nope", '$["{{nope}}"]'),
        (["{{brand.name}}", "{{meta.event_id}}"], "meta.event_id", "$[1]"),
    ],
)
def test_unknown_variables_are_refused(template, variable, path):
    with pytest.raises(TemplateError) as info:
        validate(template)
    assert info.value.variable == variable
    assert info.value.path == path
    assert f"unknown template variable '{variable or '{{}}'}' at {path}" in str(info.value)
    assert isinstance(info.value, ValueError)


def _deep(n):
    node = "leaf"
    for _ in range(n):
        node = {"k": node}
    return node


@pytest.mark.parametrize(
    "template, message",
    [
        ("{{brand.name}}", "template must be a JSON object or array"),
        (5, "template must be a JSON object or array"),
        (None, "template must be a JSON object or array"),
        ({1: "x"}, "template object keys must be strings at $"),
        ({"a": float("nan")}, "template holds a non-finite number at $.a"),
        ({"a": {1, 2}}, "template holds a set, not JSON, at $.a"),
        (_deep(MAX_DEPTH + 1), f"template nests deeper than {MAX_DEPTH} levels"),
    ],
)
def test_bad_shapes_are_refused(template, message):
    with pytest.raises(TemplateError) as info:
        validate(template)
    assert str(info.value).startswith(message)
    assert info.value.variable is None


def test_depth_limit_is_inclusive():
    assert validate(_deep(MAX_DEPTH)) is None  # no TemplateError at exactly the limit
    assert render(_deep(MAX_DEPTH), sample_payload("visibility_changed")) == _deep(MAX_DEPTH)


# --- hostile data -------------------------------------------------------------------------

HOSTILE = [
    '"},"admin":true,"x":"',
    "{{brand.id}}",
    "{{ summary }}",
    "{{",
    "}}",
    "{{{{brand.name}}}}",
    '\\"\\u0000',
    "'; DROP TABLE webhooks; --",
    "<script>alert(1)</script>",
    "\u202e\u0000\n\t",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_inserted_verbatim_never_expanded(payload, value):
    payload["event"]["data"]["evil"] = value
    payload["brand"]["name"] = value
    template = {
        "alone": "{{event.data.evil}}",
        "text": "<{{event.data.evil}}|{{brand.name}}>",
        "{{brand.name}}": "key",
        "list": ["{{event.data.evil}}"],
    }
    out = render(template, payload)
    assert out["alone"] == value
    assert out["text"] == f"<{value}|{value}>"
    assert out[value] == "key"
    assert out["list"] == [value]
    body = json.dumps(out)
    assert json.loads(body) == out  # still one well-formed object with the template's own keys
    assert set(json.loads(body)) == {"alone", "text", value, "list"}


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=80), prefix=st.text(alphabet="ab {}", max_size=6))
def test_any_text_value_is_inserted_exactly_once(value, prefix):
    payload = sample_payload("custom.event", {"v": value})
    template = {"t": f"{prefix}|{{{{event.data.v}}}}|"}
    try:
        validate(template)
    except TemplateError:
        return  # the generated prefix itself formed an unknown placeholder
    expected_prefix = render({"p": prefix}, payload)["p"] if prefix else ""
    assert render(template, payload) == {"t": f"{expected_prefix}|{value}|"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=15,
)
template_strings = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [f"{{{{{v}}}}}" for v in VARIABLES if v != "event.data.*"] + ["{{event.data.a.b}}", "x {{summary}} y"]
    ),
)
templates = st.recursive(
    st.none() | st.booleans() | st.integers() | template_strings,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(template_strings, inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(template=templates, data=json_values, summary=json_values)
def test_validate_and_render_never_crash(template, data, summary):
    payload = sample_payload("custom.event", {"a": data}, summary=summary)
    try:
        validate(template)
    except TemplateError:
        pass
    out = render(template, payload)
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # plain JSON, sendable as is


def test_module_exports():
    assert issubclass(templating.TemplateError, ValueError)
    assert TemplateError("m", "v").variable == "v"


def _deep_data(depth: int) -> dict:
    """``data`` nested ``depth`` levels (itself level 1), as deep as emit may accept."""
    value: dict = {"leaf": "\U0001f600 end"}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


# The default and the highest TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH.
@pytest.mark.parametrize("depth", [events.MAX_DATA_DEPTH, events.MAX_DATA_DEPTH_LIMIT])
def test_the_deepest_data_emit_accepts_renders_whole(depth):
    """Issue 19: whatever ``emit`` accepts renders, whole, as a value and as text, even at the
    bottom of the deepest template."""
    data = _deep_data(depth)
    path = ".".join(["k"] * (depth - 1) + ["leaf"])
    template: dict = {"all": "{{event.data}}", "text": "data: {{event.data}}", "leaf": f"{{{{event.data.{path}}}}}"}
    bottom: dict = {"all": "{{event.data}}"}
    nest = bottom
    for _ in range(MAX_DEPTH - 1):
        nest["n"] = {}
        nest = nest["n"]
    template["bottom"] = bottom
    validate(template)
    body = render(template, sample_payload("custom.event", data))
    assert body["all"] == data  # not cut short at some internal depth
    assert json.loads(body["text"][len("data: ") :]) == data
    assert body["leaf"] == "\U0001f600 end"
    assert body["bottom"]["all"] == data
    assert json.loads(json.dumps(body)) == body
