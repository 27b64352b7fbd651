"""USB sticks: find bundles, copy them in, import them; write a new device's identity (SPEC §5).

How insertion reaches us (docs/bundles.md): a udev rule starts the templated unit, which runs
`handover-agent usb-import --device /dev/%I` (`usb_import_main`). That short-lived, privileged step
mounts the stick read-only, copies each bundle whole into `<state_dir>/inbox/` (temp, fsync, rename),
writes the identity of a device that is not provisioned yet (the only write to a stick), and unmounts.
The daemon, which owns the journal and the fingerprint modules, imports what is in the inbox
(`drain_inbox`). A stick pulled mid-read leaves no file in the inbox, so nothing is half-imported.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from protocol.bundle import HEADER_PEEK_SIZE, MAX_STREAMED_SIZE, BundleRefused, peek_header
from offline.importers import ImportOutcome, import_bundle_file
from protocol.keys import DeviceKeys
from offline.provisioning import IDENTITY_DIR, is_provisioned, write_identity

log = logging.getLogger(__name__)

BUNDLE_SUFFIX = ".htb"
MAX_BUNDLES_PER_STICK = 1000   # a guard against a stick of junk, far above a real day's bundles
REFUSED_DIR = "refused"
_CHUNK = 1024 * 1024


@dataclass
class Collected:
    copied: list[Path] = field(default_factory=list)       # files now in the inbox
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (file name, message key, message)
    identity_written: Path | None = None


def find_bundles(mount_dir: Path) -> list[Path]:
    """*.htb regular files at the top of the stick and in its handover/ folder; links are not followed."""
    found = []
    for folder in (Path(mount_dir), Path(mount_dir) / IDENTITY_DIR):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        found += [Path(e.path) for e in entries
                  if e.name.endswith(BUNDLE_SUFFIX) and not e.name.startswith(".") and e.is_file(follow_symlinks=False)]
    return found


def copy_in(src: Path, inbox: Path) -> Path:
    """Copy one bundle whole into the inbox, or not at all. Raises OSError or BundleRefused("oversized")."""
    inbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    part = None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise BundleRefused("malformed", f"{src.name} is not a regular file")
            if os.fstat(f.fileno()).st_size > MAX_STREAMED_SIZE:
                raise BundleRefused("oversized", f"{src.name} is larger than the {MAX_STREAMED_SIZE} bytes allowed")
            digest = hashlib.sha256()
            out = tempfile.NamedTemporaryFile(dir=inbox, prefix=".", suffix=".part", delete=False)
            part = Path(out.name)
            with out:
                size = 0
                while chunk := f.read(_CHUNK):
                    size += len(chunk)
                    if size > MAX_STREAMED_SIZE:  # the file grew, or the size lied
                        raise BundleRefused("oversized", f"{src.name} is larger than {MAX_STREAMED_SIZE} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        # Named by content: the same bundle on two sticks lands once.
        final = inbox / f"{digest.hexdigest()[:32]}{BUNDLE_SUFFIX}"
        os.replace(part, final)
        part = None
        return final
    finally:
        if part is not None:
            part.unlink(missing_ok=True)


def collect(mount_dir: Path, inbox: Path) -> Collected:
    result = Collected()
    try:
        candidates = find_bundles(mount_dir)
    except OSError as exc:
        result.errors.append(("", "usb.read_failed", f"the stick could not be read ({exc.strerror})"))
        return result
    for src in candidates[MAX_BUNDLES_PER_STICK:]:    # said, never skipped silently
        result.errors.append((src.name, "usb.too_many",
                              f"{src.name} was not read: a stick holds at most {MAX_BUNDLES_PER_STICK} bundles"))
    for src in candidates[:MAX_BUNDLES_PER_STICK]:
        try:
            result.copied.append(copy_in(src, inbox))
        except BundleRefused as refusal:
            result.errors.append((src.name, f"bundle.refused.{refusal.code}", refusal.message))
        except OSError as exc:
            result.errors.append((src.name, "usb.read_failed",
                                  f"reading {src.name} failed ({exc.strerror or exc}): the stick was removed or is "
                                  "damaged; nothing from this file was imported"))
    return result


async def drain_inbox(inbox: Path, *, journal, store, device_keys, trusted_signers, fingerprint_modules,
                      now: datetime, state_dir: Path) -> list[tuple[str, ImportOutcome]]:
    """Import every bundle in the inbox, oldest sequence first per kind, and take each one out after.

    A refusal is journaled ("import_refused", the code and the file's hash) and the file moves to
    `<state_dir>/refused/` (kept for the technician, counted by `refused_count`); nothing else changes.
    Whatever a file holds, it leaves the inbox: one bad file never holds back the ones after it. Only a
    journal that cannot be written (JournalError) stops the drain, leaving the files for the next try.
    """
    files = sorted(Path(inbox).glob(f"*{BUNDLE_SUFFIX}"), key=_order_key) if Path(inbox).is_dir() else []
    results = []
    for path in files:
        try:
            outcome = await import_bundle_file(path, journal=journal, store=store, device_keys=device_keys,
                                               trusted_signers=trusted_signers,
                                               fingerprint_modules=fingerprint_modules, now=now, state_dir=state_dir)
        except FileNotFoundError:
            continue                    # another drain took it
        if outcome.ok:
            path.unlink()
        else:
            journal.append("import_refused", {"code": outcome.code, "kind": outcome.kind, "source": "usb",
                                              "sha256": _sha256(path), "file": path.name})
            refused = Path(state_dir) / REFUSED_DIR
            refused.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, refused / path.name)
        results.append((path.name, outcome))
    return results


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def refused_count(state_dir: Path) -> int:
    """Refused bundles kept for the technician (docs/bundles.md)."""
    folder = Path(state_dir) / REFUSED_DIR
    return sum(1 for _ in folder.glob(f"*{BUNDLE_SUFFIX}")) if folder.is_dir() else 0


async def usb_import(mount_dir: Path, *, state_dir: Path, journal, store, device_keys: DeviceKeys,
                     trusted_signers, fingerprint_modules, now: datetime) -> tuple[Collected, list]:
    """Everything an insertion does, in one process (simulator, tests, or a daemon that watches sticks)."""
    collected = collect_and_identify(Path(mount_dir), Path(state_dir), device_keys, now)
    outcomes = await drain_inbox(Path(state_dir) / "inbox", journal=journal, store=store, device_keys=device_keys,
                                 trusted_signers=trusted_signers, fingerprint_modules=fingerprint_modules,
                                 now=now, state_dir=Path(state_dir))
    return collected, outcomes


def collect_and_identify(mount_dir: Path, state_dir: Path, device_keys: DeviceKeys, now: datetime,
                         *, make_writable=None) -> Collected:
    """Copy bundles in; if the device is not provisioned yet, leave its identity on the stick."""
    collected = collect(mount_dir, state_dir / "inbox")
    if not is_provisioned(state_dir):
        try:
            if make_writable:
                make_writable()
            collected.identity_written = write_identity(mount_dir, device_keys, now)
        except OSError as exc:
            collected.errors.append(("", "usb.identity_failed",
                                     f"the device identity could not be written to the stick ({exc.strerror or exc})"))
    return collected


def _order_key(path: Path) -> tuple:
    try:  # ordering only, from the bounded header; nothing is trusted before import_bundle verifies it
        with open(path, "rb") as f:
            h = peek_header(f.read(HEADER_PEEK_SIZE))
        return (h.kind, h.seq, path.name)
    except (BundleRefused, OSError):
        return ("", 0, path.name)


# --- the command the udev-started unit runs ---------------------------------------------------

def usb_import_main(argv: list[str] | None = None) -> int:
    """`handover-agent usb-import (--device /dev/sdX1 | --dir PATH) --state-dir DIR --device-id ID`.

    Exit 0: the stick was read (refused bundles are reported by the daemon); 2: the stick could not be read.
    """
    p = argparse.ArgumentParser(prog="handover-agent usb-import", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--device", help="block device to mount read-only, e.g. /dev/sdb1")
    src.add_argument("--dir", type=Path, help="an already mounted stick, or a directory standing in for one")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--device-id", required=True)
    args = p.parse_args(argv)
    keys = DeviceKeys.load_or_create(args.state_dir / "keys", args.device_id)
    now = datetime.now(timezone.utc)
    if args.dir:
        collected = collect_and_identify(args.dir, args.state_dir, keys, now)
    else:
        with tempfile.TemporaryDirectory(prefix="handover-usb-") as mnt:
            try:
                _run(["mount", "-o", "ro,nosuid,nodev,noexec", args.device, mnt])
            except OSError as exc:
                print(f"usb-import: cannot mount {args.device}: {exc}", file=sys.stderr)
                return 2
            try:
                collected = collect_and_identify(
                    Path(mnt), args.state_dir, keys, now,
                    make_writable=lambda: _run(["mount", "-o", "remount,rw,nosuid,nodev,noexec", args.device, mnt]))
            finally:
                subprocess.run(["umount", mnt], check=False, capture_output=True)
    for name in collected.copied:
        print(f"usb-import: queued {name.name} for import")
    if collected.identity_written:
        print(f"usb-import: device identity written to {collected.identity_written.name}")
    for name, _key, message in collected.errors:
        print(f"usb-import: {name or 'stick'}: {message}", file=sys.stderr)
    return 2 if any(key == "usb.read_failed" for _, key, _ in collected.errors) else 0


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise OSError(r.returncode, r.stderr.strip() or f"{cmd[0]} failed")
