"""A full delivery through the simulator panel in real headless Chromium (SPEC §2.2, issue 2).

Each step is checked as a branch officer would see it, and a screenshot per step is saved under
artifacts/e2e/ for people to look at.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TRUCK_A = "沪A·C1234"


def shot(page, artifacts, n: int, name: str) -> None:
    page.screenshot(path=str(artifacts(f"e2e/delivery-{n:02d}-{name}.png")), full_page=True)


def step_is(page, step: str) -> None:
    expect(page.get_by_test_id(f"step-{step}")).to_have_attribute("data-current", "true")


def test_delivery_walkthrough_in_chinese(agent, browser, artifacts):
    agent.start()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(agent.url)
    prompt = page.get_by_test_id("prompt-text")

    # the idle screen faces the public: no schedule until a staff credential opens it
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(prompt).to_have_text("等待押运车辆到达")
    expect(page.get_by_test_id("public-face")).to_be_visible()
    assert TRUCK_A not in page.locator("main").inner_html()
    page.get_by_test_id("staff-toggle").click()
    page.get_by_test_id("sim-counter-O01").click()
    # the day's tasks for this site, in Simplified Chinese
    expect(page.get_by_test_id("tasks")).to_contain_text("今日押运任务")
    expect(page.get_by_test_id("tasks")).to_contain_text(TRUCK_A)
    expect(page.get_by_test_id("tasks")).to_contain_text("待执行")
    shot(page, artifacts, 1, "tasks")

    # 1. vehicle arrival: plate, escorts and their enrolled photos shown, voice text says it
    page.get_by_test_id(f"sim-truck-{TRUCK_A}").click()
    step_is(page, "escort_verification")
    expect(page.get_by_test_id("plate")).to_have_text(TRUCK_A)
    expect(page.get_by_test_id("prompt")).to_contain_text(f"押运车辆{TRUCK_A}已到达")
    expect(page.get_by_test_id("escort-E01")).to_contain_text("王强")
    expect(page.get_by_test_id("escort-E02")).to_contain_text("李军")
    expect(page.get_by_test_id("escort-E01").get_by_test_id("enrolled-photo")).to_have_js_property("complete", True)
    expect(page.get_by_test_id("door")).to_have_attribute("data-raised", "false")
    shot(page, artifacts, 2, "arrival")

    # 2. escort verification: a failed read and a stranger's finger first, then the right people
    page.get_by_test_id("sim-door-failed").click()
    expect(prompt).to_have_text("指纹采集失败，请重新按压，还可尝试4次")
    page.get_by_test_id("sim-door-unknown").click()
    expect(prompt).to_have_text("指纹不匹配，请重试，还可尝试3次")
    page.get_by_test_id("sim-door-E01").click()
    expect(prompt).to_have_text("押运员王强身份验证成功")
    escort = page.get_by_test_id("escort-E01")
    expect(escort).to_have_attribute("data-verified", "true")
    expect(escort.get_by_test_id("live-snapshot")).to_have_js_property("tagName", "IMG")  # beside the enrolled photo
    expect(page.get_by_test_id("door")).to_have_attribute("data-raised", "false")        # one of two is not enough
    shot(page, artifacts, 3, "first-escort")
    page.get_by_test_id("sim-door-E02").click()
    step_is(page, "box_handover")
    expect(page.get_by_test_id("door")).to_have_attribute("data-raised", "true")
    expect(page.get_by_test_id("door")).to_contain_text("已授权")
    expect(prompt).to_have_text("请交接款箱，本站应交入3个款箱，请逐个刷箱")
    shot(page, artifacts, 4, "escorts-verified")

    # 3. box handover: expected vs read, counted one by one
    expect(page.get_by_test_id("box-count")).to_have_text("已清点 0 / 应交接 3")
    for i, box in enumerate(("XB1-01", "XB1-02", "XB1-03"), start=1):
        page.get_by_test_id(f"sim-tag-{box}").click()
        expect(page.get_by_test_id(f"box-{box}")).to_have_attribute("data-read", "true")
        expect(page.get_by_test_id("box-count")).to_have_text(f"已清点 {i} / 应交接 3")
    step_is(page, "officer_confirmation")
    expect(prompt).to_have_text("请营业专员按压指纹确认交接")
    shot(page, artifacts, 5, "boxes")

    # 4. officer confirmation at the counter
    page.get_by_test_id("sim-counter-O01").click()
    step_is(page, "sign_off")
    expect(page.get_by_test_id("officer")).to_contain_text("周敏")
    expect(page.get_by_test_id("prompt")).to_contain_text("营业专员周敏认证成功")
    expect(prompt).to_have_text("请押运组长王强和营业专员周敏按压指纹留痕")
    shot(page, artifacts, 6, "officer")

    # 5. sign-off marks, then the report; the door permission is withdrawn
    page.get_by_test_id("sim-door-E01").click()
    expect(prompt).to_have_text("王强指纹留痕成功")
    page.get_by_test_id("sim-counter-O01").click()
    expect(prompt).to_have_text("交接完成，交接报告正在打印")
    report = page.get_by_test_id("report-text")
    expect(report).to_contain_text("款箱交接报告")
    expect(report).to_contain_text("结果: 已完成")
    expect(report).to_contain_text("款箱: 计划 3 / 清点 3")
    expect(report).to_contain_text("押运组长 王强")
    expect(page.get_by_test_id("report-printed")).to_have_text("已打印")
    expect(page.get_by_test_id("door")).to_have_attribute("data-raised", "false")
    expect(page.get_by_test_id("tasks")).to_contain_text("已完成")
    shot(page, artifacts, 7, "report")

    # English is one touch away
    page.get_by_test_id("lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("tasks")).to_contain_text("Today's escort tasks")
    expect(page.get_by_test_id("report-text")).to_contain_text("Handover report")
    shot(page, artifacts, 8, "english")
    page.close()

    # a clean stop, and the journal's chain holds
    assert agent.stop() == 0
    out = subprocess.run([sys.executable, "-m", "agent.cli", "journal", "verify", "--db",
                          str(agent.state_dir / "journal.db")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "chain intact" in out.stdout
