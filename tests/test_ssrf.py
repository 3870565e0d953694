"""SSRF guard: every address form that reaches a refused address, and the pinned transport.

The address tables are pure (no network). The pinning tests use real HTTP and HTTPS
servers on 127.0.0.x and prove that the connection goes to the vetted address only,
with Host, SNI and certificate checks on the hostname.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3 import BaseHTTPResponse
from urllib3.exceptions import (
    ConnectTimeoutError,
    InsecureRequestWarning,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from e2e.test_attempt_e2e import BODY, HEADERS, OK, STATUS, Trickler
from flask_trakkr_webhooks import ssrf
from flask_trakkr_webhooks.ssrf import BlockedAddress, MalformedURL, UnpinnedRequest, UnresolvableHost

SETTINGS = ("TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", "TRAKKR_WEBHOOKS_ALLOWED_CIDRS")


def no_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"the resolver must not be asked about {host!r}")


def answers(*addresses: str):
    """A resolver that answers ``addresses`` for any name and records what it was asked."""

    def resolve(host: str, port: int) -> list[str]:
        resolve.calls.append((host, port))  # type: ignore[attr-defined]
        return list(addresses)

    resolve.calls = []  # type: ignore[attr-defined]
    return resolve


# -- the table: URL hosts ------------------------------------------------------------------------

LITERAL_URLS = [
    # loopback, in every spelling getaddrinfo/inet_aton accepts
    ("http://127.0.0.1/", "loopback"),
    ("http://127.255.255.254/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0X7F.0.0.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.1/", "loopback"),
    ("http://127.0.0.1./", "loopback"),
    ("http://127.0.0.1:8080/path?q=1", "loopback"),
    ("http://user:pass@127.0.0.1/", "loopback"),
    ("http://hooks.example.com@127.0.0.1/", "loopback"),
    ("http://127.0.0.1#@hooks.example.com/", "loopback"),
    ("http://127%2E0%2E0%2E1/", "loopback"),
    ("https://[::1]/", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]:8443/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback"),
    ("http://[::127.0.0.1]/", "loopback"),  # IPv4-compatible
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
    ("http://[64:ff9b::127.0.0.1]/", "loopback"),  # NAT64
    ("http://localhost/", "loopback"),
    ("http://LOCALHOST./", "loopback"),
    ("http://LocalHost:5000/", "loopback"),
    ("http://api.localhost/", "loopback"),
    # unspecified
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://0x0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:0.0.0.0]/", "unspecified"),
    # private (RFC 1918)
    ("http://10.0.0.1/", "private"),
    ("http://012.0.0.1/", "private"),
    ("http://167772161/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://0xc0a80101/", "private"),
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[2002:a00:1::]/", "private"),
    ("http://[64:ff9b::c0a8:101]/", "private"),
    ("http://[64:ff9b:1::a00:1]/", "private"),  # local-use NAT64
    # link-local, cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://0xa9fea9fe/", "link-local"),
    ("http://2852039166/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[febf::1]/", "link-local"),
    # carrier-grade NAT
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://100.127.255.254/", "carrier-grade NAT"),
    ("http://100.100.100.200/", "carrier-grade NAT"),
    ("http://[::ffff:100.64.0.1]/", "carrier-grade NAT"),
    # multicast, broadcast
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[ff05::1:3]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://4294967295/", "broadcast"),
    # reserved
    ("http://240.0.0.1/", "reserved"),
    ("http://0.1.2.3/", "reserved"),
    ("http://192.0.0.192/", "reserved"),
    ("http://192.88.99.1/", "reserved"),
    ("http://[100::1]/", "reserved"),
    ("http://[2001:10::1]/", "reserved"),
    ("http://[4000::1]/", "reserved"),
    ("http://[::2]/", "reserved"),
    ("http://[::8.8.8.8]/", "reserved"),  # IPv4-compatible, even of a public address
    # documentation and benchmarking
    ("http://192.0.2.1/", "documentation"),
    ("http://198.51.100.7/", "documentation"),
    ("http://203.0.113.9/", "documentation"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[3fff::1]/", "documentation"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://198.19.255.255/", "benchmarking"),
    ("http://[2001:2::1]/", "benchmarking"),
    # IPv6 unique local, site-local, Teredo
    ("http://[fc00::1]/", "unique local (private IPv6)"),
    ("http://[fd12:3456:789a::1]/", "unique local (private IPv6)"),
    ("http://[fd00:ec2::254]/", "unique local (private IPv6)"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo tunnel"),
]


@pytest.mark.parametrize("url, address_class", LITERAL_URLS)
def test_literal_hosts_are_refused_without_asking_the_resolver(url, address_class):
    with pytest.raises(BlockedAddress) as info:
        ssrf.check_url(url, resolver=no_resolver)
    assert info.value.address_class == address_class
    assert f" {address_class} address" in str(info.value)


# -- the table: resolver answers ------------------------------------------------------------------

RESOLVED = [
    ("127.0.0.1", "loopback"),
    ("127.0.1.1", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::7f00:1", "loopback"),
    ("2002:7f00:1::1", "loopback"),
    ("64:ff9b::7f00:1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("10.1.2.3", "private"),
    ("172.20.0.5", "private"),
    ("192.168.0.10", "private"),
    ("::ffff:192.168.0.10", "private"),
    ("2002:c0a8:1::1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%1", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("100.64.1.1", "carrier-grade NAT"),
    ("224.0.0.251", "multicast"),
    ("ff02::fb", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.1.2.3", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.10", "documentation"),
    ("2001:db8::10", "documentation"),
    ("198.18.5.5", "benchmarking"),
    ("fd00::10", "unique local (private IPv6)"),
    ("fec0::10", "site-local"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo tunnel"),
]


@pytest.mark.parametrize("address, address_class", RESOLVED)
def test_names_resolving_to_refused_addresses_are_refused(address, address_class):
    resolver = answers(address)
    with pytest.raises(BlockedAddress) as info:
        ssrf.check_url("https://hooks.example.com/in", resolver=resolver)
    error = info.value
    assert error.address_class == address_class
    assert error.address == ipaddress.ip_address(address)
    assert error.host == "hooks.example.com"
    assert str(error).startswith(f"webhook host 'hooks.example.com' resolves to {ipaddress.ip_address(address)}")
    assert resolver.calls == [("hooks.example.com", 443)]


@pytest.mark.parametrize("address, address_class", RESOLVED)
def test_classify_agrees_with_the_table(address, address_class):
    assert ssrf.classify(address.split("%")[0]) == address_class


PUBLIC = [
    ("8.8.8.8", "8.8.8.8"),
    ("1.1.1.1", "1.1.1.1"),
    ("93.184.216.34", "93.184.216.34"),
    ("2606:4700:4700::1111", "2606:4700:4700::1111"),
    ("::ffff:8.8.8.8", "8.8.8.8"),  # IPv4-mapped: connected to as IPv4
    ("64:ff9b::808:808", "64:ff9b::808:808"),  # NAT64 of a public address
    ("2002:808:808::1", "2002:808:808::1"),  # 6to4 of a public address
    # the addresses just outside each refused range
    ("9.255.255.255", "9.255.255.255"),
    ("11.0.0.0", "11.0.0.0"),
    ("100.63.255.255", "100.63.255.255"),
    ("100.128.0.0", "100.128.0.0"),
    ("126.255.255.255", "126.255.255.255"),
    ("128.0.0.0", "128.0.0.0"),
    ("169.253.255.255", "169.253.255.255"),
    ("169.255.0.0", "169.255.0.0"),
    ("172.15.255.255", "172.15.255.255"),
    ("172.32.0.0", "172.32.0.0"),
    ("192.167.255.255", "192.167.255.255"),
    ("192.169.0.0", "192.169.0.0"),
    ("198.17.255.255", "198.17.255.255"),
    ("198.20.0.0", "198.20.0.0"),
    ("223.255.255.255", "223.255.255.255"),
    ("2001:200::1", "2001:200::1"),
    ("2c0f:fb50::1", "2c0f:fb50::1"),
]


@pytest.mark.parametrize("address, connect_to", PUBLIC)
def test_public_addresses_pass(address, connect_to):
    assert ssrf.classify(address) is None
    assert ssrf.check_url("https://hooks.example.com/", resolver=answers(address)) == [ipaddress.ip_address(connect_to)]
    host = f"[{address}]" if ":" in address else address
    assert ssrf.check_url(f"https://{host}/", resolver=no_resolver) == [ipaddress.ip_address(connect_to)]


def test_numeric_forms_match_what_the_system_connects_to():
    """Our inet_aton normalisation agrees with getaddrinfo wherever the system accepts the form."""
    forms = ["0x7f.1", "127.1", "2130706433", "017700000001", "0177.0.0.1", "0x7f000001", "127.0.1", "012.0.0.1", "0"]
    for form in forms:
        ours = ssrf._inet_aton(form)
        try:
            system = socket.getaddrinfo(form, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except socket.gaierror:
            continue  # this libc does not read the form at all: it cannot connect there either
        assert str(ours) == system, form


# -- mixed answers, allowlists, settings ------------------------------------------------------------


@pytest.mark.parametrize(
    "addresses, refused",
    [
        (["93.184.216.34", "127.0.0.1"], "127.0.0.1"),
        (["127.0.0.1", "93.184.216.34"], "127.0.0.1"),
        (["2606:4700::1", "8.8.8.8", "10.0.0.5"], "10.0.0.5"),
        (["8.8.8.8", "fd00::1"], "fd00::1"),
        (["8.8.8.8", "::ffff:169.254.169.254"], "::ffff:169.254.169.254"),
    ],
)
def test_one_refused_answer_refuses_the_url(addresses, refused):
    with pytest.raises(BlockedAddress) as info:
        ssrf.check_url("https://hooks.example.com/", resolver=answers(*addresses))
    assert info.value.address == ipaddress.ip_address(refused)


def test_all_public_answers_are_returned_in_order_without_duplicates():
    resolver = answers("2606:4700::1", "8.8.8.8", "8.8.8.8", "::ffff:8.8.8.8")
    assert ssrf.check_url("https://hooks.example.com/", resolver=resolver) == [
        ipaddress.ip_address("2606:4700::1"),
        ipaddress.ip_address("8.8.8.8"),
    ]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "192.168.1.5",
        "169.254.169.254",
        "100.64.0.1",
        "fd00::1",
        "fe80::1",
        "240.0.0.1",
        "192.0.2.1",
    ],
)
def test_allow_private_admits_non_public_unicast(address):
    host = f"[{address}]" if ":" in address else address
    assert ssrf.check_url(f"http://{host}:8080/", allow_private=True) == [ipaddress.ip_address(address)]


@pytest.mark.parametrize(
    "url, address_class",
    [
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "broadcast"),
    ],
)
def test_unspecified_multicast_broadcast_are_never_allowed(url, address_class):
    for kwargs in ({"allow_private": True}, {"allowed_cidrs": ["0.0.0.0/0", "::/0"]}):
        with pytest.raises(BlockedAddress) as info:
            ssrf.check_url(url, **kwargs)
        assert info.value.address_class == address_class
        assert info.value.setting is None
        assert "never a valid webhook destination (no setting allows it)" in str(info.value)


def test_allowed_cidrs_admit_only_their_networks():
    cidrs = ["10.1.0.0/16", "fd00:1::/32", "127.0.0.1/32"]
    assert ssrf.check_url("http://10.1.2.3/", allowed_cidrs=cidrs) == [ipaddress.ip_address("10.1.2.3")]
    assert ssrf.check_url("http://[fd00:1::5]/", allowed_cidrs=cidrs) == [ipaddress.ip_address("fd00:1::5")]
    assert ssrf.check_url("http://[::ffff:10.1.9.9]/", allowed_cidrs=cidrs) == [ipaddress.ip_address("10.1.9.9")]
    assert ssrf.check_url("http://h.example/", allowed_cidrs=cidrs, resolver=answers("10.1.0.1", "8.8.8.8")) == [
        ipaddress.ip_address("10.1.0.1"),
        ipaddress.ip_address("8.8.8.8"),
    ]
    for url in ["http://10.2.0.1/", "http://127.0.0.2/", "http://[fd00:2::1]/", "http://localhost/"]:
        with pytest.raises(BlockedAddress) as info:
            ssrf.check_url(url, allowed_cidrs=cidrs)
        assert "TRAKKR_WEBHOOKS_ALLOWED_CIDRS" in str(info.value)
    # localhost is admitted only if every loopback answer is: ::1 is not in the list.
    with pytest.raises(BlockedAddress) as info:
        ssrf.check_url("http://localhost/", allowed_cidrs=["127.0.0.0/8"])
    assert info.value.address == ipaddress.ip_address("::1")
    assert ssrf.check_url("http://localhost/", allowed_cidrs=["127.0.0.0/8", "::1/128"]) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_allowed_cidrs_as_a_comma_separated_string():
    assert ssrf.check_url("http://192.168.5.9/", allowed_cidrs="10.0.0.0/8, 192.168.5.0/24") == [
        ipaddress.ip_address("192.168.5.9")
    ]


@pytest.mark.parametrize("bad", [["10.0.0.0/33"], ["not-a-network"], "10.0.0.0/8,nope"])
def test_bad_allowed_cidrs_name_the_setting(bad):
    with pytest.raises(ValueError, match="TRAKKR_WEBHOOKS_ALLOWED_CIDRS: .* is not a network in CIDR form"):
        ssrf.parse_cidrs(bad)


def test_settings_kwargs():
    from flask_trakkr_webhooks.config import load_settings

    settings = load_settings(
        {"TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": True, "TRAKKR_WEBHOOKS_ALLOWED_CIDRS": "10.0.0.0/8"}
    )
    assert ssrf.settings_kwargs(settings) == {"allow_private": True, "allowed_cidrs": ("10.0.0.0/8",)}


# -- messages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        (
            "http://127.0.0.1/",
            "the URL's host 127.0.0.1, a loopback address; webhooks may not target loopback addresses unless "
            "TRAKKR_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True (development) or the address is inside a network listed in "
            "TRAKKR_WEBHOOKS_ALLOWED_CIDRS (self-hosted receivers, e.g. ['127.0.0.1/32'])",
        ),
        ("http://0x7f.1/", "the URL's host '0x7f.1' is the IP address 127.0.0.1, a loopback address;"),
        ("http://10.0.0.1/", "the URL's host 10.0.0.1, a private address;"),
        ("http://169.254.169.254/", "169.254.169.254 (the cloud instance metadata service), a link-local address;"),
        ("http://100.64.0.1/", "a carrier-grade NAT address;"),
        ("http://[fd00:ec2::254]/", "(the AWS instance metadata service), a unique local (private IPv6) address;"),
        ("http://[::ffff:127.0.0.1]/", "(IPv4-mapped form of 127.0.0.1), a loopback address; "),
        ("http://[::ffff:127.0.0.1]/", "e.g. ['127.0.0.1/32']"),
        ("http://[2002:a00:1::]/", "(6to4 form of 10.0.0.1), a private address;"),
        ("http://[64:ff9b::a9fe:a9fe]/", "(NAT64 form of 169.254.169.254), a link-local address;"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "(Teredo tunnel to 192.0.2.45), a Teredo tunnel address;"),
        ("http://[fe80::1]/", "e.g. ['fe80::1/128']"),
        (
            "http://0.0.0.0/",
            "the URL's host 0.0.0.0, an unspecified address, which is never a valid webhook destination",
        ),
    ],
)
def test_messages_name_the_address_its_class_and_the_setting(url, expected):
    with pytest.raises(BlockedAddress) as info:
        ssrf.check_url(url)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "address", [a for a, _ in RESOLVED if ssrf.classify(a.split("%")[0]) not in ssrf.NEVER_ALLOWED]
)
def test_every_allowable_refusal_names_both_settings(address):
    with pytest.raises(BlockedAddress) as info:
        ssrf.check_url("https://hooks.example.com/", resolver=answers(address))
    assert all(setting in str(info.value) for setting in SETTINGS)
    assert info.value.setting == " or ".join(SETTINGS)


# -- malformed URLs and resolution failures ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        None,
        42,
        "not a url",
        "hooks.example.com/path",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "dict://127.0.0.1:11211/",
        "http://",
        "http:///path",
        "http://1.2.3.4.5/",
        "http://256.0.0.1/",
        "http://1.2.3.256/",
        "http://08.0.0.1/",
        "http://4294967296/",
        "http://0x100000000/",
        "http://[::ffff:0x7f.1]/",
        "http://[127.0.0.1]/",
        "http://[::1/",
        "http://ＬＯＣＡＬＨＯＳＴ/",
        "http://①②⑦.⓪.⓪.①/",
        "http://a..b/",
        "http://exa_mple..com/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:80:80/",
        "http://*.example.com/",
        "http://" + "a" * 64 + ".example.com/",
        "http://" + ".".join(["abcdefghij"] * 24) + ".com/",
    ],
)
def test_malformed_urls_are_refused(url):
    with pytest.raises(MalformedURL):
        ssrf.check_url(url, resolver=no_resolver)


def test_idna_and_uppercase_hosts_are_resolved_in_their_ascii_form():
    resolver = answers("8.8.8.8")
    ssrf.check_url("https://BÜCHER.Example/", resolver=resolver)
    ssrf.check_url("https://Hooks.EXAMPLE.com./x", resolver=resolver)
    assert resolver.calls == [("xn--bcher-kva.example", 443), ("hooks.example.com.", 443)]
    with pytest.raises(BlockedAddress):
        ssrf.check_url("https://bücher.example/", resolver=answers("127.0.0.1"))


def test_unresolvable_hosts_are_distinct_from_blocked():
    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnresolvableHost) as info:
        ssrf.check_url("https://gone.example.com/", resolver=failing)
    assert info.value.host == "gone.example.com"
    assert "could not be resolved" in str(info.value)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, BlockedAddress)
    with pytest.raises(UnresolvableHost, match="no addresses"):
        ssrf.check_url("https://empty.example.com/", resolver=answers())


def test_the_system_resolver_is_used_by_default():
    with pytest.raises(UnresolvableHost):
        ssrf.check_url("https://nothing-here.invalid/")  # .invalid never resolves (RFC 6761)
    assert "127.0.0.1" in ssrf.system_resolver("127.0.0.1", 80)


def test_use_resolver_overrides_process_wide_and_restores():
    with ssrf.use_resolver(answers("10.0.0.1")):
        with pytest.raises(BlockedAddress):
            ssrf.check_url("https://hooks.example.com/")
        assert ssrf.check_url("https://hooks.example.com/", resolver=answers("8.8.8.8"))  # explicit wins
    with pytest.raises(UnresolvableHost):
        ssrf.check_url("https://nothing-here.invalid/")


# -- pinned transport: real servers on 127.0.0.x ----------------------------------------------------------


class Receiver:
    """A small threaded HTTP(S) server that records connections, requests and SNI names."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.sni: list[str | None] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible
            disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms stalls on keep-alive

            def setup(self) -> None:
                super().setup()
                with receiver.lock:
                    receiver.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "host": self.headers.get("Host"),
                            "cookie": self.headers.get("Cookie"),
                            "body": body,
                            "headers": list(self.headers.items()),
                        }
                    )
                status, headers = 200, {}
                if self.path == "/redirect":
                    status, headers = 302, {"Location": f"http://127.0.0.2:{receiver.port}/elsewhere"}
                elif self.path == "/cookie":
                    headers = {"Set-Cookie": "session=abc; Path=/"}
                payload = f"hello from {host}".encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        server_class = ThreadingHTTPServer
        if ":" in host:
            server_class = type("IPv6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pair() -> Iterator[tuple[Receiver, Receiver]]:
    """Receiver A on 127.0.0.1 and receiver B on 127.0.0.2, on the same port."""
    for _ in range(20):
        a = Receiver("127.0.0.1")
        try:
            b = Receiver("127.0.0.2", a.port)
        except OSError:
            a.close()
            continue
        break
    else:  # pragma: no cover - the port space would have to be exhausted
        raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def session() -> Iterator[ssrf.PinnedClient]:
    with ssrf.PinnedClient() as client:
        yield client


def post(url: str, body: bytes = b'{"ok": true}') -> ssrf.Outgoing:
    return ssrf.Outgoing("POST", url, body, {"Content-Type": "application/json"})


def text(response: BaseHTTPResponse) -> str:
    """The whole body, decoded (reading it to the end gives the connection back to its pool)."""
    return response.data.decode()


def test_pinned_request_reaches_the_vetted_address_with_the_hostname_in_host(pair, session):
    a, b = pair
    response = ssrf.safe_send(
        session,
        post(f"http://receiver.test:{a.port}/hook"),
        timeout=5,
        allowed_cidrs=["127.0.0.1/32"],
        resolver=answers("127.0.0.1"),
    )
    assert response.status == 200 and text(response) == "hello from 127.0.0.1"
    [got] = a.requests
    assert {k: got[k] for k in ("path", "host", "cookie", "body")} == {
        "path": "/hook",
        "host": f"receiver.test:{a.port}",
        "cookie": None,
        "body": b'{"ok": true}',
    }
    assert b.connections == 0


def test_pinned_ipv6_and_ipv4_mapped_answers(pair, session):
    a, _ = pair
    v6 = Receiver("::1")
    try:
        response = ssrf.safe_send(
            session, post(f"http://six.test:{v6.port}/"), timeout=5, allowed_cidrs=["::1/128"], resolver=answers("::1")
        )
        assert text(response) == "hello from ::1"
        assert v6.requests[0]["host"] == f"six.test:{v6.port}"
    finally:
        v6.close()
    # An IPv4-mapped answer is connected to over IPv4, where it really goes.
    response = ssrf.safe_send(
        session,
        post(f"http://mapped.test:{a.port}/"),
        timeout=5,
        allowed_cidrs=["127.0.0.1/32"],
        resolver=answers("::ffff:127.0.0.1"),
    )
    assert text(response) == "hello from 127.0.0.1"


def test_refused_url_never_connects(pair, session):
    a, b = pair
    with pytest.raises(BlockedAddress):
        ssrf.safe_send(session, post(f"http://receiver.test:{a.port}/"), timeout=5, resolver=answers("127.0.0.1"))
    with pytest.raises(UnresolvableHost):
        ssrf.safe_send(session, post(f"http://receiver.test:{a.port}/"), timeout=5, resolver=answers())
    assert a.connections == b.connections == 0


def test_dns_rebinding_between_check_and_connect_cannot_redirect_the_request(pair, session, monkeypatch):
    """The check sees 127.0.0.1 (vetted through the allowlist); every later lookup of the name
    answers 127.0.0.2. The request still goes to 127.0.0.1, and 127.0.0.2 is never contacted."""
    a, b = pair
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"] if len(calls) == 1 else ["127.0.0.2"]

    real_getaddrinfo = socket.getaddrinfo

    def system_rebound(host: Any, *args: Any, **kwargs: Any) -> Any:
        # What the system resolver would now answer for the name (numeric hosts pass through).
        return real_getaddrinfo("127.0.0.2" if host == "rebind.test" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", system_rebound)
    url = f"http://rebind.test:{a.port}/hook"
    for _ in range(3):
        response = ssrf.pinned_send(
            session,
            post(url),
            ssrf.check_url(url, allowed_cidrs=["127.0.0.1/32"], resolver=lambda h, p: ["127.0.0.1"]),
            timeout=5,
        )
        assert text(response) == "hello from 127.0.0.1"
    response = ssrf.safe_send(session, post(url), timeout=5, allowed_cidrs=["127.0.0.1/32"], resolver=rebinding)
    assert text(response) == "hello from 127.0.0.1"
    assert len(a.requests) == 4 and b.connections == 0 and b.requests == []
    assert calls == ["rebind.test"]  # resolved once, at check time
    # A second check sees the rebound answer and refuses it.
    with pytest.raises(BlockedAddress, match="127.0.0.2"):
        ssrf.check_url(url, allowed_cidrs=["127.0.0.1/32"], resolver=rebinding)

    # Control: an ordinary client does follow the rebound name, so this test can tell the difference.
    with requests.Session() as plain:
        plain.trust_env = False
        assert plain.post(url, timeout=5).text == "hello from 127.0.0.2"
    assert b.connections == 1


def test_rebinding_to_loopback_after_a_public_answer_connects_only_to_the_public_address(monkeypatch):
    """Resolver answers a public address, then 127.0.0.1. The socket layer is spied on (nothing
    leaves the machine): the only connection attempted is to the vetted public address."""
    targets: list[tuple[str, int]] = []

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        targets.append(address)
        raise ConnectionRefusedError(111, "refused by the test")

    monkeypatch.setattr(ssrf._u3_connection, "create_connection", spy)
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))]
    )
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.216.34"] if len(calls) == 1 else ["127.0.0.1"]

    with ssrf.PinnedClient() as session, pytest.raises(NewConnectionError):
        ssrf.safe_send(session, post("http://rebind.example/hook"), timeout=2, resolver=rebinding)
    assert targets == [("93.184.216.34", 80)]
    assert calls == ["rebind.example"]


