"""Issue 6 in real headless Chromium: the complaint kiosk. A customer registers in Chinese and gets a
receipt; the idle timeout clears a half-filled form after a warning; leaving needs an officer's
credential; a truck's arrival takes the screen and the draft comes back; hostile input stays inert.
Screenshots in artifacts/e2e/kiosk-*.png."""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from agent.journal import Journal
from agent.sample import DEMO_PASSWORD

pytestmark = pytest.mark.browser

TRUCK_A = "沪A·C1234"
HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1">'
HOSTILE_NAME = "<img src=x onerror=window.pwned=1>"        # fits the 50-character name


def open_kiosk(agent, browser, query: str = ""):
    agent.start()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(agent.url)
    page.get_by_test_id("kiosk-enter").click()          # staff switch the idle screen to the kiosk
    page.wait_for_url("**/kiosk")
    if query:
        page.goto(agent.url + "kiosk" + query)
    expect(page.get_by_test_id("category-choices")).to_be_visible()
    return page


def get(agent, path: str) -> dict:
    with urllib.request.urlopen(agent.url + path.lstrip("/"), timeout=5) as r:
        return json.load(r)


def slot_of(agent, person_id: str) -> int:
    return next(p["slot"] for p in agent.view()["sim"]["people"] if p["person_id"] == person_id)


def journal_kinds(agent) -> list[tuple[str, dict]]:
    j = Journal(agent.state_dir / "journal.db")
    try:
        return [(e.kind, e.body) for e in j.entries()]
    finally:
        j.close()


def fill_complaint(page, description="在3号窗口办理转账时被多收了20元手续费，柜员态度冷淡。",
                   request="退还多收的手续费并道歉", name="李秀英", contact="13912345678"):
    page.get_by_test_id("category-irregular_fees").click()
    page.get_by_test_id("kiosk-next").click()                # a short wizard: what about, what happened, who
    page.get_by_test_id("field-description").fill(description)
    page.get_by_test_id("field-request").fill(request)
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-name").fill(name)
    page.get_by_test_id("field-contact").fill(contact)
    if name or contact:                    # PIPL: a name or contact is given only with consent to its use
        page.get_by_test_id("privacy-consent").click()


def test_customer_registers_a_complaint_in_chinese(agent, browser, artifacts):
    page = open_kiosk(agent, browser)
    # every touch target is large enough for a finger
    for handle in page.locator("button:visible, input:visible, textarea:visible, select:visible").element_handles():
        box = handle.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, handle.evaluate("e => e.outerHTML.slice(0, 80)")
    fill_complaint(page)
    page.get_by_test_id("field-counter").fill("3号窗口")
    page.get_by_test_id("staff-O02").click()
    expect(page.get_by_test_id("staff-O02")).to_have_attribute("aria-pressed", "true")   # shown as chosen
    page.screenshot(path=str(artifacts("e2e/kiosk-01-form.png")), full_page=True)
    page.get_by_test_id("kiosk-submit").click()

    receipt = page.get_by_test_id("receipt-text")
    expect(receipt).to_contain_text("投诉受理回执")
    expect(receipt).to_contain_text("受理编号：")
    expect(receipt).to_contain_text(re.compile(r"受理时间：\d{4}年\d{1,2}月\d{1,2}日（星期[一二三四五六日]）\s*\d\d:\d\d"))
    expect(receipt).to_contain_text(re.compile(r"承诺答复日期：\d{4}年\d{1,2}月\d{1,2}日（星期[一二三四五六日]）前"))
    expect(page.get_by_test_id("receipt-printed")).to_have_text("回执已打印，请取走")
    expect(receipt).not_to_contain_text("李秀英")                  # the receipt names no one
    page.screenshot(path=str(artifacts("e2e/kiosk-02-receipt.png")), full_page=True)
    ref = page.get_by_test_id("kiosk-receipt").get_attribute("data-ref")

    page.get_by_test_id("receipt-done").click()                    # the next customer sees an empty form
    expect(page.get_by_test_id("wizard-step-1")).to_have_class("wstep current")
    expect(page.get_by_test_id("category-irregular_fees")).to_have_attribute("aria-checked", "false")
    page.get_by_test_id("category-other").click()
    page.get_by_test_id("kiosk-next").click()
    expect(page.get_by_test_id("field-description")).to_have_value("")
    expect(page.get_by_test_id("kiosk-form")).not_to_contain_text("李秀英")

    registered = [b for k, b in journal_kinds(agent) if k == "complaint_registered"]
    assert [b["ref"] for b in registered] == [ref]
    assert registered[0]["category"] == "irregular_fees" and registered[0]["staff_concerned"] == ["O02"]
    assert "李秀英" not in json.dumps(registered, ensure_ascii=False)


