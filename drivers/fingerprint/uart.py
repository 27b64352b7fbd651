"""A ZhianTec / Synochip fingerprint module on a serial port (R30x, R503, AS608, ZFM).

One worker thread owns the port: it polls for fingers while started and runs library jobs
(load, delete, enrol, count) and the background library sync in between, so the event loop never
blocks on serial I/O. If the port disappears the driver reports "missing" and reopens it by name.

A reply always belongs to its command: each reply is checked against the shape its command can give
(protocol.check_reply), and after any timeout, damaged or mismatched reply the line is drained and
resynchronised (VfyPwd + ReadSysPara, whose 16-byte answer cannot be mistaken) before the next command.
A touch whose answer was lost becomes FingerRead "unreadable" (press again), never a guess.

Finding the finger: a module's GenImg takes as long without a finger as with one (≈0.27 s), so a finger
that lands while a no-finger GenImg is on the line waits for the next one. Where the module's touch output
(R307 TOUCH, R503 WAKEUP) is wired to a GPIO input, the driver sends GenImg only while it says a finger is
there, so the search starts at once; with no wire it polls back to back. A wire that stays silent while a
finger is on the glass is caught by a GenImg every TOUCH_PROBE seconds of silence: the driver then says so
in health and polls instead.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import termios
import threading
import time
from typing import Callable

import serial
from gpiozero import DigitalInputDevice

from drivers.base import Emit
from drivers.events import DeviceEvent, DeviceHealth, FingerRead, FingerTouched, HealthState
from drivers.fingerprint.library import LibraryRecord, SyncPlan, template_hash
from drivers.fingerprint.protocol import (
    DEFAULT_ADDRESS, NOTEPAD_SIZE, CorruptPacket, Decoder, FingerprintError, FingerprintTimeout, Instruction,
    Packet, PacketType, PasswordRequired, SystemParameters, UnexpectedPacket, WrongPassword,
    check_reply, command, data_packets, error_for, longest_work, search_result, wire_seconds, work_seconds,
)
from drivers.health import HealthMixin

NO_FINGER, NOT_FOUND, NO_IMAGE, PASSWORD_REQUIRED = 0x02, 0x09, 0x15, 0x21
# confirmations that say the line or the module's state failed, not the finger: the person presses again
LINE_CODES = frozenset({0x01, 0x20, PASSWORD_REQUIRED})
TEMPLATE_SIZES = (512, 768)   # R305/ZFM-20 and R307/FPM10A
READ_SLICE = 0.05             # serial read timeout; the reply deadline is enforced above it
QUIET = 0.1                   # a line silent this long has nothing more to say (drain before resync)
SYNC_SLICE = 0.15             # library work between two polls (one template at 57600 baud takes about this)
LIFT_POLL = 0.02              # while a finger rests, poll fast: a lift-and-press can be shorter than 0.45 s
POLL_INTERVAL = 0.05          # the line's pace: a GenImg exchange is ~4 ms of wire; a module quick to say
                              # "no finger" is asked again after this, a slow one (0.27 s) back to back
TOUCH_PROBE = 10.0            # with a touch wire: after this long without a touch, one GenImg checks the wire
HEARTBEAT = 1.0               # with a touch wire, idle: a quick command this often notices an unplug or restart
_WAKE = object()              # queued by the touch input's edges: the worker looks again at once
# what a vanished port raises: pyserial's errors, the OS's, and termios' own (tcflush on a dead pty)
PORT_ERRORS = (OSError, serial.SerialException, termios.error)
LINE_ERRORS = (FingerprintTimeout, CorruptPacket, UnexpectedPacket, PasswordRequired)

log = logging.getLogger(__name__)


class ConfigurationError(FingerprintError):
    """The module is there but the configuration does not fit it (e.g. the wrong password)."""


class PortUnavailable(FingerprintError):
    """The serial port is not there (unplugged) or could not be opened."""


class LoadDeferred(PortUnavailable):
    """The module is not connected: the template is kept as wanted and loaded in the background."""


class InvalidSlot(FingerprintError, ValueError):
    """A slot number outside the module's library, refused before anything is sent."""


class TemplateSizeMismatch(FingerprintError, ValueError):
    """A template made for another module type (512 vs 768 bytes): it could never match here."""


class DuplicateFinger(FingerprintError):
    """Enrolment found the finger already stored in the library."""

    def __init__(self, existing_slot: int, requested_slot: int):
        self.existing_slot = existing_slot
        super().__init__(f"this finger is already enrolled in slot {existing_slot}; "
                         f"nothing was stored in slot {requested_slot}")