def test_connections_are_reused_per_host_and_address(pair, session):
    a, b = pair
    url = f"http://multi.test:{a.port}/"
    everywhere = ["127.0.0.1/32", "127.0.0.2/32"]

    def send(resolver: Any) -> None:
        # Each answer is read to its end, which gives its connection back to the pool.
        response = ssrf.safe_send(session, post(url), timeout=5, allowed_cidrs=everywhere, resolver=resolver)
        assert text(response).startswith("hello from")

    for _ in range(3):
        send(answers("127.0.0.1"))
    assert (a.connections, len(a.requests)) == (1, 3)  # one keep-alive connection
    send(answers("127.0.0.2"))
    assert (b.connections, len(b.requests)) == (1, 1)  # same host, new address: a new pool
    send(answers("127.0.0.1"))
    assert (a.connections, len(a.requests)) == (1, 4)  # the first pool is still there
    assert all(r["host"] == f"multi.test:{a.port}" for r in a.requests + b.requests)


def test_concurrent_sends_on_one_session_keep_their_own_pins(pair, session):
    a, b = pair
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        address = "127.0.0.1" if index % 2 else "127.0.0.2"
        try:
            for _ in range(5):
                answer = text(ssrf.pinned_send(session, post(f"http://both.test:{a.port}/"), [address], timeout=5))
                results.append((address, answer))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 40
    assert all(answer == f"hello from {address}" for address, answer in results)
    assert len(a.requests) == len(b.requests) == 20


