"""Importing tasks, personnel and provisioning, from a USB bundle or the MQTT downlink (SPEC §2.4, §5).

All or nothing: the whole content is parsed and checked before the first write; then the store rows,
the bundle sequence number and one journal entry "import" (counts, task ids and versions, person ids;
never names) commit in one `journal.transaction()`. Photos are content-addressed files written
(temp, fsync, rename) before that transaction: until it commits nothing refers to them. Fingerprint
templates go into the modules after the commit, so a module never holds a template the store does not.

Payloads (docs/bundles.md):
  tasks      {"tasks": [Task dict, ...], "route_progress": [{"task_id", "site_id", "at", "status"}, ...]}
             (route_progress optional: what head office knew of other stops when it packed the bundle)
  personnel  {"people": [{person fields..., "photo_data": base64, "templates":
                          [{"finger": str, "data": base64, "duress": bool}]}], "remove": [person_id, ...]}
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import gc
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

from agent.journal import JournalError
from agent.store import Store, Template
from flows.model import Person, Task, site_names
from offline.provisioning import install_provisioning
from protocol.bundle import MAGIC, STREAMED_FORMAT, BundleRefused, open_bundle, open_streamed, read_bundle_file

log = logging.getLogger(__name__)

MAX_PHOTO_SIZE = 2 * 1024 * 1024
MAX_TEMPLATE_SIZE = 4096
PHOTOS_IN_FLIGHT = 16 * 1024 * 1024


@dataclass(frozen=True)
class ImportOutcome:
    ok: bool
    kind: str | None
    summary: dict
    code: str | None            # a REFUSAL_CODES entry when refused
    message_key: str            # key in offline/messages.json, for the screen
    message: str                # the precise reason, in English, for the technician and the log


@dataclass(frozen=True)
class _NewPerson:
    person: Person
    templates: tuple[Template, ...]


async def import_bundle(data: bytes, *, journal, store: Store, device_keys, trusted_signers: list,
                        fingerprint_modules: list, now: datetime, state_dir: Path | None = None) -> ImportOutcome:
    """Verify, decrypt and apply one bundle. A refused bundle changes nothing and says why."""
    kind = None
    try:
        # The signature is checked before the header is read; the header's kind then picks which
        # sequence to compare.
        with collector_paused():
            bundle = open_bundle(data, device_keys, trusted_signers, now, store.last_bundle_seq, item_texts="tasks")
        kind, seq, body = bundle.header.kind, bundle.header.seq, bundle.payload
        if kind == "tasks":
            summary = apply_tasks(journal, store, _list(body, "tasks"), "usb", bundle_seq=seq,
                                  progress=_list(body, "route_progress", required=False), sites=body.get("sites"),
                                  texts=bundle.item_texts)
        elif kind == "personnel":
            summary = await apply_personnel(journal, store, _list(body, "people"), fingerprint_modules, "usb",
                                            remove=_list(body, "remove", required=False), bundle_seq=seq)
        else:
            if state_dir is None:
                raise ValueError("state_dir is required to install a provisioning bundle")
            summary = install_provisioning(body, journal=journal, store=store, device_keys=device_keys,
                                           state_dir=state_dir, bundle_seq=seq, now=now)
    except BundleRefused as refusal:
        log.warning("bundle refused: %s", refusal.code)
        return ImportOutcome(False, kind, {}, refusal.code, f"bundle.refused.{refusal.code}", refusal.message)
    except ValueError as exc:       # content that parsed but is not valid for its kind: the model names the field
        log.warning("bundle refused: bad_payload")
        return ImportOutcome(False, kind, {}, "bad_payload", "bundle.refused.bad_payload", str(exc))
    except JournalError:
        raise                       # nothing was refused: the device could not write; the bundle stays queued
    except Exception as exc:        # a shape no check foresaw must still be a refusal, never a wedged inbox
        log.error("bundle refused: bad_payload (%s while importing)", type(exc).__name__)
        return ImportOutcome(False, kind, {}, "bad_payload", "bundle.refused.bad_payload",
                             f"the {kind or 'bundle'} content could not be used ({type(exc).__name__})")
    return ImportOutcome(True, kind, summary, None, f"bundle.imported.{kind}", _done_text(kind, summary))


async def import_bundle_file(path: Path, *, journal, store: Store, device_keys, trusted_signers: list,
                             fingerprint_modules: list, now: datetime, state_dir: Path) -> ImportOutcome:
    """Import a bundle file of either format: format 2 (streamed) is never read whole into memory."""
    try:
        with open(path, "rb") as f:
            streamed = f.read(4) == MAGIC + str(STREAMED_FORMAT).encode()
        if not streamed:
            data = read_bundle_file(path)
    except BundleRefused as refusal:
        return ImportOutcome(False, None, {}, refusal.code, f"bundle.refused.{refusal.code}", refusal.message)
    if not streamed:
        return await import_bundle(data, journal=journal, store=store, device_keys=device_keys,
                                   trusted_signers=trusted_signers, fingerprint_modules=fingerprint_modules,
                                   now=now, state_dir=state_dir)
    kind = None
    try:
        bundle = open_streamed(path, device_keys, trusted_signers, now, store.last_bundle_seq)
        kind, seq = bundle.header.kind, bundle.header.seq
        if kind == "tasks":
            progress: list = []
            sites: dict = {}
            summary = apply_tasks(journal, store, _tasks_stops_and_sites(bundle.records(), progress, sites), "usb",
                                  bundle_seq=seq, progress=progress, sites=sites)
        elif kind == "personnel":
            removals: list = []
            people = _people_and_removals(bundle.records(), removals)
            summary = await apply_personnel(journal, store, people, fingerprint_modules, "usb",
                                            remove=removals, bundle_seq=seq)
        else:
            raise BundleRefused("malformed", "provisioning bundles are not streamed")
    except BundleRefused as refusal:
        log.warning("bundle refused: %s", refusal.code)
        return ImportOutcome(False, kind, {}, refusal.code, f"bundle.refused.{refusal.code}", refusal.message)
    except ValueError as exc:
        log.warning("bundle refused: bad_payload")
        return ImportOutcome(False, kind, {}, "bad_payload", "bundle.refused.bad_payload", str(exc))
    except JournalError:
        raise
    except Exception as exc:
        log.error("bundle refused: bad_payload (%s while importing)", type(exc).__name__)
        return ImportOutcome(False, kind, {}, "bad_payload", "bundle.refused.bad_payload",
                             f"the {kind or 'bundle'} content could not be used ({type(exc).__name__})")
    return ImportOutcome(True, kind, summary, None, f"bundle.imported.{kind}", _done_text(kind, summary))


def _tasks_stops_and_sites(records: Iterable[dict], stops: list, sites: dict) -> Iterator[dict]:
    """The tasks of a streamed tasks payload; {"stop": ...} records (route progress) are collected and
    {"sites": {id: name}} records merged into `sites` on the way."""
    for n, record in enumerate(records, 1):
        if "task" in record:
            yield record["task"]
        elif "stop" in record:
            stops.append(record["stop"])
        elif "sites" in record:
            sites.update(_obj(record["sites"], f"line {n}: sites"))
        else:
            raise ValueError(f"line {n}: expected a {{\"task\": ...}}, {{\"stop\": ...}} or {{\"sites\": ...}} record")


def _people_and_removals(records: Iterable[dict], removals: list) -> Iterator[dict]:
    """The persons of a streamed personnel payload; {"remove": id} records are collected on the way."""
    for n, record in enumerate(records, 1):
        if "person" in record:
            yield record["person"]
        elif "remove" in record:
            removals.append(record["remove"])
        else:
            raise ValueError(f"line {n}: expected a {{\"person\": ...}} or {{\"remove\": id}} record")


# --- tasks ----------------------------------------------------------------------------------

def apply_tasks(journal, store: Store, tasks: Iterable[dict], source: str, *, bundle_seq: int | None = None,
                progress: Iterable[dict] = (), sites=None, texts: list[str] | None = None) -> dict:
    """Merge tasks (same id: the higher version wins) and journal what changed. ValueError names a bad field.
    `progress`: route progress carried beside the tasks (a bundle for an offline site), applied with them.
    `sites` is the payload's optional {site_id: name} map, shown where a site code would mean little.
    `texts`: each task's JSON as the bundle holds it (protocol.bundle.loads_keeping_texts), stored as is."""
    with collector_paused():
        return _apply_tasks(journal, store, tasks, source, bundle_seq, progress, sites, texts)


