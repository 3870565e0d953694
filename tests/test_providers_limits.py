"""Every Slack, Discord and Teams body stays within the platform's limits, whatever the data.

The validators below encode the published limits (Slack Block Kit reference, Discord embed
limits, the Adaptive Card schema and Teams' 28 KB message limit) independently of the
formatters' own constants, so a formatter bug cannot hide behind a shared number.
"""

from __future__ import annotations

import json
import math
import pathlib
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft6Validator

from flask_trakkr_webhooks import events, providers, templating
from flask_trakkr_webhooks.providers.samples import SAMPLE_DATA, SAMPLE_DROP, sample_payload
from flask_trakkr_webhooks.providers.teams import measured_size

SCHEMA = json.loads((pathlib.Path(__file__).parent / "schemas" / "adaptive-card-1.5.json").read_text("utf-8"))
CARD_VALIDATOR = Draft6Validator(SCHEMA)


def units(text: str) -> int:
    """UTF-16 code units (what a JavaScript ``length`` reports; >= code points)."""
    return len(text.encode("utf-16-le")) // 2


def _text_object(obj, where, limit, problems):
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        problems.append(f"{where}: not a text object")
        return 0
    text = obj.get("text")
    if not isinstance(text, str) or not 1 <= units(text) <= limit:
        problems.append(f"{where}: text length {units(text) if isinstance(text, str) else text!r} not in 1..{limit}")
        return 0
    return units(text)


def slack_problems(body) -> list[str]:
    """Violations of Slack's documented Block Kit limits (empty list: acceptable)."""
    problems: list[str] = []
    if not isinstance(body, dict):
        return ["body is not an object"]
    text = body.get("text")
    if not isinstance(text, str) or not 1 <= units(text) <= 40000:
        problems.append("top-level text missing, empty or over 40 000 characters")
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return problems + ["blocks must be a list of 1..50"]
    total = 0
    for i, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{i}]"
        if kind == "header":
            if block["text"].get("type") != "plain_text":
                problems.append(f"{where}: header text must be plain_text")
            total += _text_object(block["text"], where, 150, problems)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                problems.append(f"{where}: section needs text or fields")
            if "text" in block:
                total += _text_object(block["text"], where + ".text", 3000, problems)
            if "fields" in block:
                fields = block["fields"]
                if not 1 <= len(fields) <= 10:
                    problems.append(f"{where}: {len(fields)} fields, at most 10")
                for j, field in enumerate(fields):
                    total += _text_object(field, f"{where}.fields[{j}]", 2000, problems)
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                problems.append(f"{where}: {len(elements)} context elements, 1..10")
            for j, element in enumerate(elements):
                total += _text_object(element, f"{where}.elements[{j}]", 3000, problems)
        else:
            problems.append(f"{where}: unexpected block type {kind!r}")
    # Slack answers msg_blocks_too_long near 13 000 characters of block text, below the
    # per-field limits (a reported, undocumented limit); the formatter keeps under 12 000.
    if total > 12000:
        problems.append(f"blocks hold {total} characters, over 12 000")
    return problems


def discord_problems(body) -> list[str]:
    """Violations of Discord's documented embed limits (empty list: acceptable)."""
    problems: list[str] = []
    embeds = body.get("embeds") if isinstance(body, dict) else None
    if not isinstance(embeds, list) or not 1 <= len(embeds) <= 10:
        return ["embeds must be a list of 1..10"]
    if body.get("allowed_mentions") != {"parse": []}:
        problems.append("allowed_mentions must disable mention parsing")
    total = 0
    for embed in embeds:
        for key, limit in (("title", 256), ("description", 4096)):
            if key in embed:
                if not 1 <= units(embed[key]) <= limit:
                    problems.append(f"{key} length {units(embed[key])} not in 1..{limit}")
                total += units(embed[key])
        fields = embed.get("fields", [])
        if len(fields) > 25:
            problems.append(f"{len(fields)} fields, at most 25")
        for field in fields:
            if not 1 <= units(field["name"]) <= 256:
                problems.append(f"field name length {units(field['name'])}")
            if not 1 <= units(field["value"]) <= 1024:
                problems.append(f"field value length {units(field['value'])}")
            if not isinstance(field.get("inline", False), bool):
                problems.append("inline must be a boolean")
            total += units(field["name"]) + units(field["value"])
        if "footer" in embed:
            if not 1 <= units(embed["footer"]["text"]) <= 2048:
                problems.append("footer text length")
            total += units(embed["footer"]["text"])
        if "author" in embed:
            total += units(embed["author"]["name"])
        color = embed.get("color")
        if color is not None and not (isinstance(color, int) and 0 <= color <= 0xFFFFFF):
            problems.append(f"color {color!r} is not a 24-bit integer")
        if "timestamp" in embed:
            try:
                datetime.fromisoformat(embed["timestamp"].replace("Z", "+00:00"))
            except ValueError:
                problems.append(f"timestamp {embed['timestamp']!r} is not ISO 8601")
        if "url" in embed and not embed["url"].startswith(("http://", "https://")):
            problems.append("url is not http(s)")
    if total > 6000:
        problems.append(f"embeds hold {total} characters, over 6000")
    return problems