def test_next_address_is_tried_only_when_the_connection_is_refused(pair, session):
    a, _ = pair
    closed = "127.0.0.3"  # nothing listens there: connect() is refused at once
    response = ssrf.pinned_send(session, post(f"http://fallback.test:{a.port}/"), [closed, "127.0.0.1"], timeout=5)
    assert text(response) == "hello from 127.0.0.1"
    with pytest.raises(NewConnectionError, match="127.0.0.3"):
        ssrf.pinned_send(session, post(f"http://fallback.test:{a.port}/"), [closed], timeout=5)


def test_the_wire_headers_are_requests_defaults_under_the_senders_own(pair, session):
    a, _ = pair
    sent = ssrf.Outgoing("POST", f"http://127.0.0.1:{a.port}/hook", b"{}", {"user-agent": "ours/1", "X-One": "1"})
    assert text(ssrf.safe_send(session, sent, timeout=5, allow_private=True)) == "hello from 127.0.0.1"
    [got] = a.requests
    headers = got["headers"]
    # One User-Agent, the sender's, whatever its letter case; what requests always added stays.
    assert [v for k, v in headers if k.lower() == "user-agent"] == ["ours/1"]
    assert dict(headers)["Accept"] == "*/*" and dict(headers)["Connection"] == "keep-alive"
    assert "gzip" in dict(headers)["Accept-Encoding"] and dict(headers)["X-One"] == "1"
    assert dict(headers)["Content-Length"] == "2"


