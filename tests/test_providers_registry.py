"""The provider registry: host-registered providers, overrides, detection order, bad input.

The registry is module-global: every test registers through the ``register`` fixture, which
unregisters what it added, so no test leaks a provider into another.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flask_trakkr_webhooks import providers
from flask_trakkr_webhooks.providers import (
    PROVIDERS,
    Provider,
    detect_provider,
    format_body,
    get_formatter,
    registered,
    unregister,
)
from flask_trakkr_webhooks.providers import detect as detect_module
from flask_trakkr_webhooks.providers import (
    register as register_provider,
)
from flask_trakkr_webhooks.providers.matchers import match_slack
from flask_trakkr_webhooks.providers.samples import sample_payload

Register = Callable[..., Provider]


@pytest.fixture
def register() -> Iterator[Register]:
    """``providers.register`` that undoes itself after the test."""
    added: list[str] = []

    def _register(name: str, formatter: Any, **kwargs: Any) -> Provider:
        added.append(name)
        return register_provider(name, formatter, **kwargs)

    yield _register
    for name in added:
        unregister(name)
    assert providers.names() == PROVIDERS, "a test left a provider registered"


def to_pagerduty(payload: dict[str, Any]) -> dict[str, Any]:
    return {"summary": payload["event"]["type"]}


def pagerduty_host(host: str, path: str) -> bool:
    return host == "events.pagerduty.com" and path.startswith("/v2/enqueue")


# -- the interface other modules import ----------------------------------------------------------


def test_public_names_are_importable_from_the_package_and_detect() -> None:
    assert detect_module.detect_provider is detect_provider
    assert detect_module.PROVIDERS is PROVIDERS
    assert PROVIDERS == ("webhook", "zapier", "make", "discord", "slack", "teams_webhook")
    assert registered() == providers.names() == PROVIDERS
    assert [p.name for p in providers.entries()] == list(PROVIDERS)
    assert all(p.builtin and p.label for p in providers.entries())


def test_provider_is_a_frozen_record() -> None:
    entry = providers.get("slack")
    assert entry is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.name = "other"  # type: ignore[misc]


def test_lookups_of_unknown_names() -> None:
    assert providers.get("no-such-provider") is None
    assert providers.get(None) is None  # type: ignore[arg-type]
    assert not providers.is_registered("no-such-provider")
    assert not providers.is_registered(None)
    assert not providers.is_registered(["slack"])
    assert all(providers.is_registered(name) for name in PROVIDERS)
    assert get_formatter("no-such-provider") is providers.format_generic
    payload = sample_payload()
    assert format_body("no-such-provider", payload) == payload


# -- a host-registered provider is detected ------------------------------------------------------


def test_a_registered_matcher_makes_detection_choose_the_provider(register: Register) -> None:
    entry = register("pagerduty", to_pagerduty, matches=pagerduty_host, label="PagerDuty Events v2")
    assert entry == Provider("pagerduty", to_pagerduty, pagerduty_host, "PagerDuty Events v2")
    assert not entry.builtin
    assert providers.get("pagerduty") is entry
    assert providers.is_registered("pagerduty")
    assert providers.names() == (*PROVIDERS, "pagerduty")
    for url in (
        "https://events.pagerduty.com/v2/enqueue",
        "https://EVENTS.PagerDuty.com./v2/enqueue?x=1",
        "http://events.pagerduty.com:8443/v2/enqueue",
    ):
        assert detect_provider(url) == "pagerduty", url
    for url in (
        "https://events.pagerduty.com.evil.example/v2/enqueue",
        "https://evilevents.pagerduty.com/v2/enqueue",
        "https://events.pagerduty.com/other",
        "https://evil.example/?u=https://events.pagerduty.com/v2/enqueue",
        "https://events.pagerduty.com@evil.example/v2/enqueue",  # userinfo: never matched
        "ftp://events.pagerduty.com/v2/enqueue",
    ):
        assert detect_provider(url) == "webhook", url
    # Built-in URLs are untouched.
    assert detect_provider("https://hooks.slack.com/services/T/B/X") == "slack"
    assert format_body("pagerduty", sample_payload("citation_lost")) == {"summary": "citation_lost"}


def test_the_matcher_gets_the_normalised_host_and_the_path_as_written(register: Register) -> None:
    seen: list[tuple[str, str]] = []

    def spy(host: str, path: str) -> bool:
        seen.append((host, path))
        return False

    register("spy", to_pagerduty, matches=spy)
    detect_provider("https://Hooks.Example.COM./Some/Path?q=1#frag")
    detect_provider("https://bare.example")
    assert seen == [("hooks.example.com", "/Some/Path"), ("bare.example", "/")]
    seen.clear()
    detect_provider("https://user:pw@hooks.example.com/x")
    detect_provider("not a url")
    assert seen == []  # unreadable URLs are generic before any matcher is asked


def test_a_provider_without_a_matcher_is_only_chosen_explicitly(register: Register) -> None:
    register("explicit_only", to_pagerduty)
    assert providers.is_registered("explicit_only")
    assert "explicit_only" not in {p.name for p in providers.detection_order()}
    assert detect_provider("https://explicit-only.example/hook") == "webhook"
    assert format_body("explicit_only", sample_payload()) == {"summary": "visibility_changed"}


# -- order -----------------------------------------------------------------------------------------


def test_host_providers_are_asked_before_built_ins(register: Register) -> None:
    url = "https://hooks.slack.com/services/T/B/X"
    register("slack_proxy", to_pagerduty, matches=lambda host, path: host.endswith("slack.com"))
    assert detect_provider(url) == "slack_proxy"
    unregister("slack_proxy")
    assert detect_provider(url) == "slack"


def test_host_providers_are_asked_in_registration_order(register: Register) -> None:
    register("first", to_pagerduty, matches=lambda host, path: host == "shared.example")
    register("second", to_pagerduty, matches=lambda host, path: host.endswith("example"))
    assert detect_provider("https://shared.example/x") == "first"
    assert detect_provider("https://other.example/x") == "second"
    assert providers.names()[-2:] == ("first", "second")
    # Registering a name again replaces the entry but keeps its place.
    register("first", to_pagerduty, matches=lambda host, path: host.startswith("shared"))
    assert providers.names()[-2:] == ("first", "second")
    assert detect_provider("https://shared.example/x") == "first"


def test_an_overridden_built_in_keeps_its_slot_behind_host_providers(register: Register) -> None:
    register("slack", to_pagerduty, matches=lambda host, path: host == "proxy.example")
    register("my_proxy", to_pagerduty, matches=lambda host, path: host == "proxy.example")
    assert detect_provider("https://proxy.example/x") == "my_proxy"
    assert providers.names() == (*PROVIDERS, "my_proxy")


# -- overriding a built-in and getting it back --------------------------------------------------------


def test_overriding_a_built_in_formatter_keeps_its_matcher_and_label(register: Register) -> None:
    original = providers.get("slack")
    assert original is not None
    entry = register("slack", to_pagerduty)
    assert entry.matches is match_slack and entry.label == original.label and entry.builtin
    assert providers.names() == PROVIDERS  # no new name, same place
    assert detect_provider("https://hooks.slack.com/services/T/B/X") == "slack"
    assert format_body("slack", sample_payload()) == {"summary": "visibility_changed"}


def test_overriding_a_built_in_matcher_replaces_it(register: Register) -> None:
    register("slack", to_pagerduty, matches=lambda host, path: host == "slack-proxy.example", label="Proxied Slack")
    assert detect_provider("https://slack-proxy.example/services/T") == "slack"
    assert detect_provider("https://hooks.slack.com/services/T/B/X") == "webhook"
    entry = providers.get("slack")
    assert entry is not None and entry.label == "Proxied Slack"


def test_unregister_restores_the_built_ins(register: Register) -> None:
    originals = providers.entries()
    register("slack", to_pagerduty, matches=lambda host, path: False)
    register("webhook", to_pagerduty)
    register("pagerduty", to_pagerduty, matches=pagerduty_host)
    for name in ("slack", "webhook", "pagerduty"):
        unregister(name)
    assert providers.entries() == originals
    assert get_formatter("slack") is providers.format_slack
    assert get_formatter("webhook") is providers.format_generic
    assert detect_provider("https://hooks.slack.com/services/T/B/X") == "slack"
    assert detect_provider("https://events.pagerduty.com/v2/enqueue") == "webhook"
    assert not providers.is_registered("pagerduty")
    # Unregistering what is not registered (or a built-in never overridden) changes nothing.
    unregister("pagerduty")
    unregister("discord")
    unregister("")
    assert providers.entries() == originals


# -- a host's code must not break detection ----------------------------------------------------------


def test_a_raising_matcher_is_no_match(register: Register) -> None:
    def broken(host: str, path: str) -> bool:
        raise RuntimeError("bug in host code")

    register("broken", to_pagerduty, matches=broken)
    register("catches_all_after", to_pagerduty, matches=lambda host, path: host == "later.example")
    assert detect_provider("https://later.example/x") == "catches_all_after"
    assert detect_provider("https://hooks.slack.com/services/T/B/X") == "slack"
    assert detect_provider("https://example.com/hook") == "webhook"


def test_a_matcher_answer_is_read_as_a_truth_value(register: Register) -> None:
    class Unreadable:
        def __bool__(self) -> bool:
            raise ValueError("no truth value")

    register("odd", to_pagerduty, matches=lambda host, path: Unreadable())
    register("truthy", to_pagerduty, matches=lambda host, path: "yes" if host == "t.example" else "")
    assert detect_provider("https://x.example/") == "webhook"
    assert detect_provider("https://t.example/") == "truthy"


def test_detection_while_another_thread_registers() -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def detect_loop() -> None:
        try:
            while not stop.is_set():
                assert detect_provider("https://hooks.slack.com/services/T/B/X") in ("slack", "churn_0", "churn_1")
        except BaseException as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=detect_loop)
    reader.start()
    try:
        for i in range(200):
            register_provider(f"churn_{i % 2}", to_pagerduty, matches=lambda host, path: False)
            unregister(f"churn_{i % 2}")
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert providers.names() == PROVIDERS


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs, exc, text",
    [
        ("", {}, ValueError, "non-empty"),
        ("   ", {}, ValueError, "non-empty"),
        (None, {}, ValueError, "non-empty"),
        (42, {}, ValueError, "non-empty"),
        ("has space", {}, ValueError, "is not valid"),
        (" slack", {}, ValueError, "is not valid"),
        ("-dash", {}, ValueError, "is not valid"),
        ("x" * 33, {}, ValueError, "1-32"),
        ("x", {"formatter": "not callable"}, TypeError, "formatter for 'x' must be callable, got str"),
        ("x", {"matches": "hooks.example.com"}, TypeError, r"matches for 'x' must be callable \(host, path\)"),
        ("slack", {"matches": 1}, TypeError, "matches for 'slack' must be callable"),
        ("x", {"label": 3}, TypeError, "label for 'x' must be a string, got int"),
    ],
)
def test_register_refuses_bad_input(name: Any, kwargs: dict[str, Any], exc: type[Exception], text: str) -> None:
    formatter = kwargs.pop("formatter", to_pagerduty)
    with pytest.raises(exc, match=text):
        register_provider(name, formatter, **kwargs)
    assert providers.names() == PROVIDERS  # nothing half-registered
    assert get_formatter("slack") is providers.format_slack


def test_the_longest_valid_name_is_accepted(register: Register) -> None:
    name = "a" * 32  # the width of the webhooks.provider column
    register(name, to_pagerduty)
    assert providers.is_registered(name)


def test_matcher_and_label_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        register_provider("x", to_pagerduty, pagerduty_host)  # type: ignore[call-arg]
    assert not providers.is_registered("x")
