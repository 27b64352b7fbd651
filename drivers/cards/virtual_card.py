"""A contactless card on vsmartcard's virtual reader (vpcd), for tests and demos without hardware.

It plays a box tag or badge: answers GET UID (FF CA) and, unless it is UID-only, emulates an NTAG 424
DNA's NFC Forum Type 4 NDEF file whose SUN parameters are fresh, with a higher read counter, on each
read. Like the real tag it mirrors into a URL template: PICCData at PICCDataOffset, then the SDMMAC over
the file bytes from SDMMACInputOffset to SDMMACOffset (AN12196); `{picc}`, `{mac}` and `{mac_input}`
(zero width, where SDMMACInputOffset points; absent = empty MAC input) mark them in the template.
It can also misbehave the ways a counterfeit or a damaged tag does (see VirtualCard).

vpcd protocol: messages framed by a 2-byte big-endian length; a 1-byte 0/1/2 is power off/on/reset
(no reply), 4 asks for the ATR; anything else is a C-APDU. Closing the socket removes the card.
"""
from __future__ import annotations

import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from drivers.cards.ndef import CC_FILE, NDEF_APPLICATION, NLEN_SIZE
from drivers.cards.sun import make_sun_message, sdm_mac

ATR = bytes.fromhex("3B8180018080")   # ISO 14443-4 card as PC/SC part 3 readers present it
NDEF_FILE = bytes.fromhex("E104")
MAX_LE = 0x3B                          # small on purpose: readers must chunk READ BINARY
SW_OK, SW_NOT_FOUND, SW_WRONG_OFFSET, SW_NO_INS = b"\x90\x00", b"\x6a\x82", b"\x6b\x00", b"\x6d\x00"
DEFAULT_URL = "box.example/t?picc_data={picc}&cmac={mac}"


def capability_container(read_access: int = 0x00) -> bytes:
    """CC file: CCLEN, mapping 2.0, MLe, MLc, NDEF File Control TLV (id, max size, read/write access)."""
    return bytes.fromhex("000F20") + MAX_LE.to_bytes(2, "big") + bytes.fromhex("0034") + \
        bytes.fromhex("0406") + NDEF_FILE + bytes.fromhex("0100") + bytes([read_access, 0x00])


def uri_ndef_file(uri_body: str, prefix_code: int = 0x04) -> bytes:
    """NLEN + one URI record (0x04 = "https://" abbreviated), short or long as the length needs."""
    payload = bytes([prefix_code]) + uri_body.encode()
    if len(payload) < 256:
        record = bytes([0xD1, 0x01, len(payload)]) + b"U" + payload
    else:
        record = bytes([0xC1, 0x01]) + len(payload).to_bytes(4, "big") + b"U" + payload
    return len(record).to_bytes(NLEN_SIZE, "big") + record


def sun_ndef_file(url_base: str, picc_hex: str, mac_hex: str) -> bytes:
    """NLEN + one URI record "https://<url_base>?picc_data=..&cmac=..", the default layout."""
    return uri_ndef_file(f"{url_base}?picc_data={picc_hex}&cmac={mac_hex}")


@dataclass(frozen=True)
class SdmTemplate:
    """An NDEF file with room for the mirror, and the SDM offsets a personaliser would program."""
    file: bytes
    picc_offset: int          # PICCDataOffset
    mac_input_offset: int     # SDMMACInputOffset
    mac_offset: int           # SDMMACOffset

    @classmethod
    def from_url(cls, url: str, prefix_code: int = 0x04) -> "SdmTemplate":
        picc_mark, mac_mark = "\x01" * 32, "\x02" * 16
        body = url.replace("{picc}", picc_mark).replace("{mac}", mac_mark)
        before_input, has_input, _ = body.partition("{mac_input}")
        bare = body.replace("{mac_input}", "")
        if bare.find(picc_mark) < 0 or bare.find(mac_mark) < 0:
            raise ValueError("a SUN URL template holds {picc} and {mac}")
        file, raw = uri_ndef_file(bare, prefix_code), bare.encode()
        at = len(file) - len(raw)             # file offset of the URL body
        picc, mac = at + raw.find(picc_mark.encode()), at + raw.find(mac_mark.encode())
        mac_input = at + len(before_input.encode()) if has_input else mac
        zeros = file[:at] + bare.replace(picc_mark, "0" * 32).replace(mac_mark, "0" * 16).encode()
        return cls(zeros, picc, mac_input, mac)

    def mirror(self, uid: bytes, counter: int, meta_key: bytes, file_key: bytes) -> bytes:
        """What the tag serves on one read: PICCData first, then the MAC over the mirrored input."""
        picc_hex, _ = make_sun_message(uid.hex(), counter, meta_key, file_key)
        file = bytearray(self.file)
        file[self.picc_offset:self.picc_offset + 32] = picc_hex.encode()
        mac = sdm_mac(file_key, uid, counter, bytes(file[self.mac_input_offset:self.mac_offset]))
        file[self.mac_offset:self.mac_offset + 16] = mac.hex().upper().encode()
        return bytes(file)