def teams_problems(body) -> list[str]:
    """Violations of the Teams message shape, the Adaptive Card schema, or the 28 KB limit."""
    problems: list[str] = []
    if not isinstance(body, dict) or body.get("type") != "message":
        return ["not a Teams message"]
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["exactly one attachment expected"]
    att = attachments[0]
    if att.get("contentType") != "application/vnd.microsoft.card.adaptive" or "contentUrl" not in att:
        problems.append("attachment is not an adaptive card")
    card = att.get("content")
    problems += [f"schema: {e.message} at {list(e.absolute_path)}" for e in CARD_VALIDATOR.iter_errors(card)]
    if card.get("type") != "AdaptiveCard":
        problems.append("content is not an AdaptiveCard")
    version = tuple(int(x) for x in str(card.get("version", "0")).split("."))
    if version < (1, 4):
        problems.append(f"card version {card.get('version')} below 1.4")
    kinds = [b.get("type") for b in card.get("body", [])]
    if not kinds or kinds[0] != "TextBlock":
        problems.append("card must open with a title TextBlock")
    for action in card.get("actions", []):
        if not action.get("url", "").startswith(("http://", "https://")):
            problems.append("action url is not http(s)")
    for serialised in (
        json.dumps(body),
        json.dumps(body, ensure_ascii=False),
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
    ):
        if len(serialised.encode("utf-8")) > 28 * 1024:
            problems.append(f"message is {len(serialised.encode('utf-8'))} bytes, over 28 KB")
    return problems


CHECKS = {"slack": slack_problems, "discord": discord_problems, "teams_webhook": teams_problems}

SCENARIOS = [(t, SAMPLE_DATA[t]) for t in SAMPLE_DATA] + [
    ("visibility_changed", SAMPLE_DROP),
    ("custom.thing", {"a": 1}),
]


@pytest.mark.parametrize("provider", sorted(CHECKS))
@pytest.mark.parametrize("event_type, data", SCENARIOS)
def test_sample_events_are_valid(provider, event_type, data):
    body = providers.format_body(provider, sample_payload(event_type, data))
    assert CHECKS[provider](body) == []


def test_validators_catch_violations():
    slack_body = providers.format_body("slack", sample_payload())
    slack_body["blocks"][0]["text"]["text"] = "x" * 151
    assert slack_problems(slack_body) == ["blocks[0]: text length 151 not in 1..150"]
    discord_body = providers.format_body("discord", sample_payload())
    discord_body["embeds"][0]["fields"] = [{"name": "n", "value": "v"}] * 26
    assert discord_problems(discord_body) == ["26 fields, at most 25"]
    teams_body = providers.format_body("teams_webhook", sample_payload())
    teams_body["attachments"][0]["content"]["body"][0]["size"] = "huge"
    assert any(p.startswith("schema:") for p in teams_problems(teams_body))


# --- oversized inputs ---------------------------------------------------------------------

