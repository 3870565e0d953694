"""Provider formatters: registry, per-event content, links, escaping, robustness."""

from __future__ import annotations

import copy
import json

import pytest

from flask_trakkr_webhooks import providers
from flask_trakkr_webhooks.providers import discord, slack, teams
from flask_trakkr_webhooks.providers.content import describe, safe_url
from flask_trakkr_webhooks.providers.samples import SAMPLE_DATA, SAMPLE_DROP, sample_payload
from flask_trakkr_webhooks.providers.text import format_number, to_text, truncate, ulen


def slack_texts(body: dict) -> list[str]:
    """Every text string in a Slack body, top-level ``text`` first."""
    out = [body["text"]]
    for block in body["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", [])]
    return out


def slack_fields(body: dict) -> list[str]:
    return [f["text"] for b in body["blocks"] for f in b.get("fields", [])]


def teams_card(body: dict) -> dict:
    return body["attachments"][0]["content"]


def teams_facts(body: dict) -> dict[str, str]:
    facts = [b for b in teams_card(body)["body"] if b["type"] == "FactSet"]
    return {f["title"]: f["value"] for f in facts[0]["facts"]} if facts else {}


def discord_fields(body: dict) -> dict[str, str]:
    return {f["name"]: f["value"] for f in body["embeds"][0].get("fields", [])}


# --- registry ---------------------------------------------------------------------------


def test_every_product_page_provider_is_registered():
    assert set(providers.PROVIDERS) <= set(providers.registered())
    assert providers.PROVIDERS == ("webhook", "zapier", "make", "discord", "slack", "teams_webhook")


@pytest.mark.parametrize("name", ["webhook", "zapier", "make"])
def test_generic_providers_get_the_payload_unchanged(name):
    payload = sample_payload("citation_gained", test=False)
    body = providers.format_body(name, payload)
    assert body == payload
    body["event"]["data"]["source_url"] = "changed"  # a copy: the stored payload is untouched
    assert payload["event"]["data"]["source_url"] == SAMPLE_DATA["citation_gained"]["source_url"]


def test_the_generic_copy_is_deep_through_lists_and_other_values():
    class Box:  # not JSON: copied the general way
        def __init__(self) -> None:
            self.items = [1]

    inner = {"k": [1, {"x": 2}]}
    payload = {"event": {"data": {"list": [inner, "s", 1.5, True, None], "box": Box()}}}
    body = providers.format_generic(payload)
    assert body["event"]["data"]["list"] == payload["event"]["data"]["list"]
    body["event"]["data"]["list"][0]["k"][1]["x"] = 3
    body["event"]["data"]["box"].items.append(2)
    assert inner == {"k": [1, {"x": 2}]} and payload["event"]["data"]["box"].items == [1]


def test_unknown_provider_gets_generic_body():
    payload = sample_payload()
    assert providers.get_formatter("no-such-provider") is providers.format_generic
    assert providers.format_body("no-such-provider", payload) == payload


def test_register_overrides_and_unregister_restores():
    def custom(payload):
        return {"custom": payload["event"]["type"]}

    try:
        providers.register("slack", custom)
        assert providers.format_body("slack", sample_payload()) == {"custom": "visibility_changed"}
        providers.register("pagerduty", custom)
        assert "pagerduty" in providers.registered()
        assert providers.format_body("pagerduty", sample_payload("citation_lost")) == {"custom": "citation_lost"}
    finally:
        providers.unregister("slack")
        providers.unregister("pagerduty")
    assert providers.get_formatter("slack") is providers.format_slack
    assert "pagerduty" not in providers.registered()


@pytest.mark.parametrize(
    "name, func, exc, text",
    [
        ("", lambda p: p, ValueError, "non-empty"),
        ("   ", lambda p: p, ValueError, "non-empty"),
        (None, lambda p: p, ValueError, "non-empty"),
        ("x", "not callable", TypeError, "must be callable"),
    ],
)
def test_register_refuses_bad_arguments(name, func, exc, text):
    with pytest.raises(exc, match=text):
        providers.register(name, func)


