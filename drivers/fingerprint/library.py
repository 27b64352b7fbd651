"""What a module's library holds, kept across restarts, and the steps that bring it to what is wanted.

The record says which template (by hash) is in which slot of one physical module, recognised by an id
the driver writes into the module's notepad. At start and after a reconnect the driver compares it with
the module (TemplateNum, ReadIndexTable, the notepad id) and loads only the difference, one step at a
time between two polls, so a library of a thousand people never holds up the daemon or the door.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


def template_hash(template: bytes) -> str:
    return hashlib.sha256(template).hexdigest()[:32]


@dataclass
class LibraryRecord:
    path: Path | None = None
    module_id: bytes | None = None         # 16 bytes from the module's notepad page 0
    template_size: int | None = None       # learnt from the module (read back), 512 or 768
    slots: dict[int, str] = field(default_factory=dict)   # slot -> template_hash

    @classmethod
    def load(cls, path) -> "LibraryRecord":
        path = Path(path) if path is not None else None
        if path is None or not path.exists():
            return cls(path)
        try:
            raw = json.loads(path.read_text())
            size = raw.get("template_size")
            if size not in (None, 512, 768):
                raise ValueError(f"template_size {size!r}")
            module_id = bytes.fromhex(raw["module_id"]) if raw.get("module_id") else None
            if module_id is not None and len(module_id) != 16:
                raise ValueError("module_id is not 16 bytes")
            return cls(path, module_id, size, {int(k): str(v) for k, v in raw.get("slots", {}).items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # a damaged record only costs a full comparison: start from nothing known
            log.warning("fingerprint library record %s unreadable (%s): the module will be checked afresh",
                        path, type(exc).__name__)
            return cls(path)

    def save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"module_id": self.module_id.hex() if self.module_id else None,
                                   "template_size": self.template_size,
                                   "slots": {str(k): v for k, v in sorted(self.slots.items())}}))
        os.replace(tmp, self.path)

    @staticmethod
    def new_module_id() -> bytes:
        while True:
            new = os.urandom(16)
            if new.strip(b"\x00") and new.strip(b"\xff"):    # never what an erased notepad reads
                return new

    def sample(self, n: int = 3) -> list[tuple[int, str]]:
        """A few recorded slots spread over the library, to compare by UpChar when there is no notepad."""
        items = sorted(self.slots.items())
        if len(items) <= n:
            return items
        step = len(items) / n
        return [items[int(i * step)] for i in range(n)]


@dataclass
class SyncPlan:
    """Which slots the module holds (from the last comparison) and which loads failed."""
    occupied: set[int] = field(default_factory=set)
    compared: bool = False
    failed: dict[int, tuple[str, bool]] = field(default_factory=dict)   # slot -> (error, permanent)
    last_check: float = 0.0

    def checked(self, now: float) -> None:
        self.compared = True
        self.last_check = now
        self.failed = {s: f for s, f in self.failed.items() if f[1]}    # the others are tried again

    def fail(self, slot: int, error: str, permanent: bool) -> None:
        self.failed[slot] = (error, permanent)

    def retry_due(self, now: float, interval: float) -> bool:
        return any(not permanent for _, permanent in self.failed.values()) and now - self.last_check >= interval

    def next_step(self, wanted: dict[int, bytes], record: LibraryRecord):
        """("delete", slot, None) for a slot nobody wants, ("load", slot, template) for one that differs."""
        if not self.compared:
            return None
        for slot in sorted(self.occupied - wanted.keys()):
            if slot not in self.failed:
                return "delete", slot, None
        for slot in sorted(wanted):
            if slot not in self.failed and record.slots.get(slot) != template_hash(wanted[slot]):
                return "load", slot, wanted[slot]
        return None

    def pending(self, wanted: dict[int, bytes], record: LibraryRecord) -> bool:
        return not self.compared or self.next_step(wanted, record) is not None

    def summary(self, wanted: dict[int, bytes], record: LibraryRecord) -> dict:
        loaded = sum(1 for s, t in wanted.items() if record.slots.get(s) == template_hash(t))
        errors = [error for error, _ in self.failed.values()]
        return {"library": {"wanted": len(wanted), "loaded": loaded, "failed": len(self.failed),
                            "error": errors[0] if errors else None}}
