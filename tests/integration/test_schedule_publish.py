"""The day's schedule from head office to the terminals (issue 16): a dispatch CSV imported at head office
becomes a running terminal's task list (what its staff screen shows), through a real mosquitto with `serve`
recording the terminal's status and replies in the database; a late change (an escort swapped) reaches only
the sites it touches, and the terminal shows the new escort and that the schedule changed; an offline site
gets a USB bundle the terminal's USB import accepts."""
from __future__ import annotations

import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from hq.cli import main
from hq.db import Database
from hq.distribute import BundleKit, Publisher, publish, status
from hq.schedule import import_schedule, import_sites
from hq.serve import Server
from offline.importers import import_bundle_file
from flows.model import SiteType
from offline.provisioning import identity_document
from protocol.keys import DeviceKeys, HqKeys

sys.path.insert(0, str(Path(__file__).parent))
from broker import Broker, Pki, mqtt_config  # noqa: E402

pytestmark = pytest.mark.mqtt

ZONE = ZoneInfo("Asia/Shanghai")        # the agent's default time zone, and head office's default
BEACON = "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:100:7"     # not a sample truck's
SITES = "site_id,name,type\nVLT-01,中心金库,vault\nBR-050,城南支行,branch\nBR-051,城中支行,branch\n"


def dispatch(day, start, escorts: str, r09: bool = False) -> bytes:
    """Two runs: R07 (vault, BR-050) and R08 (vault, BR-051); `escorts` are R07's. With r09, a later run
    R09 (vault, BR-050) too."""
    def w(minutes):
        return (start + timedelta(minutes=minutes)).strftime("%H:%M")
    rows = ["date,route,stop,site,kind,window_start,window_end,plate,beacon,escorts,boxes,confirmers",
            f"{day},R07,1,VLT-01,delivery,{w(-30)},{w(-10)},沪A·S0707,{BEACON},{escorts},,",
            f"{day},R07,2,BR-050,delivery,{w(0)},{w(45)},沪A·S0707,{BEACON},{escorts},"
            f"S1:04AA000000000001;S2:04AA000000000002,O01;O02",
            f"{day},R08,1,VLT-01,delivery,{w(-30)},{w(-10)},沪A·S0808,{BEACON[:-1]}2,E05;E06,,",
            f"{day},R08,2,BR-051,delivery,{w(0)},{w(50)},沪A·S0808,{BEACON[:-1]}2,E05;E06,S3:04AA000000000003,O01"]
    if r09:
        rows += [f"{day},R09,1,VLT-01,collection,{w(60)},{w(70)},沪A·S0909,{BEACON[:-1]}9,E05;E06,,",
                 f"{day},R09,2,BR-050,collection,{w(80)},{w(90)},沪A·S0909,{BEACON[:-1]}9,E05;E06,,"]
    return ("\n".join(rows) + "\n").encode()


def wait(predicate, timeout=30.0, what="it"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)
    return value