class VirtualCard:
    """`sun_keys=(meta_key, file_key)` makes a genuine SUN tag mirroring into `url` (a template, see the
    module); `ndef_file` serves fixed bytes (a clone replaying what it copied, or a URL without SUN);
    neither makes a UID-only card. `random_uid` answers FF CA with a fresh random UID per power-up
    (privacy mode). Faults: `remove_after_apdus` pulls the card away in the middle of a read, before
    answering (vpcd then answers with nothing) or, with `pull_mid_answer`, after the first byte of the
    answer (vpcd passes on that one byte);
    `select_app_sw` answers SELECT of the NDEF application with that status; `ndef_read_sw` answers
    READ BINARY of the NDEF file with that status; `cc_read_access` is the CC file's read access byte."""

    def __init__(self, uid: str, port: int = 35963, sun_keys: tuple[bytes, bytes] | None = None,
                 counter: int = 0, ndef_file: bytes | None = None, url: str = DEFAULT_URL,
                 remove_after_apdus: int | None = None, pull_mid_answer: bool = False, host: str = "127.0.0.1",
                 random_uid: bool = False,
                 select_app_sw: int | None = None, ndef_read_sw: int | None = None, cc_read_access: int = 0x00):
        self.uid = bytes.fromhex(uid)
        if len(self.uid) not in (4, 7, 10):
            raise ValueError(f"a contactless UID is 4, 7 or 10 bytes, not {len(self.uid)}")
        if sun_keys is not None and (len(self.uid) != 7 or any(len(k) != 16 for k in sun_keys)):
            raise ValueError("an NTAG 424 DNA has a 7-byte UID and two 16-byte AES keys")
        self.port, self.host = port, host
        self.sun_keys, self.counter = sun_keys, counter
        self.template = SdmTemplate.from_url(url)
        self.fixed_ndef_file = ndef_file
        self.random_uid = random_uid
        self._answered_uid = b"\x08" + os.urandom(3) if random_uid else self.uid
        self.select_app_sw, self.ndef_read_sw = select_app_sw, ndef_read_sw
        self.cc = capability_container(cc_read_access)
        self.remove_after_apdus, self.pull_mid_answer = remove_after_apdus, pull_mid_answer
        self.last_ndef_file: bytes | None = None   # what the last read was served, for cloning
        self.apdus: list[bytes] = []
        self._selected_app = False
        self._selected_file: bytes | None = None
        self._inserted = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def uid_only(self) -> bool:
        return self.sun_keys is None and self.fixed_ndef_file is None

    def insert(self) -> None:
        self._inserted.set()
        self._thread = threading.Thread(target=self._run, name=f"vicc-{self.uid.hex()}", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        self._inserted.clear()
        if self._sock is not None:
            try:   # shutdown, unlike close, wakes the serving thread blocked in recv
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_out_of_field(self, timeout: float = 10.0) -> bool:
        """After `remove_after_apdus` pulled it: wait until the card has left the reader."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self._inserted.is_set()

    def _run(self) -> None:
        # Stay on the reader while inserted: if pcscd restarts, reconnect like a card left in the field.
        while self._inserted.is_set():
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=1)
            except OSError:
                time.sleep(0.02)
                continue
            self._sock.settimeout(None)
            try:
                self._serve(self._sock)
            except OSError:
                pass
            finally:
                self._sock.close()
            time.sleep(0.02)

    def _serve(self, sock: socket.socket) -> None:
        self._selected_app, self._selected_file = False, None   # a fresh power-up selects nothing
        if self.random_uid:      # ISO 14443-3 random ID: 4 bytes, the first 08, new on each power-up
            self._answered_uid = b"\x08" + os.urandom(3)
        while self._inserted.is_set():
            header = _recv_exact(sock, 2)
            if header is None:
                return
            message = _recv_exact(sock, struct.unpack(">H", header)[0])
            if message is None:
                return
            if len(message) == 1:
                if message[0] == 4:
                    sock.sendall(struct.pack(">H", len(ATR)) + ATR)
                continue   # power off / on / reset need no reply
            self.apdus.append(message)
            if self.remove_after_apdus is not None and len(self.apdus) > self.remove_after_apdus:
                self._inserted.clear()   # pulled out of the field before answering
                if self.pull_mid_answer:
                    response = self.answer(message)
                    sock.sendall(struct.pack(">H", len(response)) + response[:1])
                return
            response = self.answer(message)
            sock.sendall(struct.pack(">H", len(response)) + response)

    def answer(self, apdu: bytes) -> bytes:
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        if (cla, ins) == (0xFF, 0xCA) and p1 == 0:
            return self._answered_uid + SW_OK
        if ins == 0xA4 and p1 == 0x04:
            self._selected_app = body == NDEF_APPLICATION and not self.uid_only
            if self._selected_app and self.select_app_sw is not None:
                self._selected_app = False
                return self.select_app_sw.to_bytes(2, "big")
            return SW_OK if self._selected_app else SW_NOT_FOUND
        if ins == 0xA4 and p1 == 0x00 and self._selected_app and body in (CC_FILE, NDEF_FILE):
            self._selected_file = self.cc if body == CC_FILE else self._ndef_file()
            return SW_OK
        if ins == 0xA4:
            return SW_NOT_FOUND
        if ins == 0xB0 and self._selected_file is not None and self._selected_file is not self.cc \
                and self.ndef_read_sw is not None:
            return self.ndef_read_sw.to_bytes(2, "big")
        if ins == 0xB0 and self._selected_file is not None:
            offset, le = (p1 << 8) | p2, apdu[4] or 256
            if offset > len(self._selected_file):
                return SW_WRONG_OFFSET
            return self._selected_file[offset:offset + le] + SW_OK
        return SW_NO_INS

    def _ndef_file(self) -> bytes:
        if self.fixed_ndef_file is not None:
            content = self.fixed_ndef_file
        else:
            # Like the real tag, each read of the NDEF file bumps the SDM read counter.
            self.counter += 1
            content = self.template.mirror(self.uid, self.counter, *self.sun_keys)
        self.last_ndef_file = content
        return content


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> None:
    """Demo: hold a card on the running pcscd's vpcd reader until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description="Put a virtual badge or box tag on vpcd's reader.")
    parser.add_argument("uid", help="7-byte UID in hex, e.g. 04A1B2C3D4E5F6")
    parser.add_argument("--port", type=int, default=35963, help="vpcd port (35963 = 'Virtual PCD 00 00')")
    parser.add_argument("--sun-keys", nargs=2, metavar=("META_KEY", "FILE_KEY"),
                        help="make it an NTAG 424 DNA with SUN; two 16-byte AES keys in hex")
    parser.add_argument("--counter", type=int, default=0, help="SDM read counter before the first read")
    parser.add_argument("--url", default=DEFAULT_URL,
                        help="SUN URL template after https://, with {picc}, {mac} and optionally {mac_input}")
    parser.add_argument("--random-uid", action="store_true", help="answer FF CA with a random UID (privacy mode)")
    args = parser.parse_args()
    try:
        keys = tuple(bytes.fromhex(k) for k in args.sun_keys) if args.sun_keys else None
        card = VirtualCard(args.uid, port=args.port, sun_keys=keys, counter=args.counter, url=args.url,
                           random_uid=args.random_uid)
        if keys and "{mac_input}" in args.url:
            print(f"SDMMACInputOffset = {card.template.mac_input_offset} (devices.cards.sun_mac_input_offset)")
    except ValueError as e:
        parser.error(f"bad UID or key: {e}")
    card.insert()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        card.remove()


if __name__ == "__main__":
    main()
