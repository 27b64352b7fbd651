"""A contactless card on vsmartcard's virtual reader (vpcd), for tests and demos without hardware.

It plays a box tag or badge: answers GET UID (FF CA) and, unless it is UID-only, emulates an NTAG 424
DNA's NFC Forum Type 4 NDEF file whose SUN parameters are fresh, with a higher read counter, on each
read. vpcd protocol: messages framed by a 2-byte big-endian length; a 1-byte 0/1/2 is power
off/on/reset (no reply), 4 asks for the ATR; anything else is a C-APDU. Closing the socket removes the card.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

from drivers.cards.ndef import CC_FILE, NDEF_APPLICATION
from drivers.cards.sun import make_sun_message

ATR = bytes.fromhex("3B8180018080")   # ISO 14443-4 card as PC/SC part 3 readers present it
NDEF_FILE = bytes.fromhex("E104")
MAX_LE = 0x3B                          # small on purpose: readers must chunk READ BINARY
CC = bytes.fromhex("000F20") + MAX_LE.to_bytes(2, "big") + bytes.fromhex("0034") + \
    bytes.fromhex("0406") + NDEF_FILE + bytes.fromhex("0100") + b"\x00\x00"
SW_OK, SW_NOT_FOUND, SW_WRONG_OFFSET, SW_NO_INS = b"\x90\x00", b"\x6a\x82", b"\x6b\x00", b"\x6d\x00"


def sun_ndef_file(url_base: str, picc_hex: str, mac_hex: str) -> bytes:
    """NLEN + one short URI record "https://<url_base>?picc_data=..&cmac=.." (0x04 = https://)."""
    payload = b"\x04" + f"{url_base}?picc_data={picc_hex}&cmac={mac_hex}".encode()
    record = bytes([0xD1, 0x01, len(payload)]) + b"U" + payload
    return len(record).to_bytes(2, "big") + record


class VirtualCard:
    """`sun_keys=(meta_key, file_key)` makes a genuine SUN tag; `ndef_file` serves fixed bytes (a clone
    replaying what it copied); neither makes a UID-only card. `remove_after_apdus` pulls the card
    away in the middle of a read."""

    def __init__(self, uid: str, port: int = 35963, sun_keys: tuple[bytes, bytes] | None = None,
                 counter: int = 0, ndef_file: bytes | None = None, url_base: str = "box.example/t",
                 remove_after_apdus: int | None = None, host: str = "127.0.0.1"):
        self.uid = bytes.fromhex(uid)
        if len(self.uid) not in (4, 7, 10):
            raise ValueError(f"a contactless UID is 4, 7 or 10 bytes, not {len(self.uid)}")
        if sun_keys is not None and (len(self.uid) != 7 or any(len(k) != 16 for k in sun_keys)):
            raise ValueError("an NTAG 424 DNA has a 7-byte UID and two 16-byte AES keys")
        self.port, self.host = port, host
        self.sun_keys, self.counter, self.url_base = sun_keys, counter, url_base
        self.fixed_ndef_file = ndef_file
        self.remove_after_apdus = remove_after_apdus
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
                return
            response = self.answer(message)
            sock.sendall(struct.pack(">H", len(response)) + response)

    def answer(self, apdu: bytes) -> bytes:
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        if (cla, ins) == (0xFF, 0xCA) and p1 == 0:
            return self.uid + SW_OK
        if ins == 0xA4 and p1 == 0x04:
            self._selected_app = body == NDEF_APPLICATION and not self.uid_only
            return SW_OK if self._selected_app else SW_NOT_FOUND
        if ins == 0xA4 and p1 == 0x00 and self._selected_app and body in (CC_FILE, NDEF_FILE):
            self._selected_file = CC if body == CC_FILE else self._ndef_file()
            return SW_OK
        if ins == 0xA4:
            return SW_NOT_FOUND
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
            meta_key, file_key = self.sun_keys
            content = sun_ndef_file(self.url_base, *make_sun_message(self.uid.hex(), self.counter, meta_key, file_key))
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
    args = parser.parse_args()
    try:
        keys = tuple(bytes.fromhex(k) for k in args.sun_keys) if args.sun_keys else None
        card = VirtualCard(args.uid, port=args.port, sun_keys=keys, counter=args.counter)
    except ValueError as e:
        parser.error(f"bad UID or key: {e}")
    card.insert()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        card.remove()


if __name__ == "__main__":
    main()
