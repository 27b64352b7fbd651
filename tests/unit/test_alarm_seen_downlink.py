"""The terminal's side of head office's acknowledgement (issue 16): the `alarm_seen` command must name an
alarm of this device; it is journaled like every downlink, once; a silent (duress) alarm is recorded but
marked never to be shown. Real journal and store, the real Downlink handler."""
from __future__ import annotations

import json

import pytest

from agent.journal import Journal
from agent.sealing import Sealer
from agent.store import Store
from agent.sync.downlink import Downlink
from protocol import messages

SITE = "BR-001"


@pytest.fixture
def device(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    store = Store(journal.db, Sealer(tmp_path / "device.key"), tmp_path / "photos")
    commands = []
    downlink = Downlink(journal, store, device="dev-1", site_id=SITE, on_command=commands.append)
    wrong_box = journal.append("alarm", {"alarm": "wrong_box", "silent": False, "blocking": True, "site_id": SITE,
                                         "detail": {"box_id": "XB2-01", "destination": "BR-002"}}, task_id="T1")
    duress = journal.append("alarm", {"alarm": "duress", "silent": True, "blocking": False, "site_id": SITE,
                                      "detail": {"person_id": "E02"}}, task_id="T1")
    other = journal.append("box_read", {"tag": "X"}, task_id="T1")
    yield downlink, journal, commands, {"wrong_box": wrong_box.seq, "duress": duress.seq, "other": other.seq}
    journal.close()


def seen(seq: int, msg_id: str = "m1", note: str = "已派员处理") -> bytes:
    return messages.encode({"v": 1, "msg_id": msg_id, "site_id": SITE, "command": "alarm_seen", "seq": seq,
                            "entry_id": f"dev-1:{seq}", "note": note})


def accepted(journal: Journal) -> list[dict]:
    return [e.body for e in journal.entries() if e.kind == "downlink_accepted"]


def test_an_acknowledged_alarm_is_journaled_once_and_shown(device):
    downlink, journal, commands, seqs = device
    reply = downlink.handle("ht/v1/dev-1/down/command", "command", seen(seqs["wrong_box"]))
    assert reply["ok"] and reply["result"]["shown"] is True and reply["result"]["note"] == "已派员处理"
    again = downlink.handle("ht/v1/dev-1/down/command", "command", seen(seqs["wrong_box"]))
    assert again["ok"] and again["duplicate"]
    assert [b["result"]["entry_id"] for b in accepted(journal)] == [f"dev-1:{seqs['wrong_box']}"]
    assert [c["command"] for c in commands] == ["alarm_seen"]      # handed on once, not on the redelivery


def test_a_silent_alarm_is_recorded_but_never_shown(device):
    downlink, journal, _, seqs = device
    reply = downlink.handle("ht/v1/dev-1/down/command", "command", seen(seqs["duress"], "m2"))
    assert reply["ok"] and reply["result"]["shown"] is False


@pytest.mark.parametrize("which", ["other", "missing"])
def test_an_acknowledgement_of_something_not_an_alarm_is_refused_and_changes_nothing(device, which):
    downlink, journal, commands, seqs = device
    before = journal.last_seq()
    seq = seqs["other"] if which == "other" else before + 50
    reply = downlink.handle("ht/v1/dev-1/down/command", "command", seen(seq, "m3"))
    assert not reply["ok"] and f"names entry {seq}, which is not an alarm" in reply["error"]
    assert journal.last_seq() == before and commands == []


def test_the_schema_asks_for_what_the_terminal_needs():
    payload = json.loads(seen(3))
    del payload["note"]
    with pytest.raises(messages.MessageError, match="'note' is a required property"):
        messages.check("command", payload)
