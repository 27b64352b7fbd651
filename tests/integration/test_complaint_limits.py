"""Issue 17 items 3-5 on real stacks: the complaint book on a real journal and sealed SQLite file (hour limits
reported once per state, escalations as alarm-class entries, the handling record's new fields sealed, the
progress lookup), and the running agent against a real mosquitto (an escalation reaches head office on the
urgent lane; head office's settings downlink changes the published hotline)."""
from __future__ import annotations

import json
import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from broker import mqtt_config
from mqtt_fixtures import broker  # noqa: F401 (a fixture)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.calendar_data import build_calendar
from agent.complaints import ComplaintBook, ComplaintError
from agent.journal import Journal
from agent.sealing import Sealer
from flows.workdays import DeadlineRules
from hq.sync import HeadOffice

TZ = ZoneInfo("Asia/Shanghai")
FRIDAY = datetime(2026, 11, 27, 16, 30, tzinfo=TZ)
FORM = {"channel": "walk_in", "category": "irregular_fees", "description": "多收手续费", "request": "退还",
        "name": "欧阳娜娜", "contact": "137-1234-5678"}


def at(d, hh, mm=0) -> datetime:
    return datetime(2026, 11, d, hh, mm, tzinfo=TZ)


@pytest.fixture
def book(tmp_path):
    j = Journal(tmp_path / "journal.db")
    yield ComplaintBook(j, Sealer(tmp_path / "data.key"), build_calendar(), DeadlineRules(), site_id="BR-001")
    j.close()


def kinds(book, kind: str) -> list[dict]:
    return [e.body for e in book.journal.entries() if e.kind == kind]


def test_near_due_and_overdue_states_are_journaled_once_each(book):
    ref = book.register(FORM, FRIDAY).ref
    assert book.check_due(at(28, 12)) == [] and kinds(book, "complaint_due") == []      # Saturday: nothing due
    due = book.check_due(at(30, 9, 5))                                                # Monday, 25 min before
    assert {(d.limit, d.state) for d in due} == {("pass_on", "near"), ("reply_by", "near")}
    book.check_due(at(30, 9, 10))                                                     # the same states again
    assert [(b["ref"], b["limit"], b["state"]) for b in kinds(book, "complaint_due")] == [
        (ref, "pass_on", "near"), (ref, "reply_by", "near")]
    book.check_due(at(30, 9, 31))
    sent = [(b["limit"], b["state"]) for b in kinds(book, "complaint_due")]
    assert sent[-1] == ("pass_on", "overdue") and len(sent) == 3
    assert book.due_now and all(d.ref == ref for d in book.due_now)
    assert "欧阳娜娜" not in json.dumps(kinds(book, "complaint_due"), ensure_ascii=False)


def test_escalation_is_an_alarm_class_entry_at_registration_and_later(book):
    media = book.register({**FORM, "channel": "media"}, FRIDAY)
    alarms = kinds(book, "alarm")
    assert [(a["alarm"], a["detail"]["ref"], a["detail"]["triggers"]) for a in alarms] == [
        ("complaint_escalation", media.ref, ["media"])]
    assert alarms[0]["detail"]["limits"]["urgent_response"] == at(27, 17, 30).isoformat()    # an hour, on the clock

    plain = book.register(FORM, FRIDAY).ref
    assert len(kinds(book, "alarm")) == 1                                             # an ordinary one raises nothing
    book.act(plain, "escalate", {"people": 3, "amount_yuan": 60_000}, "O01", at(27, 20))
    last = kinds(book, "alarm")[-1]
    assert last["detail"]["ref"] == plain and last["detail"]["triggers"] == ["group", "large_amount"]
    assert book.get(plain).escalations == ("group", "large_amount")
    before = len(list(book.journal.entries()))
    with pytest.raises(ComplaintError, match="no escalation trigger"):
        book.act(plain, "escalate", {"people": 4}, "O01", at(27, 20, 5))              # nothing new: refused
    for bad, msg in (({"people": "many"}, "escalation.people"), ({"crowd": 9}, "unknown field"),
                     ({"threat": "yes"}, "escalation.threat")):
        with pytest.raises(ComplaintError, match=msg):
            book.act(plain, "escalate", bad, "O01", at(27, 20, 6))
    with pytest.raises(ComplaintError, match="escalation.amount_yuan"):
        book.register({**FORM, "escalation": {"amount_yuan": -5}}, FRIDAY)
    assert len(list(book.journal.entries())) == before                                 # refusals change nothing
    assert "欧阳娜娜" not in json.dumps(kinds(book, "alarm"), ensure_ascii=False)


