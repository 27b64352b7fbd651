"""Sending the day's schedule and the people it needs to the terminals, and reading back what they applied
(SPEC §2.4, §2.5, §5; docs/schedule.md).

A site's version goes to each device whose status named that site: over MQTT as the `tasks` downlink
when the device is online, else (or with --usb) as a USB bundle in the existing format, encrypted to the
device's key from its identity-<device>.json. "Published" is not "applied": `status` shows a version
applied only when the terminal's reply on its reply topic said ok (MQTT), or when its journal, received
by `serve`, holds the import of that bundle (USB).

People go only where today's tasks name them (escorts and confirmers), with photos and templates, as the
`personnel` downlink or bundle. They come in with `personnel import`: the escort company's encrypted
export, a personnel bundle encrypted to head office's own bundle key (`personnel key`).
"""
from __future__ import annotations

import base64
import json
import ssl
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from hq import schedule
from hq.db import Cursor, Database
from protocol import messages
from protocol.bundle import open_bundle, pack_bundle, read_bundle_file
from protocol.enrolment import EnrolmentError, open_at_hq
from protocol.keys import HqKeys, load_public, load_signers, public_pem, write_private

HQ_BUNDLE_KEY = "hq_bundle_x25519.pem"      # in the keys dir: what the escort company encrypts exports to
HQ_ENROLMENT_KEY = "hq_enrolment_x25519.pem"  # in the keys dir: what terminals seal branch-enrolled templates to
PEOPLE_PER_MESSAGE_BYTES = 768 * 1024       # a personnel downlink stays well under messages.MAX_DOWNLINK_BYTES
BUNDLE_DAYS = 3                             # a schedule bundle expires after this many days


class Publisher:
    """One short MQTT session: publish downlinks and collect the replies to them."""

    def __init__(self, host: str, port: int, *, ca_file, cert_file, key_file, client_id: str = "hq-schedule",
                 prefix: str = "ht/v1"):
        self.prefix = prefix
        self.replies: dict[str, dict] = {}
        self._lock = threading.Condition()
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(ca_file), certfile=str(cert_file), keyfile=str(key_file),
                            cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure else c.subscribe(
            f"{prefix}/+/reply", qos=1)
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._on_message
        self._host, self._port = host, port

    def __enter__(self) -> "Publisher":
        self.client.connect(self._host, self._port, keepalive=10)
        self.client.loop_start()
        if not self._ready.wait(15):
            self.close()
            raise TimeoutError(f"could not connect to the broker at {self._host}:{self._port}")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client, userdata, message) -> None:
        try:
            payload = messages.decode("reply", message.payload)
        except messages.MessageError:
            return
        with self._lock:
            if payload["msg_id"] is not None:
                self.replies[payload["msg_id"]] = payload
                self._lock.notify_all()

    def send(self, device: str, kind: str, payload: dict) -> str:
        payload = {"v": messages.VERSION, "msg_id": uuid.uuid4().hex, **payload}
        info = self.client.publish(messages.Topics(self.prefix, device).down(kind), messages.encode(payload), qos=1)
        info.wait_for_publish(15)
        return payload["msg_id"]

    def wait(self, msg_ids: set[str], timeout: float) -> dict[str, dict]:
        with self._lock:
            self._lock.wait_for(lambda: msg_ids <= set(self.replies), timeout)
            return {m: self.replies[m] for m in msg_ids if m in self.replies}


@dataclass
class BundleKit:
    """What packing USB bundles needs: head office's signing key, the devices' identities, a folder."""
    keys: HqKeys
    identities: Path
    out: Path

    def device_key(self, device: str) -> X25519PublicKey:
        path = self.identities / f"identity-{device}.json"
        try:
            ident = json.loads(path.read_text(encoding="utf-8"))
            key = load_public(ident["bundle_public"].encode())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"no usable identity for {device} at {path} ({type(exc).__name__})") from None
        if ident.get("device_id") != device or not isinstance(key, X25519PublicKey):
            raise ValueError(f"{path} is not {device}'s X25519 identity")
        return key