def _apply_tasks(journal, store: Store, tasks: Iterable[dict], source: str, bundle_seq: int | None,
                 progress: Iterable[dict], sites, texts: list[str] | None) -> dict:
    parsed, keys = [], []
    for i, t in enumerate(tasks):      # one pass: `tasks` may be a stream of records
        parsed.append(Task.row_from_dict(_obj(t, f"tasks[{i}]"), texts[i] if texts else None))
        if "box_keys" in t:
            keys += _box_keys(t, i)
    stops = check_route_progress(list(progress), "route_progress")
    names = site_names(sites) if sites is not None else {}     # after the stream: it may fill `sites`
    with journal.transaction():
        stored = [[r.task_id, r.version] for r in store.upsert_task_rows(parsed)]
        for tag, meta, file in keys:            # sealed apart: keys never enter the task body or the journal
            store.put_box_keys(tag, meta, file)
        record_route_progress(journal, store, stops)
        store.put_site_names(names)
        summary = {"received": len(parsed), "stored": len(stored), "unchanged": len(parsed) - len(stored)}
        if stops:
            summary["stops"] = len(stops)
        _finish(journal, store, "tasks", source, bundle_seq, {**summary, "tasks": stored})
    return summary


_pauses = 0
_pauses_lock = threading.Lock()
_collector_was_on = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector held off while a bundle is parsed and a day's tasks applied (no await
    inside). Parsing allocates ~100,000 objects per 10,000 tasks, which sets off full passes over the
    whole heap (50-150 ms each here, two per import) that find nothing: JSON and rows hold no cycles,
    reference counting frees them. Counted, so an import on the downlink thread and one from USB at
    the same time leave the collector as it was found."""
    global _pauses, _collector_was_on
    with _pauses_lock:
        if _pauses == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_on:
                gc.enable()


# --- route progress: which other stops of a route are done or were skipped (SPEC §2.3 route skip) ---

STOP_STATUSES = ("done", "skipped")


def check_route_progress(stops: list, where: str) -> list[dict]:
    """Each stop {task_id, site_id, at (ISO 8601 with offset), status?}; ValueError names the bad one."""
    out = []
    for i, stop in enumerate(stops):
        at = f"{where}[{i}]"
        _obj(stop, at)
        for key in ("task_id", "site_id", "at"):
            if not isinstance(stop.get(key), str) or not stop[key]:
                raise ValueError(f"{at}.{key}: must be a non-empty string")
        try:
            moment = datetime.fromisoformat(stop["at"])
        except ValueError:
            raise ValueError(f"{at}.at: {stop['at']!r} is not an ISO 8601 date-time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{at}.at: {stop['at']!r} has no time zone offset")
        status = stop.get("status", "done")
        if status not in STOP_STATUSES:
            raise ValueError(f"{at}.status: must be one of {', '.join(STOP_STATUSES)}")
        out.append({"task_id": stop["task_id"], "site_id": stop["site_id"], "at": stop["at"], "status": status})
    return out


def record_route_progress(journal, store: Store, stops: list[dict]) -> None:
    """Store and journal checked stops (inside the caller's transaction, if any)."""
    for stop in stops:
        if stop["status"] == "skipped":
            store.record_stop_skipped(stop["task_id"], stop["site_id"], stop["at"])
        else:
            store.record_stop_done(stop["task_id"], stop["site_id"], stop["at"])
        journal.append("route_progress", dict(stop), task_id=stop["task_id"])


def _box_keys(task: dict, i: int) -> list[tuple[str, bytes, bytes]]:
    """Optional `box_keys: {TAG: {"meta": hex, "file": hex}}`: each box tag's NTAG 424 DNA SUN keys."""
    out = []
    keys = task.get("box_keys") or {}
    if not isinstance(keys, dict):
        raise ValueError(f"tasks[{i}].box_keys: must be an object {{TAG: {{\"meta\": hex, \"file\": hex}}}}")
    for tag, k in keys.items():
        where = f"tasks[{i}].box_keys.{tag}"
        try:
            meta, file = bytes.fromhex(k["meta"]), bytes.fromhex(k["file"])
        except (TypeError, KeyError, ValueError, IndexError):
            raise ValueError(f"{where}: must be {{\"meta\": 32 hex digits, \"file\": 32 hex digits}}") from None
        if len(meta) != 16 or len(file) != 16:
            raise ValueError(f"{where}: keys must be 16 bytes (32 hex digits) each")
        out.append((str(tag).upper(), meta, file))
    return out


# --- personnel ------------------------------------------------------------------------------

async def apply_personnel(journal, store: Store, people: Iterable[dict], modules: list, source: str, *,
                          remove: list | None = None, bundle_seq: int | None = None) -> dict:
    """Add or replace people with their photos and templates, remove others, then load the modules.

    `people` may be a stream: each photo is written as its person is read (content-addressed, before
    the transaction: nothing refers to it until that commits), so only ids, templates and digests stay
    in memory. In threads, because each photo waits on its own fsync; at most 8 in flight."""
    parsed: list[_NewPerson] = []
    with _PhotoWriter(store) as writer:
        for i, p in enumerate(people):
            new, photo = _parse_person(_obj(p, f"people[{i}]"), i)
            if photo is not None:       # kept by the writer only until it is on disk
                writer.put(new.person.person_id, photo)
            parsed.append(new)
        photos = writer.digests()
        removals = [_person_id(r, f"remove[{i}]") for i, r in enumerate(remove or [])]
        cleared: list[int] = []
        with journal.transaction():
            for person_id in removals:
                cleared += store.remove_person(person_id)
            kept = []
            for p in parsed:
                photo = photos.get(p.person.person_id)
                if photo is None:  # no new photo: keep the enrolled one
                    old = store.person(p.person.person_id)
                    photo = old.photo if old else None
                kept.append(dataclasses.replace(p.person, photo=photo))
            store.upsert_people(kept)
            templates = [t for p in parsed for t in p.templates]
            to_load = list(zip(store.put_templates(templates), (t.template for t in templates)))
            summary = {"people": len(parsed), "removed": len(removals), "photos": len(photos),
                       "templates": len(to_load)}
            _finish(journal, store, "personnel", source, bundle_seq,
                    {**summary, "person_ids": [p.person.person_id for p in parsed], "removed_ids": removals})
        writer.committed()
    summary["modules"] = await _load_modules(modules, to_load, cleared)
    return summary


class _PhotoWriter:
    """Photos written as their people are read: content-addressed and fsynced before the transaction
    (their names with one directory fsync for all, in digests), in threads (each waits on its own fsync;
    hashing and sealing are there too). At most PHOTOS_IN_FLIGHT bytes wait for them, so a stream stays
    small, yet the threads always have the next photos at hand on a busy machine. The files this
    import added are removed again unless it commits: a refused import leaves nothing behind."""

    def __init__(self, store: Store):
        self.store = store
        self.pool = ThreadPoolExecutor(max_workers=8)
        self.writing: dict[str, Future] = {}
        self.room = threading.Condition()
        self.queued = 0             # bytes of photos handed to the threads and not yet written
        self.done = False

    def __enter__(self) -> "_PhotoWriter":
        return self

    def put(self, person_id: str, photo: bytes) -> None:
        with self.room:
            self.room.wait_for(lambda: not self.queued or self.queued + len(photo) <= PHOTOS_IN_FLIGHT)
            self.queued += len(photo)
        self.writing[person_id] = self.pool.submit(self._write, photo)

    def _write(self, photo: bytes) -> tuple[str, bool]:
        try:
            return self.store.write_photo(photo, sync_name=False)
        finally:
            with self.room:
                self.queued -= len(photo)
                self.room.notify()

    def digests(self) -> dict[str, str]:
        """Once every photo is written: their names made durable with one directory fsync, before the
        transaction that refers to them."""
        out = {person_id: f.result()[0] for person_id, f in self.writing.items()}
        if out:
            self.store.sync_photo_names()
        return out

    def committed(self) -> None:
        self.done = True

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)
        if not self.done:
            for f in self.writing.values():
                if not f.exception() and f.result()[1]:
                    self.store.discard_photo(f.result()[0])


