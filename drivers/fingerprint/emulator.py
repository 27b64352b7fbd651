"""A fingerprint module emulator speaking the ZhianTec / Synochip protocol on a pty.

It holds a template library in numbered slots, a password, a notepad and simulated fingers. A finger's
features are its template: Search finds the slot whose stored template equals the finger's, and two
captures of the same finger merge into that template. Drivers (ours, or pyfingerprint) open the pty's
slave side exactly as they would open /dev/ttyUSB0.

With `real_timing` it keeps the datasheet's pace: GenImg about 0.27 s, Search about 1 ms per stored
template (≈1 s at 1000), bytes paced at the baud rate both ways. It works one command at a time, as
the module's firmware does: a command sent while it is busy waits in the line. Faults (`inject`) make
it late, silent, noisy, busy or restart it, so the driver can be tried on everything a field sees.

With `touch_output` it models the module's touch signal (R307 TOUCH, R503 WAKEUP): the callable is given
True when a finger lands on the glass and False when it lifts, at the moment it happens (a test wires it to
a gpiozero mock pin). A tapped finger then lifts for TAP_LIFT seconds before the next tap lands, since a
driver that listens to the wire sends no GenImg to notice the lift.
"""
from __future__ import annotations

import hashlib
import os
import pty
import select
import threading
import time
import tty
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable

from drivers.fingerprint.protocol import (
    DEFAULT_ADDRESS, NOTEPAD_SIZE, PACKET_SIZES, POWER_UP_BYTE, CorruptPacket, Decoder, Instruction, Packet,
    PacketType, SystemParameters, ack, data_packets, wire_seconds,
)

OK, RECV_ERROR, NO_FINGER, MESSY = 0x00, 0x01, 0x02, 0x06
NO_MATCH, NOT_FOUND, MERGE_FAIL, BAD_SLOT, BAD_TEMPLATE = 0x08, 0x09, 0x0A, 0x0B, 0x0C
UPLOAD_FAIL, WRONG_PASSWORD, NO_IMAGE, PASSWORD_REQUIRED = 0x0D, 0x13, 0x15, 0x21
MATCH_SCORE = 180
BAD_NOTEPAD_PAGE = 0x1C

# Work time per command in real-timing mode (R307 datasheet); Search adds SEARCH_PER_TEMPLATE per stored template.
REAL_SECONDS = {
    Instruction.GEN_IMG: 0.27, Instruction.IMG2TZ: 0.12, Instruction.MATCH: 0.05, Instruction.SEARCH: 0.02,
    Instruction.REG_MODEL: 0.1, Instruction.STORE: 0.06, Instruction.DELETE_CHAR: 0.04, Instruction.EMPTY: 0.3,
    Instruction.WRITE_NOTEPAD: 0.04,
}
REAL_QUICK = 0.005
SEARCH_PER_TEMPLATE = 0.001
FAULTS = ("late", "lost", "corrupt", "busy", "power_cycle", "slow_search")
TAP_LIFT = 0.1          # with a touch output: seconds a tapped finger is off the glass before the next tap


@dataclass
class Fault:
    """One misbehaviour, for the next command `instruction` (any command when None).
    late: the reply comes `seconds` late · lost: no reply · corrupt: the reply's checksum is wrong ·
    busy: the module stalls `seconds` before it takes the command · power_cycle: the module restarts as the
    command arrives (the command is lost, it sends its power-up byte and wants its password again) ·
    slow_search: a Search that takes `seconds` longer."""
    kind: str
    instruction: int | None = None
    seconds: float = 0.0