def test_a_press_held_on_a_choice_while_the_keyboard_is_open_lands_on_that_choice(agent, browser):
    """Pressing a button takes the focus from a text field before the press ends; had the keyboard
    gone at once, the page would move under the finger and the release land elsewhere (a lost tap:
    the staff concerned came back empty)."""
    page = open_kiosk(agent, browser)
    page.get_by_test_id("category-other").click()                  # the wizard's third page holds the chips
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-description").fill("排队")
    page.get_by_test_id("field-request").fill("改进")
    page.get_by_test_id("kb-hide").click()
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-counter").click()                   # the keyboard docks below the field
    expect(page.get_by_test_id("keyboard")).to_be_visible()
    chip = page.get_by_test_id("staff-O02")
    chip.evaluate("e => e.scrollIntoView({block: 'start'})")       # the page scrolled as far as it goes
    box = chip.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    time.sleep(0.3)                                                # a finger rests a moment
    assert chip.bounding_box() == box                              # nothing moved under it
    page.mouse.up()
    expect(chip).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("keyboard")).to_be_hidden()        # and the keyboard goes after the press


def test_idle_timeout_warns_then_clears_a_half_filled_form(agent, browser, artifacts):
    page = open_kiosk(agent, browser, "?idle=4&warn=2")
    page.get_by_test_id("category-service_attitude").click()
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-description").fill("排队一个小时没人管")
    deadline = time.monotonic() + 5
    while get(agent, "api/kiosk/draft")["draft"] is None:           # the draft is saved while typing
        assert time.monotonic() < deadline, "the draft was never saved"
        time.sleep(0.1)
    warning = page.get_by_test_id("idle-warning")
    expect(warning).to_be_visible(timeout=5000)
    expect(page.get_by_test_id("idle-text")).to_contain_text("秒后将清空本页内容")
    page.screenshot(path=str(artifacts("e2e/kiosk-03-idle-warning.png")))
    expect(warning).to_be_hidden(timeout=5000)
    expect(page.get_by_test_id("category-service_attitude")).to_have_attribute("aria-checked", "false")
    expect(page.get_by_test_id("field-description")).to_have_count(0)          # back on the wizard's first page
    time.sleep(0.5)
    assert get(agent, "api/kiosk/draft")["draft"] is None          # nothing left for the next customer
    page.get_by_test_id("category-other").click()
    page.get_by_test_id("kiosk-next").click()
    expect(page.get_by_test_id("field-description")).to_have_value("")