def _next_seq(cur: Cursor, device: str, kind: str, now: datetime) -> int:
    """Higher than any bundle of this kind head office packed for the device, and than the clock's
    seconds (so bundles packed by hand with `handover-hq pack` earlier are outrun too)."""
    row = cur.one("SELECT seq FROM bundle_seqs WHERE device = ? AND kind = ?", (device, kind))
    seq = max((row[0] if row else 0) + 1, int(now.timestamp()))
    cur.execute("INSERT INTO bundle_seqs (device, kind, seq) VALUES (?, ?, ?) ON CONFLICT (device, kind) "
                "DO UPDATE SET seq = excluded.seq", (device, kind, seq))
    return seq


def devices_at(db: Database, site: str) -> list[tuple[str, str | None]]:
    """(device, state) of the devices whose last status named `site`."""
    return db.run(lambda cur: cur.all("SELECT device, state FROM devices WHERE site_id = ? ORDER BY device", (site,)))


def people_needed(tasks: list[dict]) -> list[str]:
    """Everyone a site's tasks name: the escorts and the officers who may confirm."""
    return sorted({p for t in tasks for p in (*t["escorts"], *t.get("confirmers", ()))})


def publish(db: Database, day: str, *, publisher: Publisher | None, kit: BundleKit | None, usb_only: bool = False,
            sites: list[str] | None = None, again: bool = False, timeout: float = 30.0,
            now: datetime | None = None) -> list[str]:
    """Send each site's latest version of `day` (and the people it needs) where it has not gone yet;
    lines saying what went where, and what could not."""
    now = now or datetime.now(timezone.utc)
    versions = db.run(lambda cur: cur.all(
        "SELECT site_id, max(version) FROM schedule_versions WHERE day = ? GROUP BY site_id ORDER BY site_id", (day,)))
    lines, waiting = [], {}
    for site, version in versions:
        if sites and site not in sites:
            continue
        _, payload = schedule.tasks_payload(db, day, site)
        if not payload["tasks"]:
            lines.append(f"{site}: version {version} has no tasks left; nothing sent (the terminal keeps what it "
                         f"has: cancelling tasks is not in the protocol yet)")
            continue
        devices = devices_at(db, site)
        if not devices:
            lines.append(f"{site}: no terminal has reported this site; version {version} not sent")
            continue
        people = _people_payload(db, people_needed(payload["tasks"]))
        for device, state in devices:
            if not again and _sent(db, day, site, version, device):
                lines.append(f"{site} {device}: version {version} already sent")
                continue
            if publisher is not None and state == "online" and not usb_only:
                for group in _chunks(people):
                    pid = publisher.send(device, "personnel", {"site_id": site, "people": group})
                    _record(db, day, site, version, device, "personnel", "mqtt", pid, None, now)
                    waiting[pid] = (site, device, "personnel")
                mid = publisher.send(device, "tasks", payload)
                _record(db, day, site, version, device, "tasks", "mqtt", mid, None, now)
                waiting[mid] = (site, device, "tasks")
                lines.append(f"{site} {device}: version {version} published over MQTT ({len(payload['tasks'])} "
                             f"task(s), {len(people)} person(s))")
            elif kit is not None:
                lines += _pack(db, kit, day, site, version, device, payload, people, now)
            else:
                lines.append(f"{site} {device}: {'offline' if state != 'online' else 'online'}; version {version} "
                             f"not sent (give --usb DIR --keys K --identities D for a USB bundle)")
    if publisher is not None and waiting:
        got = publisher.wait(set(waiting), timeout)
        for msg_id, reply in got.items():
            db.reply(reply["device"], reply)
            site, device, what = waiting[msg_id]
            lines.append(f"{site} {device}: {what} " + ("applied" if reply["ok"] else f"refused: {reply.get('error')}"))
        for msg_id in set(waiting) - set(got):
            site, device, what = waiting[msg_id]
            lines.append(f"{site} {device}: {what} published, no reply yet (see `schedule status`)")
    return lines


