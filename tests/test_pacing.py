"""Pacing rules (pure): windows, the effective rate of a webhook, what rate-limit headers say."""

from __future__ import annotations

import pytest

from flask_trakkr_webhooks import pacing, providers
from flask_trakkr_webhooks.pacing import Window


@pytest.mark.parametrize(
    "value,expected",
    [
        ({"requests": 5, "per_seconds": 2}, Window(5, 2.0)),
        ((5, 2), Window(5, 2.0)),
        ("5/2s", Window(5, 2.0)),
        ("1/s", Window(1, 1.0)),
        ("30/min", Window(30, 60.0)),
        ("100 / hour", Window(100, 3600.0)),
        ("3/0.5s", Window(3, 0.5)),
    ],
)
def test_a_window_in_every_spelling(value, expected):
    assert pacing.window(value) == expected


@pytest.mark.parametrize(
    "value,message",
    [
        ("fast", "is not a rate such as"),
        ({"requests": 5}, "needs both"),
        ({"requests": 1, "per_seconds": 1, "x": 1}, "unknown key(s) ['x']"),
        ((0, 1), "between 1 and 100000"),
        ((1.5, 1), "whole number"),
        ((True, 1), "whole number"),
        ((1, float("nan")), "number of seconds"),
        ((1, 0), "between 0.001 and 86400"),
        ((1, 86401), "between 0.001 and 86400"),
        (42, "a window is"),
    ],
)
def test_a_bad_window_says_what_is_wrong(value, message):
    with pytest.raises(ValueError) as info:
        pacing.window(value)
    assert message in str(info.value)


def test_parse_sorts_dedupes_and_names_the_bad_window():
    assert pacing.parse([(30, 60), "5/2s", (5, 2)]) == (Window(5, 2.0), Window(30, 60.0))
    assert pacing.parse("1/s") == (Window(1, 1.0),)
    assert pacing.parse([]) == ()
    with pytest.raises(ValueError, match="window 1: "):
        pacing.parse(["1/s", "x"])
    with pytest.raises(ValueError, match="at most 8 windows"):
        pacing.parse(["1/s"] * 9)
    assert pacing.dump(pacing.parse("3/1.5s")) == [{"requests": 3, "per_seconds": 1.5}]
    assert pacing.dump(None) is None


def test_effective_rate_order_own_then_config_then_provider():
    slack = providers.get("slack")
    assert slack is not None and slack.rate_limit == (Window(1, 1.0),) and slack.shared_host
    assert pacing.effective(None, "slack", {}, slack.rate_limit) == (Window(1, 1.0),)
    configured = {"slack": (Window(3, 2.0),)}
    assert pacing.effective(None, "slack", configured, slack.rate_limit) == (Window(3, 2.0),)
    assert pacing.effective([], "slack", configured, slack.rate_limit) == ()
    assert pacing.effective(["2/s"], "slack", configured, slack.rate_limit) == (Window(2, 1.0),)
    # A stored value that no longer parses falls back to the provider's rate, not to none.
    assert pacing.effective("garbage", "slack", {}, slack.rate_limit) == (Window(1, 1.0),)
    generic = providers.get("webhook")
    assert generic is not None and generic.rate_limit == () and not generic.shared_host


def test_the_platforms_published_limits():
    assert providers.get("discord").rate_limit == (Window(5, 2.0), Window(30, 60.0))
    teams = providers.get("teams_webhook").rate_limit
    assert teams == (Window(4, 1.0), Window(60, 30.0), Window(100, 3600.0), Window(150, 7200.0), Window(1800, 86400.0))


def test_a_host_provider_can_carry_a_rate_and_a_shared_host():
    entry = providers.register("chatx", lambda p: p, rate_limit=["2/s"], shared_host=True)
    try:
        assert entry.rate_limit == (Window(2, 1.0),) and entry.shared_host
        override = providers.register("slack", lambda p: p)
        assert override.rate_limit == (Window(1, 1.0),) and override.shared_host  # built-in's kept
    finally:
        providers.unregister("chatx")
        providers.unregister("slack")
    with pytest.raises(ValueError, match="rate_limit for 'chaty'"):
        providers.register("chaty", lambda p: p, rate_limit=["nope"])


def test_eta_counts_bursts_of_every_window():
    assert pacing.eta((), 50) == 0.0
    discord = pacing.parse([(5, 2), (30, 60)])
    assert [pacing.eta(discord, i) for i in (0, 4, 5, 29)] == pytest.approx([0, 0, 2.2, 11.0])
    assert pacing.eta(discord, 30) == pytest.approx(66.0)  # the per-minute window binds


def test_key_never_shows_the_url():
    url = "https://hooks.slack.com/services/T0/B0/secret-token"
    assert "secret" not in pacing.key(url) and len(pacing.key(url)) == 32
    assert pacing.key(url) == pacing.key(url) != pacing.key(url + "x")


@pytest.mark.parametrize(
    "headers,expected",
    [
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.5"}, 1.5),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "0.25"}, 0.25),
        ({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset-After": "1.5"}, None),
        ({"X-RateLimit-Remaining": "0"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "soon"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "-1"}, None),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1e9"}, 86400.0),
        (None, None),
    ],
)
def test_remaining_hold_follows_discords_headers(headers, expected):
    assert pacing.remaining_hold(headers) == expected
