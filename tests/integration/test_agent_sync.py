"""The daemon's sync with head office, end to end: the real agent process against a real mosquitto
(mutual TLS, ACL), watched by the head-office companion. Alarms and task progress reach head office as
they happen; the chain verifies there; an agent restart sends nothing twice."""
from __future__ import annotations

import time

from broker import mqtt_config
from mqtt_fixtures import broker, hq  # noqa: F401 (fixtures: a TLS mosquitto with the device ACL, head office on it)
from agent.sample import STRANGER_BEACON, TRUCKS


def wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "head office never saw it"
        time.sleep(0.05)


def test_agent_publishes_progress_and_alarms_to_head_office(agent, hq):
    config = mqtt_config(hq.broker, "dev-sync-1", "BR-050", agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    agent.post("api/sim/beacon", {"beacon": STRANGER_BEACON})              # an unknown truck: alarm
    wait(lambda: any(a["kind"] == "alarm" and a["body"]["alarm"] == "unknown_vehicle" for _, a in hq.alarms))
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})             # the real one: task progress
    wait(lambda: any(e["kind"] == "arrival" for e in hq.log("dev-sync-1").entries))
    log = hq.log("dev-sync-1")
    assert log.site_id == config.site.id and not log.chain_errors
    sent = log.last_seq
    assert agent.stop() == 0
    agent.start("--config", str(agent.state_dir / "agent.toml"))          # restart: resumes, no duplicates
    wait(lambda: hq.log("dev-sync-1").last_seq > sent)                    # its "agent_started" entry
    assert agent.view()["handover"]["step"] == "escort_verification"
    log = hq.log("dev-sync-1")
    assert [e["seq"] for e in log.entries] == list(range(1, log.last_seq + 1))
    assert not log.chain_errors


def test_complaints_reach_head_office_and_head_office_can_move_them_on(agent, hq):
    mqtt_config(hq.broker, "dev-sync-2", "BR-051", agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    agent.post("api/kiosk/enter", {})
    receipt = agent.post("api/kiosk/complaints", {
        "channel": "walk_in", "category": "service_attitude", "description": "柜员态度冷淡",
        "request": "希望改进", "name": "王建国", "contact": "13912345678"})
    ref = receipt["ref"]
    wait(lambda: any(e["kind"] == "complaint_registered" for e in hq.log("dev-sync-2").entries))
    registered = next(e for e in hq.log("dev-sync-2").entries if e["kind"] == "complaint_registered")
    assert "王建国" not in str(registered) and "13912345678" not in str(registered), \
        "personal data stays sealed on the device"

    ok = hq.wait_reply(hq.send("dev-sync-2", "complaint", {"site_id": "BR-051", "ref": ref, "action": "classify",
                                                            "params": {"complexity": "complex", "validity": "valid"}}))
    assert ok["ok"] is True, ok
    bad = hq.wait_reply(hq.send("dev-sync-2", "complaint", {"site_id": "BR-051", "ref": ref, "action": "archive"}))
    assert bad["ok"] is False and bad["error"], "an illegal transition is refused with a reason"
    wait(lambda: any(e["kind"] == "complaint_transition" for e in hq.log("dev-sync-2").entries))
    moved = [e for e in hq.log("dev-sync-2").entries if e["kind"] == "complaint_transition"]
    assert len(moved) == 1 and moved[0]["body"]["source"] == "head_office"
