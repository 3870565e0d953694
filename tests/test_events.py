"""The event type table: built-in rows, the EventTypes registry, summaries, sample events, and
how a row's wording reaches the chat formatters."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from flask_trakkr_webhooks import events
from flask_trakkr_webhooks.events import (
    BUILTIN_EVENT_TYPES,
    ChatText,
    ChatView,
    EventType,
    EventTypes,
    build_payload,
    chat_wording,
    sample_data,
    sample_payload,
    summarize,
)
from flask_trakkr_webhooks.providers import content
from flask_trakkr_webhooks.providers.content import describe

ACME = {"id": "3f2b8c1e-5d4a-4e7b-9c6d-1a2b3c4d5e6f", "name": "Acme", "website": "https://acme.example"}
BUILTIN_NAMES = ["visibility_changed", "report_completed", "competitor_added", "citation_gained", "citation_lost"]

BUILTIN_DESCRIPTIONS = {row.name: row.description for row in BUILTIN_EVENT_TYPES}


def keyword_summary(who: str, data: Mapping[str, Any]) -> str:
    return f"{who} now ranks #{data.get('rank')} for {data.get('keyword')!r}"


KEYWORD_DATA = {"keyword": "ai visibility", "rank": 3, "dashboard_url": "https://app.example/k/42"}


# --- the built-in table ---------------------------------------------------------------------


def test_the_table_holds_the_five_product_page_types_in_order():
    assert [row.name for row in BUILTIN_EVENT_TYPES] == BUILTIN_NAMES
    assert BUILTIN_DESCRIPTIONS == {row.name: row.description for row in BUILTIN_EVENT_TYPES}
    assert BUILTIN_DESCRIPTIONS["citation_lost"] == "Brand lost a citation source"


@pytest.mark.parametrize("row", BUILTIN_EVENT_TYPES, ids=lambda row: row.name)
def test_every_builtin_row_has_summary_wording_and_sample_data(row):
    assert row.summary is not None and row.chat is not None and row.data
    assert events.builtin_spec(row.name) is row
    assert sample_data(row.name) == dict(row.data)


def test_builtin_links():
    links = {row.name: row.link for row in BUILTIN_EVENT_TYPES}
    assert links == {
        "visibility_changed": None,
        "report_completed": ("report_url", "View report"),
        "competitor_added": ("competitor_url", "View competitor"),
        "citation_gained": ("source_url", "View source"),
        "citation_lost": ("source_url", "View source"),
    }


def test_rows_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        BUILTIN_EVENT_TYPES[0].description = "x"  # type: ignore[misc]


def test_content_names_no_event_type():
    """The chat wording of every type comes from the table: content.py has no per-type branch."""
    source = inspect.getsource(content)
    assert not [name for name in BUILTIN_NAMES if name in source]


# --- summaries (the README's table) -----------------------------------------------------------


@pytest.mark.parametrize(
    "event_type, data, expected",
    [
        ("visibility_changed", None, "Acme's visibility rose 40.2% (41.0 \u2192 57.5)"),
        (
            "visibility_changed",
            {"previous_score": 57.5, "current_score": 44.0, "change_percent": -23.5, "direction": "down"},
            "Acme's visibility fell 23.5% (57.5 \u2192 44.0)",
        ),
        (
            "visibility_changed",
            {"previous_score": 57.5, "current_score": 57.5},
            "Acme's visibility is unchanged at 57.5",
        ),
        (
            "visibility_changed",
            {"previous_score": 40, "current_score": 50},
            "Acme's visibility rose 25.0% (40.0 \u2192 50.0)",
        ),
        ("visibility_changed", {}, "Acme's visibility changed"),
        ("report_completed", None, "New report for Acme: Weekly AI visibility report"),
        ("report_completed", {}, "A new research report for Acme is ready"),
        ("competitor_added", None, "New competitor for Acme: Globex (globex.example)"),
        ("competitor_added", {"competitor_domain": "initech.example"}, "New competitor for Acme: initech.example"),
        ("citation_gained", None, "Acme gained a citation from news.example on ChatGPT"),
        ("citation_lost", None, "Acme lost a citation from blog.example on Perplexity"),
        ("citation_lost", {"platform": "grok"}, "Acme lost a citation on Grok"),
        ("mention_spiked", {}, "Acme: mention spiked"),
    ],
)
def test_summaries(event_type, data, expected):
    data = sample_data(event_type) if data is None else data
    assert summarize(event_type, ACME, data) == expected


def test_summary_of_a_type_without_one_uses_its_description():
    assert summarize("mention.spiked", ACME, {}, description="Mentions spiked") == "Acme: Mentions spiked"
    row = EventType("mention.spiked", "Mentions spiked")
    assert summarize("mention.spiked", ACME, {}, spec=row) == "Acme: Mentions spiked"
    assert summarize("mention.spiked", {"id": "b1"}, {}, spec=row) == "Brand b1: Mentions spiked"


@pytest.mark.parametrize(
    "data", [[1, 2], None, {"previous_score": 10**400, "current_score": 1}, {"change_percent": math.nan}]
)
def test_summaries_never_raise_on_odd_data(data):
    assert summarize("visibility_changed", ACME, data).startswith("Acme's visibility")


def test_a_failing_host_summary_falls_back_to_the_description():
    def broken(who: str, data: Mapping[str, Any]) -> str:
        raise KeyError("rank")

    row = EventType("keyword.ranked", "A keyword's rank changed", summary=broken)
    assert summarize("keyword.ranked", ACME, {}, spec=row) == "Acme: A keyword's rank changed"


# --- the registry -----------------------------------------------------------------------------


def test_registry_is_a_mapping_of_name_to_description():
    types = EventTypes.builtin()
    assert isinstance(types, Mapping)
    assert "report_completed" in types and "nope" not in types
    assert types.get("citation_gained") == "Brand gained a new citation source"
    assert types.get("nope") is None
    assert types["competitor_added"] == "A new competitor was detected or added"
    assert sorted(types) == sorted(BUILTIN_NAMES)
    assert next(iter(types)) == "visibility_changed"
    assert dict(types) == BUILTIN_DESCRIPTIONS and types == BUILTIN_DESCRIPTIONS
    assert len(types) == 5 and list(types.items())[0][0] == "visibility_changed"
    assert ", ".join(sorted(types)).startswith("citation_gained, citation_lost")
    with pytest.raises(KeyError):
        types["nope"]
    assert "visibility_changed" in repr(types)


def test_builtin_gives_a_fresh_registry_and_copy_is_independent():
    first, second = EventTypes.builtin(), EventTypes.builtin()
    first.register("mention.spiked", "Mentions spiked")
    assert "mention.spiked" in first and "mention.spiked" not in second
    clone = first.copy()
    clone.register("other.thing", "Other")
    assert "other.thing" in clone and "other.thing" not in first
    assert clone.spec("mention.spiked") is first.spec("mention.spiked")
    assert EventTypes() == {} and len(EventTypes()) == 0


def test_registered_types_come_after_the_builtin_ones():
    types = EventTypes.builtin()
    row = types.register("mention.spiked", "Mentions spiked")
    assert list(types)[-1] == "mention.spiked" and types["mention.spiked"] == "Mentions spiked"
    assert types.spec("mention.spiked") == row == EventType("mention.spiked", "Mentions spiked")
    assert types.spec("nope") is None
    assert types.spec("report_completed") == events.builtin_spec("report_completed")


def test_registering_a_builtin_again_replaces_only_what_is_given():
    types = EventTypes.builtin()
    row = types.register("report_completed", "Reports")
    assert types["report_completed"] == "Reports"
    builtin = events.builtin_spec("report_completed")
    assert (row.summary, row.chat, row.link, row.data) == (builtin.summary, builtin.chat, builtin.link, builtin.data)
    assert summarize("report_completed", ACME, sample_data("report_completed"), spec=row).startswith("New report for")
    assert EventTypes.builtin()["report_completed"] == "A new research report has been generated"


@pytest.mark.parametrize("bad", ["Bad Name", "mention.spiked\n", "", "9lives", "x" * 64, None, 5])
def test_register_refuses_invalid_names(bad):
    with pytest.raises(ValueError, match="invalid event type name"):
        EventTypes().register(bad, "x")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"description": ""}, "description must be a non-empty string"),
        ({"description": "  "}, "description must be a non-empty string"),
        ({"description": None}, "description must be a non-empty string"),
        ({"summary": "not a function"}, "summary must be a function"),
        ({"chat": 42}, "chat must be a function"),
        ({"link": ("dashboard_url",)}, "link must be a \\(data key, label\\) pair"),
        ({"link": ("dashboard_url", "")}, "link must be a \\(data key, label\\) pair"),
        ({"sample_data": [1, 2]}, "sample data must be a mapping"),
        ({"sample_data": {"score": math.nan}}, "sample_data.score is nan, which is not valid JSON"),
        ({"sample_data": {"when": object()}}, "sample_data.when is a object, which cannot be sent as JSON"),
        ({"tone": "angry"}, "tone must be one of good, bad, neutral, not 'angry'"),
        ({"title": ""}, "title must be a non-empty string"),
        ({"emoji": 5}, "emoji must be a string"),
        ({"facts": [("Rank",)]}, "facts must be \\(label, data key\\) pairs"),
        ({"chat": chat_wording(), "title": "{event}"}, "give chat or title, not both"),
    ],
)
def test_register_names_the_problem(kwargs, message):
    kwargs = {"description": "Keyword ranked", **kwargs}
    types = EventTypes.builtin()
    with pytest.raises(ValueError, match=f"^event type 'keyword.ranked': {message}"):
        types.register("keyword.ranked", **kwargs)
    assert "keyword.ranked" not in types  # nothing half-registered


def test_sample_data_is_stored_as_plain_json():
    when = datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc)
    row = EventTypes().register("report.scheduled", "A report was scheduled", sample_data={"at": when, "tags": ("a",)})
    assert row.data == {"at": "2025-01-15T09:30:00.000Z", "tags": ["a"]}


# --- a host type flows everywhere -----------------------------------------------------------


def _host_types() -> EventTypes:
    types = EventTypes.builtin()
    types.register(
        "keyword.ranked",
        "A tracked keyword's rank changed",
        summary=keyword_summary,
        sample_data=KEYWORD_DATA,
        title="Keyword {keyword} is #{rank} for {brand}",
        emoji="\U0001f50d",
        tone="good",
        facts=[("Keyword", "keyword"), ("Rank", "rank")],
        link=("dashboard_url", "Open dashboard"),
    )
    return types


def test_a_host_type_has_its_summary_sample_data_and_wording():
    types = _host_types()
    row = types.spec("keyword.ranked")
    assert types["keyword.ranked"] == "A tracked keyword's rank changed"

    assert sample_data("keyword.ranked", row) == KEYWORD_DATA
    assert sample_data("keyword.ranked") == {"example": True, "event_type": "keyword.ranked"}  # not a built-in
    assert summarize("keyword.ranked", ACME, KEYWORD_DATA, spec=row) == "Acme now ranks #3 for 'ai visibility'"

    payload = sample_payload("keyword.ranked", spec=row)
    assert payload["event"]["data"] == KEYWORD_DATA
    assert payload["summary"] == "Acme now ranks #3 for 'ai visibility'"

    msg = describe(payload, spec=row)
    assert msg.title == "\U0001f50d Keyword ai visibility is #3 for Acme"
    assert msg.tone == "good"
    assert [(f.label, f.value) for f in msg.facts] == [
        ("Keyword", "ai visibility"),
        ("Rank", "3"),
        ("Dashboard URL", "https://app.example/k/42"),  # not a declared fact: shown after them
    ]
    assert (msg.link_url, msg.link_label) == ("https://app.example/k/42", "Open dashboard")

    # Without its row, describe cannot know the host's words: the generic wording.
    generic = describe(payload)
    assert generic.title == "\U0001f514 Keyword ranked for Acme" and generic.tone == "neutral"
    assert generic.link_label == "Open dashboard"  # from the key name, by luck of naming


def test_build_payload_uses_the_rows_summary():
    row = _host_types().spec("keyword.ranked")
    payload = build_payload(
        "keyword.ranked",
        event_id="evt_1",
        timestamp=datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc),
        brand=ACME,
        data=KEYWORD_DATA,
        spec=row,
    )
    assert payload["summary"] == "Acme now ranks #3 for 'ai visibility'"


def test_a_host_chat_function_gets_display_ready_values():
    seen: list[ChatView] = []

    def wording(view: ChatView) -> ChatText:
        seen.append(view)
        return ChatText(f"{view.event_label}: {view.get('score')}", "bad", (("Host", view.host(view.get("url"))),))

    types = EventTypes()
    row = types.register("score.dropped", "Score dropped", chat=wording)
    msg = describe(sample_payload("score.dropped", {"score": 41.0, "url": "https://x.example/p"}, spec=row), spec=row)
    assert (msg.title, msg.tone) == ("Score dropped: 41", "bad")
    assert [(f.label, f.value) for f in msg.facts][0] == ("Host", "x.example")
    assert seen[0].brand == "Acme" and seen[0].event_type == "score.dropped"


@pytest.mark.parametrize("result", ["a string", None, KeyError("boom")])
def test_a_failing_host_chat_function_gets_the_generic_wording(result):
    def wording(view: ChatView) -> Any:
        if isinstance(result, Exception):
            raise result
        return result

    row = EventType("score.dropped", "Score dropped", chat=wording)
    msg = describe(sample_payload("score.dropped", {"score": 1}), spec=row)
    assert msg.title == "\U0001f514 Score dropped for Acme"
    assert [(f.label, f.value) for f in msg.facts] == [("Score", "1")]


def test_an_unknown_host_tone_is_shown_neutral():
    row = EventType("x.y", "X", chat=lambda view: ChatText("T", "purple"))
    assert describe(sample_payload("x.y", {}), spec=row).tone == "neutral"


# --- adding a type is one table entry ---------------------------------------------------------


def test_an_event_type_added_is_one_table_entry():
    """Everything a type needs (registry, summary, sample data, payload, chat wording, link) comes
    from one EventType row: nothing else is edited."""
    row = EventType(
        "keyword.ranked",
        "A tracked keyword's rank changed",
        summary=keyword_summary,
        chat=chat_wording(title="Keyword ranked: {keyword}", emoji="\U0001f50d", facts=[("Rank", "rank")]),
        link=("dashboard_url", "Open dashboard"),
        data=KEYWORD_DATA,
    )
    types = EventTypes([*BUILTIN_EVENT_TYPES, row])

    assert list(types)[-1] == "keyword.ranked" and types["keyword.ranked"] == row.description
    spec = types.spec("keyword.ranked")
    payload = sample_payload("keyword.ranked", spec=spec)
    assert payload["summary"] == "Acme now ranks #3 for 'ai visibility'"
    msg = describe(payload, spec=spec)
    assert msg.title == "\U0001f50d Keyword ranked: ai visibility"
    assert [(f.label, f.value) for f in msg.facts] == [
        ("Rank", "3"),
        ("Keyword", "ai visibility"),
        ("Dashboard URL", "https://app.example/k/42"),
    ]
    assert (msg.link_url, msg.link_label) == ("https://app.example/k/42", "Open dashboard")


# --- sample payloads --------------------------------------------------------------------------


def test_sample_payload_is_build_payload_with_fixed_values():
    payload = sample_payload("citation_gained", test=False)
    expected = build_payload(
        "citation_gained",
        event_id="evt_0123456789abcdef01234567",
        timestamp=datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc),
        brand=ACME,
        data=sample_data("citation_gained"),
    )
    assert payload == expected
    assert payload["event"]["timestamp"] == "2025-01-15T09:30:00.000Z"
    assert payload["summary"] == "Acme gained a citation from news.example on ChatGPT"
    assert "test" not in payload["meta"] and sample_payload("citation_gained")["meta"]["test"] is True
    assert sample_payload() == sample_payload("visibility_changed")


def test_sample_payload_for_the_test_route():
    """What ``POST /webhooks/<id>/test`` sends: the webhook's brand with the sample name."""
    types = _host_types()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    payload = sample_payload(
        "keyword.ranked",
        spec=types.spec("keyword.ranked"),
        brand={"id": "0b3e2a4c-1d5f-4a6b-8c7d-9e0f1a2b3c4d", **events.SAMPLE_BRAND},
        event_id="evt_x",
        timestamp=now,
    )
    assert payload["brand"] == {
        "id": "0b3e2a4c-1d5f-4a6b-8c7d-9e0f1a2b3c4d",
        "name": "Acme (test)",
        "website": "https://acme.example",
    }
    assert payload["event"]["id"] == payload["meta"]["event_id"] == "evt_x"
    assert payload["meta"]["test"] is True
    assert payload["summary"] == "Acme (test) now ranks #3 for 'ai visibility'"