def finger_template(finger_id: str, size: int) -> bytes:
    """A stable, distinct template for a named finger that nobody registered explicitly."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{finger_id}:{counter}".encode()).digest()
        counter += 1
    return out[:size]


class ModuleEmulator:
    def __init__(self, *, capacity: int = 300, packet_size: int = 128, template_size: int = 512,
                 password: int = 0, address: int = DEFAULT_ADDRESS, real_timing: bool = False,
                 baudrate: int = 57600, lenient_sizes: bool = False, notepad: bool = True,
                 touch_output: Callable[[bool], None] | None = None):
        if packet_size not in PACKET_SIZES:
            raise ValueError(f"packet size {packet_size} is not one of {PACKET_SIZES}")
        if template_size not in (512, 768):
            raise ValueError(f"template size {template_size} is not 512 or 768")
        self.capacity = capacity
        self.packet_size = packet_size
        self.template_size = template_size
        self.password = password
        self.address = address
        self.library: dict[int, bytes] = {}
        self.images_taken = 0          # GenImg calls that found a finger
        self.image_requests = 0        # all GenImg calls: the driver's polls
        self.silent = False            # swallow commands without answering (a hung module)
        self.real_timing = real_timing
        self.baudrate = baudrate
        self.lenient_sizes = lenient_sizes   # take any template size, as some modules do (it never matches)
        self.has_notepad = notepad
        self.notepad: dict[int, bytes] = {}
        self.wrong_baud = False        # the host talks at another baud rate: both sides see only noise
        self.faults: deque[Fault] = deque()
        self.faults_applied: list[Fault] = []
        self.commands: Counter[int] = Counter()   # commands received, by instruction
        self._presses: list[tuple[float, float, bytes]] = []   # (on, off, features) in monotonic time
        self._fingers: dict[str, bytes] = {}
        self._on_glass: bytes | None = None
        self._taps: deque[list] = deque()  # [features, smudged, images left]
        self._tap_gap = False          # a tapped finger is lifted for at least one GenImg
        self._tap_gap_until = 0.0      # ... or, with a touch output, until then
        self.touch_output = touch_output
        self.touches = 0               # times the touch output rose
        self._touch_state = False
        self._touch_wake = threading.Event()
        self._touch_thread: threading.Thread | None = None
        self._fail_next = False
        self._garbage = b""
        self._image: bytes | None = None
        self._image_smudged = False
        self._char: dict[int, bytes | None] = {1: None, 2: None}
        self._incoming: tuple[int, bytearray] | None = None  # DownChar in progress: (buffer, bytes so far)
        self._unlocked = password == 0
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._link: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- the serial port ---
    def plug(self, link: str | None = None) -> str:
        """Open a fresh pty and serve it; returns the path a driver opens (`link` if given, like socat)."""
        if self._thread:
            raise RuntimeError("the emulator is already plugged in")
        master, slave = pty.openpty()
        tty.setraw(slave)  # before anything is written: no echo, no line discipline
        self._master, self._slave = master, slave
        self._unlocked = self.password == 0
        path = os.ttyname(slave)
        if link:
            tmp = f"{link}.tmp{os.getpid()}"
            os.symlink(path, tmp)
            os.replace(tmp, link)  # atomic: a driver never sees a half-made link
            self._link, path = link, link
        self._stop.clear()
        self._wake_r, self._wake_w = os.pipe()    # unplug wakes the serving thread: it sleeps in select, no tick
        self._thread = threading.Thread(target=self._serve, name=f"fp-emulator {path}", daemon=True)
        self._thread.start()
        if self.touch_output is not None:
            self._touch_thread = threading.Thread(target=self._drive_touch, name=f"fp-touch {path}", daemon=True)
            self._touch_thread.start()
        return path

    def unplug(self) -> None:
        """Close the pty as a USB adapter vanishing would; the library (flash) survives."""
        if not self._thread:
            return
        self._stop.set()
        self._touch_wake.set()
        os.write(self._wake_w, b"x")
        self._thread.join()
        self._thread = None
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._touch_thread is not None:
            self._touch_thread.join()
            self._touch_thread = None
        for fd in (self._master, self._slave):
            os.close(fd)
        self._master = self._slave = None
        if self._link:
            try:
                os.unlink(self._link)
            except FileNotFoundError:
                pass
            self._link = None

    stop = unplug

    # --- what a test or the simulator panel plays ---
    def add_finger(self, finger_id: str, template: bytes) -> None:
        if len(template) != self.template_size:
            raise ValueError(f"template for {finger_id!r} is {len(template)} bytes, module uses {self.template_size}")
        with self._lock:
            self._fingers[finger_id] = bytes(template)

    def place_finger(self, finger_id: str | None) -> None:
        """A finger rests on the glass until lift_finger(); None is a finger nobody enrolled."""
        with self._lock:
            self._on_glass = self._features(finger_id)
        self._touch_wake.set()

    def lift_finger(self) -> None:
        with self._lock:
            self._on_glass = None
        self._touch_wake.set()

    def tap(self, finger_id: str | None, smudged: bool = False, images: int = 1) -> None:
        """A finger touches for `images` GenImg captures (one by default), then lifts. Taps queue up,
        each after a lift. A smudged tap gives an image the module cannot extract features from."""
        with self._lock:
            self._taps.append([self._features(finger_id), smudged, images])
        self._touch_wake.set()

    def press(self, finger_id: str | None, after: float, seconds: float) -> None:
        """A finger on the glass from `after` seconds from now for `seconds` (real time, for timing tests)."""
        now = time.monotonic()
        with self._lock:
            self._presses.append((now + after, now + after + seconds, self._features(finger_id)))
        self._touch_wake.set()

    def taps_waiting(self) -> int:
        with self._lock:
            return len(self._taps)

    def inject(self, kind: str, instruction: int | None = None, seconds: float = 0.0) -> None:
        """Queue a fault (see Fault) for the next matching command."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self.faults.append(Fault(kind, instruction, seconds))

    def power_cycle(self) -> None:
        """A power blip now: buffers and the verified password are gone; the flash (library, notepad) stays."""
        with self._lock:
            self._restart()
        self._send(bytes([POWER_UP_BYTE]))

    def replace_module(self, library: dict[int, bytes] | None = None) -> None:
        """Another physical module in its place (a swap, or a new empty one): its own library and notepad."""
        with self._lock:
            self.library = dict(library or {})
            self.notepad = {}
            self._restart()

    def _restart(self) -> None:
        self._unlocked = self.password == 0
        self._image = None
        self._char = {1: None, 2: None}
        self._incoming = None

    def fail_next_image(self) -> None:
        """The next feature extraction fails (a smudged or partial finger)."""
        with self._lock:
            self._fail_next = True

    def inject_garbage(self, noise: bytes) -> None:
        """Line noise sent just before the next reply."""
        with self._lock:
            self._garbage += noise

    def _features(self, finger_id: str | None) -> bytes:
        if finger_id is None:
            return os.urandom(self.template_size)
        if finger_id not in self._fingers:
            self._fingers[finger_id] = finger_template(finger_id, self.template_size)
        return self._fingers[finger_id]

    # --- the touch signal ---
    def _drive_touch(self) -> None:
        """Raise and lower the touch output as fingers land and lift (presses are timed: wake at their edges)."""
        while not self._stop.is_set():
            self._touch_wake.clear()
            with self._lock:
                now = time.monotonic()
                present = self._finger_present(now)
                edges = [t for on, off, _ in self._presses for t in (on, off) if t > now]
                if self._taps and self._tap_gap and self._tap_gap_until > now:
                    edges.append(self._tap_gap_until)
            if present != self._touch_state:
                self._touch_state = present
                self.touches += present
                self.touch_output(present)
            # every change of what is on the glass sets _touch_wake; timed ones are edges: no tick at rest
            self._touch_wake.wait(min(t - now for t in edges) if edges else None)

    def _finger_present(self, now: float) -> bool:
        if self._on_glass is not None or any(on <= now < off for on, off, _ in self._presses):
            return True
        return bool(self._taps) and not self._lifted(now)

    def _lifted(self, now: float) -> bool:
        """Between two taps: until a GenImg saw the glass empty, or (touch output) TAP_LIFT has passed."""
        if self._tap_gap and self.touch_output is not None and now >= self._tap_gap_until:
            self._tap_gap = False
        return self._tap_gap

    # --- serving ---
    def _serve(self) -> None:
        decoder = Decoder()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                continue
            if self.real_timing:
                self._pause(wire_seconds(len(data), self.baudrate))   # the bytes took this long to arrive
            if self.wrong_baud:
                self._send(b"\xf0\x80\x00\xfe\x80" * max(1, len(data) // 12))   # what a baud mismatch reads as
                continue
            decoder.feed(data)
            while not self._stop.is_set():
                try:
                    packet = decoder.next_packet()
                except CorruptPacket:
                    self._send(ack(RECV_ERROR, address=self.address))
                    continue
                if packet is None:
                    break
                if packet.address != self.address:
                    continue  # addressed to another module on the bus
                self._answer(packet, decoder)

    def _answer(self, packet: Packet, decoder: Decoder) -> None:
        op = packet.payload[0] if packet.type == PacketType.COMMAND and packet.payload else None
        if op is not None:
            self.commands[op] += 1
        fault = self._take_fault(op) if op is not None else None
        if fault and fault.kind == "busy":
            self._pause(fault.seconds)
        if fault and fault.kind == "power_cycle":
            self._pause(0.05)
            decoder.__init__()          # whatever was in its receive buffer died with it
            self.power_cycle()
            return
        with self._lock:
            replies = self._handle(packet)
        if op is not None and self.real_timing:
            work = REAL_SECONDS.get(op, REAL_QUICK)
            if op == Instruction.SEARCH:
                work += SEARCH_PER_TEMPLATE * len(self.library)
            self._pause(work)
        if fault and fault.kind in ("late", "slow_search"):
            self._pause(fault.seconds)
        if fault and fault.kind == "lost" or self.silent:
            return
        if fault and fault.kind == "corrupt" and replies:
            first = bytearray(replies[0])
            first[-1] ^= 0xFF
            replies = [bytes(first), *replies[1:]]
        for reply in replies:
            self._send(reply)

    def _take_fault(self, op: int) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                wanted = Instruction.SEARCH if fault.kind == "slow_search" else fault.instruction
                if wanted is None or wanted == op:
                    self.faults.remove(fault)
                    self.faults_applied.append(fault)
                    return fault
        return None

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)

    def _send(self, data: bytes) -> None:
        with self._lock:
            data, self._garbage = self._garbage + data, b""
        master = self._master
        if master is None:
            return
        try:
            if not self.real_timing:
                os.write(master, data)
                return
            for i in range(0, len(data), 32):          # paced at the baud rate
                os.write(master, data[i:i + 32])
                self._pause(wire_seconds(len(data[i:i + 32]), self.baudrate))
        except OSError:
            pass  # nobody listening; a real module would just talk to the void

    def _handle(self, packet: Packet) -> list[bytes]:
        if packet.type in (PacketType.DATA, PacketType.END):
            self._receive_data(packet)
            return []
        if packet.type != PacketType.COMMAND or not packet.payload:
            return [self._ack(RECV_ERROR)]
        self._incoming = None
        op, args = packet.payload[0], packet.payload[1:]
        if op == Instruction.VFY_PWD:
            return [self._verify(args)]
        if not self._unlocked:
            return [self._ack(PASSWORD_REQUIRED)]
        handler = self._HANDLERS.get(op)
        if handler is None:
            return [self._ack(RECV_ERROR)]
        try:
            return handler(self, args)
        except (IndexError, KeyError):
            return [self._ack(RECV_ERROR)]  # arguments too short or an unknown buffer number

    def _ack(self, code: int, data: bytes = b"") -> bytes:
        return ack(code, data, self.address)

    def _verify(self, args: bytes) -> bytes:
        if len(args) != 4:
            return self._ack(RECV_ERROR)
        self._unlocked = int.from_bytes(args, "big") == self.password
        return self._ack(OK if self._unlocked else WRONG_PASSWORD)

    def _read_sys_para(self, args: bytes) -> list[bytes]:
        params = SystemParameters(self.capacity, self.packet_size, self.address)
        return [self._ack(OK, params.encode())]

    def _gen_img(self, args: bytes) -> list[bytes]:
        self.image_requests += 1
        finger, smudged = self._on_glass, False
        now = time.monotonic()
        if finger is None:
            self._presses = [p for p in self._presses if p[1] > now]
            finger = next((f for on, off, f in self._presses if on <= now), None)
        if finger is None and self._taps and not self._lifted(now):
            finger, smudged, left = self._taps[0]
            if left <= 1:
                self._taps.popleft()
                self._tap_gap, self._tap_gap_until = True, now + TAP_LIFT
                self._touch_wake.set()
            else:
                self._taps[0][2] = left - 1
        elif finger is None:
            if self._tap_gap and self._taps:
                self._touch_wake.set()      # the next tapped finger is on the glass now
            self._tap_gap = False
        if finger is None:
            return [self._ack(NO_FINGER)]
        self._image, self._image_smudged = finger, smudged
        self.images_taken += 1
        return [self._ack(OK)]

    def _img2tz(self, args: bytes) -> list[bytes]:
        buffer = self._buffer(args[0])
        if self._image is None:
            return [self._ack(NO_IMAGE)]
        if self._fail_next or self._image_smudged:
            self._fail_next = False
            self._image = None
            return [self._ack(MESSY)]
        self._char[buffer] = self._image
        return [self._ack(OK)]

    def _match(self, args: bytes) -> list[bytes]:
        a, b = self._char[1], self._char[2]
        if a is None or a != b:
            return [self._ack(NO_MATCH, b"\x00\x00")]
        return [self._ack(OK, MATCH_SCORE.to_bytes(2, "big"))]

    def _search(self, args: bytes) -> list[bytes]:
        features = self._char[self._buffer(args[0])]
        start, count = int.from_bytes(args[1:3], "big"), int.from_bytes(args[3:5], "big")
        for slot in range(start, min(start + count, self.capacity)):
            if features is not None and self.library.get(slot) == features:
                return [self._ack(OK, slot.to_bytes(2, "big") + MATCH_SCORE.to_bytes(2, "big"))]
        return [self._ack(NOT_FOUND, b"\x00\x00\x00\x00")]

    def _reg_model(self, args: bytes) -> list[bytes]:
        a, b = self._char[1], self._char[2]
        if a is None or a != b:
            return [self._ack(MERGE_FAIL)]
        return [self._ack(OK)]  # both buffers already hold the merged template

    def _store(self, args: bytes) -> list[bytes]:
        features = self._char[self._buffer(args[0])]
        slot = int.from_bytes(args[1:3], "big")
        if slot >= self.capacity:
            return [self._ack(BAD_SLOT)]
        if features is None:
            return [self._ack(BAD_TEMPLATE)]
        self.library[slot] = features
        return [self._ack(OK)]

    def _load_char(self, args: bytes) -> list[bytes]:
        buffer, slot = self._buffer(args[0]), int.from_bytes(args[1:3], "big")
        if slot >= self.capacity:
            return [self._ack(BAD_SLOT)]
        if slot not in self.library:
            return [self._ack(BAD_TEMPLATE)]
        self._char[buffer] = self.library[slot]
        return [self._ack(OK)]

    def _up_char(self, args: bytes) -> list[bytes]:
        features = self._char[self._buffer(args[0])]
        if features is None:
            return [self._ack(UPLOAD_FAIL)]
        return [self._ack(OK), *data_packets(features, self.packet_size, self.address)]

    def _down_char(self, args: bytes) -> list[bytes]:
        self._incoming = (self._buffer(args[0]), bytearray())
        return [self._ack(OK)]

    def _receive_data(self, packet: Packet) -> None:
        if self._incoming is None:
            return
        buffer, received = self._incoming
        received += packet.payload
        if packet.type == PacketType.END:
            self._incoming = None
            if self.lenient_sizes:      # some modules take whatever comes, cut or padded to their size
                self._char[buffer] = bytes(received[:self.template_size]).ljust(self.template_size, b"\0")
                return
            # a template of the wrong size is not a template: Store will refuse the buffer
            self._char[buffer] = bytes(received) if len(received) == self.template_size else None

    def _delete_char(self, args: bytes) -> list[bytes]:
        start, count = int.from_bytes(args[0:2], "big"), int.from_bytes(args[2:4], "big")
        if start + count > self.capacity:
            return [self._ack(BAD_SLOT)]
        for slot in range(start, start + count):
            self.library.pop(slot, None)
        return [self._ack(OK)]

    def _empty(self, args: bytes) -> list[bytes]:
        self.library.clear()
        return [self._ack(OK)]

    def _template_num(self, args: bytes) -> list[bytes]:
        return [self._ack(OK, len(self.library).to_bytes(2, "big"))]

    def _read_index_table(self, args: bytes) -> list[bytes]:
        page = args[0]
        bitmap = bytearray(32)
        for slot in self.library:
            offset = slot - page * 256
            if 0 <= offset < 256:
                bitmap[offset // 8] |= 1 << (offset % 8)
        return [self._ack(OK, bytes(bitmap))]

    def _write_notepad(self, args: bytes) -> list[bytes]:
        if not self.has_notepad:
            return [self._ack(RECV_ERROR)]
        page, content = args[0], args[1:1 + NOTEPAD_SIZE]
        if page > 15 or len(content) != NOTEPAD_SIZE:
            return [self._ack(BAD_NOTEPAD_PAGE)]
        self.notepad[page] = bytes(content)
        return [self._ack(OK)]

    def _read_notepad(self, args: bytes) -> list[bytes]:
        if not self.has_notepad:
            return [self._ack(RECV_ERROR)]
        if args[0] > 15:
            return [self._ack(BAD_NOTEPAD_PAGE)]
        return [self._ack(OK, self.notepad.get(args[0], bytes(NOTEPAD_SIZE)))]

    @staticmethod
    def _buffer(number: int) -> int:
        if number not in (1, 2):
            raise KeyError(number)
        return number

    _HANDLERS = {
        Instruction.READ_SYS_PARA: _read_sys_para,
        Instruction.GEN_IMG: _gen_img,
        Instruction.IMG2TZ: _img2tz,
        Instruction.MATCH: _match,
        Instruction.SEARCH: _search,
        Instruction.REG_MODEL: _reg_model,
        Instruction.STORE: _store,
        Instruction.LOAD_CHAR: _load_char,
        Instruction.UP_CHAR: _up_char,
        Instruction.DOWN_CHAR: _down_char,
        Instruction.DELETE_CHAR: _delete_char,
        Instruction.EMPTY: _empty,
        Instruction.TEMPLATE_NUM: _template_num,
        Instruction.READ_INDEX_TABLE: _read_index_table,
        Instruction.WRITE_NOTEPAD: _write_notepad,
        Instruction.READ_NOTEPAD: _read_notepad,
    }
