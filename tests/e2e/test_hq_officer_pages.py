"""Issue 16 in real headless Chromium against `handover-hq serve --http` on a real TLS mosquitto, beside a
running simulated terminal: (A) an admin uploads the escort company's dispatch on the schedule page — a
bad file names its bad rows and changes nothing; a good one publishes the version to the online terminal
(which applies it) and packs a USB bundle for the offline site, downloaded from the page and opened with
that device's key. (B) A complaint registered at the terminal's kiosk is worked by a complaint officer at
head office from registered to archived — details decrypted on the page, each step sent to the terminal
and recorded there — and the half-year report lists it; monitors and admins get 403 on every complaint
route. Screenshots at 1280x800 in artifacts/e2e/."""
from __future__ import annotations

import json
import sqlite3
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from hq import distribute
from hq.complaints import create_key
from hq.db import Database
from hq.schedule import import_sites
from offline.provisioning import identity_document
from protocol.bundle import open_bundle
from protocol.keys import DeviceKeys, HqKeys

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from broker import mqtt_config  # noqa: E402
from test_hq_board import PASSWORD, VIEWPORT, HeadOffice, broker, login  # noqa: E402,F401 (fixture)
from test_schedule_publish import SITES, dispatch, wait  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.mqtt]
ZONE = ZoneInfo("Asia/Shanghai")
NAME, PHONE, TEXT = "欧阳娜娜", "13712345678", "办理跨行汇款时被多收了二十元手续费"
FORM = {"channel": "walk_in", "category": "irregular_fees", "description": TEXT, "request": "退还多收的手续费",
        "name": NAME, "contact": PHONE, "counter": "2号窗口"}


def state_of(db_file: Path, device: str) -> str | None:
    conn = sqlite3.connect(db_file)
    try:
        row = conn.execute("SELECT state FROM devices WHERE device = ?", (device,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def count(db_file: Path, table: str) -> int:
    conn = sqlite3.connect(db_file)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_an_admin_uploads_the_dispatch_and_it_is_published_or_packed_for_usb(agent, browser, artifacts, broker,
                                                                              tmp_path):
    folder = tmp_path / "hq"
    folder.mkdir()
    office = HeadOffice(broker, folder)
    HqKeys.create(tmp_path / "hq-keys")
    offline_keys = DeviceKeys.load_or_create(tmp_path / "dev-off-keys", "dev-off")
    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / "identity-dev-off.json").write_text(json.dumps(identity_document(offline_keys, datetime.now(ZONE))))
    office.argv += ["--keys", str(tmp_path / "hq-keys"), "--identities", str(tmp_path / "ids"),
                    "--bundles", str(tmp_path / "usb")]
    office.add_user("root", "admin")
    office.add_user("wang", "monitor")
    db = Database(str(office.db)).create_schema()
    import_sites(db, SITES.encode())
    db.status("dev-off", "BR-051", "offline")            # BR-051's terminal: its last will said offline
    db.close()
    office.start()
    try:
        mqtt_config(broker, "dev-on", "BR-050", agent.state_dir)
        agent.start("--config", str(agent.state_dir / "agent.toml"))
        wait(lambda: state_of(office.db, "dev-on") == "online", what="the terminal online at head office")

        now = datetime.now(ZONE).replace(second=0, microsecond=0)
        start = now - timedelta(minutes=5)
        if start.date() != now.date() or (start + timedelta(minutes=50)).date() != now.date() or now.hour == 0:
            start = now.replace(hour=12, minute=0)
        day = start.date().isoformat()
        good = dispatch(day, start, "E01;E02")
        bad = good.replace(b",BR-051,", b",BR-999,").replace(b"S1:04AA000000000001", b"S1:XYZ")
        (tmp_path / "bad.csv").write_bytes(bad)
        (tmp_path / "dispatch.csv").write_bytes(good)

        # a monitor has no schedule page
        monitor = login(browser, office, "wang")
        assert monitor.goto(office.url + "schedule").status == 403
        monitor.close()

        page = login(browser, office, "root")
        page.get_by_test_id("nav-schedule").click()
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.locator("h1")).to_have_text("排班导入")
        page.get_by_test_id("schedule-file").set_input_files(str(tmp_path / "bad.csv"))
        page.get_by_test_id("schedule-submit").click()
        result = page.get_by_test_id("schedule-result")
        expect(result).to_have_attribute("data-state", "refused")
        expect(result).to_contain_text("未做任何更改")
        errors = page.get_by_test_id("schedule-error")
        expect(errors.filter(has_text="第 3 行，boxes：")).to_have_count(1)
        expect(errors.filter(has_text="第 5 行，site：unknown site 'BR-999'")).to_have_count(1)
        page.screenshot(path=str(artifacts("e2e/hq-schedule-01-refused.png")))
        assert count(office.db, "schedule_versions") == 0 and count(office.db, "schedule_tasks") == 0

        page.get_by_test_id("schedule-file").set_input_files(str(tmp_path / "dispatch.csv"))
        page.get_by_test_id("schedule-submit").click()
        expect(result).to_have_attribute("data-state", "imported")
        online = result.locator("[data-testid=schedule-site][data-site=BR-050]")
        expect(online.get_by_test_id("schedule-version")).to_have_text("v1")
        expect(online).to_contain_text("已通过网络下发")
        expect(result.locator("[data-testid=schedule-site][data-site=BR-051]")).to_contain_text("U盘导入包")
        expect(result.locator("[data-testid=schedule-site][data-site=VLT-01]")).to_contain_text("没有终端上报过此网点")
        # published is not applied: the page shows the terminal's answer when it comes
        expect(online.get_by_test_id("schedule-applied")).to_have_attribute("data-state", "applied", timeout=30000)
        expect(online.get_by_test_id("schedule-applied")).to_have_text("dev-on: 已应用")
        link = result.locator("[data-testid=schedule-bundle][data-site=BR-051]").filter(has_text="tasks-")
        page.screenshot(path=str(artifacts("e2e/hq-schedule-02-published.png")))
        with page.expect_download() as got:
            link.click()
        bundle = Path(got.value.path()).read_bytes()
        opened = open_bundle(bundle, offline_keys, [HqKeys.load(tmp_path / "hq-keys").signing.public_key()],
                             datetime.now(ZONE), 0)
        assert [t["task_id"] for t in opened.payload["tasks"]] == [f"R08-{start:%Y%m%d}"]

        # published is applied: the online terminal's reply came back through serve
        hq_db = Database(str(office.db))
        try:
            rows = wait(lambda: [r for r in distribute.status(hq_db, day) if r["device"] == "dev-on"
                                 and r["state"] == "applied"], what="the terminal's reply")
        finally:
            hq_db.close()
        assert rows[0]["sent"] == 1 and rows[0]["channel"] == "mqtt"
        audit = sqlite3.connect(office.db).execute("SELECT name, action FROM audit WHERE action LIKE 'schedule%' "
                                                   "ORDER BY at").fetchall()
        assert [a for _, a in audit][:2] == ["schedule_refused", "schedule_imported"]
        assert {n for n, _ in audit} == {"root"}
        page.close()
    finally:
        office.stop()


