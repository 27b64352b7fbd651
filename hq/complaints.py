"""Complaints handled at head office (SPEC §2.5, §6; issue 16).

Terminals journal each complaint (`complaint_registered`, `complaint_transition`, `complaint_due`) with its
personal details sealed to head office's complaint key (protocol/complaint.py). `handover-hq serve` stores
those entries like any other; `ComplaintDesk.sync` reads the new ones from the entries table into the
complaint tables (hq/db.py), so the ingest path is untouched. Details stay sealed at rest in every table
and are opened with the private key only when an officer reads a complaint (`open`) or a report needs the
causes and remedies: head office's database and log never hold them in clear.

The terminal that registered a complaint stays its book of record: an officer's step (`act`) is sent down
as a `complaint` downlink, the terminal applies it by its lifecycle table (flows.complaint) or refuses
with the reason in its reply, and the journal entry it writes comes back up and moves the state here. So
head office needs no copy of the lifecycle rules; deadlines are the terminal's, in working days, as sent.

The functions take no roles: the monitoring centre's page checks who may list, open, act or report.
"""
from __future__ import annotations

import json
import logging
import ssl
import sys
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from hq.db import Cursor, Database
from protocol import messages
from protocol.complaint import (ACTIONS, AWAITING_REPLY, CATEGORIES, REGISTER_STEP, RESOLVED, SealedDetailsError,
                                key_id, open_details, seal_details)
from protocol.keys import create_x25519, load_x25519

log = logging.getLogger("handover.hq.complaints")

KINDS = ("complaint_registered", "complaint_transition", "complaint_due")
PRIVATE_FILE, PUBLIC_FILE = "complaint.pem", "complaint.pub.pem"
SENT_STEP = "sent"            # what officers sent is sealed under this step name
BATCH = 2000                  # entries read per device per round


class ComplaintDeskError(ValueError):
    """A refused request at head office; the message names what is wrong. Nothing was changed."""


# --- the complaint key pair -------------------------------------------------------------------------

def create_key(keys_dir: Path) -> X25519PublicKey:
    """Head office's complaint key pair: the private half 0600 in keys_dir, the public half for terminals."""
    return create_x25519(keys_dir, PRIVATE_FILE, PUBLIC_FILE, "complaint key", "complaint")


def load_key(keys_dir: Path) -> X25519PrivateKey:
    return load_x25519(keys_dir / PRIVATE_FILE, "complaint key", "handover-hq complaints key create")


# --- reading entries into the complaint tables -----------------------------------------------------

def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _store(cur: Cursor, device: str, seq: int, kind: str, body: dict) -> None:
    if kind == "complaint_registered":
        cur.execute("INSERT INTO hq_complaints (device, ref, site_id, received_at, channel, category, status, "
                    "anonymous, deadlines, escalations, updated, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (device, ref) DO NOTHING",
                    (device, body["ref"], body["site_id"], body["received_at"], body["channel"], body["category"],
                     body["status"], body["anonymous"], _json(body["deadlines"]), _json(body["escalations"]),
                     body["received_at"], body.get("sealed")))
    elif kind == "complaint_transition":
        cur.execute("INSERT INTO hq_complaint_steps (device, seq, ref, action, before_status, after_status, actor, "
                    "source, at, params, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (device, seq) DO NOTHING",
                    (device, seq, body["ref"], body["action"], body["before"], body["after"], body["actor"],
                     body["source"], body["at"], _json(body["params"]), body.get("sealed")))
        cur.execute("UPDATE hq_complaints SET status = ?, deadlines = ?, updated = ? WHERE device = ? AND ref = ?",
                    (body["after"], _json(body["deadlines"]), body["at"], device, body["ref"]))
        new = body["params"].get("triggers") if body["action"] == "escalate" else None
        row = cur.one("SELECT escalations FROM hq_complaints WHERE device = ? AND ref = ?", (device, body["ref"]))
        if isinstance(new, list) and row is not None:      # the step names the new triggers: add them
            have = json.loads(row[0])
            cur.execute("UPDATE hq_complaints SET escalations = ? WHERE device = ? AND ref = ?",
                        (_json(have + [t for t in new if t not in have]), device, body["ref"]))
    else:
        cur.execute("INSERT INTO hq_complaint_due (device, seq, ref, lim, due, state, at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (device, seq) DO NOTHING",
                    (device, seq, body["ref"], body["limit"], body["due"], body["state"], body["at"]))


