"""The ZhianTec / Synochip fingerprint module protocol (R30x, R503, AS608, ZFM), without any I/O.

A packet on the wire is  EF01 | address(4) | type(1) | length(2) | payload | checksum(2)
where length = len(payload) + 2 and checksum = low 16 bits of type + both length bytes + payload bytes.
The host sends command packets; the module answers with an acknowledge packet whose first payload byte is
a confirmation code. Templates travel as data packets (sized by ReadSysPara) closed by an end-of-data packet.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
# The largest payload is a 256-byte data packet; anything longer is garbage that happened to start with EF01.
MAX_LENGTH = 256 + 2
PACKET_SIZES = (32, 64, 128, 256)  # ReadSysPara reports the index into this table
_FRAME = struct.Struct(">2sIBH")  # header, address, type, length


class PacketType(IntEnum):
    COMMAND = 0x01
    DATA = 0x02
    ACK = 0x07
    END = 0x08


class Instruction(IntEnum):
    GEN_IMG = 0x01          # GenImg: capture a finger image into the image buffer
    IMG2TZ = 0x02           # Img2Tz: extract features from the image into CharBuffer 1 or 2
    MATCH = 0x03            # Match: compare CharBuffer 1 with CharBuffer 2
    SEARCH = 0x04           # Search: 1:N search of a CharBuffer over a range of library slots
    REG_MODEL = 0x05        # RegModel: merge CharBuffer 1 and 2 into one template
    STORE = 0x06            # Store: write a CharBuffer into a library slot
    LOAD_CHAR = 0x07        # LoadChar: read a library slot into a CharBuffer
    UP_CHAR = 0x08          # UpChar: module -> host, a CharBuffer as data packets
    DOWN_CHAR = 0x09        # DownChar: host -> module, data packets into a CharBuffer
    DELETE_CHAR = 0x0C      # DeleteChar: clear N slots from a start slot
    EMPTY = 0x0D            # Empty: clear the whole library
    READ_SYS_PARA = 0x0F    # ReadSysPara: capacity, packet size, address, baud rate
    VFY_PWD = 0x13          # VfyPwd: unlock the module with its 32-bit password
    WRITE_NOTEPAD = 0x18    # WriteNotepad: 32 bytes of user flash (page 0..15)
    READ_NOTEPAD = 0x19     # ReadNotepad: read one 32-byte notepad page
    TEMPLATE_NUM = 0x1D     # TemplateNum: number of stored templates
    READ_INDEX_TABLE = 0x1F  # ReadIndexTable: bitmap of used slots, 256 slots per page


# A module sends this single byte when it powers up (R30x "handshake"); seen on the line, it means the
# module has forgotten the verified password and its buffers.
POWER_UP_BYTE = 0x55
NOTEPAD_SIZE = 32


@dataclass(frozen=True)
class Packet:
    type: int
    payload: bytes
    address: int = DEFAULT_ADDRESS


def checksum(ptype: int, payload: bytes) -> int:
    length = len(payload) + 2
    return (ptype + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def encode(packet: Packet) -> bytes:
    if len(packet.payload) + 2 > MAX_LENGTH:
        raise ValueError(f"payload of {len(packet.payload)} bytes is longer than a packet can carry")
    return (_FRAME.pack(HEADER, packet.address, packet.type, len(packet.payload) + 2) + packet.payload
            + checksum(packet.type, packet.payload).to_bytes(2, "big"))


def command(instruction: Instruction, args: bytes = b"", address: int = DEFAULT_ADDRESS) -> bytes:
    return encode(Packet(PacketType.COMMAND, bytes([instruction]) + args, address))


def ack(code: int, data: bytes = b"", address: int = DEFAULT_ADDRESS) -> bytes:
    return encode(Packet(PacketType.ACK, bytes([code]) + data, address))


def data_packets(blob: bytes, packet_size: int, address: int = DEFAULT_ADDRESS) -> list[bytes]:
    """Split a template into data packets of `packet_size` bytes, the last one typed END."""
    chunks = [blob[i:i + packet_size] for i in range(0, len(blob), packet_size)] or [b""]
    return [encode(Packet(PacketType.END if i == len(chunks) - 1 else PacketType.DATA, chunk, address))
            for i, chunk in enumerate(chunks)]


@dataclass(frozen=True)
class SystemParameters:
    """What ReadSysPara reports after its confirmation byte (16 bytes)."""
    capacity: int
    packet_size: int          # bytes per data packet (32, 64, 128 or 256)
    address: int = DEFAULT_ADDRESS
    security_level: int = 3
    baudrate: int = 57600
    status: int = 0
    system_id: int = 0

    _LAYOUT = struct.Struct(">HHHHIHH")

    def encode(self) -> bytes:
        return self._LAYOUT.pack(self.status, self.system_id, self.capacity, self.security_level, self.address,
                                 PACKET_SIZES.index(self.packet_size), self.baudrate // 9600)

    @classmethod
    def decode(cls, data: bytes) -> "SystemParameters":
        if len(data) < cls._LAYOUT.size:
            raise UnexpectedPacket(f"ReadSysPara answered {len(data)} bytes, expected {cls._LAYOUT.size}")
        status, system_id, capacity, level, address, size_code, baud = cls._LAYOUT.unpack_from(data)
        if size_code >= len(PACKET_SIZES):
            raise UnexpectedPacket(f"ReadSysPara reported unknown packet size code {size_code}")
        return cls(capacity, PACKET_SIZES[size_code], address, level, baud * 9600, status, system_id)


# --- which reply fits which command ---------------------------------------------------------------
# A reply is only taken for its command when its confirmation code is one that command can give and its
# data has the length the datasheet gives for it. A reply that arrives one command late (the module was
# still busy with the previous one) then shows up as a mismatch instead of being believed.

# every command may answer these: packet not received, wrong address, password not verified
_ANY_CODE = frozenset({0x01, 0x20, 0x21})


@dataclass(frozen=True)
class ReplyShape:
    codes: frozenset[int]     # confirmation codes this command can give besides OK and _ANY_CODE
    data: int                 # data bytes after the confirmation byte on OK
    error_data: frozenset[int] = frozenset({0})   # data lengths accepted with a non-OK code


REPLIES: dict[Instruction, ReplyShape] = {
    Instruction.GEN_IMG: ReplyShape(frozenset({0x02, 0x03}), 0),
    Instruction.IMG2TZ: ReplyShape(frozenset({0x06, 0x07, 0x15}), 0),
    Instruction.MATCH: ReplyShape(frozenset({0x08}), 2, frozenset({0, 2})),
    Instruction.SEARCH: ReplyShape(frozenset({0x09}), 4, frozenset({0, 4})),
    Instruction.REG_MODEL: ReplyShape(frozenset({0x0A}), 0),
    Instruction.STORE: ReplyShape(frozenset({0x0B, 0x0C, 0x18}), 0),
    Instruction.LOAD_CHAR: ReplyShape(frozenset({0x0B, 0x0C}), 0),
    Instruction.UP_CHAR: ReplyShape(frozenset({0x0D}), 0),
    Instruction.DOWN_CHAR: ReplyShape(frozenset({0x0E}), 0),
    Instruction.DELETE_CHAR: ReplyShape(frozenset({0x0B, 0x10}), 0),
    Instruction.EMPTY: ReplyShape(frozenset({0x11}), 0),
    Instruction.READ_SYS_PARA: ReplyShape(frozenset(), 16),
    Instruction.VFY_PWD: ReplyShape(frozenset({0x13}), 0),
    Instruction.WRITE_NOTEPAD: ReplyShape(frozenset({0x18, 0x1C}), 0),
    Instruction.READ_NOTEPAD: ReplyShape(frozenset({0x1C}), NOTEPAD_SIZE),
    Instruction.TEMPLATE_NUM: ReplyShape(frozenset(), 2),
    Instruction.READ_INDEX_TABLE: ReplyShape(frozenset({0x1C}), 32),
}


def check_reply(instruction: Instruction, code: int, data: bytes) -> None:
    """Raise MismatchedReply unless (code, data) is a reply `instruction` can give."""
    shape = REPLIES[instruction]
    if code == 0:
        if len(data) != shape.data:
            raise MismatchedReply(f"{instruction.name}: an OK reply carries {shape.data} data bytes, "
                                  f"this one {len(data)}: it belongs to another command")
        return
    if code not in shape.codes and code not in _ANY_CODE:
        raise MismatchedReply(f"{instruction.name} cannot answer confirmation 0x{code:02X} "
                              f"({describe(code)}): the reply belongs to another command")
    if len(data) not in shape.error_data:
        raise MismatchedReply(f"{instruction.name}: a reply with confirmation 0x{code:02X} carries "
                              f"{len(data)} data bytes: it belongs to another command")


@dataclass(frozen=True)
class SearchHit:
    slot: int
    score: int


def search_result(code: int, data: bytes, capacity: int) -> SearchHit | None:
    """A Search reply already passed by check_reply: the hit, or None for no match.
    Score 0 is no match whatever the code; a slot outside the library is a damaged reply."""
    if code != 0:
        return None
    slot, score = int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")
    if score == 0:
        return None
    if slot >= capacity:
        raise MismatchedReply(f"Search reported slot {slot}, outside the library 0..{capacity - 1}")
    return SearchHit(slot, score)


# --- how long a module may take (R307/R305 datasheets) -----------------------------------------------
# Worst-case work time per command before the reply starts; the wire time at the baud rate comes on top.
WORK_SECONDS: dict[Instruction, float] = {
    Instruction.GEN_IMG: 1.0,          # "image acquiring time < 1.0 s"
    Instruction.IMG2TZ: 0.8,
    Instruction.MATCH: 0.3,
    Instruction.REG_MODEL: 0.8,
    Instruction.STORE: 0.3,            # a flash page write
    Instruction.DELETE_CHAR: 0.3,
    Instruction.EMPTY: 1.0,
    Instruction.WRITE_NOTEPAD: 0.3,
}
SEARCH_SECONDS_PER_SLOT = 0.002        # "search time < 1.0 s (1:1000, mean)": twice the mean for the worst case
QUICK_SECONDS = 0.2                    # everything else answers from RAM


def work_seconds(instruction: Instruction, capacity: int = 1000) -> float:
    if instruction == Instruction.SEARCH:
        return 0.2 + SEARCH_SECONDS_PER_SLOT * capacity
    return WORK_SECONDS.get(instruction, QUICK_SECONDS)


def wire_seconds(nbytes: int, baudrate: int) -> float:
    """Time to carry `nbytes` on a UART at `baudrate` (10 bits a byte: start, 8 data, stop)."""
    return nbytes * 10 / baudrate


def longest_work(capacity: int) -> float:
    return max(work_seconds(i, capacity) for i in REPLIES)


# --- errors ---------------------------------------------------------------------------------------

class FingerprintError(Exception):
    """Anything that went wrong talking to a fingerprint module."""


class CorruptPacket(FingerprintError):
    """A packet header was found but the packet is damaged (bad checksum or impossible length)."""


class FingerprintTimeout(FingerprintError):
    """The module did not answer in time (a zero-byte read is a timeout, not a bad header)."""


class UnexpectedPacket(FingerprintError):
    """A well-formed packet of the wrong kind for this point of the conversation."""


class MismatchedReply(UnexpectedPacket):
    """An acknowledge whose code or length does not fit the command sent: a late reply to an earlier one."""


class ModuleError(FingerprintError):
    """The module answered with a confirmation code other than OK."""

    def __init__(self, code: int, message: str | None = None):
        self.code = code
        super().__init__(message or f"{describe(code)} (confirmation 0x{code:02X})")


class TransferError(ModuleError): ...
class NoFinger(ModuleError): ...
class ImageFailed(ModuleError): ...
class NoMatch(ModuleError): ...
class NotFound(ModuleError): ...
class EnrolMismatch(ModuleError): ...
class BadSlot(ModuleError): ...
class TemplateInvalid(ModuleError): ...
class FlashError(ModuleError): ...
class WrongPassword(ModuleError): ...
class PasswordRequired(ModuleError): ...
class WrongAddress(ModuleError): ...
class RegisterError(ModuleError): ...


CONFIRMATIONS: dict[int, tuple[type[ModuleError], str]] = {
    0x01: (TransferError, "the module could not receive the packet"),
    0x02: (NoFinger, "no finger on the sensor"),
    0x03: (ImageFailed, "the sensor could not take an image of the finger"),
    0x06: (ImageFailed, "the finger image is too messy to extract features"),
    0x07: (ImageFailed, "the finger image has too few feature points"),
    0x08: (NoMatch, "the two fingerprints do not match"),
    0x09: (NotFound, "no matching fingerprint in the library"),
    0x0A: (EnrolMismatch, "the two captures could not be merged (different fingers?)"),
    0x0B: (BadSlot, "the slot number is outside the module library"),
    0x0C: (TemplateInvalid, "the template in the library slot is missing or invalid"),
    0x0D: (TransferError, "the module failed to upload the template"),
    0x0E: (TransferError, "the module could not receive the following data packets"),
    0x0F: (TransferError, "the module failed to upload the image"),
    0x10: (FlashError, "the module failed to delete the template"),
    0x11: (FlashError, "the module failed to clear the library"),
    0x13: (WrongPassword, "the module rejected the password"),
    0x15: (ImageFailed, "there is no valid image in the image buffer"),
    0x18: (FlashError, "the module failed to write its flash memory"),
    0x19: (ModuleError, "the module reported an undefined error"),
    0x1A: (RegisterError, "invalid register number"),
    0x1B: (RegisterError, "invalid register content"),
    0x1C: (RegisterError, "invalid notepad page number"),
    0x1D: (TransferError, "the module failed to operate its communication port"),
    0x20: (WrongAddress, "the packet address does not match the module address"),
    0x21: (PasswordRequired, "the module requires the password to be verified first"),
}


def describe(code: int) -> str:
    if code == 0:
        return "OK"
    known = CONFIRMATIONS.get(code)
    return known[1] if known else f"unknown confirmation code 0x{code:02X}"


def error_for(code: int, context: str | None = None) -> ModuleError:
    """The error for a confirmation code; `context` says what was being done (e.g. "Store into slot 3")."""
    cls = CONFIRMATIONS.get(code, (ModuleError, ""))[0]
    message = f"{describe(code)} (confirmation 0x{code:02X})"
    return cls(code, f"{context}: {message}" if context else message)


# --- streaming decoder ----------------------------------------------------------------------------

class Decoder:
    """Reassembles packets from a byte stream that may be chunked arbitrarily and contain garbage.

    Bytes before a header are skipped (counted in `skipped`). A damaged packet raises CorruptPacket
    from next_packet() after being dropped, so the next call resynchronises on the following EF01.
    next_packet() raises nothing else.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0
        self.power_up_seen = False    # a lone POWER_UP_BYTE was skipped between packets

    def _skip(self, n: int) -> None:
        if n and POWER_UP_BYTE in self._buf[:n]:
            self.power_up_seen = True
        self.skipped += n
        del self._buf[:n]

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_packet(self) -> Packet | None:
        start = self._buf.find(HEADER)
        if start < 0:
            # keep a trailing EF: it may be the first half of a header split across reads
            keep = 1 if self._buf[-1:] == HEADER[:1] else 0
            self._skip(len(self._buf) - keep)
            return None
        if start:
            self._skip(start)
        if len(self._buf) < _FRAME.size:
            return None
        _, address, ptype, length = _FRAME.unpack_from(self._buf)
        if not 2 <= length <= MAX_LENGTH:
            del self._buf[:1]
            raise CorruptPacket(f"impossible packet length {length}")
        end = _FRAME.size + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[_FRAME.size:end - 2])
        received = int.from_bytes(self._buf[end - 2:end], "big")
        if received != checksum(ptype, payload):
            del self._buf[:1]  # the real header may sit inside what looked like this packet
            raise CorruptPacket(f"bad checksum 0x{received:04X}, expected 0x{checksum(ptype, payload):04X}")
        del self._buf[:end]
        return Packet(ptype, payload, address)

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a packet."""
        return len(self._buf)
