"""What the alarm and devices boards show, read from head office's database, and the acknowledgement of
an alarm (journaled here with its audit row; the caller sends it to the terminal unless it is silent)."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from hq.db import Cursor, Database
from hq.web import i18n
from protocol import messages

RECENT = 200            # alarms on the board when a page opens; later ones arrive live
MAX_NOTE = 200


class AckRefused(ValueError):
    """The acknowledgement was not recorded; `status` is the HTTP status that says why."""

    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status


def visible(body: dict, role: str) -> bool:
    """A silent alarm (duress) is for monitors only: nobody else, and never the terminal, sees it."""
    return not body.get("silent") or role == "monitor"


def alarm_view(device: str, entry_id: str, seq: int, ts: str, body: dict, ack: dict | None,
               sites: dict[str, str], lang: str) -> dict:
    site_id = body.get("site_id")
    kind = body.get("alarm")
    at = _local(ts)
    site = sites.get(site_id or "", site_id or device)
    kind_text = i18n.alarm_kind(kind, lang)
    return {"device": device, "id": entry_id, "seq": seq, "ts": ts, "time": at.strftime("%H:%M:%S"),
            "site_id": site_id, "site": site, "kind": kind, "kind_text": kind_text,
            "silent": bool(body.get("silent")), "ack": ack,
            "speech": i18n.render("speech_alarm", {"site": site, "kind": i18n.alarm_kind(kind, "zh-CN"),
                                                   "time": at.strftime("%H:%M")}, "zh-CN")}


def speech_of(body: dict, device: str, ts: str, sites: dict[str, str]) -> str:
    """The Mandarin sentence spoken for an alarm, e.g. "城东支行，错箱报警，10:05"."""
    return alarm_view(device, "", 0, ts, body, None, sites, "zh-CN")["speech"]


def _local(ts: str) -> datetime:
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return datetime.now(timezone.utc).astimezone()
    return moment.astimezone() if moment.tzinfo else moment


def recent_alarms(db: Database, role: str, sites: dict[str, str], lang: str, limit: int = RECENT) -> list[dict]:
    rows = db.run(lambda cur: cur.all(
        "SELECT a.device, a.entry_id, a.seq, a.ts, a.body, k.name, k.note, k.at, k.msg_id FROM alarms a "
        "LEFT JOIN alarm_acks k ON k.device = a.device AND k.entry_id = a.entry_id "
        "ORDER BY a.received DESC, a.device, a.seq DESC LIMIT ?", (limit,)))
    out = []
    for device, entry_id, seq, ts, body, name, note, at, msg_id in rows:
        body = json.loads(body)
        if visible(body, role):
            ack = {"name": name, "note": note, "at": at, "sent": msg_id is not None} if name else None
            out.append(alarm_view(device, entry_id, seq, ts, body, ack, sites, lang))
    return out


def alarm(db: Database, device: str, entry_id: str) -> tuple[int, str, dict] | None:
    row = db.run(lambda cur: cur.one("SELECT seq, ts, body FROM alarms WHERE device = ? AND entry_id = ?",
                                     (device, entry_id)))
    return (row[0], row[1], json.loads(row[2])) if row else None


@dataclass(frozen=True)
class Ack:
    device: str
    entry_id: str
    name: str
    note: str
    at: str
    silent: bool
    downlink: dict | None       # the command for the terminal; None for a silent alarm


def acknowledge(db: Database, device: str, entry_id: str, name: str, note: str, audit) -> Ack:
    """Record `name`'s acknowledgement of an alarm with a note, and its audit row, in one transaction.
    `audit(cur, name, action, detail)` writes the audit row (hq.web.auth.Auth.audit_in)."""
    note = note.strip()
    if not note or len(note) > MAX_NOTE or not note.isprintable():
        raise AckRefused(400, f"the note must be 1-{MAX_NOTE} printable characters")
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")

    def work(cur: Cursor) -> Ack:
        row = cur.one("SELECT seq, body FROM alarms WHERE device = ? AND entry_id = ?", (device, entry_id))
        if row is None:
            raise AckRefused(404, "no such alarm")
        if cur.one("SELECT 1 FROM alarm_acks WHERE device = ? AND entry_id = ?", (device, entry_id)):
            raise AckRefused(409, "this alarm is acknowledged already")
        seq, body = row[0], json.loads(row[1])
        downlink = None
        if not body.get("silent") and body.get("site_id"):
            downlink = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, "site_id": body["site_id"],
                        "command": "alarm_seen", "seq": seq, "entry_id": entry_id, "note": note}
            messages.check("command", downlink)
        cur.execute("INSERT INTO alarm_acks (device, entry_id, name, note, at, msg_id) VALUES (?, ?, ?, ?, ?, ?)",
                    (device, entry_id, name, note, at, downlink and downlink["msg_id"]))
        audit(cur, name, "alarm_acknowledged", {"device": device, "entry_id": entry_id, "note": note,
                                                "sent_to_terminal": downlink is not None})
        return Ack(device, entry_id, name, note, at, bool(body.get("silent")), downlink)
    return db.run(work)


def devices(db: Database, sites: dict[str, str], lang: str, quiet_after: timedelta,
            now: datetime | None = None) -> list[dict]:
    """Every terminal: online/offline, backlog, disk, driver health, last seen; `quiet` when nothing was
    heard from it for longer than quiet_after."""
    now = now or datetime.now(timezone.utc)
    rows = db.run(lambda cur: cur.all(
        "SELECT device, last_seq, newest_seen, site_id, state, health, updated FROM devices ORDER BY device"))
    out = []
    for device, last_seq, newest, site_id, state, health, updated in rows:
        health = json.loads(health) if health else {}
        seen = [t for t in (_moment(updated), _moment(health.get("ts"))) if t is not None]
        last_seen = max(seen) if seen else None
        disk = health.get("disk") or {}
        faults = sorted(name for name, d in (health.get("drivers") or {}).items()
                        if isinstance(d, dict) and d.get("state") not in ("connected", None))
        quiet = last_seen is None or now - last_seen > quiet_after
        out.append({
            "device": device, "site_id": site_id, "site": sites.get(site_id or "", site_id or ""),
            "state": state or "unknown",
            "state_text": i18n.render(f"state_{state}" if state in ("online", "offline") else "state_unknown",
                                      lang=lang),
            "backlog": max(0, newest - last_seq), "last_seq": last_seq,
            "disk_free": disk.get("free_bytes"), "disk_total": disk.get("total_bytes"),
            "faults": faults,
            "drivers_text": i18n.render("driver_fault", {"names": _driver_names(faults, lang)}, lang) if faults
            else i18n.render("driver_ok", lang=lang) if health.get("drivers") else "",    # no health report yet
            "last_seen": last_seen.astimezone().strftime("%Y-%m-%d %H:%M:%S") if last_seen else None,
            "quiet": quiet,
            "quiet_text": i18n.render("dev_quiet", {"minutes": round(quiet_after.total_seconds() / 60, 1)}, lang)
            if quiet else None})
    return out


def _driver_names(names: list[str], lang: str) -> str:
    """Drivers named as the terminal's screen names them; a name this page does not know is shown as sent."""
    known = i18n.catalog(i18n.pick(lang))
    return i18n.render("list_separator", lang=lang).join(
        known[f"driver_name_{n}"] if f"driver_name_{n}" in known else n for n in names)


def _moment(ts) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
