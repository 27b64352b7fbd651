"""Fuzzing what the kiosk and staff forms accept (SPEC §6): a request body from the page, the complaint
form, a draft, a complaint's lifecycle step and the staff actions signed by an officer. Whatever arrives,
the outcome is the parser's own refusal naming what is wrong (BadRequest, ComplaintError,
TransitionRefused, the staff machine's Refused) or a value that can be sealed and journaled.

The oracles run >= 1,000,000 inputs each in tools/fuzz_long.py; the real aiohttp app is fuzzed in
tests/integration/test_kiosk_http_fuzz.py. Found here: a lone surrogate (JSON "\\ud800") passed every check
and crashed sealing or the journal (a bare 500), and a body nested 5,000 deep raised RecursionError.
"""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.complaints import FORM_LIMITS, ComplaintBook, ComplaintError, check_draft, read_form
from agent.journal import Journal, entry_hash
from agent.screen.web import BadRequest, parse_body
from agent.screen.server import _str as read_text
from agent.sealing import Sealer
from flows import complaint as fc
from flows import staff as fs
from flows.workdays import DeadlineRules, WorkCalendar

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone(timedelta(hours=8)))
CALENDAR, RULES = WorkCalendar(), DeadlineRules()
FORM = {"channel": "walk_in", "category": "irregular_fees", "description": "办理汇款被多收手续费",
        "request": "退还手续费", "name": "欧阳娜娜", "contact": "13712345678", "counter": "2号窗口",
        "staff_concerned": ["O02"], "first_responder": "O01"}


def storable(value) -> None:
    """What an accepted input becomes must seal (UTF-8 JSON) and hash into the journal."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")
    entry_hash(1, "2026-11-30T02:00:00.000Z", "fuzz", None, {"v": value}, "0" * 64)


# --- oracles --------------------------------------------------------------------------------------

def form_oracle(form) -> bool:
    """The complaint form: ComplaintBook.register's checks, in its order, without the database."""
    try:
        fields = read_form(form)
        complaint = fc.Complaint.register("R-1", NOW, fields.channel, fields.category, calendar=CALENDAR,
                                          rules=RULES, staff_concerned=fields.staff_concerned,
                                          first_responder=fields.first_responder)
    except (ComplaintError, fc.TransitionRefused) as e:
        assert str(e)
        return False
    for key, limit in FORM_LIMITS.items():
        assert isinstance(fields.personal[key], str) and len(fields.personal[key]) <= limit
    assert fields.personal["description"].strip() and fields.personal["request"].strip()
    storable(fields.personal)
    storable(complaint.to_dict())
    return True


def draft_oracle(draft) -> bool:
    try:
        check_draft(draft)
    except ComplaintError as e:
        assert str(e)
        return False
    storable(draft)
    return True


class Book:
    """A real ComplaintBook (real journal, sealer) holding one complaint in every status, so any staff
    step can be tried against any state; steps are tried on copies and never written."""

    def __init__(self):
        d = Path(tempfile.mkdtemp(prefix="fuzz-kiosk-"))
        self.book = ComplaintBook(Journal(d / "journal.db"), Sealer(d / "device.key"), CALENDAR, RULES,
                                  site_id="branch-01")
        self.states: list[fc.Complaint] = []
        paths = {"classified": [("classify", {"complexity": "general", "validity": "valid"})],
                 "transferred": [("transfer", {"to": "运营部"})], "investigating": [("investigate", {})],
                 "handled": [("handle", {"notes": "已退费"})], "replied": [("reply", {"reply": "已回复"})],
                 "satisfied": [("satisfaction", {"satisfied": True})], "archived": [("archive", {})]}
        steps: list[tuple[str, dict]] = []
        for status, more in paths.items():
            steps += more
            self.states.append(self._complaint(steps))
        self.states.append(self._complaint([]))
        self.states.append(self._complaint([("withdraw", {"reason": "已解决", "voluntary": True})]))
        self.states.append(self._complaint([("not_accept", {"approver": "O03", "reason": "非本行业务"})]))
        self.decided = self.states[4].ref             # replied: a repeat of it is a repeat after a decision

    def _complaint(self, steps) -> fc.Complaint:
        ref = self.book.register(FORM, NOW).ref
        for action, params in steps:
            self.book.act(ref, action, params, "O01", NOW)
        return self.book.get(ref)

    def act(self, state: int, action, params, actor) -> bool:
        """book.act's checks (ComplaintBook._event, then the lifecycle) on a copy of one complaint."""
        c = fc.Complaint.from_dict(self.states[state % len(self.states)].to_dict())
        try:
            if not isinstance(action, str) or action not in fc.ACTIONS:   # the route's action is URL text
                raise ComplaintError("unknown action")
            if not isinstance(params, dict):
                raise ComplaintError("params must be a JSON object")
            event = self.book._event(action, params, actor, c)
            transition = c.handle(event, NOW, calendar=CALENDAR, rules=RULES)
        except (ComplaintError, fc.TransitionRefused) as e:
            assert str(e)
            return False
        assert transition.after is c.status
        storable({k: v for k, v in vars(event).items() if not isinstance(v, fc.Status)})
        storable(c.to_dict())
        return True