class _Link:
    """Request/reply over an open serial port, kept in step with the module."""

    def __init__(self, port: serial.Serial, address: int, password: int, margin: float):
        self.port = port
        self.address = address
        self.password = password
        self.margin = margin            # on top of the datasheet's work time and the wire time
        self.capacity = 1000            # until ReadSysPara says; sizes the Search timeout
        self.decoder = Decoder()
        self.in_sync = False            # the first call resynchronises
        self.power_up = False           # the module announced a power-up since the flag was cleared
        self.other_address: int | None = None

    @property
    def baudrate(self) -> int:
        return self.port.baudrate

    def close(self) -> None:
        try:
            self.port.close()
        except PORT_ERRORS:
            pass

    def timeout_for(self, instruction: Instruction, reply_bytes: int = 12) -> float:
        return self.margin + work_seconds(instruction, self.capacity) + wire_seconds(24 + reply_bytes, self.baudrate)

    def call(self, instruction: Instruction, args: bytes = b"") -> tuple[int, bytes]:
        """Send a command and return (confirmation code, data) from its acknowledge, checked for shape."""
        if not self.in_sync:
            self.resync()
        self.port.write(command(instruction, args, self.address))
        try:
            packet = self.read_packet(instruction.name, self.timeout_for(instruction, 12 + 32))
            if packet.type != PacketType.ACK or not packet.payload:
                raise UnexpectedPacket(f"{instruction.name}: expected an acknowledge, got packet type "
                                       f"0x{packet.type:02X} from {self.port.port}")
            code, data = packet.payload[0], packet.payload[1:]
            check_reply(instruction, code, data)
        except (FingerprintTimeout, CorruptPacket, UnexpectedPacket):
            self.in_sync = False
            raise
        if code == PASSWORD_REQUIRED:
            # the module restarted and forgot the password: what it answered is not an answer
            self.in_sync = False
            self.power_up = True
            raise PasswordRequired(code, f"{instruction.name}: the module on {self.port.port} asks for its "
                                         f"password again (it has restarted)")
        return code, data

    def expect(self, instruction: Instruction, args: bytes = b"", context: str | None = None) -> bytes:
        code, data = self.call(instruction, args)
        if code != 0:
            raise error_for(code, context or instruction.name)
        return data

    def drain(self) -> None:
        """Read until the line is quiet, so a late reply cannot be taken for the next command's."""
        self._note(self.decoder)
        scrap = Decoder()
        deadline = time.monotonic() + 2.0       # a line that never goes quiet is noise; stop listening
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET:
            data = self.port.read(max(1, self.port.in_waiting))
            if data:
                scrap.feed(data)
                quiet_since = time.monotonic()
        while True:   # only to see a power-up byte among what was dropped
            try:
                if scrap.next_packet() is None:
                    break
            except CorruptPacket:
                continue
        self._note(scrap)
        self.decoder = Decoder()

    def _note(self, decoder: Decoder) -> None:
        if decoder.power_up_seen:
            self.power_up = True

    def resync(self) -> SystemParameters:
        """Drain, then VfyPwd + ReadSysPara; the first 16-byte ReadSysPara answer marks the line in step
        (the module answers in order, so everything before it is stale and dropped)."""
        self.drain()
        self.port.write(command(Instruction.VFY_PWD, self.password.to_bytes(4, "big"), self.address)
                        + command(Instruction.READ_SYS_PARA, b"", self.address))
        deadline = time.monotonic() + self.margin + longest_work(self.capacity) + wire_seconds(64, self.baudrate)
        rejected = False
        while True:
            try:
                packet = self.read_packet("VfyPwd + ReadSysPara (resynchronising)", deadline=deadline)
            except CorruptPacket:
                continue
            if packet.type != PacketType.ACK or not packet.payload:
                continue
            code, data = packet.payload[0], packet.payload[1:]
            if code == 0 and len(data) == 16:
                params = SystemParameters.decode(data)
                self.capacity = params.capacity
                self.in_sync = True
                return params
            if code == 0x13 and not data:
                rejected = True
            elif code == PASSWORD_REQUIRED and not data and rejected:
                self.in_sync = True
                raise WrongPassword(0x13)
            # anything else is a late answer to an earlier command: dropped

    def read_packet(self, waiting_for: str, timeout: float | None = None, *, deadline: float | None = None) -> Packet:
        if deadline is None:
            deadline = time.monotonic() + (timeout if timeout is not None else self.margin)
        while True:
            try:
                packet = self.decoder.next_packet()
            except CorruptPacket as exc:
                raise CorruptPacket(f"{waiting_for}: damaged reply from {self.port.port}: {exc}") from None
            finally:
                self._note(self.decoder)
            if packet is not None and packet.address == self.address:
                return packet
            if packet is not None:
                self.other_address = packet.address
                continue  # another module's address on a shared line
            if time.monotonic() >= deadline:
                partial = f" ({self.decoder.pending} bytes of an incomplete packet)" if self.decoder.pending else ""
                raise FingerprintTimeout(f"{waiting_for}: no reply from the module on {self.port.port} "
                                         f"in time{partial}")
            # zero bytes here just means "not yet"; only the deadline makes it a timeout
            self.decoder.feed(self.port.read(max(1, self.port.in_waiting)))

    def send_template(self, blob: bytes, packet_size: int) -> None:
        for packet in data_packets(blob, packet_size, self.address):
            self.port.write(packet)

    def receive_template(self, size_hint: int = 768) -> bytes:
        blob = bytearray()
        try:
            while True:
                packet = self.read_packet("UpChar data", self.margin + wire_seconds(size_hint + 200, self.baudrate))
                if packet.type not in (PacketType.DATA, PacketType.END):
                    raise UnexpectedPacket(f"UpChar: expected a data packet, got type 0x{packet.type:02X}")
                blob += packet.payload
                if packet.type == PacketType.END:
                    return bytes(blob)
        except (FingerprintTimeout, CorruptPacket, UnexpectedPacket):
            self.in_sync = False
            raise


