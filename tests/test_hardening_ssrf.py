"""The SSRF guard at save time: POST and PATCH resolve the URL's host and refuse private destinations.

Every refusal is a 400 whose ``error.fields.url`` holds the guard's message, which names
the refused address class and the setting that would allow it. The guard itself is
tested address form by address form in ``test_ssrf.py``; here the API wiring is.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Iterator

import pytest

from flask_trakkr_webhooks import ssrf
from flask_trakkr_webhooks.extension import get_state

BRAND = "3f2b8c1e-5a7d-4c1e-9b2a-0d4e6f8a1b2c"
BASE = {"url": "https://receiver.example.com/hooks", "events": ["visibility_changed"], "brand_id": BRAND}
SETTINGS = "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True (development) or the address is inside a network " \
           "listed in TRAKKR_WEBHOOKS_ALLOWED_CIDRS"
NEVER = "which is never a valid webhook destination (no setting allows it)"


class Answers:
    """A resolver answering ``addresses`` for every name and recording the questions."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.addresses)


def refuse_to_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"the resolver must not be asked about {host!r}")


@pytest.fixture
def resolver() -> Iterator[Any]:
    """Swap the process resolver for one a test sets: ``resolver(Answers("10.0.0.1"))``."""
    stack: list[Any] = []

    def use(answer: Any) -> Any:
        context = ssrf.use_resolver(answer)
        context.__enter__()
        stack.append(context)
        return answer

    yield use
    while stack:
        stack.pop().__exit__(None, None, None)


def url_error(response: Any) -> str:
    """The one message on ``url`` of a 400, after checking the whole error shape."""
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["type"] == "invalid_request"
    assert list(error["fields"]) == ["url"]
    [message] = error["fields"]["url"]
    assert error["message"] == f"Invalid request: url {message}"
    return message


# -- every address class, as a literal and as a name resolving to it -----------------------------

#: (address, refused class, allowed by a setting?)
ADDRESSES = [
    ("127.0.0.1", "loopback", True),
    ("127.8.9.10", "loopback", True),
    ("10.0.0.1", "private", True),
    ("172.16.5.4", "private", True),
    ("192.168.1.1", "private", True),
    ("169.254.169.254", "link-local", True),
    ("100.64.0.1", "carrier-grade NAT", True),
    ("0.0.0.1", "reserved", True),
    ("240.0.0.1", "reserved", True),
    ("192.0.0.8", "reserved", True),
    ("192.0.2.1", "documentation", True),
    ("198.18.0.1", "benchmarking", True),
    ("0.0.0.0", "unspecified", False),
    ("224.0.0.1", "multicast", False),
    ("255.255.255.255", "broadcast", False),
    ("::1", "loopback", True),
    ("::", "unspecified", False),
    ("fd00::1", "unique local (private IPv6)", True),
    ("fe80::1", "link-local", True),
    ("fec0::1", "site-local", True),
    ("ff02::1", "multicast", False),
    ("2001:db8::1", "documentation", True),
    ("::ffff:127.0.0.1", "loopback", True),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private", True),
    ("::ffff:169.254.169.254", "link-local", True),
    ("::127.0.0.1", "loopback", True),  # IPv4-compatible (deprecated)
    ("2002:7f00:1::1", "loopback", True),  # 6to4 of 127.0.0.1
    ("2002:a00:1::1", "private", True),  # 6to4 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local", True),  # NAT64 of 169.254.169.254
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel", True),
]


def _literal_url(address: str) -> str:
    return f"https://[{address}]/hooks" if ":" in address else f"https://{address}/hooks"


def _expected_suffix(address_class: str, allowable: bool) -> str:
    article = "an" if address_class == "unspecified" else "a"
    if not allowable:
        return f", {article} {address_class} address, {NEVER}"
    return f", {article} {address_class} address; webhooks may not target {address_class} addresses unless {SETTINGS}"


@pytest.mark.parametrize("address,address_class,allowable", ADDRESSES, ids=[a for a, _, _ in ADDRESSES])
def test_create_refuses_a_literal_of_every_address_class(client, resolver, address, address_class, allowable):
    resolver(refuse_to_resolve)  # literals are judged without DNS
    message = url_error(client.post("/webhooks", json={**BASE, "url": _literal_url(address)}))
    with pytest.raises(ssrf.BlockedAddress) as info:
        ssrf.check_url(_literal_url(address))
    assert message == str(info.value)
    assert _expected_suffix(address_class, allowable) in message
    assert client.get("/webhooks").get_json()["data"] == []