def test_detect_provider_is_re_exported():
    from flask_trakkr_webhooks.providers.detect import detect_provider

    for url in ("https://hooks.slack.com/services/T/B/X", "https://example.com/hook"):
        assert providers.detect_provider(url) == detect_provider(url)


# --- per-event content --------------------------------------------------------------------


def test_visibility_rise_and_drop_read_differently():
    up = sample_payload("visibility_changed", test=False)
    down = sample_payload("visibility_changed", SAMPLE_DROP, summary="Score fell.", test=False)
    s_up, s_down = slack.format_slack(up), slack.format_slack(down)
    assert s_up["blocks"][0]["text"]["text"] == "\U0001f4c8 Visibility up for Acme"
    assert s_down["blocks"][0]["text"]["text"] == "\U0001f4c9 Visibility down for Acme"
    assert "*Change*\n\u25b2 +40.2%" in slack_fields(s_up)
    assert "*Change*\n\u25bc \u221223.5%" in slack_fields(s_down)
    d_up, d_down = discord.format_discord(up), discord.format_discord(down)
    assert discord_fields(d_up)["Direction"] == "Up" and discord_fields(d_down)["Direction"] == "Down"
    assert d_up["embeds"][0]["color"] == d_down["embeds"][0]["color"] == discord.ACCENT_COLOR == 0x22C55E
    t_up, t_down = teams.format_teams(up), teams.format_teams(down)
    assert teams_card(t_up)["body"][0]["color"] == "good"
    assert teams_card(t_down)["body"][0]["color"] == "attention"


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"change_percent": -3}, "down"),
        ({"change_percent": 7.5}, "up"),
        ({"previous_score": 50, "current_score": 40}, "down"),
        ({"previous_score": 40, "current_score": 50}, "up"),
        ({"direction": "DOWN", "change_percent": 9}, "down"),  # explicit direction wins
        ({"direction": "sideways"}, ""),
        ({}, ""),
    ],
)
def test_visibility_direction_is_derived_when_missing(data, expected):
    msg = describe(sample_payload("visibility_changed", data))
    word = {"up": "Visibility up", "down": "Visibility down", "": "Visibility changed"}[expected]
    assert word in msg.title
    assert msg.tone == {"up": "good", "down": "bad", "": "neutral"}[expected]


def test_visibility_scores_render_without_float_noise():
    facts = teams_facts(teams.format_teams(sample_payload("visibility_changed")))
    assert facts["Previous score"] == "41"
    assert facts["Current score"] == "57.5"
    assert facts["Change"] == "\u25b2 +40.2%"


def test_report_completed_links_the_report_everywhere():
    payload = sample_payload("report_completed")
    url = SAMPLE_DATA["report_completed"]["report_url"]
    s = slack.format_slack(payload)
    assert s["blocks"][-1]["elements"][-1]["text"] == f"<{url}|View report>"
    assert "*Report*\nWeekly AI visibility report" in slack_fields(s)
    d = discord.format_discord(payload)["embeds"][0]
    assert d["url"] == url and d["title"] == "\U0001f4ca Report ready: Weekly AI visibility report"
    assert discord_fields(discord.format_discord(payload))["Report ID"] == "rpt_7f3a9c"
    card = teams_card(teams.format_teams(payload))
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "View report", "url": url}]


def test_competitor_added_shows_name_domain_and_how_detected():
    facts = teams_facts(teams.format_teams(sample_payload("competitor_added")))
    assert facts == {"Competitor": "Globex", "Domain": "globex.example", "Detected by": "ai_answers"}
    alt = sample_payload("competitor_added", {"competitor_domain": "initech.example", "detection_method": "manual"})
    assert teams_facts(teams.format_teams(alt)) == {"Domain": "initech.example", "Detected by": "manual"}
    assert describe(alt).title.endswith(": initech.example")


