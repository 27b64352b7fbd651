"""Issue 17 in real headless Chromium at the wall screen's 800×480: a past handover is found by day, truck and
box tag and reprinted as a copy (the simulated printer's paper says 副本); the escort's employee number is on
the card; a customer looks up a complaint's progress with its reference and the contact's last 4 digits, a
wrong pair reveals nothing, and the receipt and the kiosk show the configured hotline.
Screenshots in artifacts/e2e/records-*.png and artifacts/e2e/kiosk-lookup-*.png."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from agent.journal import Journal

pytestmark = pytest.mark.browser

TRUCK_A = "沪A·C1234"
SCREEN = {"width": 800, "height": 480}
NO_SCROLL = "() => document.scrollingElement.scrollHeight <= innerHeight + 1"
CONFIG = """[site]
id = "BR-001"
[complaints]
hotline = "95528"
supervision_phone = "021-6123 4567"
appeal_body = "国家金融监督管理总局上海监管局（12378）"
"""


def get(agent, path: str):
    try:
        with urllib.request.urlopen(agent.url + path.lstrip("/"), timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


def journal(agent) -> list[tuple[str, dict]]:
    j = Journal(agent.state_dir / "journal.db")
    try:
        return [(e.kind, e.body) for e in j.entries()]
    finally:
        j.close()


def finger(agent, station: str, person: str) -> None:
    slot = next(p["slot"] for p in agent.view()["sim"]["people"] if p["person_id"] == person)
    agent.post("/api/sim/finger", {"station": station, "slot": slot})


def step(agent, name: str) -> dict:
    return agent.wait_for(lambda v: v["handover"] is not None and v["handover"]["step"] == name
                          and not v["handover"]["risk"] and not v["pending_auth"], 30)


def delivery_with_a_wrong_box(agent, page, artifacts) -> str:
    """Task 1 at this branch: a box for another site is read (wrong box, set aside by the officer), then the
    three boxes for here; the escorts' cards show their employee numbers while they verify."""
    v = agent.view()
    tags = {t["box_id"]: t["tag"] for t in v["sim"]["tags"]}
    beacon = next(x["beacon"] for x in v["sim"]["trucks"] if x["plate"] == TRUCK_A)
    agent.post("/api/sim/beacon", {"beacon": beacon})
    task_id = step(agent, "escort_verification")["handover"]["task_id"]
    card = page.get_by_test_id("escort-E01")
    expect(card.get_by_test_id("employee-no")).to_have_text("工号 E01")       # beside the photo and company
    expect(page.get_by_test_id("escort-E02").get_by_test_id("employee-no")).to_have_text("工号 E02")
    page.screenshot(path=str(artifacts("e2e/records-01-escort-employee-no.png")))
    finger(agent, "door", "E01")
    finger(agent, "door", "E02")
    step(agent, "box_handover")
    agent.post("/api/sim/tag", {"tag": tags["XB2-01"]})                        # BR-002's box
    agent.wait_for(lambda v: v["handover"]["risk"], 30)
    agent.post("/api/disposition", {"code": "box_set_aside", "text": "退回押运车", "resolution": "continue"})
    agent.wait_for(lambda v: v["pending_auth"] is not None, 30)
    finger(agent, "counter", "O01")                                            # the officer signs it
    step(agent, "box_handover")
    for box in ("XB1-01", "XB1-02", "XB1-03"):
        agent.post("/api/sim/tag", {"tag": tags[box]})
    step(agent, "officer_confirmation")
    finger(agent, "counter", "O01")
    step(agent, "sign_off")
    finger(agent, "door", "E01")
    agent.wait_for(lambda v: "王强" not in v["instruction"]["text"], 30)       # his mark is in
    finger(agent, "counter", "O01")
    agent.wait_for(lambda v: v["handover"] is None and v["report"] is not None, 30)
    return task_id


def search(page, plate: str, box: str) -> None:
    """One search, answered: the list says which search it shows."""
    page.get_by_test_id("records-plate").fill(plate)
    page.get_by_test_id("records-box").fill(box)
    page.get_by_test_id("records-search").click()
    expect(page.get_by_test_id("records-list")).to_have_attribute("data-query", f"|{plate}|{box}")


