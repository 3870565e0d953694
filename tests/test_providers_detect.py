"""Provider detection from the URL (``flask_trakkr_webhooks/providers/detect.py``): a table of URLs
and the provider each must get, and which built-in matcher claims each.

Host-registered providers and the registry itself are tested in ``test_providers_registry.py``;
the URL helpers of the matchers in ``test_providers_matchers.py``.
"""

from __future__ import annotations

import pytest

from flask_trakkr_webhooks import providers
from flask_trakkr_webhooks.providers.detect import PROVIDERS, detect_provider
from flask_trakkr_webhooks.providers.matchers import (
    host_and_path,
    match_discord,
    match_make,
    match_slack,
    match_teams,
    match_zapier,
)

CASES = [
    # Slack
    ("https://hooks.slack.com/services/T000/B000/XXXX", "slack"),
    ("https://HOOKS.SLACK.COM/services/T000/B000/XXXX", "slack"),
    ("https://hooks.slack.com./services/T000/B000/XXXX", "slack"),
    ("https://hooks.slack.com:443/services/T000/B000/XXXX", "slack"),
    ("https://hooks.slack.com/triggers/T000/123/abc", "slack"),
    ("https://hooks.slack.com.evil.example/services/T000", "webhook"),
    ("https://evilhooks.slack.com/services/T000", "webhook"),
    ("https://hooks.slack.co/services/T000", "webhook"),
    ("https://slack.com/services/T000", "webhook"),
    ("https://hooks.slack.com@evil.example/services/T000", "webhook"),
    ("https://evil.example/?u=https://hooks.slack.com/services/T000", "webhook"),
    ("https://evil.example/hooks.slack.com/services/T000", "webhook"),
    # Discord
    ("https://discord.com/api/webhooks/123/abc", "discord"),
    ("https://discordapp.com/api/webhooks/123/abc", "discord"),
    ("https://ptb.discord.com/api/webhooks/123/abc", "discord"),
    ("https://canary.discord.com/api/webhooks/123/abc", "discord"),
    ("https://canary.discordapp.com/api/webhooks/123/abc", "discord"),
    ("https://Discord.com/api/v10/webhooks/123/abc", "discord"),
    ("https://discord.com/api/webhooks/123/abc/slack", "discord"),
    ("https://discord.com/channels/123/456", "webhook"),
    ("https://discord.com/api/users/@me", "webhook"),
    ("https://evil.discord.com/api/webhooks/123/abc", "webhook"),
    ("https://discord.com.evil.example/api/webhooks/123/abc", "webhook"),
    ("https://notdiscord.com/api/webhooks/123/abc", "webhook"),
    # Microsoft Teams: incoming webhooks and Power Automate workflows
    ("https://contoso.webhook.office.com/webhookb2/abc@def/IncomingWebhook/123/456", "teams_webhook"),
    ("https://CONTOSO.Webhook.Office.com/webhookb2/abc", "teams_webhook"),
    ("https://outlook.office.com/webhook/abc@def/IncomingWebhook/123/456", "teams_webhook"),
    ("https://outlook.office365.com/webhook/abc", "teams_webhook"),
    (
        "https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=x",
        "teams_webhook",
    ),
    (
        "https://default1234.56.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/abc/"
        "triggers/manual/paths/invoke?api-version=1",
        "teams_webhook",
    ),
    ("https://webhook.office.com/webhookb2/abc", "webhook"),
    ("https://evilwebhook.office.com/webhookb2/abc", "webhook"),
    ("https://contoso.webhook.office.com.evil.example/webhookb2/abc", "webhook"),
    ("https://outlook.office.com/mail/inbox", "webhook"),
    ("https://prod-12.westus.logic.azure.com/other/abc", "webhook"),
    ("https://logic.azure.com/workflows/abc", "webhook"),
    ("https://evil.example/workflows/abc", "webhook"),
    # Zapier
    ("https://hooks.zapier.com/hooks/catch/123/abc/", "zapier"),
    ("https://Hooks.Zapier.com/hooks/catch/123/abc/", "zapier"),
    ("https://hooks.zapier.com.evil.example/hooks/catch/1/", "webhook"),
    ("https://myhooks.zapier.com/hooks/catch/1/", "webhook"),
    ("https://zapier.com/hooks/catch/1/", "webhook"),
    # Make (Integromat)
    ("https://hook.eu1.make.com/abcdef", "make"),
    ("https://hook.us2.make.com/abcdef", "make"),
    ("https://HOOK.EU2.MAKE.COM/abcdef", "make"),
    ("https://hook.integromat.com/abcdef", "make"),
    ("https://hook.eu1.make.com.evil.example/abcdef", "webhook"),
    ("https://myhook.eu1.make.com/abcdef", "webhook"),
    ("https://hook.eu1.evilmake.com/abcdef", "webhook"),
    ("https://make.com/abcdef", "webhook"),
    # Generic and unreadable
    ("https://example.com/hooks/trakkr", "webhook"),
    ("http://hooks.slack.com/services/T000", "slack"),
    ("ftp://hooks.slack.com/services/T000", "webhook"),
    ("hooks.slack.com/services/T000", "webhook"),
    ("https://[::1/", "webhook"),
    ("", "webhook"),
    ("not a url", "webhook"),
]


@pytest.mark.parametrize("url,provider", CASES)
def test_detect_provider(url: str, provider: str) -> None:
    assert detect_provider(url) == provider


def test_every_answer_is_a_known_provider() -> None:
    assert {detect_provider(url) for url, _ in CASES} == set(PROVIDERS)


@pytest.mark.parametrize("value", [None, 42, b"https://hooks.slack.com/services/x"])
def test_non_string_is_generic(value: object) -> None:
    assert detect_provider(value) == "webhook"  # type: ignore[arg-type]


def test_the_package_re_exports_the_same_function_and_names() -> None:
    assert providers.detect_provider is detect_provider
    assert providers.PROVIDERS is PROVIDERS


# Each built-in rule is a matcher on the registry entry; the table above must agree with them.
BUILTIN_MATCHERS = {
    "slack": match_slack,
    "discord": match_discord,
    "teams_webhook": match_teams,
    "zapier": match_zapier,
    "make": match_make,
}


def test_each_built_in_entry_carries_its_matcher() -> None:
    for name, matcher in BUILTIN_MATCHERS.items():
        entry = providers.get(name)
        assert entry is not None and entry.matches is matcher
    generic = providers.get("webhook")
    assert generic is not None and generic.matches is None  # the fallback is never "matched"


@pytest.mark.parametrize("url,provider", CASES)
def test_exactly_the_expected_matcher_claims_each_url(url: str, provider: str) -> None:
    found = host_and_path(url)
    claimed = {name for name, m in BUILTIN_MATCHERS.items() if found is not None and m(*found)}
    assert claimed == ({provider} if provider != "webhook" else set())