def test_the_handling_record_keeps_the_finding_in_clear_and_the_phone_and_opinion_sealed(book, tmp_path):
    ref = book.register(FORM, FRIDAY).ref
    for action, params in (("classify", {"complexity": "general", "validity": "valid"}), ("transfer", {"to": "运营部"}),
                           ("investigate", {})):
        book.act(ref, action, params, "O01", at(27, 17))
    with pytest.raises(ComplaintError, match="responsibility must be one of at_fault, not_at_fault, shared"):
        book.act(ref, "handle", {"notes": "n", "responsibility": "perhaps"}, "O01", at(27, 17))
    book.act(ref, "handle", {"notes": "已退费", "responsibility": "at_fault", "handler_phone": "021-88886666",
                             "staff_opinion": "柜员张某通报批评"}, "O01", at(27, 17))
    assert book.get(ref).responsibility == "at_fault"
    texts = book.details(ref)["texts"][-1]
    assert texts["handler_phone"] == "021-88886666" and texts["staff_opinion"] == "柜员张某通报批评"
    handled = [b for b in kinds(book, "complaint_transition") if b["action"] == "handle"][0]
    assert handled["params"]["responsibility"] == "at_fault"
    assert "88886666" not in json.dumps(handled) and "通报批评" not in json.dumps(handled, ensure_ascii=False)
    book.journal.close()
    raw = (tmp_path / "journal.db").read_bytes()
    assert b"88886666" not in raw and "通报批评".encode() not in raw                  # sealed at rest


def test_progress_lookup_needs_the_reference_and_the_contacts_last_four_digits(book):
    ref = book.register(FORM, FRIDAY).ref
    anonymous = book.register({**FORM, "name": "", "contact": ""}, FRIDAY).ref
    now = at(30, 10)
    found = book.lookup(ref, "5678", now)
    assert found == {"ref": ref, "status": "registered", "promised_reply": book.get(ref).deadlines.reply_by}
    assert book.lookup(anonymous, "0000", now) is None            # nothing to match: nobody can probe it
    for ref_, digits in ((ref, "1234"), ("BR-001-TS20261127-099", "5678"), (ref, "567"), (ref, 5678)):
        assert book.lookup(ref_, digits, now) is None
    assert book.lookup(ref, "5678", now) is None                  # five wrong pairs: paused, even for the right one
    assert book.lookup(ref, "5678", at(30, 10, 11))["status"] == "registered"         # ten minutes on
    logged = json.dumps(kinds(book, "complaint_lookup"))
    assert "5678" not in logged and "1234" not in logged


