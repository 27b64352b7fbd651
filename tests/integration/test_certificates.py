"""Certificates name only what they may name (issue 19 item 6): `issue-cert` signs only devices head
office knows, never an hq-like or wildcard name; head office's own certificate has its own command and role."""
from __future__ import annotations

import contextlib
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hq import cli as hq


def csr_for(tmp_path, cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256()))
    path = tmp_path / "x.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def office(tmp_path):
    assert hq.main(["keys", "create", "--keys", str(tmp_path / "hq")]) == 0
    for device in ("term-0042", "dev+1"):
        hq.main(["device", "add", "--keys", str(tmp_path / "hq"), device])
    return tmp_path / "hq"


@pytest.mark.parametrize("cn, why", [
    ("hq", "head-office identity"), ("HQ-live", "head-office identity"), ("hq2", "head-office identity"),
    ("dev+1", "not a device id"), ("dev/#", "not a device id"), ("a/b", "not a device id"), ("#", "not a device id"),
    ("term-0099", "not a device head office knows"),
])
def test_issue_cert_refuses_names_it_may_not_sign(tmp_path, office, capsys, cn, why):
    out = tmp_path / "x.crt"
    assert hq.main(["issue-cert", "--keys", str(office), "--csr", str(csr_for(tmp_path, cn)), "--out", str(out)]) == 2
    assert why in capsys.readouterr().err and not out.exists()


def test_issue_cert_signs_a_known_device_as_a_device(tmp_path, office):
    out = tmp_path / "x.crt"
    assert hq.main(["issue-cert", "--keys", str(office), "--csr", str(csr_for(tmp_path, "term-0042")),
                    "--out", str(out)]) == 0
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.subject.rfc4514_string() == "OU=device,CN=term-0042"


def test_device_add_refuses_names_a_device_may_not_have(office, capsys):
    assert hq.main(["device", "add", "--keys", str(office), "hq-backup"]) == 2
    assert hq.main(["device", "add", "--keys", str(office), "a+b"]) == 2
    assert (office / "devices.txt").read_text().split() == ["term-0042"]


def test_head_office_gets_its_own_certificate_with_its_own_role(tmp_path, office, capsys):
    out, key = tmp_path / "hq.crt", tmp_path / "hq.key"
    assert hq.main(["issue-hq-cert", "--keys", str(office), "--out", str(out), "--key-out", str(key)]) == 0
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.subject.rfc4514_string() == "OU=head-office,CN=hq"
    assert key.stat().st_mode & 0o777 == 0o600
    assert hq.main(["issue-hq-cert", "--keys", str(office), "--name", "term-0042", "--out", str(out),
                    "--key-out", str(key)]) == 2


def _handshake(ca, cert, key, server_name: str) -> None:
    """A real TLS handshake: a server with `cert`, a client trusting only `ca` that dials `server_name`."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve():
            conn, _ = listener.accept()
            with contextlib.suppress(ssl.SSLError, OSError), server_ctx.wrap_socket(conn, server_side=True):
                pass
        worker = threading.Thread(target=serve, daemon=True)
        worker.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_name):
                    pass
        finally:
            worker.join(10)


def test_the_broker_certificate_is_trusted_for_the_hosts_it_names_and_no_other(tmp_path, office):
    out, key = tmp_path / "broker.crt", tmp_path / "broker.key"
    assert hq.main(["issue-broker-cert", "--keys", str(office), "--host", "127.0.0.1", "--host", "localhost",
                    "--out", str(out), "--key-out", str(key)]) == 0
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.subject.rfc4514_string() == "OU=broker,CN=127.0.0.1"
    assert (key.stat().st_mode & 0o777) == 0o600
    ca = office / "ca.crt.pem"
    _handshake(ca, out, key, "127.0.0.1")            # what the terminal and head office dial in the demo
    _handshake(ca, out, key, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(ca, out, key, "mqtt.elsewhere.example")