def _pack(db, kit: BundleKit, day, site, version, device, payload, people, now) -> list[str]:
    try:
        key = kit.device_key(device)
    except ValueError as exc:
        return [f"{site} {device}: no USB bundle: {exc}"]
    folder = kit.out / device
    folder.mkdir(parents=True, exist_ok=True)
    expires = now + timedelta(days=BUNDLE_DAYS)
    out = []
    parts = [("personnel", {"people": people})] if people else []
    if payload is not None:
        parts.append(("tasks", {k: payload[k] for k in ("tasks", "sites")}))
    for what, body in parts:
        seq = db.run(lambda cur: _next_seq(cur, device, what, now))
        data = pack_bundle(what, body, device, key, kit.keys.signing, seq, expires, now)
        path = folder / f"{what}-{site}-{day}-v{version}.htb"
        path.write_bytes(data)
        _record(db, day, site, version, device, what, "usb", None, seq, now)
        out.append(f"{site} {device}: {what} version {version} packed for USB: {path}")
    return out


def _record(db, day, site, version, device, what, channel, msg_id, seq, now) -> None:
    db.run(lambda cur: cur.execute(
        "INSERT INTO schedule_sends (day, site_id, version, device, what, channel, msg_id, bundle_seq, sent) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (day, site, version, device, what, channel, msg_id, seq, now.isoformat(timespec="seconds"))))


def _sent(db, day, site, version, device) -> bool:
    return db.run(lambda cur: cur.one(
        "SELECT 1 FROM schedule_sends WHERE day = ? AND site_id = ? AND version = ? AND device = ? AND what = 'tasks'",
        (day, site, version, device))) is not None


def status(db: Database, day: str) -> list[dict]:
    """Per site and device: the latest version, the last version sent, how, and whether it was applied."""
    def work(cur: Cursor) -> list[dict]:
        out = []
        versions = cur.all("SELECT site_id, max(version) FROM schedule_versions WHERE day = ? GROUP BY site_id "
                           "ORDER BY site_id", (day,))
        for site, latest in versions:
            sends = cur.all("SELECT device, version, channel, msg_id, bundle_seq, sent FROM schedule_sends "
                            "WHERE day = ? AND site_id = ? AND what = 'tasks' ORDER BY sent, version", (day, site))
            last: dict[str, tuple] = {}
            for row in sends:
                last[row[0]] = row
            if not last:
                out.append({"site": site, "latest": latest, "device": None, "sent": None, "state": "not sent"})
            for device, version, channel, msg_id, seq, sent in last.values():
                state = _applied(cur, device, channel, msg_id, seq)
                out.append({"site": site, "latest": latest, "device": device, "sent": version, "channel": channel,
                            "at": sent, "state": state, "deferred": _deferred(cur, device)})
        return out
    return db.run(work)


def _applied(cur: Cursor, device: str, channel: str, msg_id: str | None, seq: int | None) -> str:
    if channel == "mqtt":
        for (payload,) in cur.all("SELECT payload FROM replies WHERE device = ? AND msg_id = ?", (device, msg_id)):
            reply = json.loads(payload)
            return "applied" if reply["ok"] else f"refused: {reply.get('error')}"
        return "published, not yet applied"
    for (body,) in cur.all("SELECT body FROM entries WHERE device = ? AND kind = 'import'", (device,)):
        b = json.loads(body)
        if b.get("what") == "tasks" and b.get("bundle_seq") == seq:
            return "applied"
    return "bundle packed, not yet imported"


def _deferred(cur: Cursor, device: str) -> list[str]:
    """Tasks whose new version arrived while a handover of them ran there: it finished on its version."""
    return [json.loads(b)["task_id"] for (b,) in cur.all(
        "SELECT body FROM entries WHERE device = ? AND kind = 'task_change_deferred' ORDER BY seq", (device,))]


# --- personnel: the escort company's export in, the people each site needs out ---------------------

@dataclass(frozen=True)
class _Recipient:
    """Head office as the target of the escort company's export (protocol.bundle.DeviceKeysLike)."""
    device_id: str
    bundle_key: X25519PrivateKey


def _chunks(people: list[dict]) -> list[list[dict]]:
    """People in groups whose downlink stays under PEOPLE_PER_MESSAGE_BYTES (photos make them large)."""
    out: list[list[dict]] = []
    size = PEOPLE_PER_MESSAGE_BYTES
    for p in people:
        n = len(json.dumps(p, ensure_ascii=False).encode())
        if size + n > PEOPLE_PER_MESSAGE_BYTES:
            out.append([])
            size = 0
        out[-1].append(p)
        size += n
    return out


def hq_bundle_key(keys_dir: Path) -> X25519PrivateKey:
    return _x25519(keys_dir / HQ_BUNDLE_KEY)


def hq_enrolment_key(keys_dir: Path) -> X25519PrivateKey:
    return _x25519(keys_dir / HQ_ENROLMENT_KEY)


def _x25519(path: Path) -> X25519PrivateKey:
    """Head office's X25519 key at `path`, made on first use."""
    keys_dir = path.parent
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = X25519PrivateKey.generate()
        write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path} is not an X25519 key")
    return key


def import_personnel(db: Database, data: bytes, *, key: X25519PrivateKey, signers: list,
                     now: datetime | None = None) -> int:
    """Open the escort company's export (verified against `signers`, decrypted with head office's key,
    sequence higher than the last) and store its people; how many. Nothing changes on a refusal."""
    now = now or datetime.now(timezone.utc)
    last = db.run(lambda cur: cur.one("SELECT seq FROM bundle_seqs WHERE device = 'hq' AND kind = 'personnel-in'"))
    bundle = open_bundle(data, _Recipient("hq", key), signers, now, last[0] if last else 0, kind="personnel")
    people = bundle.payload.get("people")
    if not isinstance(people, list) or not people:
        raise ValueError("the export has no list 'people'")
    rows = []
    for i, p in enumerate(people):
        if not isinstance(p, dict) or not isinstance(p.get("person_id"), str) or not p["person_id"]:
            raise ValueError(f"people[{i}]: needs a person_id")
        try:
            messages.check("personnel", {"v": 1, "msg_id": "x", "site_id": "x",
                                         "people": [{k: v for k, v in p.items()
                                                     if k not in ("photo_data", "templates")}]})
        except messages.MessageError as exc:
            raise ValueError(f"people[{i}] ({p['person_id']}): {exc}") from None
        rows.append((p["person_id"], json.dumps(p, ensure_ascii=False), now.isoformat(timespec="seconds")))

    def work(cur: Cursor) -> None:
        cur.executemany("INSERT INTO hq_people (person_id, body, imported) VALUES (?, ?, ?) ON CONFLICT (person_id) "
                        "DO UPDATE SET body = excluded.body, imported = excluded.imported", rows)
        cur.execute("INSERT INTO bundle_seqs (device, kind, seq) VALUES ('hq', 'personnel-in', ?) "
                    "ON CONFLICT (device, kind) DO UPDATE SET seq = excluded.seq", (bundle.header.seq,))
    db.run(work)
    return len(rows)


def take_enrolments(db: Database, key: X25519PrivateKey, now: datetime | None = None) -> dict[str, str]:
    """Templates enrolled at branches (the `finger_enrolled` entries `serve` received) into head office's
    people, each entry once; {person_id: enrolling device} of the people updated."""
    stamp = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")

    def work(cur: Cursor) -> dict[str, str]:
        updated = {}
        for device, seq, raw in cur.all(
                "SELECT device, seq, body FROM entries e WHERE kind = 'finger_enrolled' AND NOT EXISTS "
                "(SELECT 1 FROM schedule_enrolments s WHERE s.device = e.device AND s.seq = e.seq) ORDER BY device, seq"):
            body = json.loads(raw)
            person_id = body.get("person_id")
            row = cur.one("SELECT body FROM hq_people WHERE person_id = ?", (person_id,))
            if body.get("template_for_hq") is None:
                outcome = "no template: the device has no head-office enrolment key"
            elif row is None:
                outcome = "person not in head office's personnel"
            else:
                try:
                    template = open_at_hq(body, key, device)
                except EnrolmentError as exc:
                    outcome = str(exc)
                else:
                    person = json.loads(row[0])
                    person["templates"] = [t for t in person.get("templates", []) if t.get("finger") != body["finger"]]
                    person["templates"].append({"finger": body["finger"], "duress": False,
                                                "data": base64.b64encode(template).decode()})
                    cur.execute("UPDATE hq_people SET body = ?, imported = ? WHERE person_id = ?",
                                (json.dumps(person, ensure_ascii=False), stamp, person_id))
                    updated[person_id] = device
                    outcome = "taken"
            cur.execute("INSERT INTO schedule_enrolments (device, seq, person_id, outcome, taken) VALUES (?, ?, ?, ?, ?)",
                        (device, seq, person_id, outcome, stamp))
        return updated
    return db.run(work)


def redistribute(db: Database, key: X25519PrivateKey, day: str, *, publisher: Publisher | None,
                 kit: BundleKit | None, timeout: float = 30.0, now: datetime | None = None) -> list[str]:
    """Take the templates enrolled at branches, and send the people they belong to wherever `day`'s tasks
    need them (not back to the terminal that enrolled them)."""
    now = now or datetime.now(timezone.utc)
    updated = take_enrolments(db, key, now)
    lines, waiting = [], {}
    if not updated:
        return ["no new template enrolled at a branch"]
    sites = db.run(lambda cur: cur.all("SELECT site_id, body FROM schedule_tasks WHERE day = ? ORDER BY site_id",
                                       (day,)))
    needs: dict[str, set[str]] = {}
    for site, body in sites:
        needs.setdefault(site, set()).update(set(people_needed([json.loads(body)])) & set(updated))
    for site, who in sorted(needs.items()):
        if not who:
            continue
        version, _ = schedule.tasks_payload(db, day, site)
        people = _people_payload(db, sorted(who))
        for device, state in devices_at(db, site):
            mine = [p for p in people if updated[p["person_id"]] != device]
            if not mine:
                continue
            if publisher is not None and state == "online":
                for group in _chunks(mine):
                    mid = publisher.send(device, "personnel", {"site_id": site, "people": group})
                    _record(db, day, site, version, device, "personnel", "mqtt", mid, None, now)
                    waiting[mid] = (site, device)
                lines.append(f"{site} {device}: {', '.join(p['person_id'] for p in mine)} sent over MQTT")
            elif kit is not None:
                lines += _pack(db, kit, day, site, version, device, None, mine, now)
            else:
                lines.append(f"{site} {device}: offline; {', '.join(p['person_id'] for p in mine)} not sent "
                             f"(give --usb DIR --keys K --identities D for a USB bundle)")
    if publisher is not None and waiting:
        got = publisher.wait(set(waiting), timeout)
        for msg_id, (site, device) in waiting.items():
            reply = got.get(msg_id)
            if reply is not None:
                db.reply(reply["device"], reply)
            lines.append(f"{site} {device}: personnel " + ("no reply yet" if reply is None else
                         "applied" if reply["ok"] else f"refused: {reply.get('error')}"))
    return lines


def _people_payload(db: Database, ids: list[str]) -> list[dict]:
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    return [json.loads(b) for (b,) in db.run(lambda cur: cur.all(
        f"SELECT body FROM hq_people WHERE person_id IN ({marks}) ORDER BY person_id", tuple(ids)))]


# --- handover-hq schedule ... | personnel ... -------------------------------------------------------

def register(subparsers) -> None:
    s = subparsers.add_parser("schedule", help="the day's schedule: import the dispatch, publish, status")
    sub = s.add_subparsers(dest="schedule_command", required=True)
    imp = sub.add_parser("import", help="check a dispatch CSV/XLSX whole and store it (nothing if a row is bad)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--db", default="hq.db")
    imp.add_argument("--tz", default=schedule.DEFAULT_TZ, help="the time zone of the windows (IANA name)")
    imp.set_defaults(func=_cmd_import)
    sites = sub.add_parser("sites", help="register sites from a CSV site_id,name,type")
    sites.add_argument("file", type=Path)
    sites.add_argument("--db", default="hq.db")
    sites.set_defaults(func=_cmd_sites)
    pub = sub.add_parser("publish", help="send each site's latest version of a day where it has not gone yet")
    pub.add_argument("--db", default="hq.db")
    pub.add_argument("--day", required=True)
    pub.add_argument("--site", action="append", default=[], help="only these sites")
    pub.add_argument("--again", action="store_true", help="send even what was sent before")
    pub.add_argument("--usb", type=Path, help="write USB bundles to this folder (for every device, or offline ones)")
    pub.add_argument("--usb-only", action="store_true", help="no MQTT: bundles for every device")
    pub.add_argument("--keys", type=Path, help="head office's keys (to sign bundles)")
    pub.add_argument("--identities", type=Path, help="folder of the devices' identity-<device>.json")
    pub.add_argument("--host")
    pub.add_argument("--port", type=int, default=8883)
    pub.add_argument("--ca")
    pub.add_argument("--cert")
    pub.add_argument("--key")
    pub.add_argument("--client-id", default="hq-schedule")
    pub.add_argument("--prefix", default="ht/v1")
    pub.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the terminals' replies")
    pub.set_defaults(func=_cmd_publish)
    st = sub.add_parser("status", help="per site and device: version sent, and whether it was applied")
    st.add_argument("--db", default="hq.db")
    st.add_argument("--day", required=True)
    st.set_defaults(func=_cmd_status)

    p = subparsers.add_parser("personnel", help="people from the escort company's encrypted export")
    psub = p.add_subparsers(dest="personnel_command", required=True)
    key = psub.add_parser("key", help="create (once) and print head office's public key the export is encrypted to")
    key.add_argument("--keys", type=Path, required=True)
    key.set_defaults(func=_cmd_personnel_key)
    ekey = psub.add_parser("enrolment-key", help="create (once) and print head office's enrolment public key "
                                                 "(install on terminals as keys/hq_enrolment.pem)")
    ekey.add_argument("--keys", type=Path, required=True)
    ekey.set_defaults(func=_cmd_enrolment_key)
    red = psub.add_parser("redistribute", help="take templates enrolled at branches and send them where the "
                                               "day's tasks need their people")
    red.add_argument("--db", default="hq.db")
    red.add_argument("--day", required=True)
    red.add_argument("--keys", type=Path, required=True)
    for name in ("--usb", "--identities"):
        red.add_argument(name, type=Path)
    for name in ("--host", "--ca", "--cert", "--key"):
        red.add_argument(name)
    red.add_argument("--port", type=int, default=8883)
    red.add_argument("--client-id", default="hq-schedule")
    red.add_argument("--prefix", default="ht/v1")
    red.add_argument("--timeout", type=float, default=30.0)
    red.set_defaults(func=_cmd_redistribute)
    pimp = psub.add_parser("import", help="import an export bundle (encrypted to head office, signed by the company)")
    pimp.add_argument("bundle", type=Path)
    pimp.add_argument("--db", default="hq.db")
    pimp.add_argument("--keys", type=Path, required=True)
    pimp.add_argument("--signer", type=Path, action="append", required=True, help="the company's signing key PEM")
    pimp.set_defaults(func=_cmd_personnel_import)


def _cmd_import(args) -> int:
    db = Database(args.db, retry_for=0).create_schema()
    try:
        result = schedule.import_schedule(db, args.file.read_bytes(), args.file.name, tz=args.tz)
    except schedule.ScheduleRejected as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"imported {result.rows} stop(s), {result.tasks} run(s) for {', '.join(result.days)}")
    for day, sites in result.changed.items():
        for site, version in sites.items():
            print(f"  {day} {site}: new version {version}")
    for day, sites in result.unchanged.items():
        print(f"  {day}: unchanged at {', '.join(sites)}")
    for where, ids in result.dropped.items():
        print(f"  {where}: no longer in the dispatch: {', '.join(ids)}")
    return 0


