"""Device keys (made on the device, never leave it) and head-office keys (made by `handover-hq keys create`).

Device, in `<state_dir>/keys/` (0700), each private key 0600:
  device_id             the id this key set belongs to
  bundle_x25519.pem     X25519 key that bundles are encrypted to (its public half goes on the USB stick)
  mqtt_client.pem       EC P-256 key of the MQTT client certificate (only a CSR leaves the device)
  hq_signers/*.pem      head-office signing keys trusted before provisioning (installed with the device)
Head office, in a directory of its choosing: signing.pem / signing.pub.pem (Ed25519), ca.pem / ca.crt.pem.

Private keys are never logged: the key objects' reprs carry no material.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.x509.oid import NameOID

from protocol.ids import ID_PATTERN, ID_WHAT

_PEM = serialization.Encoding.PEM
_PKCS8 = serialization.PrivateFormat.PKCS8
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_NOENC = serialization.NoEncryption()


class KeyFileError(Exception):
    """A key file is missing, unreadable or belongs to another device; the message names the file."""


@dataclass(frozen=True)
class DeviceKeys:
    device_id: str
    bundle_key: X25519PrivateKey = field(repr=False)
    mqtt_key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def bundle_public(self) -> X25519PublicKey:
        return self.bundle_key.public_key()

    @classmethod
    def load_or_create(cls, keys_dir: str | os.PathLike, device_id: str) -> "DeviceKeys":
        """This device's keys, generated here on first use. Refuses a keys dir made for another id."""
        d = Path(keys_dir)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        id_file = d / "device_id"
        if id_file.exists():
            have = id_file.read_text().strip()
            if have != device_id:
                raise KeyFileError(f"{d}: the keys belong to device {have!r}, not {device_id!r}")
        else:
            write_private(id_file, device_id.encode() + b"\n")
        bundle = _load_or_make(d / "bundle_x25519.pem", X25519PrivateKey.generate)
        mqtt = _load_or_make(d / "mqtt_client.pem", lambda: ec.generate_private_key(ec.SECP256R1()))
        return cls(device_id, bundle, mqtt)

    def csr_pem(self) -> bytes:
        """A certificate signing request for the MQTT client certificate, CN = device id."""
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)]))
               .sign(self.mqtt_key, hashes.SHA256()))
        return csr.public_bytes(_PEM)


def _load_or_make(path: Path, make):
    if path.exists():
        try:
            return serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError:
            raise KeyFileError(f"{path}: not a readable private key") from None
    key = make()
    write_private(path, key.private_bytes(_PEM, _PKCS8, _NOENC))
    return key


def create_x25519(keys_dir: Path, private_name: str, public_name: str, what: str, sealed: str) -> X25519PublicKey:
    """One of head office's purpose keys (complaints, records): the private half 0600 in keys_dir, the public
    half beside it for terminals. Never overwrites one: everything `sealed` to it would be lost."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (keys_dir / private_name).exists():
        raise KeyFileError(f"{keys_dir}: a {what} exists already; refusing to overwrite it "
                           f"(every {sealed} sealed to it would be lost)")
    key = X25519PrivateKey.generate()
    write_private(keys_dir / private_name, key.private_bytes(_PEM, _PKCS8, _NOENC))
    (keys_dir / public_name).write_bytes(public_pem(key.public_key()))
    return key.public_key()


def load_x25519(path: Path, what: str, create: str) -> X25519PrivateKey:
    """A purpose key made by create_x25519; KeyFileError says what is wrong and the command (`create`) that
    makes one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: the {what} cannot be read ({type(exc).__name__}); run `{create}`") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(f"{path}: the {what} must be X25519")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file 0600 from the first byte (never world-readable, even briefly), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)      # the new name, or a power cut can lose the key and all it sealed


def fsync_dir(directory: Path) -> None:
    """Make names created or renamed in `directory` survive a power cut (POSIX needs the directory synced)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def public_pem(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(_PEM, _SPKI)


def load_public(pem: bytes):
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError:
        raise KeyFileError("not a PEM public key") from None


def load_signers(pem_files: list[Path]) -> list[Ed25519PublicKey]:
    """Ed25519 public keys from PEM files (several keys may be concatenated in one file)."""
    keys = []
    for f in pem_files:
        for block in f.read_bytes().split(b"-----END PUBLIC KEY-----"):
            if b"-----BEGIN PUBLIC KEY-----" not in block:
                continue
            key = load_public(block + b"-----END PUBLIC KEY-----\n")
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError(f"{f}: a head-office signing key must be Ed25519")
            keys.append(key)
    return keys


# --- head office ---------------------------------------------------------------------------------

HQ_IDENTITY = "hq"
HQ_NAME = re.compile(r"hq(-[a-z0-9]+)?")            # hq, hq-live, hq-2: head office's own sessions
HQ_ROLE, DEVICE_ROLE, BROKER_ROLE = "head-office", "device", "broker"      # the certificate's OU
DEVICES_FILE = "devices.txt"                        # in the keys folder: the devices head office knows


def check_device_id(device_id: str) -> None:
    """A device id a certificate may name: a plain id (no "+", "#", "/"), not head office's."""
    if not re.fullmatch(ID_PATTERN, device_id):
        raise KeyFileError(f"{device_id!r} is not a device id: use {ID_WHAT} characters")
    if device_id.casefold().startswith("hq"):
        raise KeyFileError(f"{device_id!r} looks like a head-office identity; a device id may not start with 'hq'")


