"""Poison on the MQTT link (issue 19 items 3, 4, 5, 13; issue 13 item 4), against a real mosquitto.

A downlink that cannot be used is answered and acknowledged, never retried forever; settings from head
office take effect or are refused by name, all or nothing; head office sets aside an entry it cannot
read, raises an alarm and keeps reading every stream.
"""
from __future__ import annotations

import json
import logging

import pytest

from agent.config import load_config
from protocol.chain import GENESIS_HASH, entry_hash
from agent.sync import Sync
from protocol import messages
from test_sync import SITE, _raw_client, _task, broker, device, hq, start_sync, wait_until  # noqa: F401

pytestmark = pytest.mark.mqtt


def _online(hq):
    wait_until(lambda: hq.log("dev-a").state == "online", 10, "the device to come online")


def test_a_tasks_downlink_with_wrongly_typed_box_keys_is_answered_and_not_redelivered(hq, device):
    config, journal, store = device
    sync = start_sync(device)
    _online(hq)
    before = journal.last_seq()
    bad = hq.wait_reply(hq.send("dev-a", "tasks", {"site_id": SITE, "tasks": [{**_task("T-1"), "box_keys": ["04AA"]}]}))
    assert bad["ok"] is False and "box_keys" in bad["error"], bad
    assert store.task("T-1") is None and journal.last_seq() == before
    # Acknowledged: the next message is handled, and the bad one never comes back.
    good = hq.wait_reply(hq.send("dev-a", "tasks", {"site_id": SITE, "tasks": [_task("T-2")]}))
    assert good["ok"] is True and store.task("T-2") is not None
    sync.stop()
    seen = len(hq.reply_log)
    sync = start_sync(device)                                   # reconnect: nothing redelivered
    _online(hq)
    assert hq.wait_reply(hq.send("dev-a", "command", {"site_id": SITE, "command": "publish_health"}))["ok"]
    assert [r["msg_id"] for r in hq.reply_log[seen:]] == [r["msg_id"] for r in hq.reply_log[-1:]]
    sync.stop()


def test_settings_from_head_office_take_effect_or_are_refused_by_name(hq, device):
    config, journal, store = device
    sync = start_sync(device)
    _online(hq)
    settings = {"screen.language": "en", "site.min_escorts": 3, "screen.idle_timeout_seconds": 30}
    ok = hq.wait_reply(hq.send("dev-a", "config", {"site_id": SITE, "settings": settings}))
    assert ok["ok"] is True, ok
    assert ok["result"]["takes_effect"] == {"screen.language": "now", "site.min_escorts": "next_handover",
                                            "screen.idle_timeout_seconds": "now"}
    now = sync.downlink.config
    assert (now.screen.language, now.site.min_escorts, now.screen.idle_timeout_seconds) == ("en", 3, 30)
    again = load_config(config.source)                          # a restart applies them too
    assert (again.site.min_escorts, again.screen.idle_timeout_seconds) == (3, 30)
    wait_until(lambda: (hq.log("dev-a").health or {}).get("settings", {}).get("site.min_escorts") == 3, 10,
               "health to report the new setting")

    for bad, named in [
        ({"site.min_escorts": 1}, "site.min_escorts: 1 is not allowed; expected an integer from 2 to 10"),
        ({"site.min_escorts": "4"}, "site.min_escorts: '4' is not allowed"),
        ({"screen.idle_timeout_seconds": 5}, "screen.idle_timeout_seconds"),
        ({"mqtt.host": "evil.example"}, "mqtt.host: may not be set from head office"),
        ({"device.id": "other"}, "device.id: may not be set from head office"),
        ({"colour": "red"}, "colour: unknown setting"),
        ({"screen.language": "zh-CN", "site.max_failed_attempts": 99}, "site.max_failed_attempts"),
    ]:
        seq = journal.last_seq()
        reply = hq.wait_reply(hq.send("dev-a", "config", {"site_id": SITE, "settings": bad}))
        assert reply["ok"] is False and named in reply["error"], (bad, reply)
        assert sync.downlink.config == now and journal.last_seq() == seq      # all or nothing
    assert load_config(config.source).screen.language == "en"
    sync.stop()


def test_deeply_nested_settings_are_refused_before_parsing(hq, device):
    config, journal, store = device
    sync = start_sync(device)
    _online(hq)
    deep = b'{"v":1,"msg_id":"deep-1","site_id":"%s","settings":{"a":%s1%s}}' % (SITE.encode(), b"[" * 990, b"]" * 990)
    hq.send("dev-a", "config", {}, raw=deep)
    reply = hq.wait_for_reply_where(lambda r: r["topic"].endswith("/down/config"))
    assert reply["ok"] is False and "nested" in reply["error"]
    assert all(e.kind != "downlink_accepted" for e in journal.entries())
    sync.stop()