def _problem(kind: str, body) -> str | None:
    """What is wrong with a complaint entry's body (by its schema and its dates), or None."""
    try:
        messages.check(kind, body)
    except messages.MessageError as exc:
        return str(exc)
    # the schema's date formats are not enforced by jsonschema without extra packages: parse them here
    times = {"complaint_registered": ("received_at",), "complaint_transition": ("at",), "complaint_due": ("at",)}
    for key in times[kind]:
        try:
            datetime.fromisoformat(body[key])
        except ValueError:
            return f"{key} is not an ISO date-time"
    for key, value in body.get("deadlines", {}).items():
        try:
            date.fromisoformat(value)
        except ValueError:
            return f"deadlines.{key} is not an ISO date"
    return None


# --- what the page shows ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """One complaint as a list shows it: nothing personal."""
    device: str
    ref: str
    site_id: str
    received_at: str
    channel: str
    category: str
    status: str
    anonymous: bool
    deadlines: dict
    escalations: list
    updated: str
    overdue: bool                   # still awaiting its reply after the working day it was due
    due: list                       # the terminal's near-due / overdue hour limits still open: {limit, due, state}

    def to_dict(self) -> dict:
        return dict(vars(self))


_SUMMARY = ("SELECT device, ref, site_id, received_at, channel, category, status, anonymous, deadlines, escalations, "
            "updated FROM hq_complaints")


def half_year(due: date) -> tuple[date, date]:
    """The period a half-year report due on 15 June or 15 December covers: the six whole months before
    the month it is due (due 15 June: 1 December – 31 May; due 15 December: 1 June – 30 November), so the
    report can be written in the first half of the month it is due."""
    if (due.month, due.day) not in ((6, 15), (12, 15)):
        raise ComplaintDeskError("half-year reports are due on 15 June and 15 December")
    if due.month == 6:
        return date(due.year - 1, 12, 1), date(due.year, 5, 31)
    return date(due.year, 6, 1), date(due.year, 11, 30)


