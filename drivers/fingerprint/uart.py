"""A ZhianTec / Synochip fingerprint module on a serial port (R30x, R503, AS608, ZFM).

One worker thread owns the port: it polls for fingers while started and runs library jobs
(load, delete, enrol, count) in between, so the event loop never blocks on serial I/O. If the port
disappears the driver reports "missing" and reopens it by name when it comes back.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import termios
import threading
import time
from typing import Callable

import serial

from drivers.base import Emit
from drivers.events import DeviceEvent, FingerRead, HealthState
from drivers.fingerprint.protocol import (
    DEFAULT_ADDRESS, CorruptPacket, Decoder, FingerprintError, FingerprintTimeout, Instruction, Packet,
    PacketType, SystemParameters, UnexpectedPacket, WrongPassword, command, data_packets, error_for,
)
from drivers.health import HealthMixin

NO_FINGER, NOT_FOUND = 0x02, 0x09
TEMPLATE_SIZES = (512, 768)   # R305/ZFM-20 and R307/FPM10A
READ_SLICE = 0.05             # serial read timeout; the reply deadline is enforced above it
# what a vanished port raises: pyserial's errors, the OS's, and termios' own (tcflush on a dead pty)
PORT_ERRORS = (OSError, serial.SerialException, termios.error)


class ConfigurationError(FingerprintError):
    """The module is there but the configuration does not fit it (e.g. the wrong password)."""


class PortUnavailable(FingerprintError):
    """The serial port is not there (unplugged) or could not be opened."""


class InvalidSlot(FingerprintError, ValueError):
    """A slot number outside the module's library, refused before anything is sent."""


class DuplicateFinger(FingerprintError):
    """Enrolment found the finger already stored in the library."""

    def __init__(self, existing_slot: int, requested_slot: int):
        self.existing_slot = existing_slot
        super().__init__(f"this finger is already enrolled in slot {existing_slot}; "
                         f"nothing was stored in slot {requested_slot}")


class _Link:
    """Request/reply over an open serial port."""

    def __init__(self, port: serial.Serial, address: int, reply_timeout: float):
        self.port = port
        self.address = address
        self.reply_timeout = reply_timeout
        self.decoder = Decoder()

    def close(self) -> None:
        try:
            self.port.close()
        except PORT_ERRORS:
            pass

    def call(self, instruction: Instruction, args: bytes = b"") -> tuple[int, bytes]:
        """Send a command and return (confirmation code, data) from its acknowledge."""
        # a reply that arrived after an earlier timeout must not be taken for this one
        self.port.reset_input_buffer()
        self.decoder = Decoder()
        self.port.write(command(instruction, args, self.address))
        packet = self.read_packet(instruction.name)
        if packet.type != PacketType.ACK or not packet.payload:
            raise UnexpectedPacket(f"{instruction.name}: expected an acknowledge, got packet type "
                                   f"0x{packet.type:02X} from {self.port.port}")
        return packet.payload[0], packet.payload[1:]

    def expect(self, instruction: Instruction, args: bytes = b"", context: str | None = None) -> bytes:
        code, data = self.call(instruction, args)
        if code != 0:
            raise error_for(code, context or instruction.name)
        return data

    def read_packet(self, waiting_for: str) -> Packet:
        deadline = time.monotonic() + self.reply_timeout
        while True:
            try:
                packet = self.decoder.next_packet()
            except CorruptPacket as exc:
                raise CorruptPacket(f"{waiting_for}: damaged reply from {self.port.port}: {exc}") from None
            if packet is not None and packet.address == self.address:
                return packet
            if packet is not None:
                continue  # another module's address on a shared line
            if time.monotonic() >= deadline:
                partial = f" ({self.decoder.pending} bytes of an incomplete packet)" if self.decoder.pending else ""
                raise FingerprintTimeout(f"{waiting_for}: no reply from the module on {self.port.port} "
                                         f"within {self.reply_timeout:g} s{partial}")
            # zero bytes here just means "not yet"; only the deadline makes it a timeout
            self.decoder.feed(self.port.read(max(1, self.port.in_waiting)))

    def send_template(self, blob: bytes, packet_size: int) -> None:
        for packet in data_packets(blob, packet_size, self.address):
            self.port.write(packet)

    def receive_template(self) -> bytes:
        blob = bytearray()
        while True:
            packet = self.read_packet("UpChar data")
            if packet.type not in (PacketType.DATA, PacketType.END):
                raise UnexpectedPacket(f"UpChar: expected a data packet, got type 0x{packet.type:02X}")
            blob += packet.payload
            if packet.type == PacketType.END:
                return bytes(blob)