def _parse_person(d: dict, i: int) -> tuple[_NewPerson, bytes | None]:
    d = dict(d)
    photo_b64 = d.pop("photo_data", None)
    raw_templates = d.pop("templates", [])
    d.pop("photo", None)  # a hash is the device's business, not the sender's
    person = Person.from_dict(d)
    where = f"person {person.person_id}"
    photo = _b64(photo_b64, f"{where}.photo_data", MAX_PHOTO_SIZE) if photo_b64 is not None else None
    if not isinstance(raw_templates, list):
        raise ValueError(f"{where}.templates: must be a list")
    templates = []
    for j, t in enumerate(raw_templates):
        t = _obj(t, f"{where}.templates[{j}]")
        finger = t.get("finger")
        if not isinstance(finger, str) or not finger:
            raise ValueError(f"{where}.templates[{j}].finger: must name the finger, e.g. right_index")
        duress = t.get("duress", False)
        if not isinstance(duress, bool):
            raise ValueError(f"{where}.templates[{j}].duress: must be true or false")
        data = _b64(t.get("data"), f"{where}.templates[{j}].data", MAX_TEMPLATE_SIZE)
        templates.append(Template(person.person_id, finger, data, duress))
    return _NewPerson(person, tuple(templates)), photo


async def _load_modules(modules: list, to_load: list[tuple[int, bytes]], cleared: list[int]) -> dict:
    """Each module's outcome; a module that fails is reported, the committed import stands."""
    result = {}
    for m in modules:
        name = getattr(m, "station", getattr(m, "name", "module"))
        try:
            m.update_library(dict(to_load), cleared)    # what a failed load leaves, the module's sync retries
            if cleared:
                await m.delete_slots(cleared)
            for slot, template in to_load:
                await m.load_template(slot, template)
            result[name] = {"ok": True, "loaded": len(to_load), "cleared": len(cleared)}
        except Exception as exc:  # a driver error must not undo the import: report it on the screen
            log.error("loading templates into %s failed: %s", name, type(exc).__name__)
            result[name] = {"ok": False, "error": type(exc).__name__}
    return result