@pytest.mark.parametrize(
    ("name", "value"), [("X-Bad", "a\r\nInjected: 1"), ("X-Bad", " leading space"), ("X-Bad:", "v")]
)
def test_a_header_that_would_break_the_request_is_refused_before_connecting(pair, session, name, value):
    a, _ = pair
    sent = ssrf.Outgoing("POST", f"http://127.0.0.1:{a.port}/hook", b"{}", {name: value})
    with pytest.raises(requests.exceptions.InvalidHeader):
        ssrf.safe_send(session, sent, timeout=5, allow_private=True)
    assert a.connections == 0


def test_a_url_with_credentials_is_never_sent():
    # The API refuses them at save time; the client refuses them too rather than drop them silently.
    with pytest.raises(MalformedURL, match="credentials"):
        ssrf.target("http://user:secret@127.0.0.1:8080/hook")
    assert ssrf.target("http://Hooks.Example:8080") == ("http", "hooks.example", 8080, "/")
    assert ssrf.target("https://hooks.example/a b?x=1") == ("https", "hooks.example", None, "/a%20b?x=1")


def test_redirects_are_returned_not_followed(pair, session):
    a, b = pair
    response = ssrf.safe_send(session, post(f"http://127.0.0.1:{a.port}/redirect"), timeout=5, allow_private=True)
    assert response.status == 302
    assert response.headers["Location"].startswith("http://127.0.0.2:")
    assert text(response) == "hello from 127.0.0.1"  # the 302's own body: nothing was followed
    assert len(a.requests) == 1 and b.connections == 0