class ComplaintDesk:
    """Complaint officers' work at head office over its database; `key` opens the sealed details."""

    def __init__(self, db: Database, key: X25519PrivateKey | None = None):
        self.db = db
        self.key = key

    # -- sync ------------------------------------------------------------------------------------------

    def sync(self) -> int:
        """Read complaint entries applied since the last call into the complaint tables; how many were read.
        A body that breaks its schema is set aside in `quarantine` (naming the rule, not the content)."""
        total = 0
        while True:
            n = self.db.run(self._sync_round)
            total += n
            if n == 0:
                return total

    def _sync_round(self, cur: Cursor) -> int:
        marks = ", ".join("?" * len(KINDS))
        done = dict(cur.all("SELECT device, last_seq FROM hq_complaint_cursor"))
        read = 0
        for device, last_seq in cur.all("SELECT device, last_seq FROM devices"):
            after = done.get(device, 0)
            if last_seq <= after:
                continue
            rows = cur.all(f"SELECT seq, kind, body FROM entries WHERE device = ? AND seq > ? AND kind IN ({marks}) "
                           "ORDER BY seq LIMIT ?", (device, after, *KINDS, BATCH))
            for seq, kind, text in rows:
                body = json.loads(text)
                problem = _problem(kind, body)
                if problem:
                    log.warning("complaint entry %s:%s set aside: %s", device, seq, problem)
                    cur.execute("INSERT INTO quarantine (device, seq, reason, received) VALUES (?, ?, ?, ?)",
                                (device, seq, f"{kind}: {problem}", _now()))
                    continue
                _store(cur, device, seq, kind, body)
            read += len(rows)
            upto = rows[-1][0] if len(rows) == BATCH else last_seq
            cur.execute("INSERT INTO hq_complaint_cursor (device, last_seq) VALUES (?, ?) "
                        "ON CONFLICT (device) DO UPDATE SET last_seq = excluded.last_seq", (device, upto))
        return read

    # -- list / open -----------------------------------------------------------------------------------

    def list(self, today: date, *, status: str | None = None, overdue_only: bool = False,
             site_id: str | None = None) -> list[Summary]:
        """Complaints, oldest first, with their overdue flags as of `today`."""
        self.sync()
        rows = self.db.run(lambda cur: cur.all(_SUMMARY + " ORDER BY received_at, device, ref"))
        dues = self._open_dues()
        out = []
        for device, ref, site, received, channel, category, st, anonymous, deadlines, escalations, updated in rows:
            d = json.loads(deadlines)
            overdue = st in AWAITING_REPLY and today > date.fromisoformat(d["reply_by"])
            s = Summary(device, ref, site, received, channel, category, st, bool(anonymous), d, json.loads(escalations),
                        updated, overdue, dues.get((device, ref), []) if st in AWAITING_REPLY | {"replied"} else [])
            if (status is None or st == status) and (not overdue_only or overdue or s.due) \
                    and (site_id is None or site == site_id):
                out.append(s)
        return out

    def _open_dues(self) -> dict[tuple[str, str], list[dict]]:
        """The latest state of each hour limit the terminals reported, by complaint."""
        latest: dict[tuple[str, str, str], dict] = {}
        for device, ref, lim, due, state in self.db.run(lambda cur: cur.all(
                "SELECT device, ref, lim, due, state FROM hq_complaint_due ORDER BY device, seq")):
            latest[(device, ref, lim)] = {"limit": lim, "due": due, "state": state}
        out: dict[tuple[str, str], list[dict]] = {}
        for (device, ref, _), d in latest.items():
            out.setdefault((device, ref), []).append(d)
        return out

    def _find(self, ref: str) -> tuple:
        rows = self.db.run(lambda cur: cur.all(_SUMMARY + " WHERE ref = ?", (ref,)))
        if not rows:
            raise ComplaintDeskError(f"no complaint {ref!s:.64} at head office")
        if len(rows) > 1:
            raise ComplaintDeskError(f"complaint {ref!s:.64} is known from several terminals")
        return rows[0]

    def _open(self, ref: str, step: str, sealed: str | None) -> dict | None:
        if sealed is None:
            return None
        if self.key is None:
            raise ComplaintDeskError("opening complaint details needs head office's complaint key")
        try:
            return open_details(self.key, ref, step, sealed)
        except SealedDetailsError as exc:
            raise ComplaintDeskError(str(exc)) from None

    def open(self, ref: str, today: date) -> dict:
        """One complaint for an officer: the customer's details and every step with its texts, opened."""
        self.sync()
        device = self._find(ref)[0]
        summary = next(s for s in self.list(today) if s.device == device and s.ref == ref)
        sealed = self.db.run(lambda cur: cur.one("SELECT sealed FROM hq_complaints WHERE device = ? AND ref = ?",
                                                 (device, ref)))[0]
        steps = self.db.run(lambda cur: cur.all(
            "SELECT seq, action, before_status, after_status, actor, source, at, params, sealed "
            "FROM hq_complaint_steps WHERE device = ? AND ref = ? ORDER BY seq", (device, ref)))
        return {**summary.to_dict(), "details": self._open(ref, REGISTER_STEP, sealed),
                "steps": [{"seq": seq, "action": action, "before": before, "after": after, "actor": actor,
                           "source": source, "at": at, "params": json.loads(params),
                           "texts": self._open(ref, action, texts)}
                          for seq, action, before, after, actor, source, at, params, texts in steps],
                "sent": self.sent(ref)}

    def sent(self, ref: str) -> list[dict]:
        """What officers sent down for this complaint (parameters opened when the key is at hand)."""
        rows = self.db.run(lambda cur: cur.all(
            "SELECT msg_id, action, officer, at, sealed FROM hq_complaint_sent WHERE ref = ? ORDER BY at", (ref,)))
        return [{"msg_id": m, "action": a, "officer": o, "at": at,
                 "params": self._open(ref, SENT_STEP, s) if self.key else None} for m, a, o, at, s in rows]

    # -- act -------------------------------------------------------------------------------------------

    def act(self, ref: str, action: str, params: dict, officer: str) -> tuple[str, dict]:
        """An officer's step as the `complaint` downlink for the terminal that holds the complaint:
        (device, payload). The parameters are recorded here sealed; the step itself is recorded when the
        terminal's journal entry for it arrives (the terminal may refuse it, saying why in its reply)."""
        if action not in ACTIONS:
            raise ComplaintDeskError(f"action must be one of {', '.join(ACTIONS)}")
        if not isinstance(officer, str) or not officer.strip() or len(officer) > 100:
            raise ComplaintDeskError("the officer recording the step must be named")
        if self.key is None:
            raise ComplaintDeskError("acting on a complaint needs head office's complaint key")
        device, ref, site_id = self._find(ref)[:3]
        payload = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, "site_id": site_id, "ref": ref,
                   "action": action, "params": params}
        try:
            messages.check("complaint", payload)
        except messages.MessageError as exc:
            raise ComplaintDeskError(str(exc)) from None
        sealed = seal_details(self.key.public_key(), ref, SENT_STEP, params)
        self.db.run(lambda cur: cur.execute(
            "INSERT INTO hq_complaint_sent (msg_id, device, ref, action, officer, at, sealed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (payload["msg_id"], device, ref, action, officer, _now(), sealed)))
        return device, payload

    # -- reports -----------------------------------------------------------------------------------------

    def report(self, start: date, end: date, today: date) -> dict:
        """Received and resolved in [start, end] by category, the main issues, and the causes and remedies
        recorded when they were handled (the half-year report's content)."""
        if end < start:
            raise ComplaintDeskError("the report period ends before it starts")
        if self.key is None:
            raise ComplaintDeskError("the report's causes and remedies need head office's complaint key")
        inside = lambda iso: start <= datetime.fromisoformat(iso).date() <= end      # noqa: E731
        summaries = self.list(today)
        received, resolved, overdue = Counter(), Counter(), Counter()
        replied = {(d, r): at for d, r, at in self.db.run(lambda cur: cur.all(
            "SELECT device, ref, at FROM hq_complaint_steps WHERE action = 'reply'"))}
        handled = self.db.run(lambda cur: cur.all(
            "SELECT device, ref, sealed FROM hq_complaint_steps WHERE action = 'handle' ORDER BY device, seq"))
        by_key = {(s.device, s.ref): s for s in summaries}
        causes = []
        for s in summaries:
            if inside(s.received_at):
                received[s.category] += 1
                overdue[s.category] += s.overdue
            # the reply's day at the complaint's site (the terminal stamps steps in UTC): a reply at 06:00 on
            # 1 December in Shanghai is December's, not November's
            local = datetime.fromisoformat(s.received_at).tzinfo
            if (s.device, s.ref) in replied and s.status in RESOLVED and \
                    start <= datetime.fromisoformat(replied[(s.device, s.ref)]).astimezone(local).date() <= end:
                resolved[s.category] += 1
        for device, ref, sealed in handled:
            s = by_key.get((device, ref))
            texts = self._open(ref, "handle", sealed) if s is not None and inside(s.received_at) else None
            if texts and (texts.get("cause") or texts.get("remedy")):
                causes.append({"ref": ref, "site_id": s.site_id, "category": s.category,
                               "cause": texts.get("cause", ""), "remedy": texts.get("remedy", "")})
        # the terminal's categories in their order, then any a newer terminal sent
        order = [*CATEGORIES, *sorted((set(received) | set(resolved)) - set(CATEGORIES))]
        ranked = sorted((c for c in order if received[c]), key=lambda c: -received[c])
        return {
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "received": sum(received.values()), "resolved": sum(resolved.values()),
            "overdue": sum(overdue.values()),
            "by_category": {c: {"received": received[c], "resolved": resolved[c], "overdue": overdue[c]}
                            for c in order if received[c] or resolved[c]},
            "main_issues": [{"category": c, "count": received[c]} for c in ranked[:3]],
            "causes_and_remedies": causes,
        }


# --- sending a step down ------------------------------------------------------------------------------

def deliver(host: str, port: int, tls: tuple, device: str, payload: dict, *, prefix: str = "ht/v1",
            client_id: str = "hq-complaints", timeout: float = 30.0) -> dict | None:
    """Publish one `complaint` downlink (QoS 1) and wait for the terminal's reply; None when it did not
    answer within `timeout` (the broker keeps the message for the terminal's session)."""
    topics = messages.Topics(prefix, device)
    got: dict = {}
    ready, answered = threading.Event(), threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe(topics.up("reply"), qos=1)

    def on_message(client, userdata, message):
        try:
            reply = messages.decode("reply", message.payload)
        except messages.MessageError:
            return
        if reply.get("msg_id") == payload["msg_id"]:
            got.update(reply)
            answered.set()

    # a client id of its own per call: several officers' steps may be on their way at once
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{client_id}-{uuid.uuid4().hex[:12]}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]), keyfile=str(tls[2]), cert_reqs=ssl.CERT_REQUIRED)
    client.on_connect = on_connect
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = on_message
    client.connect(host, port, keepalive=10, clean_start=True)
    client.loop_start()
    try:
        if not ready.wait(timeout):
            raise TimeoutError(f"head office could not reach the broker at {host}:{port}")
        client.publish(topics.down("complaint"), messages.encode(payload), qos=1).wait_for_publish(timeout)
        return got if answered.wait(timeout) else None
    finally:
        client.disconnect()
        client.loop_stop()