def test_a_past_handover_is_found_by_day_truck_and_tag_and_reprinted_as_a_copy(agent, browser, artifacts, tmp_path):
    conf = tmp_path / "agent.toml"
    conf.write_text(CONFIG, encoding="utf-8")
    agent.start("--config", str(conf))
    page = browser.new_page(viewport=SCREEN)
    page.goto(agent.url)
    task_id = delivery_with_a_wrong_box(agent, page, artifacts)
    tag = next(t["tag"] for t in agent.view()["sim"]["tags"] if t["box_id"] == "XB1-02")
    printed_before = len(get(agent, "/api/sim/printed")[1]["printed"])

    # the next day: yesterday's delivery is a past handover
    agent.post("/api/sim/clock", {"offset_minutes": 1440})
    assert get(agent, "/api/staff/records")[0] == 403                 # nothing without a staff credential
    expect(page.get_by_test_id("records-open")).to_have_count(0)
    page.get_by_test_id("staff-toggle").click()
    agent.wait_for(lambda v: v["pending_auth"] is not None)
    finger(agent, "counter", "O01")
    page.get_by_test_id("records-open").click()
    records = page.get_by_test_id("records")
    expect(page.get_by_test_id("records-count")).to_have_text("没有符合条件的交接记录")      # today: none yet
    page.get_by_test_id("records-prev-day").click()
    row = page.get_by_test_id(f"record-{task_id}")
    expect(row).to_contain_text(TRUCK_A)
    expect(row).to_contain_text("已完成（有异常）")
    expect(row).to_contain_text("报警：错箱")
    expect(row).to_contain_text("处置：款箱隔离，继续交接")
    page.screenshot(path=str(artifacts("e2e/records-02-list-yesterday.png")))

    # by truck and by box tag, any day; a tag no handover carried finds nothing
    page.get_by_test_id("records-any-day").click()
    expect(page.get_by_test_id("records-list")).to_have_attribute("data-query", "||")
    search(page, "C1234", "")
    expect(row).to_be_visible()
    search(page, "", tag.lower())
    expect(row).to_be_visible()
    search(page, "", "04FFFFFFFFFFFF")
    expect(page.get_by_test_id("records-count")).to_have_text("没有符合条件的交接记录")
    search(page, "", "XB1-02")                                        # the number printed on the box
    row.click()

    # its report and its timeline, one screen each
    expect(page.get_by_test_id("records-report")).to_contain_text("款箱交接报告")
    expect(page.get_by_test_id("records-report")).to_contain_text("结果: 已完成（有异常）")
    page.screenshot(path=str(artifacts("e2e/records-03-report.png")))
    page.get_by_test_id("records-tab-timeline").click()
    timeline = page.get_by_test_id("records-timeline")
    for text in ("交接开始", "车辆到达", "联动门指纹 王强：通过", "报警：错箱", "风险处置 周敏：款箱隔离，继续交接",
                 "读取款箱 XB1-03", "交接结束：已完成（有异常）"):
        expect(timeline).to_contain_text(text)
    page.screenshot(path=str(artifacts("e2e/records-04-timeline.png")))
    page.get_by_test_id("lang-toggle").click()                          # English is one touch away
    expect(timeline).to_contain_text("Alarm: Wrong box")
    expect(page.get_by_test_id("records-reprint")).to_have_text("Reprint (copy)")
    page.screenshot(path=str(artifacts("e2e/records-04-timeline-en.png")))
    page.get_by_test_id("lang-toggle").click()
    expect(timeline).to_contain_text("报警：错箱")

    # the reprint: journaled as a reprint, and the paper says it is a copy
    page.get_by_test_id("records-reprint").click()
    expect(page.get_by_test_id("records-note")).to_have_text("已补打第1份副本，请取走")
    page.screenshot(path=str(artifacts("e2e/records-05-reprinted.png")))
    printed = get(agent, "/api/sim/printed")[1]["printed"]
    assert len(printed) == printed_before + 1
    title, lines = printed[-1]["title"], printed[-1]["lines"]
    assert "副本" in title and "copy" in title and title.startswith("款箱交接报告")
    assert lines[0].startswith("副本 / COPY 第1份") and "周敏" in lines[0]
    assert f"任务编号: {task_id}" in lines
    reprints = [b for k, b in journal(agent) if k == "report_reprinted"]
    assert [(b["task_id"], b["by"], b["copy"]) for b in reprints] == [(task_id, "O01", 1)]

    # back to the list; staff leave and the records go with them
    page.get_by_test_id("records-back").click()
    expect(page.get_by_test_id(f"record-{task_id}")).to_contain_text("已补打1次")
    page.get_by_test_id("staff-toggle").click()
    expect(records).to_have_count(0)
    expect(page.get_by_test_id("records-open")).to_have_count(0)
    assert get(agent, f"/api/staff/records/{task_id}")[0] == 403
    page.close()