def test_unpinned_sends_fail_closed(pair, session):
    a, b = pair
    with pytest.raises(UnpinnedRequest):
        session.send(post(f"http://127.0.0.1:{a.port}/"), addresses=[], timeout=5)  # no vetted address given
    with pytest.raises(UnpinnedRequest):
        ssrf.pinned_send(session, post(f"http://127.0.0.1:{a.port}/"), [], timeout=5)
    with requests.Session() as plain, pytest.raises(UnpinnedRequest, match="PinnedClient"):
        ssrf.pinned_send(plain, post(f"http://127.0.0.1:{a.port}/"), ["127.0.0.1"], timeout=5)  # type: ignore[arg-type]
    assert a.connections == b.connections == 0


def test_proxies_from_the_environment_are_ignored(pair, session, monkeypatch):
    a, b = pair
    proxy = f"http://127.0.0.2:{b.port}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    url = f"http://receiver.test:{a.port}/"
    for _ in range(2):
        ssrf.safe_send(session, post(url), timeout=5, allowed_cidrs=["127.0.0.1/32"], resolver=answers("127.0.0.1"))
    assert len(a.requests) == 2 and b.connections == 0


def test_cookies_are_never_stored_or_sent(pair, session):
    a, _ = pair
    for path in ("/cookie", "/next"):
        response = ssrf.safe_send(session, post(f"http://127.0.0.1:{a.port}{path}"), timeout=5, allow_private=True)
        assert response.status == 200
    assert [r["cookie"] for r in a.requests] == [None, None]