# --- handover-hq complaints ... ------------------------------------------------------------------------

def register(subparsers) -> None:
    """Add `complaints` (key create, list, show, act, report) to handover-hq's subcommands."""
    c = subparsers.add_parser("complaints", help="complaints handled at head office").add_subparsers(
        dest="complaints_command", required=True)
    key = c.add_parser("key", help="head office's complaint key pair").add_subparsers(dest="key_command",
                                                                                       required=True)
    create = key.add_parser("create", help="make the key pair; install complaint.pub.pem on terminals "
                                           "as [complaints] hq_key")
    create.add_argument("--keys", type=Path, required=True)
    create.set_defaults(func=_cmd_key_create)

    def common(p, *, needs_key: bool) -> None:
        p.add_argument("--db", default="hq.db", help="head office's database (as for serve)")
        p.add_argument("--keys", type=Path, required=needs_key, help="folder holding complaint.pem")
        p.add_argument("--today", type=date.fromisoformat, default=None, help="judge deadlines as of this day")

    ls = c.add_parser("list", help="complaints with their status and deadlines (nothing personal)")
    common(ls, needs_key=False)
    ls.add_argument("--status", default=None)
    ls.add_argument("--overdue", action="store_true", help="only those overdue or with a limit near-due")
    ls.set_defaults(func=_cmd_list)

    show = c.add_parser("show", help="one complaint with its details opened (for complaint officers)")
    common(show, needs_key=True)
    show.add_argument("ref")
    show.set_defaults(func=_cmd_show)

    act = c.add_parser("act", help="send one lifecycle step to the terminal holding the complaint")
    common(act, needs_key=True)
    act.add_argument("ref")
    act.add_argument("action", choices=ACTIONS)
    act.add_argument("--params", default="{}", help='the step\'s parameters as JSON, e.g. {"to": "消保部"}')
    act.add_argument("--officer", required=True, help="who records the step (kept at head office)")
    act.add_argument("--host", default="localhost")
    act.add_argument("--port", type=int, default=8883)
    act.add_argument("--ca", required=True)
    act.add_argument("--cert", required=True, help="a head-office client certificate (CN hq or hq-<name>)")
    act.add_argument("--key", required=True)
    act.add_argument("--prefix", default="ht/v1")
    act.add_argument("--timeout", type=float, default=30.0)
    act.set_defaults(func=_cmd_act)

    rep = c.add_parser("report", help="the half-year report (received, resolved, by category, main issues, "
                                      "causes, remedies) as a JSON file")
    common(rep, needs_key=True)
    rep.add_argument("--due", type=date.fromisoformat, help="the report's due date: YYYY-06-15 or YYYY-12-15")
    rep.add_argument("--start", type=date.fromisoformat)
    rep.add_argument("--end", type=date.fromisoformat)
    rep.add_argument("--out", type=Path, required=True)
    rep.set_defaults(func=_cmd_report)


