"""`handover-hq`: head office's companion CLI — keys, device certificates, bundles (SPEC §2.5, §5).

  handover-hq keys create --keys DIR
  handover-hq device add --keys DIR ID
  handover-hq issue-cert --keys DIR --csr identity.json|device.csr --out device.crt
  handover-hq issue-hq-cert --keys DIR [--name hq] --out hq.crt --key-out hq.key
  handover-hq issue-broker-cert --keys DIR --host 127.0.0.1 [--host NAME ...] --out broker.crt --key-out broker.key
  handover-hq pack tasks|personnel --keys DIR --device-pub identity.json --seq N --in payload.json --out x.htb
  handover-hq pack provisioning --keys DIR --device-pub identity.json --seq N --site-id S --site-type branch
              --broker-host H [--broker-port 8883] --cert device.crt [--rotate-signer new.pub.pem]
              [--complaint-key complaint.pub.pem] --out p.htb
  handover-hq inspect x.htb [--signer signing.pub.pem]

  handover-hq publish|watch|export ...   (hq/sync.py)
  handover-hq serve|verify-against ...   (hq/serve.py: the fleet's journals in a database)
  handover-hq schedule import|sites|publish|status, personnel key|import   (hq/schedule.py, hq/distribute.py)
  handover-hq complaints key|list|show|act|report ...   (hq/complaints.py: complaints handled at head office)
  handover-hq records key create --keys DIR              (hq/records.py: the key face snapshots are sealed to)
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from hq import complaints, distribute, records, serve, sync
from hq.web import cli as users
from hq.db import DATABASE_ERRORS
from protocol.bundle import (KINDS, BundleRefused, key_id, pack_bundle, pack_streamed, read_bundle_file, split,
                            verify_signature)
from protocol.complaint import ComplaintKeyError, public_key_from_pem
from protocol.keys import (HQ_IDENTITY, HqKeys, KeyFileError, add_device, known_devices, load_public, load_signers,
                          write_private)



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="handover-hq", description="Head-office companion for handover terminals.")
    sub = p.add_subparsers(dest="command", required=True)

    keys = sub.add_parser("keys", help="head-office keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create the bundle signing key and the device CA")
    create.add_argument("--keys", type=Path, required=True, help="directory to create them in")
    create.set_defaults(func=_keys_create)

    device = sub.add_parser("device", help="the devices head office knows").add_subparsers(
        dest="device_command", required=True)
    add = device.add_parser("add", help="register a device id, so issue-cert may name it")
    add.add_argument("--keys", type=Path, required=True)
    add.add_argument("device_id")
    add.set_defaults(func=_device_add)

    hq_cert = sub.add_parser("issue-hq-cert", help="issue head office's own MQTT client certificate (role head-office)")
    hq_cert.add_argument("--keys", type=Path, required=True)
    hq_cert.add_argument("--name", default=HQ_IDENTITY, help="hq, or hq-<suffix> for a second session")
    hq_cert.add_argument("--days", type=int, default=825)
    hq_cert.add_argument("--out", type=Path, required=True)
    hq_cert.add_argument("--key-out", type=Path, required=True)
    hq_cert.set_defaults(func=_issue_hq_cert)

    broker_cert = sub.add_parser("issue-broker-cert", help="issue the MQTT broker's TLS server certificate")
    broker_cert.add_argument("--keys", type=Path, required=True)
    broker_cert.add_argument("--host", action="append", required=True,
                             help="a name or address clients dial (repeat for several)")
    broker_cert.add_argument("--days", type=int, default=825)
    broker_cert.add_argument("--out", type=Path, required=True)
    broker_cert.add_argument("--key-out", type=Path, required=True)
    broker_cert.set_defaults(func=_issue_broker_cert)

    cert = sub.add_parser("issue-cert", help="issue a device's MQTT client certificate from its CSR")
    cert.add_argument("--keys", type=Path, required=True)
    cert.add_argument("--csr", type=Path, required=True, help="identity-<id>.json from the stick, or a PEM CSR")
    cert.add_argument("--days", type=int, default=825)
    cert.add_argument("--out", type=Path, required=True)
    cert.set_defaults(func=_issue_cert)

    pack = sub.add_parser("pack", help="pack a signed bundle encrypted to one device")
    pack.add_argument("kind", choices=KINDS)
    pack.add_argument("--keys", type=Path, required=True)
    pack.add_argument("--device-pub", type=Path, required=True,
                      help="identity-<id>.json from the stick (or a PEM X25519 key with --device-id)")
    pack.add_argument("--device-id")
    pack.add_argument("--seq", type=int, required=True, help="sequence number, higher than the last for this kind")
    pack.add_argument("--expires-days", type=float, default=7)
    pack.add_argument("--in", dest="input", type=Path,
                      help="payload JSON (tasks, personnel), or JSON Lines (.jsonl) for a streamed bundle")
    pack.add_argument("--site-id")
    pack.add_argument("--site-type", choices=("branch", "vault"))
    pack.add_argument("--broker-host")
    pack.add_argument("--broker-port", type=int, default=8883)
    pack.add_argument("--cert", type=Path, help="the device certificate from issue-cert")
    pack.add_argument("--rotate-signer", type=Path, action="append", default=[],
                      help="new head-office signing public key(s) the device trusts from now on")
    pack.add_argument("--complaint-key", type=Path,
                      help="provisioning: head office's complaint PUBLIC key (complaint.pub.pem); the terminal "
                           "installs it as [complaints] hq_key")
    pack.add_argument("--out", type=Path, required=True)
    pack.set_defaults(func=_pack)

    inspect = sub.add_parser("inspect", help="show a bundle's signed header and whether its signature verifies")
    inspect.add_argument("bundle", type=Path)
    inspect.add_argument("--signer", type=Path, action="append", default=[], help="trusted signing public key PEM")
    inspect.set_defaults(func=_inspect)

    sync.register(sub)
    serve.register(sub)
    users.register(sub)
    distribute.register(sub)
    complaints.register(sub)
    records.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (KeyFileError, BundleRefused, ValueError, OSError, *DATABASE_ERRORS) as exc:
        print(f"handover-hq: {exc}", file=sys.stderr)
        return 2


def _keys_create(args) -> int:
    keys = HqKeys.create(args.keys)
    print(f"created signing key {key_id(keys.signing.public_key())} and the device CA in {args.keys}")
    print(f"install {args.keys / 'signing.pub.pem'} on devices as keys/hq_signers/hq.pem")
    return 0


def _issue_cert(args) -> int:
    keys = HqKeys.load(args.keys)
    raw = args.csr.read_bytes()
    csr = json.loads(raw)["csr"].encode() if args.csr.suffix == ".json" else raw
    cert = keys.issue_device_cert(csr, known_devices=known_devices(args.keys), days=args.days)
    args.out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    print(f"issued {args.out} for {cert.subject.rfc4514_string()}")
    return 0


def _device_add(args) -> int:
    added = add_device(args.keys, args.device_id)
    print(f"device {args.device_id} {'registered' if added else 'was already registered'}")
    return 0


def _issue_hq_cert(args) -> int:
    return _issue_with_new_key(args, lambda keys, public: keys.issue_hq_cert(public, name=args.name, days=args.days))


def _issue_broker_cert(args) -> int:
    return _issue_with_new_key(args, lambda keys, public: keys.issue_broker_cert(public, args.host, days=args.days))


def _issue_with_new_key(args, issue) -> int:
    """A fresh key (written 0600 to --key-out) and its certificate from head office's CA (to --out)."""
    keys = HqKeys.load(args.keys)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(keys, key.public_key())
    write_private(args.key_out, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    args.out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    print(f"issued {args.out} for {cert.subject.rfc4514_string()}")
    return 0


def _device(args) -> tuple[str, X25519PublicKey]:
    raw = args.device_pub.read_bytes()
    if args.device_pub.suffix == ".json":
        ident = json.loads(raw)
        device_id, pem = ident["device_id"], ident["bundle_public"].encode()
    else:
        device_id, pem = args.device_id, raw
    if not device_id:
        raise ValueError("--device-id is required with a PEM public key")
    key = load_public(pem)
    if not isinstance(key, X25519PublicKey):
        raise ValueError(f"{args.device_pub}: the device's bundle key must be X25519")
    return device_id, key


def _pack(args) -> int:
    keys = HqKeys.load(args.keys)
    device_id, device_pub = _device(args)
    if args.kind == "provisioning":
        missing = [o for o in ("site_id", "site_type", "broker_host", "cert") if getattr(args, o) is None]
        if missing:
            raise ValueError("pack provisioning needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
        payload = {"device_id": device_id, "site": {"id": args.site_id, "type": args.site_type},
                   "mqtt": {"host": args.broker_host, "port": args.broker_port},
                   "device_cert": args.cert.read_text(),
                   "ca_cert": keys.ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
                   "signers": [(k.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
                               for k in load_signers(args.rotate_signer)]}
        if args.complaint_key is not None:
            # checked here too: a private key must never be packed, even into an encrypted bundle
            pem = args.complaint_key.read_bytes()
            try:
                public_key_from_pem(pem)
            except ComplaintKeyError as exc:
                raise ValueError(f"--complaint-key {args.complaint_key}: {exc}") from None
            payload["complaint_key"] = pem.decode("ascii")
    else:
        if args.complaint_key is not None:
            raise ValueError("--complaint-key travels in a provisioning bundle only")
        if args.input is None:
            raise ValueError(f"pack {args.kind} needs --in payload.json (or payload.jsonl for a streamed bundle)")
        if args.input.suffix == ".jsonl":     # one record a line: a streamed (format 2) bundle of any size
            now = datetime.now(timezone.utc)
            size = pack_streamed(args.kind, args.input, args.out, device_id, device_pub, keys.signing, args.seq,
                                 now + timedelta(days=args.expires_days), now)
            print(f"packed streamed {args.kind} bundle #{args.seq} for {device_id}: {args.out} ({size} bytes)")
            return 0
        payload = json.loads(args.input.read_text(encoding="utf-8"))
    now = datetime.now(timezone.utc)
    data = pack_bundle(args.kind, payload, device_id, device_pub, keys.signing, args.seq,
                       now + timedelta(days=args.expires_days), now)
    args.out.write_bytes(data)
    print(f"packed {args.kind} bundle #{args.seq} for {device_id}: {args.out} ({len(data)} bytes)")
    return 0


def _inspect(args) -> int:
    env = split(read_bundle_file(args.bundle))
    print(json.dumps(env.header().to_dict(), indent=2, ensure_ascii=False))
    print(f"ciphertext: {len(env.ciphertext)} bytes (readable only with the target device's key)")
    if not args.signer:
        print("signature: not checked (give --signer PUB.pem)")
        return 0
    try:
        signer = verify_signature(env, load_signers(args.signer))
    except BundleRefused as refusal:
        print(f"signature: REFUSED ({refusal.code}): {refusal.message}")
        return 1
    print(f"signature: valid, key {key_id(signer)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
