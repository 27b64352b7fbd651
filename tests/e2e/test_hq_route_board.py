"""Issue 16 in real headless Chromium: the route board (the vault manager's live view) and each monitor's voice
announcements, on `handover-hq serve --http` with a real TLS mosquitto. The day's dispatch is imported with
`handover-hq schedule import`; the route's terminals are real journals synced by the agent's own MQTT sync
(agent.sync), each entry in the shape the agent journals it (tests/integration/route_day.py).

A vault manager watches route R07: the vault done, 城东支行 at the door, 城西支行 overdue, 城南支行 pending.
城东支行's handover ends: its stop turns done on the open page, no reload. The truck then reaches 城南支行 with
no handover at 城西支行: a route skip, on the card, in a banner and on the monitors' alarm board, and spoken on
every board (an alarm). Meanwhile monitor wang, who turned on the
announcement of completed handovers, gets it spoken (a non-silent WAV); monitor li, who did not, gets nothing.
Screenshots in artifacts/e2e/ (1280x800)."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.e2e.test_hq_board import PASSWORD, VIEWPORT, broker, head_office, login, rms  # noqa: F401 (fixtures)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from route_day import SITES, dispatch, end_stop, start_stop  # noqa: E402
from test_hq_serve import Terminal  # noqa: E402 (a device: its certificate, real journal and the agent's sync)

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]
ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")       # head office's schedule clock (hq.schedule.DEFAULT_TZ)


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def today_and_windows() -> tuple[date, list[tuple[str, str]], datetime]:
    """Today's four windows around now (m = minutes since midnight, Shanghai): the vault's and 城东支行's
    before now, 城西支行's over 10 minutes ago (overdue), 城南支行's until the day's end (pending)."""
    now = datetime.now(SHANGHAI)
    m = now.hour * 60 + now.minute
    if m < 2 or m > 1437:           # around midnight: the windows need a minute either side
        time.sleep(180)
        return today_and_windows()
    windows = [(hhmm(max(0, m - 180)), hhmm(max(1, m - 150))), (hhmm(max(0, m - 90)), hhmm(min(1439, m + 30))),
               (hhmm(max(0, m - 60)), hhmm(max(1, m - 10))), (hhmm(min(m + 30, 1438)), hhmm(1439))]
    return now.date(), windows, now