# --- the running agent and head office ---
def urgent_witness(broker) -> tuple[mqtt.Client, list]:
    """A head-office session on the urgent lane only: what arrives there came at once, not with the stream."""
    cert, key = broker.pki.issue("hq")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hq-urgent-witness", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(broker.pki.ca_file), certfile=str(cert), keyfile=str(key))
    got: list = []
    client.on_message = lambda c, u, msg: got.append(json.loads(msg.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    subscribed: list = []
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.append(codes)
    client.loop_start()
    wait(client.is_connected)
    client.subscribe("ht/v1/+/urgent", qos=1)
    wait(lambda: subscribed)
    return client, got


def wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def test_an_escalated_complaint_reaches_head_office_at_once_on_the_urgent_lane(agent, broker):
    witness, urgent = urgent_witness(broker)
    mqtt_config(broker, "dev-cmp-1", "BR-060", agent.state_dir)
    agent.start("--config", str(agent.state_dir / "agent.toml"))
    try:
        assert agent.post("api/kiosk/enter", {})["ok"]
        ref = agent.post("api/kiosk/complaints", {**FORM, "channel": "media"})["ref"]
        escalation = lambda: [m["entry"] for m in urgent if m["entry"]["kind"] == "alarm"     # noqa: E731
                              and m["entry"]["body"]["alarm"] == "complaint_escalation"]
        wait(escalation)
        entry = escalation()[0]
        assert entry["body"]["detail"]["ref"] == ref and entry["body"]["detail"]["triggers"] == ["media"]
        assert "欧阳娜娜" not in json.dumps(urgent, ensure_ascii=False) and "5678" not in json.dumps(entry)
    finally:
        witness.loop_stop()
        witness.disconnect()


def test_head_offices_settings_downlink_sets_the_hotline_on_kiosk_and_receipt(agent, broker):
    cert, key = broker.pki.issue("hq")
    office = HeadOffice("127.0.0.1", broker.port, ca_file=broker.pki.ca_file, cert_file=cert, key_file=key,
                        client_id="hq", resend_after=1.0).start()
    try:
        mqtt_config(broker, "dev-cmp-2", "BR-061", agent.state_dir)
        agent.start("--config", str(agent.state_dir / "agent.toml"))
        wait(lambda: office.log("dev-cmp-2").state == "online")
        reply = office.wait_reply(office.send("dev-cmp-2", "config", {"site_id": "BR-061", "settings": {
            "complaints.hotline": "95588", "complaints.appeal_body": "当地金融监管部门（12378）"}}))
        assert reply["ok"] is True, reply
        wait(lambda: agent.view()["settings"].get("complaints.hotline") == "95588")
        assert agent.post("api/kiosk/enter", {})["ok"]
        with urllib.request.urlopen(agent.url + "api/kiosk/options", timeout=5) as r:
            options = json.load(r)
        assert options["contacts"] == {"hotline": "95588", "appeal_body": "当地金融监管部门（12378）"}
        receipt = agent.post("api/kiosk/complaints", FORM)
        assert "投诉电话：95588" in receipt["lines"] and "对处理结果不满意，可向当地金融监管部门（12378）反映" in receipt["lines"]
        bad = office.wait_reply(office.send("dev-cmp-2", "config", {"site_id": "BR-061", "settings": {
            "complaints.hours": {"pass_on": 3}}}))
        assert bad["ok"] is False                       # the rules' tables are set in the file, not by a scalar downlink
    finally:
        office.stop()


@settings(max_examples=150, deadline=None)
@given(ref=st.one_of(st.none(), st.integers(), st.text(max_size=120), st.just("\ud800")),
       digits=st.one_of(st.none(), st.integers(), st.text(max_size=8), st.just("١٢٣٤"), st.just("\udfff"),
                        st.text(alphabet=st.characters(categories=["Nd"]), min_size=4, max_size=4)))
def test_any_lookup_input_reveals_nothing_and_raises_nothing(tmp_path_factory, ref, digits):
    folder = tmp_path_factory.mktemp("lookup")
    j = Journal(folder / "journal.db")
    try:
        b = ComplaintBook(j, Sealer(folder / "data.key"), build_calendar(), DeadlineRules(), site_id="BR-001")
        real = b.register(FORM, FRIDAY).ref
        before = b.get(real).to_dict()
        out = b.lookup(ref, digits, at(30, 10))
        assert out is None or (ref == real and digits == "5678")
        assert b.get(real).to_dict() == before
    finally:
        j.close()
