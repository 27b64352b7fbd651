"""Branch names instead of codes (issue 14): the tasks payload may carry {site_id: name}; alarms and prompts
on the screen then name the branch, and fall back to the code where no name is known. A wrongly typed
`sites` is refused by name and changes nothing."""
from __future__ import annotations

import sqlite3

import pytest

from agent.sample import TRUCKS, tag_for
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
