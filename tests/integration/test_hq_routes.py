"""The route board's query at head office (hq/routes.py), on SQLite and PostgreSQL: the day's schedule as
head office published it and the fleet's journal entries as `serve` applies them become each stop's state,
the escorts verified and the boxes counted; a truck that reached a later stop with no handover at an
earlier one is a route skip; each monitor's announcement settings are stored with their audit row."""
from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.journal import Journal
from hq import routes
from hq.db import Database
from hq.schedule import import_schedule, import_sites
from hq.web.auth import Auth

sys.path.insert(0, str(Path(__file__).parent))
from postgres import db_url, postgres  # noqa: E402,F401 (fixtures)
from route_day import NAMES, SITES, as_uplink, dispatch, end_stop, start_stop, task_id  # noqa: E402

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 30)
WINDOWS = [("07:00", "07:30"), ("08:00", "08:30"), ("09:00", "09:30"), ("10:00", "10:30")]


def at(hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(DAY.year, DAY.month, DAY.day, h, m, tzinfo=CST)


class Fleet:
    """One real journal per terminal; `sync()` applies what is new, as serve does, in one batch per device."""

    def __init__(self, db: Database, folder: Path):
        self.db, self.folder, self.journals, self.sent = db, folder, {}, {}

    def journal(self, device: str, site: str) -> Journal:
        if device not in self.journals:
            self.journals[device] = Journal(self.folder / f"{device}.db")
            self.sent[device] = 0
            self.db.status(device, site, "online")
        return self.journals[device]

    def sync(self) -> list[dict]:
        committed = []
        for device, journal in self.journals.items():
            new = list(journal.entries(self.sent[device]))
            if new:
                result = self.db.apply(device, as_uplink(device, new))
                assert result.applied == len(new) and not result.problems
                committed += result.committed
                self.sent[device] = new[-1].seq
        return committed

    def close(self) -> None:
        for journal in self.journals.values():
            journal.close()


@pytest.fixture
def fleet(db_url, tmp_path):
    db = Database(db_url).create_schema()
    import_sites(db, SITES.encode())
    import_schedule(db, dispatch(DAY, WINDOWS), "dispatch.csv")
    f = Fleet(db, tmp_path)
    yield f
    f.close()
    db.close()


def states(card: dict) -> list[str]:
    return [s["state"] for s in card["stops"]]


def test_a_morning_run_stop_by_stop_with_escorts_and_boxes_counted(fleet):
    start_stop(fleet.journal("dev-vlt", "VLT-01"), DAY, "VLT-01", at("07:05"))
    end_stop(fleet.journal("dev-vlt", "VLT-01"), DAY, "VLT-01", at("07:05"), at("07:20"))
    start_stop(fleet.journal("dev-001", "BR-001"), DAY, "BR-001", at("08:10"), officer=None)
    committed = fleet.sync()
    assert len(committed) == len(list(fleet.journals["dev-vlt"].entries())) + len(list(fleet.journals["dev-001"].entries()))

    [card] = routes.day_routes(fleet.db, DAY.isoformat(), at("09:45"), NAMES)
    assert (card["route"], card["task_id"], card["plate"], card["kind"]) == ("R07", task_id(DAY), "沪A·C1234", "delivery")
    assert states(card) == ["done", "at_door", "overdue", "pending"]
    assert card["skipped"] == []
    vault, br1, br2, br3 = card["stops"]
    assert [s["site"] for s in card["stops"]] == ["中心金库", "城东支行", "城西支行", "城南支行"]
    assert (vault["arrived"], vault["ended"], vault["outcome"], vault["device"]) == ("07:05", "07:20", "completed", "dev-vlt")
    assert vault["boxes_counted"] == vault["boxes_planned"] == 6          # every box leaves the vault
    assert br1["escorts_verified"] == ["E01", "E02"] and br1["escorts_planned"] == 2
    assert (br1["boxes_counted"], br1["boxes_planned"], br1["officer"], br1["ended"]) == (2, 2, None, None)
    assert br2["window"] == "09:00–09:30" and br2["boxes_counted"] == 0 and br2["arrived"] is None

    # the handover ends: BR-001 done; BR-002 is still overdue (and where the truck goes next)
    end_stop(fleet.journals["dev-001"], DAY, "BR-001", at("08:10"), at("08:25"))
    fleet.sync()
    [card] = routes.routes_of(fleet.db, [task_id(DAY)], at("09:45"), NAMES)
    assert states(card) == ["done", "done", "overdue", "pending"]
    assert states(routes.day_routes(fleet.db, DAY.isoformat(), at("08:50"), NAMES)[0]) == ["done", "done", "next",
                                                                                          "pending"]


def test_a_later_stop_reached_with_no_handover_before_it_is_a_route_skip(fleet):
    start_stop(fleet.journal("dev-vlt", "VLT-01"), DAY, "VLT-01", at("07:05"))
    end_stop(fleet.journals["dev-vlt"], DAY, "VLT-01", at("07:05"), at("07:20"))
    start_stop(fleet.journal("dev-002", "BR-002"), DAY, "BR-002", at("08:15"))     # BR-001 passed by
    fleet.sync()
    [card] = routes.day_routes(fleet.db, DAY.isoformat(), at("08:20"), NAMES)
    assert states(card) == ["done", "skipped", "at_door", "next"]
    assert card["skipped"] == ["BR-001"] and card["skipped_names"] == ["城东支行"]

    # BR-001's terminal was offline: its records come up later and the skip is gone
    start_stop(fleet.journal("dev-001", "BR-001"), DAY, "BR-001", at("08:02"))
    end_stop(fleet.journals["dev-001"], DAY, "BR-001", at("08:02"), at("08:12"))
    fleet.sync()
    [card] = routes.day_routes(fleet.db, DAY.isoformat(), at("08:20"), NAMES)
    assert states(card) == ["done", "done", "at_door", "next"] and card["skipped"] == []


def test_another_day_and_entries_of_other_tasks_are_not_on_the_board(fleet):
    journal = fleet.journal("dev-001", "BR-001")
    journal.append("handover_started", {"task": {}, "site_id": "BR-001", "inputs": {}}, task_id="R99-20261130")
    journal.append("finger_attempt", {"event": {}, "decisions": [{"type": "EscortVerified", "person_id": "E01"}]},
                   task_id="R99-20261130")
    fleet.sync()
    assert routes.day_routes(fleet.db, "2026-12-01", at("09:00"), NAMES) == []
    [card] = routes.day_routes(fleet.db, DAY.isoformat(), at("06:00"), NAMES)
    assert states(card) == ["next", "pending", "pending", "pending"]
    assert routes.routes_of(fleet.db, ["R99-20261130"], at("09:00")) == []


def test_what_the_board_announces_is_read_from_the_committed_entries(fleet):
    start_stop(fleet.journal("dev-001", "BR-001"), DAY, "BR-001", at("08:10"))
    end_stop(fleet.journals["dev-001"], DAY, "BR-001", at("08:10"), at("08:25"), "completed_with_exception")
    said = [(e["id"], routes.announcement(e)) for e in fleet.sync()]
    said = [(i, s) for i, s in said if s]
    assert [s for _, s in said] == [("confirmation", {}), ("completion", {"site_id": "BR-001", "plate": "沪A·C1234",
                                                                            "outcome": "completed_with_exception"})]
    stored = routes.entry(fleet.db, "dev-001", said[1][0])
    assert stored["kind"] == "handover_ended" and routes.announcement(stored) == said[1][1]
    assert routes.entry(fleet.db, "dev-001", "dev-002:1") is None and routes.entry(fleet.db, "dev-001", "x") is None
    assert routes.site_of_device(fleet.db, "dev-001", task_id(DAY)) == "BR-001"
    assert routes.site_name(fleet.db, "BR-001") == "城东支行" and routes.site_name(fleet.db, "BR-404") is None
    assert routes.local_time("2026-11-30T00:25:00.000Z") == "08:25"


def test_each_user_s_voice_settings_are_stored_and_audited(fleet):
    auth = Auth(fleet.db)
    auth.add_user("wang", "monitor", "monitor password 1")
    assert routes.voice_settings(fleet.db, "wang") == {"confirmation": False, "completion": False}
    routes.set_voice(fleet.db, "wang", {"confirmation": False, "completion": True}, "2026-11-30T01:00:00Z",
                     auth.audit_in)
    routes.set_voice(fleet.db, "wang", {"confirmation": True, "completion": True}, "2026-11-30T01:01:00Z",
                     auth.audit_in)
    assert routes.voice_settings(fleet.db, "wang") == {"confirmation": True, "completion": True}
    assert routes.all_voice_settings(fleet.db) == {"wang": {"confirmation": True, "completion": True}}
    changes = [r for r in auth.audit_rows() if r["action"] == "voice_settings_changed"]
    # both changes, each with what it set (the two may share a millisecond: not compared in order)
    assert sorted(tuple(sorted(r["detail"].items())) for r in changes) == [
        (("completion", True), ("confirmation", False)), (("completion", True), ("confirmation", True))]
    assert {r["name"] for r in changes} == {"wang"}
