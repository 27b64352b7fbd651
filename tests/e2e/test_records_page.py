"""Issue 16's records view in real headless Chromium: `handover-hq serve --http --records-key` beside a
running simulated terminal on a real TLS mosquitto. The terminal hands over a delivery (its door attempts'
faces sealed to head office's records key); a monitor searches the records by truck, opens the handover,
sees its timeline, each face loaded beside the enrolled photo, the chain verified, and exports it; a vault
manager cannot load a face (403). Screenshots in artifacts/e2e/ at 1280x800."""
from __future__ import annotations

import base64
import json
import sqlite3
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from broker import mqtt_config  # noqa: E402
from mqtt_fixtures import wait_until  # noqa: E402
from test_agent_restart import half_way, to_the_end  # noqa: E402
from test_hq_board import HeadOffice, broker, login  # noqa: E402,F401 (broker: a fixture)

from agent.sample import COLOURS, ESCORTS, OFFICERS, placeholder_photo  # noqa: E402
from hq import records  # noqa: E402
from hq.db import Database  # noqa: E402
from protocol.chain import chain_problem  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]
DEVICE, SITE = "dev-e2e-rec", "BR-001"


def outbox(state: Path) -> int:
    conn = sqlite3.connect(f"{(state / 'journal.db').resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM snapshot_outbox").fetchone()[0]
    finally:
        conn.close()


def loaded(img) -> bool:
    return img.evaluate("i => i.complete && i.naturalWidth > 0")


@pytest.fixture
def head_office(broker, tmp_path):
    (tmp_path / "hq").mkdir()
    records.create_key(tmp_path / "hq" / "keys")
    office = HeadOffice(broker, tmp_path / "hq")
    office.argv += ["--records-key", str(tmp_path / "hq" / "keys" / records.PRIVATE_FILE)]
    office.add_user("wang", "monitor")
    office.add_user("zhao", "vault_manager")
    # the people head office imported from the escort company, with their photos (as `personnel import` keeps them)
    db = Database(office.db).create_schema()
    people = [(pid, name, COLOURS[i]) for i, (pid, name) in enumerate(ESCORTS + OFFICERS[:1])]
    db.run(lambda cur: cur.executemany(
        "INSERT INTO hq_people (person_id, body, imported) VALUES (?, ?, ?)",
        [(pid, json.dumps({"person_id": pid, "name": name,
                           "photo_data": base64.b64encode(placeholder_photo(name, colour)).decode()},
                          ensure_ascii=False), "2026-06-01") for pid, name, colour in people]))
    db.close()
    office.start()
    yield office
    office.stop()


def test_a_monitor_finds_a_handover_by_truck_and_sees_its_faces_and_chain(agent, browser, artifacts, broker,
                                                                            head_office, tmp_path):
    mqtt_config(broker, DEVICE, SITE, agent.state_dir)
    (agent.state_dir / "keys").mkdir(parents=True, exist_ok=True)
    (agent.state_dir / "keys" / "hq_records.pem").write_bytes(
        (tmp_path / "hq" / "keys" / records.PUBLIC_FILE).read_bytes())
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    to_the_end(agent, half_way(agent))                       # a whole delivery: both escorts at the door

    db = Database(head_office.db)
    try:
        wait_until(lambda: db.run(lambda cur: cur.one(
            "SELECT count(*) FROM entries WHERE device = ? AND kind = 'handover_ended'", (DEVICE,)))[0] == 1,
            60, "the handover's end at head office")
        wait_until(lambda: outbox(agent.state_dir) == 0 and db.run(lambda cur: cur.one(
            "SELECT count(*) FROM hq_records_snapshots WHERE device = ?", (DEVICE,)))[0] >= 1,
            60, "every door face at head office (the terminal's outbox empty)")
    finally:
        db.close()

    page = login(browser, head_office, "wang")
    page.get_by_test_id("nav-records").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("records-search")).to_contain_text("车辆")
    page.get_by_test_id("records-truck").fill("C1234")
    page.get_by_test_id("records-submit").click()
    row = page.get_by_test_id("record-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("城东支行")
    expect(row.get_by_test_id("record-outcome")).to_have_text("正常完成")
    page.screenshot(path=str(artifacts("e2e/hq-records-01-search.png")))

    row.click()
    detail = page.get_by_test_id("record-detail")
    expect(detail).to_be_visible()
    expect(page.get_by_test_id("record-chain-ok")).to_contain_text("哈希链校验通过")
    timeline = page.get_by_test_id("record-timeline")
    expect(timeline.locator("[data-kind=handover_started]")).to_contain_text("交接开始")
    expect(timeline.locator("[data-kind=finger_attempt]").first).to_contain_text("王强 (E01)")
    expect(timeline.locator("[data-kind=handover_ended]")).to_have_count(1)
    faces = page.get_by_test_id("record-face")
    expect(faces.first).to_be_visible()
    for i in range(faces.count()):
        face = faces.nth(i)
        for img in (face.get_by_test_id("record-snapshot"), face.get_by_test_id("record-enrolled-photo")):
            expect(img).to_be_visible()
            wait_until(lambda img=img: loaded(img), 15, "the image to load")
    first = faces.first
    assert first.get_attribute("data-person") == "E01"
    first.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts("e2e/hq-records-02-detail.png")))
    timeline.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts("e2e/hq-records-03-timeline.png")))

    # the export: a file a reviewer keeps, whose entries re-verify with nothing but protocol/chain.py
    with page.expect_download() as download:
        page.get_by_test_id("record-export").click()
    kept = json.loads(Path(download.value.path()).read_text("utf-8"))
    assert kept["chain"]["ok"] and kept["exported_by"] == "wang" and kept["report"]["plate"] == "沪A·C1234"
    prev = kept["entries"][0]["prev_hash"]
    for entry in kept["entries"]:
        assert chain_problem(entry, prev) is None
        prev = entry["hash"]
    assert any("哈希链校验通过" in line for line in kept["report_text"])
    snapshot_src = first.get_by_test_id("record-snapshot").get_attribute("src")

    # a vault manager finds the same record but no face: the page says so, the API refuses
    manager = login(browser, head_office, "zhao")
    manager.goto(head_office.url + "records")
    expect(manager.get_by_test_id("record-row")).to_have_count(1)
    manager.get_by_test_id("record-row").click()
    expect(manager.get_by_test_id("record-detail")).to_contain_text("抓拍仅监控员和管理员可见")
    expect(manager.get_by_test_id("record-snapshot")).to_have_count(0)
    assert manager.request.get(head_office.url.rstrip("/") + snapshot_src).status == 403
    assert page.request.get(head_office.url.rstrip("/") + snapshot_src).status == 200
    manager.get_by_test_id("record-face").first.scroll_into_view_if_needed()
    manager.screenshot(path=str(artifacts("e2e/hq-records-04-vault-manager.png")))

    page.goto(head_office.url + "records?lang=en")
    expect(page.get_by_test_id("records-search")).to_contain_text("Truck")
    page.get_by_test_id("record-row").click()
    expect(page.get_by_test_id("record-chain-ok")).to_contain_text("Hash chain verified")
    page.screenshot(path=str(artifacts("e2e/hq-records-05-english.png")))
    for p in (page, manager):
        p.close()