def fill_complaint(page, contact: str) -> None:
    page.get_by_test_id("category-irregular_fees").click()
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-description").fill("转账被多收了20元手续费")
    page.get_by_test_id("field-request").fill("退还手续费")
    page.get_by_test_id("kiosk-next").click()
    page.get_by_test_id("field-name").fill("李秀英")
    page.get_by_test_id("field-contact").fill(contact)
    page.get_by_test_id("privacy-consent").click()


def lookups(agent) -> list[dict]:
    return [b for k, b in journal(agent) if k == "complaint_lookup"]


def lookup(page, agent, ref: str, digits: str) -> None:
    """One lookup, answered: a "nothing found" looks like the one before, so the journal says it was made."""
    before = len(lookups(agent))
    page.get_by_test_id("lookup-ref").fill(ref)
    page.get_by_test_id("lookup-digits").fill(digits)
    page.get_by_test_id("lookup-go").click()
    deadline = time.monotonic() + 15
    while len(lookups(agent)) == before:
        assert time.monotonic() < deadline, "the lookup was never made"
        time.sleep(0.05)
    expect(page.get_by_test_id("lookup-go")).to_be_enabled()


def test_a_customer_looks_up_progress_by_reference_and_contact_digits_and_sees_the_hotline(agent, browser,
                                                                                             artifacts, tmp_path):
    conf = tmp_path / "agent.toml"
    conf.write_text(CONFIG, encoding="utf-8")
    agent.start("--config", str(conf))
    page = browser.new_page(viewport=SCREEN)
    page.goto(agent.url)
    page.get_by_test_id("kiosk-enter").click()
    page.wait_for_url("**/kiosk")
    expect(page.get_by_test_id("contact-hotline")).to_have_text("投诉电话 95528")     # on the kiosk itself
    expect(page.get_by_test_id("contact-appeal_body")).to_contain_text("国家金融监督管理总局上海监管局")
    assert page.evaluate(NO_SCROLL), "the first page with the contacts scrolls at 800×480"
    page.screenshot(path=str(artifacts("e2e/kiosk-lookup-00-first-page-contacts.png")))
    fill_complaint(page, "139 1234 5678")
    page.get_by_test_id("kiosk-submit").click()
    receipt = page.get_by_test_id("receipt-text")
    expect(receipt).to_contain_text("投诉电话：95528")
    expect(receipt).to_contain_text("服务监督电话：021-6123 4567")
    expect(receipt).to_contain_text("对处理结果不满意，可向国家金融监督管理总局上海监管局（12378）反映")
    expect(receipt).to_contain_text("可凭受理编号及联系电话后4位在本机查询处理进度")
    assert page.evaluate(NO_SCROLL), "the receipt with the contacts scrolls at 800×480"
    page.screenshot(path=str(artifacts("e2e/kiosk-lookup-01-receipt-hotline.png")), full_page=True)
    ref = page.get_by_test_id("kiosk-receipt").get_attribute("data-ref")
    printed = get(agent, "/api/sim/printed")[1]["printed"][-1]
    assert "投诉电话：95528" in printed["lines"]                                      # and on paper
    page.get_by_test_id("receipt-done").click()

    # a wrong pair and an unknown reference look the same, and show nothing of the complaint
    page.get_by_test_id("kiosk-lookup").click()
    lookup(page, agent, ref, "1234")
    none = page.get_by_test_id("lookup-none")
    expect(none).to_contain_text("未查到")
    view = page.get_by_test_id("kiosk-lookup-view")
    for secret in ("已登记", "承诺答复", "李秀英", "手续费"):
        expect(view).not_to_contain_text(secret)
    expect(page.get_by_test_id("lookup-contact-hotline")).to_have_text("投诉电话 95528")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.screenshot(path=str(artifacts("e2e/kiosk-lookup-02-wrong-pair.png")))
    assert page.evaluate(NO_SCROLL), "the lookup scrolls at 800×480"
    wrong = page.get_by_test_id("lookup-result").inner_text()
    lookup(page, agent, ref.replace("-001", "-002"), "5678")
    expect(none).to_be_visible()
    assert page.get_by_test_id("lookup-result").inner_text() == wrong

    # the right pair: status and promised date only
    lookup(page, agent, ref, "5678")
    expect(page.get_by_test_id("lookup-status")).to_have_text("已登记")
    expect(page.get_by_test_id("lookup-reply-by")).to_contain_text("年")
    expect(view).not_to_contain_text("李秀英")
    expect(view).not_to_contain_text("手续费")
    page.screenshot(path=str(artifacts("e2e/kiosk-lookup-03-found.png")))

    # guessing is rate-limited: after five wrong pairs even the right one reveals nothing for a while
    for digits in ("0000", "1111", "2222"):
        lookup(page, agent, ref, digits)
        expect(none).to_be_visible()
    lookup(page, agent, ref, "5678")
    kinds = lookups(agent)
    expect(none).to_be_visible()
    expect(page.get_by_test_id("lookup-status")).to_have_count(0)
    assert [b["ok"] for b in kinds] == [False, False, True, False, False, False, False]
    assert kinds[-1]["blocked"] is True
    assert "5678" not in json.dumps(kinds) and "李秀英" not in json.dumps(kinds, ensure_ascii=False)
    page.close()


