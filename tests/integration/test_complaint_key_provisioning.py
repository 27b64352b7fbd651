"""Head office's complaint public key reaches a terminal in its signed provisioning bundle (issue 16: "the
terminal never holds that private key"), so nobody edits `[complaints] hq_key` by hand. End to end: the
`handover-hq` CLI packs it, a running simulated terminal (`handover-agent run`) takes the bundle from its
USB inbox and installs it, and the next complaint registered at its kiosk is sealed to that key — opened
with head office's private key. A private key, or a key that is not X25519, is refused with a clear error
at head office's CLI and, packed by other means, at the terminal, which then installs nothing."""
from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import load_config, provisioned_config
from hq import cli as hq
from hq.complaints import load_key
from protocol.bundle import pack_bundle
from protocol.complaint import key_id, open_details
from protocol.keys import HqKeys, load_public
from offline.usb import usb_import_main

sys.path.insert(0, str(Path(__file__).parent))
from test_provisioning import hq_cli, office, provision_bundle, terminals  # noqa: E402,F401 (fixtures)
from test_schedule_publish import wait  # noqa: E402

DEVICE, SITE = "term-cmp-9", "BR-090"
FORM = {"channel": "phone", "category": "service_attitude", "description": "柜员态度冷淡，不回答问题",
        "request": "希望网点道歉", "name": "司马相如", "contact": "13800001111", "counter": "3号窗口"}


def registered(state: Path) -> list[dict]:
    """The terminal's complaint_registered entries, read from its journal as head office would get them."""
    conn = sqlite3.connect(f"file:{state / 'journal.db'}?mode=ro", uri=True)
    try:
        return [json.loads(b) for (b,) in conn.execute(
            "SELECT body FROM journal WHERE kind = 'complaint_registered' ORDER BY seq")]
    finally:
        conn.close()


def imports(state: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{state / 'journal.db'}?mode=ro", uri=True)
    try:
        return [json.loads(b) for (b,) in conn.execute("SELECT body FROM journal WHERE kind = 'import' ORDER BY seq")]
    finally:
        conn.close()


def test_the_provisioning_bundle_brings_the_complaint_key_and_the_next_complaint_is_sealed_to_it(
        agent, office, tmp_path):
    hq_cli("complaints", "key", "create", "--keys", office)
    state = agent.state_dir
    (state / "keys" / "hq_signers").mkdir(parents=True)
    (state / "keys" / "hq_signers" / "hq.pem").write_bytes((office / "signing.pub.pem").read_bytes())
    conf = state / "agent.toml"
    conf.write_text(f'[site]\nid = "{SITE}"\n[device]\nid = "{DEVICE}"\nsimulate = true\n'
                    f'[paths]\nstate_dir = "{state}"\n', encoding="utf-8")
    stick = tmp_path / "stick"
    stick.mkdir()
    assert usb_import_main(["--dir", str(stick), "--state-dir", str(state), "--device-id", DEVICE]) == 0

    agent.start("--config", str(conf))
    agent.post("api/kiosk/enter", {})
    before = agent.post("api/kiosk/complaints", FORM)["ref"]
    [first] = wait(lambda: registered(state), what="the first complaint in the journal")
    assert first["ref"] == before and "sealed" not in first, "no key yet: details stay on the terminal"

    # head office packs the provisioning bundle with its complaint public key; the technician's stick
    provision_bundle(office, stick, DEVICE, 1, stick / "provision.htb",
                     "--complaint-key", office / "complaint.pub.pem")
    assert usb_import_main(["--dir", str(stick), "--state-dir", str(state), "--device-id", DEVICE]) == 0
    [done] = wait(lambda: [b for b in imports(state) if b.get("what") == "provisioning"],
                  what="the provisioning import")
    private = load_key(office)
    assert done["complaint_key"] == key_id(private.public_key())
    installed = state / "provisioning" / "complaint.pub.pem"
    assert load_public(installed.read_bytes()).public_bytes(serialization.Encoding.Raw,
                                                           serialization.PublicFormat.Raw) == \
        private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # nobody edited the file: the provisioned configuration names the key, and a restart reads it from there
    assert "hq_key" not in conf.read_text(encoding="utf-8")
    assert provisioned_config(state)["complaints"]["hq_key"] == str(installed)
    assert load_config(conf).complaints.hq_key == installed

    # the running terminal (still in kiosk mode) seals the next complaint to it at once
    after = agent.post("api/kiosk/complaints", FORM)["ref"]
    entries = wait(lambda: [b for b in registered(state) if b["ref"] == after], what="the second complaint")
    [body] = entries
    assert body["sealed_to"] == key_id(private.public_key())
    assert open_details(private, after, "register", body["sealed"]) == {
        k: FORM[k] for k in ("name", "contact", "description", "request", "counter")}
    # and the terminal holds no private half of that key anywhere
    for path in state.rglob("*"):
        if path.is_file():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), None)
            except (ValueError, TypeError):
                continue
            assert not hasattr(key, "public_key") or key.public_key() != private.public_key(), path
    assert agent.stop() == 0


