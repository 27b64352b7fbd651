"""Downlink: what head office sends a device, checked before anything changes (docs/mqtt.md).

Each message on <prefix>/<device>/down/<kind> is decoded and checked against
schemas/<kind>.json, then its site_id against this site. A refused message changes nothing and
gets a reply naming what is wrong. An accepted one is applied, journaled and its msg_id recorded
in one transaction, so a redelivered message (QoS 1 is at-least-once) is acknowledged again but
never applied twice.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, datetime, timezone
from typing import Callable

from agent.config import apply_settings, save_remote_settings, settings_view
from agent.journal import JournalError
from protocol import messages
from offline.importers import apply_personnel, apply_tasks, check_route_progress, record_route_progress

log = logging.getLogger(__name__)

_SEEN = "sync_downlinks"
_SCHEDULES = "sync_schedules"     # the last whole-day schedule version applied, per day (hq/schedule.py)


class Downlink:
    """Apply one downlink message; returns the reply payload (schemas/reply.json)."""

    def __init__(self, journal, store_source, *, device: str, site_id: str,
                 on_command: Callable[[dict], None], modules=(),
                 on_downlink: Callable[[str, dict], None] | None = None, loop=None, complaints=None,
                 config=None):
        self.journal = journal
        self._store_source = store_source
        self._store = None
        self.device = device
        self.site_id = site_id
        self.on_command = on_command
        self.modules = modules
        self.on_downlink = on_downlink
        self.loop = loop  # the agent's event loop, where fingerprint modules live
        self.complaints = complaints  # agent.complaints.ComplaintBook
        self.config = config          # the agent's Config; the `config` downlink replaces it
        journal.db.execute(
            f"CREATE TABLE IF NOT EXISTS {_SEEN} (msg_id TEXT PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER NOT NULL)")
        journal.db.execute(f"CREATE TABLE IF NOT EXISTS {_SCHEDULES} (day TEXT PRIMARY KEY, version INTEGER NOT NULL)")

    @property
    def store(self):
        if self._store is None:
            self._store = self._store_source() if callable(self._store_source) else self._store_source
        return self._store

    def handle(self, topic: str, kind: str, raw: bytes) -> dict:
        reply = {"v": messages.VERSION, "device": self.device, "msg_id": None, "topic": topic, "ok": False}
        if kind not in messages.DOWNLINK_KINDS:
            reply["error"] = f"unknown downlink topic {topic!r}; expected one of: {', '.join(messages.DOWNLINK_KINDS)}"
            return reply
        try:
            payload = messages.decode(kind, raw)
        except messages.MessageError as exc:
            reply["msg_id"] = _msg_id_of(raw)
            reply["error"] = f"{kind} refused: {exc}"
            return reply
        reply["msg_id"] = payload["msg_id"]
        if payload["site_id"] != self.site_id:
            reply["error"] = f"{kind} refused: site_id {payload['site_id']!r} is not this site ({self.site_id!r})"
            return reply
        try:
            seq, duplicate, result = self._apply(kind, payload)
        except JournalError as exc:
            reply["error"] = f"{kind} could not be recorded on the device, nothing changed: {exc}"
            return reply
        except ValueError as exc:
            # The importers, the model and the settings' rules name the bad field; the transaction rolled back.
            reply["error"] = f"{kind} refused: {exc}"
            return reply
        except Exception as exc:
            # A shape no check foresaw: still refused and answered (and so acknowledged), never retried forever.
            log.error("downlink %s %s failed: %s", kind, payload["msg_id"], type(exc).__name__)
            reply["error"] = f"{kind} refused: the content could not be used ({type(exc).__name__}); nothing changed"
            return reply
        reply.update(ok=True, seq=seq)
        if duplicate:
            reply["duplicate"] = True
        if result:
            reply["result"] = result
        if not duplicate:
            if kind == "command":
                self.on_command(payload)
            if self.on_downlink is not None:
                try:
                    self.on_downlink(kind, payload)
                except Exception:
                    log.exception("on_downlink failed for %s %s", kind, payload["msg_id"])
        return reply

    def _apply(self, kind: str, payload: dict) -> tuple[int, bool, dict]:
        msg_id = payload["msg_id"]
        conn = self.journal.db
        with self.journal.transaction():
            row = conn.execute(f"SELECT seq FROM {_SEEN} WHERE msg_id = ?", (msg_id,)).fetchone()
            if row:
                return row[0], True, {}
            if kind != "personnel":
                result = getattr(self, f"_apply_{kind}")(payload)
                return self._record(msg_id, kind, result), False, result
        # Personnel loads fingerprint modules on the agent's event loop, outside any transaction
        # held here; a crash before _record redelivers it, and replacing people again is harmless.
        result = self._apply_personnel(payload)
        with self.journal.transaction():
            return self._record(msg_id, kind, result), False, result

    def _record(self, msg_id: str, kind: str, result: dict) -> int:
        entry = self.journal.append("downlink_accepted", {"msg_id": msg_id, "kind": kind, "result": result})
        self.journal.db.execute(f"INSERT INTO {_SEEN} (msg_id, kind, seq) VALUES (?, ?, ?)",
                                     (msg_id, kind, entry.seq))
        return entry.seq

    def _apply_tasks(self, payload: dict) -> dict:
        whole = payload.get("schedule")
        if whole is not None:
            day = _day(whole["day"])
            row = self.journal.db.execute(f"SELECT version FROM {_SCHEDULES} WHERE day = ?", (whole["day"],)).fetchone()
            if row and row[0] > whole["version"]:
                raise ValueError(f"schedule version {whole['version']} of {whole['day']} is older than version "
                                 f"{row[0]} applied here")
        result = apply_tasks(self.journal, self.store, payload["tasks"], source=f"mqtt:{payload['msg_id']}",
                             sites=payload.get("sites"))
        if whole is not None:
            # the site's whole day: what head office took out goes, unless its handover has started
            keep = {t["task_id"] for t in payload["tasks"]}
            gone = [t.task_id for t in self.store.tasks_on(day, self.site_id) if t.day == day and
                    t.task_id not in keep and not any(e.kind == "handover_started"
                                                      for e in self.journal.entries_for_task(t.task_id))]
            self.store.withdraw_tasks(gone)
            self.journal.db.execute(f"INSERT OR REPLACE INTO {_SCHEDULES} (day, version) VALUES (?, ?)",
                                    (whole["day"], whole["version"]))
            result.update(schedule=whole, withdrawn=gone)
        return result

    def _apply_personnel(self, payload: dict) -> dict:
        work = apply_personnel(self.journal, self.store, payload["people"], list(self.modules),
                               f"mqtt:{payload['msg_id']}")
        if self.loop is not None:
            return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=120)
        return asyncio.run(work)

    def _apply_route_progress(self, payload: dict) -> dict:
        stops = check_route_progress(payload["stops"], "stops")
        with self.journal.transaction():
            record_route_progress(self.journal, self.store, stops)
        return {"stops": len(stops)}

    def _apply_config(self, payload: dict) -> dict:
        """Every setting checked by the configuration's own rules, then all applied or none (ConfigError
        names the key). Kept in the state dir so a restart applies them too; the agent picks up
        `self.config` through on_downlink."""
        if self.config is None:
            raise ValueError("this device takes no settings from head office")
        config, effect = apply_settings(self.config, payload["settings"])
        applied = settings_view(config)
        save_remote_settings(self.config.paths.state_dir, {k: applied[k] for k in effect})
        self.config = config
        return {"applied": {k: applied[k] for k in effect}, "takes_effect": effect}

    def _apply_complaint(self, payload: dict) -> dict:
        if self.complaints is None:
            raise ValueError("this device keeps no complaint book")
        t = self.complaints.apply_downlink(payload["ref"], payload["action"], payload.get("params", {}),
                                           datetime.now(timezone.utc))
        return {"ref": payload["ref"], "action": payload["action"], "status": t.after.value}

    def _apply_command(self, payload: dict) -> dict:
        if payload["command"] == "alarm_seen":
            return self._alarm_seen(payload)
        return {k: payload[k] for k in ("command", "seq") if k in payload}

    def _alarm_seen(self, payload: dict) -> dict:
        """Head office acknowledged one of this device's alarms: it must name an alarm entry of ours.
        A silent (duress) alarm is recorded but never shown (head office never sends one; if it did,
        the screen must still look normal)."""
        entry = next(iter(self.journal.entries(after_seq=payload["seq"] - 1, limit=1)), None)
        if entry is None or entry.seq != payload["seq"] or entry.kind != "alarm":
            raise ValueError(f"alarm_seen names entry {payload['seq']}, which is not an alarm of this device")
        return {"command": "alarm_seen", "seq": entry.seq, "entry_id": payload["entry_id"],
                "note": payload["note"], "shown": not entry.body.get("silent")}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"schedule.day: {text!r} is not a date") from None


def _msg_id_of(raw: bytes) -> str | None:
    """Best effort: echo the msg_id of a refused message so head office can match the reply."""
    try:
        value = json.loads(raw).get("msg_id")
    except Exception:
        return None
    return value if isinstance(value, str) and len(value) <= 128 else None