def test_leaving_the_kiosk_and_the_staff_view_need_a_credential(agent, browser, artifacts):
    page = open_kiosk(agent, browser)
    fill_complaint(page)
    page.get_by_test_id("staff-O02").click()
    page.get_by_test_id("kiosk-submit").click()
    expect(page.get_by_test_id("receipt-text")).to_be_visible()
    page.get_by_test_id("receipt-done").click()

    # the customer page cannot reach staff data
    with pytest.raises(urllib.error.HTTPError) as e:
        get(agent, "api/staff/complaints")
    assert e.value.code == 403

    page.get_by_test_id("kiosk-exit").click()
    expect(page.get_by_test_id("pending-auth")).to_contain_text("退出投诉登记")
    page.get_by_test_id("password-officer").select_option("O01")
    page.get_by_test_id("password-input").fill("wrong-password")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("password-error")).to_have_text("密码错误")
    assert agent.view()["mode"] == "kiosk"
    agent.post("api/sim/finger", {"station": "door", "slot": slot_of(agent, "E01")})    # an escort cannot sign it
    time.sleep(0.3)
    assert agent.view()["mode"] == "kiosk"
    page.get_by_test_id("pending-cancel").click()
    expect(page.get_by_test_id("pending-auth")).to_have_count(0)
    assert agent.view()["prompts"][0]["key"] == "staff_action_cancelled"     # not the request any more

    # staff view: O02 is concerned by the complaint and must recuse; O01 handles it
    page.get_by_test_id("kiosk-staff").click()
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(agent, "O02")})
    card = page.locator(".complaint").first
    expect(card.get_by_test_id("recused")).to_be_visible()
    expect(card).to_contain_text("李秀英")
    page.get_by_test_id("staff-logout").click()
    expect(page.get_by_test_id("kiosk-form")).to_be_visible()
    page.get_by_test_id("kiosk-staff").click()
    page.get_by_test_id("password-officer").select_option("O01")
    page.get_by_test_id("password-input").fill(DEMO_PASSWORD)
    page.get_by_test_id("password-submit").click()
    expect(card.get_by_test_id("complaint-status")).to_have_text("已登记")
    expect(card).to_contain_text("答复期限")
    ref = card.get_attribute("data-testid").removeprefix("complaint-")
    page.get_by_test_id(f"action-{ref}-classify").click()
    page.get_by_test_id("param-complexity-complex").click()
    page.get_by_test_id("param-validity-valid").click()
    page.get_by_test_id("action-save").click()
    expect(card.get_by_test_id("complaint-status")).to_have_text("已分类")
    page.get_by_test_id(f"action-{ref}-transfer").click()
    page.get_by_test_id("action-save").click()                       # no department: refused by name
    expect(card.get_by_test_id("action-error")).to_contain_text("to is required")
    page.get_by_test_id("param-to").fill("个人金融部")
    page.get_by_test_id("action-save").click()
    expect(card.get_by_test_id("complaint-status")).to_have_text("已转办")
    page.get_by_test_id("report-show").click()
    expect(page.get_by_test_id("report-output")).to_contain_text("受理 1")
    page.screenshot(path=str(artifacts("e2e/kiosk-04-staff-view.png")), full_page=True)
    page.get_by_test_id("staff-logout").click()

    # leaving with an officer's finger brings the handover screen back
    page.get_by_test_id("kiosk-exit").click()
    expect(page.get_by_test_id("pending-auth")).to_be_visible()
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(agent, "O01")})
    page.wait_for_url(agent.url)
    expect(page.get_by_test_id("public-face")).to_be_visible()          # the handover screen's idle face
    expect(page.get_by_test_id("kiosk-enter")).to_be_visible()
    assert agent.view()["mode"] == "handover"
    kinds = [(k, b.get("action")) for k, b in journal_kinds(agent) if k.startswith("complaint")]
    assert kinds[-2:] == [("complaint_transition", "classify"), ("complaint_transition", "transfer")]