@pytest.mark.parametrize("address,address_class,allowable", ADDRESSES, ids=[a for a, _, _ in ADDRESSES])
def test_create_refuses_a_name_resolving_to_every_address_class(client, resolver, address, address_class, allowable):
    answers = resolver(Answers(address))
    message = url_error(client.post("/webhooks", json={**BASE, "url": "https://internal.example:8443/hooks"}))
    assert message.startswith(f"webhook host 'internal.example' resolves to {ipaddress.ip_address(address)}")
    assert _expected_suffix(address_class, allowable) in message
    assert answers.calls == [("internal.example", 8443)]
    assert client.get("/webhooks").get_json()["data"] == []


def test_the_exact_message_for_loopback_names_the_class_and_both_settings(client, resolver):
    resolver(refuse_to_resolve)
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://127.0.0.1/h"})) == (
        "the URL's host 127.0.0.1, a loopback address; webhooks may not target loopback addresses unless "
        "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True (development) or the address is inside a network listed in "
        "TRAKKR_WEBHOOKS_ALLOWED_CIDRS (self-hosted receivers, e.g. ['127.0.0.1/32'])"
    )


def test_the_metadata_service_is_named(client):
    message = url_error(client.post("/webhooks", json={**BASE, "url": "https://169.254.169.254/latest/meta-data"}))
    assert message.startswith("the URL's host 169.254.169.254 (the cloud instance metadata service), a link-local address")


@pytest.mark.parametrize("url", ["https://localhost/h", "https://LOCALHOST./h", "https://api.localhost/h"])
def test_localhost_names_are_loopback_whatever_dns_says(client, resolver, url):
    resolver(Answers("93.184.216.34"))
    message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
    assert "resolves to 127.0.0.1, a loopback address" in message


def test_one_private_answer_among_public_ones_refuses_the_url(client, resolver):
    resolver(Answers("93.184.216.34", "10.0.0.7"))
    message = url_error(client.post("/webhooks", json={**BASE, "url": "https://split.example/h"}))
    assert message.startswith("webhook host 'split.example' resolves to 10.0.0.7, a private address")


@pytest.mark.parametrize("url", ["https://127.1/h", "https://0x7f.1/h", "https://2130706433/h", "https://017700000001/h"])
def test_numeric_ipv4_tricks_are_refused_before_any_lookup(client, resolver, url):
    resolver(refuse_to_resolve)
    message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
    assert "non-canonical IPv4 address" in message


def test_an_ipv6_zone_is_refused(client, resolver):
    resolver(refuse_to_resolve)
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://[fe80::1%25eth0]/h"})) == (
        "must not use an IPv6 zone identifier (%...)")


def test_an_unresolvable_host_is_400_on_url(client):
    message = url_error(client.post("/webhooks", json={**BASE, "url": "https://nothing-here.invalid/h"}))
    assert message.startswith("webhook host 'nothing-here.invalid' could not be resolved: ")


def test_a_host_with_no_addresses_is_400_on_url(client, resolver):
    resolver(Answers())
    assert url_error(client.post("/webhooks", json={**BASE, "url": "https://empty.example/h"})) == (
        "webhook host 'empty.example' could not be resolved: no addresses")