# --- shared ---------------------------------------------------------------------------------

def _finish(journal, store: Store, what: str, source: str, bundle_seq: int | None, body: dict) -> None:
    if bundle_seq is not None:
        store.set_bundle_seq(what, bundle_seq)
    journal.append("import", {"what": what, "source": source, "bundle_seq": bundle_seq, **body})


def _list(body: dict, key: str, *, required: bool = True) -> list:
    v = body.get(key, None if required else [])
    if not isinstance(v, list):
        raise ValueError(f"the bundle content needs a list '{key}'")
    return v


def _person_id(v, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"{where}: a person id must be non-empty text")
    return v


def _obj(v, where: str) -> dict:
    if not isinstance(v, dict):
        raise ValueError(f"{where}: must be a JSON object")
    return v


def _b64(v, where: str, limit: int) -> bytes:
    if not isinstance(v, str):
        raise ValueError(f"{where}: must be base64 text")
    try:
        out = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: is not valid base64") from None
    if not out or len(out) > limit:
        raise ValueError(f"{where}: must be 1 to {limit} bytes, got {len(out)}")
    return out


def _done_text(kind: str, s: dict) -> str:
    if kind == "tasks":
        return f"{s['stored']} tasks imported, {s['unchanged']} already up to date"
    if kind == "personnel":
        return f"{s['people']} people and {s['templates']} fingerprints imported, {s['removed']} removed"
    return f"device provisioned for site {s.get('site_id')}"
