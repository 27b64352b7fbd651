"""Route skip (跳点) that tells the truth offline (issue 13 item 3, SPEC §2.3): the real agent decides
only on what is known. Head office reports earlier stops done or (from the fleet's records) skipped over
MQTT; with nothing reported the arrival is journaled `route_unverified`, shown to staff, and nothing
blocks; progress that arrives later marks the route verified."""
from __future__ import annotations


from broker import mqtt_config
from mqtt_fixtures import broker, hq  # noqa: F401 (fixtures: a TLS mosquitto with the device ACL, head office on it)
from agent.journal import Journal
from agent.sample import SITE_NAMES, TRUCKS, VAULT

DEVICE, SITE = "dev-route-1", "BR-060"


def online(agent, hq) -> str:
    """The agent connected to head office; returns truck A's delivery task id (route VLT-01, here, BR-002)."""
    mqtt_config(hq.broker, DEVICE, SITE, agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    assert hq.wait_for(DEVICE, 1), "the agent never reached head office"     # connected
    return truck_a_task(agent)


def truck_a_task(agent) -> str:
    return next(t["task_id"] for t in agent.view()["sim"]["tasks"] if t["plate"] == TRUCKS[0].plate
                and t["kind"] == "delivery")


def report(hq, task_id: str, status: str = "done") -> None:
    reply = hq.wait_reply(hq.send(DEVICE, "route_progress", {"site_id": SITE, "stops": [
        {"task_id": task_id, "site_id": VAULT, "at": "2026-11-23T08:30:00+08:00", "status": status}]}))
    assert reply["ok"] is True, reply


def journal(agent) -> list:
    j = Journal(agent.state_dir / "journal.db")
    try:
        return list(j.entries())
    finally:
        j.close()


def arrive(agent) -> dict:
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    return agent.wait_for(lambda v: v["handover"] is not None and v["handover"]["step"] != "arrival")


def test_offline_an_unreported_earlier_stop_is_unverified_and_blocks_nothing(agent):
    agent.start()                                  # no head office at all: the demo runs offline
    v = arrive(agent)
    h = v["handover"]
    assert h["step"] == "escort_verification" and h["risk"] is False and h["open_alarms"] == []
    assert h["route_unverified"] == [VAULT]
    # the prompt names the stop as staff know it (the demo day carries site names), not by its code
    assert any(p["key"] == "route_unverified" and SITE_NAMES[VAULT] in p["text"] for p in v["prompts"]), v["prompts"]
    assert agent.stop() == 0
    entries = journal(agent)
    assert not [e for e in entries if e.kind == "alarm"], "an unknown stop is not a route skip"
    [arrival] = [e for e in entries if e.kind == "arrival"]
    assert {"type": "RouteUnverified", "stops": [VAULT]} in arrival.body["decisions"]
    assert arrival.body["event"]["stops_unknown"] == [VAULT]
    [unverified] = [e for e in entries if e.kind == "route_unverified"]
    assert unverified.body == {"site_id": v["site"]["id"], "stops": [VAULT]} and unverified.task_id == arrival.task_id


def test_online_a_stop_reported_done_raises_nothing(agent, hq):
    task_id = online(agent, hq)
    report(hq, task_id, "done")
    h = arrive(agent)["handover"]
    assert h["route_unverified"] == [] and h["risk"] is False and h["step"] == "escort_verification"


def test_online_a_stop_head_office_judged_skipped_is_a_route_skip(agent, hq):
    task_id = online(agent, hq)
    report(hq, task_id, "skipped")
    h = arrive(agent)["handover"]
    assert h["risk"] is True and [a["kind"] for a in h["open_alarms"]] == ["route_skip"]
    assert h["route_unverified"] == []
    assert agent.stop() == 0
    assert [e.body["detail"] for e in journal(agent) if e.kind == "alarm"] == [{"skipped": [VAULT]}]


def test_progress_arriving_late_verifies_the_route_and_survives_a_restart(agent, hq):
    task_id = online(agent, hq)
    assert arrive(agent)["handover"]["route_unverified"] == [VAULT]
    report(hq, task_id, "done")
    v = agent.wait_for(lambda v: v["handover"]["route_unverified"] == [])
    assert v["prompts"][0]["key"] == "route_verified" and v["handover"]["risk"] is False
    assert agent.stop() == 0
    assert [e.body["decisions"][0] for e in journal(agent) if e.kind == "route_rechecked"] == [
        {"type": "RouteVerified", "stops": [VAULT]}]
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    h = agent.view()["handover"]
    assert h["task_id"] == task_id and h["route_unverified"] == [] and h["step"] == "escort_verification"