def report_half(received: date) -> tuple[int, int]:
    """(year, half) of the half-year report that covers a day: Dec-May is due 15 June, Jun-Nov 15 December."""
    if received.month == 12:
        return received.year + 1, 1
    return (received.year, 1) if received.month < 6 else (received.year, 2)


def test_a_complaint_officer_works_a_complaint_to_archive_and_reports_it(agent, browser, artifacts, broker,
                                                                         tmp_path):
    folder = tmp_path / "hq"
    folder.mkdir()
    keys = tmp_path / "complaint-keys"
    create_key(keys)
    office = HeadOffice(broker, folder)
    office.argv += ["--complaint-keys", str(keys)]
    for name, role in (("li", "complaint_officer"), ("wang", "monitor"), ("zhao", "vault_manager"),
                       ("root", "admin")):
        office.add_user(name, role)
    office.start()
    try:
        mqtt_config(broker, "dev-cmp", "BR-001", agent.state_dir)
        with open(agent.state_dir / "agent.toml", "a", encoding="utf-8") as f:
            f.write(f'[complaints]\nhq_key = "{keys / "complaint.pub.pem"}"\n')
        agent.start("--config", str(agent.state_dir / "agent.toml"))
        agent.post("api/kiosk/enter", {})
        ref = agent.post("api/kiosk/complaints", FORM)["ref"]

        # the details are personal data: no other role sees any complaint route
        for name in ("wang", "zhao", "root"):
            other = login(browser, office, name)
            assert other.goto(office.url + "complaints").status == 403
            for path in ("api/complaints", f"api/complaints/{ref}", "api/complaints/report?year=2026&half=2"):
                assert other.request.get(office.url + path).status == 403, (name, path)
            other.close()

        page = browser.new_page(viewport=VIEWPORT)
        page.goto(office.url)
        page.get_by_test_id("login-name").fill("li")
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(page).to_have_url(office.url + "complaints")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        row = page.locator(f"[data-testid=complaint-row][data-ref='{ref}']")
        expect(row).to_have_count(1, timeout=30000)
        expect(row).to_contain_text("违规收费")
        expect(row).to_contain_text("城东支行")            # serve --sites names the site
        expect(row).to_have_attribute("data-status", "registered")
        page.screenshot(path=str(artifacts("e2e/hq-complaints-01-list.png")))

        row.click()
        detail = page.get_by_test_id("complaint-detail")
        expect(detail.get_by_test_id("complaint-name")).to_have_text(NAME)
        expect(detail.get_by_test_id("complaint-contact")).to_have_text(PHONE)
        expect(detail.get_by_test_id("complaint-description")).to_have_text(TEXT)
        expect(page.get_by_test_id("complaint-status")).to_have_text("已登记")
        page.screenshot(path=str(artifacts("e2e/hq-complaints-02-detail.png")))

        # a step the terminal's lifecycle refuses: its reason on the page, the complaint as it was
        detail.get_by_test_id("complaint-action").select_option("archive")
        detail.get_by_test_id("complaint-submit").click()
        expect(detail.get_by_test_id("complaint-sent")).to_contain_text("终端拒绝", timeout=30000)
        expect(page.get_by_test_id("complaint-status")).to_have_attribute("data-status", "registered")
        page.screenshot(path=str(artifacts("e2e/hq-complaints-02b-refused.png")))

        steps = [("classify", "客户情绪激动，按一般投诉先行处理", {}, "classified"), ("transfer", "总行消保部", {}, "transferred"),
                 ("investigate", None, {}, "investigating"),
                 ("handle", "调取流水核实多收属实，已退还", {"cause": "柜员未按规定公示收费标准",
                                                   "remedy": "全辖张贴收费标准并培训"}, "handled"),
                 ("reply", "已电话告知客户并退还二十元", {}, "replied"), ("satisfaction", None, {}, "satisfied"),
                 ("archive", None, {}, "archived")]
        for action, note, extra, after in steps:
            detail.get_by_test_id("complaint-action").select_option(action)
            if note is not None:
                detail.get_by_test_id("complaint-note").fill(note)
            for name, value in extra.items():
                detail.locator(f"[name={name}]").fill(value)
            detail.get_by_test_id("complaint-submit").click()
            expect(page.get_by_test_id("complaint-status")).to_have_attribute("data-status", after, timeout=30000)
            if action == "handle":
                page.screenshot(path=str(artifacts("e2e/hq-complaints-03-handled.png")))
        expect(detail.get_by_test_id("complaint-step")).to_have_count(7)
        expect(detail).to_contain_text("柜员未按规定公示收费标准")
        # a step with no text of its own keeps the officer's note at head office, shown on its line
        expect(detail.locator("[data-testid=complaint-step][data-action=classify]")).to_contain_text(
            "备注（总部留存）：客户情绪激动，按一般投诉先行处理")
        expect(row).to_have_attribute("data-status", "archived")

        received = datetime.fromisoformat(json.loads(page.request.get(office.url + f"api/complaints/{ref}").text())
                                          ["received_at"]).date()
        year, half = report_half(received)
        page.get_by_test_id("complaints-report-year").fill(str(year))
        page.get_by_test_id("complaints-report-half").select_option(str(half))
        page.get_by_test_id("complaints-report-link").click()
        report = page.get_by_test_id("complaints-report")
        expect(report.get_by_test_id("complaints-report-totals")).to_have_text("受理 1 件，办结 1 件，超期 0 件")
        expect(report.locator(f"[data-testid=complaints-report-cause][data-ref='{ref}']")).to_contain_text(
            "全辖张贴收费标准并培训")
        report.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts("e2e/hq-complaints-04-report.png")), full_page=True)
        with page.expect_download() as got:
            page.get_by_test_id("complaints-report-download").click()
        downloaded = json.loads(Path(got.value.path()).read_text("utf-8"))
        assert downloaded["received"] == 1 and downloaded["by_category"]["irregular_fees"]["resolved"] == 1
        assert downloaded["due"] == (f"{year}-06-15" if half == 1 else f"{year}-12-15")

        page.goto(office.url + "complaints?lang=en")
        expect(page.locator("h1")).to_have_text("Complaints")
        page.locator(f"[data-testid=complaint-row][data-ref='{ref}']").click()
        expect(page.get_by_test_id("complaint-status")).to_have_text("archived")
        page.screenshot(path=str(artifacts("e2e/hq-complaints-05-english.png")))

        # every act audited at head office (the reference and action, never the content)
        audit = sqlite3.connect(office.db).execute(
            "SELECT name, detail FROM audit WHERE action = 'complaint_act' ORDER BY at").fetchall()
        assert [json.loads(d)["action"] for _, d in audit] == ["archive"] + [s[0] for s in steps]
        assert {n for n, _ in audit} == {"li"} and not any(NAME in d or "柜员" in d for _, d in audit)
        page.close()
    finally:
        office.stop()
    # what the page showed in clear was opened for the officer only: head office's log and database files
    # (audit, sent steps, sessions included) hold none of it
    secrets = (NAME, PHONE, TEXT, "柜员未按规定公示收费标准", "客户情绪激动", "已电话告知客户并退还二十元")
    logged = "".join(office.lines)
    stored = b"".join(p.read_bytes() for p in folder.glob("hq.db*") if p.is_file())
    assert ref.encode() in stored, "the grep can see what is stored in clear"
    for secret in secrets:
        assert secret not in logged and secret.encode() not in stored, secret