@pytest.mark.parametrize(
    "event_type, word, tone",
    [
        ("citation_gained", "New citation", "good"),
        ("citation_lost", "Citation lost", "bad"),
    ],
)
def test_citations_show_source_platform_prompt(event_type, word, tone):
    payload = sample_payload(event_type)
    msg = describe(payload)
    assert word in msg.title and msg.tone == tone
    facts = discord_fields(discord.format_discord(payload))
    data = SAMPLE_DATA[event_type]
    assert facts["Source"] == data["source_domain"]
    assert facts["Platform"] == data["platform"]
    assert facts["Prompt"] == data["prompt"]
    assert discord.format_discord(payload)["embeds"][0]["url"] == data["source_url"]


def test_citation_domain_falls_back_to_url_host():
    msg = describe(sample_payload("citation_gained", {"source_url": "https://docs.example/page"}))
    assert msg.title.endswith(": docs.example")


def test_custom_event_uses_top_level_scalar_fields():
    payload = sample_payload(
        "keyword.ranked",
        {
            "keyword": "ai tracking",
            "rank": 3,
            "delta": -1.0,
            "is_new": True,
            "nested": {"ignored": 1},
            "items": [1, 2],
            "nothing": None,
            "dashboard_url": "https://app.example/d",
        },
    )
    msg = describe(payload)
    assert msg.title == "\U0001f514 Keyword ranked for Acme"
    assert [(f.label, f.value) for f in msg.facts] == [
        ("Keyword", "ai tracking"),
        ("Rank", "3"),
        ("Delta", "-1"),
        ("Is new", "Yes"),
        ("Dashboard URL", "https://app.example/d"),
    ]
    assert (msg.link_url, msg.link_label) == ("https://app.example/d", "Open dashboard")


def test_known_event_keeps_extra_scalar_fields_after_its_own():
    data = dict(SAMPLE_DATA["visibility_changed"], platform="gemini")
    labels = list(teams_facts(teams.format_teams(sample_payload("visibility_changed", data))))
    assert labels == ["Previous score", "Current score", "Change", "Direction", "Platform"]


def test_missing_summary_falls_back_to_title_without_duplicating_it():
    payload = sample_payload("report_completed", summary="")
    s = slack.format_slack(payload)
    assert [b["type"] for b in s["blocks"]] == ["header", "section", "context"]
    assert "fields" in s["blocks"][1]
    assert s["text"] == "\U0001f4ca Report ready: Weekly AI visibility report"
    assert "description" not in discord.format_discord(payload)["embeds"][0]


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "text",
        5,
        {},
        {"event": None, "brand": None, "summary": None},
        {"event": {"type": 7, "data": [1, 2], "timestamp": 12}, "brand": "Acme", "summary": {"a": 1}},
        {"event": {"type": "visibility_changed", "data": {"previous_score": "n/a", "change_percent": "12"}}},
        {"event": {"type": "report_completed", "data": {"report_url": "javascript:alert(1)", "report_name": ["x"]}}},
    ],
)
@pytest.mark.parametrize("provider", ["slack", "discord", "teams_webhook"])
def test_malformed_payloads_still_render(provider, payload):
    body = providers.format_body(provider, payload)
    json.dumps(body)
    assert body


def test_string_figures_are_shown_as_given():
    payload = sample_payload("visibility_changed", {"previous_score": "n/a", "change_percent": "12"})
    facts = teams_facts(teams.format_teams(payload))
    assert facts["Previous score"] == "n/a" and facts["Change"] == "12%"


def test_unsafe_links_are_not_linked():
    for url in (
        "javascript:alert(1)",
        "https://a.example/x y",
        "https://a.example/<x>",
        "ftp://a.example/",
        "https://",
        "https://a.example:99999/",
        "https://a.example/|x",
        "x" * 50,
    ):
        assert safe_url(url) is None, url
        payload = sample_payload("report_completed", {"report_url": url, "report_name": "R"})
        assert "url" not in discord.format_discord(payload)["embeds"][0]
        assert "actions" not in teams_card(teams.format_teams(payload))
    assert safe_url("https://a.example/r?x=1&y=2") == "https://a.example/r?x=1&y=2"


