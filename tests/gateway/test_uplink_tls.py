"""Uplink over wss:// to an amqtt broker whose certificate comes from a CA generated in the test."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.buffer import DurableBuffer
from gateway.config import CloudSection, UplinkSection
from gateway.uplink import Uplink
from tests.gateway.test_uplink import GW, TENANT, Acker, BrokerProc, key, readings, running, until


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(folder: Path, cn: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA certificate written to ``folder/{cn}.pem``."""
    now = datetime.datetime.now(datetime.UTC)
    key_ = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key_.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key_.public_key()), critical=False)
        .sign(key_, hashes.SHA256())
    )
    path = folder / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key_, cert


def make_server_cert(folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 signed by ``ca``; returns (certfile, keyfile)."""
    now = datetime.datetime.now(datetime.UTC)
    key_ = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key_.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certfile, keyfile = folder / "server.pem", folder / "server.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key_.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


@pytest.fixture
async def tls_setup(tmp_path: Path) -> AsyncIterator[tuple[BrokerProc, Path, Path]]:
    """A broker with a wss listener; yields it, the pinned CA file and an unrelated CA file."""
    ca_file, ca_key, ca = make_ca(tmp_path, "roost-test-ca")
    other_ca, _, _ = make_ca(tmp_path, "someone-else-ca")
    certfile, keyfile = make_server_cert(tmp_path, ca_key, ca)
    broker = BrokerProc(certfile=certfile, keyfile=keyfile)
    await broker.start()
    try:
        yield broker, ca_file, other_ca
    finally:
        await broker.stop()


def _uplink(buffer: DurableBuffer, state: Path, url: str, ca_file: Path | None) -> Uplink:
    cloud = CloudSection(mqtt_url=url, ca_file=ca_file, connect_timeout_s=3, backoff_initial_s=0.05, backoff_max_s=0.2)
    return Uplink(
        gateway_id=GW,
        tenant=TENANT,
        cloud=cloud,
        uplink=UplinkSection(batch_max_delay_ms=10),
        buffer=buffer,
        state_dir=state,
    )


async def test_wss_with_pinned_ca(tls_setup: tuple[BrokerProc, Path, Path], tmp_path: Path) -> None:
    broker, ca_file, _ = tls_setup
    async with DurableBuffer(tmp_path / "b.sqlite", max_age_s=0) as buffer:
        acker = Acker(broker.tcp_port)
        up = _uplink(buffer, tmp_path, f"wss://127.0.0.1:{broker.ws_port}/mqtt", ca_file)
        async with running(acker.run(), up.run()):
            await until(lambda: acker.client is not None and up.connected, what="a wss connection")
            await buffer.append(readings(300))
            await until(lambda: buffer.stats()["buffered"] == 0, what="readings over wss")
    assert sorted(map(key, acker.readings)) == sorted(map(key, readings(300)))


@pytest.mark.parametrize("pin", ["system-cas", "another-ca"])
async def test_wss_with_untrusted_certificate_fails_clearly(
    tls_setup: tuple[BrokerProc, Path, Path], tmp_path: Path, pin: str
) -> None:
    broker, _, other_ca = tls_setup
    async with DurableBuffer(tmp_path / "b.sqlite", max_age_s=0) as buffer:
        up = _uplink(
            buffer, tmp_path, f"wss://127.0.0.1:{broker.ws_port}/mqtt", None if pin == "system-cas" else other_ca
        )
        async with running(up.run()):
            await until(lambda: up.connect_failures >= 2, what="failed attempts")
        assert not up.connected and up.reconnects == 0
        assert up.last_error is not None
        assert "certificate" in up.last_error and "cloud.ca_file" in up.last_error, up.last_error


async def test_missing_ca_file_is_reported(tmp_path: Path) -> None:
    async with DurableBuffer(tmp_path / "b.sqlite") as buffer:
        up = _uplink(buffer, tmp_path, "wss://127.0.0.1:1/mqtt", tmp_path / "no-such-ca.pem")
        async with running(up.run()):
            await until(lambda: up.connect_failures >= 1, what="a failed attempt")
        assert up.last_error is not None and "no-such-ca.pem" in up.last_error
