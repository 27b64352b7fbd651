"""Issue 16's done-when, end to end in real headless Chromium: head office (`handover-hq serve --http`, SQLite)
beside a running simulated terminal, both on a real TLS mosquitto. One day, in order:

0. a monitor logs in and sees the terminal online; a customer registers a complaint at the terminal's kiosk;
1. a wrong box read at the terminal is on the board (the time from the read to the row in the board's DOM is
   measured and printed), spoken in Mandarin (a non-silent espeak-ng WAV), acknowledged, and the terminal's
   screen shows the acknowledgement; an officer then aborts that handover;
2. an admin uploads the escort company's dispatch CSV on /schedule: it becomes the terminal's task list (the
   sample day's tasks not started are withdrawn; the staff screen lists the new run);
3. a complaint officer opens the complaint on /complaints (the details decrypted with head office's key),
   moves it through the lifecycle to archived — each step applied by the terminal — and the half-year report
   lists it, resolved.

The terminal's devices are played through its simulator API; screenshots in artifacts/e2e/hq-e2e-*.png
(head office at 1280x800, the terminal's 7-inch screen at 800x480). Step 1's finer cases (duress, the vault
manager's board, a restart) are test_hq_board's."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from hq.cli import main as hq_cli
from tests.e2e.test_hq_board import (DEVICE, PASSWORD, SITE, HeadOffice, acknowledge,  # noqa: F401 (fixture)
                                     broker, login, mqtt_config, spoken_rms)
from tests.e2e.test_demo import login_page
from tests.e2e.test_kiosk import fill_complaint

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]
SCREEN = {"width": 800, "height": 480}
ZONE = ZoneInfo("Asia/Shanghai")              # the terminal's and head office's default time zone
BEACON = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:21"     # not a sample truck's
PLATE = "沪A·E2E21"
NOTE = "已电话联系网点，错箱退回押运车"
DESCRIPTION = "在3号窗口办理转账时被多收了20元手续费，柜员态度冷淡。"


@pytest.fixture
def office(broker, tmp_path):    # noqa: F811 (the fixture imported above)
    """Head office with its complaint key, the dispatch's sites registered, and a login per role it needs."""
    folder = tmp_path / "hq"
    folder.mkdir()
    office = HeadOffice(broker, folder)
    assert hq_cli(["complaints", "key", "create", "--keys", str(folder / "keys")]) == 0
    office.argv += ["--complaint-keys", str(folder / "keys")]
    (folder / "sites.csv").write_text("site_id,name,type\nVLT-01,中心金库,vault\nBR-001,城东支行,branch\n", "utf-8")
    assert hq_cli(["schedule", "sites", str(folder / "sites.csv"), "--db", str(office.db)]) == 0
    for name, role in (("wang", "monitor"), ("chen", "admin"), ("li", "complaint_officer")):
        office.add_user(name, role)
    yield office.start()
    office.stop()


def slot_of(view: dict, person_id: str) -> int:
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == person_id)


def tag_of(view: dict, box_id: str) -> str:
    return next(t["tag"] for t in view["sim"]["tags"] if t["box_id"] == box_id)


def officer_signs(agent, view: dict) -> None:
    """The officer O01 presents a finger at the counter for the staff action waiting on the screen."""
    agent.wait_for(lambda v: v["pending_auth"] is not None)
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(view, "O01")})


def dispatch(now: datetime) -> tuple[bytes, str]:
    """The escort company's dispatch: one run, vault then BR-001 in a window open now; (CSV, its task id)."""
    start = now - timedelta(minutes=5)
    if start.date() != now.date() or (start + timedelta(minutes=50)).date() != now.date() or now.hour == 0:
        start = now.replace(hour=12, minute=0)               # near midnight: a window today all the same
    w = lambda minutes: (start + timedelta(minutes=minutes)).strftime("%H:%M")   # noqa: E731
    rows = ["date,route,stop,site,kind,window_start,window_end,plate,beacon,escorts,boxes,confirmers",
            f"{start:%Y-%m-%d},R21,1,VLT-01,delivery,{w(-30)},{w(-10)},{PLATE},{BEACON},E03;E04,,",
            f"{start:%Y-%m-%d},R21,2,BR-001,delivery,{w(0)},{w(45)},{PLATE},{BEACON},E03;E04,"
            f"S1:04AA000000E201;S2:04AA000000E202,O01;O02"]
    return ("\r\n".join(rows) + "\r\n").encode(), f"R21-{start:%Y%m%d}"


