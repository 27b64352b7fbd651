"""Importing tasks, personnel and provisioning, from a USB bundle or the MQTT downlink (SPEC §2.4, §5).

All or nothing: the whole content is parsed and checked before the first write; then the store rows,
the bundle sequence number and one journal entry "import" (counts, task ids and versions, person ids;
never names) commit in one `journal.transaction()`. Photos are content-addressed files written
(temp, fsync, rename) before that transaction: until it commits nothing refers to them. Fingerprint
templates go into the modules after the commit, so a module never holds a template the store does not.

Payloads (docs/bundles.md):
  tasks      {"tasks": [Task dict, ...]}
  personnel  {"people": [{person fields..., "photo_data": base64, "templates":
                          [{"finger": str, "data": base64, "duress": bool}]}], "remove": [person_id, ...]}
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.store import Store, Template
from flows.model import Person, Task
from offline.bundle import BundleRefused, open_bundle, split

log = logging.getLogger(__name__)

MAX_PHOTO_SIZE = 2 * 1024 * 1024
MAX_TEMPLATE_SIZE = 4096


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
    photo: bytes | None
    templates: tuple[Template, ...]


async def import_bundle(data: bytes, *, journal, store: Store, device_keys, trusted_signers: list,
                        fingerprint_modules: list, now: datetime, state_dir: Path | None = None) -> ImportOutcome:
    """Verify, decrypt and apply one bundle. A refused bundle changes nothing and says why."""
    kind = None
    try:
        kind = split(data).header().kind
    except BundleRefused:
        pass  # open_bundle below raises the same refusal, after the signature check
    try:
        # The header's kind picks which sequence to compare; it is trusted only once open_bundle verified it.
        bundle = open_bundle(data, device_keys, trusted_signers, now,
                             store.last_bundle_seq(kind) if kind else 0, kind=kind)
        kind, seq, body = bundle.header.kind, bundle.header.seq, bundle.payload
        if kind == "tasks":
            summary = apply_tasks(journal, store, _list(body, "tasks"), "usb", bundle_seq=seq)
        elif kind == "personnel":
            summary = await apply_personnel(journal, store, _list(body, "people"), fingerprint_modules, "usb",
                                            remove=_list(body, "remove", required=False), bundle_seq=seq)
        else:
            from offline.provisioning import install_provisioning
            if state_dir is None:
                raise ValueError("state_dir is required to install a provisioning bundle")
            summary = install_provisioning(body, journal=journal, store=store, device_keys=device_keys,
                                           state_dir=state_dir, bundle_seq=seq, now=now)
    except BundleRefused as refusal:
        log.warning("bundle refused: %s", refusal.code)
        return ImportOutcome(False, kind, {}, refusal.code, f"bundle.refused.{refusal.code}", refusal.message)
    except ValueError as exc:       # content that parsed but is not valid for its kind
        log.warning("bundle refused: bad_payload")
        return ImportOutcome(False, kind, {}, "bad_payload", "bundle.refused.bad_payload", str(exc))
    return ImportOutcome(True, kind, summary, None, f"bundle.imported.{kind}", _done_text(kind, summary))


# --- tasks ----------------------------------------------------------------------------------

def apply_tasks(journal, store: Store, tasks: list[dict], source: str, *, bundle_seq: int | None = None) -> dict:
    """Merge tasks (same id: the higher version wins) and journal what changed. ValueError names a bad field."""
    parsed = [Task.from_dict(_obj(t, f"tasks[{i}]")) for i, t in enumerate(tasks)]
    keys = [k for i, t in enumerate(tasks) for k in _box_keys(t, i)]
    with journal.transaction():
        stored = [[t.task_id, t.version] for t in parsed if store.upsert_task(t)]
        for tag, meta, file in keys:            # sealed apart: keys never enter the task body or the journal
            store.put_box_keys(tag, meta, file)
        summary = {"received": len(parsed), "stored": len(stored), "unchanged": len(parsed) - len(stored)}
        _finish(journal, store, "tasks", source, bundle_seq, {**summary, "tasks": stored})
    return summary


def _box_keys(task: dict, i: int) -> list[tuple[str, bytes, bytes]]:
    """Optional `box_keys: {TAG: {"meta": hex, "file": hex}}`: each box tag's NTAG 424 DNA SUN keys."""
    out = []
    for tag, k in (task.get("box_keys") or {}).items():
        where = f"tasks[{i}].box_keys.{tag}"
        try:
            meta, file = bytes.fromhex(k["meta"]), bytes.fromhex(k["file"])
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{where}: must be {{\"meta\": 32 hex digits, \"file\": 32 hex digits}}") from None
        if len(meta) != 16 or len(file) != 16:
            raise ValueError(f"{where}: keys must be 16 bytes (32 hex digits) each")
        out.append((str(tag).upper(), meta, file))
    return out


# --- personnel ------------------------------------------------------------------------------

async def apply_personnel(journal, store: Store, people: list[dict], modules: list, source: str, *,
                          remove: list | None = None, bundle_seq: int | None = None) -> dict:
    """Add or replace people with their photos and templates, remove others, then load the modules."""
    parsed = [_parse_person(_obj(p, f"people[{i}]"), i) for i, p in enumerate(people)]
    removals = [str(r) for r in (remove or [])]
    # Before the transaction: content-addressed files nothing refers to until it commits. In threads,
    # because each one waits on its own fsync.
    with ThreadPoolExecutor(max_workers=8) as pool:
        with_photo = [p for p in parsed if p.photo is not None]
        digests = pool.map(store.put_photo, [p.photo for p in with_photo])
        photos = {p.person.person_id: d for p, d in zip(with_photo, digests)}
    to_load: list[tuple[int, bytes]] = []
    cleared: list[int] = []
    with journal.transaction():
        for person_id in removals:
            cleared += store.remove_person(person_id)
        for p in parsed:
            photo = photos.get(p.person.person_id)
            if photo is None:  # no new photo: keep the enrolled one
                old = store.person(p.person.person_id)
                photo = old.photo if old else None
            store.upsert_person(dataclasses.replace(p.person, photo=photo))
            to_load += [(store.put_template(t), t.template) for t in p.templates]
        summary = {"people": len(parsed), "removed": len(removals), "photos": len(photos),
                   "templates": len(to_load)}
        _finish(journal, store, "personnel", source, bundle_seq,
                {**summary, "person_ids": [p.person.person_id for p in parsed], "removed_ids": removals})
    summary["modules"] = await _load_modules(modules, to_load, cleared)
    return summary


def _parse_person(d: dict, i: int) -> _NewPerson:
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
    return _NewPerson(person, photo, tuple(templates))


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
