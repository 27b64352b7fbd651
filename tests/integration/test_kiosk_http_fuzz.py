"""The kiosk's and staff's form routes fuzzed against the real agent (its aiohttp app, journal and sealed
complaint book), over HTTP: whatever body arrives, the answer is 200 or a 4xx naming what is wrong —
never a 500 — the agent keeps serving, every registration answered 200 is in the journal and nothing
refused is. (The validation functions behind these routes run >= 1,000,000 inputs in tools/fuzz_long.py.)
"""
from __future__ import annotations

import json
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.journal import Journal
from agent.sample import DEMO_PASSWORD, STRANGER_BEACON, TRUCKS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from conftest import AgentProcess, free_port  # noqa: E402
from test_kiosk_input_fuzz import FORM, raw_bodies  # noqa: E402

ROUTES = ["api/kiosk/complaints", "api/kiosk/draft", "api/disposition", "api/manual-arrival", "api/enrolment",
          "api/staff/complaints/{ref}/handle", "api/staff/complaints/{ref}/classify",
          "api/staff/complaints/{ref}/mark_repeat", "api/sim/beacon", "api/language",
          "api/kiosk/lookup", "api/staff/complaints/{ref}/escalate"]


def post(agent: AgentProcess, path: str, raw: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(agent.url + path, data=raw, headers={"Content-Type": "application/json"},
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        body = e.read()
        return e.code, json.loads(body) if body.startswith(b"{") else {"error": body.decode(errors="replace")}


class Kiosk:
    def __init__(self, agent: AgentProcess):
        self.agent = agent
        self.registered: list[str] = []
        assert post(agent, "api/kiosk/enter", b"{}")[0] == 200
        status, receipt = post(agent, "api/kiosk/complaints", json.dumps(FORM).encode())
        assert status == 200, receipt
        self.ref = receipt["ref"]
        self.registered.append(self.ref)
        self.staff()

    def staff(self) -> None:
        """An officer's password opens the staff view (it lapses after 5 minutes unused)."""
        post(self.agent, "api/kiosk/staff", b"{}")
        assert post(self.agent, "api/password", json.dumps({"person_id": "O01", "password": DEMO_PASSWORD})
                    .encode()) == (200, {"ok": True})


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory):
    agent = AgentProcess(tmp_path_factory.mktemp("kiosk-fuzz") / "state", free_port()).start()
    try:
        yield Kiosk(agent)
    finally:
        if agent.proc is not None:
            agent.stop(signal.SIGKILL)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(ROUTES), raw_bodies)
def test_no_body_on_a_form_route_gets_a_500_and_every_answered_registration_is_journaled(kiosk, route, raw):
    status, answer = post(kiosk.agent, route.format(ref=kiosk.ref), raw)
    assert status in (200, 400, 403), (status, answer)
    if status != 200:
        assert answer.get("error"), answer
    elif route == "api/kiosk/complaints":
        kiosk.registered.append(answer["ref"])
    if route == "api/language" and status == 200:
        post(kiosk.agent, "api/language", b'{"lang": "zh-CN"}')
    kiosk.agent.view()                                  # still serving


def test_after_the_fuzz_the_journal_holds_exactly_the_answered_registrations(kiosk):
    kiosk.agent.stop()
    journal = Journal(kiosk.agent.state_dir / "journal.db")
    try:
        assert journal.verify().ok
        refs = [e.body["ref"] for e in journal.entries() if e.kind == "complaint_registered"]
    finally:
        journal.close()
    assert refs == kiosk.registered


def test_a_beacon_with_the_trucks_uuid_but_another_minor_is_an_unknown_vehicle_not_the_truck(agent):
    agent.start()
    truck = TRUCKS[0].beacon                            # ibeacon:<uuid>:100:1
    uuid_part, major, _ = truck.rsplit(":", 2)
    for forged in (f"{uuid_part}:{major}:3", f"{uuid_part}:{int(major) + 1}:1", STRANGER_BEACON):
        agent.post("api/sim/beacon", {"beacon": forged, "rssi": -50})
    v = agent.wait_for(lambda v: len(v["site_alarms"]) >= 3)
    assert {a["kind"] for a in v["site_alarms"]} == {"unknown_vehicle"} and v["handover"] is None
    agent.post("api/sim/beacon", {"beacon": truck, "rssi": -50})
    agent.wait_for(lambda v: v["handover"] is not None)