def _desk(args) -> ComplaintDesk:
    if not args.db.startswith(("postgresql://", "postgres://")) and not Path(args.db).is_file():
        raise ValueError(f"no head-office database at {args.db}")
    db = Database(args.db, retry_for=0).create_schema()
    return ComplaintDesk(db, load_key(args.keys) if args.keys else None)


def _today(args) -> date:
    return args.today or date.today()


def _cmd_key_create(args) -> int:
    public = create_key(args.keys)
    print(f"created complaint key {key_id(public)} in {args.keys}; install {args.keys / PUBLIC_FILE} on "
          "terminals as [complaints] hq_key")
    return 0


def _cmd_list(args) -> int:
    desk = _desk(args)
    try:
        rows = desk.list(_today(args), status=args.status, overdue_only=args.overdue)
    finally:
        desk.db.close()
    for s in rows:
        flags = " OVERDUE" if s.overdue else ""
        flags += "".join(f" {d['limit']}:{d['state']}" for d in s.due)
        print(f"{s.ref}\t{s.site_id}\t{s.received_at}\t{s.category}\t{s.status}\treply by {s.deadlines['reply_by']}"
              f"{flags}")
    print(f"{len(rows)} complaint(s)")
    return 0


def _cmd_show(args) -> int:
    desk = _desk(args)
    try:
        print(json.dumps(desk.open(args.ref, _today(args)), ensure_ascii=False, indent=2))
    finally:
        desk.db.close()
    return 0


