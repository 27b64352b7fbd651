"""Everything the screen shows survives a crash (issue 19 item 7): kiosk mode, the kiosk's draft (under its
expiry rule), a staff action waiting for an officer's credential, and the kiosk a truck took the screen
from. The real agent is killed with SIGKILL and started again on the same state directory."""
from __future__ import annotations

import json
import signal
import sqlite3
import urllib.request
from datetime import datetime, timedelta

from agent.journal import Journal
from agent.sample import TRUCKS, tag_for

DRAFT = {"description": "柜员态度冷淡", "category": "service_attitude", "name": "王建国"}


def get(agent, path: str) -> dict:
    with urllib.request.urlopen(agent.url + path, timeout=5) as r:
        return json.load(r)


def slot(view: dict, pid: str) -> int:
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == pid)


def crash_and_restart(agent) -> dict:
    assert agent.stop(signal.SIGKILL) == -signal.SIGKILL
    agent.start()
    return agent.view()


def kinds(agent) -> list[str]:
    j = Journal(agent.state_dir / "journal.db")
    try:
        return [e.kind for e in j.entries()]
    finally:
        j.close()


def in_kiosk_with_a_draft(agent) -> dict:
    agent.start()
    agent.post("api/kiosk/enter", {})
    agent.post("api/kiosk/draft", {"draft": DRAFT})
    return agent.wait_for(lambda v: v["mode"] == "kiosk")


def test_kiosk_mode_and_its_draft_survive_a_crash(agent):
    in_kiosk_with_a_draft(agent)
    v = crash_and_restart(agent)
    assert v["mode"] == "kiosk", "the restarted agent must show the kiosk, not the handover screen"
    assert get(agent, "api/kiosk/draft")["draft"] == DRAFT
    # and leaving it still needs an officer's credential
    agent.post("api/kiosk/exit", {})
    v = agent.wait_for(lambda v: v["pending_auth"] is not None)
    agent.post("api/sim/finger", {"station": "door", "slot": slot(v, "E01")})     # an escort cannot sign it
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    assert agent.wait_for(lambda v: v["mode"] == "handover")["pending_auth"] is None


def test_a_draft_older_than_the_idle_timeout_is_dropped_with_a_prompt(agent):
    in_kiosk_with_a_draft(agent)
    assert agent.stop(signal.SIGKILL) == -signal.SIGKILL
    # the agent stays down for an hour: the page's idle timer would have cleared the form long ago
    db = sqlite3.connect(agent.state_dir / "journal.db")
    (updated,) = db.execute("SELECT updated FROM complaint_drafts").fetchone()
    with db:
        db.execute("UPDATE complaint_drafts SET updated=?",
                   ((datetime.fromisoformat(updated) - timedelta(hours=1)).isoformat(),))
    db.close()
    agent.start()
    v = agent.view()
    assert v["mode"] == "kiosk" and get(agent, "api/kiosk/draft")["draft"] is None
    assert v["prompts"][0]["key"] == "kiosk_draft_dropped"
    assert agent.stop() == 0
    assert "kiosk_draft_dropped" in kinds(agent)


def test_a_waiting_kiosk_exit_survives_a_crash(agent):
    in_kiosk_with_a_draft(agent)
    agent.post("api/kiosk/exit", {})
    agent.wait_for(lambda v: v["pending_auth"] is not None)
    v = crash_and_restart(agent)
    assert v["mode"] == "kiosk" and v["pending_auth"] == {"purpose": "kiosk_exit"}
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O02")})
    assert agent.wait_for(lambda v: v["mode"] == "handover")["pending_auth"] is None


def test_a_waiting_disposition_survives_a_crash_and_is_signed_after_it(agent):
    agent.start()
    v = agent.view()
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot(v, pid)})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover")
    agent.post("api/sim/tag", {"tag": v["sim"]["unknown_tag"]})
    agent.wait_for(lambda v: v["handover"]["risk"])
    agent.post("api/disposition", {"code": "box_set_aside", "text": "另行存放", "resolution": "continue"})
    agent.wait_for(lambda v: v["pending_auth"] is not None)

    v = crash_and_restart(agent)
    assert v["pending_auth"] == {"purpose": "disposition", "code": "box_set_aside", "text": "另行存放",
                                 "resolution": "continue"}
    assert v["handover"]["risk"] is True
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    v = agent.wait_for(lambda v: not v["handover"]["risk"])
    assert v["pending_auth"] is None and v["handover"]["step"] == "box_handover"


def test_a_kiosk_the_truck_took_the_screen_from_comes_back_after_a_crash_and_the_handover(agent):
    in_kiosk_with_a_draft(agent)
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    v = agent.wait_for(lambda v: v["handover"] is not None)
    assert v["mode"] == "handover"
    v = crash_and_restart(agent)
    assert v["mode"] == "handover" and v["handover"]["step"] == "escort_verification"
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot(v, pid)})
    agent.wait_for(lambda v: v["handover"]["step"] == "box_handover")
    for box in ("XB1-01", "XB1-02", "XB1-03"):
        agent.post("api/sim/tag", {"tag": tag_for(box)})
    agent.wait_for(lambda v: v["handover"]["step"] == "officer_confirmation")
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    agent.wait_for(lambda v: v["handover"]["step"] == "sign_off")
    agent.post("api/sim/finger", {"station": "door", "slot": slot(v, "E01")})
    agent.wait_for(lambda v: len(v["handover"]["marks"]) == 1)
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    v = agent.wait_for(lambda v: v["handover"] is None)
    assert v["mode"] == "kiosk", "the kiosk gets its screen back when the truck's handover ends"
    assert get(agent, "api/kiosk/draft")["draft"] == DRAFT       # what the customer typed waited


def test_a_staff_session_is_dropped_at_a_restart_with_a_prompt(agent):
    in_kiosk_with_a_draft(agent)
    agent.post("api/kiosk/staff", {})
    v = agent.wait_for(lambda v: v["pending_auth"] is not None)
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    assert agent.wait_for(lambda v: v["staff"] is not None)["staff"] == "周敏"
    v = crash_and_restart(agent)
    assert v["staff"] is None and v["mode"] == "kiosk"
    assert any(p["key"] == "staff_session_ended_restart" for p in v["prompts"])


def test_a_journal_from_before_the_screen_state_was_journaled_still_restores_kiosk_mode(agent):
    """Old journals have `screen_mode` entries with the mode only: that is restored, nothing invented."""
    agent.start()
    assert agent.stop() == 0
    j = Journal(agent.state_dir / "journal.db")
    j.append("screen_mode", {"mode": "kiosk"})           # as written before the staff machine
    j.close()
    agent.start()
    v = agent.view()
    assert v["mode"] == "kiosk" and v["pending_auth"] is None and v["staff"] is None