STAFF_ROUTES = {   # the staff actions' bodies: (purpose, [(field, limit)]) as server.py reads them
    "/api/disposition": (fs.Purpose.DISPOSITION, [("code", 40), ("text", 500), ("resolution", 10)]),
    "/api/manual-arrival": (fs.Purpose.MANUAL_ARRIVAL, [("task_id", 80)]),
    "/api/enrolment": (fs.Purpose.ENROLMENT, [("person_id", 80), ("finger", 20)]),
}
CONTEXTS = [fs.Context(), fs.Context(handover_task="T1", risk_handling=True, open_alarms=frozenset({"wrong_box"})),
            fs.Context(handover_task="T1", at_arrival=True, open_tasks=frozenset({"T1", "T2"})),
            fs.Context(open_tasks=frozenset({"T1"}), people=frozenset({"E1", "O01"}))]
ROUTES = ["/api/kiosk/complaints", "/api/kiosk/draft", "/api/staff/complaints/action", *STAFF_ROUTES]


def body_oracle(book: Book, route: str, raw: bytes, pick: int = 0) -> bool:
    """Raw request bytes as a route of the screen reads them: parse_body, then the route's own checks."""
    try:
        body = parse_body(raw)
    except BadRequest as e:
        assert e.status == 400 and json.loads(e.text)["error"]
        return False
    storable(body)
    if route == "/api/kiosk/complaints":
        return form_oracle(body)
    if route == "/api/kiosk/draft":
        return draft_oracle(body.get("draft"))
    if route == "/api/staff/complaints/action":
        return book.act(pick, body.get("action"), body.get("params", body), "O01")
    purpose, fields = STAFF_ROUTES[route]
    try:
        params = {k: read_text(body, k, n) for k, n in fields}
    except BadRequest as e:
        assert json.loads(e.text)["error"]
        return False
    staff = fs.Staff()
    decisions = staff.handle(fs.Request(purpose, params, CONTEXTS[pick % len(CONTEXTS)]), NOW)
    if any(isinstance(d, fs.Refused) for d in decisions):
        return False
    storable(staff.snapshot())                  # journaled with the pending action, signed later
    return True


# --- inputs ---------------------------------------------------------------------------------------

REFS = ["branch-01-TS20261130-005", "branch-01-TS20261130-001"]    # Book's replied and classified complaints
texts = st.text(max_size=12) | st.sampled_from(["", " ", "\ud800", "a\udfffb", "\x00", "投诉", "x" * 2001, *REFS]) \
    | st.text(st.characters(blacklist_categories=()), max_size=6)
scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | texts
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3),
                      max_leaves=8)
FIELDS = sorted({*FORM, "draft", "action", "params", "notes", "reply", "reason", "to", "approver", "complexity",
                 "validity", "satisfied", "voluntary", "original_ref", "appeal_to", "code", "text", "resolution",
                 "task_id", "person_id", "finger", "handler", "cause", "remedy"})
