"""USB provisioning in two insertions (SPEC §5).

1. A device that is not provisioned writes its identity to the stick: `handover/identity-<device id>.json`
   with its id, the public key bundles are encrypted to, and a CSR (CN = device id) for its MQTT client
   certificate. The private keys stay in `<state_dir>/keys/`.
2. Head office answers with a provisioning bundle for that device. It is installed atomically: a new
   directory under `<state_dir>/provisioning.d/` is written and fsynced, then the symlink
   `<state_dir>/provisioning` is swapped to it in one rename. The daemon reads it through
   `agent.config.provisioned_config()` and `load_trusted_signers()`.

Provisioning payload (docs/bundles.md):
  {"device_id": str, "site": {"id": str, "type": "branch"|"vault"}, "mqtt": {"host": str, "port": int},
   "device_cert": PEM, "ca_cert": PEM, "signers": [PEM, ...] (optional: head-office key rotation),
   "config": {"site"|"device"|"mqtt": {key: str|int|bool}} (optional extra settings),
   "complaint_key": PEM (optional: head office's complaint PUBLIC key, X25519; installed as
                    complaint.pub.pem and set as [complaints] hq_key, so nobody edits it by hand)}
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from agent.config import ConfigError, check_fragment
from flows.model import SiteType
from protocol.bundle import BundleRefused
from protocol.complaint import ComplaintKeyError, key_id, public_key_from_pem
from protocol.keys import DeviceKeys, fsync_dir, load_signers, public_pem

IDENTITY_DIR = "handover"
_SECTIONS = ("site", "device", "mqtt")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --- insertion 1: the device's identity onto the stick ------------------------------------------

def identity_document(keys: DeviceKeys, now: datetime) -> dict:
    return {"device_id": keys.device_id, "bundle_public": public_pem(keys.bundle_public).decode(),
            "csr": keys.csr_pem().decode(), "created": now.astimezone(timezone.utc).isoformat()}


def write_identity(stick_dir: Path, keys: DeviceKeys, now: datetime) -> Path:
    """Write identity-<id>.json on the stick (temp, fsync, rename): the only write this project makes there."""
    d = Path(stick_dir) / IDENTITY_DIR
    d.mkdir(exist_ok=True)
    path = d / f"identity-{keys.device_id}.json"
    tmp = d / f".identity-{keys.device_id}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(identity_document(keys, now), f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(d)
    return path


def is_provisioned(state_dir: Path) -> bool:
    return (Path(state_dir) / "provisioning" / "config.toml").is_file()


# --- insertion 2: head office's bundle onto the device -----------------------------------------

def install_provisioning(body: dict, *, journal, store, device_keys: DeviceKeys, state_dir: Path,
                         bundle_seq: int | None, now: datetime) -> dict:
    """Check a decrypted provisioning payload completely, then install it atomically and journal it."""
    state_dir = Path(state_dir)
    if body.get("device_id") != device_keys.device_id:
        raise BundleRefused("wrong_device", f"the provisioning is for device {body.get('device_id')!r}, "
                                            f"this is {device_keys.device_id}")
    site = _table(body, "site")
    site_id, site_type = site.get("id"), site.get("type")
    if not isinstance(site_id, str) or not site_id:
        raise ValueError("provisioning site.id: must be a site id")
    if site_type not in {t.value for t in SiteType}:
        raise ValueError(f"provisioning site.type: {site_type!r} is not branch or vault")
    mqtt = _table(body, "mqtt")
    host, port = mqtt.get("host"), mqtt.get("port")
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("provisioning mqtt: needs a host name and a port 1-65535")
    ca, cert = _cert(body, "ca_cert"), _cert(body, "device_cert")
    _check_device_cert(cert, ca, device_keys)
    signers = [s.encode() if isinstance(s, str) else b"" for s in body.get("signers", [])]
    for s in signers:
        try:
            ok = isinstance(serialization.load_pem_public_key(s), Ed25519PublicKey)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("provisioning signers: each must be an Ed25519 public key in PEM")
    extra = body.get("config", {})
    if not isinstance(extra, dict) or set(extra) - set(_SECTIONS):
        raise ValueError(f"provisioning config: only the sections {', '.join(_SECTIONS)} may be set")

    complaint_key = None
    if body.get("complaint_key") is not None:
        if not isinstance(body["complaint_key"], str):
            raise ValueError("provisioning complaint_key: must be PEM text")
        try:
            complaint_key = public_key_from_pem(body["complaint_key"])
        except ComplaintKeyError as exc:
            raise ValueError(f"provisioning complaint_key: {exc}") from None

    target = state_dir / "provisioning"
    config = {s: dict(_table(extra, s) if s in extra else {}) for s in _SECTIONS}
    config["site"].update(id=site_id, type=site_type)
    config["device"].update(id=device_keys.device_id)
    config["mqtt"].update(enabled=True, host=host, port=port, ca_file=str(target / "ca.crt"),
                          cert_file=str(target / "device.crt"), key_file=str(state_dir / "keys" / "mqtt_client.pem"))
    if complaint_key is not None:       # the provisioned key overrides the file's [complaints] hq_key
        config["complaints"] = {"hq_key": str(target / "complaint.pub.pem")}
    try:    # the same rules as the configuration file, naming the key
        check_fragment(config, state_dir)
    except ConfigError as e:
        raise ValueError(f"provisioning {e}") from None
    files = {"ca.crt": body["ca_cert"].encode(), "device.crt": body["device_cert"].encode(),
             "config.toml": _toml(config).encode(),
             "provisioning.json": json.dumps({"seq": bundle_seq, "site_id": site_id, "installed": now.isoformat()},
                                             indent=2).encode()}
    if signers:
        files["signers.pem"] = b"".join(signers)
    if complaint_key is not None:
        files["complaint.pub.pem"] = public_pem(complaint_key)
    _install_atomically(state_dir, files)

    summary = {"site_id": site_id, "site_type": site_type, "broker": f"{host}:{port}",
               "signers_rotated": len(signers)}
    if complaint_key is not None:
        summary["complaint_key"] = key_id(complaint_key)
    with journal.transaction():
        if bundle_seq is not None:
            store.set_bundle_seq("provisioning", bundle_seq)
        journal.append("import", {"what": "provisioning", "source": "usb", "bundle_seq": bundle_seq, **summary})
    return summary


def _install_atomically(state_dir: Path, files: dict[str, bytes]) -> None:
    versions = state_dir / "provisioning.d"
    versions.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = versions / secrets.token_hex(8)
    new.mkdir(mode=0o700)
    for name, data in files.items():
        with open(new / name, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    fsync_dir(new)
    fsync_dir(versions)
    link, tmp_link = state_dir / "provisioning", state_dir / f".provisioning.{new.name}"
    os.symlink(Path("provisioning.d") / new.name, tmp_link)
    os.replace(tmp_link, link)      # the one atomic step: readers see the old set or the new one
    fsync_dir(state_dir)
    for old in versions.iterdir():
        if old.name != new.name:
            shutil.rmtree(old, ignore_errors=True)


# --- what the daemon reads ---------------------------------------------------------------------

def load_trusted_signers(state_dir: Path) -> list[Ed25519PublicKey]:
    """Head-office signing keys: the provisioned (rotated) set if any, else those installed with the device."""
    rotated = Path(state_dir) / "provisioning" / "signers.pem"
    if rotated.is_file():
        return load_signers([rotated])
    return load_signers(sorted((Path(state_dir) / "keys" / "hq_signers").glob("*.pem")))


# --- helpers -----------------------------------------------------------------------------------

def _table(d: dict, key: str) -> dict:
    v = d.get(key)
    if not isinstance(v, dict):
        raise ValueError(f"provisioning {key}: must be a table")
    for k, val in v.items():
        if not _BARE_KEY.fullmatch(k):
            raise ValueError(f"provisioning {key}.{k}: not a valid setting name")
        if not isinstance(val, (str, int, bool)):
            raise ValueError(f"provisioning {key}.{k}: must be text, a number or true/false")
    return v


def _cert(body: dict, key: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(str(body.get(key, "")).encode())
    except ValueError:
        raise ValueError(f"provisioning {key}: not a PEM certificate") from None


def _check_device_cert(cert: x509.Certificate, ca: x509.Certificate, keys: DeviceKeys) -> None:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*fmt) != keys.mqtt_key.public_key().public_bytes(*fmt):
        raise ValueError("provisioning device_cert: it is not for this device's key (issued from another CSR)")
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [keys.device_id]:
        raise ValueError(f"provisioning device_cert: its name {cns} is not this device {keys.device_id}")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ValueError(f"provisioning device_cert: not issued by the CA in the bundle ({type(exc).__name__})") from None


def _toml(config: dict[str, dict]) -> str:
    lines = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            val = ("true" if v else "false") if isinstance(v, bool) else str(v) if isinstance(v, int) else json.dumps(v)
            lines.append(f"{k} = {val}")
        lines.append("")
    return "\n".join(lines)
