"""The long fuzz run: the suite's fuzz oracles over >= 1,000,000 inputs each, one target per parser.

    .venv/bin/python tools/fuzz_long.py header downlink --count 1000000 --seed 1
    nice -n 10 .venv/bin/python tools/fuzz_long.py fingerprint ble --count 1000000

Inputs are random bytes, random JSON (any depth up to 6,000), and mutations of valid seeds (bit and
byte flips, cuts, insertions, spliced brackets); not coverage-guided. Prints, per parser, the inputs
run, how many the parser accepted and refused, and the unexpected exceptions (0 is the goal), with
the first few inputs that caused one saved under artifacts/fuzz/. An oracle returns normally when the
parser accepted or refused the input as documented (its own typed refusal); anything it raises —
an AssertionError when an accepted value breaks the property, or any other exception — is unexpected.

Targets and their oracles:
  header streamed safejson downlink settings model uplink   tests/unit/test_poison_fuzz.py (bundles, MQTT)
  apdu         pcsc.transmit_result: what pyscard hands back for one APDU   tests/unit/test_ndef_fuzz.py
  ndef_read    ndef.read_ndef against a card answering anything             tests/unit/test_ndef_fuzz.py
  ndef         sun_url.find_sun / ndef.uri_records: NDEF records, SUN URLs, CMAC input
  sun          sun.SunVerifier: PICCData and SDMMAC, forged, flipped, replayed
  keyed_tag    pcsc.read_tag + classify: a reader facing genuine, cloned and arbitrary answers
                                                                            tests/unit/test_keyed_tags.py
  fingerprint  protocol.Decoder + check_reply/search_result on a noisy line
                                                                tests/unit/test_fingerprint_protocol.py
  ble          BleakBeaconScanner behind bleak's front end: forged adverts   tests/integration/test_ble.py
  complaint_form, complaint_draft, complaint_step, staff_request, screen_body
               the kiosk's and staff forms' checks                   tests/unit/test_kiosk_input_fuzz.py
  camera_wire  wire.split: what the camera worker's pipe carries, in any chunks
                                                                  tests/unit/test_camera_wire_fuzz.py
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit"), str(ROOT / "tests" / "integration")]

import test_ble as ble  # noqa: E402
import test_camera_wire_fuzz as cw  # noqa: E402
import test_fingerprint_protocol as fp  # noqa: E402
import test_keyed_tags as kt  # noqa: E402
import test_kiosk_input_fuzz as kiosk  # noqa: E402
import test_ndef_fuzz as nd  # noqa: E402
import test_poison_fuzz as t  # noqa: E402
from bleak.backends.scanner import AdvertisementData  # noqa: E402
from drivers.ble.presence import APPLE_COMPANY_ID, EDDYSTONE_UUID  # noqa: E402
from drivers.camera import wire  # noqa: E402
from drivers.cards.virtual_card import VirtualCard, uri_ndef_file  # noqa: E402
from drivers.fingerprint.protocol import REPLIES, Packet, PacketType, encode  # noqa: E402
from flows import complaint as fc  # noqa: E402

VALID_HEADER = t.header_bytes({"format": 1, "kind": "tasks", "device": "dev-1", "created": "2026-11-22T08:00:00Z",
                               "expires": "2026-11-29T08:00:00Z", "seq": 3, "signer": "0123456789abcdef",
                               "payload_size": 10, "compression": "none", "content": "json"})


def rand_json(r: random.Random, depth: int = 0):
    pick = r.random()
    if depth > 4 or pick < 0.5:
        return r.choice([None, True, False, r.randint(-10**20, 10**20), r.random() * 1e6, "",
                         "".join(chr(r.randint(0xD7F0, 0xE010) if r.random() < 0.05 else r.randint(0, 0x2FFF))
                                 for _ in range(r.randint(0, 12)))])
    if pick < 0.75:
        return [rand_json(r, depth + 1) for _ in range(r.randint(0, 4))]
    return {rand_text(r): rand_json(r, depth + 1) for _ in range(r.randint(0, 4))}


def rand_text(r: random.Random) -> str:
    return r.choice(["task_id", "escorts", "route", "vehicle", "boxes", "box_keys", "min_escorts", "settings",
                     "site.min_escorts", "screen.language", "person_id", "people", "msg_id", "v", "site_id",
                     "seq", "kind", "device", "#", "a/b", ""]) if r.random() < 0.7 else \
        "".join(chr(r.randint(0xD7F0, 0xE010) if r.random() < 0.1 else r.randint(32, 0x4E00))   # lone surrogates too
                for _ in range(r.randint(0, 8)))


def mutate(r: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(r.randint(1, 6)):
        op = r.random()
        at = r.randint(0, len(b))
        if op < 0.3 and b:
            b[min(at, len(b) - 1)] ^= 1 << r.randint(0, 7)
        elif op < 0.5 and b:
            b[min(at, len(b) - 1)] = r.randint(0, 255)
        elif op < 0.65:
            del b[at:at + r.randint(1, 16)]
        elif op < 0.8:
            b[at:at] = bytes(r.randint(0, 255) for _ in range(r.randint(1, 8)))
        else:
            n = r.choice([1, 10, 100, 1000, 6000])
            b[at:at] = r.choice([b"[", b"{\"a\":", b"\""]) * n
    return bytes(b)


def gen_header(r: random.Random) -> tuple:
    p = r.random()
    if p < 0.2:
        return (bytes(r.randint(0, 255) for _ in range(r.randint(0, 64))),)
    if p < 0.5:
        fields = json.loads(VALID_HEADER[6:])
        fields[r.choice(list(fields))] = rand_json(r)
        return (t.header_bytes(fields),)
    return (mutate(r, VALID_HEADER),)


def gen_streamed(r: random.Random) -> tuple:
    if r.random() < 0.1:
        return (b"HTB2" + bytes(r.randint(0, 255) for _ in range(r.randint(0, 64))),)
    data = mutate(r, t.VALID_STREAMED)
    return (data[:r.randint(0, len(data))] if r.random() < 0.2 else data,)


def gen_safejson(r: random.Random) -> tuple:
    raw = json.dumps(rand_json(r)).encode()
    return (mutate(r, raw) if r.random() < 0.6 else raw,)


def gen_downlink(r: random.Random) -> tuple:
    kind = r.choice(sorted(t.SEEDS) + ["nonsense"])
    seed = json.loads(json.dumps(t.SEEDS.get(kind, t.SEEDS["config"])))
    seed["msg_id"] = f"m{r.getrandbits(48)}"
    p = r.random()
    if p < 0.4:
        target = seed["tasks"][0] if kind == "tasks" else seed
        target[r.choice(list(target) + [rand_text(r)])] = rand_json(r)
        return kind, json.dumps(seed).encode()
    return kind, mutate(r, json.dumps(seed).encode())


def gen_settings(r: random.Random) -> tuple:
    return ({rand_text(r): rand_json(r) for _ in range(r.randint(0, 4))} if r.random() < 0.9 else rand_json(r),)


def gen_model(r: random.Random) -> tuple:
    base = t.task() if r.random() < 0.5 else {"person_id": "E1", "name": "N", "role": "escort"}
    base[r.choice(list(base) + ["valid_from", "company", "origin"])] = rand_json(r)
    return (base,)


def gen_uplink(r: random.Random) -> tuple:
    leaf = r.choice(["journal", "urgent", "status", "health", "reply"])
    entry = {"id": "dev-f:1", "seq": 1, "ts": "2026-11-23T01:00:00.000Z", "kind": "box_read", "task_id": None,
             "body": rand_json(r), "prev_hash": "0" * 64, "hash": "0" * 64}
    raw = json.dumps({"v": 1, "device": "dev-f", "entries": [entry], "entry": entry}).encode()
    return leaf, mutate(r, raw) if r.random() < 0.6 else raw


# --- card answers ---------------------------------------------------------------------------------

def rand_bytes(r: random.Random, most: int) -> bytes:
    return r.randbytes(r.randint(0, most))


def gen_apdu(r: random.Random) -> tuple:
    p = r.random()
    hresult = 0 if p < 0.5 else r.choice(nd.HRESULTS) if p < 0.85 else r.randint(-2**31, 2**32 - 1)
    return hresult, list(rand_bytes(r, 300 if r.random() < 0.1 else 20))


def genuine_answers() -> list[tuple[bytes, int]]:
    """What a genuine SUN tag answers to one whole read_ndef, APDU by APDU: the seed to mutate."""
    card, answers = VirtualCard(kt.BOX, sun_keys=kt.KEYS, counter=5), []

    def transmit(apdu: bytes) -> tuple[bytes, int]:
        response = card.answer(apdu)
        answers.append((response[:-2], int.from_bytes(response[-2:], "big")))
        return answers[-1]
    nd.read_ndef(transmit)
    return answers


GENUINE_ANSWERS = genuine_answers()
SWS = kt.SWS + [0x9000] * 5


def gen_ndef_read(r: random.Random) -> tuple:
    script = []
    for data, sw in GENUINE_ANSWERS[:r.randint(0, len(GENUINE_ANSWERS) + 2)]:
        p = r.random()
        if p < 0.1:
            sw = r.choice(SWS) if r.random() < 0.7 else r.randint(0, 0xFFFF)
        elif p < 0.2:
            data = mutate(r, data) if data else rand_bytes(r, 70)
        elif p < 0.25:
            data = data[:r.randint(0, len(data))]
        script.append((data, sw))
    if r.random() < 0.3:
        script = [(rand_bytes(r, 70), r.choice(SWS)) for _ in range(r.randint(0, 40))]
    return script, (rand_bytes(r, 70), r.choice(SWS) if r.random() < 0.8 else r.randint(0, 0xFFFF))


URL_PIECES = list("[]@:/?#&=%;.") + ["amp;", "e=", "c=", "picc_data=", "cmac=", nd.PICC, nd.MAC, "https://",
                                       "://", "\x00", "\xff", "é", "box.example/t", "/", "?", "&"]
NDEF_SEEDS = [uri_ndef_file(url.format(picc=nd.PICC, mac=nd.MAC, mac_input=""))[2:]
              for url, _ in kt.LAYOUTS.values()] + [uri_ndef_file("box.example/" + "a" * 300)[2:]]


def gen_ndef(r: random.Random) -> tuple:
    layout = r.choice(nd.LAYOUTS)
    p = r.random()
    if p < 0.15:
        return rand_bytes(r, 600), layout
    if p < 0.55:
        return mutate(r, r.choice(NDEF_SEEDS)), layout
    body = "".join(r.choice(URL_PIECES) if r.random() < 0.8 else chr(r.randint(32, 0x2FFF))
                   for _ in range(r.randint(0, 24)))
    message = uri_ndef_file(body, r.randint(0, 0x24))[2:]
    if r.random() < 0.3:                     # more records, any header bits, before or after
        extra = bytes([r.randint(0, 255), r.randint(0, 3), r.randint(0, 40)]) + rand_bytes(r, 40)
        message = extra + message if r.random() < 0.5 else message + extra
    return message, layout


def gen_sun(r: random.Random) -> tuple:
    steps = []
    for _ in range(r.randint(1, 4)):
        p = r.random()
        counter = r.choice([r.randint(0, 0xFFFFFF), r.randint(0, 20)])
        if p < 0.35:
            steps.append(("genuine", counter, rand_bytes(r, 8) if r.random() < 0.3 else b""))
        elif p < 0.7:
            steps.append(("flip", counter, r.randint(0, 47), r.choice("0123456789ABCDEF")))
        else:
            alphabet = "0123456789abcdefABCDEF g\u00e9"
            steps.append(("any", "".join(r.choice(alphabet) for _ in range(r.choice([32, r.randint(0, 40)]))),
                          "".join(r.choice(alphabet) for _ in range(r.choice([16, r.randint(0, 20)]))),
                          rand_bytes(r, 8)))
    return (steps,)


def gen_keyed_tag(r: random.Random) -> tuple:
    def answer():
        p = r.random()
        if p < 0.35:
            return ("genuine",)
        if p < 0.6:
            return ("clone",)
        if p < 0.75:
            return ("sw", r.choice(kt.SWS))
        if p < 0.9:
            return ("data", rand_bytes(r, 64), r.choice(kt.SWS) if r.random() < 0.8 else r.randint(0, 0xFFFF))
        return ("uid", r.choice([kt.BOX, "04A1B2C3D4E5F6", "08A1B2C3"]))
    return r.choice(sorted(kt.LAYOUTS)), [[answer() for _ in range(r.randint(0, 24))] for _ in range(r.randint(1, 4))]


# --- fingerprint line -----------------------------------------------------------------------------

def rand_packet(r: random.Random) -> Packet:
    if r.random() < 0.5:                     # an acknowledge, as a module answers
        return Packet(PacketType.ACK, bytes([r.randint(0, 0x21)]) + rand_bytes(r, 34),
                      0xFFFFFFFF if r.random() < 0.9 else r.getrandbits(32))
    return Packet(r.choice(list(PacketType)), rand_bytes(r, 256), 0xFFFFFFFF if r.random() < 0.8 else r.getrandbits(32))


def gen_fingerprint(r: random.Random) -> tuple:
    pieces = []
    for _ in range(r.randint(0, 8)):
        p = r.random()
        if p < 0.4:
            pieces.append(("packet", rand_packet(r)))
        elif p < 0.6:
            noise = rand_bytes(r, 40)
            pieces.append(("garbage", noise.replace(b"\xef", b"\x55") if r.random() < 0.5 else noise))
        elif p < 0.7:
            pieces.append(("garbage", mutate(r, encode(rand_packet(r)))))
        elif p < 0.9:
            packet = rand_packet(r)
            pieces.append(("torn", packet, r.randint(0, len(encode(packet)))))
        else:
            pieces.append(("power_up",))
    cuts = [r.randint(0, 3000) for _ in range(r.randint(0, 12))]
    return pieces, cuts, r.choice(list(REPLIES)), r.choice([r.randint(0, 2000), 1000, 162])


# --- BLE adverts ----------------------------------------------------------------------------------

def gen_advert_bytes(r: random.Random, company: int) -> bytes:
    p = r.random()
    if company == APPLE_COMPANY_ID and p < 0.6:
        return ble.forged_truck(r.choice([100, r.randint(0, 0xFFFF)]), r.choice([1, r.randint(0, 0xFFFF)]),
                                r.choice([23, r.randint(0, 30)]), r.choice([99, r.randint(0, 30)]))
    if company == 0x0590 and p < 0.6:
        return b"\x5a\x01"[:r.randint(0, 2)] + rand_bytes(r, 6)
    return rand_bytes(r, 30)


def gen_ble(r: random.Random) -> tuple:
    adverts = []
    for _ in range(r.randint(1, 6)):
        manufacturer = {}
        for _ in range(r.randint(0, 3)):
            company = r.choice([APPLE_COMPANY_ID, APPLE_COMPANY_ID, 0x0590, 0x0006, r.randint(0, 0xFFFF)])
            manufacturer[company] = gen_advert_bytes(r, company)
        service = {}
        for _ in range(r.randint(0, 2)):
            key = r.choice([EDDYSTONE_UUID, EDDYSTONE_UUID.upper(), "0000fe9a-0000-1000-8000-00805f9b34fb"])
            frame = bytearray(ble.EDDY_FRAME[:r.choice([18, r.randint(0, 20)])])
            if frame and r.random() < 0.6:
                frame[r.randrange(len(frame))] = r.randint(0, 255)
            service[key] = bytes(frame) if r.random() < 0.9 else rand_bytes(r, 24)
        name = r.choice([None, "CIT-0042", "CIT-42", "cit-0042", "Phone", "CIT-" + str(r.randint(0, 99999)),
                         "".join(chr(r.randint(32, 0x2FFF)) for _ in range(r.randint(0, 12)))])
        adverts.append((r.choice(["C0:FF:EE:00:00:01", "11:22:33:44:55:66"]),
                        ble.advert(name, manufacturer, service, r.randint(-127, 20),
                                   r.choice([None, r.randint(-127, 20)]))))
    return (adverts,)


# --- kiosk and staff forms --------------------------------------------------------------------------

FORM_WORDS = [*fc.CHANNELS, *fc.CATEGORIES, *fc.COMPLEXITIES, *fc.VALIDITIES, *kiosk.REFS, "O01", "O02", "O03",
              "E1", "T1", "T2", "continue", "abort", "box_set_aside", "other", "right_index", "投诉", " ", ""]


def rand_form_text(r: random.Random) -> str:
    p = r.random()
    if p < 0.4:
        return r.choice(FORM_WORDS)
    if p < 0.55:
        return "".join(chr(r.choice([r.randint(0, 0x7F), r.randint(0x4E00, 0x9FFF), r.randint(0xD800, 0xDFFF),
                                     r.randint(0xE000, 0x10FFFF)])) for _ in range(r.randint(0, 8)))
    if p < 0.6:
        return "x" * r.choice([40, 41, 50, 51, 100, 101, 500, 501, 1000, 1001, 2000, 2001, 10001])
    return "".join(chr(r.randint(32, 0x9FFF)) for _ in range(r.randint(0, 12)))


def rand_form_value(r: random.Random, depth: int = 0):
    p = r.random()
    if p < 0.6 or depth > 2:
        return r.choice([rand_form_text(r), rand_form_text(r), None, True, False, 0, r.randint(-2**70, 2**70),
                         r.random(), float("inf")])
    if p < 0.85:
        return [rand_form_value(r, depth + 1) if r.random() < 0.3 else rand_form_text(r)
                for _ in range(r.randint(0, 4))]
    return {rand_form_text(r): rand_form_value(r, depth + 1) for _ in range(r.randint(0, 3))}


def rand_form(r: random.Random):
    if r.random() < 0.05:
        return rand_form_value(r)
    form = dict(kiosk.FORM) if r.random() < 0.7 else {}
    for _ in range(r.randint(0, 4)):
        key = r.choice(kiosk.FIELDS) if r.random() < 0.85 else rand_form_text(r)
        if r.random() < 0.15:
            form.pop(key, None)
        else:
            form[key] = rand_form_value(r)
    return form


def gen_complaint_form(r: random.Random) -> tuple:
    return (rand_form(r),)


def gen_complaint_draft(r: random.Random) -> tuple:
    draft = rand_form(r)
    if isinstance(draft, dict) and r.random() < 0.5:
        draft = {k: v for k, v in draft.items() if isinstance(v, str) or r.random() < 0.3}
    return (draft,)


STEP_PARAMS = {"classify": {"complexity": "general", "validity": "valid"}, "transfer": {"to": "运营部", "handler": "O02"},
               "investigate": {}, "handle": {"notes": "已退费", "cause": "c", "remedy": "r"}, "reply": {"reply": "已回复"},
               "satisfaction": {"satisfied": False}, "not_accept": {"approver": "O03", "reason": "非本行业务"},
               "withdraw": {"reason": "已解决", "voluntary": True}, "archive": {},
               "mark_repeat": {"original_ref": kiosk.REFS[0], "appeal_to": "12378"}}


def gen_complaint_step(r: random.Random) -> tuple:
    action = r.choice(sorted(fc.ACTIONS)) if r.random() < 0.95 else rand_form_text(r)
    if action in STEP_PARAMS and r.random() < 0.5:      # a step as the page sends it, a few fields changed
        params = dict(STEP_PARAMS[action])
        for _ in range(r.randint(0, 2)):
            params[r.choice([*params, *kiosk.FIELDS]) if params else r.choice(kiosk.FIELDS)] = rand_form_value(r)
        return r.randint(0, 20), action, params, r.choice(kiosk.ACTORS)
    # the actor is the signed-in officer (or head office), never typed: ids, not arbitrary text
    return r.randint(0, 20), action, rand_form(r), r.choice(kiosk.ACTORS)


def gen_staff_request(r: random.Random) -> tuple:
    route = r.choice(sorted(kiosk.STAFF_ROUTES))
    body = {k: r.choice(FORM_WORDS) if p < 0.6 else rand_form_text(r) if p < 0.85 else rand_form_value(r)
            for k, _ in kiosk.STAFF_ROUTES[route][1] if (p := r.random()) < 0.97}
    return route, json.dumps(body, ensure_ascii=r.random() < 0.5).encode("utf-8", "surrogatepass"), r.randint(0, 20)


def gen_screen_body(r: random.Random) -> tuple:
    route = r.choice(kiosk.ROUTES)
    p = r.random()
    body = {"draft": rand_form(r), "action": r.choice(sorted(fc.ACTIONS)), "params": rand_form(r)} \
        if route in ("/api/kiosk/draft", "/api/staff/complaints/action") else rand_form(r)
    raw = json.dumps(body, ensure_ascii=r.random() < 0.5).encode("utf-8", "surrogatepass")
    if p < 0.15:
        raw = rand_bytes(r, 200)
    elif p < 0.5:
        raw = mutate(r, raw)
    return route, raw, r.randint(0, 20)


# --- the camera worker's pipe ------------------------------------------------------------------------

def rand_wire_message(r: random.Random) -> wire.Message:
    pick = r.random()
    if pick < 0.25:
        return wire.Ready()
    if pick < 0.5:
        return wire.Health(r.choice(wire.HEALTH_STATES), r.choice([None, rand_text(r) or None]))
    if pick < 0.75:
        return wire.Face(b"\xff\xd8" + rand_bytes(r, 200))
    return wire.End(r.choice(wire.END_REASONS))


def gen_camera_wire(r: random.Random) -> tuple:
    stream = b"".join(wire.encode(rand_wire_message(r)) for _ in range(r.randint(0, 6)))
    pick = r.random()
    data = rand_bytes(r, 300) if pick < 0.2 else mutate(r, stream) if pick < 0.7 else stream
    return data, [r.randint(1, 64) for _ in range(r.randint(0, 10))]


def keyed_tag(layout_name: str, presentations: list[list[tuple]]) -> tuple[int, int]:
    reads = kt.presentations_oracle(layout_name, presentations)
    refused = sum(isinstance(read, kt.CardRefused) for read in reads)
    return len(reads) - refused, refused


def targets() -> dict:
    device, office = t.Device(), t.Office()
    book, radio = kiosk.Book(), ble.AdvertRadio()
    return {"header": (gen_header, t.header_oracle), "streamed": (gen_streamed, t.streamed_oracle),
            "safejson": (gen_safejson, t.safejson_oracle),
            "downlink": (gen_downlink, device.handle), "settings": (gen_settings, t.settings_oracle),
            "model": (gen_model, t.model_oracle), "uplink": (gen_uplink, office.receive),
            "apdu": (gen_apdu, nd.transmit_oracle), "ndef_read": (gen_ndef_read, nd.read_ndef_oracle),
            "ndef": (gen_ndef, nd.parses_or_refuses), "sun": (gen_sun, nd.sun_steps_oracle),
            "keyed_tag": (gen_keyed_tag, keyed_tag),
            "fingerprint": (gen_fingerprint, fp.line_oracle),
            "camera_wire": (gen_camera_wire, cw.stream_oracle),
            "ble": (gen_ble, lambda adverts: ble.advert_oracle(radio, adverts)),
            "complaint_form": (gen_complaint_form, kiosk.form_oracle),
            "complaint_draft": (gen_complaint_draft, kiosk.draft_oracle),
            "complaint_step": (gen_complaint_step, book.act),
            "staff_request": (gen_staff_request, lambda route, raw, pick: kiosk.body_oracle(book, route, raw, pick)),
            "screen_body": (gen_screen_body, lambda route, raw, pick: kiosk.body_oracle(book, route, raw, pick))}


def run(name: str, gen, oracle, count: int, seed: int) -> int:
    """An oracle returns True (accepted) / False (refused), (accepted, refused) counts of the items in
    one input (packets, adverts, card reads, SUN messages), or None (not told)."""
    r = random.Random(seed)
    out = ROOT / "artifacts" / "fuzz"
    unexpected = accepted = refused = 0
    started = time.monotonic()
    for n in range(count):
        args = gen(r)
        try:
            outcome = oracle(*args)
        except Exception:
            unexpected += 1
            if unexpected <= 5:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{name}-{seed}-{n}.txt").write_text(repr(args)[:100000] + "\n\n" + traceback.format_exc())
            continue
        if isinstance(outcome, tuple):
            accepted, refused = accepted + outcome[0], refused + outcome[1]
        elif outcome is not None:
            accepted, refused = accepted + bool(outcome), refused + (not outcome)
        if n and n % 100000 == 0:
            print(f"  {name}: {n:,} inputs, {unexpected} unexpected, {time.monotonic() - started:.0f} s", flush=True)
    told = f"accepted {accepted:,}, refused {refused:,}" if accepted or refused else "accepted/refused not told"
    print(f"{name}: {count:,} inputs, {told}, {unexpected} unexpected exceptions, "
          f"{time.monotonic() - started:.0f} s (seed {seed})", flush=True)
    return unexpected


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("parsers", nargs="*", help="targets (see the module's docstring; default: all)")
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    logging.disable(logging.WARNING)          # "card gave no UID" and the like, once per input
    all_targets = targets()
    bad = 0
    for name in args.parsers or list(all_targets):
        gen, oracle = all_targets[name]
        bad += run(name, gen, oracle, args.count, args.seed)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