def test_sample_payload_places_test_data_as_given():
    odd = {"v": math.inf, "nested": {"x": [1]}}
    payload = sample_payload("custom.event", odd, summary={"not": "a string"})
    assert payload["event"]["data"]["nested"] == {"x": [1]} and math.isinf(payload["event"]["data"]["v"])
    assert payload["summary"] == {"not": "a string"}
    odd["nested"]["x"].append(2)
    assert payload["event"]["data"]["nested"] == {"x": [1]}  # a copy
    assert sample_payload("custom.event")["event"]["data"] == {"example": True, "event_type": "custom.event"}
    assert sample_payload("custom.event")["summary"] == "Acme: custom.event"


def test_sample_data_is_a_fresh_copy():
    sample_data("report_completed")["report_name"] = "changed"
    assert sample_data("report_completed")["report_name"] == "Weekly AI visibility report"
    assert events.builtin_spec("report_completed").data["report_name"] == "Weekly AI visibility report"


# --- depth, size and odd values: checked, never a RecursionError (issue 19, item 7) --------------


def _nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep (itself level 1)."""
    value: Any = {"k": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_data_at_the_depth_limit_is_accepted_and_one_more_level_is_refused():
    assert events.to_json_value(_nested(events.MAX_DATA_DEPTH)) == _nested(events.MAX_DATA_DEPTH)
    with pytest.raises(ValueError) as info:
        events.to_json_value(_nested(events.MAX_DATA_DEPTH + 1))
    message = str(info.value)
    assert "nests deeper than 32 levels" in message and "TRAKKR_WEBHOOKS_MAX_PAYLOAD_DEPTH" in message
    assert message.startswith("data.k.k.k")  # names where


@pytest.mark.parametrize("depth", [900, 1000, 5000])
def test_very_deep_data_is_a_value_error_not_a_recursion_error(depth):
    with pytest.raises(ValueError, match="deeper than"):
        events.to_json_value(_nested(depth))


def test_the_depth_is_configurable_up_to_its_limit():
    deep = _nested(events.MAX_DATA_DEPTH_LIMIT)
    assert events.to_json_value(deep, max_depth=events.MAX_DATA_DEPTH_LIMIT) == deep
    with pytest.raises(ValueError, match="deeper than 5 levels"):
        events.to_json_value(_nested(6), max_depth=5)


def test_cyclic_data_is_a_value_error():
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    looped: list[Any] = []
    looped.append(looped)
    for value in (cycle, {"a": looped}):
        with pytest.raises(ValueError, match="deeper than"):
            events.to_json_value(value)


def test_values_json_cannot_carry_are_refused_naming_the_path():
    with pytest.raises(ValueError, match=r"data\.big is an integer of more than 2000 bits"):
        events.to_json_value({"big": 10**700})
    assert events.to_json_value({"ok": 10**600}) == {"ok": 10**600}
    with pytest.raises(ValueError, match=r"data\.s holds a lone surrogate"):
        events.to_json_value({"s": "a\ud800b"})
    with pytest.raises(ValueError, match="lone surrogate"):
        events.to_json_value({"\udc00": 1})
    with pytest.raises(ValueError, match="brand"):
        events.normalise_brand({"id": "b1", "name": "x\ud800"})


def test_a_long_path_is_shortened_in_the_message():
    key = "k" * 500
    with pytest.raises(ValueError) as info:
        events.to_json_value({key: {key: math.nan}})
    assert len(str(info.value)) < 400
