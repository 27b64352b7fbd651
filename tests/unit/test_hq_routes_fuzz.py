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
from hypothesis import given
from hypothesis import strategies as st

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
