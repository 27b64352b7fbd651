"""A power-cut model for the agent's files: what survives is only what was synced.

SIGKILL leaves the page cache to the kernel, so it proves crash safety only. Here every write to the
journal's SQLite files is kept as "pending" until the file is synced; at a cut the files are rebuilt
from what was synced — all pending writes dropped, or (a torn cut) a random subset of them kept, which
is what a disk that reorders its cache may leave. Plain files the agent writes (keys, photos, reports)
follow the same rule with POSIX's extra step: a new or renamed name survives only once its directory
has been fsynced.

How: a VFS shim registered as the default VFS in the same libsqlite3 the `sqlite3` module is linked
to (ctypes; APSW's wheel links its own SQLite, so a VFS registered there never sees the stdlib's
connections). It opens files through the real unix VFS and swaps in a copy of its io methods whose
xWrite, xTruncate and xSync also tell the model. The -shm file is not modelled: SQLite rebuilds the
WAL index from the WAL after a crash. Plain files are seen through an audit hook (open, rename) and
a recording wrapper around os.fsync that calls the real one.

A new file's name counts as durable from its first sync: SQLite fsyncs the directory on a WAL's or
rollback journal's first sync itself, and ext4 commits a new file's entry with its first fsync.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import shutil
import sqlite3
import stat
import sys
import threading
from pathlib import Path
from typing import Callable, Container

_lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
_lib.sqlite3_libversion.restype = ctypes.c_char_p
_lib.sqlite3_vfs_find.restype = ctypes.c_void_p
_lib.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
_lib.sqlite3_vfs_register.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.sqlite3_vfs_unregister.argtypes = [ctypes.c_void_p]

SQLITE_OK = 0
SQLITE_IOERR = 10
_TRACKED_TYPES = 0x100 | 0x800 | 0x80000          # SQLITE_OPEN_MAIN_DB | MAIN_JOURNAL | WAL

_VFS_FIELDS = ["xOpen", "xDelete", "xAccess", "xFullPathname", "xDlOpen", "xDlError", "xDlSym", "xDlClose",
               "xRandomness", "xSleep", "xCurrentTime", "xGetLastError", "xCurrentTimeInt64",
               "xSetSystemCall", "xGetSystemCall", "xNextSystemCall"]
_IO_FIELDS = ["xClose", "xRead", "xWrite", "xTruncate", "xSync", "xFileSize", "xLock", "xUnlock",
              "xCheckReservedLock", "xFileControl", "xSectorSize", "xDeviceCharacteristics", "xShmMap",
              "xShmLock", "xShmBarrier", "xShmUnmap", "xFetch", "xUnfetch"]


class _Vfs(ctypes.Structure):
    _fields_ = [("iVersion", ctypes.c_int), ("szOsFile", ctypes.c_int), ("mxPathname", ctypes.c_int),
                ("pNext", ctypes.c_void_p), ("zName", ctypes.c_char_p), ("pAppData", ctypes.c_void_p)] + \
               [(f, ctypes.c_void_p) for f in _VFS_FIELDS]


class _IoMethods(ctypes.Structure):
    _fields_ = [("iVersion", ctypes.c_int)] + [(f, ctypes.c_void_p) for f in _IO_FIELDS]


class _File(ctypes.Structure):
    _fields_ = [("pMethods", ctypes.POINTER(_IoMethods))]


# file names stay raw pointers: SQLite keeps the one given to xOpen until the file closes (a copy made
# by ctypes would be freed at once, and the -shm name derived from it would be garbage)
_XOPEN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(_File), ctypes.c_int,
                          ctypes.POINTER(ctypes.c_int))
_XDELETE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
_XCLOSE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_XWRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int64)
_XTRUNCATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64)
_XSYNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int)


def _apply(image: bytearray, ops: list[tuple]) -> bytearray:
    for op in ops:
        if op[0] == "w":
            _, off, data = op
            if len(image) < off:
                image.extend(bytes(off - len(image)))
            image[off:off + len(data)] = data
        else:
            del image[op[1]:]
    return image


class _DbFile:
    """One SQLite file as the power sees it: the synced image, and the writes since."""

    def __init__(self, existing: bytes | None):
        self.durable: bytearray | None = bytearray(existing) if existing is not None else None
        self.pending: list[tuple] = []
        self.deleted = False            # unlinked, but the directory was not synced since

    def sync(self) -> None:
        self.durable = _apply(self.durable if self.durable is not None else bytearray(), self.pending)
        self.pending = []

    def after_cut(self, rng: random.Random | None) -> bytes | None:
        if rng is None:
            return bytes(self.durable) if self.durable is not None else None
        kept = [op for op in self.pending if rng.random() < 0.5]
        if self.durable is None and not kept:
            return None
        return bytes(_apply(bytearray(self.durable or b""), kept))


class PowerModel:
    """Install once per test; `cut_at` op numbers (1-based writes/truncates/syncs of watched files)
    call `on_cut(n)` just before that op, which usually calls `snapshot(dest)`."""

    def __init__(self, root: Path, cut_at: Container[int], on_cut: Callable[[int], None]):
        self.root = Path(root).resolve()
        self.cut_at = cut_at
        self.on_cut = on_cut
        self.ops = 0
        self.errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._db: dict[str, _DbFile] = {}
        self._handles: dict[int, tuple[str, _IoMethods]] = {}
        self._patched: dict[int, _IoMethods] = {}
        # plain files: path -> (content synced since last write, name synced since created/renamed)
        self._plain: dict[str, list[bool]] = {}
        self._active = False
        self._real_fsync = os.fsync
        self._base = _Vfs.from_address(_lib.sqlite3_vfs_find(b"unix"))

        vfs = _Vfs()
        ctypes.memmove(ctypes.byref(vfs), ctypes.byref(self._base), ctypes.sizeof(_Vfs))
        vfs.zName = b"powercut"
        vfs.pNext = None
        self._orig_open = _XOPEN(self._base.xOpen)
        self._orig_delete = _XDELETE(self._base.xDelete)
        self._cb_open = _XOPEN(self._x_open)
        self._cb_delete = _XDELETE(self._x_delete)
        vfs.xOpen = ctypes.cast(self._cb_open, ctypes.c_void_p)
        vfs.xDelete = ctypes.cast(self._cb_delete, ctypes.c_void_p)
        self._vfs = vfs
        self._cb_close = _XCLOSE(self._x_close)
        self._cb_write = _XWRITE(self._x_write)
        self._cb_truncate = _XTRUNCATE(self._x_truncate)
        self._cb_sync = _XSYNC(self._x_sync)

    # --- install / remove ---
    def install(self) -> None:
        if _lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
            raise RuntimeError("ctypes found a different libsqlite3 than the sqlite3 module uses")
        if _lib.sqlite3_vfs_register(ctypes.addressof(self._vfs), 1) != SQLITE_OK:
            raise RuntimeError("could not register the power-cut VFS")
        self._active = True
        _hook_owner[0] = self
        os.fsync = self._fsync

    def remove(self) -> None:
        self._active = False
        os.fsync = self._real_fsync
        _hook_owner[0] = None
        _lib.sqlite3_vfs_unregister(ctypes.addressof(self._vfs))

    def _watched(self, path: str) -> bool:
        return path.startswith(str(self.root) + os.sep)

    # --- SQLite files ---
    def _x_open(self, vfs, name, file, flags, out_flags):
        path = os.fsdecode(ctypes.string_at(name)) if name else ""
        existed = bool(path) and os.path.exists(path)
        rc = self._orig_open(ctypes.addressof(self._base), name, file, flags, out_flags)
        try:
            if rc != SQLITE_OK or not name or not flags & _TRACKED_TYPES or not self._watched(path) \
                    or not file.contents.pMethods:
                return rc
            with self._lock:
                if path in self._db and self._db[path].deleted:
                    self._db[path].deleted = False      # made again: its old content may still come back
                if path not in self._db:
                    self._db[path] = _DbFile(Path(path).read_bytes() if existed else None)
                orig = file.contents.pMethods.contents
                key = ctypes.addressof(orig)
                if key not in self._patched:
                    patched = _IoMethods()
                    ctypes.memmove(ctypes.byref(patched), ctypes.byref(orig), ctypes.sizeof(_IoMethods))
                    patched.xClose = ctypes.cast(self._cb_close, ctypes.c_void_p)
                    patched.xWrite = ctypes.cast(self._cb_write, ctypes.c_void_p)
                    patched.xTruncate = ctypes.cast(self._cb_truncate, ctypes.c_void_p)
                    patched.xSync = ctypes.cast(self._cb_sync, ctypes.c_void_p)
                    self._patched[key] = patched
                self._handles[ctypes.addressof(file.contents)] = (path, orig)
                file.contents.pMethods = ctypes.pointer(self._patched[key])
        except BaseException as exc:       # never let an exception cross into C
            self.errors.append(exc)
            return SQLITE_IOERR
        return rc

    def _x_delete(self, vfs, name, sync_dir):
        path = os.fsdecode(ctypes.string_at(name))
        with self._lock:
            if self._watched(path) and path in self._db:
                f = self._db[path]
                f.pending, f.deleted = [], True
                if sync_dir:
                    self._dir_synced(os.path.dirname(path))
        return self._orig_delete(ctypes.addressof(self._base), name, sync_dir)

    def _dir_synced(self, directory: str) -> None:
        """Every name made or removed in `directory` so far is now durable."""
        for path, f in list(self._db.items()):
            if os.path.dirname(path) == directory and f.deleted:
                del self._db[path]
        for path, state in self._plain.items():
            if os.path.dirname(path) == directory:
                state[1] = True

    def _op(self, handle: int) -> tuple[str, _IoMethods]:
        path, orig = self._handles[handle]
        self.ops += 1
        if self.ops in self.cut_at:
            self.on_cut(self.ops)
        return path, orig

    def _x_close(self, handle):
        with self._lock:
            _, orig = self._handles.pop(handle)
        return _XCLOSE(orig.xClose)(handle)

    def _x_write(self, handle, buf, amount, offset):
        try:
            with self._lock:
                path, orig = self._op(handle)
                self._db[path].pending.append(("w", offset, ctypes.string_at(buf, amount)))
        except BaseException as exc:
            self.errors.append(exc)
            return SQLITE_IOERR
        return _XWRITE(orig.xWrite)(handle, buf, amount, offset)

    def _x_truncate(self, handle, size):
        try:
            with self._lock:
                path, orig = self._op(handle)
                self._db[path].pending.append(("t", size))
        except BaseException as exc:
            self.errors.append(exc)
            return SQLITE_IOERR
        return _XTRUNCATE(orig.xTruncate)(handle, size)

    def _x_sync(self, handle, flags):
        try:
            with self._lock:
                path, orig = self._op(handle)
        except BaseException as exc:
            self.errors.append(exc)
            return SQLITE_IOERR
        rc = _XSYNC(orig.xSync)(handle, flags)
        if rc == SQLITE_OK:
            with self._lock:
                f = self._db[path]
                first = f.durable is None
                f.sync()
                if first and not path.endswith(".db"):
                    # the unix VFS fsyncs the directory on a new WAL's or journal's first sync
                    self._dir_synced(os.path.dirname(path))
        return rc

    # --- plain files (keys, photos, reports) ---
    def _audit(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, (str, bytes, os.PathLike)):
                return
            path = os.path.abspath(os.fsdecode(path))
            writes = (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)) or \
                (isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writes and self._watched(path) and not self._is_db(path):
                existed = os.path.exists(path)
                exclusive = (isinstance(flags, int) and flags & os.O_CREAT and flags & os.O_EXCL) or \
                    (isinstance(mode, str) and "x" in mode)
                if existed and exclusive:
                    return      # the open fails (EEXIST) and writes nothing: the file stays as synced
                with self._lock:
                    # a file there before the model saw it keeps its name; a new one has none yet
                    state = self._plain.setdefault(path, [False, existed])
                    state[0] = False
                    if not existed:
                        state[1] = False
        elif event == "os.rename":
            src, dst = (os.path.abspath(os.fsdecode(a)) for a in args[:2])
            if self._watched(dst) and not self._is_db(dst):
                with self._lock:
                    content = self._plain.pop(src, [True, True])[0]
                    self._plain[dst] = [content, False]

    def _is_db(self, path: str) -> bool:
        return path in self._db or path.endswith(("-wal", "-shm", "-journal"))

    def _fsync(self, fd) -> None:
        self._real_fsync(fd)
        if not self._active:
            return
        fd = fd if isinstance(fd, int) else fd.fileno()
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return
        with self._lock:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                self._dir_synced(path)
            elif path in self._plain:
                self._plain[path][0] = True

    # --- the cut ---
    def snapshot(self, dest: Path, rng: random.Random | None) -> None:
        """Write the state dir as the power left it into `dest`: synced data only (rng None),
        or synced data plus a random subset of what was pending (a torn cut)."""
        with self._lock:
            for dirpath, dirnames, filenames in os.walk(self.root):
                rel = os.path.relpath(dirpath, self.root)
                (dest / rel).mkdir(parents=True, exist_ok=True)
                for name in filenames:
                    src = os.path.join(dirpath, name)
                    if src in self._db or name.endswith("-shm"):
                        continue
                    state = self._plain.get(src)
                    if state is None or all(state):
                        try:
                            shutil.copyfile(src, dest / rel / name)
                        except FileNotFoundError:      # renamed away meanwhile
                            pass
            for path, f in self._db.items():
                image = f.after_cut(rng)
                if image is not None:
                    target = dest / os.path.relpath(path, self.root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(image)


_hook_owner: list[PowerModel | None] = [None]


def _audit_hook(event: str, args: tuple) -> None:
    owner = _hook_owner[0]
    if owner is not None and owner._active and event in ("open", "os.rename"):
        try:
            owner._audit(event, args)
        except Exception as exc:        # an audit hook that raises would fail the audited call
            owner.errors.append(exc)


sys.addaudithook(_audit_hook)
