"""Redis over TLS: a real redis-server with a certificate of a CA made here, reached with rediss://."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from _servers import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emergent.errors import StoreUnavailableError


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(root: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate signed by it (EC P-256: fast)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("emergent test CA")).issuer_name(_name("emergent test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = (x509.CertificateBuilder().subject_name(_name("emergent test client")).issuer_name(ca.subject)
              .public_key(client_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    enc = serialization.Encoding.PEM
    return {
        "client_cert": _pem(root / "client.pem", client.public_bytes(enc)),
        "client_key": _pem(root / "client.key", client_key.private_bytes(enc, serialization.PrivateFormat.PKCS8,
                                                                          serialization.NoEncryption())),
        "ca": _pem(root / "ca.pem", ca.public_bytes(enc)),
        "cert": _pem(root / "server.pem", cert.public_bytes(enc)),
        "key": _pem(root / "server.key", key.private_bytes(enc, serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption())),
    }


@pytest.fixture
def tls_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[int, dict[str, Path]]]:
    auth_clients = getattr(request, "param", "no")
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (make sysdeps)"
    pki = make_pki(tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(pki["cert"]),
         "--tls-key-file", str(pki["key"]), "--tls-ca-cert-file", str(pki["ca"]), "--tls-auth-clients", auth_clients,
         "--dir", str(tmp_path), "--save", "", "--appendonly", "no", "--logfile", str(tmp_path / "redis.log")])
    try:
        import socket

        deadline = time.time() + 10
        while True:
            assert proc.poll() is None, (tmp_path / "redis.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.time() < deadline, "the TLS redis-server did not start"
                time.sleep(0.05)
        yield port, pki
    finally:
        proc.terminate()
        proc.wait(10)


def test_short_term_memory_over_rediss_with_our_ca(home: Path, tls_redis: tuple[int, dict[str, Path]]) -> None:
    from emergent import Workstation

    port, pki = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(pki['ca']))}&ssl_cert_reqs=required"
    ws = Workstation.open(home, embedder="hashing", redis_url=url)
    try:
        rec = ws.memory.remember("the tls pigeon carries the short-term note", scope="agent:tls")
        assert ws.memory.stm.name == "redis"
        assert ws.redis.connection_pool.connection_class.__name__ == "SSLConnection"
        hits = ws.memory.recall("tls pigeon", scope="agent:tls")
        assert [h.record.id for h in hits][:1] == [rec.id]
        assert ws.memory.stm.get("agent:tls", rec.id) is not None  # read back from the TLS server
    finally:
        ws.close()


def test_rediss_refuses_a_server_whose_ca_is_not_trusted(home: Path, tls_redis: tuple[int, dict[str, Path]]) -> None:
    from emergent import Workstation

    port, _ = tls_redis
    ws = Workstation.open(home, embedder="hashing", redis_url=f"rediss://127.0.0.1:{port}/0")  # system CAs only
    try:
        with pytest.raises(StoreUnavailableError) as err:
            _ = ws.redis
        assert "CERTIFICATE_VERIFY_FAILED" in err.value.message or "certificate" in err.value.message.lower()
    finally:
        ws.close()


def test_plain_redis_client_cannot_talk_to_the_tls_port(tls_redis: tuple[int, dict[str, Path]]) -> None:
    import redis

    port, _ = tls_redis
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


@pytest.mark.parametrize("tls_redis", ["yes"], indirect=True)
def test_mutual_tls_needs_the_client_certificate(home: Path, tls_redis: tuple[int, dict[str, Path]]) -> None:
    from emergent import Workstation

    port, pki = tls_redis
    base = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={quote(str(pki['ca']))}"
    ws = Workstation.open(home, embedder="hashing", redis_url=base)
    try:
        with pytest.raises(StoreUnavailableError):
            _ = ws.redis  # the server asks for a client certificate and gets none
    finally:
        ws.close()
    url = f"{base}&ssl_certfile={quote(str(pki['client_cert']))}&ssl_keyfile={quote(str(pki['client_key']))}"
    ws = Workstation.open(home, embedder="hashing", redis_url=url)
    try:
        rec = ws.memory.remember("mutual tls otter", scope="agent:mtls")
        assert ws.memory.stm.get("agent:mtls", rec.id) is not None
    finally:
        ws.close()