forms = st.builds(lambda base, changes: {**base, **changes}, st.sampled_from([FORM, {}]),
                  st.dictionaries(st.sampled_from(FIELDS) | texts, values, max_size=4))


@FUZZ
@given(forms | values)
def test_any_complaint_form_is_refused_by_name_or_storable(form):
    form_oracle(form)


@FUZZ
@given(st.dictionaries(texts, values, max_size=5) | values)
def test_any_draft_is_refused_by_name_or_storable(draft):
    draft_oracle(draft)


BOOK = None


ACTORS = ["O01", "O02", "O03", "", "head_office", "M01"]     # the signed-in officer or head office, never typed


@FUZZ
@given(st.integers(0, 20), st.sampled_from(sorted(fc.ACTIONS)) | texts, forms | values, st.sampled_from(ACTORS))
def test_any_staff_step_on_any_complaint_is_refused_by_name_or_storable(state, action, params, actor):
    global BOOK
    BOOK = BOOK or Book()
    BOOK.act(state, action, params, actor)


raw_bodies = st.one_of(
    st.binary(max_size=200),
    forms.map(lambda f: json.dumps(f).encode()),
    forms.map(lambda f: json.dumps({"draft": f, "action": "handle", "params": f}).encode()),
    st.integers(0, 6000).map(lambda n: b'{"a":' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from([b'{"description": "\\ud800"}', b'{"\\udc00": 1}', b"\xff\xfe{}", b'{"a": 1e999}',
                     b'{"a": ' + b"9" * 5000 + b"}", b"[]", b"null"]))


@FUZZ
@given(st.sampled_from(ROUTES), raw_bodies, st.integers(0, 20))
def test_any_request_body_on_any_form_route_is_refused_by_name_or_storable(route, raw, pick):
    global BOOK
    BOOK = BOOK or Book()
    body_oracle(BOOK, route, raw, pick)


# --- the bugs the fuzz found, as they were met ----------------------------------------------------

@pytest.mark.parametrize("field", ["description", "request", "name", "contact", "counter"])
def test_an_unpaired_surrogate_in_the_complaint_form_is_refused_by_name_and_changes_nothing(tmp_path, field):
    journal = Journal(tmp_path / "journal.db")
    book = ComplaintBook(journal, Sealer(tmp_path / "device.key"), CALENDAR, RULES)
    with pytest.raises(ComplaintError, match=field):
        book.register({**FORM, field: "多收\ud800手续费"}, NOW)
    with pytest.raises(ComplaintError, match="first_responder"):
        book.register({**FORM, "first_responder": "O\udc01"}, NOW)
    with pytest.raises(ComplaintError, match="staff_concerned"):
        book.register({**FORM, "staff_concerned": ["O\ud801"]}, NOW)
    with pytest.raises(ComplaintError, match="draft field name"):
        book.save_draft({"name": "\ud800"}, NOW)
    assert book.all() == [] and list(journal.entries()) == []
    assert book.load_draft(NOW, timedelta(minutes=5)) is None
    assert book.register(FORM, NOW).ref                 # and the book still works


def test_a_first_responder_that_is_not_text_is_refused_not_dropped(tmp_path):
    book = ComplaintBook(Journal(tmp_path / "journal.db"), Sealer(tmp_path / "device.key"), CALENDAR, RULES)
    for value in (0, False, [], {}, 7, ["O01"]):
        with pytest.raises(ComplaintError, match="first_responder"):
            book.register({**FORM, "first_responder": value}, NOW)
    assert book.all() == []


@pytest.mark.parametrize("raw, words", [
    (b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}", "nest"),
    (b'{"description": "\\ud800"}', "description"),
    (b'{"\\udc00x": 1}', "surrogate"),
    (b"\xff{}", "UTF-8"),
    (b"[1]", "object"),
])
def test_a_request_body_the_screen_cannot_store_is_a_bad_request_naming_why(raw, words):
    with pytest.raises(BadRequest) as e:
        parse_body(raw)
    assert words in json.loads(e.value.text)["error"]