def _cmd_sites(args) -> int:
    db = Database(args.db, retry_for=0).create_schema()
    try:
        print(f"{schedule.import_sites(db, args.file.read_bytes())} site(s) registered")
    finally:
        db.close()
    return 0


def _cmd_publish(args) -> int:
    db = Database(args.db, retry_for=0).create_schema()
    kit = None
    if args.usb or args.usb_only:
        if not (args.usb and args.keys and args.identities):
            raise ValueError("USB bundles need --usb DIR --keys K --identities D")
        kit = BundleKit(HqKeys.load(args.keys), args.identities, args.usb)
    try:
        if args.usb_only or not args.host:
            lines = publish(db, args.day, publisher=None, kit=kit, usb_only=True, sites=args.site, again=args.again)
        else:
            if not (args.ca and args.cert and args.key):
                raise ValueError("publishing over MQTT needs --ca, --cert and --key")
            with Publisher(args.host, args.port, ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                           client_id=args.client_id, prefix=args.prefix) as publisher:
                lines = publish(db, args.day, publisher=publisher, kit=kit, sites=args.site, again=args.again,
                                timeout=args.timeout)
    finally:
        db.close()
    print("\n".join(lines) or f"no schedule stored for {args.day}")
    return 0


def _cmd_status(args) -> int:
    db = Database(args.db, retry_for=0).create_schema()
    try:
        rows = status(db, args.day)
    finally:
        db.close()
    if not rows:
        print(f"no schedule stored for {args.day}")
    for r in rows:
        if r["device"] is None:
            print(f"{r['site']}  latest v{r['latest']}  not sent")
            continue
        behind = "" if r["sent"] == r["latest"] else f" (latest is v{r['latest']})"
        line = f"{r['site']}  {r['device']}  v{r['sent']}{behind} via {r['channel']} at {r['at']}: {r['state']}"
        if r["deferred"]:
            line += f"; ran on its old version: {', '.join(r['deferred'])}"
        print(line)
    return 0


