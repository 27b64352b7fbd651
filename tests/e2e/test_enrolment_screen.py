"""Enrolment at the branch in real headless Chromium (SPEC §2.4, issue 11): staff pick a person and a
finger, an officer's finger signs it, the person presses twice at the counter module (the emulator behind
the real UART driver), and the newly enrolled finger then verifies that escort at the door in a handover.
Screenshots per step under artifacts/e2e/ (with the simulator panel open beside the screen)."""
from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from playwright.sync_api import expect

from drivers.fingerprint.emulator import finger_template

pytestmark = pytest.mark.browser

TRUCK_A = "沪A·C1234"       # the sample day's first task: escorts E01 王强 and E02 李军


def shot(page, artifacts, n: int, name: str) -> None:
    page.screenshot(path=str(artifacts(f"e2e/enrolment-{n:02d}-{name}.png")))


def journal(agent, kind: str) -> list[dict]:
    with sqlite3.connect(agent.state_dir / "journal.db") as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM journal WHERE kind=? ORDER BY seq", (kind,))]


def test_an_officer_enrols_an_escorts_finger_and_it_verifies_at_the_door(agent, browser, artifacts):
    agent.start()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(agent.url)
    prompt = page.get_by_test_id("prompt-text")
    card = page.get_by_test_id("enrol")

    # a staff action: staff sign in first (the idle screen faces the public), then one step per screen
    expect(page.get_by_test_id("enrol-open")).to_have_count(0)
    page.get_by_test_id("staff-toggle").click()
    page.get_by_test_id("sim-counter-O01").click()
    page.get_by_test_id("enrol-open").click()
    expect(card).to_have_attribute("data-step", "person")
    expect(page.get_by_test_id("tasks")).to_be_hidden()        # the enrolment has the screen to itself
    shot(page, artifacts, 1, "person")
    page.get_by_test_id("enrol-person-E01").click()
    expect(card).to_have_attribute("data-step", "finger")
    expect(card).to_contain_text("第二步：选择王强要登记的手指")
    shot(page, artifacts, 2, "finger")
    page.get_by_test_id("enrol-finger-right_middle").click()

    # nothing is captured until an officer signs; an escort's finger does not
    expect(card).to_have_attribute("data-step", "officer")
    expect(page.get_by_test_id("enrol-instruction")).to_have_text(
        "第三步：请营业专员按压指纹（或输入密码）授权为王强登记右手中指")
    shot(page, artifacts, 3, "officer")
    page.get_by_test_id("sim-counter-E02").click()
    expect(prompt).to_have_text("当前没有进行中的交接")
    expect(card).to_have_attribute("data-step", "officer")
    page.get_by_test_id("sim-counter-O01").click()

    # the captures, with the spoken and shown guidance at each step
    instruction = page.get_by_test_id("enrol-instruction")
    expect(card).to_have_attribute("data-step", "capture")
    expect(instruction).to_have_attribute("data-stage", "press")
    expect(prompt).to_have_text("请按压手指（王强，柜台指纹仪）")
    shot(page, artifacts, 4, "press")
    page.get_by_test_id("sim-enrol-new-finger").click()
    expect(instruction).to_have_attribute("data-stage", "press_again")
    expect(prompt).to_have_text("请再次按压同一手指")
    expect(page.get_by_test_id("instruction")).to_have_text("请再次按压同一手指")     # the headline too
    shot(page, artifacts, 5, "press-again")
    page.get_by_test_id("sim-enrol-new-finger").click()
    expect(instruction).to_have_attribute("data-stage", "done", timeout=15000)
    expect(prompt).to_have_text("王强的指纹登记成功")
    shot(page, artifacts, 6, "done")

    # journaled with ids and the template's hash only; the template itself is in neither the entry nor in clear
    [entry] = journal(agent, "finger_enrolled")
    template = finger_template("new-E01/right_middle", 512)
    assert entry["person_id"] == "E01" and entry["finger"] == "right_middle" and entry["officer_id"] == "O01"
    assert entry["method"] == "fingerprint" and entry["not_stored"] == []
    assert entry["template_sha256"] == hashlib.sha256(template).hexdigest()
    text = json.dumps(entry, ensure_ascii=False)
    assert "王强" not in text and template.hex()[:64] not in text
    with sqlite3.connect(agent.state_dir / "journal.db") as db:
        sealed = db.execute("SELECT sealed FROM templates WHERE person_id='E01' AND finger='right_middle'").fetchone()
    assert sealed is not None and template[:32] not in sealed[0]

    page.get_by_test_id("enrol-close").click()
    expect(card).to_be_hidden()
    expect(page.get_by_test_id("tasks")).to_be_visible()

    # the new finger verifies its escort at the door, in a handover
    page.get_by_test_id(f"sim-truck-{TRUCK_A}").click()
    expect(page.get_by_test_id("escort-E01")).to_have_attribute("data-verified", "false")
    page.get_by_test_id("sim-door-E01-right_middle").click()
    expect(prompt).to_have_text("押运员王强身份验证成功")
    expect(page.get_by_test_id("escort-E01")).to_have_attribute("data-verified", "true")
    page.get_by_test_id("sim-door-E02").click()
    expect(page.get_by_test_id("door")).to_have_attribute("data-raised", "true")
    shot(page, artifacts, 7, "verified-at-door")
    attempts = [b["event"] for b in journal(agent, "finger_attempt") if b["event"]["station"] == "door"]
    assert attempts[0]["person_id"] == "E01" and attempts[0]["outcome"] == "match"


def test_a_finger_already_enrolled_is_refused_as_a_duplicate(agent, browser, artifacts):
    agent.start()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(agent.url)
    agent.post("/api/enrolment", {"person_id": "E03", "finger": "left_middle"})
    page.get_by_test_id("sim-counter-O02").click()
    instruction = page.get_by_test_id("enrol-instruction")
    expect(instruction).to_have_attribute("data-stage", "press")
    page.get_by_test_id("sim-enrol-new-finger").click()
    page.get_by_test_id("sim-enrol-new-finger").click()
    expect(instruction).to_have_attribute("data-stage", "done", timeout=15000)
    page.get_by_test_id("enrol-close").click()

    # the same finger offered again, for another finger name of the same person: found in the library
    agent.post("/api/enrolment", {"person_id": "E03", "finger": "left_thumb"})
    page.get_by_test_id("sim-counter-O02").click()
    expect(instruction).to_have_attribute("data-stage", "press")
    for _ in range(2):
        agent.post("/api/sim/finger", {"station": "counter", "new_finger": "E03/left_middle"})
    expect(instruction).to_have_attribute("data-stage", "duplicate", timeout=15000)
    expect(page.get_by_test_id("prompt-text")).to_have_text("该手指已登记过，未重复登记")
    shot(page, artifacts, 8, "duplicate")
    [failed] = journal(agent, "finger_enrol_failed")
    assert failed["reason"] == "duplicate" and failed["person_id"] == "E03" and failed["finger"] == "left_thumb"
    fingers = next(p for p in agent.view()["sim"]["people"] if p["person_id"] == "E03")["fingers"]
    assert fingers == {"right_index": fingers["right_index"], "left_middle": failed["existing_slot"]}
