"""The half-year report judges each day at the complaint's site: terminals stamp lifecycle steps in UTC,
and a complaint received and replied to at 06:26 on 1 December in Shanghai (22:26 UTC on 30 November) is
received and resolved in the half due 15 June, not counted received in one half and resolved in none."""
from __future__ import annotations

import json
from datetime import date

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hq.complaints import ComplaintDesk, half_year
from hq.db import Database

DEADLINES = {"acknowledge_by": "2026-12-01", "reply_by": "2026-12-02", "outer_limit": "2027-03-01"}


def test_a_reply_early_on_the_first_of_december_in_shanghai_is_in_the_half_due_in_june(tmp_path):
    db = Database(str(tmp_path / "hq.db")).create_schema()
    db.run(lambda cur: cur.execute(
        "INSERT INTO hq_complaints (device, ref, site_id, received_at, channel, category, status, anonymous, "
        "deadlines, escalations, updated, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("dev-1", "C-1", "BR-001", "2026-12-01T06:26:00+08:00", "walk_in", "irregular_fees", "archived", 0,
         json.dumps(DEADLINES), "[]", "2026-11-30T22:27:10+00:00", None)))
    db.run(lambda cur: cur.execute(
        "INSERT INTO hq_complaint_steps (device, seq, ref, action, before_status, after_status, actor, source, at, "
        "params, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("dev-1", 5, "C-1", "reply", "handled", "replied", "head_office", "head_office",
         "2026-11-30T22:27:06.632869+00:00", "{}", None)))
    desk = ComplaintDesk(db, X25519PrivateKey.generate())
    june = desk.report(*half_year(date(2027, 6, 15)), date(2026, 12, 1))
    assert (june["received"], june["resolved"]) == (1, 1)
    december = desk.report(*half_year(date(2026, 12, 15)), date(2026, 12, 1))
    assert (december["received"], december["resolved"]) == (0, 0)
    db.close()