def _entry(device: str, seq: int, body: dict, prev: str) -> dict:
    ts = "2026-11-23T01:00:00.000Z"
    return {"id": f"{device}:{seq}", "seq": seq, "ts": ts, "kind": "box_read", "task_id": None, "body": body,
            "prev_hash": prev, "hash": entry_hash(seq, ts, "box_read", None, body, prev)}


def test_head_office_sets_aside_what_it_cannot_read_and_keeps_reading_every_stream(broker, hq, device):
    config, journal, store = device
    sync = start_sync(device)
    _online(hq)
    rogue, events = _raw_client(broker, "dev-b")
    try:
        wait_until(rogue.is_connected, 10, "device B to connect")
        # 5,000 levels: no JSON parser reads it without recursing past the limit.
        rogue.publish("ht/v1/dev-b/journal", b'{"v":1,"device":"dev-b","entries":[' + b"[" * 5000 + b"]" * 5000
                      + b"]}", qos=1)
        deep: object = 1
        for _ in range(100):
            deep = [deep]
        first = _entry("dev-b", 1, {"nested": deep}, GENESIS_HASH)
        second = _entry("dev-b", 2, {"n": 2}, first["hash"])
        rogue.publish("ht/v1/dev-b/journal", json.dumps({"v": 1, "device": "dev-b", "entries": [first, second]}),
                      qos=1)
        wait_until(lambda: hq.log("dev-b").last_seq == 2, 20, "dev-b's stream to go on after the deep entry")
        assert [q["seq"] for q in hq.log("dev-b").quarantined] == [None, 1]
        assert sum(1 for d, e in hq.alarms if d == "dev-b" and e["body"]["alarm"] == "entry_quarantined") == 2
        for n in range(3):                                        # every other device's stream goes on
            journal.append("box_read", {"n": n})
        assert hq.wait_for("dev-a", journal.last_seq(), 20), f"dev-a stopped at {hq.log('dev-a').last_seq}"
    finally:
        rogue.loop_stop()
        rogue.disconnect()
    sync.stop()


def test_a_refused_personnel_downlink_names_no_one_in_the_log(hq, device, caplog):
    config, journal, store = device
    sync = start_sync(device)
    _online(hq)
    person = {"person_id": "E9", "name": ["赵秘密", "钱守押运"], "role": "escort"}
    with caplog.at_level(logging.DEBUG):
        reply = hq.wait_reply(hq.send("dev-a", "personnel", {"site_id": SITE, "people": [person]}))
    assert reply["ok"] is False and "people/0/name" in reply["error"], reply
    text = caplog.text + json.dumps(reply, ensure_ascii=False)
    assert "赵秘密" not in text and "钱守押运" not in text
    sync.stop()


def test_schema_errors_say_where_and_which_rule_never_the_value():
    with pytest.raises(messages.MessageError) as e:
        messages.check("personnel", {"v": 1, "msg_id": "m", "site_id": "s",
                                     "people": [{"person_id": "E1", "name": ["王五"], "role": "escort"}]})
    assert "people/0/name" in str(e.value) and "王五" not in str(e.value)


def test_an_outage_is_reported_and_the_link_returns_as_soon_as_the_broker_does(broker, hq, device):
    """Issue 19 item 10. A first retry 30 s out: only noticing the broker's return can reconnect sooner."""
    config, journal, store = device
    links: list[tuple[bool, str | None]] = []
    sync = Sync(config, journal, store, backoff=(30.0, 300.0), on_link=lambda up, error: links.append((up, error)))
    sync.start()
    _online(hq)
    wait_until(lambda: links and links[-1][0] is True, 10, "the link to be reported up")
    broker.stop()
    wait_until(lambda: links[-1][0] is False, 20, "the outage to be reported")
    assert links[-1][1].startswith("head office unreachable")
    journal.append("box_read", {"during": "outage"})
    broker.start()
    wait_until(lambda: links[-1][0] is True, 20, "the link to come back before the 30 s backoff")
    assert hq.wait_for("dev-a", journal.last_seq(), 20)
    sync.stop()


def test_a_tasks_downlink_carries_site_names_and_a_wrongly_typed_map_is_refused_by_name(hq, device):
    config, journal, store = device
    sync = start_sync(device)
    _online(hq)
    before = journal.last_seq()
    bad = hq.wait_reply(hq.send("dev-a", "tasks", {"site_id": SITE, "tasks": [_task("T-1")], "sites": {SITE: 7}}))
    assert bad["ok"] is False and "sites" in bad["error"], bad
    assert store.task("T-1") is None and store.site_names() == {} and journal.last_seq() == before
    good = hq.wait_reply(hq.send("dev-a", "tasks", {"site_id": SITE, "tasks": [_task("T-2")], "sites": {SITE: "城东支行"}}))
    assert good["ok"] is True and store.site_names() == {SITE: "城东支行"}
    sync.stop()
