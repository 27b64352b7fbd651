"""A field technician's provisioning, with a directory standing in for the USB stick (SPEC §5).

Insertion 1: the new device writes its identity. Head office (`handover-hq`) issues the certificate and
packs the provisioning bundle onto the stick. Insertion 2: the device installs it atomically.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.config import load_config, provisioned_config
from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from drivers.fingerprint.sim import SimulatedFingerprint
from hq import cli as hq
from protocol.bundle import pack_bundle
from protocol.keys import DeviceKeys, HqKeys, add_device, load_public
from offline.provisioning import load_trusted_signers
from offline.usb import usb_import, usb_import_main

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    def __init__(self, tmp: Path, device_id: str):
        self.device_id = device_id
        self.state = tmp / device_id
        self.state.mkdir()
        self.journal = Journal(self.state / "journal.db")
        self.store = Store(self.journal.db, Sealer(self.state / "keys" / "data.key"), self.state / "photos")

    def install_hq_key(self, pub: Path) -> None:
        """What the factory image does: trust head office's signing key before provisioning."""
        (self.state / "keys" / "hq_signers").mkdir(parents=True, exist_ok=True)
        (self.state / "keys" / "hq_signers" / "hq.pem").write_bytes(pub.read_bytes())

    def first_insertion(self, stick: Path) -> int:
        return usb_import_main(["--dir", str(stick), "--state-dir", str(self.state), "--device-id", self.device_id])

    async def insert(self, stick: Path, now=None):
        keys = DeviceKeys.load_or_create(self.state / "keys", self.device_id)
        return await usb_import(stick, state_dir=self.state, journal=self.journal, store=self.store,
                                device_keys=keys, trusted_signers=load_trusted_signers(self.state),
                                fingerprint_modules=[SimulatedFingerprint("door")],
                                now=now or datetime.now(timezone.utc))


def hq_cli(*args: str) -> None:
    assert hq.main([str(a) for a in args]) == 0


@pytest.fixture
def office(tmp_path):
    keys = tmp_path / "hq"
    hq_cli("keys", "create", "--keys", keys)
    return keys


@pytest.fixture
def terminals(tmp_path):
    made = []

    def make(device_id):
        made.append(Terminal(tmp_path, device_id))
        return made[-1]
    yield make
    for t in made:
        t.journal.close()


def provision_bundle(office: Path, stick: Path, device_id: str, seq: int, out: Path, *extra: str) -> None:
    ident = stick / "handover" / f"identity-{device_id}.json"
    cert = out.with_suffix(".crt")
    hq_cli("device", "add", "--keys", office, device_id)
    hq_cli("issue-cert", "--keys", office, "--csr", ident, "--out", cert)
    hq_cli("pack", "provisioning", "--keys", office, "--device-pub", ident, "--seq", seq, "--site-id", "branch-07",
           "--site-type", "branch", "--broker-host", "mqtt.hq.example", "--broker-port", "8883", "--cert", cert,
           "--out", out, *extra)


