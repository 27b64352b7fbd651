"""Officer actions at the screen, through the real agent: password confirmation where the site allows it
(scrypt-hashed, never in clear), and a manual arrival when BLE fails, signed by an officer."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from agent.journal import Journal
from agent.sample import DEMO_PASSWORD, TRUCKS, tag_for

SITE_TOML = """
[site]
id = "BR-009"
type = "branch"
name = "测试支行"
allow_password_confirmation = {allow}

[device]
simulate = true
"""


def start(agent, tmp_path, allow: bool):
    cfg = tmp_path / "handover.toml"
    cfg.write_text(SITE_TOML.format(allow="true" if allow else "false"), encoding="utf-8")
    agent.start("--config", str(cfg))
    return agent.view()


def slot(view, pid):
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == pid)


def to_officer_step(agent, v):
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot(v, pid)})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover")
    for box in ("XB1-01", "XB1-02", "XB1-03"):
        agent.post("api/sim/tag", {"tag": tag_for(box)})
    return agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "officer_confirmation")


def refused(agent, path, body) -> str:
    req = urllib.request.Request(agent.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400
    return json.loads(e.value.read())["error"]


def test_password_confirmation_where_allowed(agent, tmp_path):
    v = start(agent, tmp_path, allow=True)
    assert v["site"]["name"] == "测试支行"
    to_officer_step(agent, v)
    assert agent.post("api/password", {"person_id": "O01", "password": "wrong"})["ok"] is False
    v = agent.wait_for(lambda v: v["prompts"][0]["key"] == "password_wrong")
    assert v["handover"]["step"] == "officer_confirmation"
    assert agent.post("api/password", {"person_id": "O01", "password": DEMO_PASSWORD})["ok"] is True
    v = agent.wait_for(lambda v: v["handover"]["step"] == "sign_off")
    assert v["handover"]["officer"]["name"] == "周敏" and v["handover"]["officer"]["method"] == "password"
    assert agent.stop() == 0
    raw = b"".join(p.read_bytes() for p in agent.state_dir.glob("journal.db*"))
    assert DEMO_PASSWORD.encode() not in raw, "a password must never be stored or journaled in clear"


def test_password_refused_where_not_allowed(agent, tmp_path):
    v = start(agent, tmp_path, allow=False)
    to_officer_step(agent, v)
    assert "does not allow password" in refused(agent, "api/password", {"person_id": "O01", "password": DEMO_PASSWORD})
    assert agent.view()["handover"]["step"] == "officer_confirmation"


def test_manual_arrival_needs_an_officer_and_is_journaled_as_manual(agent, tmp_path):
    v = start(agent, tmp_path, allow=False)
    task_id = next(t["task_id"] for t in v["sim"]["tasks"] if t["plate"] == TRUCKS[0].plate and t["kind"] == "delivery")
    assert "not an open task" in refused(agent, "api/manual-arrival", {"task_id": "T-NOPE"})
    agent.post("api/manual-arrival", {"task_id": task_id})
    v = agent.wait_for(lambda v: v["pending_auth"] is not None)
    assert v["handover"] is None
    agent.post("api/sim/finger", {"station": "door", "slot": slot(v, "E01")})     # an escort cannot sign it
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O02")})
    v = agent.wait_for(lambda v: v["handover"] is not None)
    assert v["handover"]["manual"] is True and v["handover"]["step"] == "escort_verification"
    assert agent.stop() == 0
    j = Journal(agent.state_dir / "journal.db")
    arrival = next(e for e in j.entries() if e.kind == "arrival")
    j.close()
    assert arrival.body["event"]["manual_by"] == "O02" and arrival.body["event"]["beacon"] is None


def duress_slot(view, pid):
    return next(p["duress_slot"] for p in view["sim"]["people"] if p["person_id"] == pid)


def journal_entries(agent):
    j = Journal(agent.state_dir / "journal.db")
    try:
        return list(j.entries())
    finally:
        j.close()


def test_one_duress_touch_while_a_disposition_waits_is_one_silent_alarm(agent, tmp_path):
    """Issue 13 item 2: duress was decided both by the terminal and by the handover machine, so a
    duress finger while a staff action waited for an officer journaled two alarms."""
    v = start(agent, tmp_path, allow=False)
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot(v, pid)})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover")
    agent.post("api/sim/tag", {"tag": v["sim"]["unknown_tag"]})                 # unknown box: risk handling
    agent.wait_for(lambda v: v["handover"]["risk"])
    agent.post("api/disposition", {"code": "box_set_aside", "text": "kept apart", "resolution": "continue"})
    agent.wait_for(lambda v: v["pending_auth"] is not None)
    agent.post("api/sim/finger", {"station": "door", "slot": duress_slot(v, "E01")})
    v = agent.wait_for(lambda v: v["prompts"][0]["key"] == "risk_handling_pending")   # the attempt was taken
    # the screen looks normal: the disposition still waits, nothing says duress
    assert v["pending_auth"]["purpose"] == "disposition" and v["handover"]["risk"]
    assert "duress" not in repr({k: x for k, x in v.items() if k != "sim"})
    assert agent.stop() == 0
    duress = [e for e in journal_entries(agent) if e.kind == "alarm" and e.body["alarm"] == "duress"]
    assert len(duress) == 1, [e.body for e in duress]
    assert duress[0].body["silent"] is True and duress[0].body["detail"]["person_id"] == "E01"
