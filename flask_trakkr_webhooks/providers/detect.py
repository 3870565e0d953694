"""Which platform a webhook URL belongs to, from its host and path alone (pure, no I/O).

``detect_provider(url)`` answers one of :data:`PROVIDERS`. Hosts are compared
exactly (case-insensitively, ignoring a trailing dot) or by whole-label suffix,
so ``hooks.slack.com.evil.example`` and ``evilhooks.slack.com`` stay generic.
A URL with userinfo or a backslash in its authority is never matched: parsers
disagree about where such a host starts, so guessing would be unsafe.
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

GENERIC = "webhook"

#: Every value ``detect_provider`` answers.
PROVIDERS: tuple[str, ...] = ("webhook", "zapier", "make", "discord", "slack", "teams_webhook")

_DISCORD_HOSTS = frozenset(
    f"{sub}{domain}"
    for domain in ("discord.com", "discordapp.com")
    for sub in ("", "ptb.", "canary.")
)
# Discord webhooks: /api/webhooks/<id>/<token>, optionally with an API version (/api/v10/...).
_DISCORD_PATH = re.compile(r"^/api/(?:v\d+/)?webhooks/", re.IGNORECASE)
# Make: hook.<zone>.make.com (hook.eu1.make.com); Integromat, its former name, likewise.
_MAKE_HOST = re.compile(r"^hook\.(?:[a-z0-9-]+\.)?(?:make|integromat)\.com\Z")
# One DNS label, for "<tenant>.webhook.office.com" style suffix matches.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def _is_subdomain(host: str, suffix: str) -> bool:
    """True when ``host`` is ``<labels>.<suffix>`` (at least one valid label before it)."""
    if not host.endswith("." + suffix):
        return False
    labels = host[: -len(suffix) - 1].split(".")
    return all(_LABEL.match(label) for label in labels)


def _host_and_path(url: str) -> tuple[str, str] | None:
    """Lower-case host (no trailing dot) and path of ``url``, or ``None`` when unsafe to read."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    if "@" in parts.netloc or "\\" in parts.netloc:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    return host, parts.path or "/"


def detect_provider(url: str) -> str:
    """The provider of ``url``: ``slack``, ``discord``, ``teams_webhook``, ``zapier``, ``make`` or ``webhook``.

    * ``slack``: ``hooks.slack.com``
    * ``discord``: ``discord.com`` / ``discordapp.com`` (and their ``ptb.`` / ``canary.``
      hosts) with a path under ``/api/webhooks/`` (or ``/api/v<N>/webhooks/``)
    * ``teams_webhook``: ``<tenant>.webhook.office.com``, ``outlook.office.com/webhook...``
      (and ``outlook.office365.com``), and Power Automate workflow URLs
      (``*.logic.azure.com`` and ``*.environment.api.powerplatform.com`` with ``/workflows/``)
    * ``zapier``: ``hooks.zapier.com``
    * ``make``: ``hook.<zone>.make.com``, ``hook.integromat.com``
    * anything else, or a URL that cannot be read: ``webhook``
    """
    found = _host_and_path(url)
    if found is None:
        return GENERIC
    host, path = found
    lowered_path = path.lower()
    if host == "hooks.slack.com":
        return "slack"
    if host in _DISCORD_HOSTS and _DISCORD_PATH.match(path):
        return "discord"
    if _is_subdomain(host, "webhook.office.com"):
        return "teams_webhook"
    if host in ("outlook.office.com", "outlook.office365.com") and lowered_path.startswith("/webhook"):
        return "teams_webhook"
    if (_is_subdomain(host, "logic.azure.com") or _is_subdomain(host, "environment.api.powerplatform.com")) and (
        "/workflows/" in lowered_path
    ):
        return "teams_webhook"
    if host == "hooks.zapier.com":
        return "zapier"
    if _MAKE_HOST.match(host):
        return "make"
    return GENERIC