async def test_two_insertions_provision_a_new_device(tmp_path, office, terminals):
    term = terminals("term-0042")
    term.install_hq_key(office / "signing.pub.pem")
    stick = tmp_path / "stick"
    stick.mkdir()

    # Insertion 1: identity and CSR onto the stick; the private keys stay on the device, 0600.
    assert term.first_insertion(stick) == 0
    ident = json.loads((stick / "handover" / "identity-term-0042.json").read_text())
    assert ident["device_id"] == "term-0042" and "PRIVATE" not in json.dumps(ident)
    csr = x509.load_pem_x509_csr(ident["csr"].encode())
    assert csr.is_signature_valid and csr.subject.rfc4514_string() == "CN=term-0042"
    for key in ("bundle_x25519.pem", "mqtt_client.pem"):
        assert (term.state / "keys" / key).stat().st_mode & 0o777 == 0o600
    assert provisioned_config(term.state) is None

    # Head office: certificate + bundle, written onto the stick.
    provision_bundle(office, stick, "term-0042", 1, stick / "provision.htb")

    # Insertion 2: installed atomically.
    _, outcomes = await term.insert(stick)
    [(_, outcome)] = outcomes
    assert outcome.ok and outcome.kind == "provisioning" and outcome.message_key == "bundle.imported.provisioning"
    cfg = provisioned_config(term.state)
    assert cfg["site"] == {"id": "branch-07", "type": "branch"} and cfg["device"] == {"id": "term-0042"}
    assert cfg["mqtt"]["host"] == "mqtt.hq.example" and cfg["mqtt"]["enabled"] is True
    link = term.state / "provisioning"
    assert link.is_symlink() and (link / "device.crt").read_bytes() == (stick / "provision.crt").read_bytes()
    cert = x509.load_pem_x509_certificate((link / "device.crt").read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((link / "ca.crt").read_bytes()))
    # The agent's own configuration loader accepts the fragment as it is.
    config = load_config(link / "config.toml")
    assert config.site.id == "branch-07" and config.mqtt.enabled and config.mqtt.port == 8883
    assert config.mqtt.key_file == term.state / "keys" / "mqtt_client.pem"
    assert term.store.last_bundle_seq("provisioning") == 1
    assert term.journal.head().body["what"] == "provisioning"

    # Now provisioned: a third insertion writes nothing more to the stick.
    before = sorted(p.name for p in (stick / "handover").iterdir())
    assert term.first_insertion(stick) == 0
    assert sorted(p.name for p in (stick / "handover").iterdir()) == before


async def test_a_provisioned_device_refuses_another_devices_bundle(tmp_path, office, terminals):
    mine, other = terminals("term-A"), terminals("term-B")
    for t in (mine, other):
        t.install_hq_key(office / "signing.pub.pem")
    stick = tmp_path / "stick"
    stick.mkdir()
    mine.first_insertion(stick)
    other.first_insertion(stick)
    provision_bundle(office, stick, "term-A", 1, tmp_path / "a.htb")
    provision_bundle(office, stick, "term-B", 1, tmp_path / "b.htb")
    a_stick, b_stick = tmp_path / "sa", tmp_path / "sb"
    for s, f in ((a_stick, "a.htb"), (b_stick, "b.htb")):
        s.mkdir()
        (s / f).write_bytes((tmp_path / f).read_bytes())
    assert (await mine.insert(a_stick))[1][0][1].ok
    installed = os.readlink(mine.state / "provisioning")

    _, [(_, outcome)] = await mine.insert(b_stick)
    assert not outcome.ok and outcome.code == "wrong_device" and "term-B" in outcome.message
    assert os.readlink(mine.state / "provisioning") == installed
    assert provisioned_config(mine.state)["device"]["id"] == "term-A"


async def test_reprovisioning_swaps_atomically_and_rotates_the_signing_key(tmp_path, office, terminals):
    term = terminals("term-R")
    term.install_hq_key(office / "signing.pub.pem")
    stick = tmp_path / "stick"
    stick.mkdir()
    term.first_insertion(stick)
    provision_bundle(office, stick, "term-R", 1, stick / "p1.htb")
    await term.insert(stick)
    (stick / "p1.htb").unlink()
    first = os.readlink(term.state / "provisioning")

    new_office = tmp_path / "hq2"
    hq_cli("keys", "create", "--keys", new_office)
    provision_bundle(office, stick, "term-R", 2, stick / "p2.htb", "--rotate-signer", new_office / "signing.pub.pem")
    _, [(_, outcome)] = await term.insert(stick)
    assert outcome.ok and outcome.summary["signers_rotated"] == 1
    assert os.readlink(term.state / "provisioning") != first
    assert [p.name for p in (term.state / "provisioning.d").iterdir()] == [Path(os.readlink(term.state / "provisioning")).name]
    (stick / "p2.htb").unlink()

    # From now on only the new head-office key is trusted.
    ident = stick / "handover" / "identity-term-R.json"
    (tmp_path / "t.json").write_text(json.dumps({"tasks": []}))
    hq_cli("pack", "tasks", "--keys", office, "--device-pub", ident, "--seq", "1", "--in", tmp_path / "t.json",
           "--out", stick / "old.htb")
    _, [(_, outcome)] = await term.insert(stick)
    assert outcome.code == "unknown_signer"
    (stick / "old.htb").unlink()
    hq_cli("pack", "tasks", "--keys", new_office, "--device-pub", ident, "--seq", "1", "--in", tmp_path / "t.json",
           "--out", stick / "new.htb")
    _, [(_, outcome)] = await term.insert(stick)
    assert outcome.ok