def test_slack_escapes_data_so_it_cannot_mention_or_link():
    payload = sample_payload(
        "keyword.ranked", {"note": "<!channel> & <https://evil.example|click>"}, summary="<@U123> *hi*"
    )
    body = slack.format_slack(payload)
    assert "*Note*\n&lt;!channel&gt; &amp; &lt;https:\u200b//evil.example|click&gt;" in slack_fields(body)
    assert body["blocks"][1]["text"]["text"] == "&lt;@U123&gt; *hi*"
    for text in slack_texts(body):
        for i, ch in enumerate(text):
            if ch == "<":  # only our own date token may open a control sequence
                assert text.startswith("<!date^", i), text


def test_discord_never_parses_mentions():
    body = discord.format_discord(sample_payload(summary="@everyone look"))
    assert body["allowed_mentions"] == {"parse": []}
    assert body["embeds"][0]["description"] == "@\u200beveryone look"  # not even shown as a mention


def test_timestamps_render_per_platform_and_bad_ones_are_dropped():
    payload = sample_payload()
    assert discord.format_discord(payload)["embeds"][0]["timestamp"] == "2025-01-15T09:30:00Z"
    context = [e["text"] for e in slack.format_slack(payload)["blocks"][-1]["elements"]]
    assert "<!date^1736933400^{date_short_pretty} at {time}|2025-01-15 09:30 UTC>" in context
    assert (
        teams_card(teams.format_teams(payload))["body"][-1]["text"]
        == "Acme \u00b7 visibility_changed \u00b7 2025-01-15 09:30 UTC"
    )
    payload["event"]["timestamp"] = "yesterday"
    assert "timestamp" not in discord.format_discord(payload)["embeds"][0]
    assert len(slack.format_slack(payload)["blocks"][-1]["elements"]) == 2


def test_brand_falls_back_to_id_then_generic_words():
    payload = sample_payload()
    payload["brand"] = {"id": "b-1"}
    assert describe(payload).brand == "b-1"
    payload["brand"] = None
    assert describe(payload).brand == "your brand"


def test_formatters_do_not_mutate_the_payload():
    payload = sample_payload("citation_lost")
    before = copy.deepcopy(payload)
    for name in providers.PROVIDERS:
        providers.format_body(name, payload)
    assert payload == before


# --- text helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (41.0, "41"),
        (57.5, "57.5"),
        (0.1, "0.1"),
        (1e20, "1e+20"),
        (-0.0, "0"),
        (3, "3"),
        (True, "Yes"),
        (False, "No"),
        (None, ""),
        ([1, "a"], '[1,"a"]'),
        ({"k": 1.5}, '{"k":1.5}'),
        ("x", "x"),
        (float("nan"), "nan"),
    ],
)
def test_to_text(value, text):
    assert to_text(value) == text


def test_huge_integers_do_not_raise():
    assert format_number(10**5000) == "<5001-digit number>"


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("abcdef", 6, "abcdef"),
        ("abcdef", 5, "abcd\u2026"),
        ("ab  cdef", 5, "ab\u2026"),
        ("\U0001f600\U0001f600\U0001f600", 5, "\U0001f600\U0001f600\u2026"),
        ("abc", 0, ""),
        ("abc", 1, "\u2026"),
    ],
)
def test_truncate_counts_utf16_units(text, limit, expected):
    out = truncate(text, limit)
    assert out == expected and ulen(out) <= max(limit, 0)


def test_slack_escaping_never_splits_an_entity():
    out = slack.mrkdwn("&" * 10, 12)
    assert out == "&amp;&amp;\u2026"


# --- data cannot make links, mentions or direction overrides (issue 19, item 8) -------------

EVIL = "[click](https://evil.example)"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
HOSTILE = {
    "competitor_name": f"Globex {EVIL} <@123> <!channel> <at>Boss</at> @everyone @here",
    "competitor_domain": "globex.example\u202eelpmaxe.live",
    "detected_by": "[x][ref]\n\n[ref]: https://evil.example/ref www.evil.example",
    "note": f"{BIDI}plain{BIDI}",
}