def _cmd_act(args) -> int:
    params = json.loads(args.params)
    if not isinstance(params, dict):
        raise ValueError("--params must be a JSON object")
    desk = _desk(args)
    try:
        device, payload = desk.act(args.ref, args.action, params, args.officer)
    finally:
        desk.db.close()
    reply = deliver(args.host, args.port, (args.ca, args.cert, args.key), device, payload, prefix=args.prefix,
                    timeout=args.timeout)
    if reply is None:
        print(f"sent {args.action} for {args.ref} to {device}; it has not answered yet (the broker keeps the "
              "message until it does)")
        return 0
    if not reply["ok"]:
        print(f"{device} refused {args.action} for {args.ref}: {reply.get('error')}", file=sys.stderr)
        return 1
    print(f"{device}: {args.ref} is now {reply['result']['status']} (journal entry {reply['seq']})")
    return 0


def _cmd_report(args) -> int:
    if args.due is not None:
        start, end = half_year(args.due)
    elif args.start and args.end:
        start, end = args.start, args.end
    else:
        raise ValueError("give --due (YYYY-06-15 or YYYY-12-15) or both --start and --end")
    desk = _desk(args)
    try:
        report = desk.report(start, end, _today(args))
    finally:
        desk.db.close()
    if args.due is not None:
        report["due"] = args.due.isoformat()
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {report['received']} received, {report['resolved']} resolved "
          f"({start.isoformat()} to {end.isoformat()})")
    return 0
