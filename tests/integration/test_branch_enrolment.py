"""Enrolment at the branch through the real agent (issue 11, SPEC §2.4): refusals name what is wrong, a
password signs it where the site allows, a cancelled capture stores nothing, a restart drops an enrolment
still waiting for its officer, and an enrolled finger is kept sealed in the store: after a restart the
fresh modules get it back and it still verifies at the door."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.enrolment import HQ_KEY_FILE
from agent.journal import Journal
from agent.sample import DEMO_PASSWORD, TRUCKS
from drivers.fingerprint.emulator import finger_template
from protocol.enrolment import open_at_hq
from protocol.keys import public_pem

SITE_TOML = """
[site]
id = "BR-009"
type = "branch"
allow_password_confirmation = true

[device]
id = "BR-009-t1"
simulate = true
"""


def start(agent, tmp_path):
    cfg = tmp_path / "handover.toml"
    cfg.write_text(SITE_TOML, encoding="utf-8")
    agent.start("--config", str(cfg))
    return cfg


def refused(agent, path, body) -> str:
    req = urllib.request.Request(agent.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    return json.loads(e.value.read())["error"]


def entries(agent, kind):
    j = Journal(agent.state_dir / "journal.db")
    try:
        return [e.body for e in j.entries() if e.kind == kind]
    finally:
        j.close()


def stage(agent, wanted):
    return agent.wait_for(lambda v: v["enrolment"]["current"] and v["enrolment"]["current"]["stage"] == wanted,
                          timeout=20)


def enrol(agent, person_id, finger, new_finger):
    agent.post("api/enrolment", {"person_id": person_id, "finger": finger})
    assert agent.post("api/password", {"person_id": "O01", "password": DEMO_PASSWORD})["ok"]
    stage(agent, "press")
    agent.post("api/sim/finger", {"station": "counter", "new_finger": new_finger})
    stage(agent, "press_again")
    agent.post("api/sim/finger", {"station": "counter", "new_finger": new_finger})
    return stage(agent, "done")["enrolment"]["current"]["slot"]


def test_refusals_name_what_is_wrong_and_change_nothing(agent, tmp_path):
    start(agent, tmp_path)
    assert "person E99 is not in the imported personnel" in refused(
        agent, "api/enrolment", {"person_id": "E99", "finger": "right_middle"})
    assert "finger must be one of right_index" in refused(agent, "api/enrolment", {"person_id": "E01", "finger": "toe"})
    assert "finger must be a string" in refused(agent, "api/enrolment", {"person_id": "E01"})
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    agent.wait_for(lambda v: v["handover"] is not None)
    assert "a handover is already in progress" in refused(
        agent, "api/enrolment", {"person_id": "E01", "finger": "right_middle"})
    v = agent.view()
    assert v["pending_auth"] is None and v["enrolment"]["current"] is None


def test_a_cancelled_capture_stores_nothing_and_the_next_enrolment_works(agent, tmp_path):
    start(agent, tmp_path)
    agent.post("api/enrolment", {"person_id": "E05", "finger": "left_thumb"})
    assert agent.post("api/password", {"person_id": "O01", "password": DEMO_PASSWORD})["ok"]
    stage(agent, "press")
    agent.post("api/sim/finger", {"station": "counter", "new_finger": "E05/left_thumb"})
    stage(agent, "press_again")
    agent.post("api/enrolment/close", {})
    v = stage(agent, "cancelled")
    assert v["prompts"][0]["text"] == "指纹登记已取消"
    [cancelled] = entries(agent, "finger_enrol_failed")
    assert cancelled["reason"] == "cancelled" and cancelled["officer_id"] == "O01" and cancelled["method"] == "password"
    assert entries(agent, "finger_enrolled") == []
    people = {p["person_id"]: p for p in v["sim"]["people"]}
    assert set(people["E05"]["fingers"]) == {"right_index"}
    assert entries(agent, "finger_enrolled") == []
    agent.post("api/enrolment/close", {})
    agent.wait_for(lambda v: v["enrolment"]["current"] is None)
    # the abandoned capture held nothing back: the next enrolment takes both its captures
    enrol(agent, "E05", "left_thumb", "E05/left_thumb")
    assert [e["person_id"] for e in entries(agent, "finger_enrolled")] == ["E05"]


def test_a_restart_drops_an_enrolment_waiting_for_its_officer(agent, tmp_path):
    cfg = start(agent, tmp_path)
    agent.post("api/enrolment", {"person_id": "E02", "finger": "right_thumb"})
    assert agent.view()["pending_auth"]["purpose"] == "enrolment"
    assert agent.stop() == 0
    agent.start("--config", str(cfg))
    v = agent.view()
    assert v["pending_auth"] is None and v["enrolment"]["current"] is None
    cleared = entries(agent, "staff_pending_cleared")[-1]
    assert cleared["purpose"] == "enrolment" and cleared["reason"] == "no_longer_applies"


def test_an_enrolled_finger_is_kept_sealed_and_verifies_at_the_door_after_a_restart(agent, tmp_path):
    hq = X25519PrivateKey.generate()          # head office's enrolment key, installed with the device
    (agent.state_dir / "keys").mkdir(parents=True)
    (agent.state_dir / "keys" / HQ_KEY_FILE).write_bytes(public_pem(hq.public_key()))
    cfg = start(agent, tmp_path)
    slot = enrol(agent, "E01", "right_middle", "E01/right_middle")
    [entry] = entries(agent, "finger_enrolled")
    assert set(entry) == {"person_id", "finger", "slot", "station", "officer_id", "method", "template_sha256",
                          "template_bytes", "not_stored", "template_for_hq"}
    assert entry["slot"] == slot and entry["station"] == "counter" and entry["template_bytes"] == 512
    # what travels in the synced journal: head office opens the template; another device's entry does not
    template = finger_template("new-E01/right_middle", 512)
    assert template.hex()[:64] not in json.dumps(entry) and open_at_hq(entry, hq, "BR-009-t1") == template
    with pytest.raises(ValueError, match="does not open"):
        open_at_hq(entry, hq, "BR-009-t2")
    assert agent.stop() == 0
    agent.start("--config", str(cfg))       # the emulated modules start empty: the store fills them
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "escort_verification")
    agent.post("api/sim/finger", {"station": "door", "slot": slot})
    v = agent.wait_for(lambda v: any(e["person_id"] == "E01" and e["verified"] for e in v["handover"]["escorts"]))
    assert v["prompts"][0]["text"] == "押运员王强身份验证成功"
