"""Branch names instead of codes (issue 14): the tasks payload may carry {site_id: name}; alarms and prompts
on the screen then name the branch, and fall back to the code where no name is known. A wrongly typed
`sites` is refused by name and changes nothing."""
from __future__ import annotations

import json
import sqlite3
import urllib.request

import pytest

from agent.sample import DEMO_SITE_NAME, TRUCKS, tag_for
from test_import import dev, task  # noqa: F401  (the importer's device fixture: real journal and store)
from offline.importers import apply_tasks


def slot(view, pid):
    return next(p["slot"] for p in view["sim"]["people"] if p["person_id"] == pid)


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_a_wrong_box_alarm_names_the_branch_it_is_destined_for(agent, named):
    agent.start()
    v = agent.view()
    if not named:                    # task data without names: the agent reads the store on each prompt
        db = sqlite3.connect(agent.state_dir / "journal.db", timeout=10)
        with db:
            db.execute("DELETE FROM site_names")
        db.close()
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot(v, pid)})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover")
    agent.post("api/sim/tag", {"tag": tag_for("XB2-01")})                      # destined for BR-002
    v = agent.wait_for(lambda v: v["handover"]["risk"])
    [alarm] = v["handover"]["open_alarms"]
    if named:
        assert "城西支行" in alarm["text"] and "BR-002" not in alarm["text"]
    else:
        assert "应送往BR-002" in alarm["text"]
    assert agent.stop() == 0


def test_names_are_stored_with_the_tasks_and_a_code_stays_a_code_without_one(dev):  # noqa: F811
    apply_tasks(dev.journal, dev.store, [task()], "test")
    assert dev.store.site_names() == {}
    apply_tasks(dev.journal, dev.store, [task("T2")], "test", sites={"branch-01": "城东支行", "VLT-01": "中心金库"})
    assert dev.store.site_names() == {"branch-01": "城东支行", "VLT-01": "中心金库"}


@pytest.mark.parametrize("sites,named", [
    (["branch-01"], "sites: must be an object"),
    ({"branch-01": ["城东支行"]}, "sites.branch-01: must be text"),
    ({"branch-01": 5}, "sites.branch-01: must be text"),
    ({"branch-01": "  "}, "sites.branch-01: must be a name"),
    ({"branch-01": "支" * 65}, "sites.branch-01: must be a name"),
])
def test_a_wrongly_typed_sites_map_is_refused_by_name_and_changes_nothing(dev, sites, named):  # noqa: F811
    before = dev.snapshot()
    with pytest.raises(ValueError, match=named):
        apply_tasks(dev.journal, dev.store, [task()], "test", sites=sites)
    assert dev.snapshot() == before and dev.store.site_names() == {}


@pytest.mark.parametrize("named", [True, False], ids=["named", "unnamed"])
def test_the_printed_report_names_the_site(agent, named):
    """The receipt said "网点: BR-001": the site's code, where the officer and the escort read its name."""
    agent.start()
    v = agent.view()
    site_id = v["site"]["id"]
    if not named:
        db = sqlite3.connect(agent.state_dir / "journal.db", timeout=10)
        with db:
            db.execute("DELETE FROM site_names")
        db.close()
    agent.post("api/sim/beacon", {"beacon": TRUCKS[0].beacon})
    for pid in ("E01", "E02"):
        agent.post("api/sim/finger", {"station": "door", "slot": slot(v, pid)})
    agent.wait_for(lambda v: v["handover"] and v["handover"]["step"] == "box_handover")
    for box in ("XB1-01", "XB1-02", "XB1-03"):
        agent.post("api/sim/tag", {"tag": tag_for(box)})
    agent.wait_for(lambda v: v["handover"]["step"] == "officer_confirmation")
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    agent.wait_for(lambda v: v["handover"]["step"] == "sign_off")
    agent.post("api/sim/finger", {"station": "door", "slot": slot(v, "E01")})
    agent.wait_for(lambda v: len(v["handover"]["marks"]) == 1)
    agent.post("api/sim/finger", {"station": "counter", "slot": slot(v, "O01")})
    agent.wait_for(lambda v: v["handover"] is None and v["report"] and v["report"]["printed"])
    with urllib.request.urlopen(agent.url + "api/sim/printed", timeout=10) as r:
        title, lines = (lambda p: (p["title"], p["lines"]))(json.load(r)["printed"][-1])
    assert title == "款箱交接报告"
    site_line = next(line for line in lines if line.startswith("网点: "))
    assert site_line == ("网点: " + DEMO_SITE_NAME if named else f"网点: {site_id}")
    assert "任务编号: " in lines[0] and any(line.startswith("人员") for line in lines)
    assert agent.stop() == 0


def test_the_screen_and_the_complaint_receipt_name_the_site_as_head_office_sent_it(agent):
    """Without a name in the config, the screen's header and the kiosk's printed receipt showed the code (or the
    demo's name) even where head office had sent the branch's name with the tasks."""
    agent.start()
    site_id = agent.view()["site"]["id"]
    assert agent.view()["site"]["name"] != "城北支行"
    db = sqlite3.connect(agent.state_dir / "journal.db", timeout=10)
    with db:
        db.execute("INSERT OR REPLACE INTO site_names (site_id, name) VALUES (?, ?)", (site_id, "城北支行"))
    db.close()
    agent.post("api/kiosk/enter", {})
    assert agent.view()["site"]["name"] == "城北支行"
    agent.post("api/kiosk/complaints", {"channel": "walk_in", "category": "service_attitude",
                                        "description": "柜员态度冷淡", "request": "希望改进", "name": "王建国",
                                        "contact": "13912345678"})
    with urllib.request.urlopen(agent.url + "api/sim/printed", timeout=10) as r:
        lines = json.load(r)["printed"][-1]["lines"]
    assert lines[0] == "网点：城北支行", lines
    assert agent.stop() == 0