def staff_sign_in_at_kiosk(agent, page) -> None:
    page.get_by_test_id("kiosk-staff").click()
    agent.wait_for(lambda v: v["pending_auth"] is not None)
    finger(agent, "counter", "O01")
    expect(page.get_by_test_id("staff-view")).to_be_visible()


def test_staff_escalate_a_complaint_and_the_background_check_puts_it_on_the_staff_indicator(agent, browser,
                                                                                             artifacts, tmp_path):
    conf = tmp_path / "agent.toml"
    conf.write_text(CONFIG, encoding="utf-8")
    agent.start("--config", str(conf))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(agent.url)
    page.get_by_test_id("kiosk-enter").click()
    page.wait_for_url("**/kiosk")
    ref = agent.post("api/kiosk/complaints", {"channel": "walk_in", "category": "service_channel",
                                               "description": "自助设备吞卡", "request": "尽快退卡"})["ref"]
    staff_sign_in_at_kiosk(agent, page)
    card = page.get_by_test_id(f"complaint-{ref}")
    card.get_by_test_id(f"action-{ref}-escalate").click()
    card.get_by_test_id("param-people").fill("4")                     # four customers with the same problem
    card.get_by_test_id("param-media-false").click()
    card.get_by_test_id("action-save").click()
    card = page.get_by_test_id(f"complaint-{ref}")
    expect(card.get_by_test_id("escalated")).to_have_text("紧急: 群体投诉")
    alarms = [b for k, b in journal(agent) if k == "alarm" and b["alarm"] == "complaint_escalation"]
    assert [(a["detail"]["ref"], a["detail"]["triggers"]) for a in alarms] == [(ref, ["group"])]
    page.get_by_test_id("staff-logout").click()

    # 40 minutes on, the urgent response (1 hour) is near: the background check finds it, staff see it
    agent.post("/api/sim/clock", {"offset_minutes": 40})
    staff_sign_in_at_kiosk(agent, page)
    expect(page.get_by_test_id("due-summary")).to_have_text("投诉时限提醒：临近1件，超时0件", timeout=60000)
    card = page.get_by_test_id(f"complaint-{ref}")
    expect(card.get_by_test_id("due-urgent_response")).to_contain_text("现场响应")
    expect(card.get_by_test_id("due-urgent_response")).to_contain_text("临近时限")
    page.screenshot(path=str(artifacts("e2e/records-06-kiosk-staff-escalated.png")))
    due = [b for k, b in journal(agent) if k == "complaint_due"]
    assert (ref, "urgent_response", "near") in [(b["ref"], b["limit"], b["state"]) for b in due]
    page.get_by_test_id("staff-logout").click()
    agent.wait_for(lambda v: v["staff"] is None)
    assert agent.view()["complaints_due"] is None                      # staff gone: the public face shows nothing
    expect(page.get_by_test_id("due-summary")).to_have_count(0)
    page.close()
