"""Outside bytes at the records page (issue 16): whatever search form or path a browser sends, the answer is
a JSON list or a clear 4xx naming the field — never a 500 — and an unknown handover is a 404. The real app
on a real port, logged in as a monitor (test_hq_web_fuzz's `page`)."""
from __future__ import annotations

import urllib.parse

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_hq_web_fuzz import FUZZ, call, page  # noqa: F401 (page: a fixture)

FIELDS = ["date", "site", "truck", "person", "box", "other"]


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=120) | st.dates().map(str), max_size=6))
def test_any_search_form_is_a_list_or_a_400(page, form):
    base, cookie, _, _, opener = page
    status = call(opener, f"{base}/api/records?{urllib.parse.urlencode(form)}", headers={"Cookie": cookie})
    assert status in (200, 400), status


@FUZZ
@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80), st.sampled_from(["", "/export"]))
def test_any_record_path_is_not_found_never_an_error(page, device, handover, tail):
    base, cookie, _, _, opener = page
    path = f"/api/records/{urllib.parse.quote(device, safe='')}/{urllib.parse.quote(handover, safe='')}{tail}"
    assert call(opener, base + path, headers={"Cookie": cookie}) == 404


@FUZZ
@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=100))
def test_any_snapshot_or_photo_path_is_refused_cleanly(page, device, digest):
    base, cookie, _, _, opener = page
    quoted = urllib.parse.quote(device, safe=""), urllib.parse.quote(digest, safe="")
    # this app has no records key: faces cannot be opened at all, and it says so (404: a path no route takes)
    assert call(opener, f"{base}/api/snapshot/{quoted[0]}/{quoted[1]}", headers={"Cookie": cookie}) in (404, 503)
    assert call(opener, f"{base}/api/person-photo/{quoted[0]}", headers={"Cookie": cookie}) == 404


def test_a_bad_date_is_named(page):
    base, cookie, _, _, opener = page
    assert call(opener, f"{base}/api/records?date=31.12.2026", headers={"Cookie": cookie}) == 400
