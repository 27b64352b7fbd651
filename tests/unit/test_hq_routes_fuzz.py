"""Outside bytes at the route board and the voice settings (issue 16): whatever the `date` parameter, the
settings body or the announcement query, the answer is the day's routes, the settings stored, or a clear
4xx naming what is wrong — never a 500 — and a refused settings body changes nothing. The real app on a real
port with real SQLite (the alarm board's fuzz fixture, tests/unit/test_hq_web_fuzz.py)."""
from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hq import routes
from hq.web.auth import CSRF_HEADER
from hq.web.routes import parse_day, parse_voice_settings
from tests.unit.test_hq_web_fuzz import FUZZ, page  # noqa: F401 (fixture: the app with a logged-in monitor)


def get(opener, url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def stored(db_url: str) -> list[tuple]:
    conn = sqlite3.connect(db_url)
    try:
        return conn.execute("SELECT name, confirmations, completions FROM hq_routes_voice").fetchall()
    finally:
        conn.close()


@FUZZ
@given(st.text(max_size=40) | st.dates().map(date.isoformat))
def test_any_date_is_the_day_s_routes_or_a_400_naming_the_date(page, value):
    base, cookie, _, _, opener = page
    status, body = get(opener, f"{base}/api/routes?{urllib.parse.urlencode({'date': value})}", headers={"Cookie": cookie})
    assert status in (200, 400), status
    if status == 200:
        found = json.loads(body)
        assert found["routes"] == [] and found["day"] == (value or found["day"])     # no schedule in this database
    else:
        assert body.decode().startswith("date:")


@FUZZ
@given(st.binary(max_size=200) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["confirmation", "completion", "x"]), kids, max_size=3), max_leaves=6).map(
    lambda v: json.dumps(v).encode()))
def test_any_settings_body_is_stored_whole_or_refused_changing_nothing(page, raw):
    base, cookie, csrf, db_url, opener = page
    before = stored(db_url)
    status, body = get(opener, base + "/api/voice/settings", raw, {"Cookie": cookie, CSRF_HEADER: csrf,
                                                                 "Content-Type": "application/json"})
    assert status in (200, 400), status
    if status == 400:
        assert stored(db_url) == before and body
    else:
        sent = json.loads(raw)
        assert json.loads(body) == sent
        assert stored(db_url) == [("monitor", sent["confirmation"], sent["completion"])]


def test_settings_without_the_session_s_csrf_token_are_refused(page):
    base, cookie, _, db_url, opener = page
    before = stored(db_url)
    status, _ = get(opener, base + "/api/voice/settings", b'{"confirmation": true, "completion": true}',
                    {"Cookie": cookie, "Content-Type": "application/json"})
    assert status == 403 and stored(db_url) == before


@FUZZ
@given(st.text(max_size=60), st.text(max_size=60))
def test_any_announcement_query_without_such_an_entry_is_not_found(page, device, entry_id):
    base, cookie, _, _, opener = page
    query = urllib.parse.urlencode({"device": device, "id": entry_id})
    assert get(opener, f"{base}/api/voice/announce?{query}", headers={"Cookie": cookie})[0] == 404


@FUZZ
@given(st.text(max_size=60), st.text(max_size=60))
def test_any_route_skip_voice_query_without_such_a_skip_is_not_found(page, task, site):
    base, cookie, _, _, opener = page
    query = urllib.parse.urlencode({"task": task, "site": site})
    assert get(opener, f"{base}/api/voice/route_skip?{query}", headers={"Cookie": cookie})[0] == 404


@given(st.dates())
def test_every_calendar_day_is_taken_as_written(day):
    assert parse_day(day.isoformat()) == day.isoformat()


@pytest.mark.parametrize("value, why", [("2026-02-30", "not a day of the calendar"), ("20261130", "YYYY-MM-DD"),
                                        ("2026-11-30T00:00", "YYYY-MM-DD"), ("٢٠٢٦-١١-٣٠", "YYYY-MM-DD")])
def test_a_bad_date_is_named(value, why):
    with pytest.raises(ValueError, match=why):
        parse_day(value)


@pytest.mark.parametrize("data, why", [([], "give exactly"), ({"confirmation": True}, "give exactly"),
                                       ({"confirmation": 1, "completion": True}, "confirmation must be true or false"),
                                       ({"confirmation": True, "completion": True, "x": 1}, "give exactly")])
def test_bad_settings_are_named(data, why):
    with pytest.raises(ValueError, match=why):
        parse_voice_settings(data)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(
                         ["site_id", "report", "people", "decisions", "type", "person_id", "box_id", "role",
                          "verified_at", "ended_at", "arrived_at", "outcome", "boxes_counted", "plate", "x"]),
                         kids, max_size=5), max_leaves=12)


_BODY = _JSON | st.fixed_dictionaries({}, optional={
    "site_id": _JSON,
    "report": st.fixed_dictionaries({}, optional=dict.fromkeys(
        ["people", "ended_at", "arrived_at", "outcome", "boxes_counted", "site_id", "plate"], _JSON)) | _JSON,
    "decisions": _JSON | st.lists(_JSON | st.dictionaries(st.sampled_from(["type", "person_id", "box_id"]), _JSON | st.sampled_from(
        ["EscortVerified", "BoxAccepted", "OfficerConfirmed", "TaskRestarted"])), max_size=4)})


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["dev-1", "dev-2"]), st.sampled_from(routes.KINDS),
                          st.sampled_from(["T1", "T2"]), _BODY,
                          st.sampled_from(["2026-11-30T01:00:00.000Z", "not a time", ""])), max_size=12))
def test_whatever_a_terminal_s_entry_bodies_hold_the_board_reads_them_or_passes_them_by(rows):
    """Entry bodies are the terminals' bytes (chain-checked, not trusted): odd shapes count for nothing."""
    numbered = [(device, n, ts, kind, task, json.dumps(body)) for n, (device, kind, task, body, ts) in enumerate(rows, 1)]
    found = routes._records(numbered, {"dev-1": "BR-001"})
    for (task, site), stop in found.items():
        assert task in ("T1", "T2") and isinstance(site, str)
        assert all(isinstance(b, str) for b in stop.boxes)
    for device, n, ts, kind, task, body in numbered:
        said = routes.announcement({"kind": kind, "body": json.loads(body)})
        assert said is None or said[0] in routes.ANNOUNCED