#: Characters that stress each way of counting: plain, astral (2 UTF-16 units, 12 escaped
#: bytes), Slack-escaped (& -> &amp;), JSON-escaped control characters and quotes.
FILLERS = {"ascii": "x", "emoji": "\U0001f600", "slack-escapes": "&<>", "json-escapes": '\x00"\\', "cjk": "\u6f22"}


def oversized_payload(event_type: str, filler: str) -> dict:
    big = (filler * (10000 // len(filler) + 1))[:10000]
    data = {f"{key}": big for key in SAMPLE_DATA.get(event_type, {})}
    data.update({f"field_{i:03d}_{big[:50]}": big for i in range(100)})
    data.update({"change_percent": -1e308, "previous_score": 10**5000})
    payload = sample_payload(event_type, data, summary=big)
    payload["brand"]["name"] = big
    payload["event"]["type"] = event_type if event_type in SAMPLE_DATA else big
    return payload


@pytest.mark.parametrize("filler", sorted(FILLERS))
@pytest.mark.parametrize("event_type", [*SAMPLE_DATA, "custom"])
@pytest.mark.parametrize("provider", sorted(CHECKS))
def test_oversized_inputs_stay_within_limits(provider, event_type, filler):
    payload = oversized_payload(event_type, FILLERS[filler])
    body = providers.format_body(provider, payload)
    assert CHECKS[provider](body) == []


@pytest.mark.parametrize("provider", sorted(CHECKS))
def test_oversized_output_is_cut_with_an_ellipsis(provider):
    body = providers.format_body(provider, oversized_payload("citation_lost", "x"))
    text = json.dumps(body, ensure_ascii=False)
    assert "x\u2026" in text
    assert "More" in text  # 100 extra fields are counted, not silently dropped


def test_largest_teams_card_is_well_under_28_kb():
    sizes = [
        measured_size(providers.format_body("teams_webhook", oversized_payload(t, f)))
        for t in [*SAMPLE_DATA, "custom"]
        for f in FILLERS.values()
    ]
    assert max(sizes) <= 20000
    assert min(sizes) > 1000  # the budget is used, not thrown away


def test_slack_keeps_at_most_ten_fields_and_counts_the_rest():
    body = providers.format_body("slack", oversized_payload("custom", "x"))
    fields = [b for b in body["blocks"] if "fields" in b][0]["fields"]
    assert len(fields) == 10
    assert fields[-1]["text"] == "*More*\n+93 more fields"


# --- property tests -----------------------------------------------------------------------

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=60)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
known_keys = sorted({k for d in SAMPLE_DATA.values() for k in d} | {"detection_method", "competitor_url"})
event_data = st.one_of(
    st.fixed_dictionaries({}, optional=dict.fromkeys(known_keys, json_values)),
    st.dictionaries(st.text(max_size=30), json_values, max_size=40),
    json_values,
)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(max_size=30),
    json_values,
)
payloads = st.one_of(
    st.fixed_dictionaries(
        {
            "event": st.fixed_dictionaries(
                {
                    "id": st.text(max_size=30),
                    "type": st.sampled_from([*SAMPLE_DATA, "custom.event"]) | st.text(max_size=80),
                    "timestamp": timestamps,
                    "data": event_data,
                }
            ),
            "brand": st.fixed_dictionaries(
                {
                    "id": st.text(max_size=40),
                    "name": st.text(max_size=400) | json_values,
                    "website": st.text(max_size=100),
                }
            )
            | json_values,
            "workflow": st.none() | json_values,
            "summary": st.text(max_size=5000) | json_values,
            "meta": json_values,
        }
    ),
    json_values,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, provider=st.sampled_from(sorted(CHECKS)))
def test_formatters_never_raise_and_stay_within_limits(payload, provider):
    body = providers.format_body(provider, payload)
    json.dumps(body, allow_nan=False)  # strictly valid JSON, whatever the data held
    assert CHECKS[provider](body) == []


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=3000), n_fields=st.integers(0, 60), provider=st.sampled_from(sorted(CHECKS)))
def test_long_text_everywhere_stays_within_limits(text, n_fields, provider):
    big = (text * math.ceil(12000 / len(text)))[:12000]
    payload = sample_payload("custom.event", {f"k{i}": big for i in range(n_fields)}, summary=big)
    payload["brand"]["name"] = big
    assert CHECKS[provider](providers.format_body(provider, payload)) == []


