"""Issue 20 item 1 in real headless Chromium at the 7-inch panel's 800×480: a central vault with 1,000 of
today's tasks. The public idle face carries none of them; the staff face shows the day's counts and a
window of the next due, inside the screen; the simulator drawer still plays the day's trucks. Screenshots
in artifacts/e2e/vault-day-*.png."""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from agent.journal import Journal
from agent.sample import VAULT
from agent.sealing import Sealer
from agent.store import Store
from agent.view import DUE_SHOWN, FINISHED_SHOWN
from offline.importers import apply_tasks

pytestmark = pytest.mark.browser

TASKS = 1000
W, H = 800, 480


def day_of_tasks(n: int) -> list[dict]:
    """n tasks stopping at the vault, 20 minutes each, spread over today (as the demo site's clock reads it)."""
    day = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for i in range(n):
        start = day + timedelta(seconds=i * 85_800 // n)
        # ids as head office's schedule import makes them (route and day): the longest cell of a row
        out.append({"task_id": f"R{i:03d}-{day:%Y%m%d}", "version": 1, "kind": "delivery", "window_start": start.isoformat(),
                    "window_end": (start + timedelta(minutes=20)).isoformat(), "route": [VAULT, f"BR-{100 + i % 50}"],
                    "vehicle": {"vehicle_id": f"V{i}", "plate": f"沪B·{i:05d}", "beacon": f"ibeacon:hq:{i}:1"},
                    "escorts": ["E01", "E02"], "confirmers": ["O01"],
                    "boxes": [{"box_id": f"HQB{i}-{k}", "tag": f"05{i:08X}{k:02X}", "destination": f"BR-{100 + i % 50}"}
                              for k in range(3)]})
    return out


def in_view(page, locator) -> None:
    """On screen as it is: its box lies inside the viewport."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None and box["y"] >= -0.5 and box["y"] + box["height"] <= H + 0.5 \
        and box["x"] + box["width"] <= W + 0.5, f"{locator} is off the {W}×{H} screen: {box}"


def test_a_vault_day_of_1000_tasks_on_the_wall_screen(agent, browser, artifacts, tmp_path):
    conf = tmp_path / "vault.toml"
    conf.write_text(f'[site]\nid = "{VAULT}"\ntype = "vault"\nname = "中心金库"\n', encoding="utf-8")
    agent.start("--config", str(conf))          # the sample day first (its people and three tasks)
    assert agent.stop() == 0
    journal = Journal(agent.state_dir / "journal.db")      # head office's schedule, through the downlink's importer
    store = Store(journal.db, Sealer(agent.state_dir / "keys" / "data.key"), agent.state_dir / "photos")
    tasks = day_of_tasks(TASKS - 3)
    apply_tasks(journal, store, tasks, source="mqtt:vault-day")
    journal.close()
    agent.start("--config", str(conf))
    v = agent.view()
    officer = next(p["slot"] for p in v["sim"]["people"] if p["person_id"] == "O01")
    assert len(v["sim"]["tasks"]) == TASKS, "the simulator still plays the whole day"

    page = browser.new_page(viewport={"width": W, "height": H})
    page.goto(agent.url)
    expect(page.get_by_test_id("kiosk-enter")).to_be_visible()
    html = page.content()
    assert not [t["task_id"] for t in tasks if t["task_id"] in html], "the public face carries the schedule"
    expect(page.get_by_test_id("sim-toggle")).to_have_text("⚙ 模拟器")      # a demo: the simulator's drawer is there
    page.screenshot(path=str(artifacts("e2e/vault-day-01-public.png")))

    page.get_by_test_id("staff-toggle").click()
    expect(page.get_by_test_id("pending-auth")).to_be_visible()
    agent.post("api/sim/finger", {"station": "counter", "slot": officer})
    summary = page.get_by_test_id("task-summary")
    expect(summary).to_contain_text(f"共 {TASKS} 项")
    expect(summary).to_contain_text("待执行")
    rows = page.locator("[data-testid^='task-R'], [data-testid^='task-T']")
    expect(rows.first).to_be_visible()
    assert 1 <= rows.count() <= DUE_SHOWN + FINISHED_SHOWN
    # the rows are the next due: none of them ended more than an hour ago, all still to do
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    shown = {r.get_attribute("data-testid")[5:] for r in rows.all()}
    by_id = {t["task_id"]: t for t in tasks}
    for task_id in shown & set(by_id):
        assert datetime.fromisoformat(by_id[task_id]["window_end"]) >= now - timedelta(hours=1, minutes=1)
    for status in page.get_by_test_id("task-status").all():
        expect(status).to_have_text("待执行")
    expect(page.get_by_test_id("task-window")).to_contain_text(re.compile(rf"{rows.count()} 项，共 {TASKS} 项"))
    page.screenshot(path=str(artifacts("e2e/vault-day-02-staff.png")))
    # the day's counts and the next due are in sight as the page opens, no scrolling
    for testid in ("task-summary", "task-window", "sim-toggle"):
        in_view(page, page.get_by_test_id(testid))
    for row in rows.all():
        in_view(page, row)
    # each row's manual-arrival button lies inside the card's content box (it ran past it at 800×480)
    buttons = page.locator("[data-testid^='manual-arrival-']")
    assert buttons.count() == rows.count()
    card = page.get_by_test_id("task-summary").locator("xpath=ancestor::div[contains(@class, 'card')]")
    inner = card.evaluate("""c => { const r = c.getBoundingClientRect(), s = getComputedStyle(c);
        return [r.left + parseFloat(s.paddingLeft), r.right - parseFloat(s.paddingRight)]; }""")
    for button in buttons.all():
        in_view(page, button)
        box = button.bounding_box()
        assert inner[0] - 0.5 <= box["x"] and box["x"] + box["width"] <= inner[1] + 0.5, \
            f"a manual-arrival button runs past its card: {box} in {inner}"
    expect(page.get_by_test_id("sim-toggle")).to_have_text("⚙ 模拟器")

    # the simulator's drawer, on its own stream, plays any of the day's trucks: one due now arrives
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    due = next(t for t in tasks if datetime.fromisoformat(t["window_start"]) <= now
               <= datetime.fromisoformat(t["window_end"]))
    page.get_by_test_id("sim-toggle").click()
    page.get_by_test_id(f"sim-truck-{due['vehicle']['plate']}").click()
    expect(page.get_by_test_id("plate")).to_have_text(due["vehicle"]["plate"])
    expect(page.get_by_test_id("tasks")).to_be_empty()            # the schedule steps aside for the handover
    page.close()