def hq_cli(*argv: str) -> None:
    r = subprocess.run([sys.executable, "-m", "hq.cli", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def stop(card, n: int):
    return card.get_by_test_id("route-stop").nth(n)


def test_the_vault_manager_watches_a_route_live_and_each_monitor_hears_what_they_chose(
        browser, artifacts, broker, head_office, tmp_path):
    day, windows, now = today_and_windows()
    (tmp_path / "sites.csv").write_text(SITES, "utf-8")
    (tmp_path / "dispatch.csv").write_bytes(dispatch(day, windows))
    hq_cli("schedule", "sites", str(tmp_path / "sites.csv"), "--db", str(head_office.db))
    hq_cli("schedule", "import", str(tmp_path / "dispatch.csv"), "--db", str(head_office.db))
    head_office.add_user("li", "monitor")

    vault = Terminal(broker, tmp_path, "dev-vlt", "VLT-01")
    east = Terminal(broker, tmp_path, "dev-001", "BR-001")
    south = Terminal(broker, tmp_path, "dev-003", "BR-003")
    try:
        arrived_vault, arrived_east = now - timedelta(minutes=150), now - timedelta(minutes=8)
        start_stop(vault.journal, day, "VLT-01", arrived_vault)
        end_stop(vault.journal, day, "VLT-01", arrived_vault, arrived_vault + timedelta(minutes=12))
        start_stop(east.journal, day, "BR-001", arrived_east)

        # two monitors: wang has completed handovers announced, li has not
        wang = login(browser, head_office, "wang")
        li = login(browser, head_office, "li")
        expect(wang.get_by_test_id("voice-completion")).to_be_enabled()
        expect(wang.get_by_test_id("voice-completion")).not_to_be_checked()
        wang.get_by_test_id("voice-completion").check()
        expect(wang.get_by_test_id("voice-completion")).to_be_enabled()       # stored: the answer came back
        expect(li.get_by_test_id("voice-completion")).to_be_enabled()
        wang.reload()
        expect(wang.get_by_test_id("voice-completion")).to_be_checked()
        expect(wang.get_by_test_id("voice-confirmation")).not_to_be_checked()
        expect(wang.locator("body")).to_have_attribute("data-ready", "true")

        manager = login(browser, head_office, "zhao")
        manager.get_by_test_id("nav-routes").click()
        expect(manager.locator("body")).to_have_attribute("data-ready", "true")
        card = manager.locator("[data-testid=route-card][data-route=R07]")
        expect(card).to_contain_text("沪A·C1234")
        expect(stop(card, 1)).to_have_attribute("data-state", "at_door", timeout=20000)   # synced up by now
        expect(stop(card, 0)).to_have_attribute("data-state", "done")
        expect(stop(card, 2)).to_have_attribute("data-state", "overdue")
        expect(stop(card, 3)).to_have_attribute("data-state", "pending")
        expect(stop(card, 0)).to_contain_text("中心金库")
        expect(stop(card, 0).get_by_test_id("stop-boxes")).to_have_text("款箱 6/6")
        expect(stop(card, 1)).to_contain_text("城东支行")
        expect(stop(card, 1).get_by_test_id("stop-state")).to_have_text("交接中")
        expect(stop(card, 1).get_by_test_id("stop-escorts")).to_have_text("押运员 2/2")
        expect(stop(card, 1).get_by_test_id("stop-boxes")).to_have_text("款箱 2/2")
        expect(stop(card, 2).get_by_test_id("stop-state")).to_have_text("超时未到")
        expect(manager.get_by_test_id("route-skip")).to_have_count(0)
        manager.screenshot(path=str(artifacts("e2e/hq-routes-01-at-the-door.png")))

        # 城东支行's handover ends: the open page turns its stop done, without a reload
        manager.evaluate("window.__same_page = true")
        end_stop(east.journal, day, "BR-001", arrived_east, datetime.now(SHANGHAI))
        expect(stop(card, 1)).to_have_attribute("data-state", "done", timeout=15000)
        expect(stop(card, 1).get_by_test_id("stop-state")).to_have_text("已完成")
        expect(stop(card, 2)).to_have_attribute("data-state", "overdue")
        assert manager.evaluate("window.__same_page") is True, "the page was reloaded"
        manager.screenshot(path=str(artifacts("e2e/hq-routes-02-done-live.png")))

        # wang hears it: the board's audio element gets the announcement, a Mandarin WAV that is not silent
        announced = wang.get_by_test_id("announcement")
        expect(announced).to_have_count(1, timeout=15000)
        expect(announced).to_contain_text("城东支行：沪A·C1234交接结束")
        audio = wang.get_by_test_id("voice")
        expect(audio).to_have_attribute("data-announce", "dev-001:" + str(east.journal.last_seq()))
        src = audio.get_attribute("src")
        wav = wang.request.get(head_office.url.rstrip("/") + src)
        assert wav.ok and wav.headers["content-type"] == "audio/wav"
        assert rms(wav.body(), tmp_path / "completion.wav") > 0.01, "the announcement is silent"
        wang.screenshot(path=str(artifacts("e2e/hq-routes-03-announced.png")))
        # li turned nothing on: nothing arrived, and the same announcement is not hers to fetch
        expect(li.get_by_test_id("announcement")).to_have_count(0)
        assert li.get_by_test_id("voice").get_attribute("data-announce") is None
        assert li.request.get(head_office.url.rstrip("/") + src).status == 404

        # the truck reaches 城南支行 with no handover at 城西支行: a route skip, judged here
        start_stop(south.journal, day, "BR-003", datetime.now(SHANGHAI))
        expect(stop(card, 2)).to_have_attribute("data-state", "skipped", timeout=15000)
        expect(stop(card, 3)).to_have_attribute("data-state", "at_door")
        banner = manager.get_by_test_id("route-skip")
        expect(banner).to_have_count(1)
        expect(banner).to_contain_text("跳点")
        expect(banner).to_contain_text("城西支行")
        manager.screenshot(path=str(artifacts("e2e/hq-routes-04-route-skip.png")))
        # the monitors' alarm board says it too, over the alarms, and leads to the route board
        board_skip = wang.get_by_test_id("board-route-skip")
        expect(board_skip).to_contain_text("未在城西支行交接", timeout=15000)
        expect(board_skip).to_have_attribute("href", "/routes")
        # a route skip is an alarm: spoken on every board, li's too, whatever she chose
        for board in (wang, li):
            said = board.locator("[data-testid=announcement][data-what=route_skip]")
            expect(said).to_contain_text("跳点报警：沪A·C1234 未在城西支行交接", timeout=15000)
            audio = board.get_by_test_id("voice")
            expect(audio).to_have_attribute("src", re.compile(r"/api/voice/route_skip\?"))
            wav = board.request.get(head_office.url.rstrip("/") + audio.get_attribute("src"))
            assert wav.ok and rms(wav.body(), tmp_path / "skip.wav") > 0.01, "the route skip is not spoken"
        wang.screenshot(path=str(artifacts("e2e/hq-routes-06-board-skip.png")))
        manager.goto(head_office.url + "routes?lang=en")
        expect(manager.locator("[data-testid=route-card][data-route=R07]")).to_contain_text("Skipped")
        manager.screenshot(path=str(artifacts("e2e/hq-routes-05-english.png")))
        for page in (wang, li, manager):
            page.close()
    finally:
        for t in (vault, east, south):
            t.close()