# --- caps in UTF-16 units, and whatever emit accepts formats everywhere (issue 19) -------------


@pytest.mark.parametrize("label_fill", ["\U0001f600", "x"])
def test_slack_fields_stay_within_the_documented_500_units_with_emoji(label_fill):
    """The field budget (README: fields capped at 500) is counted in UTF-16 units, label included."""
    data = {label_fill * 300: "\U0001f600" * 600, "plain": "\U0001f600" * 600}
    body = providers.format_body("slack", sample_payload("custom.event", data))
    fields = [f["text"] for b in body["blocks"] for f in b.get("fields", [])]
    assert fields and max(units(text) for text in fields) <= 500
    assert max(units(text) for text in fields) >= 490  # the budget is used


def nested(depth: int, leaf: object = "leaf") -> dict:
    """An object ``depth`` levels deep (itself level 1), alternating objects and arrays."""
    value: object = leaf
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return {"deep": value}


def _accepted(data: dict, max_depth: int) -> dict:
    """The payload emit builds for ``data`` (workflow too), with ``max_depth`` as the depth limit."""
    return events.build_payload(
        "competitor_added",
        event_id=events.EXAMPLE_EVENT_ID,
        timestamp=events.EXAMPLE_TIMESTAMP,
        brand=events.EXAMPLE_BRAND,
        data=data,
        workflow=data,
        max_depth=max_depth,
    )


TEMPLATE = {"all": "{{event.data}}", "text": "data {{event.data}} workflow {{workflow.name}}", "s": "{{summary}}"}
LARGEST_BYTES = 256 * 1024  # TRAKKR_WEBHOOKS_MAX_PAYLOAD_BYTES' default


def _largest_data() -> dict:
    """Data whose payload is just under the default size limit: long text, emoji, escapes, many fields."""
    data: dict = {f"field_{i:03d}": '\U0001f600&<>"' * 40 for i in range(200)}
    data["competitor_name"] = "x" * 20000
    return data


def _extreme_payloads() -> dict[str, dict]:
    deepest_default = _accepted(nested(events.MAX_DATA_DEPTH), events.MAX_DATA_DEPTH)
    deepest_allowed = _accepted(nested(events.MAX_DATA_DEPTH_LIMIT, 10**600), events.MAX_DATA_DEPTH_LIMIT)
    largest = _accepted(_largest_data(), events.MAX_DATA_DEPTH)
    size = len(json.dumps(largest, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    assert LARGEST_BYTES * 0.8 < size <= LARGEST_BYTES
    return {"deepest_default": deepest_default, "deepest_allowed": deepest_allowed, "largest": largest}


@pytest.mark.parametrize("which", ["deepest_default", "deepest_allowed", "largest"])
@pytest.mark.parametrize("provider", providers.PROVIDERS)
def test_deepest_and_largest_accepted_payloads_format_for_every_provider(provider, which):
    payload = _extreme_payloads()[which]
    body = providers.format_body(provider, payload)
    json.dumps(body, allow_nan=False)
    json.dumps(body, allow_nan=False, ensure_ascii=True)
    if provider in CHECKS:
        assert CHECKS[provider](body) == []
    else:
        assert body == payload


@pytest.mark.parametrize("which", ["deepest_default", "deepest_allowed", "largest"])
def test_deepest_and_largest_accepted_payloads_render_through_a_template(which):
    payload = _extreme_payloads()[which]
    templating.validate(TEMPLATE)
    body = templating.render(TEMPLATE, payload)
    assert body["all"] == payload["event"]["data"]  # the whole object, not cut short
    assert json.loads(json.dumps(body, allow_nan=False)) == body


def test_one_level_past_the_limit_is_refused_and_a_thousand_is_a_value_error():
    with pytest.raises(ValueError, match="deeper than 32 levels.*TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH"):
        _accepted(nested(events.MAX_DATA_DEPTH + 1), events.MAX_DATA_DEPTH)
    with pytest.raises(ValueError, match="deeper than"):
        _accepted(nested(1000), events.MAX_DATA_DEPTH)  # was a RecursionError