# -- HTTPS: SNI and certificate verification use the hostname ---------------------------------------------

HOSTNAME = "hooks.test.example"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for hooks.test.example only (no IP address in it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTNAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTNAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(certificate: tuple[Path, Path]) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    receiver = Receiver("127.0.0.1", tls=context)
    yield receiver
    receiver.close()


def test_https_pinned_to_127_0_0_1_verifies_the_certificate_against_the_hostname(tls_receiver, certificate, session):
    cert_path, _ = certificate
    resolver = answers("127.0.0.1")
    for _ in range(2):
        response = ssrf.safe_send(
            session,
            post(f"https://{HOSTNAME}:{tls_receiver.port}/tls"),
            timeout=5,
            verify=str(cert_path),
            allowed_cidrs=["127.0.0.1/32"],
            resolver=resolver,
        )
        assert response.status == 200 and text(response) == "hello from 127.0.0.1"
    # The certificate names only the hostname, so verification could only pass on the hostname.
    assert tls_receiver.sni == [HOSTNAME]  # one TLS handshake, SNI = hostname; the second request reused it
    assert tls_receiver.connections == 1
    assert [r["host"] for r in tls_receiver.requests] == [f"{HOSTNAME}:{tls_receiver.port}"] * 2
    assert resolver.calls == [(HOSTNAME, tls_receiver.port)] * 2


def test_https_with_a_name_the_certificate_does_not_cover_fails_verification(tls_receiver, certificate, session):
    cert_path, _ = certificate
    with pytest.raises(SSLError) as info:
        ssrf.safe_send(
            session,
            post(f"https://other.test.example:{tls_receiver.port}/tls"),
            timeout=5,
            verify=str(cert_path),
            allowed_cidrs=["127.0.0.1/32"],
            resolver=answers("127.0.0.1"),
        )
    assert "other.test.example" in str(info.value) or "hostname" in str(info.value).lower()
    assert tls_receiver.sni == ["other.test.example"]
    assert tls_receiver.requests == []


def test_https_by_ip_literal_fails_verification_against_a_hostname_certificate(tls_receiver, certificate, session):
    cert_path, _ = certificate
    with pytest.raises(SSLError):
        ssrf.safe_send(
            session,
            post(f"https://127.0.0.1:{tls_receiver.port}/tls"),
            timeout=5,
            verify=str(cert_path),
            allow_private=True,
        )
    assert tls_receiver.requests == []


def test_https_without_verification_accepts_the_untrusted_certificate(tls_receiver, session):
    with pytest.warns(InsecureRequestWarning):  # urllib3 says so, as it did under requests
        response = ssrf.safe_send(
            session,
            post(f"https://{HOSTNAME}:{tls_receiver.port}/tls"),
            timeout=5,
            verify=False,
            allowed_cidrs=["127.0.0.1/32"],
            resolver=answers("127.0.0.1"),
        )
    assert response.status == 200 and text(response) == "hello from 127.0.0.1"
    assert tls_receiver.sni == [HOSTNAME]


def test_https_with_an_untrusted_certificate_fails(tls_receiver, session):
    with pytest.raises(SSLError):
        ssrf.safe_send(
            session,
            post(f"https://{HOSTNAME}:{tls_receiver.port}/tls"),
            timeout=5,
            allowed_cidrs=["127.0.0.1/32"],
            resolver=answers("127.0.0.1"),
        )
    assert tls_receiver.requests == []


# -- the deadline: one bound for the whole request ----------------------------------------------------

#: The per-read timeout and the deadline of these tests: trickled pieces come every 0.3 s, so a
#: per-read timeout alone would never fire.
BOUND = 1.0
SLACK = 0.5


def _send_under_deadline(session: ssrf.PinnedClient, url: str, **kwargs: Any) -> BaseHTTPResponse:
    return ssrf.safe_send(
        session,
        post(url),
        timeout=BOUND,
        deadline=time.monotonic() + BOUND,
        allowed_cidrs=["127.0.0.1/32"],
        resolver=answers("127.0.0.1"),
        **kwargs,
    )


@pytest.mark.parametrize("mode", [STATUS, HEADERS])
def test_a_deadline_bounds_a_trickled_status_line_or_headers(session, mode):
    with Trickler(mode, interval=0.3) as rx:
        started = time.monotonic()
        with pytest.raises((ConnectTimeoutError, ReadTimeoutError)):
            _send_under_deadline(session, rx.url.replace("127.0.0.1", "hooks.test") + "/hook")
        took = time.monotonic() - started
    assert BOUND - 0.05 <= took < BOUND + SLACK, took


def test_a_deadline_bounds_reading_a_trickled_body_after_send_returns(session):
    with Trickler(BODY, interval=0.3) as rx:
        started = time.monotonic()
        response = _send_under_deadline(session, rx.url.replace("127.0.0.1", "hooks.test") + "/hook")
        assert response.status == 200
        with pytest.raises(ReadTimeoutError, match="timed out"):
            response.read()
        took = time.monotonic() - started
    assert BOUND - 0.05 <= took < BOUND + SLACK, took


def test_a_deadline_bounds_a_trickled_body_over_https(session, certificate):
    cert_path, key_path = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    with Trickler(BODY, interval=0.3, tls=context) as rx:
        started = time.monotonic()
        response = _send_under_deadline(
            session, rx.url.replace("http://127.0.0.1", f"https://{HOSTNAME}") + "/hook", verify=str(cert_path)
        )
        with pytest.raises((ReadTimeoutError, ProtocolError, SSLError)):
            response.read()
        took = time.monotonic() - started
    assert took < BOUND + SLACK, took


def test_keep_alive_connections_are_reused_under_deadlines(session):
    with Trickler(OK) as rx:
        url = rx.url.replace("127.0.0.1", "hooks.test") + "/hook"
        for _ in range(3):
            with _send_under_deadline(session, url) as response:
                assert response.status == 200 and response.read() == b"ok"
        time.sleep(BOUND + 0.1)  # every deadline is past: the idle connection is still good
        with _send_under_deadline(session, url) as response:
            assert response.read() == b"ok"
    assert len(rx.connections) == 1 and rx.connections[0].requests == 4


def test_a_session_recovers_after_a_request_cut_off_by_its_deadline(session):
    with Trickler(BODY, then=OK, times=1, interval=0.3) as rx:
        url = rx.url.replace("127.0.0.1", "hooks.test") + "/hook"
        with pytest.raises(ReadTimeoutError), _send_under_deadline(session, url) as cut:
            cut.read()
        with _send_under_deadline(session, url) as response:
            assert response.read() == b"ok"
    assert len(rx.connections) == 2  # the cut-off connection was dropped, not reused


def test_without_a_deadline_nothing_changes_for_a_prompt_receiver(session):
    with Trickler(OK) as rx:
        response = ssrf.safe_send(
            session, post(rx.url + "/hook"), timeout=BOUND, allowed_cidrs=["127.0.0.1/32"], resolver=no_resolver
        )
    assert response.status == 200 and text(response) == "ok"
