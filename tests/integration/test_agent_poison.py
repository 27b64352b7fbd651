"""The real agent process against poison input (issue 19 items 1, 15; issue 13 item 5)."""
from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request

from agent.sample import TRUCKS
from broker import mqtt_config
from test_agent_sync import hq  # noqa: F401  (fixture: broker and head office)


def post_status(agent, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(agent.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_a_beacon_with_a_non_integer_rssi_is_a_400_naming_the_field(agent):
    agent.start()
    for rssi in ("strong", 1.5, None, True, [1], -500):
        status, body = post_status(agent, "api/sim/beacon", {"beacon": TRUCKS[0].beacon, "rssi": rssi})
        assert status == 400 and "rssi" in body["error"], (rssi, status, body)
    assert agent.view()["handover"] is None                 # nothing happened
    status, _ = post_status(agent, "api/sim/beacon", {"beacon": TRUCKS[0].beacon, "rssi": -50})
    assert status == 200
    agent.wait_for(lambda v: v["handover"] is not None)


def test_junk_in_the_inbox_does_not_stop_the_agent_from_starting(agent):
    inbox = agent.state_dir / "inbox"
    inbox.mkdir(parents=True)
    header = b"[" * 5000
    (inbox / "junk.htb").write_bytes(b"HTB1" + struct.pack(">H", len(header)) + header + struct.pack(">Q", 0)
                                     + b"\0" * 64)
    agent.start()
    v = agent.wait_for(lambda v: any(p["key"].startswith("bundle.refused") for p in v["prompts"]))
    assert any(p["urgent"] for p in v["prompts"] if p["key"].startswith("bundle.refused"))
    assert not list(inbox.glob("*.htb")) and (agent.state_dir / "refused" / "junk.htb").exists()


def test_the_configured_idle_timeout_reaches_the_screen(agent, tmp_path):
    conf = tmp_path / "agent.toml"
    conf.write_text('[site]\nid = "BR-9"\n[screen]\nidle_timeout_seconds = 45\n', encoding="utf-8")
    agent.start("--config", str(conf))
    assert agent.view()["settings"]["screen.idle_timeout_seconds"] == 45


def _head_office(view: dict) -> dict | None:
    return next((h for h in view["health"] if h["device"] == "head_office"), None)


def test_the_screen_shows_when_head_office_is_unreachable(agent, hq):
    """Issue 19 item 10: the device bar says so, and says when the link is back."""
    mqtt_config(hq.broker, "dev-poison-1", "BR-060", agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    agent.wait_for(lambda v: (_head_office(v) or {}).get("state") == "connected", 20)
    hq.broker.stop()
    v = agent.wait_for(lambda v: _head_office(v)["state"] == "missing", 20)
    assert _head_office(v)["error"].startswith("head office unreachable")
    hq.broker.start()
    agent.wait_for(lambda v: _head_office(v)["state"] == "connected", 30)


def test_missing_certificates_are_named_and_the_agent_works_offline(agent, tmp_path):
    """Issue 19 item 12: no traceback later; the box still runs (it may be waiting for provisioning)."""
    conf = tmp_path / "agent.toml"
    conf.write_text(f'[site]\nid = "BR-9"\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nca_file = "{tmp_path}/ca.pem"\n'
                    f'cert_file = "{tmp_path}/d.pem"\nkey_file = "{tmp_path}/d.key"\n', encoding="utf-8")
    agent.start("--config", str(conf))
    link = _head_office(agent.view())
    assert link["state"] == "missing" and "mqtt.ca_file" in link["error"] and "mqtt.key_file" in link["error"]
