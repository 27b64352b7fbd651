"""The daemon stops cleanly on SIGTERM/SIGINT, and a restart resumes the handover in progress from
the journal — also after SIGKILL, since every decision is committed before it is shown."""
from __future__ import annotations

import signal

import pytest

from agent.sample import TRUCKS, tag_for

BEACON_A = TRUCKS[0].beacon


def slot_of(view: dict, person_id: str) -> int:
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == person_id)


def half_way(agent) -> dict:
    """Arrival, both escorts verified (door permitted), one of three boxes read."""
    v = agent.view()
    agent.post("api/sim/beacon", {"beacon": BEACON_A})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "escort_verification")
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot_of(v, pid)})
        agent.wait_for(lambda v, pid=pid: any(e["person_id"] == pid and e["verified"] for e in v["handover"]["escorts"]))
    agent.post("api/sim/tag", {"tag": tag_for("XB1-01")})
    return agent.wait_for(lambda v: v["handover"]["counted"] == 1)


def to_the_end(agent, v: dict) -> dict:
    """From half way: the last two boxes, the officer's confirmation, both marks; returns the final view."""
    for box in ("XB1-02", "XB1-03"):
        agent.post("api/sim/tag", {"tag": tag_for(box)})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "officer_confirmation")
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(v, "O01")})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "sign_off")
    agent.post("api/sim/finger", {"station": "door", "slot": slot_of(v, "E01")})
    agent.wait_for(lambda v: v["handover"] and len(v["handover"]["marks"]) == 1)
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(v, "O01")})
    return agent.wait_for(lambda v: v["handover"] is None and v["report"] is not None)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_restart_resumes_the_handover_in_progress(agent, sig):
    agent.start()
    before = half_way(agent)
    code = agent.stop(sig)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0)

    agent.start()
    after = agent.view()
    h = after["handover"]
    assert h is not None, "the handover in progress was lost on restart"
    assert h["task_id"] == before["handover"]["task_id"]
    assert h["step"] == "box_handover"
    assert [e["verified"] for e in h["escorts"]] == [True, True]
    assert h["counted"] == 1 and [b["read"] for b in h["boxes"]] == [True, False, False]
    assert after["door"] is True, "the door permission must be restored for the resumed handover"

    done = to_the_end(agent, after)             # and it goes on from there to the end
    assert done["report"]["outcome"] == "completed"
    assert done["door"] is False


def test_bad_simulator_requests_are_refused_by_name(agent):
    import json
    import urllib.error
    import urllib.request
    agent.start()
    for path, body, expected in [
        ("api/sim/finger", {"station": "roof", "slot": 0}, "station must be one of"),
        ("api/sim/finger", {"station": "door", "slot": -3}, "slot must be a non-negative integer"),
        ("api/sim/tag", {"tag": "<script>"}, "tag must be a hexadecimal UID"),
        ("api/language", {"lang": "fr"}, "lang must be one of zh-CN, en"),
    ]:
        req = urllib.request.Request(agent.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 400
        assert expected in json.loads(e.value.read())["error"]
    # a form post from another page is not accepted
    req = urllib.request.Request(agent.url + "api/sim/tag", data=b"tag=04AA", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 400
    # a page that rebinds its DNS name to 127.0.0.1 still sends its own Host header: refused
    req = urllib.request.Request(agent.url + "api/view", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403
    assert agent.view()["handover"] is None       # nothing changed


def test_a_restart_after_head_office_removed_the_confirming_officer_resumes_where_it_was(agent):
    """Issue 13 item 1, the reported case: the officer confirms, head office's personnel update removes that
    officer, the agent is killed and restarts. The handover comes back at sign-off exactly as it was,
    with no wrong_person alarm that never happened (it used to be rebuilt from today's people)."""
    import asyncio

    from agent.journal import Journal
    from agent.sealing import Sealer
    from agent.store import Store
    from offline.importers import apply_personnel

    agent.start()
    v = half_way(agent)
    for box in ("XB1-02", "XB1-03"):
        agent.post("api/sim/tag", {"tag": tag_for(box)})
    agent.wait_for(lambda v: v["handover"]["step"] == "officer_confirmation")
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(v, "O01")})
    before = agent.wait_for(lambda v: v["handover"]["step"] == "sign_off")
    assert agent.stop(signal.SIGKILL) == -signal.SIGKILL

    # head office's personnel update, through the importer the downlink uses
    journal = Journal(agent.state_dir / "journal.db")
    store = Store(journal.db, Sealer(agent.state_dir / "keys" / "data.key"), agent.state_dir / "photos")
    asyncio.run(apply_personnel(journal, store, [], [], "mqtt:test-remove-officer", remove=["O01"]))
    assert store.person("O01") is None
    journal.close()

    agent.start()
    after = agent.view()
    h, was = after["handover"], before["handover"]
    assert h is not None and h["task_id"] == was["task_id"]
    assert h["step"] == "sign_off" and h["officer"]["person_id"] == "O01"
    assert h["risk"] is False and h["open_alarms"] == []
    assert (h["counted"], h["failures"], [e["verified"] for e in h["escorts"]]) == (
        was["counted"], was["failures"], [e["verified"] for e in was["escorts"]])
    assert after["door"] is True
    assert agent.stop() == 0
    j = Journal(agent.state_dir / "journal.db")
    try:
        assert [e.body["alarm"] for e in j.entries() if e.kind == "alarm"] == []
    finally:
        j.close()