def test_head_office_and_a_terminal_through_a_day(agent, browser, artifacts, broker, office, tmp_path):  # noqa: F811
    mqtt_config(broker, DEVICE, SITE, agent.state_dir)
    conf = agent.state_dir / "agent.toml"
    conf.write_text(conf.read_text() + f'[complaints]\nhq_key = "{office.folder / "keys" / "complaint.pub.pem"}"\n')
    agent.start("--config", str(conf))
    view = agent.view()

    # the monitor's board: the terminal online
    board = login(browser, office, "wang")
    expect(board.get_by_test_id(f"device-{DEVICE}")).to_have_attribute("data-state", "online", timeout=30000)

    # 0. while no truck is there, a customer registers a complaint at the kiosk; staff close the kiosk
    screen = browser.new_page(viewport=SCREEN)
    screen.goto(agent.url)
    screen.get_by_test_id("kiosk-enter").click()
    screen.wait_for_url("**/kiosk")
    fill_complaint(screen, description=DESCRIPTION)
    screen.get_by_test_id("kiosk-submit").click()
    receipt = screen.get_by_test_id("kiosk-receipt")
    expect(receipt).to_be_visible(timeout=15000)
    ref = receipt.get_attribute("data-ref")
    screen.screenshot(path=str(artifacts("e2e/hq-e2e-00-kiosk-receipt.png")))
    screen.get_by_test_id("receipt-done").click()
    screen.get_by_test_id("kiosk-exit").click()
    officer_signs(agent, view)
    agent.wait_for(lambda v: v["mode"] != "kiosk" and v["pending_auth"] is None, timeout=30)
    screen.goto(agent.url)

    # 1. a wrong box at the terminal: on the board, spoken, acknowledged, and the acknowledgement seen there
    truck = next(t["beacon"] for t in view["sim"]["trucks"] if t["plate"] == "沪A·C1234")
    agent.post("api/sim/beacon", {"beacon": truck})
    for escort in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot_of(view, escort)})
    aborted = agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover",
                             timeout=30)["handover"]["task_id"]
    agent.post("api/sim/tag", {"tag": tag_of(view, "XB1-01")})
    board.evaluate("""() => { window.seenAt = null;
        const seen = () => { if (!window.seenAt && document.querySelector('tr[data-kind=wrong_box]')) window.seenAt = Date.now(); };
        new MutationObserver(seen).observe(document.body, {childList: true, subtree: true}); }""")
    read_at = time.time() * 1000
    agent.post("api/sim/tag", {"tag": tag_of(view, "XB2-01")})       # destined for BR-002: a wrong box
    row = board.locator("tr[data-kind=wrong_box]")
    expect(row).to_have_count(1, timeout=15000)
    latency = board.evaluate("() => window.seenAt") - read_at
    print(f"\nwrong box read at the terminal -> row on head office's board: {latency:.0f} ms (goal 1000 ms)")
    assert latency < 10000, "generously bounded here: the goal is measured, not asserted, on a shared machine"
    expect(row.get_by_test_id("kind")).to_have_text("错箱报警")
    expect(row.get_by_test_id("site")).to_have_text("城东支行")
    expect(screen.get_by_test_id("open-alarm-wrong_box")).to_contain_text("错箱")
    board.screenshot(path=str(artifacts("e2e/hq-e2e-01-board-alarm.png")))
    screen.screenshot(path=str(artifacts("e2e/hq-e2e-02-terminal-alarm.png")))
    assert spoken_rms(board, row, office, tmp_path / "alarm.wav") > 0.01, "the announcement is silent"

    acknowledge(row, NOTE)
    expect(row).to_have_attribute("data-acked", "true")
    seen = screen.get_by_test_id("hq-seen-wrong_box")
    expect(seen).to_have_text(f"总部已确认：{NOTE}", timeout=15000)
    seen.scroll_into_view_if_needed()
    screen.screenshot(path=str(artifacts("e2e/hq-e2e-03-terminal-acknowledged.png")))
    board.screenshot(path=str(artifacts("e2e/hq-e2e-04-board-acknowledged.png")))

    # the branch's officer ends that handover (aborted), so the day can go on
    agent.post("api/disposition", {"code": "box_set_aside", "text": "错箱退回，交接中止", "resolution": "abort"})
    officer_signs(agent, view)
    agent.wait_for(lambda v: v["handover"] is None, timeout=30)

    # 2. the admin uploads the dispatch; it becomes the terminal's task list
    csv, task_id = dispatch(datetime.now(ZONE).replace(second=0, microsecond=0))
    (tmp_path / "dispatch.csv").write_bytes(csv)
    admin = login(browser, office, "chen")
    admin.goto(office.url + "schedule")
    expect(admin.locator("body")).to_have_attribute("data-ready", "true")
    admin.get_by_test_id("schedule-file").set_input_files(str(tmp_path / "dispatch.csv"))
    admin.get_by_test_id("schedule-submit").click()
    result = admin.get_by_test_id("schedule-result")
    expect(result).to_contain_text("BR-001", timeout=30000)
    admin.screenshot(path=str(artifacts("e2e/hq-e2e-05-schedule-uploaded.png")))
    agent.post("api/staff/open", {})
    officer_signs(agent, view)
    staff = agent.wait_for(lambda v: v["staff"] and any(t["task_id"] == task_id for t in v["tasks"]), timeout=30)
    shown = next(t for t in staff["tasks"] if t["task_id"] == task_id)
    assert shown["plate"] == PLATE and shown["escorts"] == ["张伟", "刘洋"] and shown["boxes"] == 2, shown
    # the sample day's tasks that never started are withdrawn; the aborted one stays as it ran
    assert {t["task_id"] for t in staff["tasks"]} <= {task_id, aborted}, staff["tasks"]
    screen.goto(agent.url)
    expect(screen.get_by_test_id("tasks")).to_contain_text(PLATE, timeout=15000)
    screen.get_by_text(PLATE).scroll_into_view_if_needed()
    screen.screenshot(path=str(artifacts("e2e/hq-e2e-06-terminal-tasks.png")))
    agent.post("api/staff/logout", {})
    agent.wait_for(lambda v: not v["staff"])

    # 3. head office handles the complaint to archive; the half-year report lists it
    officer = login_page(browser, office.url, "li", PASSWORD)
    officer.goto(office.url + "complaints")
    complaint = officer.locator(f"[data-testid=complaint-row][data-ref='{ref}']")
    expect(complaint).to_have_attribute("data-status", "registered", timeout=30000)
    complaint.click()
    detail = officer.get_by_test_id("complaint-detail")
    expect(detail).to_contain_text(DESCRIPTION)                 # sealed at the terminal, opened here only
    officer.screenshot(path=str(artifacts("e2e/hq-e2e-08-complaint-opened.png")))
    steps = [("classify", None, {"complexity": "general", "validity": "valid"}, "classified"),
             ("transfer", "个人金融部", {"handler": "张经理"}, "transferred"),
             ("investigate", None, {}, "investigating"),
             ("handle", "已退还多收的20元手续费", {"cause": "柜员误选收费项目", "remedy": "复核收费设置并培训"}, "handled"),
             ("reply", "已电话答复客户并致歉", {}, "replied"),
             ("satisfaction", None, {"satisfied": "true"}, "satisfied"),
             ("archive", None, {}, "archived")]
    for action, note, fields, status in steps:
        detail.get_by_test_id("complaint-action").select_option(action)
        if note is not None:
            detail.get_by_test_id("complaint-note").fill(note)
        for name, value in fields.items():
            field = detail.locator(f"[name={name}]")
            if field.evaluate("e => e.tagName") == "SELECT":
                field.select_option(value)
            else:
                field.fill(value)
        detail.get_by_test_id("complaint-submit").click()
        # the step counts once the terminal applied it and its journal came back
        expect(detail.get_by_test_id("complaint-status")).to_have_attribute("data-status", status, timeout=30000)
    officer.screenshot(path=str(artifacts("e2e/hq-e2e-09-complaint-archived.png")), full_page=True)

    # the report due 15 June covers December to May, the one due 15 December June to November
    received = datetime.now(ZONE).date()
    year, half = (received.year + 1, "1") if received.month == 12 else (received.year, "1" if received.month <= 5 else "2")
    officer.get_by_test_id("complaints-report-year").fill(str(year))
    officer.get_by_test_id("complaints-report-half").select_option(half)
    officer.get_by_test_id("complaints-report-link").click()
    report = officer.get_by_test_id("complaints-report")
    expect(report.locator("[data-testid=complaints-report-cause][data-ref='" + ref + "']")).to_have_count(1)
    expect(report.get_by_test_id("complaints-report-totals")).to_contain_text("受理 1 件，办结 1 件")
    expect(report.locator("[data-testid=complaints-report-category][data-category=irregular_fees]")).to_be_visible()
    report.scroll_into_view_if_needed()
    officer.screenshot(path=str(artifacts("e2e/hq-e2e-10-half-year-report.png")), full_page=True)
    for page in (board, screen, admin, officer):
        page.close()
