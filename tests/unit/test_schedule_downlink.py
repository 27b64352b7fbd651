"""A whole day's schedule from head office at the terminal (agent/sync/downlink.py, `schedule` in the tasks
downlink): a task head office called off is withdrawn unless its handover has started; an older version of the
day is refused and changes nothing; messages without `schedule` (older head offices) merge as before."""
from __future__ import annotations

import json
from datetime import date

import pytest

from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from agent.sync.downlink import Downlink
from protocol import messages

SITE = "BR-001"
DAY = "2026-11-30"


def task(tid: str, version: int = 1, escorts=("E01", "E02")) -> dict:
    return {"task_id": tid, "version": version, "kind": "delivery", "window_start": f"{DAY}T09:00:00+08:00",
            "window_end": f"{DAY}T10:00:00+08:00", "route": ["VLT-01", SITE],
            "vehicle": {"vehicle_id": "P1", "plate": "P1", "beacon": "ibeacon:x"}, "escorts": list(escorts),
            "boxes": [], "confirmers": []}


@pytest.fixture
def device(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    store = Store(journal.db, Sealer(tmp_path / "device.key"), tmp_path / "photos")
    downlink = Downlink(journal, store, device="dev-1", site_id=SITE, on_command=lambda p: None)

    def send(tasks: list[dict], version: int | None, msg_id: str) -> dict:
        payload = {"v": 1, "msg_id": msg_id, "site_id": SITE, "tasks": tasks}
        if version is not None:
            payload["schedule"] = {"day": DAY, "version": version}
        reply = downlink.handle("ht/v1/dev-1/down/tasks", "tasks", json.dumps(payload).encode())
        messages.check("reply", reply)
        return reply
    yield journal, store, send
    journal.close()


def ids(store: Store) -> list[str]:
    return sorted(t.task_id for t in store.tasks_on(date.fromisoformat(DAY), SITE))


def test_a_called_off_task_is_withdrawn_unless_started_and_an_older_day_is_refused(device):
    journal, store, send = device
    assert send([task("A"), task("B"), task("C")], 1, "m1")["ok"]
    journal.append("handover_started", {"task": task("C")}, task_id="C")       # C's truck is at the door
    reply = send([task("A", 2, ("E01", "E03"))], 2, "m2")
    assert reply["ok"] and reply["result"]["withdrawn"] == ["B"], reply
    assert ids(store) == ["A", "C"] and store.task("A").escorts == ("E01", "E03")
    stale = send([task("A"), task("B"), task("C")], 1, "m3")
    assert not stale["ok"] and "older than version 2" in stale["error"]
    assert ids(store) == ["A", "C"] and store.task("A").version == 2, "a refused day changes nothing"
    assert send([task("D")], None, "m4")["ok"] and ids(store) == ["A", "C", "D"], "no schedule: merged as before"