def _every_text(body) -> list[str]:
    """Every string in a body, keys aside."""
    if isinstance(body, dict):
        return [t for value in body.values() for t in _every_text(value)]
    if isinstance(body, list):
        return [t for value in body for t in _every_text(value)]
    return [body] if isinstance(body, str) else []


def _hostile_payload() -> dict:
    payload = sample_payload("competitor_added", HOSTILE, summary=f"Summary {EVIL} @everyone \u202eevil")
    payload["brand"]["name"] = f"Acme{EVIL}\u202e"
    return payload


@pytest.mark.parametrize("provider", ["slack", "discord", "teams_webhook"])
def test_no_bidi_control_from_data_reaches_any_provider(provider):
    texts = _every_text(providers.format_body(provider, _hostile_payload()))
    assert not [t for t in texts if set(t) & set(BIDI)]
    assert any("plain" in t for t in texts)  # the text itself is kept


@pytest.mark.parametrize("provider", ["discord", "teams_webhook"])
def test_markdown_links_and_mentions_from_data_are_broken(provider):
    body = providers.format_body(provider, _hostile_payload())
    joined = "\n".join(t for t in _every_text(body) if t != teams.CARD_SCHEMA)
    assert "[click]\u200b(https:\u200b//evil.example)" in joined  # shown, but not a link
    for syntax in ("](", "][", "]:", "://", "<@", "<!", "<at>", "@everyone", "@here", "www."):
        assert syntax not in joined, syntax


def test_discord_title_and_fields_show_a_competitor_name_without_its_link():
    embed = discord.format_discord(_hostile_payload())["embeds"][0]
    assert "[click]\u200b(https:\u200b//evil.example)" in embed["title"]
    competitor = next(f["value"] for f in embed["fields"] if f["name"] == "Competitor")
    assert competitor.startswith("Globex [click]\u200b(https:\u200b//evil.example) <\u200b@123>")


def test_teams_textblocks_and_facts_show_a_competitor_name_without_its_link():
    body = teams.format_teams(_hostile_payload())
    assert "[click]\u200b(" in teams_card(body)["body"][0]["text"]
    assert "<\u200bat>Boss<\u200b/at>" in teams_facts(body)["Competitor"]


def test_slack_text_cannot_link_or_mention_and_is_verbatim():
    body = slack.format_slack(_hostile_payload())
    header = body["blocks"][0]["text"]["text"]  # plain_text: Slack parses nothing in it; broken anyway
    assert "<\u200b@123>" in header and "<@" not in header
    for text in slack_texts(body):
        assert "://" not in text
        assert "@everyone" not in text and "@here" not in text
        for i, ch in enumerate(text):
            if ch == "<" and text is not header:
                assert text.startswith("<!date^", i), text
    mrkdwn = [o for o in _objects(body) if o.get("type") == "mrkdwn"]
    assert mrkdwn and all(o.get("verbatim") is True for o in mrkdwn)  # Slack auto-links nothing


def _objects(body) -> list[dict]:
    if isinstance(body, dict):
        return [body] + [o for value in body.values() for o in _objects(value)]
    if isinstance(body, list):
        return [o for value in body for o in _objects(value)]
    return []


def test_a_url_with_a_bidi_control_is_not_a_link():
    assert safe_url("https://news.example/\u202egnp.exe") is None
    assert safe_url("https://news.example/\u200bx") is None
    assert safe_url("https://news.example/a") == "https://news.example/a"


def test_text_made_only_of_bidi_controls_falls_back_rather_than_going_empty():
    payload = sample_payload("competitor_added", {"competitor_name": BIDI, "x": BIDI}, summary=BIDI)
    payload["brand"]["name"] = BIDI
    msg = describe(payload)
    assert msg.summary == msg.title and msg.brand == "your brand"
    assert all(f.value for f in msg.facts)