def test_a_public_name_is_saved_and_resolved_once(client, resolver):
    answers = resolver(Answers("93.184.216.34", "2606:4700::1111"))
    response = client.post("/webhooks", json={**BASE, "url": "https://Hooks.Example.com/in"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["url"] == "https://Hooks.Example.com/in"
    assert answers.calls == [("hooks.example.com", 443)]


def test_the_access_policy_is_asked_before_any_lookup(make_app, resolver):
    """A caller who may not manage the brand cannot use the API as a DNS oracle."""
    client = make_app(policy=lambda brand_id: False).test_client()
    resolver(refuse_to_resolve)
    response = client.post("/webhooks", json={**BASE, "url": "https://probe.example/h"})
    assert response.status_code == 403
    assert response.get_json()["error"]["fields"] == {"brand_id": ["the access policy refused this brand"]}


def test_other_invalid_fields_are_reported_without_a_lookup(client, resolver):
    resolver(refuse_to_resolve)
    response = client.post("/webhooks", json={**BASE, "url": "https://probe.example/h", "events": ["nope"]})
    assert response.status_code == 400
    assert list(response.get_json()["error"]["fields"]) == ["events.0"]


# -- settings -------------------------------------------------------------------------------------


def test_allow_private_networks_admits_loopback_and_private(make_app, resolver):
    client = make_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_REQUIRE_HTTPS=False).test_client()
    for url in ("http://127.0.0.1:8080/hook", "https://[::1]/h", "https://10.1.2.3/h", "https://169.254.169.254/h"):
        response = client.post("/webhooks", json={**BASE, "url": url})
        assert response.status_code == 201, (url, response.get_json())
    resolver(Answers("192.168.0.10"))
    assert client.post("/webhooks", json={**BASE, "url": "https://nas.example/h"}).status_code == 201


@pytest.mark.parametrize("url,address_class", [("https://0.0.0.0/h", "unspecified"), ("https://224.0.0.1/h", "multicast"),
                                               ("https://255.255.255.255/h", "broadcast"), ("https://[::]/h", "unspecified")])
def test_allow_private_networks_never_admits_unspecified_multicast_broadcast(make_app, url, address_class):
    client = make_app(TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["0.0.0.0/0", "::/0"]).test_client()
    message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
    assert message.endswith(f"{address_class} address, {NEVER}")


def test_allowed_cidrs_admit_their_range_only(make_app, resolver):
    client = make_app(TRAKKR_WEBHOOKS_ALLOWED_CIDRS=["10.1.0.0/16", "fd12:3456::/32"]).test_client()
    for url in ("https://10.1.0.1/h", "https://10.1.255.254/h", "https://[fd12:3456::9]/h"):
        assert client.post("/webhooks", json={**BASE, "url": url}).status_code == 201, url
    for url, address_class in (("https://10.2.0.1/h", "private"), ("https://127.0.0.1/h", "loopback"),
                               ("https://[fd12:3457::1]/h", "unique local (private IPv6)"),
                               ("https://192.168.1.1/h", "private")):
        message = url_error(client.post("/webhooks", json={**BASE, "url": url}))
        assert f"a {address_class} address; webhooks may not target" in message, url
    resolver(Answers("10.1.4.4", "10.9.0.1"))  # one answer inside, one outside: refused
    message = url_error(client.post("/webhooks", json={**BASE, "url": "https://mixed.example/h"}))
    assert message.startswith("webhook host 'mixed.example' resolves to 10.9.0.1, a private address")


def test_allowed_cidrs_as_a_comma_separated_string(make_app):
    client = make_app(TRAKKR_WEBHOOKS_ALLOWED_CIDRS="10.1.0.0/16, 192.168.7.0/24").test_client()
    assert client.post("/webhooks", json={**BASE, "url": "https://192.168.7.7/h"}).status_code == 201
    url_error(client.post("/webhooks", json={**BASE, "url": "https://192.168.8.7/h"}))


# -- PATCH ------------------------------------------------------------------------------------------


@pytest.fixture
def saved(app, client) -> dict:
    response = client.post("/webhooks", json={**BASE, "description": "before"})
    assert response.status_code == 201
    return response.get_json()


def _row(app, webhook_id: str) -> dict:
    with app.app_context():
        row = app.db.session.get(get_state(app).models.Webhook, webhook_id)
        return {"url": row.url, "description": row.description, "provider": row.provider, "updated_at": row.updated_at}


@pytest.mark.parametrize("url", ["https://127.0.0.1/h", "https://[::ffff:10.0.0.1]/h", "https://169.254.169.254/",
                                 "https://0.0.0.0/", "https://nothing-here.invalid/h"])
def test_patch_to_a_refused_url_is_400_and_changes_nothing(app, client, saved, url):
    before_row = _row(app, saved["id"])
    message = url_error(client.patch(f"/webhooks/{saved['id']}", json={"url": url, "description": "after"}))
    assert message
    assert client.get(f"/webhooks/{saved['id']}").get_json() == saved
    assert _row(app, saved["id"]) == before_row


def test_patch_to_a_name_resolving_privately_is_400(app, client, saved, resolver):
    resolver(Answers("172.20.0.5"))
    message = url_error(client.patch(f"/webhooks/{saved['id']}", json={"url": "https://hooks.slack.com/services/T/B/X"}))
    assert message.startswith("webhook host 'hooks.slack.com' resolves to 172.20.0.5, a private address")
    assert client.get(f"/webhooks/{saved['id']}").get_json() == saved


def test_patch_to_a_public_url_is_vetted_and_saved(client, saved, resolver):
    answers = resolver(Answers("93.184.216.34"))
    response = client.patch(f"/webhooks/{saved['id']}", json={"url": "https://hooks.slack.com/services/T/B/X"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["url"] == "https://hooks.slack.com/services/T/B/X"
    assert response.get_json()["provider"] == "slack"
    assert answers.calls == [("hooks.slack.com", 443)]


def test_patch_without_a_new_url_does_not_resolve(client, saved, resolver):
    """Only a new or changed URL is looked up; every delivery checks it again anyway."""
    resolver(refuse_to_resolve)
    for body in ({"description": "after"}, {"url": saved["url"]}, {"active": False}):
        assert client.patch(f"/webhooks/{saved['id']}", json=body).status_code == 200