def test_head_office_refuses_to_pack_a_private_or_non_x25519_complaint_key(office, terminals, tmp_path, capsys):
    hq_cli("complaints", "key", "create", "--keys", office)
    term = terminals("term-P")
    term.install_hq_key(office / "signing.pub.pem")
    stick = tmp_path / "stick"
    stick.mkdir()
    assert term.first_insertion(stick) == 0
    ident = stick / "handover" / "identity-term-P.json"
    hq_cli("device", "add", "--keys", office, "term-P")
    hq_cli("issue-cert", "--keys", office, "--csr", ident, "--out", tmp_path / "p.crt")
    base = ["pack", "provisioning", "--keys", str(office), "--device-pub", str(ident), "--seq", "1", "--site-id",
            "BR-1", "--site-type", "branch", "--broker-host", "h", "--cert", str(tmp_path / "p.crt")]
    for key, says in [(office / "complaint.pem", "PRIVATE key"), (office / "signing.pub.pem", "not X25519"),
                      (office / "ca.crt.pem", "not a public key")]:
        out = tmp_path / "refused.htb"
        assert hq.main([*base, "--complaint-key", str(key), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert says in err and "complaint key" in err, err
        assert not out.exists()


@pytest.mark.parametrize("what, says", [("private", "PRIVATE key"), ("ed25519", "not X25519"),
                                        ("garbage", "not a public key"), ("number", "must be PEM text")])
async def test_a_terminal_refuses_a_bundle_whose_complaint_key_is_not_head_offices_public_x25519(
        office, terminals, tmp_path, what, says):
    hq_cli("complaints", "key", "create", "--keys", office)
    term = terminals("term-Q")
    term.install_hq_key(office / "signing.pub.pem")
    stick = tmp_path / "stick"
    stick.mkdir()
    term.first_insertion(stick)
    provision_bundle(office, stick, "term-Q", 1, tmp_path / "good.htb", "--complaint-key",
                     office / "complaint.pub.pem")
    # the same bundle, re-packed by someone else's tool with a bad key in it (signed by head office's key)
    ident = json.loads((stick / "handover" / "identity-term-Q.json").read_text())
    payload = {"device_id": "term-Q", "site": {"id": "BR-1", "type": "branch"}, "mqtt": {"host": "h", "port": 8883},
               "device_cert": (tmp_path / "good.crt").read_text(), "ca_cert": (office / "ca.crt.pem").read_text(),
               "complaint_key": {
                   "private": (office / "complaint.pem").read_text(),
                   "ed25519": Ed25519PrivateKey.generate().public_key().public_bytes(
                       serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                   "garbage": "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
                   "number": 7}[what]}
    now = datetime.now(timezone.utc)
    data = pack_bundle("provisioning", payload, "term-Q", load_public(ident["bundle_public"].encode()),
                       HqKeys.load(office).signing, 1, now + timedelta(days=1), now)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "p.htb").write_bytes(data)
    _, [(_, outcome)] = await term.insert(bad)
    assert not outcome.ok and outcome.code == "bad_payload"
    assert "complaint_key" in outcome.message and says in outcome.message, outcome.message
    assert provisioned_config(term.state) is None and not (term.state / "provisioning").exists()
    assert term.store.last_bundle_seq("provisioning") in (None, 0)