def test_inspect_shows_the_header_and_checks_the_signature(tmp_path, office, terminals, capsys):
    term = terminals("term-I")
    stick = tmp_path / "stick"
    stick.mkdir()
    term.first_insertion(stick)
    (tmp_path / "t.json").write_text(json.dumps({"tasks": []}))
    ident = stick / "handover" / "identity-term-I.json"
    hq_cli("pack", "tasks", "--keys", office, "--device-pub", ident, "--seq", "3", "--in", tmp_path / "t.json",
           "--out", tmp_path / "t.htb")
    capsys.readouterr()
    assert hq.main(["inspect", str(tmp_path / "t.htb"), "--signer", str(office / "signing.pub.pem")]) == 0
    out = capsys.readouterr().out
    assert '"device": "term-I"' in out and '"seq": 3' in out and "signature: valid" in out
    other = tmp_path / "other"
    hq_cli("keys", "create", "--keys", other)
    assert hq.main(["inspect", str(tmp_path / "t.htb"), "--signer", str(other / "signing.pub.pem")]) == 1
    assert "unknown_signer" in capsys.readouterr().out


def test_hq_refuses_to_overwrite_keys_and_a_forged_csr(tmp_path, office, capsys):
    assert hq.main(["keys", "create", "--keys", str(office)]) == 2
    assert "already exist" in capsys.readouterr().err
    (tmp_path / "bad.csr").write_text("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")
    assert hq.main(["issue-cert", "--keys", str(office), "--csr", str(tmp_path / "bad.csr"),
                    "--out", str(tmp_path / "x.crt")]) == 2
    assert "CSR" in capsys.readouterr().err and not (tmp_path / "x.crt").exists()


def test_console_script_entry_point_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hq.cli", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "pack" in r.stdout and "issue-cert" in r.stdout


async def test_provisioned_settings_are_checked_by_the_files_rules(tmp_path, office, terminals):
    """One source of truth: a provisioning bundle's settings pass the configuration's own checks."""
    term = terminals("term-C")
    term.install_hq_key(office / "signing.pub.pem")
    stick = tmp_path / "stick"
    stick.mkdir()
    term.first_insertion(stick)
    ident = json.loads((stick / "handover" / "identity-term-C.json").read_text())
    keys = HqKeys.load(office)
    add_device(office, "term-C")
    cert = keys.issue_device_cert(ident["csr"].encode(), known_devices={"term-C"})
    pem = serialization.Encoding.PEM
    payload = {"device_id": "term-C", "site": {"id": "branch-07", "type": "branch"},
               "mqtt": {"host": "mqtt.hq.example", "port": 8883}, "device_cert": cert.public_bytes(pem).decode(),
               "ca_cert": keys.ca_cert.public_bytes(pem).decode(), "config": {"site": {"min_escorts": "two"}}}
    now = datetime.now(timezone.utc)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.htb").write_bytes(pack_bundle("provisioning", payload, "term-C", load_public(ident["bundle_public"].encode()),
                                            keys.signing, 1, now + timedelta(days=1), now))
    _, [(_, outcome)] = await term.insert(bad)
    assert outcome.code == "bad_payload" and "site.min_escorts" in outcome.message, outcome
    assert provisioned_config(term.state) is None