def _cmd_personnel_key(args) -> int:
    print(public_pem(hq_bundle_key(args.keys).public_key()).decode(), end="")
    return 0


def _cmd_personnel_import(args) -> int:
    db = Database(args.db, retry_for=0).create_schema()
    try:
        n = import_personnel(db, read_bundle_file(args.bundle), key=hq_bundle_key(args.keys),
                             signers=load_signers(args.signer))
    finally:
        db.close()
    print(f"imported {n} person(s)")
    return 0


def _cmd_enrolment_key(args) -> int:
    print(public_pem(hq_enrolment_key(args.keys).public_key()).decode(), end="")
    return 0


def _cmd_redistribute(args) -> int:
    db = Database(args.db, retry_for=0).create_schema()
    kit = BundleKit(HqKeys.load(args.keys), args.identities, args.usb) if args.usb and args.identities else None
    try:
        key = hq_enrolment_key(args.keys)
        if args.host:
            if not (args.ca and args.cert and args.key):
                raise ValueError("publishing over MQTT needs --ca, --cert and --key")
            with Publisher(args.host, args.port, ca_file=args.ca, cert_file=args.cert, key_file=args.key,
                           client_id=args.client_id, prefix=args.prefix) as publisher:
                lines = redistribute(db, key, args.day, publisher=publisher, kit=kit, timeout=args.timeout)
        else:
            lines = redistribute(db, key, args.day, publisher=None, kit=kit)
    finally:
        db.close()
    print("\n".join(lines))
    return 0
