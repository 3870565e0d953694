"""The URL helpers of the built-in matchers (``flask_trakkr_webhooks/providers/matchers.py``):
``host_and_path`` and ``is_subdomain``.
"""

from __future__ import annotations

import pytest

from flask_trakkr_webhooks.providers.matchers import (
    host_and_path,
    is_subdomain,
)


@pytest.mark.parametrize(
    "url,expected",
    [
        ("https://HOOKS.Slack.com./services/T/B/X?x=1#f", ("hooks.slack.com", "/services/T/B/X")),
        ("http://example.com", ("example.com", "/")),
        ("  https://example.com/A/b  ", ("example.com", "/A/b")),
        ("https://user@example.com/x", None),
        ("https://example.com\\@evil.example/x", None),
        ("ftp://example.com/x", None),
        ("https:///x", None),
        ("https://[::1/", None),
        ("", None),
        (None, None),
    ],
)
def test_host_and_path(url: object, expected: tuple[str, str] | None) -> None:
    assert host_and_path(url) == expected


@pytest.mark.parametrize(
    "host,suffix,expected",
    [
        ("a.webhook.office.com", "webhook.office.com", True),
        ("a.b.webhook.office.com", "webhook.office.com", True),
        ("webhook.office.com", "webhook.office.com", False),
        ("evilwebhook.office.com", "webhook.office.com", False),
        ("-a.webhook.office.com", "webhook.office.com", False),
        ("a..webhook.office.com", "webhook.office.com", False),
    ],
)
def test_is_subdomain(host: str, suffix: str, expected: bool) -> None:
    assert is_subdomain(host, suffix) is expected