def apart(coroutine):
    """Run the terminal's USB import on its own loop: the browser's sync API holds this thread's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def slot_of(view: dict, person_id: str) -> int:
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == person_id)


@pytest.fixture
def office(tmp_path):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", Pki(tmp_path / "pki")).start()
    cert, key = broker.pki.issue("hq")
    url = str(tmp_path / "hq.db")
    server = Server(url, "127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                    client_id="hq").start()
    db = Database(url).create_schema()
    yield broker, db, (broker.pki.ca_file, cert, key)
    db.close()
    server.stop()
    broker.stop()


def test_a_dispatch_becomes_the_terminals_task_list_and_a_late_change_shows_there(agent, office, tmp_path, browser,
                                                                                   artifacts, capsys):
    broker, db, (ca, cert, key) = office
    mqtt_config(broker, "dev-sch-1", "BR-050", agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    wait(lambda: (db.device("dev-sch-1") or {}).get("state") == "online", what="the terminal's status")
    db.status("dev-sch-2", "BR-051", "offline")             # BR-051's terminal: its last will said offline

    now = datetime.now(ZONE).replace(second=0, microsecond=0)
    start = now - timedelta(minutes=5)                       # the truck may arrive now
    if start.date() != now.date() or (start + timedelta(minutes=50)).date() != now.date() or now.hour == 0:
        start = now.replace(hour=12, minute=0)               # near midnight: a window today all the same
    day = start.date().isoformat()
    import_sites(db, SITES.encode())
    first = import_schedule(db, dispatch(day, start, "E01;E02", r09=True), "dispatch.csv")
    assert first.changed == {day: {"BR-050": 1, "BR-051": 1, "VLT-01": 1}}

    device_keys = DeviceKeys.load_or_create(tmp_path / "dev2-keys", "dev-sch-2")
    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / "identity-dev-sch-2.json").write_text(json.dumps(identity_document(device_keys, datetime.now(ZONE))))
    hq_keys = HqKeys.create(tmp_path / "hq-keys")
    kit = BundleKit(hq_keys, tmp_path / "ids", tmp_path / "usb")
    with Publisher("127.0.0.1", broker.port, ca_file=ca, cert_file=cert, key_file=key) as publisher:
        lines = publish(db, day, publisher=publisher, kit=kit, timeout=30)
    assert any("BR-050 dev-sch-1: tasks applied" in line for line in lines), lines
    assert any("VLT-01: no terminal" in line for line in lines), lines

    # what the branch's staff see: the run from head office, its truck and escorts by name
    v = agent.view()
    agent.post("api/staff/open", {})
    agent.wait_for(lambda v: v["pending_auth"] is not None)
    agent.post("api/sim/finger", {"station": "counter", "slot": slot_of(v, "O01")})
    tid = f"R07-{start:%Y%m%d}"
    row = lambda v: next((t for t in v["tasks"] if t["task_id"] == tid), None)   # noqa: E731
    shown = row(agent.wait_for(lambda v: v["staff"] and row(v) is not None, timeout=20))
    assert shown["plate"] == "沪A·S0707" and shown["escorts"] == ["王强", "李军"] and shown["boxes"] == 2
    assert shown["window_start"] == start.strftime("%H:%M")
    assert row(v := agent.view()) is not None and any(t["task_id"] == f"R09-{start:%Y%m%d}" for t in v["tasks"])
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.goto(agent.url)
    page.get_by_text("沪A·S0707").wait_for(timeout=15000)           # the staff face's row of the run
    page.screenshot(path=str(artifacts("e2e/schedule-00-staff-tasks.png")))
    page.close()

    # late change: R07's second escort swapped and R09 called off; only their sites get a new version
    second = import_schedule(db, dispatch(day, start, "E01;E03"), "dispatch.csv")
    assert second.changed == {day: {"BR-050": 2, "VLT-01": 2}} and second.unchanged == {day: ["BR-051"]}
    with Publisher("127.0.0.1", broker.port, ca_file=ca, cert_file=cert, key_file=key) as publisher:
        lines = publish(db, day, publisher=publisher, kit=kit, timeout=30)
    assert any("BR-050 dev-sch-1: tasks applied" in line for line in lines), lines
    assert any("BR-051 dev-sch-2: version 1 already sent" in line for line in lines), lines
    v = agent.wait_for(lambda v: row(v) is not None and row(v)["escorts"] == ["王强", "张伟"], timeout=20)
    assert not any(t["task_id"] == f"R09-{start:%Y%m%d}" for t in v["tasks"]), "the called-off run is gone"
    assert v["schedule_notice"].startswith("排班已更新 ") and len(v["schedule_notice"]) == len("排班已更新 HH:MM")
    assert agent.view("en")["schedule_notice"].startswith("Schedule updated ")
    agent.post("api/staff/logout", {})
    public = agent.wait_for(lambda v: not v["staff"])
    assert public["schedule_notice"].startswith("排班已更新") and public["tasks"] == [], \
        "the public face says that the schedule changed, and nothing of it"
    page = browser.new_page(viewport={"width": 800, "height": 480})
    page.goto(agent.url)
    notice = page.get_by_test_id("schedule-notice")
    notice.wait_for(timeout=15000)
    assert notice.inner_text() == public["schedule_notice"]
    page.screenshot(path=str(artifacts("e2e/schedule-01-idle-notice.png")))
    page.close()

    # the truck arrives; while its handover runs, head office swaps an escort again: the handover finishes
    # on the version it started with, the terminal keeps the new one for later and tells head office
    agent.post("api/sim/beacon", {"beacon": BEACON})
    v = agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "escort_verification", timeout=20)
    assert v["handover"]["task_id"] == tid and [e["person_id"] for e in v["handover"]["escorts"]] == ["E01", "E03"]
    # (this time through the commands a head-office operator types)
    (tmp_path / "third.csv").write_bytes(dispatch(day, start, "E01;E04"))
    capsys.readouterr()
    assert main(["schedule", "import", str(tmp_path / "third.csv"), "--db", db.url]) == 0
    out = capsys.readouterr().out
    assert f"{day} BR-050: new version 3" in out and f"{day} VLT-01: new version 3" in out and "BR-051: new" not in out
    assert main(["schedule", "publish", "--db", db.url, "--day", day, "--host", "127.0.0.1", "--port",
                 str(broker.port), "--ca", str(ca), "--cert", str(cert), "--key", str(key), "--usb",
                 str(tmp_path / "usb"), "--keys", str(tmp_path / "hq-keys"), "--identities", str(tmp_path / "ids")]) == 0
    assert "BR-050 dev-sch-1: tasks applied" in capsys.readouterr().out
    wait(lambda: any(r.get("deferred") == [tid] for r in status(db, day)), what="the deferral at head office")
    assert main(["schedule", "status", "--db", db.url, "--day", day]) == 0
    out = capsys.readouterr().out
    assert f"BR-050  dev-sch-1  v3 via mqtt" in out and f"applied; ran on its old version: {tid}" in out, out
    v = agent.view()
    assert [e["person_id"] for e in v["handover"]["escorts"]] == ["E01", "E03"], "the running handover is not yanked"

    by_site = {(r["site"], r["device"]): r for r in status(db, day)}
    assert by_site[("BR-050", "dev-sch-1")]["sent"] == 3
    assert by_site[("BR-050", "dev-sch-1")]["state"] == "applied"
    assert by_site[("BR-051", "dev-sch-2")]["state"] == "bundle packed, not yet imported"
    assert by_site[("VLT-01", None)]["state"] == "not sent"

    # the offline branch: its bundle is what its terminal's USB import takes
    bundle = tmp_path / "usb" / "dev-sch-2" / f"tasks-BR-051-{day}-v1.htb"
    (tmp_path / "dev2").mkdir()
    journal = Journal(tmp_path / "dev2" / "journal.db")
    store = Store(journal.db, Sealer(tmp_path / "dev2" / "device.key"), tmp_path / "dev2" / "photos")
    outcome = apart(import_bundle_file(bundle, journal=journal, store=store, device_keys=device_keys,
                                             trusted_signers=[hq_keys.signing.public_key()],
                                             fingerprint_modules=[], now=datetime.now(ZONE),
                                             state_dir=tmp_path / "dev2"))
    assert outcome.ok, outcome.message
    task = store.task(f"R08-{start:%Y%m%d}")
    assert task.escorts == ("E05", "E06") and [b.box_id for b in task.boxes_for("BR-051", SiteType.BRANCH)] == ["S3"]
    again = apart(import_bundle_file(bundle, journal=journal, store=store, device_keys=device_keys,
                                           trusted_signers=[hq_keys.signing.public_key()],
                                           fingerprint_modules=[], now=datetime.now(ZONE),
                                           state_dir=tmp_path / "dev2"))
    assert not again.ok and again.code == "replayed", "the same bundle again is refused"