def test_truck_arrival_interrupts_and_the_draft_survives(agent, browser, artifacts):
    page = open_kiosk(agent, browser)
    fill_complaint(page, description="存款被误扣，请尽快核查", name="王建国")
    deadline = time.monotonic() + 5
    while (get(agent, "api/kiosk/draft")["draft"] or {}).get("contact") != "13912345678":
        assert time.monotonic() < deadline, "the draft was never saved"
        time.sleep(0.1)
    agent.post("api/sim/beacon", {"beacon": next(t["beacon"] for t in agent.view()["sim"]["trucks"]
                                                 if t["plate"] == TRUCK_A)})
    page.wait_for_url(agent.url)                                      # the handover takes the screen
    # the customer still standing there sees a curtain, not the escorts, until staff take over
    expect(page.get_by_test_id("curtain")).to_be_visible()
    assert "王强" not in page.content() and TRUCK_A not in page.content()
    page.get_by_test_id("curtain-staff").click()
    expect(page.get_by_test_id("step-escort_verification")).to_have_attribute("data-current", "true")
    page.screenshot(path=str(artifacts("e2e/kiosk-05-truck-takes-the-screen.png")), full_page=True)

    def finger(station: str, pid: str) -> None:
        agent.post("api/sim/finger", {"station": station, "slot": slot_of(agent, pid)})
    finger("door", "E01")
    finger("door", "E02")
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover")
    tags = {t["box_id"]: t["tag"] for t in agent.view()["sim"]["tags"]}
    for box in ("XB1-01", "XB1-02", "XB1-03"):
        agent.post("api/sim/tag", {"tag": tags[box]})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "officer_confirmation")
    finger("counter", "O01")
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "sign_off")
    finger("door", "E01")
    finger("counter", "O01")

    page.wait_for_url("**/kiosk", timeout=30000)                       # kiosk mode resumes after the handover
    # the customer's draft stays off the screen (the truck's crew is still here) until the customer asks for it
    expect(page.get_by_test_id("draft-offer")).to_be_visible()
    assert "王建国" not in page.locator("body").inner_text()
    page.get_by_test_id("draft-resume").click()
    expect(page.get_by_test_id("field-name")).to_have_value("王建国")      # on the page the customer left
    page.get_by_test_id("kiosk-prev").click()
    expect(page.get_by_test_id("field-description")).to_have_value("存款被误扣，请尽快核查")
    page.get_by_test_id("kiosk-prev").click()
    expect(page.get_by_test_id("category-irregular_fees")).to_have_attribute("aria-checked", "true")
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("kiosk-next").click()
    page.screenshot(path=str(artifacts("e2e/kiosk-06-draft-back.png")), full_page=True)
    page.get_by_test_id("kiosk-submit").click()
    expect(page.get_by_test_id("receipt-text")).to_contain_text("受理编号：")


def test_hostile_input_is_stored_and_shown_inert(agent, browser, artifacts):
    page = open_kiosk(agent, browser)
    page.get_by_test_id("category-other").click()
    page.get_by_test_id("kiosk-next").click()
    for field in ("description", "request"):
        page.get_by_test_id(f"field-{field}").fill(HOSTILE)
    page.get_by_test_id("kiosk-next").click()
    for field in ("contact", "counter"):
        page.get_by_test_id(f"field-{field}").fill(HOSTILE)
    page.get_by_test_id("field-name").fill(HOSTILE_NAME)
    page.get_by_test_id("privacy-consent").click()
    page.get_by_test_id("kiosk-submit").click()
    expect(page.get_by_test_id("receipt-text")).to_contain_text("受理编号：")
    page.get_by_test_id("receipt-done").click()

    # very long text: refused with a message naming the field, nothing stored
    page.get_by_test_id("category-other").click()
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-description").fill("长" * 2001)
    page.get_by_test_id("field-request").fill("x")
    page.get_by_test_id("kiosk-next").click()                           # the page with the complaint stays
    expect(page.get_by_test_id("error-description")).to_have_text("投诉事项过长：2001字，最多2000字")
    page.screenshot(path=str(artifacts("e2e/kiosk-07-too-long.png")), full_page=True)
    page.get_by_test_id("field-description").fill("长" * 20)
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-name").fill("名" * 51)
    page.get_by_test_id("kiosk-submit").click()
    expect(page.get_by_test_id("error-name")).to_contain_text("过长：51字，最多50字")
    page.get_by_test_id("kiosk-clear").click()
    page.get_by_test_id("clear-yes").click()                             # clearing asks first

    page.get_by_test_id("kiosk-staff").click()
    page.get_by_test_id("password-officer").select_option("O01")
    page.get_by_test_id("password-input").fill(DEMO_PASSWORD)
    page.get_by_test_id("password-submit").click()
    cards = page.locator(".complaint")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text(HOSTILE)                        # shown as text, literally
    expect(cards.first).to_contain_text(HOSTILE_NAME)
    assert cards.first.locator("script, img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.screenshot(path=str(artifacts("e2e/kiosk-08-hostile-inert.png")), full_page=True)
