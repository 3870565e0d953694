"""End to end over TLS: a managed Redis answers on ``rediss://`` with its own certificate.

A private ``redis-server`` listens only on a TLS port with a certificate signed by a CA made
for the test; the app emits and the worker delivers through ``rediss://`` URLs that name that
CA (redis-py passes ``ssl_ca_certs`` and ``ssl_cert_reqs`` from the URL's query string), as
docs/capacity.md tells hosts to configure a managed Redis.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from e2e.conftest import wait_until
from e2e.helpers import delivery_status, emit, make_webhook

pytestmark = pytest.mark.e2e


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("trakkr test CA"))
        .issuer_name(_name("trakkr test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "redis.pem", folder / "redis.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A redis-server with TLS only (no plain port): (its TLS port, the CA file that signed it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server (the optional TLS-capable Redis for this test) is not installed")
    ca, cert, key = make_certificates(tmp_path)
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        client = redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}", socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                if "TLS" in output or "tls" in output:
                    pytest.skip(f"redis-server (the optional TLS-capable Redis) was built without TLS: {output[-300:]}")
                raise AssertionError(f"redis-server with TLS exited: {output[-2000:]}")
            try:
                if client.ping():
                    break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.close()
        yield port, ca
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def test_emit_and_delivery_go_through_a_rediss_url(e2e_app, receiver, start_worker, tls_redis):
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    app = e2e_app(TRAKKR_WEBHOOKS_REDIS_URL=url)
    make_webhook(app, receiver.url + "/hooks")
    start_worker(app)
    event_id = emit(app)

    got = receiver.wait_for(1, timeout=30)[0]
    assert got.signature_ok is True
    assert got.json["meta"]["event_id"] == event_id
    wait_until(lambda: delivery_status(app, event_id) == "succeeded", 20, "the delivery recorded as succeeded")
    # The queue and the worker are registered on the TLS server (it has no plain port at all).
    tls_client = redis.Redis.from_url(url)
    assert f"rq:queue:{app.config['TRAKKR_WEBHOOKS_QUEUE']}".encode() in tls_client.smembers("rq:queues")
    assert tls_client.scard("rq:workers") >= 1


def test_a_worker_that_cannot_verify_the_certificate_says_so_in_one_line(e2e_app, start_worker, tls_redis):
    port, _ca = tls_redis
    # No CA named: the system's trust store does not know the test CA, so the handshake fails.
    app = e2e_app(TRAKKR_WEBHOOKS_REDIS_URL=f"rediss://127.0.0.1:{port}/0")
    worker = start_worker(app)
    assert worker.proc.wait(60) != 0
    output = worker.output()
    assert "Traceback" not in output, output
    assert "certificate verify failed" in output or "CERTIFICATE_VERIFY_FAILED" in output, output