def known_devices(keys_dir: Path) -> frozenset[str]:
    path = Path(keys_dir) / DEVICES_FILE
    if not path.is_file():
        return frozenset()
    return frozenset(line.strip() for line in path.read_text("utf-8").splitlines() if line.strip())


def add_device(keys_dir: Path, device_id: str) -> bool:
    """Register a device id with head office; False if it was known already."""
    check_device_id(device_id)
    if device_id in known_devices(keys_dir):
        return False
    with open(Path(keys_dir) / DEVICES_FILE, "a", encoding="utf-8") as f:
        f.write(device_id + "\n")
    return True

@dataclass(frozen=True)
class HqKeys:
    signing: Ed25519PrivateKey = field(repr=False)
    ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    ca_cert: x509.Certificate

    @classmethod
    def create(cls, d: Path, *, name: str = "Handover head office CA", now: dt.datetime | None = None) -> "HqKeys":
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if (d / "signing.pem").exists():
            raise KeyFileError(f"{d}: head-office keys already exist; refusing to overwrite them")
        now = now or dt.datetime.now(dt.timezone.utc)
        signing = Ed25519PrivateKey.generate()
        ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca_cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                  critical=True)
                   .sign(ca_key, hashes.SHA256()))
        write_private(d / "signing.pem", signing.private_bytes(_PEM, _PKCS8, _NOENC))
        (d / "signing.pub.pem").write_bytes(public_pem(signing.public_key()))
        write_private(d / "ca.pem", ca_key.private_bytes(_PEM, _PKCS8, _NOENC))
        (d / "ca.crt.pem").write_bytes(ca_cert.public_bytes(_PEM))
        return cls(signing, ca_key, ca_cert)

    @classmethod
    def load(cls, d: Path) -> "HqKeys":
        try:
            signing = serialization.load_pem_private_key((d / "signing.pem").read_bytes(), None)
            ca_key = serialization.load_pem_private_key((d / "ca.pem").read_bytes(), None)
            ca_cert = x509.load_pem_x509_certificate((d / "ca.crt.pem").read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"{d}: head-office keys cannot be read ({exc}); run `handover-hq keys create`") from None
        if not isinstance(signing, Ed25519PrivateKey):
            raise KeyFileError(f"{d / 'signing.pem'}: not an Ed25519 key")
        return cls(signing, ca_key, ca_cert)

    def issue_device_cert(self, csr_pem: bytes, *, known_devices: set[str] | frozenset[str], days: int = 825,
                          now: dt.datetime | None = None) -> x509.Certificate:
        """Sign a device's MQTT client certificate. The CSR must be self-consistent and name, as its only
        subject, a device head office knows; never a head-office identity or a name with MQTT wildcards
        (the broker takes the CN as the username its ACL confines: `%u` in a pattern)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise KeyFileError("the CSR is not a PEM certificate signing request") from None
        if not csr.is_signature_valid:
            raise KeyFileError("the CSR's signature does not verify: it was altered")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or not str(cns[0].value).strip():
            raise KeyFileError("the CSR must name exactly one device id as its common name (CN)")
        device_id = str(cns[0].value)
        check_device_id(device_id)
        if device_id not in known_devices:
            raise KeyFileError(f"{device_id!r} is not a device head office knows; register it first "
                               "(handover-hq device add)")
        return self._issue(device_id, DEVICE_ROLE, csr.public_key(), days, now)

    def issue_hq_cert(self, public_key, *, name: str = HQ_IDENTITY, days: int = 825,
                      now: dt.datetime | None = None) -> x509.Certificate:
        """Head office's own client certificate: its own command and its own role (OU head-office)."""
        if not HQ_NAME.fullmatch(name):
            raise KeyFileError(f"{name!r} is not a head-office identity (hq, or hq-<letters/digits>)")
        return self._issue(name, HQ_ROLE, public_key, days, now)

    def issue_broker_cert(self, public_key, hosts: list[str], *, days: int = 825,
                          now: dt.datetime | None = None) -> x509.Certificate:
        """The broker's TLS server certificate (OU broker), naming the hosts and addresses clients dial:
        terminals and head office then trust one CA, this one, for both directions."""
        if not hosts:
            raise KeyFileError("a broker certificate needs at least one host name or address")
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue(hosts[0], BROKER_ROLE, public_key, days, now,
                           usage=x509.ExtendedKeyUsageOID.SERVER_AUTH, names=names)

    def _issue(self, cn: str, role: str, public_key, days: int, now: dt.datetime | None, *,
               usage=x509.ExtendedKeyUsageOID.CLIENT_AUTH, names: list[x509.GeneralName] = ()) -> x509.Certificate:
        now = now or dt.datetime.now(dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role)])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.ca_cert.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.ca_key, hashes.SHA256())
