"""Staff badges and box tags through PC/SC (pcscd + pyscard).

A worker thread owns its own PC/SC context and waits on SCardGetStatusChange; pyscard's CardMonitor
is not used because it stops silently when pcscd goes away. When pcscd stops or restarts the context
is dropped and a new one established with backoff; an unplugged reader (0x80100013, 0x80100017) is
simply listed again until it is back. health() says what is wrong meanwhile. (pyscard 2.3.1 keeps no global context to
reset after a pcscd restart — the old `PCSCContext.instance` singleton is gone — and this driver does
not use pyscard's high-level readers() either: it holds exactly one context and replaces it.)

The thread only does I/O: it reads the UID (FF CA) and, when the tag is an NFC Forum Type 4 Tag, its
NDEF message. The raw read is handed to the event loop, where the SUN check runs, so the caller's
key lookup and counter store are only ever touched from the loop thread.

Keyed means SUN or refuse: a UID the box registry holds SUN keys for is accepted only with a verified
SUN message whose counter went up. Anything else the card does (no NDEF application, an NDEF file that
cannot be read, a URL without SUN parameters, a bad MAC, a replay) is a `CardRefused` naming why, and
the agent raises the cloned-tag alarm: a counterfeit needs more than a UID-writable card. The site's
`allow_uid_only_tags` only governs tags without keys (badges, boxes never given SUN keys).

With no reader filter every reader is watched: PC/SC lists readers in plug order, which changes on a
replug, and a dual-interface reader (ACR1252U) lists its SAM slot beside the contactless one.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass

from smartcard import scard

from drivers.base import Emit
from drivers.cards.ndef import NdefError, NotType4Tag, Transmit, read_ndef
from drivers.cards.sun import SunError, SunVerifier, decrypt_picc_data
from drivers.cards.sun_url import SunFields, SunLayout, find_sun
from drivers.events import CardRead, CardReadIncomplete, DeviceHealth, HealthState
from drivers.health import HealthMixin

log = logging.getLogger(__name__)

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
GET_UID = bytes.fromhex("FFCA000000")
WAIT_MS = 1000
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0
# The card left the field (or the reader lost it) during a read: the read is dropped and, when it had
# begun, the officer is asked to present the tag again. A reader whose transfer failed because the tag
# was lifted says "not transacted" (0x80100016) or "data lost": the card is gone, the reader is fine.
CARD_GONE = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_RESET_CARD,
             scard.SCARD_W_UNRESPONSIVE_CARD, scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_E_NOT_TRANSACTED,
             scard.SCARD_E_COMM_DATA_LOST}
# The reader went away (unplugged: 0x80100013 / 0x80100017 / 0x80100009): re-list readers.
READER_GONE = {scard.SCARD_F_COMM_ERROR, scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_E_UNKNOWN_READER}
# pcscd itself is gone or restarted: the context is dead, make a new one.
SERVICE_GONE = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_INVALID_HANDLE}

KeyLookup = Callable[[str], "tuple[bytes, bytes] | None"]
MetaKeys = Callable[[], Iterable[bytes]]

# Why a keyed tag was refused: the reason words of the cloned-tag alarm.
REFUSAL_REASONS = {
    "no_ndef_app": "the tag has no NDEF application (SELECT refused): a plain UID card",
    "read_error": "the tag's NDEF file could not be read",
    "no_sun": "the tag's URL carries no SUN message in the configured layout",
    "malformed": "the SUN message is not well formed",
    "decrypt": "the PICCData does not decrypt with the box's key",
    "bad_mac": "the SUN MAC does not match",
    "replayed": "the SUN read counter did not increase",
    "uid_mismatch": "the SUN message belongs to another tag",
    "uid_only_not_allowed": "a tag without SUN keys where the site requires SUN",
}


@dataclass(frozen=True)
class CardRefused(CardRead):
    """A tag that must not be trusted; `reason` is one of REFUSAL_REASONS, `detail` says more."""
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class RawRead:
    """What the worker thread read from one card presentation."""
    uid: str
    ndef: bytes | None                        # None: no NDEF message read, see `ndef_error`
    ndef_error: tuple[str, str] | None = None  # (reason, detail): no_ndef_app or read_error


class PcscError(Exception):
    def __init__(self, hresult: int, action: str):
        super().__init__(f"{action}: {scard.SCardGetErrorMessage(hresult).strip()} (0x{hresult & 0xFFFFFFFF:08X})")
        self.hresult = hresult


class CardGone(Exception):
    """The card left before the read finished: the read is dropped, nothing is emitted."""


class CardError(Exception):
    """The card or reader misbehaved during one read; the next presentation is tried afresh."""


def transmit_result(hresult: int, response: list[int]) -> tuple[bytes, int] | None:
    """What one SCardTransmit means: (data, SW), or None for an answer too short to hold a status
    word; raises CardGone (card or reader left), PcscError (pcscd gone) or CardError (anything else)."""
    if hresult in CARD_GONE or hresult in READER_GONE:
        raise CardGone()
    if hresult in SERVICE_GONE:
        raise PcscError(hresult, "talking to the card")
    if hresult != scard.SCARD_S_SUCCESS:
        raise CardError(str(PcscError(hresult, "talking to the card")))
    if len(response) < 2:
        return None
    return bytes(response[:-2]), (response[-2] << 8) | response[-1]


def read_tag(transmit: Transmit) -> RawRead | None:
    """One presentation's APDUs: the UID, then the NDEF message when there is one. None when the card
    gives no UID. What the card answers never raises here; CardGone/CardError from `transmit` pass."""
    uid, sw = transmit(GET_UID)
    if sw != 0x9000 or not uid:
        log.warning("card gave no UID (SW %04X); ignored", sw)
        return None
    try:
        return RawRead(uid.hex().upper(), read_ndef(transmit))
    except (NotType4Tag, NdefError) as e:
        return RawRead(uid.hex().upper(), None, (e.reason, str(e)))


class PcscCardReader(HealthMixin):
    def __init__(self, name: str = "cards", reader_filter: str | None = None,
                 sun_keys: KeyLookup | None = None, counters: MutableMapping[str, int] | None = None,
                 allow_uid_only: bool = True, layout: SunLayout = SunLayout(), meta_read_keys: MetaKeys | None = None):
        self.name = name
        self.reader_filter = reader_filter
        self.sun_keys = sun_keys
        self.verifier = SunVerifier(counters)
        self.allow_uid_only = allow_uid_only
        self.layout = layout
        # Random-UID tags: the SDM meta-read keys to try, since the UID that would name the key is encrypted.
        self.meta_read_keys = meta_read_keys
        self._emit: Emit | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._context: int | None = None
        self._context_lock = threading.Lock()
        self._readers: list[str] = []
        self._card_fault = False
        self._reported: HealthState | None = None
        self._state: HealthState = "missing"
        self._last_error: str | None = None

    # -- public interface -------------------------------------------------------------------------

    async def start(self, emit: Emit) -> None:
        self._emit, self._loop = emit, asyncio.get_running_loop()
        self._reported = None
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"pcsc-{self.name}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        with self._context_lock:
            if self._context is not None:
                scard.SCardCancel(self._context)   # wakes SCardGetStatusChange at once
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._emit = None

    def health(self) -> DeviceHealth:
        state, error = self._state, self._last_error
        if self._thread is not None and not self._thread.is_alive() and not self._stopping.is_set():
            state, error = "missing", "card watcher thread stopped"
        return DeviceHealth(self.name, state, error, {"readers": list(self._readers)})

    # -- worker thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stopping.is_set():
            try:
                self._open_context()
                backoff = BACKOFF_FIRST
                self._watch()
            except PcscError as e:
                self._readers = []
                self._report("missing", f"PC/SC service unavailable: {e}")
            except Exception as e:   # never let the watcher die silently (CardMonitor's failure mode)
                log.exception("card watcher failed; restarting it")
                self._report("degraded", f"card watcher error: {type(e).__name__}: {e}")
            finally:
                self._close_context()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _open_context(self) -> None:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(hresult, "connecting to pcscd")
        with self._context_lock:
            self._context = context

    def _close_context(self) -> None:
        with self._context_lock:
            context, self._context = self._context, None
        if context is not None:
            scard.SCardReleaseContext(context)

    def _list_readers(self) -> list[str]:
        hresult, readers = scard.SCardListReaders(self._context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscError(hresult, "listing readers")
        wanted = (self.reader_filter or "").casefold()
        return [r for r in readers if wanted in r.casefold()]

    def _watch(self) -> None:
        known: dict[str, int] = {}       # reader -> last event state seen
        pnp = scard.SCARD_STATE_UNAWARE
        while not self._stopping.is_set():
            self._readers = self._list_readers()
            known = {r: known.get(r, scard.SCARD_STATE_UNAWARE) for r in self._readers}
            if self._readers:
                # A misbehaving card read keeps the reader degraded until a read succeeds again.
                self._report("degraded" if self._card_fault else "connected")
            else:
                wanted = f" matching {self.reader_filter!r}" if self.reader_filter else ""
                self._report("missing", f"no card reader{wanted} connected")
            query = [(PNP_NOTIFICATION, pnp)] + list(known.items())
            hresult, states = scard.SCardGetStatusChange(self._context, WAIT_MS, query)
            if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hresult in READER_GONE:   # a reader vanished between listing and waiting: list again
                self._stopping.wait(BACKOFF_FIRST)
                continue
            if hresult != scard.SCARD_S_SUCCESS:
                raise PcscError(hresult, "waiting for cards")
            for reader, event, _atr in states:
                event &= ~scard.SCARD_STATE_CHANGED
                if reader == PNP_NOTIFICATION:
                    pnp = event
                    continue
                before = known.get(reader, 0)
                if _card_arrived(before, event):
                    self._read_card(reader)
                known[reader] = event

    def _read_card(self, reader: str) -> None:
        hresult, handle, protocol = scard.SCardConnect(
            self._context, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if hresult in CARD_GONE or hresult in READER_GONE:
            return
        if hresult in SERVICE_GONE:
            raise PcscError(hresult, "connecting to the card")
        if hresult != scard.SCARD_S_SUCCESS:
            self._card_fault = True
            self._report("degraded", str(PcscError(hresult, "connecting to the card")))
            return

        def transmit(apdu: bytes) -> tuple[bytes, int]:
            hresult, response = scard.SCardTransmit(handle, protocol, list(apdu))
            answer = transmit_result(hresult, response)
            if answer is None:
                # vpcd (and some readers) answer a vanished card with nothing: ask the reader.
                if self._card_leaving(reader):
                    raise CardGone()
                raise CardError("the card answered with less than a status word")
            return answer

        try:
            raw = read_tag(transmit)
        except CardGone:
            log.info("card left the reader during the read; asking for it again")
            self._card_fault = False
            self._report("connected")
            self._to_loop(self._deliver_incomplete)
            return
        except CardError as e:
            self._card_fault = True
            self._report("degraded", str(e))
            return
        finally:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        self._card_fault = False
        self._report("connected")
        if raw is not None:
            self._to_loop(self._deliver, raw)

    def _card_leaving(self, reader: str) -> bool:
        """Whether the reader reports the card gone within a second (it polls the field)."""
        state = scard.SCARD_STATE_UNAWARE
        for _ in range(2):
            hresult, states = scard.SCardGetStatusChange(self._context, 1000, [(reader, state)])
            if hresult != scard.SCARD_S_SUCCESS:
                return hresult != scard.SCARD_E_TIMEOUT
            state = states[0][1] & ~scard.SCARD_STATE_CHANGED
            if not state & scard.SCARD_STATE_PRESENT:
                return True
        return False

    def _report(self, state: HealthState, error: str | None = None) -> None:
        """Record health; emit a DeviceHealth only when the state changes (retries do not spam)."""
        self._set_health(state, error)
        if state == "connected":
            self._last_error = None          # a working reader shows no old error
        if state == self._reported:
            return
        self._reported = state
        if state != "connected":
            log.warning("%s %s: %s", self.name, state, self._last_error)
        self._to_loop(self._deliver_health)

    def _to_loop(self, callback, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:   # the loop closed while the thread was finishing
            pass

    # -- event loop side ----------------------------------------------------------------------------

    def _deliver_health(self) -> None:
        if self._emit:
            self._emit(self.health())

    def _deliver_incomplete(self) -> None:
        if self._emit:
            self._emit(CardReadIncomplete(self.name))

    def _deliver(self, raw: RawRead) -> None:
        if not self._emit:
            return
        try:
            event: CardRead | CardReadIncomplete = self.classify(raw)
        except Exception:   # a bug, not a card answer (those are all refusals): never drop the tap silently
            log.exception("classifying a card read failed; asking for the card again")
            event = CardReadIncomplete(self.name)
        self._emit(event)

    def classify(self, raw: RawRead) -> CardRead:
        """Turn a raw read into the event the agent sees; runs on the event loop."""
        fields, why = None, raw.ndef_error or ("read_error", "no NDEF message")
        if raw.ndef is not None:
            try:
                fields = find_sun(raw.ndef, self.layout)
            except (NdefError, SunError) as e:
                why = (e.reason, str(e))
            else:
                if fields is None:
                    why = ("no_sun", REFUSAL_REASONS["no_sun"])
        uid, keys = raw.uid, self.sun_keys(raw.uid) if self.sun_keys else None
        if keys is None and fields is not None and self.layout.random_uid:
            uid, keys = self._random_uid_keys(fields) or (uid, None)
        if keys is None:
            # No keys for this tag (a badge, a box never given SUN keys): identity rests on the UID.
            if self.allow_uid_only:
                return CardRead(self.name, raw.uid, uid_only=True)
            return CardRefused(self.name, raw.uid, uid_only=True, reason="uid_only_not_allowed",
                               detail=REFUSAL_REASONS["uid_only_not_allowed"])
        if fields is None:
            return CardRefused(self.name, uid, uid_only=False, reason=why[0], detail=why[1])
        try:
            message = self.verifier.verify(fields.picc_hex, fields.mac_hex, *keys, expected_uid=uid,
                                           mac_input=fields.mac_input)
        except SunError as e:
            return CardRefused(self.name, uid, uid_only=False, reason=e.reason, detail=str(e))
        return CardRead(self.name, message.uid, sun_verified=True, sun_counter=message.counter, uid_only=False)

    def _random_uid_keys(self, fields: SunFields) -> tuple[str, tuple[bytes, bytes]] | None:
        """A random-UID tag's real UID and keys: the UID inside PICCData, decrypted with a meta-read key
        that belongs to it. Trying each key is safe: a wrong one decrypts to noise (tag byte), and the
        MAC is still checked with the file-read key registered for the UID found."""
        for meta_key in (self.meta_read_keys() if self.meta_read_keys else ()):
            try:
                uid = decrypt_picc_data(meta_key, bytes.fromhex(fields.picc_hex)).uid
            except ValueError:            # SunError too: not this key, or not hex
                continue
            keys = self.sun_keys(uid) if self.sun_keys else None
            if keys is not None and keys[0] == meta_key:
                return uid, keys
        return None


def _card_arrived(before: int, now: int) -> bool:
    """A new card presentation: present (and answering) now, and not the presentation seen before.
    pcsc-lite counts insertions and removals in the high word, so a quick swap is not missed."""
    present = bool(now & scard.SCARD_STATE_PRESENT) and not now & scard.SCARD_STATE_MUTE
    if not present:
        return False
    return not before & scard.SCARD_STATE_PRESENT or (before >> 16) != (now >> 16)