class _Job:
    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.abandoned = threading.Event()  # the caller was cancelled while the job ran


class UartFingerprint(HealthMixin):
    def __init__(self, station: str, port: str, baudrate: int = 57600, address: int = DEFAULT_ADDRESS,
                 password: int = 0, poll_interval: float = POLL_INTERVAL, *, reply_timeout: float = 0.5,
                 reconnect_interval: float = 0.5, enrol_timeout: float = 30.0, library_file=None,
                 retry_interval: float = 30.0, touch_pin: int | str | None = None, touch_active_high: bool = True,
                 pin_factory=None, touch_probe: float = TOUCH_PROBE):
        if not 0 <= password <= 0xFFFFFFFF:
            raise ValueError("the fingerprint module password must be a 32-bit number")
        self.station = station
        self.name = f"fingerprint_{station}"
        self.port = port
        self.baudrate = baudrate
        self.address = address
        self.poll_interval = poll_interval
        self.reply_timeout = reply_timeout     # margin on top of the datasheet's time for each command
        self.reconnect_interval = reconnect_interval
        self.enrol_timeout = enrol_timeout
        self.retry_interval = retry_interval
        self._password = password
        self._state: HealthState = "missing"
        self._params: SystemParameters | None = None
        self._link: _Link | None = None
        self._unavailable: FingerprintError = PortUnavailable(f"{self.name}: {port} has not been opened yet")
        self._await_lift = False
        self._enrolling = threading.Event()
        self._captures = 0
        self._current: _Job | None = None
        self._emit: Emit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # the library: what should be in which slot (None: not managed, the module is trusted as it is),
        # and what is known to be there
        self._library_lock = threading.Lock()
        self._wanted: dict[int, bytes] | None = None
        self._record = LibraryRecord.load(library_file)
        self._plan = SyncPlan()
        self._check_due = True
        # the module's touch output on a GPIO input (None: not wired, or given up on: poll)
        self.touch_pin = touch_pin
        self.touch_active_high = touch_active_high
        self.touch_probe = touch_probe
        self._pin_factory = pin_factory
        self._touch: DigitalInputDevice | None = None
        self._touch_note = "not wired: polling" if touch_pin is None else f"GPIO {touch_pin}"
        self._touched_at = 0.0          # monotonic time of the last rising edge
        self._lifted_at = 0.0           # ... of the last falling edge
        self._looked_at = 0.0           # ... of the last GenImg
        self._heard_at = 0.0            # ... of the last exchange of any kind

    # --- InputDevice ---
    async def start(self, emit: Emit) -> None:
        self._loop = asyncio.get_running_loop()
        self._emit = emit
        self._open_touch()
        self._ensure_worker()

    async def stop(self) -> None:
        self._emit = None
        thread, self._thread = self._thread, None
        if thread:
            self._stopping.set()
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)
        self._close_touch()

    def health(self) -> DeviceHealth:
        with self._library_lock:
            detail = self._plan.summary(self._wanted, self._record) if self._wanted is not None else {}
        return DeviceHealth(self.name, self._state, self._last_error, {**detail, "touch": self._touch_note})

    # --- the touch output (worker wakes on its edges) ---
    def _open_touch(self) -> None:
        if self.touch_pin is None or self._touch is not None:
            return
        try:
            # pulled towards "no finger": a loose wire reads as silence, which the probe catches
            self._touch = DigitalInputDevice(self.touch_pin, pull_up=not self.touch_active_high,
                                             pin_factory=self._pin_factory)
        except Exception as exc:         # no GPIO chip, pin busy, no permission: the door still works by polling
            self._touch_lost(f"GPIO {self.touch_pin} unavailable ({type(exc).__name__}: {exc})")
            return
        self._touch.when_activated = self._on_touch_edge
        self._touch.when_deactivated = self._on_touch_edge

    def _on_touch_edge(self) -> None:
        if self._touch is not None and self._touch.is_active:
            self._touched_at = time.monotonic()
        else:
            self._lifted_at = time.monotonic()
        self._jobs.put(_WAKE)

    def _touching(self) -> bool:
        touch = self._touch
        try:
            return touch is not None and bool(touch.is_active)
        except Exception:               # the GPIO went away under us
            return False

    def _touch_lost(self, why: str) -> None:
        """From now on poll: nothing the touch wire does (or fails to do) can hide a finger."""
        self._close_touch()
        self.touch_pin = None
        self._touch_note = f"polling: {why}"
        log.warning("%s: touch signal not used: %s", self.name, why)
        self._send(self.health())

    def _close_touch(self) -> None:
        touch, self._touch = self._touch, None
        if touch is not None:
            touch.close()

    # --- FingerprintModule library operations ---
    def sync_library(self, wanted: dict[int, bytes]) -> None:
        """What the library must hold (slot -> template). Returns at once: the worker compares with the
        module at start and after every reconnect and loads only the difference, in the background.
        From now on a Search hit on a slot not known to hold the wanted template is not a match."""
        for slot, template in wanted.items():
            self._check_template(template)
        with self._library_lock:
            self._wanted = {slot: bytes(t) for slot, t in wanted.items()}
            self._plan.failed.clear()
            self._check_due = True
        self._ensure_worker()

    def update_library(self, load: dict[int, bytes], clear: list[int]) -> None:
        """Changes to the wanted library (an import): recorded at once, so whatever the direct loads that
        follow achieve, the background sync carries out the rest when the module is back."""
        for template in load.values():
            self._check_template(template)
        with self._library_lock:
            if self._wanted is None:
                return
            for slot in clear:
                self._wanted.pop(slot, None)
            self._wanted.update({slot: bytes(t) for slot, t in load.items()})

    async def load_template(self, slot: int, template: bytes) -> None:
        self._check_template(template)
        with self._library_lock:
            managed = self._wanted is not None
            if managed:
                self._wanted[slot] = bytes(template)   # a failed load is retried in the background
        if managed and self._link is None:
            # not connected: the worker reconnects on its own schedule and loads it then; an import of a
            # thousand people must not wait a reply timeout per template on a silent module
            raise LoadDeferred(f"{self.name} is not connected ({self._unavailable}); the template for slot "
                               f"{slot} is kept and loaded when the module is back")
        await self._submit(self._load_template, slot, bytes(template))

    async def delete_slots(self, slots: list[int]) -> None:
        with self._library_lock:
            if self._wanted is not None:
                for slot in slots:
                    self._wanted.pop(slot, None)
        await self._submit(self._delete_slots, list(slots))

    async def enrol(self, slot: int) -> bytes:
        return await self._submit(self._enrol, slot)

    async def template_count(self) -> int:
        return await self._submit(self._template_count)

    async def library_synced(self) -> bool:
        """True when the module holds exactly the wanted library (asks the worker, so it is current)."""
        with self._library_lock:
            if self._wanted is None:
                return True
            return not self._check_due and not self._plan.pending(self._wanted, self._record)

    @property
    def enrolling(self) -> bool:
        """True while an enrolment waits for or takes its captures (the screen can say "place finger")."""
        return self._enrolling.is_set()

    @property
    def enrol_captures(self) -> int:
        """Captures the running enrolment has taken (0, 1, 2): after the first the screen asks again."""
        return self._captures

    def _check_template(self, template) -> None:
        if not isinstance(template, (bytes, bytearray)) or len(template) not in TEMPLATE_SIZES:
            size = len(template) if isinstance(template, (bytes, bytearray)) else type(template).__name__
            raise ValueError(f"{self.name}: a template is {' or '.join(map(str, TEMPLATE_SIZES))} bytes, got {size}")
        known = self._record.template_size
        if known is not None and len(template) != known:
            raise TemplateSizeMismatch(
                f"{self.name}: the module on {self.port} holds {known}-byte templates; this one is "
                f"{len(template)} bytes (made for another module type) and could never match: refused")

    # --- worker thread ---
    def _ensure_worker(self) -> None:
        if self._thread is None:
            # a fresh event per worker: a stop still joining the old one cannot be undone by a new job
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._work, args=(self._stopping,), name=self.name,
                                            daemon=True)
            self._thread.start()

    async def _submit(self, fn: Callable, *args):
        job = _Job(fn, args)
        self._jobs.put(job)
        self._ensure_worker()
        try:
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.abandoned.set()  # lets a waiting enrolment give up instead of holding the port
            raise

    def _work(self, stopping: threading.Event) -> None:
        wait = 0.0
        while not stopping.is_set():
            try:
                job = self._jobs.get(timeout=wait)
            except queue.Empty:
                job = None
            if job is _WAKE:
                job = None
            if job and not job.future.set_running_or_notify_cancel():
                job = None  # the caller gave up waiting; do not touch the module for it
            if stopping.is_set():
                if job:
                    job.future.set_exception(PortUnavailable(f"{self.name} is stopping"))
                break
            if self._link is None:
                self._connect()
            wait = self.reconnect_interval
            if self._link is None:
                if job:
                    job.future.set_exception(self._unavailable)
                continue
            started = time.monotonic()
            look = self._look()
            if not job:
                job = self._waiting_job()
            if job:
                self._run(job)
            elif self._check_due and self._wanted is not None:
                self._guarded(self._sync_step)   # a module is compared before any of its matches counts
            elif self._emit is not None and look == "heartbeat":
                self._guarded(self._heartbeat)
            elif self._emit is not None and look:
                self._guarded(self._poll_once, look == "probe")
            if self._link is not None and self._link.power_up:
                self._link.power_up, self._link.in_sync = False, False   # VfyPwd again on the next call
                self._check_due = True                                    # and look at the library again
            syncing = False
            if not job and self._link is not None and not self._await_lift:
                # library steps between two polls, for at most SYNC_SLICE (or until a touch): the door stays live
                until = time.monotonic() + SYNC_SLICE
                while (self._link is not None and not self._touching() and self._guarded(self._sync_step)
                       and time.monotonic() < until):
                    syncing = True
            # a module that takes its time over GenImg sets the pace; only a quick one needs a pause
            interval = LIFT_POLL if self._await_lift or syncing else self.poll_interval
            wait = max(0.0, interval - (time.monotonic() - started))
            if self.touch_pin is not None and not syncing and not self._touching():
                # wired and nobody there: the next edge wakes us, or the next heartbeat or probe is due
                wait = min(self._since(self._heard_at, HEARTBEAT),
                           self._since(max(self._touched_at, self._looked_at), self.touch_probe))
        self._drop_link()
        self._fail_pending()

    def _waiting_job(self) -> _Job | None:
        """A job already asked for, taken after the wire was read: the wire's wakes queue up behind a long job
        (an enrolment's edges), and a poll woken by one of them would take the finger meant for the job asked
        for before it landed (the next enrolment). The wakes are dropped: every turn looks at the wire anyway."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return None
            if job is None:
                return None         # stop: the loop ends at its next turn
            if job is not _WAKE and job.future.set_running_or_notify_cancel():
                return job

    def _run(self, job: _Job) -> None:
        self._current = job
        try:
            result = self._guarded(job.fn, *job.args, reraise=True)
        except Exception as exc:  # the caller gets every failure, whatever it is
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)
        finally:
            self._current = None

    def _guarded(self, fn: Callable, *args, reraise: bool = False):
        """Run one exchange with the module and keep the health state honest about how it went."""
        try:
            result = fn(*args)
        except PORT_ERRORS as exc:
            self._lost(exc)
            if reraise:
                raise self._unavailable from exc
            return None
        except WrongPassword as exc:
            self._refused_password()
            if reraise:
                raise self._unavailable from exc
            return None
        except LINE_ERRORS as exc:
            self._set_health("degraded", str(exc))
            if reraise:
                raise
            return None
        except Exception as exc:
            if reraise:
                raise
            # the poll loop must outlive any surprise, or the door goes deaf until a restart
            self._set_health("degraded", f"{type(exc).__name__}: {exc}")
            return None
        self._set_health("connected")
        return result

    def _fail_pending(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job and job is not _WAKE and job.future.set_running_or_notify_cancel():
                job.future.set_exception(PortUnavailable(f"{self.name} is stopped"))

    def _connect(self) -> None:
        link = None
        try:
            link = _Link(serial.Serial(self.port, self.baudrate, timeout=READ_SLICE), self.address,
                         self._password, self.reply_timeout)
            self._params = link.resync()
        except WrongPassword:
            link.close()
            self._refused_password()
            return
        except FingerprintTimeout as exc:
            link.close()
            self._unavailable = PortUnavailable(f"{self.name}: {self.port} is not available: {exc}; "
                                                f"{self._hint(link)}")
            self._set_health("missing", str(self._unavailable))
            return
        except (*PORT_ERRORS, FingerprintError) as exc:
            if link:
                link.close()
            self._unavailable = PortUnavailable(f"{self.name}: {self.port} is not available: {exc}")
            self._set_health("missing", str(self._unavailable))
            return
        self._link = link
        self._await_lift = False
        self._check_due = True          # a reconnect may be another module, or one that lost its flash
        self._set_health("connected")

    def _hint(self, link: _Link) -> str:
        if link.other_address is not None:
            return (f"a module answered from address 0x{link.other_address:08X}, the configuration says "
                    f"0x{self.address:08X}: check the module address")
        if link.decoder.skipped or link.decoder.pending:
            return (f"bytes arrived but no packet could be read at {self.baudrate} baud: "
                    f"check the baud rate (and the module address 0x{self.address:08X})")
        return (f"check the module address (configured 0x{self.address:08X}), the baud rate "
                f"(configured {self.baudrate}) and the wiring")

    def _refused_password(self) -> None:
        self._drop_link()
        self._unavailable = ConfigurationError(
            f"{self.name}: the module on {self.port} rejected the configured password "
            f"(confirmation 0x13); set the module's password in the configuration")
        self._set_health("degraded", str(self._unavailable))

    def _lost(self, exc: BaseException) -> None:
        self._drop_link()
        self._unavailable = PortUnavailable(f"{self.name}: lost {self.port}: {exc}")
        self._set_health("missing", str(self._unavailable))

    def _drop_link(self) -> None:
        if self._link:
            self._link.close()
            self._link = None

    def _set_health(self, state: HealthState, error: str | None = None) -> None:
        changed = state != self._state
        super()._set_health(state, error)
        if changed:
            self._send(self.health())

    def _send(self, event: DeviceEvent) -> None:
        emit, loop = self._emit, self._loop
        if emit is not None and loop is not None:
            try:
                loop.call_soon_threadsafe(emit, event)
            except RuntimeError:
                pass  # the loop is closing; nobody is listening any more

    # --- what happens on the module (worker thread only) ---
    def _look(self) -> str | None:
        """Whether to send GenImg now: "poll" (no touch wire, or a finger on it), "probe" (the wire has been
        silent for touch_probe seconds: check it), None (wired and nobody there)."""
        if self.touch_pin is None:
            return "poll"
        if self._touching():
            return "poll"
        self._await_lift = False        # the wire says the finger has gone
        if self._since(max(self._touched_at, self._looked_at), self.touch_probe) <= 0:
            return "probe"
        if self._since(self._heard_at, HEARTBEAT) <= 0:
            return "heartbeat"
        return None

    @staticmethod
    def _since(then: float, period: float) -> float:
        """Seconds until `period` has passed since `then` (0 when it has)."""
        return max(0.0, period - (time.monotonic() - then))

    def _heartbeat(self) -> None:
        link = self._link
        if not link.in_sync:
            link.resync()
        link.expect(Instruction.TEMPLATE_NUM)
        self._heard_at = time.monotonic()

    def _poll_once(self, probe: bool = False) -> None:
        link = self._link
        if not link.in_sync:
            link.resync()       # a failure here sent no GenImg: nothing is known about the finger either way
        if self.touch_pin is not None and self._lifted_at > self._looked_at:
            self._await_lift = False    # lifted (and maybe pressed again) while the last GenImg was on the line
        # the wire says a new finger landed: said now, so the door camera starts before the image is even taken
        announced = not probe and not self._await_lift and self.touch_pin is not None and self._touching()
        if announced:
            self._send(FingerTouched(self.station))
        asked = self._looked_at = self._heard_at = time.monotonic()
        try:
            code, _ = link.call(Instruction.GEN_IMG)
        except LINE_ERRORS:
            # this answer may have been the lift: better read a resting finger twice than miss a new touch
            self._await_lift = False
            raise
        if code == NO_FINGER:
            self._await_lift = False
            return
        if code in LINE_CODES:
            self._await_lift = False
            return  # nobody knows whether a finger was there; the next poll looks again
        if probe and self._touched_at < asked and not self._touching():
            # a finger on the glass and not a word from the wire: it is loose or unpowered
            self._touch_lost(f"a finger was on the glass while GPIO {self.touch_pin} said nobody was there "
                             f"(check the touch wire and its supply)")
        if self._await_lift:
            return  # the same finger is still resting on the glass
        self._await_lift = True
        if code != 0:
            self._send(FingerRead(self.station, "read_failed"))
            return
        if not announced:
            self._send(FingerTouched(self.station))
        try:
            read = self._identify(link)
        except BaseException:
            # the answer was lost, damaged or belongs to another command: ask for the finger again
            link.in_sync = False
            self._send(FingerRead(self.station, "unreadable"))
            raise
        self._send(read)

    def _identify(self, link: _Link) -> FingerRead:
        link.power_up = False
        code, _ = link.call(Instruction.IMG2TZ, b"\x01")
        if code == NO_IMAGE or code in LINE_CODES:
            return FingerRead(self.station, "unreadable")   # the module lost the image, not the finger's fault
        if code != 0:
            return FingerRead(self.station, "read_failed")
        code, data = link.call(Instruction.SEARCH, self._search_args())
        if link.power_up:
            # the module restarted between the image and the answer: whatever it says is not about this finger
            return FingerRead(self.station, "unreadable")
        if code in LINE_CODES:
            return FingerRead(self.station, "unreadable")
        hit = search_result(code, data, self._params.capacity)
        if hit is None:
            return FingerRead(self.station, "no_match")
        if not self._trusted(hit.slot):
            # the slot holds something other than the template the agent maps to it (stale or swapped)
            return FingerRead(self.station, "no_match")
        return FingerRead(self.station, "match", hit.slot, hit.score)

    def _trusted(self, slot: int) -> bool:
        with self._library_lock:
            if self._wanted is None:
                return True
            if self._check_due:
                return False        # not compared since (re)connecting: it may be another module
            wanted = self._wanted.get(slot)
            return wanted is not None and self._record.slots.get(slot) == template_hash(wanted)

    def _search_args(self) -> bytes:
        return b"\x01" + (0).to_bytes(2, "big") + self._params.capacity.to_bytes(2, "big")

    def _check_slot(self, slot: int) -> None:
        capacity = self._params.capacity
        if not isinstance(slot, int) or not 0 <= slot < capacity:
            raise InvalidSlot(f"{self.name}: slot {slot!r} is outside the module library 0..{capacity - 1} "
                              f"on {self.port}")

    def _load_template(self, slot: int, template: bytes) -> None:
        self._check_slot(slot)
        self._check_template(template)
        self._forget(slot)      # until Store succeeds nobody knows what the slot holds
        self._link.expect(Instruction.DOWN_CHAR, b"\x01", "DownChar")
        self._link.send_template(template, self._params.packet_size)
        self._link.expect(Instruction.STORE, b"\x01" + slot.to_bytes(2, "big"), f"Store into slot {slot}")
        if self._record.template_size is None:
            self._learn_template_size(slot, len(template))
        self._remember(slot, template)

    def _learn_template_size(self, slot: int, sent: int) -> None:
        """Read the first stored template back: a module that silently took a template of the wrong size
        shows its own size here, and the slot is cleared."""
        link = self._link
        link.expect(Instruction.LOAD_CHAR, b"\x01" + slot.to_bytes(2, "big"), f"LoadChar slot {slot}")
        link.expect(Instruction.UP_CHAR, b"\x01", "UpChar")
        size = len(link.receive_template())
        if size not in TEMPLATE_SIZES:
            raise UnexpectedPacket(f"{self.name}: the module sent back a {size}-byte template")
        with self._library_lock:
            self._record.template_size = size
            self._record.save()
        if size != sent:
            link.expect(Instruction.DELETE_CHAR, slot.to_bytes(2, "big") + (1).to_bytes(2, "big"))
            raise TemplateSizeMismatch(
                f"{self.name}: the module on {self.port} holds {size}-byte templates; the template for slot "
                f"{slot} is {sent} bytes (made for another module type) and could never match: refused")

    def _delete_slots(self, slots: list[int]) -> None:
        for slot in slots:
            self._check_slot(slot)  # all checked first: a bad list deletes nothing
        for slot in slots:
            self._forget(slot)
            self._link.expect(Instruction.DELETE_CHAR, slot.to_bytes(2, "big") + (1).to_bytes(2, "big"),
                              f"DeleteChar slot {slot}")
            with self._library_lock:
                self._plan.occupied.discard(slot)

    def _forget(self, slot: int) -> None:
        with self._library_lock:
            if self._record.slots.pop(slot, None) is not None:
                self._record.save()

    def _remember(self, slot: int, template: bytes) -> None:
        with self._library_lock:
            self._record.slots[slot] = template_hash(template)
            self._plan.occupied.add(slot)
            self._plan.failed.pop(slot, None)
            self._record.save()

    def _template_count(self) -> int:
        return int.from_bytes(self._link.expect(Instruction.TEMPLATE_NUM)[0:2], "big")

    # --- the library kept in sync (worker thread) ---
    def _sync_step(self) -> bool:
        """One comparison, load or delete; False when there was nothing to do."""
        with self._library_lock:
            if self._wanted is None:
                return False
            check = self._check_due or self._plan.retry_due(time.monotonic(), self.retry_interval)
        if check:
            self._check_library()
            return True
        with self._library_lock:
            step = self._plan.next_step(self._wanted, self._record)
        if step is None:
            return False
        action, slot, template = step
        try:
            if action == "delete":
                self._delete_slots([slot])
            else:
                self._load_template(slot, template)
        except FingerprintError as exc:
            if isinstance(exc, LINE_ERRORS):
                raise   # the line, not the template: the next step tries again after resync
            with self._library_lock:
                self._plan.fail(slot, str(exc), permanent=isinstance(exc, (TemplateSizeMismatch, InvalidSlot)))
            raise
        return True

    def _check_library(self) -> None:
        """Compare the module with what is known of it; what differs is loaded or cleared step by step."""
        link = self._link
        capacity = self._params.capacity
        same_module = self._same_module(link)
        count = int.from_bytes(link.expect(Instruction.TEMPLATE_NUM)[0:2], "big")
        occupied: set[int] = set()
        if count:
            for page in range((capacity + 255) // 256):
                bitmap = link.expect(Instruction.READ_INDEX_TABLE, bytes([page]), f"ReadIndexTable page {page}")
                occupied.update(page * 256 + i for i in range(256) if bitmap[i // 8] >> (i % 8) & 1)
        with self._library_lock:
            if not same_module:
                self._record.slots.clear()
            for slot in list(self._record.slots):
                if slot not in occupied:
                    del self._record.slots[slot]    # the module lost it (replaced, or emptied)
            self._record.save()
            self._plan.occupied = {s for s in occupied if s < capacity}
            self._plan.checked(time.monotonic())
            self._check_due = False

    def _same_module(self, link: _Link) -> bool:
        """The notepad carries an id this driver wrote; a swapped module shows another (or none)."""
        code, data = link.call(Instruction.READ_NOTEPAD, b"\x00")
        if code == 0:
            if self._record.module_id is not None and data[:16] == self._record.module_id:
                return True
            new_id = LibraryRecord.new_module_id()
            link.expect(Instruction.WRITE_NOTEPAD, b"\x00" + new_id + bytes(NOTEPAD_SIZE - len(new_id)),
                        "WriteNotepad (module identity)")
            with self._library_lock:
                self._record.module_id = new_id
                self._record.save()
            return False
        # no notepad on this module: compare a few stored templates with what the record says
        for slot, expected in self._record.sample():
            code, _ = link.call(Instruction.LOAD_CHAR, b"\x01" + slot.to_bytes(2, "big"))
            if code != 0:
                return False
            link.expect(Instruction.UP_CHAR, b"\x01", "UpChar")
            if template_hash(link.receive_template()) != expected:
                return False
        return True

    # --- enrolment (worker thread) ---
    def _enrol(self, slot: int) -> bytes:
        self._check_slot(slot)
        link = self._link
        deadline = time.monotonic() + self.enrol_timeout
        self._captures = 0
        self._enrolling.set()
        try:
            self._capture(1, deadline)
            self._wait_for(lifted=True, deadline=deadline)
            self._capture(2, deadline)
            link.expect(Instruction.REG_MODEL, context="RegModel of the two captures")
            code, data = link.call(Instruction.SEARCH, self._search_args())
            hit = search_result(code, data, self._params.capacity)
            if hit is not None:
                raise DuplicateFinger(hit.slot, slot)
            if code not in (0, NOT_FOUND):
                raise error_for(code, "Search for a duplicate finger")
            self._forget(slot)
            link.expect(Instruction.STORE, b"\x01" + slot.to_bytes(2, "big"), f"Store into slot {slot}")
            link.expect(Instruction.UP_CHAR, b"\x01", "UpChar")
            template = link.receive_template()
            if len(template) not in TEMPLATE_SIZES:
                raise UnexpectedPacket(f"{self.name}: the module sent back a {len(template)}-byte template")
            with self._library_lock:
                self._record.template_size = len(template)
                if self._wanted is not None:
                    self._wanted[slot] = template
            self._remember(slot, template)
            return template
        finally:
            self._enrolling.clear()
            self._await_lift = True  # the enrolling finger must not also count as a door attempt

    def _capture(self, buffer: int, deadline: float) -> None:
        self._wait_for(lifted=False, deadline=deadline)
        self._link.expect(Instruction.IMG2TZ, bytes([buffer]), f"capture {buffer} of 2")
        self._captures = buffer

    def _wait_for(self, lifted: bool, deadline: float) -> None:
        """Poll GenImg until a finger is on the glass (lifted=False) or off it (lifted=True)."""
        while True:
            # checked before each image, so a cancelled enrolment never takes the next person's finger
            if self._stopping.is_set():
                raise PortUnavailable(f"{self.name} stopped during enrolment")
            if self._current and self._current.abandoned.is_set():
                raise FingerprintError(f"{self.name}: enrolment cancelled")
            code, _ = self._link.call(Instruction.GEN_IMG)
            if code == NO_FINGER and lifted or code == 0 and not lifted:
                return
            if code not in (0, NO_FINGER):
                raise error_for(code, "GenImg during enrolment")
            if time.monotonic() >= deadline:
                what = "lifted" if lifted else "placed"
                raise FingerprintTimeout(f"{self.name}: no finger {what} within {self.enrol_timeout:g} s "
                                         f"during enrolment")
            self._stopping.wait(self.poll_interval)