class _Job:
    def __init__(self, fn: Callable, args: tuple):
        self.fn, self.args = fn, args
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.abandoned = threading.Event()  # the caller was cancelled while the job ran


class UartFingerprint(HealthMixin):
    def __init__(self, station: str, port: str, baudrate: int = 57600, address: int = DEFAULT_ADDRESS,
                 password: int = 0, poll_interval: float = 0.2, *, reply_timeout: float = 1.0,
                 reconnect_interval: float = 0.5, enrol_timeout: float = 30.0):
        if not 0 <= password <= 0xFFFFFFFF:
            raise ValueError("the fingerprint module password must be a 32-bit number")
        self.station = station
        self.name = f"fingerprint_{station}"
        self.port = port
        self.baudrate = baudrate
        self.address = address
        self.poll_interval = poll_interval
        self.reply_timeout = reply_timeout
        self.reconnect_interval = reconnect_interval
        self.enrol_timeout = enrol_timeout
        self._password = password
        self._state: HealthState = "missing"
        self._params: SystemParameters | None = None
        self._link: _Link | None = None
        self._unavailable: FingerprintError = PortUnavailable(f"{self.name}: {port} has not been opened yet")
        self._await_lift = False
        self._enrolling = threading.Event()
        self._current: _Job | None = None
        self._emit: Emit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- InputDevice ---
    async def start(self, emit: Emit) -> None:
        self._loop = asyncio.get_running_loop()
        self._emit = emit
        self._ensure_worker()

    async def stop(self) -> None:
        self._emit = None
        thread, self._thread = self._thread, None
        if thread:
            self._stopping.set()
            self._jobs.put(None)
            await asyncio.to_thread(thread.join)

    # --- FingerprintModule library operations ---
    async def load_template(self, slot: int, template: bytes) -> None:
        if not isinstance(template, (bytes, bytearray)) or len(template) not in TEMPLATE_SIZES:
            size = len(template) if isinstance(template, (bytes, bytearray)) else type(template).__name__
            raise ValueError(f"{self.name}: a template is {' or '.join(map(str, TEMPLATE_SIZES))} bytes, got {size}")
        await self._submit(self._load_template, slot, bytes(template))

    async def delete_slots(self, slots: list[int]) -> None:
        await self._submit(self._delete_slots, list(slots))

    async def enrol(self, slot: int) -> bytes:
        return await self._submit(self._enrol, slot)

    async def template_count(self) -> int:
        return await self._submit(self._template_count)

    @property
    def enrolling(self) -> bool:
        """True while an enrolment waits for or takes its captures (the screen can say "place finger")."""
        return self._enrolling.is_set()

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
            if job and not job.future.set_running_or_notify_cancel():
                job = None  # the caller gave up waiting; do not touch the module for it
            if stopping.is_set():
                if job:
                    job.future.set_exception(PortUnavailable(f"{self.name} is stopping"))
                break
            if self._link is None:
                self._connect()
            wait = self.poll_interval if self._link else self.reconnect_interval
            if self._link is None:
                if job:
                    job.future.set_exception(self._unavailable)
                continue
            if job:
                self._run(job)
            elif self._emit:
                self._guarded(self._poll_once)
        self._drop_link()
        self._fail_pending()

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
        except (FingerprintTimeout, CorruptPacket, UnexpectedPacket) as exc:
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
            if job and job.future.set_running_or_notify_cancel():
                job.future.set_exception(PortUnavailable(f"{self.name} is stopped"))

    def _connect(self) -> None:
        link = None
        try:
            link = _Link(serial.Serial(self.port, self.baudrate, timeout=READ_SLICE), self.address,
                         self.reply_timeout)
            try:
                link.expect(Instruction.VFY_PWD, self._password.to_bytes(4, "big"))
            except WrongPassword:
                raise ConfigurationError(
                    f"{self.name}: the module on {self.port} rejected the configured password "
                    f"(confirmation 0x13); set the module's password in the configuration") from None
            self._params = SystemParameters.decode(link.expect(Instruction.READ_SYS_PARA))
        except ConfigurationError as exc:
            link.close()
            self._unavailable = exc
            self._set_health("degraded", str(exc))
            return
        except (*PORT_ERRORS, FingerprintError) as exc:
            if link:
                link.close()
            self._unavailable = PortUnavailable(f"{self.name}: {self.port} is not available: {exc}")
            self._set_health("missing", str(self._unavailable))
            return
        self._link = link
        self._await_lift = False
        self._set_health("connected")

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
        if emit and loop:
            try:
                loop.call_soon_threadsafe(emit, event)
            except RuntimeError:
                pass  # the loop is closing; nobody is listening any more

    # --- what happens on the module (worker thread only) ---
    def _poll_once(self) -> None:
        link = self._link
        code, _ = link.call(Instruction.GEN_IMG)
        if code == NO_FINGER:
            self._await_lift = False
            return
        if self._await_lift:
            return  # the same finger is still resting on the glass
        self._await_lift = True
        if code != 0:
            self._send(FingerRead(self.station, "read_failed"))
            return
        code, _ = link.call(Instruction.IMG2TZ, b"\x01")
        if code != 0:
            self._send(FingerRead(self.station, "read_failed"))
            return
        code, data = link.call(Instruction.SEARCH, self._search_args())
        if code == 0:
            self._send(FingerRead(self.station, "match", int.from_bytes(data[0:2], "big"),
                                  int.from_bytes(data[2:4], "big")))
        elif code == NOT_FOUND:
            self._send(FingerRead(self.station, "no_match"))
        else:
            self._send(FingerRead(self.station, "read_failed"))

    def _search_args(self) -> bytes:
        return b"\x01" + (0).to_bytes(2, "big") + self._params.capacity.to_bytes(2, "big")

    def _check_slot(self, slot: int) -> None:
        capacity = self._params.capacity
        if not isinstance(slot, int) or not 0 <= slot < capacity:
            raise InvalidSlot(f"{self.name}: slot {slot!r} is outside the module library 0..{capacity - 1} "
                              f"on {self.port}")

    def _load_template(self, slot: int, template: bytes) -> None:
        self._check_slot(slot)
        self._link.expect(Instruction.DOWN_CHAR, b"\x01", "DownChar")
        self._link.send_template(template, self._params.packet_size)
        self._link.expect(Instruction.STORE, b"\x01" + slot.to_bytes(2, "big"), f"Store into slot {slot}")

    def _delete_slots(self, slots: list[int]) -> None:
        for slot in slots:
            self._check_slot(slot)  # all checked first: a bad list deletes nothing
        for slot in slots:
            self._link.expect(Instruction.DELETE_CHAR, slot.to_bytes(2, "big") + (1).to_bytes(2, "big"),
                              f"DeleteChar slot {slot}")

    def _template_count(self) -> int:
        return int.from_bytes(self._link.expect(Instruction.TEMPLATE_NUM)[0:2], "big")

    def _enrol(self, slot: int) -> bytes:
        self._check_slot(slot)
        link = self._link
        deadline = time.monotonic() + self.enrol_timeout
        self._enrolling.set()
        try:
            self._capture(1, deadline)
            self._wait_for(lifted=True, deadline=deadline)
            self._capture(2, deadline)
            link.expect(Instruction.REG_MODEL, context="RegModel of the two captures")
            code, data = link.call(Instruction.SEARCH, self._search_args())
            if code == 0:
                raise DuplicateFinger(int.from_bytes(data[0:2], "big"), slot)
            if code != NOT_FOUND:
                raise error_for(code, "Search for a duplicate finger")
            link.expect(Instruction.STORE, b"\x01" + slot.to_bytes(2, "big"), f"Store into slot {slot}")
            link.expect(Instruction.UP_CHAR, b"\x01", "UpChar")
            return link.receive_template()
        finally:
            self._enrolling.clear()
            self._await_lift = True  # the enrolling finger must not also count as a door attempt

    def _capture(self, buffer: int, deadline: float) -> None:
        self._wait_for(lifted=False, deadline=deadline)
        self._link.expect(Instruction.IMG2TZ, bytes([buffer]), f"capture {buffer} of 2")

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
